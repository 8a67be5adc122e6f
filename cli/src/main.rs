//! `refold`: validate a pipeline, fold events in memory, read a state table (now or as it
//! was), maintain it (compact, checkpoints), run the demo.

mod checkpoints;
mod compact;
mod demo;
mod fold;
mod state;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "refold",
    version,
    about = "Kafka domain events folded into Iceberg state tables, on AWS Lambda"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline file: prints OK, or every problem with its YAML path and line.
    Validate {
        /// The pipeline definition (YAML).
        pipeline: PathBuf,
    },
    /// Fold a file of event envelopes in memory; prints one JSON line per (tenant, key).
    Fold {
        pipeline: PathBuf,
        /// Event envelopes, one JSON object per line.
        #[arg(long)]
        events: PathBuf,
        /// Records per batch (as the Lambda trigger would deliver them).
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
    },
    /// Print the rows of a pipeline's state table: now, or as of a checkpoint or time.
    State {
        pipeline: PathBuf,
        /// The warehouse folder (embedded default: catalog.db and the tables in it).
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// Only this key.
        #[arg(long)]
        key: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// The table as it was: a checkpoint name, or an RFC 3339 time (the newest kept
        /// snapshot at or before it).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// One maintenance pass over a pipeline's state table (what the snapshot-compactor
    /// Lambda does on its schedule): merge manifests, compact partitions past a threshold,
    /// take a checkpoint when due, expire snapshots, delete orphan files.
    Compact {
        pipeline: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// Take a checkpoint now, whatever the interval.
        #[arg(long)]
        now: bool,
        /// Print the pass's report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the checkpoints of a pipeline's state table: name, time, snapshot, offsets.
    Checkpoints {
        pipeline: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The whole path locally: events into an in-process Kafka, Kafka ESM batches through
    /// the fold-batch handler, into a local Iceberg warehouse; then the view.
    Demo {
        #[arg(long, default_value = "pipelines/order-events-pipeline.yaml")]
        pipeline: PathBuf,
        #[arg(long, default_value = "events/orders.jsonl")]
        events: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// Records per ESM batch.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { pipeline } => validate::run(&pipeline),
        Command::Fold {
            pipeline,
            events,
            batch_size,
        } => fold::run(&pipeline, &events, batch_size),
        Command::State {
            pipeline,
            warehouse,
            key,
            tenant,
            as_of,
        } => {
            let q = state::Query {
                key: key.as_deref(),
                tenant: tenant.as_deref(),
                as_of: as_of.as_deref(),
            };
            state::run(&pipeline, &warehouse, q).await
        }
        Command::Compact {
            pipeline,
            warehouse,
            now,
            json,
        } => compact::run(&pipeline, &warehouse, now, json).await,
        Command::Checkpoints {
            pipeline,
            warehouse,
            json,
        } => checkpoints::run(&pipeline, &warehouse, json).await,
        Command::Demo {
            pipeline,
            events,
            warehouse,
            batch_size,
        } => {
            demo::run(demo::Options {
                pipeline: &pipeline,
                events: &events,
                warehouse: &warehouse,
                batch_size,
            })
            .await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

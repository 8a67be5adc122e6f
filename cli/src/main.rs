//! `refold`: validate a pipeline, fold events in memory, read a state table (now or as it
//! was), maintain it (compact, checkpoints), run the demo.

mod checkpoints;
mod compact;
mod demo;
mod fold;
mod history;
mod replay;
mod state;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `refold fold` frees each batch on another thread than the one that decoded it; mimalloc
/// serves that about 1.65x faster than glibc's malloc, with less memory (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// One entity's state at any time, event by event, from the event archive (starting at
    /// the nearest checkpoint): each event applied and the state after it.
    History {
        pipeline: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// The entity's key (as the pipeline folds by: data.<key_field>, else entity_id).
        #[arg(long)]
        key: String,
        /// The entity's tenant (needed when the key is in more than one).
        #[arg(long)]
        tenant: Option<String>,
        /// Only events dated at or before this RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
        /// Fold every archived event of the entity, not from the nearest checkpoint.
        #[arg(long)]
        from_start: bool,
        /// One JSON object per event: event_id, partition, offset, event_type, timestamp,
        /// state (and error when the event was set aside).
        #[arg(long)]
        json: bool,
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
    /// Rebuild the view from the topic's history into a new table, with parallel shards
    /// (whole partitions each) run in process; prints the replay id and the target table.
    Replay {
        pipeline: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// Read from this Kafka broker (HOST:PORT)...
        #[arg(long, conflicts_with = "events", required_unless_present = "events")]
        brokers: Option<String>,
        /// ...or load this JSONL file into an in-process topic (keyed as `refold demo`).
        #[arg(long)]
        events: Option<PathBuf>,
        /// earliest | latest_checkpoint | an offset | '{"0": 12, ...}' | an RFC 3339 time.
        #[arg(long, default_value = "earliest")]
        from: String,
        /// The last record time included (RFC 3339); default: the end of each partition now.
        #[arg(long)]
        to_timestamp: Option<String>,
        /// Shards run in parallel (at most the topic's partitions).
        #[arg(long, default_value_t = 1)]
        parallel: u32,
        /// Target table name in the live table's namespace (default <table>__replay_<id>).
        #[arg(long)]
        target: Option<String>,
        /// Consumer group of the replay (default <pipeline>-replay).
        #[arg(long)]
        target_consumer_group: Option<String>,
        /// Records per batch.
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
        /// Time budget of one shard invocation, seconds (a Lambda's timeout); a shard
        /// continues in a new invocation when it runs out.
        #[arg(long, default_value_t = 900)]
        invocation_seconds: u64,
    },
    /// List the replays of a pipeline and their state.
    Replays {
        pipeline: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Swap a finished replay's table in as the live table (after catching it up).
    Promote {
        pipeline: PathBuf,
        #[arg(long, default_value = "warehouse")]
        warehouse: PathBuf,
        /// The replay id (`refold replays`).
        #[arg(long)]
        replay: String,
        #[arg(long, conflicts_with = "events", required_unless_present = "events")]
        brokers: Option<String>,
        #[arg(long)]
        events: Option<PathBuf>,
    },
}

fn events_of(brokers: Option<String>, events: Option<PathBuf>) -> replay::Events {
    match (brokers, events) {
        (Some(b), _) => replay::Events::Brokers(b),
        (None, Some(f)) => replay::Events::File(f),
        (None, None) => replay::Events::Brokers("localhost:9092".into()),
    }
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
        Command::History {
            pipeline,
            warehouse,
            key,
            tenant,
            as_of,
            from_start,
            json,
        } => {
            let q = history::Args {
                key: &key,
                tenant: tenant.as_deref(),
                as_of: as_of.as_deref(),
                from_start,
                json,
            };
            history::run(&pipeline, &warehouse, q).await
        }
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
        Command::Replay {
            pipeline,
            warehouse,
            brokers,
            events,
            from,
            to_timestamp,
            parallel,
            target,
            target_consumer_group,
            batch_size,
            invocation_seconds,
        } => {
            replay::replay(replay::ReplayArgs {
                pipeline,
                warehouse,
                events: events_of(brokers, events),
                from,
                to_timestamp,
                parallel,
                target,
                target_group: target_consumer_group,
                batch_size,
                invocation_s: invocation_seconds,
            })
            .await
        }
        Command::Replays {
            pipeline,
            warehouse,
            json,
        } => replay::list(&pipeline, &warehouse, json).await,
        Command::Promote {
            pipeline,
            warehouse,
            replay: id,
            brokers,
            events,
        } => replay::promote_cmd(&pipeline, &warehouse, &id, events_of(brokers, events)).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

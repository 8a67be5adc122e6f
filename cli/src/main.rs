//! `refold`: validate a pipeline, fold events in memory, read a state table, run the demo.

mod fold;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "refold", version, about = "Kafka domain events folded into Iceberg state tables, on AWS Lambda")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { pipeline } => validate::run(&pipeline),
        Command::Fold { pipeline, events, batch_size } => fold::run(&pipeline, &events, batch_size),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The worker from the function's environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `REFOLD_PIPELINE` / `REFOLD_PIPELINE_INLINE` | the pipeline (its source's `connection` names the brokers) |
//! | `REFOLD_CATALOG`, `REFOLD_WAREHOUSE`, ... | the catalog (`refold_aws::catalog_from_env`) |
//! | `REFOLD_KAFKA_*`, `REFOLD_KAFKA_SECRET_ARN` | the Kafka clients' credentials (`refold_kafka::connection`, `refold_aws::kafka_secret`) |
//! | `REFOLD_DEAD_LETTER` | where dead letters go; a replay's go under `replay-<id>/` there |
//! | `AWS_LAMBDA_FUNCTION_NAME` | this function (set by Lambda): a shard continues by invoking it |
//! | `REFOLD_REPLAY_BATCH_RECORDS` | records read and folded per batch (default 10,000) |
//! | `REFOLD_REPLAY_DEADLINE_MARGIN_MS` | stop starting batches this long before the deadline (default 30,000) |
//! | `REFOLD_REPLAY_MAX_BATCHES_PER_INVOCATION` | batches per invocation before continuing (default unbounded: 100,000) |

use std::sync::Arc;

use refold::dead_letter::DeadLetterStore;
use refold::error::{Error, ErrorKind, Result};
use refold::replay::handler::ReplayWorker;
use refold::replay::{ReplayPlan, WorkerLimits};
use refold_aws::invoke::LambdaShardInvoker;
use refold_kafka::KafkaRanges;

/// What one container of the replay-worker keeps between invocations.
pub struct Worker {
    pub handler: ReplayWorker,
    pub invoker: LambdaShardInvoker,
    /// For promotions (which catch the replay table up through the batch engine too).
    pub pipeline: refold::pipeline::Pipeline,
    pub key_check: refold::batch::KeyCheck,
    pub catalog: refold::table::CatalogConfig,
    pub source: Arc<KafkaRanges>,
    pub limits: WorkerLimits,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match env(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                format!("{name}=`{v:.40}`: expected a whole number"),
            )
        }),
    }
}

/// The worker's limits, the defaults overridden by the environment.
pub fn limits_from_env() -> Result<WorkerLimits> {
    let d = WorkerLimits::default();
    let limits = WorkerLimits {
        max_batch_records: env_number("REFOLD_REPLAY_BATCH_RECORDS", d.max_batch_records)?,
        deadline_margin_ms: env_number("REFOLD_REPLAY_DEADLINE_MARGIN_MS", d.deadline_margin_ms)?,
        max_batches_per_invocation: env_number(
            "REFOLD_REPLAY_MAX_BATCHES_PER_INVOCATION",
            d.max_batches_per_invocation,
        )?,
    };
    if limits.max_batch_records == 0 || limits.max_batches_per_invocation == 0 {
        return Err(Error::new(
            ErrorKind::Config,
            "REFOLD_REPLAY_BATCH_RECORDS and REFOLD_REPLAY_MAX_BATCHES_PER_INVOCATION must be > 0",
        ));
    }
    Ok(limits)
}

/// A replay's dead letters: `<REFOLD_DEAD_LETTER>/replay-<id>` (or next to a local warehouse).
pub fn replay_dead_letters(plan: &ReplayPlan) -> Result<Arc<dyn DeadLetterStore>> {
    let base = match env("REFOLD_DEAD_LETTER") {
        Some(b) => b,
        None => match env("REFOLD_WAREHOUSE").filter(|w| !w.contains("://")) {
            Some(w) => format!("{}/dead-letters", w.trim_end_matches('/')),
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "REFOLD_DEAD_LETTER is not set (a local folder or s3://bucket/prefix)",
                ));
            }
        },
    };
    let target = format!("{}/replay-{}", base.trim_end_matches('/'), plan.replay_id);
    refold::engine::config::dead_letters_at(&target, &refold::engine::config::storage_from_env())
}

pub async fn worker_from_env() -> Result<Worker> {
    let cp = refold::engine::config::pipeline_from_env()?;
    let catalog = refold_aws::catalog_from_env().await?;
    let store = Arc::new(refold_aws::replay_store_from_env(&catalog)?);
    let p = &cp.pipeline;
    let brokers = p.source_of(p.transformation()).connection.clone();
    let secret = refold_aws::kafka_secret::from_env().await?;
    let conn = refold_kafka::KafkaConnection::from_env_and_secret(&brokers, &secret)?;
    let source = Arc::new(KafkaRanges::new(conn));
    let function = env("AWS_LAMBDA_FUNCTION_NAME")
        .ok_or_else(|| Error::new(ErrorKind::Config, "AWS_LAMBDA_FUNCTION_NAME is not set"))?;
    let limits = limits_from_env()?;
    let (pipeline, key_check) = (cp.pipeline.clone(), cp.key_check);
    let handler = ReplayWorker::new(
        &cp,
        catalog.clone(),
        store,
        source.clone(),
        Arc::new(replay_dead_letters),
    )
    .with_limits(limits.clone());
    Ok(Worker {
        handler,
        invoker: LambdaShardInvoker::from_env(function).await,
        pipeline,
        key_check,
        catalog,
        source,
        limits,
    })
}

//! The replay service from the function's environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `REFOLD_PIPELINE` / `REFOLD_PIPELINE_INLINE` | the pipeline (its source's `connection` names the brokers) |
//! | `REFOLD_CATALOG`, `REFOLD_WAREHOUSE`, ... | the catalog (`refold_aws::catalog_from_env`: `sql` or `glue`) |
//! | `REFOLD_REPLAY_WORKER_FUNCTION` | the replay-worker function (name or ARN) the shards are invoked on |
//! | `REFOLD_KAFKA_*`, `REFOLD_KAFKA_SECRET_ARN` | the Kafka clients' credentials (`refold_kafka::connection`, `refold_aws::kafka_secret`) |
//!
//! Replays are stored in the warehouse (`_refold/replays/...`), next to the tables.

use std::sync::Arc;

use async_trait::async_trait;
use refold::error::{Error, ErrorKind, Result};
use refold::replay::ReplayService;
use refold_aws::invoke::{LambdaShardInvoker, PromoteTask};
use refold_kafka::KafkaOffsets;

use crate::routes::{Api, Promoter};

/// On Lambda a promotion runs in the replay-worker (an asynchronous invoke).
#[async_trait]
impl Promoter for LambdaShardInvoker {
    async fn start(&self, task: &PromoteTask) -> Result<()> {
        self.invoke_promotion(task).await
    }
}

/// The replay-worker function's name, from `REFOLD_REPLAY_WORKER_FUNCTION`.
pub fn worker_function_from_env() -> Result<String> {
    std::env::var("REFOLD_REPLAY_WORKER_FUNCTION")
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "REFOLD_REPLAY_WORKER_FUNCTION is not set (the replay-worker function's name or ARN)",
            )
        })
}

pub async fn api_from_env() -> Result<Api> {
    let cp = refold::engine::config::pipeline_from_env()?;
    let catalog = refold_aws::catalog_from_env().await?;
    let store = Arc::new(refold_aws::replay_store_from_env(&catalog)?);
    let p = &cp.pipeline;
    let brokers = p.source_of(p.transformation()).connection.clone();
    let secret = refold_aws::kafka_secret::from_env().await?;
    let conn = refold_kafka::KafkaConnection::from_env_and_secret(&brokers, &secret)?;
    let resolver = Arc::new(KafkaOffsets::new(conn));
    let invoker = Arc::new(LambdaShardInvoker::from_env(worker_function_from_env()?).await);
    Ok(Api {
        service: ReplayService::new(cp, catalog, store, resolver, invoker.clone()),
        promoter: invoker,
    })
}

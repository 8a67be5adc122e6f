//! [`LambdaShardInvoker`]: the replay fan-out through the Lambda Invoke API. Each shard
//! invocation, and a promotion ([`PromoteTask`]), is an asynchronous invoke
//! (`InvocationType: Event`) of the replay-worker function: Lambda queues it and answers
//! 202, so the caller (the replay API, or a worker continuing itself) does not wait for it.
//!
//! The endpoint is the SDK's: `AWS_ENDPOINT_URL_LAMBDA` (or `AWS_ENDPOINT_URL`) points it at
//! a local Invoke API such as `cargo lambda watch`, which runs every invoke to completion
//! before it answers, asynchronous or not (so locally a caller waits for its shard).

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use refold::error::{Error, ErrorKind, Result};
use refold::replay::{ReplayId, ShardInvoker, ShardTask};
use serde::{Deserialize, Serialize};

/// Payload bytes of one asynchronous invoke that Lambda accepts (its limit is 256 KB; a shard
/// task is about 200 bytes).
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 256 * 1024;

/// The replay-worker's event that promotes a finished replay (`{"promote": {...}}`): it
/// runs in the worker, whose invocation may take 15 minutes, not in the API, whose HTTP
/// answer must come within API Gateway's 30 seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteTask {
    pub pipeline: String,
    pub replay_id: ReplayId,
}

/// Invokes the replay-worker function, one asynchronous invoke per shard task.
#[derive(Debug, Clone)]
pub struct LambdaShardInvoker {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaShardInvoker {
    /// An invoker of `function` (a name or ARN), with the client the environment configures.
    pub async fn from_env(function: impl Into<String>) -> Self {
        let conf = aws_config::load_from_env().await;
        Self::new(aws_sdk_lambda::Client::new(&conf), function)
    }

    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }

    pub fn function(&self) -> &str {
        &self.function
    }
}

impl LambdaShardInvoker {
    /// Starts the promotion of a replay in the worker.
    pub async fn invoke_promotion(&self, task: &PromoteTask) -> Result<()> {
        let payload = serde_json::json!({ "promote": task });
        let what = format!(
            "invoke {} to promote replay {}",
            self.function, task.replay_id
        );
        self.invoke_event(&payload, &what).await
    }

    /// One asynchronous invoke of the function with `payload`.
    async fn invoke_event(&self, payload: &serde_json::Value, what: &str) -> Result<()> {
        let payload = serde_json::to_vec(payload)
            .map_err(|e| Error::new(ErrorKind::Internal, "encode an event").with_source(e))?;
        if payload.len() > MAX_EVENT_PAYLOAD_BYTES {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "{what}: event of {} bytes is over Lambda's {MAX_EVENT_PAYLOAD_BYTES}",
                    payload.len()
                ),
            ));
        }
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                let e = aws_sdk_lambda::error::DisplayErrorContext(e);
                Error::new(ErrorKind::Io, format!("{what}: {e}"))
            })?;
        // An asynchronous invoke answers 202. The local emulator runs the event first and
        // answers 200, with the function's error if it failed: the worker has recorded the
        // failure by then (a shard marks its replay failed), so this is logged, not returned.
        if let Some(err) = out.function_error() {
            let body = out
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default();
            tracing::warn!(function_error = err, body = %format!("{body:.500}"), "{what}");
        }
        tracing::info!(function = %self.function, status = out.status_code(), "{what}");
        Ok(())
    }
}

#[async_trait]
impl ShardInvoker for LambdaShardInvoker {
    async fn invoke(&self, task: ShardTask) -> Result<()> {
        let what = format!(
            "invoke {} for replay {} shard {} (invocation {})",
            self.function, task.replay_id, task.shard, task.invocation
        );
        let payload = serde_json::to_value(&task)
            .map_err(|e| Error::new(ErrorKind::Internal, "encode a shard task").with_source(e))?;
        self.invoke_event(&payload, &what).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_promote_event_is_tagged() {
        let t = PromoteTask {
            pipeline: "p".into(),
            replay_id: ReplayId::parse("20261202t050000z-0123abcd").unwrap(),
        };
        let v = serde_json::json!({ "promote": t });
        assert_eq!(v["promote"]["pipeline"], "p");
        let back: PromoteTask = serde_json::from_value(v["promote"].clone()).unwrap();
        assert_eq!(back, t);
    }
}

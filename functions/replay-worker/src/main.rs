//! replay-worker: a shard task -> one invocation of that replay shard; a promote task -> the
//! promotion. Wiring only.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use replay_worker::event::WorkerEvent;
use replay_worker::{config, handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / AWS_LAMBDA_LOG_FORMAT (Lambda's logging controls).
    lambda_runtime::tracing::init_default_subscriber();
    let worker = Arc::new(config::worker_from_env().await?);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<WorkerEvent>| {
        let w = Arc::clone(&worker);
        async move {
            let deadline = handler::deadline(ev.context.deadline, handler::now_ms());
            handler::handle_event(&w, &ev.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

//! snapshot-compactor: an EventBridge schedule -> one maintenance pass of the pipeline's
//! state table. Wiring only.

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use snapshot_compactor::handler::SnapshotCompactor;
use snapshot_compactor::schedule;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / AWS_LAMBDA_LOG_FORMAT (Lambda's logging controls).
    lambda_runtime::tracing::init_default_subscriber();
    let handler = Arc::new(SnapshotCompactor::from_env().await?);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<EventBridgeEvent>| {
        let h = Arc::clone(&handler);
        async move {
            let deadline = schedule::deadline(ev.context.deadline, refold::emf::now_ms());
            h.handle(&ev.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

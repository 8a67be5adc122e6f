//! fold-batch: the Kafka event source mapping -> refold -> Iceberg. Wiring only.

use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use fold_batch::handler::FoldBatch;
use lambda_runtime::{LambdaEvent, service_fn};
use refold::engine::BatchProcessor;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / AWS_LAMBDA_LOG_FORMAT (Lambda's logging controls).
    lambda_runtime::tracing::init_default_subscriber();
    let handler = Arc::new(FoldBatch::new(BatchProcessor::from_env().await?));
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<KafkaEvent>| {
        let h = Arc::clone(&handler);
        async move {
            h.handle(&ev.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

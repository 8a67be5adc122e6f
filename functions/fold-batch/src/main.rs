//! fold-batch: the Kafka event source mapping -> refold -> Iceberg. Wiring only.

use std::sync::Arc;

use aws_lambda_events::event::kafka::KafkaEvent;
use fold_batch::{config, handler::FoldBatch, logging};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let dead_letters = config::dead_letters_from_env().await?;
    let processor = fold_batch::process::BatchProcessor::from_env(dead_letters).await?;
    let handler = Arc::new(FoldBatch::new(processor));
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

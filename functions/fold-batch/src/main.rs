//! fold-batch: the Kafka event source mapping -> refold -> Iceberg. Wiring only.

use std::sync::Arc;

use fold_batch::esm::EsmEvent;
use fold_batch::handler::FoldBatch;
use fold_batch::parse_layer::{ParseLayer, ParsedEvents};
use lambda_runtime::{LambdaEvent, Runtime, layers, service_fn};
use refold::engine::{BatchProcessor, config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / AWS_LAMBDA_LOG_FORMAT (Lambda's logging controls).
    lambda_runtime::tracing::init_default_subscriber();
    // The catalog REFOLD_CATALOG names (glue or sql); pipeline and dead letters as
    // BatchProcessor::from_env reads them.
    let processor = BatchProcessor::open(
        config::pipeline_from_env()?,
        refold_aws::catalog_from_env().await?,
        config::dead_letters_from_env()?,
    )
    .await?;
    let handler = Arc::new(FoldBatch::new(processor));
    let parsed = ParsedEvents::default();
    let events = parsed.clone();
    let service = service_fn(move |ev: LambdaEvent<EsmEvent>| {
        let (h, event) = (Arc::clone(&handler), events.take(ev));
        async move { h.handle(event).await.map_err(lambda_runtime::Error::from) }
    });
    // As lambda_runtime::run, with the event parsed ahead of the runtime (parse_layer).
    Runtime::new(service)
        .layer(ParseLayer::new(parsed))
        .layer(layers::TracingLayer::new())
        .run()
        .await
}

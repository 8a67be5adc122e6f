//! replay-api: API Gateway HTTP API -> the replay service. Wiring only.

use std::sync::Arc;

use lambda_http::{Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / AWS_LAMBDA_LOG_FORMAT (Lambda's logging controls).
    lambda_http::tracing::init_default_subscriber();
    let api = Arc::new(replay_api::config::api_from_env().await?);
    lambda_http::run(service_fn(move |req: Request| {
        let a = Arc::clone(&api);
        async move { Ok::<_, std::convert::Infallible>(replay_api::http::handle(&a, req).await) }
    }))
    .await
}

//! Structured logs with `tracing`: JSON lines in Lambda (CloudWatch Logs Insights reads the
//! fields), compact text elsewhere. `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = in_lambda || std::env::var("REFOLD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        b.json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        b.compact().with_writer(std::io::stderr).try_init()
    };
}

//! The real fold-batch binary under `cargo lambda watch`, invoked through the Lambda Invoke
//! REST API with the committed ESM payload; the table is then the CPython oracle's fold of
//! the same events (`tests/py/seed_fold.py`), and the dead letters the lines it rejects.
//!
//!   scripts/stack.sh up /tmp/refold-stack lambda && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release -p fold-batch --test lambda_invoke
//!
//! stack.sh gives the function REFOLD_PIPELINE (the seed pipeline), REFOLD_WAREHOUSE and
//! REFOLD_DEAD_LETTER, and this test the same as REFOLD_LAMBDA_* to read the result.
//! Each function instance starts with `cargo run`: while other cargo builds hold the target
//! directory lock, the first invoke waits for them (curl waits up to 15 min).

#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::sync::Arc;

use refold::dead_letter::{DeadLetterKind, LocalDeadLetters};

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: start the stack with `scripts/stack.sh up DIR lambda` and export the \
             variables of DIR/stack.env (this test invokes the real binary under cargo lambda watch)"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_api_with_the_esm_payload_folds_to_the_oracle() {
    let endpoint = env("REFOLD_LAMBDA_ENDPOINT");
    let warehouse = PathBuf::from(env("REFOLD_LAMBDA_WAREHOUSE"));
    let dead_dir = PathBuf::from(env("REFOLD_LAMBDA_DEAD_LETTER"));
    let url = format!("{endpoint}/2015-03-31/functions/fold-batch/invocations");
    let payload = common::esm_payload_path();

    let want = common::seed_oracle();

    for attempt in 1..=2 {
        let (status, body) = common::http_post(&url, &payload);
        assert_eq!(status, 200, "invoke #{attempt}: {body}");
        let resp: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            resp,
            serde_json::json!({"batchItemFailures": []}),
            "invoke #{attempt}"
        );

        // Read what the function wrote, with the same pipeline and catalog.
        let catalog = refold::table::CatalogConfig::embedded(&warehouse).unwrap();
        let dl = Arc::new(LocalDeadLetters::new(&dead_dir));
        let p = refold::engine::BatchProcessor::open(
            common::compile_path(&common::seed_pipeline_path()),
            catalog,
            dl.clone(),
        )
        .await
        .unwrap();
        let rows = p.table().current_rows(None, None).await.unwrap();
        common::assert_matches_oracle(&rows, &want, &format!("invoke #{attempt}"));
        let dead = dl.read_all().await.unwrap();
        assert_eq!(
            dead.iter()
                .filter(|d| d.kind == DeadLetterKind::BadBase64)
                .count(),
            1,
            "invoke #{attempt}: the bad-base64 record is dead-lettered once"
        );
        common::assert_dead_letters_match_oracle(&dead, &want, &format!("invoke #{attempt}"));
    }
}

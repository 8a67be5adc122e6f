//! The real fold-batch binary under `cargo lambda watch`, invoked through the Lambda Invoke
//! REST API with the committed ESM payload; the table is then the CPython oracle's fold of
//! the same events (`tests/py/seed_fold.py`), and the dead letters the lines it rejects.
//! Twice: with a local warehouse (the `lambda` emulator) and in the deployed configuration
//! (`lambda-aws`: the Glue catalog, the table and the dead letters on S3, all on moto; read
//! back by PyIceberg through Glue and by boto3).
//!
//!   scripts/stack.sh up /tmp/refold-stack s3 lambda lambda-aws && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test lambda_invoke
//!
//! stack.sh gives the function REFOLD_PIPELINE (the seed pipeline), REFOLD_WAREHOUSE and
//! REFOLD_DEAD_LETTER, and this test the same as REFOLD_LAMBDA_* (REFOLD_LAMBDA_AWS_*) to
//! read the result.
//! Each function instance starts with `cargo run`: while other cargo builds hold the target
//! directory lock, the first invoke waits for them (curl waits up to 15 min).

#![allow(clippy::unwrap_used)]
mod common;

use std::path::PathBuf;
use std::sync::Arc;

use refold::dead_letter::{DeadLetter, DeadLetterKind, LocalDeadLetters};

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: start the stack with `scripts/stack.sh up DIR s3 lambda lambda-aws` and export the \
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
    let want = common::seed_oracle();
    for attempt in 1..=2 {
        invoke(&url, attempt);
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
        let what = format!("invoke #{attempt}");
        common::assert_matches_oracle(&rows, &want, &what);
        assert_dead_letters(&dl.read_all().await.unwrap(), &want, &what);
    }
}

/// Posts the ESM payload; the function reports no failed item.
fn invoke(url: &str, attempt: u32) {
    let (status, body) = common::curl::post_file(url, &common::esm_payload_path());
    assert_eq!(status, 200, "invoke #{attempt}: {body}");
    let resp: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        resp,
        serde_json::json!({"batchItemFailures": []}),
        "invoke #{attempt}"
    );
}

fn assert_dead_letters(dead: &[DeadLetter], want: &common::oracle::Oracle, what: &str) {
    let bad_base64 = dead
        .iter()
        .filter(|d| d.kind == DeadLetterKind::BadBase64)
        .count();
    assert_eq!(
        bad_base64, 1,
        "{what}: the bad-base64 record is dead-lettered once"
    );
    common::assert_dead_letters_match_oracle(dead, want, what);
}

#[test]
fn the_deployed_configuration_folds_the_esm_payload_to_the_oracle() {
    let endpoint = env("REFOLD_LAMBDA_AWS_ENDPOINT");
    let moto = env("REFOLD_S3_ENDPOINT");
    let dead_url = env("REFOLD_LAMBDA_AWS_DEAD_LETTER");
    let url = format!("{endpoint}/2015-03-31/functions/fold-batch/invocations");
    let want = common::seed_oracle();
    for attempt in 1..=2 {
        invoke(&url, attempt);
        let what = format!("deployed configuration, invoke #{attempt}");
        let rows = common::oracle::glue_rows(&common::repo(), &moto, "domain.orders.current_state");
        common::oracle::assert_rows_eq(&rows, &want.rows, &what);
        let bytes = common::oracle::s3_cat(&common::repo(), &moto, &dead_url);
        let dead = refold::dead_letter::decode_jsonl(&bytes).unwrap();
        assert_dead_letters(&dead, &want, &what);
    }
}

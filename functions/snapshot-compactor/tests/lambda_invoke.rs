//! The real snapshot-compactor binary under `cargo lambda watch`, invoked through the Lambda
//! Invoke REST API with the sample schedule event (`events/eventbridge/schedule.json`, its
//! time set to now), after the fold-batch binary folded the committed ESM payload into the
//! same warehouse. The pass answers its report; the rows are the same before and after, as
//! refold and PyIceberg read them; the newest checkpoint carries the committed offsets.
//!
//! Also in the deployed configuration (`lambda-aws`: Glue and S3 on moto), read by PyIceberg
//! through Glue.
//!
//!   scripts/stack.sh up /tmp/refold-stack s3 lambda lambda-aws && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test lambda_invoke
//!
//! stack.sh gives both functions REFOLD_PIPELINE (the seed pipeline) and REFOLD_WAREHOUSE,
//! and this test the same as REFOLD_LAMBDA_*.

#![allow(clippy::unwrap_used)]

#[path = "../../fold-batch/tests/common/curl.rs"]
mod curl;
#[path = "../../fold-batch/tests/common/oracle.rs"]
mod oracle;

use std::path::{Path, PathBuf};

use refold::batch::CompiledPipeline;
use refold::table::CatalogConfig;
use serde_json::{Value, json};

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: start the stack with `scripts/stack.sh up DIR s3 lambda lambda-aws` and export the \
             variables of DIR/stack.env (this test invokes the real binary under cargo lambda watch)"
        ),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seed() -> CompiledPipeline {
    let text =
        std::fs::read_to_string(root().join("pipelines/order-events-pipeline.yaml")).unwrap();
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| "localhost:9092".to_string());
    CompiledPipeline::compile(
        refold::pipeline::parse(&text, "seed", &env)
            .into_pipeline()
            .unwrap(),
    )
    .unwrap()
}

/// Invokes fold-batch with the sample ESM payload; no record is reported failed.
fn fold_sample(url: &str) {
    let (status, body) = curl::post_file(url, &root().join("events/esm/orders-batch.json"));
    assert_eq!(status, 200, "fold-batch: {body}");
    let resp: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resp, json!({"batchItemFailures": []}), "fold-batch");
}

/// Invokes the compactor with the sample schedule event, its time set to now (whole
/// seconds); every step of the pass is done.
fn run_pass(url: &str, dir: &Path) {
    let mut ev: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/eventbridge/schedule.json")).unwrap(),
    )
    .unwrap();
    let now = refold::emf::now_ms();
    ev["time"] = json!(refold::table::as_of::fmt_ms(now - now % 1000));
    let event = dir.join("schedule.json");
    std::fs::write(&event, ev.to_string()).unwrap();
    let (status, body) = curl::post_file(url, &event);
    assert_eq!(status, 200, "snapshot-compactor: {body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    for step in ["compaction", "manifests", "checkpoint", "expiry", "orphans"] {
        assert_eq!(report[step]["status"], "done", "{step}: {report:#}");
    }
    assert_eq!(report["table"], "domain.orders.current_state");
    assert_eq!(report["now_ms"], json!(now - now % 1000));
}

/// The deployed configuration (`lambda-aws`: Glue and S3 on moto): fold-batch folds the
/// sample ESM payload, a pass runs, and PyIceberg reads the same rows through Glue before
/// and after it.
#[test]
fn in_the_deployed_configuration_a_pass_keeps_the_rows() {
    let endpoint = env("REFOLD_LAMBDA_AWS_ENDPOINT");
    let moto = env("REFOLD_S3_ENDPOINT");
    let invoke = |f: &str| format!("{endpoint}/2015-03-31/functions/{f}/invocations");
    fold_sample(&invoke("fold-batch"));
    let table = "domain.orders.current_state";
    let before = oracle::glue_rows(&root(), &moto, table);
    assert!(!before.is_empty(), "fold-batch wrote rows");
    let dir = tempfile::tempdir().unwrap();
    run_pass(&invoke("snapshot-compactor"), dir.path());
    let after = oracle::glue_rows(&root(), &moto, table);
    oracle::assert_rows_eq(&after, &before, "after the pass, through Glue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_event_runs_a_pass_that_keeps_the_rows() {
    let endpoint = env("REFOLD_LAMBDA_ENDPOINT");
    let warehouse = PathBuf::from(env("REFOLD_LAMBDA_WAREHOUSE"));
    let invoke = |f: &str| format!("{endpoint}/2015-03-31/functions/{f}/invocations");
    fold_sample(&invoke("fold-batch"));

    let table =
        refold::compactor::open_table(&seed(), CatalogConfig::embedded(&warehouse).unwrap())
            .await
            .unwrap();
    let rows = table.current_rows(None, None).await.unwrap();
    assert!(!rows.is_empty());

    let dir = tempfile::tempdir().unwrap();
    run_pass(&invoke("snapshot-compactor"), dir.path());

    assert_eq!(table.current_rows(None, None).await.unwrap(), rows);
    let checkpoints = table.checkpoints().await.unwrap();
    let newest = checkpoints.last().expect("a checkpoint");
    assert_eq!(newest.offsets, table.committed_offsets().await.unwrap());

    // PyIceberg reads the same rows now and at the checkpoint.
    let expect = dir.path().join("expect.jsonl");
    let lines: String = rows
        .iter()
        .map(|r| {
            json!({
                "tenant_id": r.tenant_id, "order_id": r.key, "state": r.state.to_value(),
                "source_partition": r.source_partition, "last_offset": r.last_offset,
                "last_event_id": r.last_event_id, "last_event_time_us": r.last_event_time_us,
                "events_folded": r.events_folded,
            })
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&expect, lines).unwrap();
    let w = warehouse.display().to_string();
    for reference in [None, Some(newest.name.as_str())] {
        let mut cmd = std::process::Command::new(oracle::python());
        cmd.arg(root().join("tests/py/maintenance_check.py"))
            .args([
                "--uri",
                &format!("sqlite:///{w}/catalog.db"),
                "--warehouse",
                &format!("file://{w}"),
            ])
            .args(["--table", "domain.orders.current_state", "rows"]);
        if let Some(r) = reference {
            cmd.args(["--ref", r]);
        }
        let out = cmd.arg("--expect").arg(&expect).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("PYICEBERG OK"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! The real replay-api and replay-worker binaries under `cargo lambda watch`, in the deployed
//! configuration (the Glue catalog, the warehouse on S3, both on moto), driven through HTTP
//! (the emulator's function-URL route, which hands replay-api the API Gateway HTTP API
//! event), fanning out through the real Lambda Invoke API to replay-worker, which reads tansu
//! with rdkafka. The order stream is produced keyed by `order_id`; replays with
//! `parallel_consumers` 1 and 4 give target tables that PyIceberg reads through Glue (not
//! refold) as the seed's fold run by CPython over the records the topic holds
//! (`tests/py/seed_fold.py`). The stack's worker takes small batches and continues itself
//! every two (the stack's `REFOLD_REPLAY_*`), so each shard spans several invocations.
//!
//!   scripts/stack.sh up /tmp/refold-stack kafka s3 lambda-aws && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test lambda_http
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use refold::envelope::Envelope;
use refold_kafka::{Producer, create_topic, read_topic};
use serde_json::{Value, json};

#[path = "../../fold-batch/tests/common/curl.rs"]
mod curl;
#[path = "../../fold-batch/tests/common/oracle.rs"]
mod oracle;

const TOPIC: &str = "domain.orders.events";
const PIPELINE: &str = "order-events-pipeline";

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: start the stack with `scripts/stack.sh up DIR kafka s3 lambda-aws` and \
             export the variables of DIR/stack.env (this test drives the real binaries)"
        ),
    }
}

fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// `METHOD URL [JSON]` through curl: (status, JSON body, or `{"raw": text}`).
fn http(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let text = body.map(Value::to_string);
    let (code, body) = curl::request(method, url, text.as_deref().map(curl::Body::Text));
    let v = serde_json::from_str(&body).unwrap_or_else(|_| json!({ "raw": body }));
    (code, v)
}

/// The order stream in the topic, keyed by `order_id`: once per stack, so that a second run
/// replays the same records (the emulator's nested invokes hold an instance each: a longer
/// stream would need more than the stack's concurrency).
async fn produce(brokers: &str) {
    create_topic(brokers, TOPIC, 4).await.unwrap();
    let held = read_topic(brokers, TOPIC, std::time::Duration::from_secs(30)).unwrap();
    if !held.is_empty() {
        return;
    }
    let jsonl = std::fs::read(root().join("events/orders.jsonl")).unwrap();
    Producer::new(brokers)
        .unwrap()
        .produce_jsonl(TOPIC, &jsonl, |l| {
            let e = Envelope::decode(l).ok()?;
            e.key("order_id").ok().map(|k| k.into_owned())
        })
        .await
        .unwrap();
}

/// The CPython fold of every record the topic holds, partition by partition in offset order
/// (a key lives in one partition, so this is each key's order).
fn oracle_of_topic(brokers: &str, dir: &Path) -> oracle::Oracle {
    let records = read_topic(brokers, TOPIC, std::time::Duration::from_secs(30)).unwrap();
    let mut lines = Vec::new();
    let mut sorted: Vec<_> = records.iter().collect();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in sorted {
        lines.extend_from_slice(&r.value);
        lines.push(b'\n');
    }
    let file = dir.join("topic.jsonl");
    std::fs::write(&file, lines).unwrap();
    oracle::run(
        &root(),
        &root().join("pipelines/order-events-pipeline.yaml"),
        &file,
    )
}

/// Starts a replay through the API; waits until its status is `done`; the target table.
fn replay(endpoint: &str, parallel: u32, target: &str) -> String {
    let base = format!("{endpoint}/lambda-url/replay-api/v1/pipelines/{PIPELINE}");
    let req = json!({
        "from_offset": "earliest",
        "target_consumer_group": format!("order-projection-{target}"),
        "parallel_consumers": parallel,
        "target": target,
    });
    let (status, started) = http("POST", &format!("{base}/replay"), Some(&req));
    assert_eq!(status, 202, "{started}");
    assert_eq!(
        started["shards"].as_array().unwrap().len(),
        parallel as usize,
        "{started}"
    );
    let url = format!(
        "{endpoint}/lambda-url/replay-api{}",
        started["status_url"].as_str().unwrap()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    loop {
        let (status, st) = http("GET", &url, None);
        assert_eq!(status, 200, "{st}");
        match st["state"].as_str().unwrap() {
            "done" => {
                assert_eq!(st["events_done"], st["events_total"], "{st}");
                return started["target_table"].as_str().unwrap().to_owned();
            }
            "failed" | "cancelled" => panic!("replay {target}: {st}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replay {target} not done: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_with_1_and_4_workers_equal_the_cpython_fold_of_the_topic() {
    let brokers = env("REFOLD_KAFKA_BROKERS");
    let endpoint = env("REFOLD_LAMBDA_AWS_ENDPOINT");
    let moto = env("REFOLD_S3_ENDPOINT");
    produce(&brokers).await;
    let dir = tempfile::tempdir().unwrap();
    let want = oracle_of_topic(&brokers, dir.path());
    assert!(want.rows.len() > 100, "the stream folds to many rows");

    // Targets of their own, so the test runs again on the same stack.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (t1, t4) = (format!("replay_one_{run}"), format!("replay_four_{run}"));
    let one = replay(&endpoint, 1, &t1);
    let four = replay(&endpoint, 4, &t4);
    let (rows_one, rows_four) = (
        oracle::glue_rows(&root(), &moto, &one),
        oracle::glue_rows(&root(), &moto, &four),
    );
    oracle::assert_rows_eq(&rows_one, &want.rows, "parallel_consumers 1");
    oracle::assert_rows_eq(&rows_four, &want.rows, "parallel_consumers 4");

    // A replay into a target that exists is refused, and nothing starts.
    let (status, body) = http(
        "POST",
        &format!("{endpoint}/lambda-url/replay-api/v1/pipelines/{PIPELINE}/replay"),
        Some(
            &json!({"from_offset": "earliest", "target_consumer_group": "g",
                     "parallel_consumers": 1, "target": t1}),
        ),
    );
    assert_eq!(status, 409, "{body}");
    let (status, body) = http(
        "POST",
        &format!("{endpoint}/lambda-url/replay-api/v1/pipelines/{PIPELINE}/replay"),
        Some(
            &json!({"from_offset": "earliest", "target_consumer_group": "g",
                     "parallel_consumers": 0}),
        ),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("parallel_consumers")),
        "{body}"
    );
}

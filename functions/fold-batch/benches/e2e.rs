//! fold-batch end to end: ESM payload (JSON text) in, committed Iceberg table out, through
//! the handler a Lambda container runs (`FoldBatch::handle`, `refold::engine` inside).
//!
//! Driven by `scripts/bench.sh` (which also runs the Python way on the same payloads):
//!
//!   e2e load  DIR KEYS          a table of KEYS keys in DIR (one `OrderPlaced` per key, in
//!                               loads of 100,000 events: the payload generator's rule)
//!   e2e run   DIR PAYLOAD...    one warm container: opens the table, handles each payload
//!
//! `run` prints one JSON line per payload: {"events", "ms" (wall), "cpu_ms" (user + system
//! of this process), "peak_rss_kb" (VmHWM so far)}. The first payload also pays the
//! container's first lookup (a cold start of the table); `bench.sh` reports it apart.
//! Environment: REFOLD_WAREHOUSE (default DIR/warehouse; `s3://...` with REFOLD_S3_ENDPOINT
//! and the AWS variables for local S3), REFOLD_CATALOG_URI (default: the embedded
//! catalog in the warehouse folder; set it for S3).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use fold_batch::esm::EsmEvent;
use fold_batch::handler::FoldBatch;
use refold::engine::BatchProcessor;
use refold::record::SourceRecord;

const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const TOPIC: &str = "domain.orders.events";
const LOAD_EVENTS: u64 = 100_000;

fn order_id(i: u64) -> String {
    format!("order-{i:09}")
}

/// The `OrderPlaced` envelope `bench/py/esm_payloads.py` writes for key `i` at offset `n`.
fn placed(i: u64, n: u64) -> Vec<u8> {
    let amount = 5.0 + (i % 89_500) as f64 / 100.0;
    serde_json::json!({
        "event_id": format!("evt-{i}-{n}"),
        "event_type": "OrderPlaced",
        "entity_type": "Order",
        "entity_id": order_id(i),
        "tenant_id": TENANTS[(i % 4) as usize],
        "timestamp": "2026-02-01T08:00:00Z",
        "version": 1,
        "data": {"order_id": order_id(i), "customer_id": format!("cust-{:04}", i % 400),
                 "amount": (amount * 100.0).round() / 100.0, "currency": "EUR"},
        "metadata": {"source": "order-service", "correlation_id": format!("req-{n:010x}")},
    })
    .to_string()
    .into_bytes()
}

fn set_env(dir: &Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let defaults = [
        (
            "REFOLD_PIPELINE",
            root.join("pipelines/order-events-pipeline.yaml")
                .display()
                .to_string(),
        ),
        ("KAFKA_CONNECTION", "localhost:9092".to_owned()),
        (
            "REFOLD_WAREHOUSE",
            dir.join("warehouse").display().to_string(),
        ),
        (
            "REFOLD_DEAD_LETTER",
            dir.join("dead-letters").display().to_string(),
        ),
    ];
    for (k, v) in defaults {
        if std::env::var_os(k).is_none() {
            // SAFETY: single-threaded here, before the runtime starts its threads.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(k, v)
            };
        }
    }
}

async fn load(dir: &Path, keys: u64) {
    let p = BatchProcessor::from_env().await.unwrap();
    let t0 = Instant::now();
    let mut i = 0;
    while i < keys {
        let end = (i + LOAD_EVENTS).min(keys);
        let records = (i..end)
            .map(|k| SourceRecord {
                topic: TOPIC.to_owned(),
                partition: 0,
                offset: k as i64,
                timestamp_ms: Some(1_769_932_800_000 + k as i64),
                key: Some(order_id(k).into_bytes()),
                value: placed(k, k),
            })
            .collect();
        let r = p.process(records, Vec::new()).await.unwrap();
        assert_eq!(r.counts.folded as u64, end - i, "every loading event folds");
        i = end;
    }
    eprintln!(
        "loaded {keys} keys into {} in {:.1} s",
        dir.display(),
        t0.elapsed().as_secs_f64()
    );
}

async fn run(payloads: &[String]) {
    let handler = FoldBatch::new(BatchProcessor::from_env().await.unwrap()).without_metrics();
    for path in payloads {
        let body = std::fs::read(path).unwrap();
        let (t0, c0) = (Instant::now(), cpu_ms());
        // As fold-batch's parse_layer parses the body (ahead of lambda_runtime's own parse).
        let event: EsmEvent = fold_batch::parse_layer::parse_body(&body).unwrap();
        let parse_ms = t0.elapsed().as_secs_f64() * 1e3;
        // As the Lambda runtime does: the body is freed once the event is parsed from it.
        drop(body);
        let events: usize = event.records.values().map(Vec::len).sum();
        let response = handler.handle(event).await.unwrap();
        let (ms, cpu) = (t0.elapsed().as_secs_f64() * 1e3, cpu_ms() - c0);
        assert!(response.batch_item_failures.is_empty());
        println!(
            "{}",
            serde_json::json!({"events": events, "ms": ms, "cpu_ms": cpu, "parse_ms": parse_ms,
                               "peak_rss_kb": peak_rss_kb()})
        );
    }
}

/// CPU time (user + system) of this process so far, in ms.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0 // USER_HZ = 100 on Linux
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` adds `--bench`; every argument of ours is positional.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some((mode, rest)) = args.split_first() else {
        eprintln!("usage: e2e load DIR KEYS | e2e run DIR PAYLOAD... (see scripts/bench.sh)");
        return;
    };
    let dir = PathBuf::from(rest.first().expect("DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    set_env(&dir);
    if std::env::var_os("REFOLD_BENCH_TRACE").is_some() {
        // Each step's time from refold's debug logs (RUST_LOG=refold=debug), on stderr.
        lambda_runtime::tracing::init_default_subscriber();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    match mode.as_str() {
        "load" => rt.block_on(load(&dir, rest[1].parse().expect("KEYS"))),
        "run" => rt.block_on(run(&rest[1..])),
        other => panic!("unknown mode {other}"),
    }
}

//! Helpers shared by fold-batch's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lambda_events::event::kafka::KafkaEvent;
use refold::batch::{CompiledPipeline, fold_in_memory};
use refold::record::from_jsonl;
use refold::table::StateRow;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn seed_pipeline_path() -> PathBuf {
    repo().join("pipelines/order-events-pipeline.yaml")
}

pub fn orders_jsonl() -> Vec<u8> {
    std::fs::read(repo().join("events/orders.jsonl")).unwrap()
}

pub fn esm_payload_path() -> PathBuf {
    repo().join("events/esm/orders-batch.json")
}

pub fn esm_payload() -> KafkaEvent {
    serde_json::from_slice(&std::fs::read(esm_payload_path()).unwrap()).unwrap()
}

pub fn compile(yaml: &str) -> CompiledPipeline {
    let loaded = refold::pipeline::parse(yaml, "test.yaml", &|_| None);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

/// The seed pipeline reads `${KAFKA_CONNECTION}`: tests give it a local value.
pub fn compile_path(path: &Path) -> CompiledPipeline {
    let text = std::fs::read_to_string(path).unwrap();
    let env = |k: &str| {
        if k == "KAFKA_CONNECTION" {
            Some("127.0.0.1:9092".to_owned())
        } else {
            std::env::var(k).ok()
        }
    };
    let loaded = refold::pipeline::parse(&text, &path.display().to_string(), &env);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

/// What a row must be whatever partition/offset it came from.
pub type Comparable = BTreeMap<(String, String), (serde_json::Value, i64, String)>;

pub fn comparable<'a>(rows: impl IntoIterator<Item = &'a StateRow>) -> Comparable {
    rows.into_iter()
        .map(|r| {
            (
                (r.tenant_id.clone(), r.key.clone()),
                (
                    serde_json::Value::Object(r.state.clone()),
                    r.events_folded,
                    r.last_event_id.clone(),
                ),
            )
        })
        .collect()
}

/// The reference: the whole file folded in memory, as `refold fold` does.
pub fn reference(cp: &CompiledPipeline, jsonl: &[u8]) -> Comparable {
    let records = from_jsonl(jsonl, "domain.orders.events");
    let view = fold_in_memory(cp, &records, 100_000).unwrap();
    comparable(view.rows.values())
}

/// POSTs `body` to a URL with curl; (HTTP status, response body).
pub fn http_post(url: &str, body: &Path) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--max-time",
            "300",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .args(["-w", "\n%{http_code}"])
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// A processor on a fresh local warehouse under `dir`, dead letters in `dir/dead-letters`.
pub async fn processor(
    dir: &Path,
    cp: CompiledPipeline,
) -> (
    fold_batch::process::BatchProcessor,
    std::sync::Arc<refold::dead_letter::LocalDeadLetters>,
) {
    let dl = std::sync::Arc::new(refold::dead_letter::LocalDeadLetters::new(
        dir.join("dead-letters"),
    ));
    let catalog = refold::table::CatalogConfig::embedded(&dir.join("warehouse")).unwrap();
    let p = fold_batch::process::BatchProcessor::open(cp, catalog, dl.clone())
        .await
        .unwrap();
    (p, dl)
}

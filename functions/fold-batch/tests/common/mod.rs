//! Helpers shared by fold-batch's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

pub mod curl;
pub mod oracle;

use fold_batch::esm::EsmEvent;
use refold::batch::CompiledPipeline;
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

pub fn esm_payload() -> EsmEvent {
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

/// What a row must be whatever partition/offset it came from (numbers in canonical form).
pub type Comparable = oracle::Rows;

pub fn comparable<'a>(rows: impl IntoIterator<Item = &'a StateRow>) -> Comparable {
    rows.into_iter()
        .map(|r| {
            (
                (r.tenant_id.clone(), r.key.clone()),
                (
                    oracle::normalize(&r.state.to_value()),
                    r.events_folded,
                    r.last_event_id.clone(),
                ),
            )
        })
        .collect()
}

/// The reference: the seed pipeline's fold run by CPython over `events/orders.jsonl`
/// (`tests/py/seed_fold.py`, no refold code); fails when Python or the script is missing.
pub fn seed_oracle() -> oracle::Oracle {
    oracle::run(
        &repo(),
        &seed_pipeline_path(),
        &repo().join("events/orders.jsonl"),
    )
}

/// Asserts that refold's dead letters other than `bad_base64` (records the trigger could
/// not even decode, which a JSONL file cannot hold) are exactly the lines of
/// `events/orders.jsonl` the oracle rejected, byte for byte.
pub fn assert_dead_letters_match_oracle(
    dead: &[refold::dead_letter::DeadLetter],
    want: &oracle::Oracle,
    what: &str,
) {
    let mut got: Vec<Vec<u8>> = dead
        .iter()
        .filter(|d| d.kind != refold::dead_letter::DeadLetterKind::BadBase64)
        .map(|d| d.raw.clone())
        .collect();
    got.sort();
    let expected = want.rejected_values(&repo().join("events/orders.jsonl"));
    assert!(
        got == expected,
        "{what}: dead letters are not the oracle's rejected lines: refold {} ({:?}), oracle {} \
         (lines {:?})",
        got.len(),
        dead.iter().map(|d| (d.kind, &d.reason)).collect::<Vec<_>>(),
        expected.len(),
        want.rejected_lines
    );
}

/// Asserts that refold's rows are the oracle's (keys, state, events_folded, last_event_id).
pub fn assert_matches_oracle<'a>(
    rows: impl IntoIterator<Item = &'a StateRow>,
    want: &oracle::Oracle,
    what: &str,
) {
    oracle::assert_rows_eq(&comparable(rows), &want.rows, what);
}

/// A processor on a fresh local warehouse under `dir`, dead letters in `dir/dead-letters`.
pub async fn processor(
    dir: &Path,
    cp: CompiledPipeline,
) -> (
    refold::engine::BatchProcessor,
    std::sync::Arc<refold::dead_letter::LocalDeadLetters>,
) {
    let dl = std::sync::Arc::new(refold::dead_letter::LocalDeadLetters::new(
        dir.join("dead-letters"),
    ));
    let catalog = refold::table::CatalogConfig::embedded(&dir.join("warehouse")).unwrap();
    let p = refold::engine::BatchProcessor::open(cp, catalog, dl.clone())
        .await
        .unwrap();
    (p, dl)
}

//! `refold::history`: one entity's state event by event, from a checkpoint of the state
//! table and the archived tail, or from the first archived event; each step against the
//! CPython fold (`tests/py/seed_fold.py`) of that entity's events up to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use refold::batch::{CompiledPipeline, KeyCheck};
use refold::dead_letter::LocalDeadLetters;
use refold::engine::BatchProcessor;
use refold::history::{HistoryQuery, Start, rebuild};
use refold::record::{SourceRecord, from_jsonl};
use refold::table::CatalogConfig;

#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

const PIPELINE: &str = "pipelines/order-events-pipeline.yaml";
const EVENTS: &str = "events/orders.jsonl";
/// Lines folded before the checkpoint.
const SPLIT: usize = 2400;

fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn pipeline() -> CompiledPipeline {
    let text = std::fs::read_to_string(root().join(PIPELINE)).unwrap();
    let loaded = refold::pipeline::parse(&text, PIPELINE, &|_| Some("localhost:9092".into()));
    let cp = CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap();
    cp.with_key_check(KeyCheck::Off)
}

/// The file's lines by key (order_id, else entity_id): (line index, line, timestamp), in
/// file order, of lines that are JSON objects.
fn lines_by_key(text: &str) -> BTreeMap<String, Vec<(usize, String, String)>> {
    let mut out: BTreeMap<String, Vec<(usize, String, String)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let key = v["data"]["order_id"].as_str().or(v["entity_id"].as_str());
        if let (Some(k), Some(ts)) = (key, v["timestamp"].as_str()) {
            out.entry(k.to_owned())
                .or_default()
                .push((i, line.to_owned(), ts.to_owned()));
        }
    }
    out
}

/// The CPython fold's state of `key` over `lines` (None: no row).
fn oracle_state(dir: &Path, key: &str, lines: &[&str]) -> Option<serde_json::Value> {
    let file = dir.join("prefix.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let o = oracle::run(&root(), &root().join(PIPELINE), &file);
    o.rows
        .iter()
        .find(|((_, k), _)| k == key)
        .map(|(_, (state, _, _))| state.clone())
}

fn norm(s: Option<&refold::fold::State>) -> Option<serde_json::Value> {
    s.map(|m| oracle::normalize(&m.to_value()))
}

async fn fold_in_batches(p: &BatchProcessor, records: &[SourceRecord]) {
    for chunk in records.chunks(1000) {
        p.process(chunk.to_vec(), vec![]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_from_a_checkpoint_and_from_the_start_equals_the_cpython_fold() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join(EVENTS)).unwrap();
    let records = from_jsonl(text.as_bytes(), "domain.orders.events");
    let split = records
        .iter()
        .position(|r| r.offset >= SPLIT as i64)
        .unwrap();
    let dl = Arc::new(LocalDeadLetters::new(dir.path().join("dl")));
    let catalog = CatalogConfig::embedded(&dir.path().join("wh")).unwrap();
    let p = BatchProcessor::open(pipeline(), catalog, dl).await.unwrap();
    fold_in_batches(&p, &records[..split]).await;
    let taken = p
        .table()
        .take_checkpoint("checkpoint-20261202T000000Z", 24)
        .await
        .unwrap();
    fold_in_batches(&p, &records[split..]).await;

    // Keys with events on both sides of the checkpoint.
    let by_key = lines_by_key(&text);
    let straddling: Vec<_> = by_key
        .iter()
        .filter(|(_, ls)| {
            ls.first().is_some_and(|l| l.0 < SPLIT) && ls.last().is_some_and(|l| l.0 >= SPLIT)
        })
        .take(3)
        .collect();
    assert_eq!(straddling.len(), 3, "the stream has keys across the split");
    let cp = pipeline();
    let archive = p.archive().unwrap();
    for (key, lines) in straddling {
        let q = HistoryQuery {
            key,
            ..Default::default()
        };
        let h = rebuild(&cp, Some(p.table()), archive, &q).await.unwrap();
        assert!(
            matches!(&h.start, Start::Checkpoint { snapshot_id, .. } if *snapshot_id == taken.snapshot_id),
            "{key}: {:?}",
            h.start
        );
        let tail: Vec<_> = lines.iter().filter(|l| l.0 >= SPLIT).collect();
        assert!(!h.steps.is_empty(), "{key}: a tail past the checkpoint");
        for step in &h.steps {
            let upto: Vec<&str> = lines
                .iter()
                .filter(|l| l.0 as i64 <= step.event.kafka_offset)
                .map(|l| l.1.as_str())
                .collect();
            assert!(tail.iter().any(|l| l.0 as i64 == step.event.kafka_offset));
            assert_eq!(
                norm(step.state.as_ref()),
                oracle_state(dir.path(), key, &upto),
                "{key} after offset {}",
                step.event.kafka_offset
            );
        }

        // From the start, as of the second event's time: the fold of the events dated
        // at or before it (the oracle gets just those lines).
        let t = &lines[1].2;
        let as_of_us = refold::envelope::parse_rfc3339_us(t).unwrap();
        let q = HistoryQuery {
            key,
            as_of_us: Some(as_of_us),
            from_start: true,
            ..Default::default()
        };
        let h = rebuild(&cp, Some(p.table()), archive, &q).await.unwrap();
        assert_eq!(h.start, Start::FirstEvent);
        let dated: Vec<&str> = lines
            .iter()
            .filter(|l| refold::envelope::parse_rfc3339_us(&l.2).is_ok_and(|u| u <= as_of_us))
            .map(|l| l.1.as_str())
            .collect();
        assert_eq!(
            norm(h.state()),
            oracle_state(dir.path(), key, &dated),
            "{key} as of {t}"
        );
    }

    // An unknown key is a clear error naming it.
    let q = HistoryQuery {
        key: "order-nope",
        ..Default::default()
    };
    let err = rebuild(&cp, Some(p.table()), archive, &q)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no archived event has key `order-nope`"),
        "{err}"
    );
}

//! The batch engine (`refold::engine::BatchProcessor`) at the edges of exactly once: dead
//! letters written before the commit (a store error or a crash in between loses nothing and
//! doubles nothing), `on_error: fail` refusing a batch that starts past the committed
//! offset, and a repartitioned topic refused. Expectations are written by hand.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use refold::batch::CompiledPipeline;
use refold::dead_letter::{DeadLetter, DeadLetterKind, DeadLetterStore, LocalDeadLetters};
use refold::engine::BatchProcessor;
use refold::error::{Error, ErrorKind, Result};
use refold::record::SourceRecord;
use refold::table::{CatalogConfig, FaultPoint};
use serde_json::json;

const TOPIC: &str = "domain.orders.events";

fn pipeline(policy: &str) -> CompiledPipeline {
    pipeline_with(policy, "")
}

/// The test pipeline, `source_extra` (indented YAML lines) added to its source.
fn pipeline_with(policy: &str, source_extra: &str) -> CompiledPipeline {
    let yaml = format!(
        r#"
metadata:
  name: engine-test
sources:
  order_events:
    type: kafka
    connection: localhost:9092
    topic: {TOPIC}
    consumer_group: engine-test
    format: json
    event_types: [OrderPlaced, OrderConfirmed]
{source_extra}
transformations:
  - name: build_order_state
    type: event_fold
    input: order_events
    key_field: order_id
    on_error: {policy}
    fold_function: |
      def fold(state, event):
          if event.type == "OrderPlaced":
              return {{"status": "placed", "amount": event.amount}}
          return {{**state, "status": "confirmed"}}
sinks:
  order_view:
    type: iceberg
    table: test.orders_state
    mode: merge_on_key
    merge_keys: [order_id]
"#
    );
    let loaded = refold::pipeline::parse(&yaml, "engine-test.yaml", &|_| None);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

fn record(offset: i64, key: &str, value: &str) -> SourceRecord {
    SourceRecord {
        topic: TOPIC.into(),
        partition: 0,
        offset,
        timestamp_ms: Some(1_770_000_000_000 + offset),
        key: Some(key.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
    }
}

fn event(offset: i64, ty: &str, order: &str) -> SourceRecord {
    let v = json!({
        "event_id": format!("evt-{offset}"), "event_type": ty, "entity_type": "Order",
        "entity_id": order, "tenant_id": "t1", "timestamp": "2026-02-01T10:00:00Z",
        "version": 1, "data": {"order_id": order, "amount": 5}, "metadata": {}
    });
    record(offset, order, &v.to_string())
}

/// Offsets 0..5 of partition 0: two orders, a bad JSON line at 1 and 3.
fn batch() -> Vec<SourceRecord> {
    vec![
        event(0, "OrderPlaced", "o1"),
        record(1, "o1", "{not json"),
        event(2, "OrderPlaced", "o2"),
        record(3, "o2", "[1, 2"),
        event(4, "OrderConfirmed", "o1"),
    ]
}

/// A dead-letter store whose first `put` fails, as an S3 5xx or a DLQ timeout would.
struct FailsFirst {
    inner: LocalDeadLetters,
    calls: AtomicUsize,
}

#[async_trait]
impl DeadLetterStore for FailsFirst {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::new(ErrorKind::Io, "injected: dead-letter store 503"));
        }
        self.inner.put(batch).await
    }
}

async fn rows(p: &BatchProcessor) -> BTreeMap<String, serde_json::Value> {
    let rows = p.table().current_rows(None, None).await.unwrap();
    rows.into_iter()
        .map(|r| (r.key, r.state.to_value()))
        .collect()
}

fn want_rows() -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([
        ("o1".into(), json!({"status": "confirmed", "amount": 5})),
        ("o2".into(), json!({"status": "placed", "amount": 5})),
    ])
}

async fn dead_offsets(dl: &LocalDeadLetters) -> Vec<(i64, DeadLetterKind)> {
    let all = dl.read_all().await.unwrap();
    all.iter().map(|d| (d.offset, d.kind)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_store_error_moves_no_offset_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDeadLetters::new(dir.path().join("dead-letters"));
    let store = Arc::new(FailsFirst {
        inner: local.clone(),
        calls: AtomicUsize::new(0),
    });
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let p = BatchProcessor::open(pipeline("dead_letter"), catalog, store)
        .await
        .unwrap();

    let err = p.process(batch(), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("dead-letter store 503"), "{err}");
    assert!(
        p.table().committed_offsets().await.unwrap().is_empty(),
        "no offset moves past dead letters that were not written"
    );

    // The source delivers the batch again: rows and dead letters both land, once.
    let r = p.process(batch(), vec![]).await.unwrap();
    assert_eq!((r.counts.folded, r.counts.dead_lettered), (3, 2));
    assert_eq!(rows(&p).await, want_rows());
    assert_eq!(
        dead_offsets(&local).await,
        vec![(1, DeadLetterKind::BadJson), (3, DeadLetterKind::BadJson)]
    );
    assert_eq!(
        p.table().committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 5)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_dead_letters_and_commit_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDeadLetters::new(dir.path().join("dead-letters"));
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let p = BatchProcessor::open(pipeline("dead_letter"), catalog, Arc::new(local.clone()))
        .await
        .unwrap();

    // Dies after the dead letters and the data files are written, before the commit.
    p.table().inject_fault(FaultPoint::AfterFilesWritten);
    let err = p.process(batch(), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert!(p.table().committed_offsets().await.unwrap().is_empty());
    assert_eq!(
        dead_offsets(&local).await.len(),
        2,
        "written before the commit"
    );

    // Redelivered: the same dead-letter object is written again, not a second one.
    let r = p.process(batch(), vec![]).await.unwrap();
    assert_eq!(r.counts.dead_lettered, 2);
    assert_eq!(
        dead_offsets(&local).await,
        vec![(1, DeadLetterKind::BadJson), (3, DeadLetterKind::BadJson)]
    );
    assert_eq!(rows(&p).await, want_rows());

    // And once more after the commit: everything is already applied, nothing is written.
    let r = p.process(batch(), vec![]).await.unwrap();
    assert_eq!(r.counts.already_applied, 5);
    assert_eq!(dead_offsets(&local).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_policy_refuses_a_batch_that_starts_past_the_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDeadLetters::new(dir.path().join("dead-letters"));
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let p = BatchProcessor::open(pipeline("fail"), catalog, Arc::new(local.clone()))
        .await
        .unwrap();

    // Folds offset 0, fails at the bad record at 1: committed offset 1.
    let r = p.process(batch(), vec![]).await.unwrap();
    assert_eq!(r.failed_at, BTreeMap::from([(0, 1)]));
    assert_eq!(
        p.table().committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 1)])
    );

    // The source moved on past the failure (no ReportBatchItemFailures): refused, loudly.
    let later = vec![
        event(5, "OrderPlaced", "o3"),
        event(6, "OrderConfirmed", "o3"),
    ];
    let err = p.process(later, vec![]).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("starts at offset 5 but the table's committed offset is 1")
            && msg.contains("offsets 1..4 were never folded"),
        "{msg}"
    );
    assert_eq!(
        p.table().committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 1)]),
        "nothing jumped the gap"
    );
    assert!(local.read_all().await.unwrap().is_empty());
}

/// The topic had 2 partitions when the table was built; a record from partition 2 means it
/// grew (keys moved): the whole batch is refused before anything is written, and a
/// pipeline that now declares 3 does not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repartitioned_topic_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDeadLetters::new(dir.path().join("dead-letters"));
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let two = || pipeline_with("dead_letter", "    partitions: 2");
    let p = BatchProcessor::open(two(), catalog.clone(), Arc::new(local.clone()))
        .await
        .unwrap();
    let props = p.table().properties().await.unwrap();
    assert_eq!(
        props.get("refold.source-partitions").map(String::as_str),
        Some("2")
    );
    p.process(batch(), vec![]).await.unwrap();
    let before = p.table().committed_offsets().await.unwrap();

    let mut moved = event(0, "OrderPlaced", "o9");
    moved.partition = 2;
    let mixed = vec![event(5, "OrderPlaced", "o3"), moved];
    let err = p.process(mixed, vec![]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("partition 2 of topic domain.orders.events, which had 2 partitions")
            && msg.contains("replay"),
        "{msg}"
    );
    assert_eq!(
        p.table().committed_offsets().await.unwrap(),
        before,
        "nothing written"
    );
    assert_eq!(rows(&p).await, want_rows());

    // The same table under a pipeline that declares 3: refused at open, naming both counts.
    let three = pipeline_with("dead_letter", "    partitions: 3");
    let err = match BatchProcessor::open(three, catalog.clone(), Arc::new(local.clone())).await {
        Ok(_) => panic!("opened a table built for 2 partitions with a pipeline declaring 3"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("2 partitions") && err.contains("declares 3"),
        "{err}"
    );
    // No declaration: the recorded count still holds.
    let p = BatchProcessor::open(pipeline("dead_letter"), catalog, Arc::new(local))
        .await
        .unwrap();
    let mut moved = event(0, "OrderPlaced", "o9");
    moved.partition = 5;
    assert!(p.process(vec![moved], vec![]).await.is_err());
}

//! The event archive (`refold::archive`) through the batch engine: every valid envelope
//! once, under redelivery, overlapping batches and a crash between the archive and the
//! state commit; read back by PyIceberg and DuckDB (not by refold). Expectations are
//! written by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refold::batch::CompiledPipeline;
use refold::dead_letter::LocalDeadLetters;
use refold::engine::BatchProcessor;
use refold::record::SourceRecord;
use refold::table::hooks::{HookFn, HookPoint};
use refold::table::{CatalogConfig, FaultPoint};
use serde_json::json;

#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

const TOPIC: &str = "domain.orders.events";
const ARCHIVE: &str = "test.order_events_archive";

fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn pipeline() -> CompiledPipeline {
    pipeline_of_group("archive-test", "orders_state")
}

/// The pipeline under another consumer group and view (same topic, so the same archive).
fn pipeline_of_group(group: &str, view: &str) -> CompiledPipeline {
    let yaml = format!(
        r#"
metadata:
  name: archive-test
sources:
  order_events:
    type: kafka
    connection: localhost:9092
    topic: {TOPIC}
    consumer_group: {group}
    event_types: [OrderPlaced, OrderConfirmed]
transformations:
  - name: build_order_state
    type: event_fold
    input: order_events
    key_field: order_id
    fold_function: |
      def fold(state, event):
          if event.type == "OrderPlaced":
              return {{"status": "placed", "amount": event.amount}}
          return {{**state, "status": "confirmed"}}
sinks:
  order_view:
    type: iceberg
    table: test.{view}
    mode: merge_on_key
    merge_keys: [order_id]
"#
    );
    let loaded = refold::pipeline::parse(&yaml, "archive-test.yaml", &|_| None);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

fn record(partition: i32, offset: i64, key: &str, value: String) -> SourceRecord {
    SourceRecord {
        topic: TOPIC.into(),
        partition,
        offset,
        timestamp_ms: Some(1_770_000_000_000 + offset),
        key: Some(key.as_bytes().to_vec()),
        value: value.into_bytes(),
    }
}

/// A valid envelope at (partition, offset); `OrderShipped` is archived but not folded.
fn event(partition: i32, offset: i64, ty: &str, order: &str) -> SourceRecord {
    let v = json!({
        "event_id": format!("evt-{partition}-{offset}"), "event_type": ty,
        "entity_type": "Order", "entity_id": order, "tenant_id": "t1",
        "timestamp": format!("2026-02-0{}T10:00:00Z", 1 + offset % 3),
        "version": 1, "data": {"order_id": order, "amount": offset}, "metadata": {}
    });
    record(partition, offset, order, v.to_string())
}

/// Offsets `from..to` of partition `p`: every fifth one is not JSON, every seventh an
/// `OrderShipped` (filtered by the pipeline, archived all the same).
fn batch(p: i32, from: i64, to: i64) -> Vec<SourceRecord> {
    (from..to)
        .map(|o| match (o % 5, o % 7) {
            (4, _) => record(p, o, "x", "{not json".into()),
            (_, 6) => event(p, o, "OrderShipped", &format!("o{}", o % 4)),
            _ if o % 4 == 0 => event(p, o, "OrderPlaced", &format!("o{}", o % 4)),
            _ => event(p, o, "OrderConfirmed", &format!("o{}", o % 4)),
        })
        .collect()
}

/// The test pipeline's batch engine on an embedded catalog in `dir`.
async fn open(dir: &Path) -> BatchProcessor {
    let dl = Arc::new(LocalDeadLetters::new(dir.join("dead-letters")));
    let catalog = CatalogConfig::embedded(dir).unwrap();
    BatchProcessor::open(pipeline(), catalog, dl).await.unwrap()
}

/// The (partition, offset, event_id) of every valid envelope of `p`'s `from..to`.
fn want(p: i32, from: i64, to: i64) -> Vec<(i64, i64, String)> {
    (from..to)
        .filter(|o| o % 5 != 4)
        .map(|o| (i64::from(p), o, format!("evt-{p}-{o}")))
        .collect()
}

/// PyIceberg's rows of the archive: (partition, offset, event_id), duplicates kept.
fn pyiceberg_rows(warehouse: &Path) -> Vec<(i64, i64, String)> {
    let out = Command::new(oracle::python())
        .arg(root().join("tests/py/archive_read.py"))
        .arg("--catalog")
        .arg(warehouse.join("catalog.db"))
        .args(["--table", ARCHIVE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "archive_read.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
                v["event_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// DuckDB's count of rows and of distinct (partition, offset) pairs.
fn duckdb_counts(warehouse: &Path) -> (i64, i64) {
    let out = Command::new(oracle::python())
        .arg(root().join("tests/py/duckdb_read.py"))
        .arg("--catalog")
        .arg(warehouse.join("catalog.db"))
        .args(["--table", ARCHIVE, "--sql"])
        .arg("SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM state")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb_read.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let row: Vec<i64> = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    (row[0], row[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_holds_each_valid_envelope_once_under_redelivery_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    assert!(p.archive().is_some(), "archived by default");

    let r = p.process(batch(0, 0, 20), vec![]).await.unwrap();
    assert_eq!(r.archived, want(0, 0, 20).len());
    // Redelivered whole: nothing archived twice.
    let r = p.process(batch(0, 0, 20), vec![]).await.unwrap();
    assert_eq!(r.archived, 0);
    // Overlapping: only the new suffix, and another partition on its own offsets.
    let mut overlap = batch(0, 12, 30);
    overlap.extend(batch(1, 0, 10));
    let r = p.process(overlap, vec![]).await.unwrap();
    assert_eq!(r.archived, want(0, 20, 30).len() + want(1, 0, 10).len());
    // A crash after the archive's commit, before the state's: redelivery archives nothing
    // new, and the state lands.
    p.table().inject_fault(FaultPoint::AfterFilesWritten);
    let err = p.process(batch(0, 30, 40), vec![]).await.unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    let r = p.process(batch(0, 30, 40), vec![]).await.unwrap();
    assert_eq!(r.archived, 0);
    assert!(
        r.counts.folded > 0,
        "the state commit happens on redelivery"
    );

    let mut expected = want(0, 0, 40);
    expected.extend(want(1, 0, 10));
    expected.sort();
    assert_eq!(
        pyiceberg_rows(dir.path()),
        expected,
        "PyIceberg: each offset once"
    );
    let n = i64::try_from(expected.len()).unwrap();
    assert_eq!(
        duckdb_counts(dir.path()),
        (n, n),
        "DuckDB: rows and distinct offsets"
    );
    let archive = p.archive().unwrap();
    assert_eq!(
        archive.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 40), (1, 10)])
    );
    assert_eq!(
        archive.first_offsets().await.unwrap(),
        BTreeMap::from([(0, 0), (1, 0)])
    );
    // Replay reads a range back as the records Kafka held (same values as decoded).
    let back = archive.read_range(0, 5, 9).await.unwrap();
    let offsets: Vec<i64> = back.iter().map(|e| e.kafka_offset).collect();
    assert_eq!(offsets, vec![5, 6, 7, 8]);
    let original = batch(0, 5, 9);
    for (e, rec) in back.iter().zip(&original) {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_slice(&e.to_record().value).unwrap(),
            serde_json::from_slice(&rec.value).unwrap(),
        );
        assert_eq!(a, b, "offset {}", e.kafka_offset);
        assert_eq!(e.to_record().key, rec.key);
    }
}

/// The archive's append runs beside the state merge, yet the state commit waits for the
/// archive's. Forced: the archive's commit is held until the state merge reaches its own
/// commit (or 3 s pass); a state commit that did not wait would get there first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_commit_waits_for_the_archive_commit() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    let log = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let state_at_commit = Arc::new(tokio::sync::Notify::new());
    let (l, reached) = (log.clone(), state_at_commit.clone());
    let hold_archive: HookFn = Arc::new(move |_, _| {
        let (l, reached) = (l.clone(), reached.clone());
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(3), reached.notified()).await;
            l.lock().unwrap().push("archive commit");
        })
    });
    p.archive()
        .unwrap()
        .set_hook(HookPoint::ArchiveBeforeCommit, Some(hold_archive));
    let (l, reached) = (log.clone(), state_at_commit.clone());
    let state: HookFn = Arc::new(move |_, _| {
        let (l, reached) = (l.clone(), reached.clone());
        Box::pin(async move {
            l.lock().unwrap().push("state commit");
            reached.notify_one();
        })
    });
    p.table()
        .set_hook(HookPoint::MergeBeforeCommit, Some(state));

    let r = p.process(batch(0, 0, 20), vec![]).await.unwrap();
    assert_eq!(r.archived, want(0, 0, 20).len());
    assert_eq!(*log.lock().unwrap(), ["archive commit", "state commit"]);
    let archive = p.archive().unwrap();
    assert_eq!(
        archive.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 20)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_false_keeps_no_archive() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = include_str!("../../pipelines/order-events-pipeline.yaml").replace(
        "    start_offset: earliest\n",
        "    start_offset: earliest\n    archive: false\n",
    );
    let loaded = refold::pipeline::parse(&yaml, "p.yaml", &|_| Some("localhost:9092".into()));
    let cp = CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap();
    let dl = Arc::new(LocalDeadLetters::new(dir.path().join("dl")));
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let p = BatchProcessor::open(cp, catalog, dl).await.unwrap();
    assert!(p.archive().is_none());
    let r = p.process(batch(0, 0, 3), vec![]).await.unwrap();
    assert_eq!(r.archived, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_files_and_keeps_each_event_once() {
    use refold::archive::ArchiveCompactionPolicy;
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    // Twelve small batches of two Kafka partitions: a file per (day, entity type) and
    // partition each.
    for b in 0..12 {
        let mut records = batch(0, b * 10, b * 10 + 10);
        records.extend(batch(1, b * 10 + 3, b * 10 + 13));
        p.process(records, vec![]).await.unwrap();
    }
    let archive = p.archive().unwrap();
    let files_before = archive_files(archive).await;
    assert!(files_before >= 12 * 3 * 2, "{files_before} files");
    let policy = ArchiveCompactionPolicy {
        min_small_files: 5,
        small_file_bytes: 64 * 1024 * 1024,
        max_rows: 1_000_000,
    };
    let c = archive.compact(&policy).await.unwrap();
    assert_eq!(c.files_removed, files_before, "{c:?}");
    assert_eq!(
        c.files_added,
        2 * c.partitions,
        "a file per Kafka partition: {c:?}"
    );
    assert_eq!(archive_files(archive).await, c.files_added);
    assert_eq!(
        archive.first_offsets().await.unwrap(),
        BTreeMap::from([(0, 0), (1, 3)]),
        "from the rewritten files' bounds"
    );
    // Nothing more to do; the offsets survive the rewrite; appends go on exactly once.
    assert_eq!(archive.compact(&policy).await.unwrap().partitions, 0);
    assert!(
        archive.expire_snapshots(1).await.unwrap() > 10,
        "appends and rewrites expired"
    );
    assert_eq!(
        archive.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 120), (1, 123)])
    );
    p.process(batch(0, 110, 130), vec![]).await.unwrap();
    let mut expected = want(0, 0, 130);
    expected.extend(want(1, 3, 123));
    expected.sort();
    assert_eq!(
        pyiceberg_rows(dir.path()),
        expected,
        "PyIceberg after compaction"
    );
}

async fn archive_files(archive: &refold::archive::Archive) -> usize {
    let t = archive.iceberg_table().await.unwrap();
    let scan = t.scan().build().unwrap();
    use futures::TryStreamExt;
    let tasks: Vec<_> = scan
        .plan_files()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    tasks.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_group_appends_nothing_already_archived() {
    let dir = tempfile::tempdir().unwrap();
    let dl = Arc::new(LocalDeadLetters::new(dir.path().join("dead-letters")));
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let v1 = BatchProcessor::open(pipeline(), catalog.clone(), dl.clone())
        .await
        .unwrap();
    v1.process(batch(0, 0, 20), vec![]).await.unwrap();
    // A re-projection: same topic and archive, a new group (and a new view).
    let v2 = BatchProcessor::open(
        pipeline_of_group("archive-test-v2", "orders_state_v2"),
        catalog,
        dl,
    )
    .await
    .unwrap();
    let r = v2.process(batch(0, 0, 30), vec![]).await.unwrap();
    assert_eq!(r.archived, want(0, 20, 30).len());
    assert_eq!(pyiceberg_rows(dir.path()), want(0, 0, 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archived_key_is_the_key_after_upcasting() {
    let dir = tempfile::tempdir().unwrap();
    // v1 called the key `orderId`; the upcaster renames it.
    let yaml = format!(
        r#"
metadata:
  name: archive-upcast
sources:
  order_events:
    type: kafka
    connection: localhost:9092
    topic: {TOPIC}
    consumer_group: archive-upcast
transformations:
  - name: build_order_state
    type: event_fold
    input: order_events
    key_field: order_id
    upcasters:
      - event_type: OrderPlaced
        from_version: 1
        function: |
          def upcast(event):
              return {{"order_id": event.orderId, "amount": event.amount}}
    fold_function: |
      def fold(state, event):
          return {{"amount": event.amount}}
sinks:
  order_view:
    type: iceberg
    table: test.orders_state
    mode: merge_on_key
    merge_keys: [order_id]
"#
    );
    let loaded = refold::pipeline::parse(&yaml, "p.yaml", &|_| None);
    let cp = CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap();
    let v = json!({
        "event_id": "e1", "event_type": "OrderPlaced", "entity_type": "Order",
        "entity_id": "entity-9", "tenant_id": "t1", "timestamp": "2026-02-01T10:00:00Z",
        "version": 1, "data": {"orderId": "o7", "amount": 3}
    });
    let dl = Arc::new(LocalDeadLetters::new(dir.path().join("dl")));
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    let p = BatchProcessor::open(cp, catalog, dl).await.unwrap();
    let r = p
        .process(vec![record(0, 0, "o7", v.to_string())], vec![])
        .await
        .unwrap();
    assert_eq!((r.counts.folded, r.archived), (1, 1), "{r:?}");
    let archived = p.archive().unwrap().read_range(0, 0, 1).await.unwrap();
    assert_eq!(archived[0].entity_key.as_deref(), Some("o7"));
    // As produced: the archive keeps v1's data.
    assert!(archived[0].data.contains("orderId"), "{}", archived[0].data);
    let rows = p.table().current_rows(None, None).await.unwrap();
    assert_eq!(rows[0].key, "o7");
}

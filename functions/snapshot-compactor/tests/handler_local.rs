//! The handler in-process on the sample schedule event (`events/eventbridge/schedule.json`),
//! embedded default (a local warehouse, SQLite catalog): the seed pipeline's table, built by
//! refold's batch engine from `events/orders.jsonl` in many small batches, is compacted,
//! checkpointed at the event's time with the committed offsets, and reads the same rows; the
//! same event delivered again changes nothing.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use refold::batch::{CompiledPipeline, KeyCheck};
use refold::compactor::StepStatus;
use refold::compactor::policy::{CheckpointDecision, checkpoint_name};
use refold::dead_letter::MemoryDeadLetters;
use refold::engine::BatchProcessor;
use refold::table::CatalogConfig;
use serde_json::Value;
use snapshot_compactor::handler::SnapshotCompactor;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seed() -> CompiledPipeline {
    let path = root().join("pipelines/order-events-pipeline.yaml");
    // A day of the stream gets at most 4 archive files in 25 batches: merge from 3.
    let text = std::fs::read_to_string(&path).unwrap() + "compaction: {small_files: 3}\n";
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| "localhost:9092".to_string());
    let loaded = refold::pipeline::parse(&text, "seed", &env);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

fn sample_event() -> EventBridgeEvent<Value> {
    let text = std::fs::read_to_string(root().join("events/eventbridge/schedule.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_pass_compacts_checkpoints_and_keeps_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = CatalogConfig::embedded(dir.path()).unwrap();
    // The order stream as one partition, in 25 batches (each merge adds files).
    let cp = seed().with_key_check(KeyCheck::Off);
    let topic = cp.pipeline.sources.values().next().unwrap().topic.clone();
    let text = std::fs::read(root().join("events/orders.jsonl")).unwrap();
    let records = refold::record::from_jsonl(&text, &topic);
    let p = BatchProcessor::open(cp, catalog.clone(), Arc::new(MemoryDeadLetters::new()))
        .await
        .unwrap();
    for chunk in records.chunks(records.len().div_ceil(25)) {
        p.process(chunk.to_vec(), vec![]).await.unwrap();
    }
    let rows = p.table().current_rows(None, None).await.unwrap();
    let offsets = p.table().committed_offsets().await.unwrap();
    assert_eq!(offsets, [(0, records.len() as i64)].into_iter().collect());

    let h = SnapshotCompactor::open(seed(), catalog)
        .await
        .unwrap()
        .without_metrics();
    let ev = sample_event();
    let report = h.handle(&ev, None).await.unwrap();
    let at_ms = ev.time.unwrap().timestamp_millis();
    assert_eq!(report.now_ms, at_ms, "the pass runs at the event's time");
    assert!(report.failed_steps().is_empty(), "{report:?}");
    let c = report.compaction.detail.as_ref().unwrap();
    assert_eq!(c.partitions.len(), 1, "{c:?}");
    assert_eq!(c.partitions[0].status, StepStatus::Done);
    assert!(c.partitions[0].delete_files_removed >= 8, "{c:?}");
    let cp = report.checkpoint.detail.as_ref().unwrap();
    assert_eq!(
        cp.decision,
        CheckpointDecision::Take {
            name: checkpoint_name(at_ms)
        }
    );
    let after = report.after.as_ref().unwrap();
    assert_eq!((after.delete_files, after.data_files), (0, 1), "{after:?}");
    assert_eq!(h.table().current_rows(None, None).await.unwrap(), rows);
    let listed = h.table().checkpoints().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].offsets, offsets);
    // The report is what the function answers: JSON with every step.
    let json = serde_json::to_value(&report).unwrap();
    let a = report.archive.detail.as_ref().unwrap();
    assert!(
        a.partitions >= 1 && a.files_removed > a.files_added,
        "{a:?}"
    );
    for step in [
        "compaction",
        "manifests",
        "checkpoint",
        "expiry",
        "orphans",
        "archive",
    ] {
        assert_eq!(json[step]["status"], "done", "{step}: {json}");
    }
    assert_eq!(json["checkpoint"]["detail"]["decision"], "take");
    let emf = report.emf().to_value(0);
    assert_eq!(emf["partitions_compacted"], 1);
    assert_eq!(emf["checkpoints_taken"], 1);

    // EventBridge delivers the same event again: nothing to do.
    let again = h.handle(&ev, None).await.unwrap();
    assert!(matches!(
        again.checkpoint.detail.as_ref().unwrap().decision,
        CheckpointDecision::NotDue { .. }
    ));
    assert!(
        again
            .compaction
            .detail
            .as_ref()
            .unwrap()
            .partitions
            .is_empty()
    );
    assert_eq!(again.manifests.detail.as_ref().unwrap().snapshot_id, None);
    assert_eq!(again.archive.detail.as_ref().unwrap().partitions, 0);
    assert_eq!(h.table().checkpoints().await.unwrap().len(), 1);
    assert_eq!(h.table().current_rows(None, None).await.unwrap(), rows);
}

//! The handler in-process on the committed ESM payload, embedded default (local warehouse,
//! SQLite catalog): the table equals the CPython oracle's fold of the same events
//! (`tests/py/seed_fold.py`), the records it rejects are exactly the dead letters, and a
//! redelivered batch changes nothing.

#![allow(clippy::unwrap_used)]
mod common;

use fold_batch::handler::FoldBatch;
use refold::dead_letter::DeadLetterKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esm_payload_folds_to_the_oracle_and_redelivery_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let want = common::seed_oracle();
    let (p, dl) = common::processor(
        dir.path(),
        common::compile_path(&common::seed_pipeline_path()),
    )
    .await;
    let h = FoldBatch::new(p);
    let ev = common::esm_payload();

    let resp = h.handle(ev.clone()).await.unwrap();
    assert!(
        resp.is_success(),
        "policy dead_letter: no batch item failures"
    );
    let rows = h
        .processor()
        .table()
        .current_rows(None, None)
        .await
        .unwrap();
    common::assert_matches_oracle(&rows, &want, "after the first delivery");

    let dead = dl.read_all().await.unwrap();
    assert_eq!(
        dead.iter()
            .filter(|d| d.kind == DeadLetterKind::BadBase64)
            .count(),
        1
    );
    assert!(dead.iter().any(|d| matches!(
        d.kind,
        DeadLetterKind::BadJson | DeadLetterKind::InvalidEnvelope
    )));
    common::assert_dead_letters_match_oracle(&dead, &want, "after the first delivery");
    let offsets = h.processor().table().committed_offsets().await.unwrap();
    assert_eq!(offsets.len(), 3, "every partition committed: {offsets:?}");

    // The same batch again (the trigger redelivers): nothing changes, nothing is dead-lettered twice.
    let snapshots_before = h
        .processor()
        .table()
        .iceberg_table()
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .count();
    let resp = h.handle(ev).await.unwrap();
    assert!(resp.is_success());
    let rows2 = h
        .processor()
        .table()
        .current_rows(None, None)
        .await
        .unwrap();
    common::assert_matches_oracle(&rows2, &want, "after the redelivery");
    assert_eq!(dl.read_all().await.unwrap().len(), dead.len());
    let snapshots_after = h
        .processor()
        .table()
        .iceberg_table()
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .count();
    assert_eq!(
        snapshots_before, snapshots_after,
        "no new snapshot for an already-applied batch"
    );
}

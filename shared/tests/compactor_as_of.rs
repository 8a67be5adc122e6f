//! The table as it was: `--as-of` a checkpoint is the fold of the stream up to that
//! checkpoint's offsets (the oracle: the sequential fold of those events), through
//! compaction, expiry of every untagged snapshot and orphan removal; `--as-of` a time is the
//! snapshot of that moment while the history is kept, and the newest checkpoint at or before
//! it once expired. PyIceberg reads the tags the same. Needs the PyIceberg venv.
#![allow(clippy::unwrap_used)]

mod compactor_support;
mod table_support;

use std::collections::BTreeMap;

use compactor_support::*;
use refold::compactor::{self, PassOptions};
use refold::table::StateTable;
use refold::table::as_of::AsOf;
use table_support::*;

fn opts(now_ms: i64, force: bool) -> PassOptions {
    PassOptions {
        now_ms,
        force_checkpoint: force,
        deadline: None,
        pipeline: "test".into(),
    }
}

async fn fill(t: &StateTable, s: &mut Stream, rounds: usize) {
    for _ in 0..rounds {
        for p in 0..3 {
            merge(t, &s.batch(p, 15, 25)).await.unwrap();
        }
    }
}

/// Returns once the wall clock has moved on by a few milliseconds: snapshot times and the
/// times the test reads must differ even where the wall clock runs slower than the sleep's.
async fn tick() {
    let start = now_ms();
    while now_ms() < start + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_a_checkpoint_is_the_fold_to_its_offsets_through_compaction_and_expiry() {
    let _ = python();
    let dir = tempfile::tempdir().unwrap();
    let t = StateTable::open_or_create(config(dir.path(), "current_state"))
        .await
        .unwrap();
    let mut pol = policy();
    pol.snapshots.keep_recent_ms = 1;
    let mut s = Stream::new(5);
    let t0 = now_ms();
    let mut checkpoints: Vec<(String, BTreeMap<i32, i64>)> = vec![];
    let mut times: Vec<(i64, BTreeMap<i32, i64>)> = vec![];
    for round in 0..4i64 {
        fill(&t, &mut s, 2).await;
        tick().await;
        times.push((now_ms(), s.offsets()));
        let r = compactor::step_checkpoint(&t, &pol, &opts(t0 + round * HOUR_MS, true))
            .await
            .unwrap();
        checkpoints.push((r.detail.unwrap().taken.unwrap().name, s.offsets()));
        if round == 1 {
            t.compact(None).await.unwrap();
        }
        tick().await;
    }
    fill(&t, &mut s, 1).await;

    // While the history is kept, a time is the snapshot of that moment, exactly.
    for (at, offsets) in &times {
        let r = t.resolve_as_of(&AsOf::TimeMs(*at)).await.unwrap();
        assert!(r.exact && r.via == "snapshot log", "{r:?}");
        assert_eq!(&r.offsets, offsets);
        let rows = by_id(t.rows_at(r.snapshot_id, None, None).await.unwrap());
        assert_eq!(rows, reference(&prefix(&s.events, offsets)));
    }

    // A pass a week later: compaction, manifests, expiry of all but the tags and the current
    // snapshot, orphans.
    // A week rather than just past the grace period: a wall clock stepped back meanwhile
    // must not make the files look younger than the grace period.
    let later = now_ms() + 7 * DAY_MS;
    compactor::step_compaction(&t, &pol, &opts(later, false))
        .await
        .unwrap();
    compactor::step_manifests(&t, &pol).await.unwrap();
    // The pass's clock, not the wall clock: on a machine whose wall clock crawls, every
    // snapshot can fall inside a `keep_recent_ms` window measured from `now_ms()`.
    compactor::step_expiry(&t, &pol, &opts(later, false))
        .await
        .unwrap();
    let o = compactor::step_orphans(&t, &pol, &opts(later, false))
        .await
        .unwrap();
    let od = o.detail.unwrap();
    assert!(od.deleted > 50, "{od:?}");
    let h = t.history().await.unwrap();
    assert_eq!(h.snapshots.len(), 5, "4 tagged + the current one: {h:?}");

    for (name, offsets) in &checkpoints {
        let r = t.resolve_as_of(&AsOf::parse(name).unwrap()).await.unwrap();
        assert_eq!(&r.offsets, offsets, "{name}");
        let want = reference(&prefix(&s.events, offsets));
        assert_eq!(
            by_id(t.rows_at(r.snapshot_id, None, None).await.unwrap()),
            want,
            "{name}"
        );
        pyiceberg_rows(dir.path(), Some(name), &want);
    }
    // Once expired, a time resolves to the newest checkpoint at or before it (not exact).
    for (i, (at, offsets)) in times.iter().enumerate() {
        let r = t.resolve_as_of(&AsOf::TimeMs(*at)).await.unwrap();
        assert_eq!(r.via, format!("checkpoint {}", checkpoints[i].0));
        assert!(!r.exact);
        assert_eq!(&r.offsets, offsets);
    }
    let e = t
        .resolve_as_of(&AsOf::TimeMs(t0 - DAY_MS))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no kept snapshot at or before"),
        "{e}"
    );
    let e = t
        .resolve_as_of(&AsOf::parse("checkpoint-nope").unwrap())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no checkpoint or tag `checkpoint-nope`"),
        "{e}"
    );
    every_engine_reads(&t, dir.path(), &reference(&s.events), "after the pass").await;
}

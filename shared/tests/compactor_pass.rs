//! The snapshot-compactor's pass on a local table: every engine (refold, iceberg-rust,
//! PyIceberg, DuckDB) reads the same rows right after each step; compacted partitions hold
//! no delete file; checkpoints come on their interval and the oldest go beyond the limit;
//! expiry and orphan removal never delete a referenced file, a file younger than the grace
//! period, or the files of a commit in flight. Needs the PyIceberg/DuckDB venv
//! (`REFOLD_PYTHON`, see tests/py/venv.sh); fails, never skips, without it.
#![allow(clippy::unwrap_used)]

mod compactor_support;
mod table_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use compactor_support::*;
use refold::compactor::policy::{CheckpointDecision, checkpoint_name};
use refold::compactor::{self, PassOptions, StepStatus};
use refold::table::StateTable;
use refold::table::hooks::{HookFn, HookPoint};
use table_support::*;
use tokio::sync::Notify;

async fn open(dir: &std::path::Path) -> StateTable {
    StateTable::open_or_create(config(dir, "current_state"))
        .await
        .unwrap()
}

/// `rounds` batches of `n` events into each of `parts` partitions.
async fn fill(t: &StateTable, s: &mut Stream, rounds: usize, parts: i32, n: usize, keys: u64) {
    for _ in 0..rounds {
        for p in 0..parts {
            let b = s.batch(p, n, keys);
            merge(t, &b).await.unwrap();
        }
    }
}

fn opts(now_ms: i64) -> PassOptions {
    PassOptions {
        now_ms,
        force_checkpoint: false,
        deadline: None,
        pipeline: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_engine_reads_the_same_rows_after_each_step() {
    let _ = python(); // fail first and clearly if the venv is missing
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path()).await;
    let mut s = Stream::new(7);
    fill(&t, &mut s, 8, 3, 30, 40).await;
    let want = reference(&s.events);
    every_engine_reads(&t, dir.path(), &want, "before the pass").await;
    let before = t.table_stats().await.unwrap();
    assert_eq!(before.snapshots, 24);
    assert!(before.delete_files > 0, "{before:?}");

    // A day later: the window has passed for every snapshot but the current one.
    let pol = policy();
    let o = opts(now_ms() + DAY_MS + HOUR_MS);
    let c = compactor::step_compaction(&t, &pol, &o).await.unwrap();
    assert_eq!(c.status, StepStatus::Done, "{c:?}");
    let c = c.detail.unwrap();
    let compacted: Vec<i32> = c.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(compacted, vec![0, 1, 2]);
    for p in t.partition_stats().await.unwrap() {
        assert_eq!(
            p.delete_files, 0,
            "partition {} keeps delete files",
            p.partition
        );
        assert_eq!(p.data_files(), 1, "partition {}", p.partition);
    }
    every_engine_reads(&t, dir.path(), &want, "after compaction").await;
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        s.offsets(),
        "offsets carried forward"
    );

    let m = compactor::step_manifests(&t, &pol).await.unwrap();
    let m = m.detail.unwrap();
    // The last compaction left a rewritten data and delete manifest with no live file (each
    // commit drops the ones the previous left): 3 data manifests + 2 dead.
    assert_eq!((m.manifests_before, m.manifests_dropped), (5, 2), "{m:?}");
    assert!(m.snapshot_id.is_some(), "{m:?}");
    assert_eq!(
        t.table_stats().await.unwrap().manifests(),
        3,
        "one data manifest per partition"
    );
    every_engine_reads(&t, dir.path(), &want, "after the manifest step").await;

    let cp = compactor::step_checkpoint(&t, &pol, &o)
        .await
        .unwrap()
        .detail
        .unwrap();
    assert_eq!(
        cp.decision,
        CheckpointDecision::Take {
            name: checkpoint_name(o.now_ms)
        }
    );
    every_engine_reads(&t, dir.path(), &want, "after the checkpoint").await;
    let name = checkpoint_name(o.now_ms);
    pyiceberg_rows(dir.path(), Some(&name), &want);
    let cp_offsets = s.offsets();
    let listed = t.checkpoints().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), &listed[0].offsets),
        (name.as_str(), &cp_offsets)
    );

    let e = compactor::step_expiry(&t, &pol, &o)
        .await
        .unwrap()
        .detail
        .unwrap();
    // 24 merges + 3 compactions + the manifest step = 28; the current one stays (tagged).
    assert_eq!(
        (e.outcome.snapshots_before, e.outcome.expired),
        (28, 27),
        "{e:?}"
    );
    every_engine_reads(&t, dir.path(), &want, "after expiry").await;

    let orph = compactor::step_orphans(&t, &pol, &o)
        .await
        .unwrap()
        .detail
        .unwrap();
    assert!(orph.deleted > 100, "{orph:?}");
    assert_eq!(orph.failed, 0);
    every_engine_reads(&t, dir.path(), &want, "after orphan removal").await;
    pyiceberg_scan_all(dir.path());
    // Nothing unreferenced is left, by PyIceberg's account of the references.
    assert_eq!(files_on_disk(dir.path()), pyiceberg_referenced(dir.path()));
    let after = t.table_stats().await.unwrap();
    assert!(
        after.metadata_bytes < before.metadata_bytes,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        (after.snapshots, after.manifests(), after.delete_files),
        (1, 3, 0)
    );

    // Merges go on onto the compacted files.
    fill(&t, &mut s, 2, 3, 30, 40).await;
    let want = reference(&s.events);
    every_engine_reads(&t, dir.path(), &want, "merges after the pass").await;
    pyiceberg_rows(
        dir.path(),
        Some(&name),
        &reference(&prefix(&s.events, &cp_offsets)),
    );
}

const MIN_MS: i64 = 60_000;

/// Passes every 20 minutes for 7 hours with a fold-batch commit before each: a checkpoint
/// every hour exactly, named by the pass's time, carrying the offsets of that moment; with
/// `max_snapshots: 3` the 4th drops the 1st. Then: no change (or only a compaction) means no
/// new checkpoint; `--now` takes one anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_come_on_their_interval_and_the_oldest_go() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path()).await;
    let mut pol = policy();
    pol.snapshots.max_snapshots = 3;
    // Whole seconds, as checkpoint names carry them.
    let t0 = now_ms() / 1000 * 1000;
    let empty = compactor::step_checkpoint(&t, &pol, &opts(t0))
        .await
        .unwrap();
    assert_eq!(empty.status, StepStatus::Skipped, "{empty:?}");

    let mut s = Stream::new(3);
    let mut taken: Vec<(String, BTreeMap<i32, i64>)> = vec![];
    for k in 0..21i64 {
        let now = t0 + k * 20 * MIN_MS;
        merge(&t, &s.batch((k % 2) as i32, 10, 20)).await.unwrap();
        let r = compactor::step_checkpoint(&t, &pol, &opts(now))
            .await
            .unwrap();
        let r = r.detail.unwrap();
        match r.decision {
            CheckpointDecision::Take { name } => {
                assert_eq!(k % 3, 0, "taken at pass {k}");
                assert_eq!(name, checkpoint_name(now));
                let done = r.taken.unwrap();
                let dropped: Vec<String> = if taken.len() >= 3 {
                    vec![taken[taken.len() - 3].0.clone()]
                } else {
                    vec![]
                };
                assert_eq!(done.dropped, dropped, "pass {k}");
                taken.push((name, s.offsets()));
            }
            CheckpointDecision::NotDue { due_at_ms, .. } => {
                assert_ne!(k % 3, 0, "not taken at pass {k}");
                assert_eq!(due_at_ms, t0 + (k / 3 + 1) * HOUR_MS);
            }
            other => panic!("pass {k}: {other:?}"),
        }
    }
    assert_eq!(taken.len(), 7);
    let kept: Vec<(String, BTreeMap<i32, i64>)> = t
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.offsets))
        .collect();
    assert_eq!(
        kept,
        taken[4..].to_vec(),
        "the newest 3, each with its offsets"
    );

    // Merges came after the last checkpoint: the next due pass takes one.
    let r = compactor::step_checkpoint(&t, &pol, &opts(t0 + 7 * HOUR_MS))
        .await
        .unwrap();
    let r = r.detail.unwrap();
    assert_eq!(r.taken.unwrap().dropped, vec![taken[4].0.clone()]);
    let CheckpointDecision::Take { name } = r.decision else {
        panic!("{:?}", r.decision)
    };
    taken.push((name, s.offsets()));
    // Hours later, nothing changed but a compaction: the state is the one tagged last.
    t.compact(None).await.unwrap();
    let later = t0 + 10 * HOUR_MS;
    let r = compactor::step_checkpoint(&t, &pol, &opts(later))
        .await
        .unwrap();
    assert_eq!(
        r.detail.unwrap().decision,
        CheckpointDecision::Unchanged {
            last: taken[7].0.clone()
        }
    );
    // --now: taken whatever the interval, and it drops the oldest.
    let mut forced = opts(later);
    forced.force_checkpoint = true;
    let r = compactor::step_checkpoint(&t, &pol, &forced)
        .await
        .unwrap()
        .detail
        .unwrap();
    assert_eq!(r.taken.unwrap().dropped, vec![taken[5].0.clone()]);
    // The same pass delivered again (same time, same name): nothing changes.
    let r = compactor::step_checkpoint(&t, &pol, &forced)
        .await
        .unwrap()
        .detail
        .unwrap();
    let again = r.taken.unwrap();
    assert!(again.existed && again.dropped.is_empty(), "{again:?}");
    assert_eq!(t.checkpoints().await.unwrap().len(), 3);
}

/// Expiry and orphan removal against an oracle built without refold: PyIceberg's list of
/// referenced files after expiry, and the files' ages on disk. Every file is aged three days
/// except a young orphan; a fold-batch merge is held between writing its files and its
/// commit (forced with a hook) while the orphan step runs, and a compaction commits between
/// the step's listing and its reading of the references (another hook).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_orphans_spare_referenced_young_and_in_flight_files() {
    let _ = python();
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(open(dir.path()).await);
    let writer = Arc::new(open(dir.path()).await);
    let mut s = Stream::new(11);
    fill(&t, &mut s, 3, 2, 20, 30).await;
    let mut forced = opts(now_ms());
    forced.force_checkpoint = true;
    let mut pol = policy();
    pol.snapshots.keep_recent_ms = 1; // only the current snapshot and the tagged ones stay
    let cp = compactor::step_checkpoint(&t, &pol, &forced)
        .await
        .unwrap()
        .detail
        .unwrap();
    let cp_name = cp.taken.unwrap().name;
    let cp_offsets = s.offsets();
    fill(&t, &mut s, 3, 2, 20, 30).await;
    compactor::step_compaction(&t, &pol, &opts(now_ms()))
        .await
        .unwrap();
    fill(&t, &mut s, 1, 2, 20, 30).await;

    let table_dir = dir.path().join("domain/orders/current_state");
    for junk in [
        "data/junk-old.parquet",
        "data/junk-young.parquet",
        "metadata/junk-old.avro",
    ] {
        std::fs::write(table_dir.join(junk), b"not iceberg").unwrap();
    }
    for f in files_on_disk(dir.path()) {
        age_file(&f, 3 * DAY_MS);
    }
    let young = format!(
        "file://{}",
        table_dir.join("data/junk-young.parquet").display()
    );
    age_file(&young, HOUR_MS);

    // A merge in flight: files written, commit held.
    let before_merge = files_on_disk(dir.path());
    let (written, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook: HookFn = {
        let (written, go, held) = (written.clone(), go.clone(), held.clone());
        Arc::new(move |_, _| {
            let (written, go, held) = (written.clone(), go.clone(), held.clone());
            Box::pin(async move {
                if !held.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    written.notify_one();
                    go.notified().await;
                }
            })
        })
    };
    writer.set_hook(HookPoint::MergeBeforeCommit, Some(hook));
    let in_flight = s.batch(0, 20, 30);
    let held_merge = merge(&writer, &in_flight);
    let maintenance = async {
        written.notified().await;
        let in_flight_files: BTreeSet<String> = files_on_disk(dir.path())
            .difference(&before_merge)
            .cloned()
            .collect();
        assert_eq!(
            in_flight_files.len(),
            2,
            "a data and a delete file: {in_flight_files:?}"
        );

        let now = now_ms();
        let e = compactor::step_expiry(&t, &pol, &opts(now))
            .await
            .unwrap()
            .detail
            .unwrap();
        assert!(e.outcome.expired >= 10, "{e:?}");
        // The oracle: unreferenced by PyIceberg's account, and older than the grace period.
        let referenced = pyiceberg_referenced(dir.path());
        let on_disk = files_on_disk(dir.path());
        let grace_cutoff =
            std::time::SystemTime::now() - std::time::Duration::from_millis(DAY_MS as u64);
        let expected: BTreeSet<String> = on_disk
            .iter()
            .filter(|f| !referenced.contains(*f))
            .filter(|f| {
                let p = f.strip_prefix("file://").unwrap();
                std::fs::metadata(p).unwrap().modified().unwrap() <= grace_cutoff
            })
            .cloned()
            .collect();
        assert!(expected.len() > 10, "{expected:?}");

        // Between the listing and the references: another handle compacts partition 1.
        let compactor_hook: HookFn = {
            let w = writer.clone();
            Arc::new(move |_, _| {
                let w = w.clone();
                Box::pin(async move {
                    let out = w.compact(Some(1)).await.unwrap();
                    assert_eq!(out.partitions_compacted, vec![1]);
                })
            })
        };
        t.set_hook(HookPoint::OrphansAfterList, Some(compactor_hook));
        let o = compactor::step_orphans(&t, &pol, &opts(now))
            .await
            .unwrap()
            .detail
            .unwrap();
        t.set_hook(HookPoint::OrphansAfterList, None);
        let after = files_on_disk(dir.path());
        let deleted: BTreeSet<String> = on_disk.difference(&after).cloned().collect();
        assert_eq!(deleted, expected);
        assert_eq!(o.deleted, expected.len());
        assert!(after.contains(&young), "a young orphan stays");
        assert!(
            !after
                .iter()
                .any(|f| f.ends_with("junk-old.parquet") || f.ends_with("junk-old.avro"))
        );
        assert!(
            in_flight_files.is_subset(&after),
            "the in-flight merge's files stay"
        );
        assert!(referenced.is_subset(&after), "every referenced file stays");

        // The held merge commits (its base moved: it re-bases).
        go.notify_one();
    };
    let (merged, ()) = tokio::join!(held_merge, maintenance);
    merged.unwrap();
    // Every engine reads it all.
    every_engine_reads(
        &t,
        dir.path(),
        &reference(&s.events),
        "after expiry and orphans",
    )
    .await;
    pyiceberg_scan_all(dir.path());
    let at_cp = reference(&prefix(&s.events, &cp_offsets));
    pyiceberg_rows(dir.path(), Some(&cp_name), &at_cp);
    let r = t
        .resolve_as_of(&refold::table::as_of::AsOf::Ref(cp_name.clone()))
        .await
        .unwrap();
    assert_eq!(
        by_id(t.rows_at(r.snapshot_id, None, None).await.unwrap()),
        at_cp
    );
}

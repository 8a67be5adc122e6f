//! Unit tests of the pass's decisions, with hand-written expectations.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::*;
use crate::table::history::{RefInfo, SnapshotInfo};

const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MIN_MS;
/// 2026-12-02T03:00:00Z
const T0_MS: i64 = 1_796_180_400_000;

#[test]
fn checkpoint_names_carry_their_utc_time_and_sort_by_it() {
    assert_eq!(checkpoint_name(T0_MS), "checkpoint-20261202T030000Z");
    assert_eq!(
        checkpoint_time_ms("checkpoint-20261202T030000Z"),
        Some(T0_MS)
    );
    // Whole seconds: the milliseconds are dropped from the name.
    assert_eq!(checkpoint_name(T0_MS + 999), checkpoint_name(T0_MS));
    assert!(checkpoint_name(T0_MS + 1_000) > checkpoint_name(T0_MS));
    assert!(checkpoint_name(T0_MS + 10 * HOUR_MS) > checkpoint_name(T0_MS + 9 * HOUR_MS));
    assert_eq!(checkpoint_time_ms("checkpoint-yesterday"), None);
    assert_eq!(checkpoint_time_ms("nightly-20261202T030000Z"), None);
}

#[test]
fn checkpoint_decision_follows_interval_change_and_force() {
    let hour = HOUR_MS as u64;
    let last = Some(("checkpoint-20261202T030000Z", T0_MS));
    assert_eq!(
        checkpoint_decision(None, false, T0_MS, hour, false),
        CheckpointDecision::Take {
            name: checkpoint_name(T0_MS)
        }
    );
    assert_eq!(
        checkpoint_decision(last, false, T0_MS + 59 * MIN_MS, hour, false),
        CheckpointDecision::NotDue {
            last: "checkpoint-20261202T030000Z".into(),
            due_at_ms: T0_MS + HOUR_MS
        }
    );
    assert_eq!(
        checkpoint_decision(last, false, T0_MS + HOUR_MS, hour, false),
        CheckpointDecision::Take {
            name: "checkpoint-20261202T040000Z".into()
        }
    );
    assert_eq!(
        checkpoint_decision(last, true, T0_MS + 2 * HOUR_MS, hour, false),
        CheckpointDecision::Unchanged {
            last: "checkpoint-20261202T030000Z".into()
        }
    );
    assert_eq!(
        checkpoint_decision(last, true, T0_MS + MIN_MS, hour, true),
        CheckpointDecision::Take {
            name: "checkpoint-20261202T030100Z".into()
        }
    );
}

/// Passes every 15 minutes for 6 hours on a table that changes between passes: one
/// checkpoint an hour, on the hour of the first pass, and the 25th... drops nothing here
/// (retention is the table's tag commit); the cadence holds when passes are late.
#[test]
fn checkpoint_cadence_over_simulated_passes() {
    let mut taken: Vec<(String, i64)> = vec![];
    let mut now = T0_MS + 7 * MIN_MS;
    while now < T0_MS + 6 * HOUR_MS {
        let last = taken.last().map(|(n, t)| (n.as_str(), *t));
        if let CheckpointDecision::Take { name } =
            checkpoint_decision(last, false, now, HOUR_MS as u64, false)
        {
            let t = checkpoint_time_ms(&name).unwrap();
            taken.push((name, t));
        }
        // Passes run late by a varying number of seconds.
        now += 15 * MIN_MS + (now / MIN_MS % 7) * 1_000;
    }
    assert_eq!(taken.len(), 6, "{taken:?}");
    for w in taken.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            (HOUR_MS..HOUR_MS + 15 * MIN_MS + 7_000).contains(&gap),
            "{w:?}"
        );
    }
}

fn snap(id: i64, parent: Option<i64>, ts: i64, op: &str) -> SnapshotInfo {
    SnapshotInfo {
        id,
        parent_id: parent,
        timestamp_ms: ts,
        sequence_number: id,
        operation: op.into(),
        summary: HashMap::new(),
    }
}

fn tag(name: &str, id: i64) -> RefInfo {
    RefInfo {
        name: name.into(),
        snapshot_id: id,
        is_branch: false,
    }
}

fn branch(name: &str, id: i64) -> RefInfo {
    RefInfo {
        name: name.into(),
        snapshot_id: id,
        is_branch: true,
    }
}

/// main: 1 <- 2 <- ... <- n, snapshot i committed at T0 + i hours.
fn chain(n: i64, ops: &[(i64, &str)]) -> History {
    let mut snapshots = BTreeMap::new();
    for i in 1..=n {
        let op = ops
            .iter()
            .find(|(id, _)| *id == i)
            .map(|(_, o)| *o)
            .unwrap_or("overwrite");
        let parent = (i > 1).then_some(i - 1);
        snapshots.insert(i, snap(i, parent, T0_MS + i * HOUR_MS, op));
    }
    History {
        snapshots,
        refs: vec![branch("main", n)],
        current: Some(n),
    }
}

#[test]
fn unchanged_state_means_only_rewrites_since_the_tag() {
    let h = chain(5, &[(4, "replace"), (5, "replace")]);
    assert!(state_unchanged_since(&h, 5));
    assert!(state_unchanged_since(&h, 3), "4 and 5 only rewrote files");
    assert!(!state_unchanged_since(&h, 2), "3 changed rows");
    assert!(!state_unchanged_since(&h, 42), "not an ancestor");
    assert!(!state_unchanged_since(&History::default(), 1));
}

fn stats(partition: i32, data: &[u64], rows: u64, deletes: usize, deleted: u64) -> PartitionStats {
    PartitionStats {
        partition,
        data_file_bytes: data.to_vec(),
        data_rows: rows,
        delete_files: deletes,
        delete_bytes: 100 * deletes as u64,
        deleted_rows: deleted,
    }
}

#[test]
fn compaction_thresholds_each_alone_and_together() {
    let c = CompactionPolicy {
        delete_files: 3,
        small_files: 2,
        small_file_bytes: 1_000,
        deleted_rows_percent: 20,
        target_file_bytes: 4_000,
        manifests: 8,
    };
    let all = [
        stats(0, &[5_000], 100, 0, 0),           // compact already
        stats(1, &[5_000, 5_000], 100, 2, 19),   // below every threshold
        stats(2, &[5_000], 100, 3, 1),           // delete files
        stats(3, &[999, 999, 5_000], 100, 0, 0), // small files
        stats(4, &[999], 100, 0, 0),             // one small file alone: nothing to gain
        stats(5, &[5_000, 5_000], 100, 1, 20),   // deleted rows: 20 of 100 = 20%
        stats(6, &[10, 20, 30], 10, 3, 9),       // everything
        stats(7, &[], 0, 0, 0),                  // empty
    ];
    use CompactReason::*;
    assert_eq!(
        partitions_to_compact(&all, &c),
        vec![
            (2, vec![DeleteFiles]),
            (3, vec![SmallFiles]),
            (5, vec![DeletedRows]),
            (6, vec![DeleteFiles, SmallFiles, DeletedRows]),
        ]
    );
}

#[test]
fn expiry_keeps_tags_branches_and_every_state_of_the_window() {
    // main 1..=10 at T0+1h..T0+10h; now = T0+10h30; window 3h: cutoff T0+7h30.
    let mut h = chain(10, &[]);
    h.refs.push(tag("checkpoint-a", 2));
    h.refs.push(tag("other-tag", 4));
    let now = T0_MS + 10 * HOUR_MS + 30 * MIN_MS;
    let expired = snapshots_to_expire(&h, now, 3 * HOUR_MS as u64);
    // 7 was the state until 8 came (T0+8h >= cutoff): kept; 6 was replaced at T0+7h: expired.
    assert_eq!(expired, vec![1, 3, 5, 6]);

    // A window of 0 keeps the current snapshot and the tagged ones only.
    assert_eq!(snapshots_to_expire(&h, now, 0), vec![1, 3, 5, 6, 7, 8, 9]);
    // A window older than the table keeps everything.
    assert!(snapshots_to_expire(&h, now, 100 * HOUR_MS as u64).is_empty());
}

#[test]
fn expiry_of_other_branches_and_dangling_snapshots() {
    let mut h = chain(6, &[]);
    // A branch off 3: 20 <- 21 (T0+20h, T0+21h), and a rolled-back snapshot 30 off 6.
    h.snapshots
        .insert(20, snap(20, Some(3), T0_MS + 2 * HOUR_MS, "append"));
    h.snapshots
        .insert(21, snap(21, Some(20), T0_MS + 3 * HOUR_MS, "append"));
    h.snapshots
        .insert(30, snap(30, Some(6), T0_MS + 4 * HOUR_MS, "append"));
    h.snapshots
        .insert(31, snap(31, Some(6), T0_MS + 9 * HOUR_MS, "append"));
    h.refs.push(branch("audit", 21));
    let now = T0_MS + 10 * HOUR_MS;
    // cutoff T0+5h: main keeps 6 (current), 5 and 4 (replaced at T0+6h and T0+5h, within
    // the window); branch audit keeps 21; 20 was replaced at T0+3h: expired; dangling 30 is
    // older than the cutoff, 31 is not.
    assert_eq!(
        snapshots_to_expire(&h, now, 5 * HOUR_MS as u64),
        vec![1, 2, 3, 20, 30]
    );
}

fn listed(path: &str, age_ms: Option<i64>, now: i64) -> ListedFile {
    ListedFile {
        path: path.into(),
        size_bytes: 10,
        last_modified_ms: age_ms.map(|a| now - a),
    }
}

#[test]
fn orphans_are_unreferenced_and_past_the_grace_period_only() {
    let now = T0_MS;
    let day = 24 * HOUR_MS;
    let files = [
        listed("file:///t/data/referenced-old.parquet", Some(9 * day), now),
        listed("file:///t/data/orphan-old.parquet", Some(2 * day), now),
        listed(
            "file:///t/data/orphan-exactly-grace.parquet",
            Some(day),
            now,
        ),
        listed("file:///t/data/orphan-young.parquet", Some(day - 1), now),
        listed("file:///t/data/orphan-future.parquet", Some(-HOUR_MS), now),
        listed("file:///t/metadata/undated.avro", None, now),
    ];
    let referenced: HashSet<String> = ["file:///t/data/referenced-old.parquet".to_string()]
        .into_iter()
        .collect();
    let plan = orphans(&files, &referenced, now, day as u64);
    assert_eq!(
        plan.delete,
        vec![
            "file:///t/data/orphan-exactly-grace.parquet".to_string(),
            "file:///t/data/orphan-old.parquet".to_string(),
        ]
    );
    assert_eq!(plan.delete_bytes, 20);
    assert_eq!((plan.referenced, plan.young, plan.undated), (1, 2, 1));
}

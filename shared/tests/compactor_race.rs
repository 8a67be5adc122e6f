//! Property: maintenance racing fold-batch commits loses nothing. The interleavings are
//! forced with the table's hooks, not hoped for: merges commit between a compaction's rewrite
//! and its commit (on one attempt, or on several in a row), a compaction commits between a
//! merge's lookup and its commit, merges commit inside a manifest merge and inside an
//! expiry. After every operation the table is the sequential fold of the events delivered so
//! far (refold's reads and iceberg-rust's scan), the committed offsets are the stream's, and a
//! compacted partition holds no delete file; at the end PyIceberg agrees.
//!
//! Cases: `PROPTEST_CASES` (default 16; each case is a fresh table).
#![allow(clippy::unwrap_used)]

mod compactor_support;
mod table_support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use compactor_support::*;
use proptest::prelude::*;
use refold::compactor::policy;
use refold::table::StateTable;
use refold::table::hooks::{HookFn, HookPoint};
use table_support::*;

const PARTITIONS: i32 = 2;
const KEYS: u64 = 12;

/// A batch: (partition, events).
type Batch = (u8, u8);

#[derive(Debug, Clone)]
enum Op {
    Merge(Batch),
    /// Compact a partition; before its commit attempt k, run batches[k - 1] (if any).
    Compact {
        partition: u8,
        racing: Vec<Vec<Batch>>,
    },
    /// A merge that, between its lookup and its commit, sees a compaction of `partition`.
    MergeRacedByCompaction {
        batch: Batch,
        partition: u8,
    },
    /// Merge manifests; batches commit before its first commit attempt.
    Manifests {
        racing: Vec<Batch>,
    },
    /// Expire all but the current snapshot; batches commit before its first attempt.
    Expire {
        racing: Vec<Batch>,
    },
}

fn batch() -> impl Strategy<Value = Batch> {
    (0u8..PARTITIONS as u8, 1u8..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => batch().prop_map(Op::Merge),
        3 => (0u8..PARTITIONS as u8, prop::collection::vec(prop::collection::vec(batch(), 0..3), 0..4))
            .prop_map(|(partition, racing)| Op::Compact { partition, racing }),
        2 => (batch(), 0u8..PARTITIONS as u8)
            .prop_map(|(batch, partition)| Op::MergeRacedByCompaction { batch, partition }),
        1 => prop::collection::vec(batch(), 0..3).prop_map(|racing| Op::Manifests { racing }),
        1 => prop::collection::vec(batch(), 0..3).prop_map(|racing| Op::Expire { racing }),
    ]
}

/// The events of the stream, handed out batch by batch in offset order.
struct Source {
    stream: Mutex<Stream>,
}

impl Source {
    fn next(&self, (p, n): Batch) -> Vec<Ev> {
        self.stream
            .lock()
            .unwrap()
            .batch(p as i32, n as usize, KEYS)
    }
}

/// A hook that, on attempt k, merges `per_attempt[k - 1]` through `writer`.
fn racing_merges(
    writer: Arc<StateTable>,
    source: Arc<Source>,
    per_attempt: Vec<Vec<Batch>>,
) -> HookFn {
    let queue = Arc::new(Mutex::new(VecDeque::from(per_attempt)));
    Arc::new(move |_, _| {
        let (writer, source, queue) = (writer.clone(), source.clone(), queue.clone());
        Box::pin(async move {
            let batches = queue.lock().unwrap().pop_front().unwrap_or_default();
            for b in batches {
                let evs = source.next(b);
                merge_sendable(writer.clone(), evs).await;
            }
        })
    })
}

async fn check(t: &StateTable, source: &Source, what: &str) -> Result<(), TestCaseError> {
    let (events, offsets) = {
        let s = source.stream.lock().unwrap();
        (s.events.clone(), s.offsets())
    };
    let want = reference(&events);
    let got = by_id(t.current_rows(None, None).await.unwrap());
    prop_assert_eq!(&got, &want, "{}", what);
    prop_assert_eq!(iceberg_scan(t).await, summarize(&want), "{}", what);
    prop_assert_eq!(t.committed_offsets().await.unwrap(), offsets, "{}", what);
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "current_state");
    let t = Arc::new(StateTable::open_or_create(cfg.clone()).await.unwrap());
    let writer = Arc::new(StateTable::open_or_create(cfg.clone()).await.unwrap());
    let source = Arc::new(Source {
        stream: Mutex::new(Stream::new(9)),
    });
    // Something to compact from the start.
    for p in 0..PARTITIONS as u8 {
        merge(&t, &source.next((p, 8))).await.unwrap();
        merge(&t, &source.next((p, 8))).await.unwrap();
    }
    for (i, op) in ops.into_iter().enumerate() {
        let what = format!("op {i}: {op:?}");
        match op {
            Op::Merge(b) => {
                merge(&t, &source.next(b)).await.unwrap();
            }
            Op::Compact { partition, racing } => {
                let hook = racing_merges(writer.clone(), source.clone(), racing);
                t.set_hook(HookPoint::CompactBeforeCommit, Some(hook));
                let out = t.compact(Some(partition as i32)).await;
                t.set_hook(HookPoint::CompactBeforeCommit, None);
                out.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                let stats = t.partition_stats().await.unwrap();
                let p = stats
                    .iter()
                    .find(|s| s.partition == partition as i32)
                    .unwrap();
                prop_assert_eq!(p.delete_files, 0, "{}", what);
                prop_assert!(p.data_files() <= 1, "{}: {:?}", what, p);
            }
            Op::MergeRacedByCompaction { batch, partition } => {
                let compactor = writer.clone();
                let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let compacted = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let hook: HookFn = {
                    let (ran, compacted) = (ran.clone(), compacted.clone());
                    Arc::new(move |_, _| {
                        let (c, ran, compacted) =
                            (compactor.clone(), ran.clone(), compacted.clone());
                        Box::pin(async move {
                            if !ran.swap(true, std::sync::atomic::Ordering::SeqCst) {
                                let out = c.compact(Some(partition as i32)).await.unwrap();
                                let did = !out.partitions_compacted.is_empty();
                                compacted.store(did, std::sync::atomic::Ordering::SeqCst);
                            }
                        })
                    })
                };
                t.set_hook(HookPoint::MergeBeforeCommit, Some(hook));
                let out = merge(&t, &source.next(batch)).await;
                t.set_hook(HookPoint::MergeBeforeCommit, None);
                let out = out.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                if compacted.load(std::sync::atomic::Ordering::SeqCst) {
                    prop_assert!(
                        out.attempts >= 2,
                        "{}: the compaction made it retry: {:?}",
                        what,
                        out
                    );
                }
            }
            Op::Manifests { racing } => {
                let hook = racing_merges(writer.clone(), source.clone(), vec![racing]);
                t.set_hook(HookPoint::ManifestsBeforeCommit, Some(hook));
                let out = t.merge_manifests(2, 8 * 1024 * 1024).await;
                t.set_hook(HookPoint::ManifestsBeforeCommit, None);
                out.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
            }
            Op::Expire { racing } => {
                let hook = racing_merges(writer.clone(), source.clone(), vec![racing]);
                t.set_hook(HookPoint::ExpireBeforeCommit, Some(hook));
                let now = now_ms() + 1;
                let out = t
                    .expire_snapshots_by(|h| policy::snapshots_to_expire(h, now, 0))
                    .await;
                t.set_hook(HookPoint::ExpireBeforeCommit, None);
                out.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
            }
        }
        check(&t, &source, &what).await?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]
    #[test]
    fn maintenance_racing_fold_batch_commits_loses_nothing(ops in prop::collection::vec(op(), 1..10)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}

/// One forced schedule end to end, read back by PyIceberg: a compaction that loses its
/// commit three times in a row to merges into its own partition, then commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_outrun_three_times_then_committed_reads_right_in_pyiceberg() {
    let _ = python();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "current_state");
    let t = Arc::new(StateTable::open_or_create(cfg.clone()).await.unwrap());
    let writer = Arc::new(StateTable::open_or_create(cfg).await.unwrap());
    let source = Arc::new(Source {
        stream: Mutex::new(Stream::new(21)),
    });
    for _ in 0..3 {
        merge(&t, &source.next((0, 10))).await.unwrap();
        merge(&t, &source.next((1, 10))).await.unwrap();
    }
    let racing = vec![vec![(0, 5)], vec![(0, 5), (1, 3)], vec![(0, 4)]];
    t.set_hook(
        HookPoint::CompactBeforeCommit,
        Some(racing_merges(writer, source.clone(), racing)),
    );
    let out = t.compact(Some(0)).await.unwrap();
    assert_eq!(out.partitions_compacted, vec![0]);
    let p0 = t.partition_stats().await.unwrap()[0].clone();
    assert_eq!((p0.partition, p0.delete_files, p0.data_files()), (0, 0, 1));
    check(&t, &source, "after the race").await.unwrap();
    let events = source.stream.lock().unwrap().events.clone();
    pyiceberg_rows(dir.path(), None, &reference(&events));
    assert_eq!(events.len(), 60 + 14 + 3);
}

//! One shard of a replay: its partitions' ranges through the batch engine into the target
//! table, in bounded batches, until the ranges are done, the replay is cancelled, or the
//! deadline is near (then [`ShardOutcome::Continue`]: the caller invokes the shard again).
//!
//! Where to resume is read from the target table before every batch: per partition, the
//! larger of the plan's `from` and the target's committed offset under the target group.
//! So a duplicated, re-invoked or crashed shard lands each record once (a record below the
//! committed offset is `already_applied`), and nothing in the worker needs to be durable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::plan::ReplayPlan;
use super::source::{RangeReader, RangeSource, Ranges};
use super::store::{Marker, ReplayStore};
use crate::batch::Counts;
use crate::engine::BatchProcessor;
use crate::error::{Error, ErrorKind, Result};
use crate::record::SourceRecord;

/// Limits of one shard invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Records read and folded per batch (one commit per partition of a batch).
    pub max_batch_records: usize,
    /// Stop starting batches this long before the deadline (a batch must fit in it).
    pub deadline_margin_ms: u64,
    /// Batches one invocation may run (a bound on the loop; the deadline usually ends it).
    pub max_batches_per_invocation: usize,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        Self {
            max_batch_records: 10_000,
            deadline_margin_ms: 30_000,
            max_batches_per_invocation: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardOutcome {
    /// Every range is committed in the target table.
    Done,
    /// Stopped before the deadline (or the batch bound): invoke again.
    Continue,
    /// The replay was cancelled; stopped between batches.
    Cancelled,
    /// The invocation failed transiently and invoked itself again (see `invoker`).
    Retried,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    pub shard: u32,
    pub outcome: ShardOutcome,
    pub batches: usize,
    pub counts: Counts,
    /// Where each partition of the shard stands (next offset) at the end.
    pub positions: BTreeMap<i32, i64>,
    pub elapsed_ms: f64,
    /// Why the invocation was retried (`Retried` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retried_after: Option<String>,
}

impl ShardReport {
    /// A report of nothing done yet.
    fn empty(shard: u32, outcome: ShardOutcome) -> Self {
        Self {
            shard,
            outcome,
            batches: 0,
            counts: Counts::default(),
            positions: BTreeMap::new(),
            elapsed_ms: 0.0,
            retried_after: None,
        }
    }

    /// The report of an invocation that failed with `e` and invoked itself again.
    pub fn retried(shard: u32, e: &Error) -> Self {
        Self {
            retried_after: Some(e.to_string()),
            ..Self::empty(shard, ShardOutcome::Retried)
        }
    }
}

/// What is left of the shard's ranges, given the target's committed offsets.
pub fn remaining(plan: &ReplayPlan, shard: u32, committed: &BTreeMap<i32, i64>) -> Result<Ranges> {
    let mut todo = Ranges::new();
    for r in &plan.shard(shard)?.ranges {
        let pos = committed
            .get(&r.partition)
            .copied()
            .unwrap_or(-1)
            .max(r.from);
        if pos < r.to {
            todo.insert(r.partition, (pos, r.to));
        }
    }
    Ok(todo)
}

/// Reads one batch on a blocking thread (the reader polls), handing the reader back.
async fn read_batch(
    reader: Box<dyn RangeReader>,
    todo: Ranges,
    max: usize,
) -> Result<(Box<dyn RangeReader>, Vec<SourceRecord>)> {
    let (reader, res) = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let res = reader.read(&todo, max);
        (reader, res)
    })
    .await
    .map_err(|e| Error::task_failed("the thread reading a shard", e))?;
    Ok((reader, res?))
}

/// Runs shard `shard` of `plan` on `engine` (opened on the target table) until done,
/// cancelled, or `deadline` minus the margin; see the module docs.
pub async fn run_shard(
    plan: &ReplayPlan,
    shard: u32,
    engine: &BatchProcessor,
    source: &dyn RangeSource,
    store: &dyn ReplayStore,
    limits: &WorkerLimits,
    deadline: Instant,
) -> Result<ShardReport> {
    let started = Instant::now();
    let mut report = ShardReport::empty(shard, ShardOutcome::Continue);
    let margin = Duration::from_millis(limits.deadline_margin_ms);
    let mut reader = source.open(&plan.topic)?;
    let mut last: Option<Ranges> = None;
    let outcome = loop {
        if store
            .get(&plan.pipeline, &plan.replay_id)
            .await?
            .cancelled()
        {
            break ShardOutcome::Cancelled;
        }
        let committed = engine.table().committed_offsets().await?;
        let todo = remaining(plan, shard, &committed)?;
        report.positions = positions(plan, shard, &committed)?;
        if todo.is_empty() {
            store
                .mark(
                    &plan.pipeline,
                    &plan.replay_id,
                    Marker::ShardDone {
                        at_ms: now_ms(),
                        shard,
                    },
                )
                .await?;
            break ShardOutcome::Done;
        }
        if last.as_ref() == Some(&todo) {
            return Err(stuck(plan, shard, &todo));
        }
        if Instant::now() + margin >= deadline
            || report.batches >= limits.max_batches_per_invocation
        {
            break ShardOutcome::Continue;
        }
        let (r, records) = read_batch(reader, todo.clone(), limits.max_batch_records).await?;
        reader = r;
        let b = engine.process(records, Vec::new()).await?;
        if !b.failed_at.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "on_error: fail stopped the replay at {:?} (partition: offset)",
                    b.failed_at
                ),
            ));
        }
        report.counts += b.counts;
        report.batches += 1;
        last = Some(todo);
    };
    report.outcome = outcome;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(report)
}

fn positions(
    plan: &ReplayPlan,
    shard: u32,
    committed: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i64>> {
    Ok(plan
        .shard(shard)?
        .ranges
        .iter()
        .map(|r| {
            (
                r.partition,
                committed
                    .get(&r.partition)
                    .copied()
                    .unwrap_or(-1)
                    .max(r.from),
            )
        })
        .collect())
}

/// A batch that moved no committed offset would be read again forever.
fn stuck(plan: &ReplayPlan, shard: u32, todo: &Ranges) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!(
            "replay {} shard {shard}: a batch committed nothing; still to do {todo:?}",
            plan.replay_id
        ),
    )
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

//! The decisions of a maintenance pass, as pure functions of plain values (no I/O, no clock:
//! `now_ms` is an argument): when to take a checkpoint and its name, which source partitions
//! to compact and why, which snapshots to expire, which unreferenced files are old enough to
//! delete. `pass` gathers the values from the table and carries the decisions out.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::pipeline::{CompactionPolicy, Pipeline, SnapshotPolicy};
use crate::table::CHECKPOINT_TAG_PREFIX;
use crate::table::history::History;
use crate::table::orphans::ListedFile;
use crate::table::stats::PartitionStats;

/// Everything a pass decides by: the pipeline's `snapshots:` and `compaction:` sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaintenancePolicy {
    pub snapshots: SnapshotPolicy,
    pub compaction: CompactionPolicy,
}

impl MaintenancePolicy {
    pub fn of(p: &Pipeline) -> Self {
        Self {
            snapshots: p.snapshots,
            compaction: p.compaction,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checkpoints

/// The time format in checkpoint names: basic ISO 8601, UTC, whole seconds (no `:`, so the
/// name is also a safe file name and command-line word), e.g. `20261202T030000Z`.
const NAME_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// `checkpoint-<UTC time>` for a time in milliseconds since the Unix epoch.
pub fn checkpoint_name(at_ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_default();
    format!("{CHECKPOINT_TAG_PREFIX}{}", t.format(NAME_TIME_FORMAT))
}

/// The time a checkpoint name carries (milliseconds), `None` for other names.
pub fn checkpoint_time_ms(name: &str) -> Option<i64> {
    let t = name.strip_prefix(CHECKPOINT_TAG_PREFIX)?;
    let t = NaiveDateTime::parse_from_str(t, NAME_TIME_FORMAT).ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// Whether a pass takes a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum CheckpointDecision {
    Take {
        name: String,
    },
    /// The interval has not passed since the last checkpoint.
    NotDue {
        last: String,
        due_at_ms: i64,
    },
    /// Nothing but rewrites happened since the last checkpoint: the same state, tagged.
    Unchanged {
        last: String,
    },
}

/// `last`: the newest checkpoint (name, time from its name); `unchanged`: whether the table's
/// state is still the one `last` tagged; `force`: `--now`.
pub fn checkpoint_decision(
    last: Option<(&str, i64)>,
    unchanged: bool,
    now_ms: i64,
    interval_ms: u64,
    force: bool,
) -> CheckpointDecision {
    let take = CheckpointDecision::Take {
        name: checkpoint_name(now_ms),
    };
    let Some((last, at_ms)) = last else {
        return take;
    };
    if force {
        return take;
    }
    let due_at_ms = at_ms.saturating_add(i64::try_from(interval_ms).unwrap_or(i64::MAX));
    if now_ms < due_at_ms {
        return CheckpointDecision::NotDue {
            last: last.to_string(),
            due_at_ms,
        };
    }
    if unchanged {
        return CheckpointDecision::Unchanged {
            last: last.to_string(),
        };
    }
    take
}

/// Whether main's state is still the one snapshot `tagged` holds: `tagged` is the current
/// snapshot or an ancestor of it with only `replace` snapshots (compactions, manifest
/// rewrites: same rows, same offsets) after it.
pub fn state_unchanged_since(h: &History, tagged: i64) -> bool {
    let Some(current) = h.current else {
        return false;
    };
    for s in h.ancestry(current) {
        if s.id == tagged {
            return true;
        }
        if s.operation != "replace" {
            return false;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// Compaction

/// Why a partition is compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactReason {
    DeleteFiles,
    SmallFiles,
    DeletedRows,
}

/// The partitions to compact, each with every threshold it reached.
pub fn partitions_to_compact(
    stats: &[PartitionStats],
    c: &CompactionPolicy,
) -> Vec<(i32, Vec<CompactReason>)> {
    let mut out = Vec::new();
    for s in stats {
        let mut why = Vec::new();
        if s.delete_files > 0 && s.delete_files >= c.delete_files as usize {
            why.push(CompactReason::DeleteFiles);
        }
        let small = s
            .data_file_bytes
            .iter()
            .filter(|b| **b < c.small_file_bytes)
            .count();
        // One file alone is as compact as a rewrite would make it.
        if s.data_file_bytes.len() > 1 && small >= c.small_files as usize {
            why.push(CompactReason::SmallFiles);
        }
        let threshold = u128::from(s.data_rows) * u128::from(c.deleted_rows_percent);
        if s.deleted_rows > 0 && u128::from(s.deleted_rows) * 100 >= threshold {
            why.push(CompactReason::DeletedRows);
        }
        if !why.is_empty() {
            out.push((s.partition, why));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Expiry

/// The snapshots expiry removes: every snapshot that no reference (tag or branch) points at
/// and that was not its branch's state within the last `keep_recent_ms`. A branch's head is
/// its current state; an ancestor was the state until its child was committed, so it is kept
/// while that child is younger than the window. A snapshot on no branch (rolled back, staged)
/// is kept while it is itself younger than the window. Sorted.
pub fn snapshots_to_expire(h: &History, now_ms: i64, keep_recent_ms: u64) -> Vec<i64> {
    let cutoff = now_ms.saturating_sub(i64::try_from(keep_recent_ms).unwrap_or(i64::MAX));
    let mut keep: HashSet<i64> = h.refs.iter().map(|r| r.snapshot_id).collect();
    keep.extend(h.current);
    let mut on_branch: HashSet<i64> = HashSet::new();
    let heads = h
        .branches()
        .into_iter()
        .map(|r| r.snapshot_id)
        .chain(h.current);
    for head in heads {
        let chain = h.ancestry(head);
        for (i, s) in chain.iter().enumerate() {
            on_branch.insert(s.id);
            // Replaced as the branch's state when its child (chain[i - 1]) was committed.
            let replaced_at = if i == 0 {
                i64::MAX
            } else {
                chain[i - 1].timestamp_ms
            };
            if replaced_at >= cutoff {
                keep.insert(s.id);
            }
        }
    }
    let mut out: Vec<i64> = h
        .snapshots
        .values()
        .filter(|s| !keep.contains(&s.id))
        .filter(|s| on_branch.contains(&s.id) || s.timestamp_ms < cutoff)
        .map(|s| s.id)
        .collect();
    out.sort_unstable();
    out
}

// ---------------------------------------------------------------------------------------
// Orphans

/// What the orphan step may delete, and what it keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanPlan {
    /// Unreferenced and older than the grace period (canonical paths, sorted).
    pub delete: Vec<String>,
    pub delete_bytes: u64,
    pub referenced: usize,
    /// Unreferenced but younger than the grace period (a commit in flight may need them).
    pub young: usize,
    /// Unreferenced, of unknown age: kept (never delete what cannot be dated).
    pub undated: usize,
}

/// Listed files that `referenced` does not hold and that were last modified at least
/// `grace_ms` before `now_ms`. Paths on both sides are canonical (`table::orphans`).
pub fn orphans(
    listed: &[ListedFile],
    referenced: &HashSet<String>,
    now_ms: i64,
    grace_ms: u64,
) -> OrphanPlan {
    let cutoff = now_ms.saturating_sub(i64::try_from(grace_ms).unwrap_or(i64::MAX));
    let mut plan = OrphanPlan::default();
    let mut delete = BTreeSet::new();
    for f in listed {
        if referenced.contains(&f.path) {
            plan.referenced += 1;
            continue;
        }
        match f.last_modified_ms {
            None => plan.undated += 1,
            Some(t) if t > cutoff => plan.young += 1,
            Some(_) => {
                if delete.insert(f.path.clone()) {
                    plan.delete_bytes += f.size_bytes;
                }
            }
        }
    }
    plan.delete = delete.into_iter().collect();
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

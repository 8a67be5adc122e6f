//! What a pass did, step by step: serialized as the handler's response and JSON log line,
//! and as CloudWatch EMF metrics ([`PassReport::emf`]).

use crate::archive::ArchiveCompaction;
use serde::Serialize;

use super::policy::{CheckpointDecision, CompactReason};
use crate::emf::EmfLine;
use crate::table::as_of::CheckpointTaken;
use crate::table::expire::ExpireOutcome;
use crate::table::manifests::ManifestMergeOutcome;
use crate::table::stats::TableStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Done,
    Skipped,
    Failed,
}

/// One step: its status, time, and what it did (`detail`), or why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport<T> {
    pub status: StepStatus,
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<T>,
    /// Why it was skipped, or the error it failed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl<T> StepReport<T> {
    pub fn done(ms: f64, detail: T) -> Self {
        Self {
            status: StepStatus::Done,
            ms,
            detail: Some(detail),
            reason: None,
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Skipped,
            ms: 0.0,
            detail: None,
            reason: Some(reason.into()),
        }
    }

    pub fn failed(ms: f64, error: impl std::fmt::Display) -> Self {
        Self {
            status: StepStatus::Failed,
            ms,
            detail: None,
            reason: Some(error.to_string()),
        }
    }

    pub fn is_failed(&self) -> bool {
        self.status == StepStatus::Failed
    }
}

impl<T> Default for StepReport<T> {
    fn default() -> Self {
        Self::skipped("not run")
    }
}

/// One partition the compaction step chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionCompaction {
    pub partition: i32,
    pub reasons: Vec<CompactReason>,
    pub status: StepStatus,
    pub ms: f64,
    pub rows: usize,
    pub data_files_removed: usize,
    pub delete_files_removed: usize,
    pub data_files_added: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactionReport {
    /// Partitions with live files.
    pub partitions_checked: usize,
    pub partitions: Vec<PartitionCompaction>,
}

impl CompactionReport {
    fn sum(&self, f: impl Fn(&PartitionCompaction) -> usize) -> u64 {
        self.partitions
            .iter()
            .filter(|p| p.status == StepStatus::Done)
            .map(f)
            .sum::<usize>() as u64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointReport {
    #[serde(flatten)]
    pub decision: CheckpointDecision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken: Option<CheckpointTaken>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExpiryReport {
    pub keep_recent_ms: u64,
    #[serde(flatten)]
    pub outcome: ExpireOutcome,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OrphanReport {
    pub grace_ms: u64,
    pub listed: usize,
    pub referenced: usize,
    /// Unreferenced but younger than the grace period: kept.
    pub young: usize,
    /// Unreferenced, no last-modified time: kept.
    pub undated: usize,
    pub deleted: usize,
    pub deleted_bytes: u64,
    /// Chosen but not deleted (an error, logged).
    pub failed: usize,
}

/// What one pass did to one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PassReport {
    pub pipeline: String,
    pub table: String,
    pub now_ms: i64,
    pub manifests: StepReport<ManifestMergeOutcome>,
    pub compaction: StepReport<CompactionReport>,
    pub checkpoint: StepReport<CheckpointReport>,
    pub expiry: StepReport<ExpiryReport>,
    pub orphans: StepReport<OrphanReport>,
    /// The event archive's small files merged (skipped: the pipeline keeps no archive).
    pub archive: StepReport<ArchiveCompaction>,
    pub before: Option<TableStats>,
    pub after: Option<TableStats>,
    pub ms: f64,
}

impl PassReport {
    /// Steps that failed, by name.
    pub fn failed_steps(&self) -> Vec<&'static str> {
        let mut out = vec![];
        for (name, failed) in [
            ("manifests", self.manifests.is_failed()),
            ("compaction", self.compaction.is_failed()),
            ("checkpoint", self.checkpoint.is_failed()),
            ("expiry", self.expiry.is_failed()),
            ("orphans", self.orphans.is_failed()),
            ("archive", self.archive.is_failed()),
        ] {
            if failed {
                out.push(name);
            }
        }
        out
    }

    /// The pass as CloudWatch metrics (namespace `refold`, dimension `pipeline`).
    pub fn emf(&self) -> EmfLine {
        let mut l = EmfLine::new([("pipeline", self.pipeline.as_str())]);
        let m = self.manifests.detail.clone().unwrap_or_default();
        let c = self.compaction.detail.clone().unwrap_or_default();
        let taken = self
            .checkpoint
            .detail
            .as_ref()
            .and_then(|d| d.taken.as_ref());
        let e = self.expiry.detail.clone().unwrap_or_default();
        let o = self.orphans.detail.clone().unwrap_or_default();
        l.millis("pass_ms", self.ms)
            .count("steps_failed", self.failed_steps().len() as u64)
            .count("manifests_replaced", m.manifests_replaced as u64)
            .count("manifests_created", m.manifests_created as u64)
            .count("partitions_compacted", c.sum(|_| 1))
            .count("rows_rewritten", c.sum(|p| p.rows))
            .count("data_files_removed", c.sum(|p| p.data_files_removed))
            .count("delete_files_removed", c.sum(|p| p.delete_files_removed))
            .count("data_files_added", c.sum(|p| p.data_files_added))
            .count(
                "checkpoints_taken",
                u64::from(taken.is_some_and(|t| !t.existed)),
            )
            .count(
                "checkpoints_dropped",
                taken.map_or(0, |t| t.dropped.len() as u64),
            )
            .count("snapshots_expired", e.outcome.expired as u64)
            .count("orphans_deleted", o.deleted as u64)
            .bytes("orphan_bytes_deleted", o.deleted_bytes);
        if let Some(a) = &self.after {
            l.count("snapshots", a.snapshots as u64)
                .count("manifests", a.manifests() as u64)
                .count("data_files", a.data_files as u64)
                .count("delete_files", a.delete_files as u64)
                .bytes("metadata_bytes", a.metadata_bytes);
        }
        l.property("table", serde_json::json!(self.table));
        l
    }
}

//! Where replay plans live: `<warehouse>/_refold/replays/<pipeline>/<replay_id>/plan.json`,
//! beside it one object per state marker (`cancelled.json`, `promoted.json`, `failed.json`
//! with the reason, `shard-<i>.done.json`). Written once each: a marker PUT is atomic and
//! idempotent, so no conditional write is needed.
//!
//! A replay is *running* until it is cancelled, failed, promoted, or every shard is done.
//! [`ReplayStore::create`] refuses a plan whose target table a running replay of the same
//! pipeline holds ([`super::ReplayConflict`], 409). Object stores have no transaction over
//! a listing, so the object adapter checks, writes, and checks again: a create that then
//! sees a rival withdraws its plan (at most one of two racing creates goes on).
//!
//! Adapters: [`object::ObjectReplayStore`] (iceberg's FileIO: local folders, S3; listing
//! through opendal as the orphan sweep does) and [`memory::MemoryReplayStore`].

pub mod memory;
pub mod object;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::id::ReplayId;
use super::plan::{ReplayPlan, target_conflict};
use crate::error::Result;

pub use memory::MemoryReplayStore;
pub use object::ObjectReplayStore;

/// Replays one listing returns at most.
pub const MAX_LISTED_REPLAYS: usize = 1_000;
/// Bytes of a failure reason kept.
pub const MAX_REASON_BYTES: usize = 4_096;

/// A state marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "marker", rename_all = "snake_case")]
pub enum Marker {
    Cancelled { at_ms: i64 },
    Promoted { at_ms: i64, previous_table: String },
    Failed { at_ms: i64, reason: String },
    ShardDone { at_ms: i64, shard: u32 },
}

impl Marker {
    /// The marker's object name.
    pub fn object_name(&self) -> String {
        match self {
            Marker::Cancelled { .. } => "cancelled.json".into(),
            Marker::Promoted { .. } => "promoted.json".into(),
            Marker::Failed { .. } => "failed.json".into(),
            Marker::ShardDone { shard, .. } => format!("shard-{shard}.done.json"),
        }
    }

    /// A failure marker, the reason cut to [`MAX_REASON_BYTES`].
    pub fn failed(at_ms: i64, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Marker::Failed {
            at_ms,
            reason: reason[..end].to_owned(),
        }
    }
}

/// A plan and the markers written for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredReplay {
    pub plan: ReplayPlan,
    pub markers: Vec<Marker>,
}

impl StoredReplay {
    pub fn cancelled(&self) -> bool {
        self.markers
            .iter()
            .any(|m| matches!(m, Marker::Cancelled { .. }))
    }

    pub fn promoted(&self) -> Option<&Marker> {
        self.markers
            .iter()
            .find(|m| matches!(m, Marker::Promoted { .. }))
    }

    pub fn failed(&self) -> Option<&str> {
        self.markers.iter().find_map(|m| match m {
            Marker::Failed { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
    }

    pub fn shard_done(&self, shard: u32) -> bool {
        self.markers
            .iter()
            .any(|m| matches!(m, Marker::ShardDone { shard: s, .. } if *s == shard))
    }

    /// Not cancelled, failed or promoted, and some shard not done.
    pub fn running(&self) -> bool {
        !self.cancelled()
            && self.failed().is_none()
            && self.promoted().is_none()
            && !self.plan.shards.iter().all(|s| self.shard_done(s.index))
    }
}

#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Stores a new plan; a conflict when a running replay of the pipeline has its target.
    async fn create(&self, plan: &ReplayPlan) -> Result<()>;
    /// The replay; `NotFound` when there is none.
    async fn get(&self, pipeline: &str, id: &ReplayId) -> Result<StoredReplay>;
    /// The pipeline's replays, oldest first (at most [`MAX_LISTED_REPLAYS`]).
    async fn list(&self, pipeline: &str) -> Result<Vec<StoredReplay>>;
    /// Writes a marker (again: harmless).
    async fn mark(&self, pipeline: &str, id: &ReplayId, marker: Marker) -> Result<()>;
}

/// The conflict check every adapter runs before it writes a plan.
pub(crate) fn check_no_running_target(existing: &[StoredReplay], plan: &ReplayPlan) -> Result<()> {
    match existing
        .iter()
        .find(|r| r.plan.target_table == plan.target_table && r.running())
    {
        Some(r) => Err(target_conflict(&plan.target_table, &r.plan.replay_id)),
        None => Ok(()),
    }
}

/// A pipeline name safe as one path segment.
pub(crate) fn check_pipeline_name(pipeline: &str) -> Result<()> {
    let ok = !pipeline.is_empty()
        && pipeline.len() <= 255
        && pipeline != "."
        && pipeline != ".."
        && pipeline
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(super::problem::ReplayNotFound::error(format!(
            "pipeline `{pipeline:.64}`"
        )))
    }
}

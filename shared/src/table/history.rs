//! A table's snapshots and references as plain values: what the maintenance policy
//! (`crate::compactor::policy`), checkpoints and `--as-of` reads decide on, free of iceberg's
//! types so the decisions are pure functions with unit tests.
//!
//! Cost: one pass over the metadata's snapshots, plus one serialization of the metadata to
//! read its references (iceberg 0.10 has no public accessor for all of them; see
//! `commit::refs`). Maintenance and time travel only, never the merge path.

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{MAIN_BRANCH, TableMetadata};

use super::commit;
use crate::error::Result;

/// One snapshot of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: i64,
    pub parent_id: Option<i64>,
    /// When it was committed (milliseconds since the Unix epoch).
    pub timestamp_ms: i64,
    pub sequence_number: i64,
    /// `append`, `overwrite`, `replace`, `delete`.
    pub operation: String,
    /// The summary's properties (refold's offset maps among them).
    pub summary: HashMap<String, String>,
}

/// A named reference: a branch (`main`, others) or a tag (checkpoints, others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefInfo {
    pub name: String,
    pub snapshot_id: i64,
    pub is_branch: bool,
}

/// Every snapshot and reference of one metadata version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub snapshots: BTreeMap<i64, SnapshotInfo>,
    /// Sorted by name.
    pub refs: Vec<RefInfo>,
    /// Main's current snapshot.
    pub current: Option<i64>,
}

impl History {
    pub fn from_metadata(md: &TableMetadata) -> Result<Self> {
        let snapshots = md
            .snapshots()
            .map(|s| {
                let info = SnapshotInfo {
                    id: s.snapshot_id(),
                    parent_id: s.parent_snapshot_id(),
                    timestamp_ms: s.timestamp_ms(),
                    sequence_number: s.sequence_number(),
                    operation: s.summary().operation.as_str().to_string(),
                    summary: s.summary().additional_properties.clone(),
                };
                (info.id, info)
            })
            .collect();
        let mut refs: Vec<RefInfo> = commit::refs(md)?
            .into_iter()
            .map(|(name, r)| RefInfo {
                is_branch: r.is_branch(),
                snapshot_id: r.snapshot_id,
                name,
            })
            .collect();
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            snapshots,
            refs,
            current: md.current_snapshot_id(),
        })
    }

    pub fn snapshot(&self, id: i64) -> Option<&SnapshotInfo> {
        self.snapshots.get(&id)
    }

    /// `head` and its ancestors present in the metadata, newest first (stops at the first
    /// missing parent: expired history).
    pub fn ancestry(&self, head: i64) -> Vec<&SnapshotInfo> {
        let mut out = Vec::new();
        let mut cur = self.snapshots.get(&head);
        while let Some(s) = cur {
            out.push(s);
            // Parents are older: a cycle would be corrupt metadata; the bound ends it anyway.
            if out.len() > self.snapshots.len() {
                break;
            }
            cur = s.parent_id.and_then(|p| self.snapshots.get(&p));
        }
        out
    }

    /// The branches' heads, main first.
    pub fn branches(&self) -> Vec<&RefInfo> {
        let mut b: Vec<&RefInfo> = self.refs.iter().filter(|r| r.is_branch).collect();
        b.sort_by_key(|r| (r.name != MAIN_BRANCH, r.name.clone()));
        b
    }

    pub fn tags(&self) -> impl Iterator<Item = &RefInfo> {
        self.refs.iter().filter(|r| !r.is_branch)
    }
}

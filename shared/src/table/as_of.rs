//! Checkpoints and the table as it was.
//!
//! A checkpoint is an Iceberg tag `checkpoint-<UTC time>` on a snapshot whose summary
//! carries the consumer group's offset map: zero copy, readable by every engine
//! (`VERSION AS OF 'checkpoint-...'`), kept by snapshot expiry for as long as the tag lives.
//! [`StateTable::take_checkpoint`] first makes sure main's current snapshot carries the
//! offsets (after another engine's commit it may not: then an offsets-only snapshot, no
//! files, goes on top), then tags it and drops the oldest checkpoint tags beyond the limit.
//!
//! `--as-of` ([`AsOf`]): a tag name, or a time: the newest kept snapshot that was main's
//! state at or before it (main's snapshot log, then the checkpoints for times older than the
//! log). [`StateTable::rows_at`] reads a snapshot's rows as `current_rows` reads the current
//! one.

use std::collections::{BTreeMap, HashMap};

use chrono::DateTime;
use iceberg::spec::{Operation, TableMetadata};
use serde::Serialize;

use super::commit::{self, CommitResult, SnapshotChange};
use super::history::History;
use super::merge::WRITER;
use super::retry::{self, Attempt};
use super::{CHECKPOINT_TAG_PREFIX, Loaded, StateRow, StateTable, files, lookup, offsets};
use crate::error::{Error, ErrorKind, Result};

/// One checkpoint tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub name: String,
    pub snapshot_id: i64,
    /// When the tagged snapshot was committed (milliseconds since the Unix epoch).
    pub snapshot_time_ms: i64,
    /// The consumer group's next offset per source partition at that snapshot (empty when
    /// nothing says: a foreign snapshot whose kept ancestors carry none).
    pub offsets: BTreeMap<i32, i64>,
}

/// What `--as-of` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsOf {
    /// A tag (a checkpoint, or any other) or branch name.
    Ref(String),
    /// A time, milliseconds since the Unix epoch.
    TimeMs(i64),
}

impl AsOf {
    /// An RFC 3339 time (`2026-12-02T03:00:00Z`, `...+01:00`) or else a tag name.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "--as-of: empty (a checkpoint name or an RFC 3339 time)",
            ));
        }
        match DateTime::parse_from_rfc3339(t) {
            Ok(dt) => Ok(AsOf::TimeMs(dt.timestamp_millis())),
            Err(_) => Ok(AsOf::Ref(t.to_string())),
        }
    }
}

/// The snapshot an [`AsOf`] resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub snapshot_id: i64,
    pub snapshot_time_ms: i64,
    /// How: `tag <name>`, `branch <name>`, `snapshot log`, `checkpoint <name>`.
    pub via: String,
    /// Whether the snapshot was main's state at the asked time for certain: false when
    /// snapshots between it and that time were expired (it is then the newest kept one).
    pub exact: bool,
    pub offsets: BTreeMap<i32, i64>,
}

/// A checkpoint that took place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointTaken {
    pub name: String,
    pub snapshot_id: i64,
    /// An offsets-only snapshot was committed first (the current one did not carry them).
    pub offsets_snapshot: bool,
    /// Checkpoint tags removed to keep the limit.
    pub dropped: Vec<String>,
    /// The name existed already (a retried pass): nothing changed.
    pub existed: bool,
}

impl StateTable {
    /// The group's offsets at `snapshot`: its summary, else its kept ancestors' (bounded).
    fn offsets_at(&self, h: &History, snapshot: i64) -> Result<BTreeMap<i32, i64>> {
        let key = self.offsets_key();
        let chain = h.ancestry(snapshot);
        let limit = self.limits.max_offset_history_snapshots.max(1);
        for s in chain.iter().take(limit) {
            if let Some(v) = s.summary.get(&key) {
                return offsets::decode(v)
                    .map_err(|e| e.with_context(format!("{key} of snapshot {}", s.id)));
            }
        }
        Ok(BTreeMap::new())
    }

    fn checkpoints_of(&self, h: &History) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        for t in h
            .tags()
            .filter(|t| t.name.starts_with(CHECKPOINT_TAG_PREFIX))
        {
            out.push(Checkpoint {
                name: t.name.clone(),
                snapshot_id: t.snapshot_id,
                snapshot_time_ms: h.snapshot(t.snapshot_id).map_or(0, |s| s.timestamp_ms),
                offsets: self.offsets_at(h, t.snapshot_id)?,
            });
        }
        // Names carry their UTC time in a sortable form: name order is time order.
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The checkpoints, oldest first, with their snapshots and offsets.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let l = self.load().await?;
        self.checkpoints_of(&History::from_metadata(&l.metadata)?)
    }

    /// The snapshots and references of the current metadata.
    pub async fn history(&self) -> Result<History> {
        let l = self.load().await?;
        History::from_metadata(&l.metadata)
    }

    /// Commits an offsets-only snapshot (no files) when main's current snapshot does not
    /// carry this group's offsets; `false` when it does (or the table has no snapshot).
    async fn ensure_offsets_on_current(&self) -> Result<bool> {
        retry::with_commit_retry!(self, |base, _| self.offsets_snapshot_attempt(&base).await)
    }

    async fn offsets_snapshot_attempt(&self, base: &Loaded) -> Result<Attempt<bool>> {
        let md: &TableMetadata = &base.metadata;
        let key = self.offsets_key();
        let carries = md
            .current_snapshot()
            .is_none_or(|s| s.summary().additional_properties.contains_key(&key));
        if carries {
            return Ok(Attempt::Done(false));
        }
        let summary = HashMap::from([
            (key, offsets::encode(&self.read_offsets(md)?)),
            ("refold.writer".to_string(), WRITER.to_string()),
            ("refold.offsets-only".to_string(), "true".to_string()),
        ]);
        let change = SnapshotChange {
            operation: Operation::Append,
            added_data: vec![],
            added_deletes: vec![],
            removed_paths: Default::default(),
            removed_partition: None,
            summary,
            properties: HashMap::new(),
        };
        let res = commit::commit_snapshot(
            &self.file_io,
            self.catalog.as_ref(),
            &self.ident,
            base,
            &change,
            &self.manifests,
        )
        .await?;
        Ok(match res {
            CommitResult::Committed { .. } => Attempt::Done(true),
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }

    /// Tags main's current snapshot `name` (see the module docs), keeping the newest
    /// `max_kept` checkpoints. Fails on a table without snapshots.
    pub async fn take_checkpoint(&self, name: &str, max_kept: usize) -> Result<CheckpointTaken> {
        let ctx = || format!("checkpoint {name} of {}", self.cfg.table);
        let before = self
            .checkpoints()
            .await
            .map_err(|e| e.with_context(ctx()))?;
        let existed = before.iter().any(|c| c.name == name);
        let offsets_snapshot = if existed {
            false
        } else {
            self.ensure_offsets_on_current()
                .await
                .map_err(|e| e.with_context(ctx()))?
        };
        self.tag_checkpoint(name, max_kept).await?;
        let after = self
            .checkpoints()
            .await
            .map_err(|e| e.with_context(ctx()))?;
        let snapshot_id = after
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.snapshot_id)
            .ok_or_else(|| {
                Error::new(ErrorKind::Internal, "the new tag is missing").with_context(ctx())
            })?;
        let dropped = before
            .iter()
            .filter(|b| !after.iter().any(|a| a.name == b.name))
            .map(|b| b.name.clone())
            .collect();
        Ok(CheckpointTaken {
            name: name.to_string(),
            snapshot_id,
            offsets_snapshot,
            dropped,
            existed,
        })
    }

    /// The snapshot `as_of` names (see the module docs); `NotFound` when there is none.
    pub async fn resolve_as_of(&self, as_of: &AsOf) -> Result<Resolved> {
        let l = self.load().await?;
        let h = History::from_metadata(&l.metadata)?;
        let (snapshot_id, via, exact) = match as_of {
            AsOf::Ref(name) => resolve_ref(&h, name)?,
            AsOf::TimeMs(t) => resolve_time(&h, &l.metadata, *t)?,
        };
        let snapshot_time_ms = h.snapshot(snapshot_id).map_or(0, |s| s.timestamp_ms);
        Ok(Resolved {
            snapshot_id,
            snapshot_time_ms,
            via,
            exact,
            offsets: self.offsets_at(&h, snapshot_id)?,
        })
    }

    /// The rows of snapshot `snapshot_id`, optionally of one tenant and/or key, sorted by
    /// (tenant, key). Cost: every live file of that snapshot.
    pub async fn rows_at(
        &self,
        snapshot_id: i64,
        tenant: Option<&str>,
        key: Option<&str>,
    ) -> Result<Vec<StateRow>> {
        let l = self.load().await?;
        let snapshot = l.metadata.snapshot_by_id(snapshot_id).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("snapshot {snapshot_id} of {} is not kept", self.cfg.table),
            )
        })?;
        let live =
            files::live_files_of(&self.file_io, &l.metadata, snapshot, None, &self.manifests)
                .await?;
        let mut rows = lookup::scan_rows(&self.file_io, &self.codec, &live, tenant, key).await?;
        rows.sort_by(|a, b| (&a.tenant_id, &a.key).cmp(&(&b.tenant_id, &b.key)));
        Ok(rows)
    }
}

fn resolve_ref(h: &History, name: &str) -> Result<(i64, String, bool)> {
    match h.refs.iter().find(|r| r.name == name) {
        Some(r) => {
            let kind = if r.is_branch { "branch" } else { "tag" };
            Ok((r.snapshot_id, format!("{kind} {name}"), true))
        }
        None => {
            let names: Vec<&str> = h.refs.iter().map(|r| r.name.as_str()).collect();
            Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "no checkpoint or tag `{name}` (the table has: {}); or give an RFC 3339 \
                     time, e.g. 2026-12-02T03:00:00Z",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The newest kept snapshot that was main's state at or before `t`: from main's snapshot log
/// (exact), else the newest checkpoint taken at or before `t` (not exact: snapshots after it
/// may have been expired).
fn resolve_time(h: &History, md: &TableMetadata, t: i64) -> Result<(i64, String, bool)> {
    let log = md.history();
    let in_log = log
        .iter()
        .rev()
        .find(|e| e.timestamp_ms <= t && h.snapshot(e.snapshot_id).is_some());
    if let Some(e) = in_log {
        return Ok((e.snapshot_id, "snapshot log".to_string(), true));
    }
    let log_start = log.first().map_or(i64::MAX, |e| e.timestamp_ms);
    let tagged = h
        .tags()
        .filter_map(|r| {
            h.snapshot(r.snapshot_id)
                .map(|s| (s.timestamp_ms, &r.name, s.id))
        })
        .filter(|(ts, _, _)| *ts <= t && *ts < log_start)
        .max();
    if let Some((_, name, id)) = tagged {
        return Ok((id, format!("checkpoint {name}"), false));
    }
    let oldest = h.snapshots.values().map(|s| s.timestamp_ms).min();
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "no kept snapshot at or before {} (oldest kept: {})",
            fmt_ms(t),
            oldest.map_or("none".to_string(), fmt_ms)
        ),
    ))
}

/// A time in milliseconds as RFC 3339 UTC.
pub fn fmt_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn as_of_parses_times_and_names() {
        assert_eq!(
            AsOf::parse("2026-12-02T03:00:00Z").unwrap(),
            AsOf::TimeMs(1_796_180_400_000)
        );
        assert_eq!(
            AsOf::parse("2026-12-02T04:00:00+01:00").unwrap(),
            AsOf::TimeMs(1_796_180_400_000)
        );
        assert_eq!(
            AsOf::parse("checkpoint-20261202T030000Z").unwrap(),
            AsOf::Ref("checkpoint-20261202T030000Z".into())
        );
        assert!(AsOf::parse(" ").is_err());
        assert_eq!(fmt_ms(1_796_180_400_000), "2026-12-02T03:00:00.000Z");
    }
}

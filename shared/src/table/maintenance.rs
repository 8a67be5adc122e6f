//! Keeping a state table cheap to read: compaction (one `replace` snapshot per partition),
//! checkpoint tags, and snapshot expiry. Each is one commit through the `retry` loop.

use std::collections::HashMap;

use iceberg::spec::{DataFile, Operation};

use super::commit::{self, CommitResult, SnapshotChange};
use super::files::{self, LiveFiles};
use super::merge::WRITER;
use super::retry::{self, Attempt};
use super::{Loaded, StateTable, lookup, offsets, writer};
use crate::error::{Error, ErrorKind, Result};

/// Prefix of the tags `tag_checkpoint` creates and prunes; other tags are left alone.
pub const CHECKPOINT_TAG_PREFIX: &str = "checkpoint-";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// One snapshot per compacted partition.
    pub snapshot_ids: Vec<i64>,
    pub partitions_compacted: Vec<i32>,
    pub rows_kept: usize,
    pub data_files_removed: usize,
    pub delete_files_removed: usize,
    pub data_files_added: usize,
}

/// The files one compaction of a partition wrote, valid while the partition's live files are
/// exactly `removed`.
struct CompactPlan {
    removed: Vec<String>,
    added: Vec<DataFile>,
    rows: usize,
}

/// What one committed compaction of a partition did.
struct Compacted {
    snapshot_id: i64,
    rows: usize,
    data_removed: usize,
    deletes_removed: usize,
    data_added: usize,
}

impl StateTable {
    /// Rewrites the live rows of one partition (or of every partition that has delete files or
    /// more than one data file) into sorted files and drops its delete files: one `replace`
    /// snapshot per partition, carrying every `refold.offsets.*` map forward unchanged.
    pub async fn compact(&self, partition: Option<i32>) -> Result<CompactOutcome> {
        let ctx = || format!("compact {} partition {partition:?}", self.cfg.table);
        let base = self.load().await.map_err(|e| e.with_context(ctx()))?;
        let parts: Vec<i32> = match partition {
            Some(p) => vec![p],
            None => {
                let live =
                    files::live_files(&self.file_io, &base.metadata, None, &self.manifests).await?;
                live.partitions_needing_compaction()
            }
        };
        let mut out = CompactOutcome::default();
        for p in parts {
            let done = self
                .compact_partition(p)
                .await
                .map_err(|e| e.with_context(ctx()))?;
            if let Some(c) = done {
                out.snapshot_ids.push(c.snapshot_id);
                out.partitions_compacted.push(p);
                out.rows_kept += c.rows;
                out.data_files_removed += c.data_removed;
                out.delete_files_removed += c.deletes_removed;
                out.data_files_added += c.data_added;
            }
        }
        Ok(out)
    }

    /// `None`: the partition is compact already.
    async fn compact_partition(&self, partition: i32) -> Result<Option<Compacted>> {
        let mut plan: Option<CompactPlan> = None;
        let res = retry::with_commit_retry!(self, |base, n| self
            .compact_attempt(partition, &mut plan, base, n)
            .await);
        if let Err(e) = &res
            && e.kind() == ErrorKind::CommitConflict
            && let Some(p) = plan.take()
        {
            let paths = p.added.iter().map(|f| f.file_path().to_string());
            writer::delete_files_best_effort(&self.file_io, paths).await;
        }
        res
    }

    async fn compact_attempt(
        &self,
        partition: i32,
        plan: &mut Option<CompactPlan>,
        base: Loaded,
        attempt: u32,
    ) -> Result<Attempt<Option<Compacted>>> {
        self.check_base(&base)?;
        let live = files::live_files(
            &self.file_io,
            &base.metadata,
            Some(partition),
            &self.manifests,
        )
        .await?;
        let mut now: Vec<String> = live.all_paths();
        now.sort();
        if live.data.len() <= 1 && live.deletes.is_empty() && plan.is_none() {
            return Ok(Attempt::Done(None));
        }
        if !matches!(plan, Some(p) if p.removed == now) {
            if let Some(old) = plan.take() {
                let paths = old.added.iter().map(|f| f.file_path().to_string());
                writer::delete_files_best_effort(&self.file_io, paths).await;
            }
            *plan = Some(self.write_compacted(partition, &base, &live, now).await?);
        }
        let Some(p) = plan.as_ref() else {
            return Err(Error::new(ErrorKind::Internal, "compaction plan missing"));
        };
        let mut summary = self.carried_offsets(&base);
        summary.insert("refold.compacted-partition".into(), partition.to_string());
        summary.insert("refold.writer".into(), WRITER.into());
        self.hooks
            .run(super::hooks::HookPoint::CompactBeforeCommit, attempt)
            .await;
        let change = SnapshotChange {
            operation: Operation::Replace,
            added_data: p.added.clone(),
            added_deletes: vec![],
            removed_paths: p.removed.iter().cloned().collect(),
            removed_partition: Some(partition),
            summary,
            properties: HashMap::new(),
        };
        let res = commit::commit_snapshot(
            &self.file_io,
            self.catalog.as_ref(),
            &self.ident,
            &base,
            &change,
            &self.manifests,
        )
        .await?;
        Ok(match res {
            CommitResult::Committed { snapshot_id } => Attempt::Done(Some(Compacted {
                snapshot_id,
                rows: p.rows,
                data_removed: live.data.len(),
                deletes_removed: live.deletes.len(),
                data_added: p.added.len(),
            })),
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }

    /// Reads the partition's live rows and writes them as sorted files.
    async fn write_compacted(
        &self,
        partition: i32,
        base: &Loaded,
        live: &LiveFiles,
        removed: Vec<String>,
    ) -> Result<CompactPlan> {
        let total: u64 = live.data.iter().map(|f| f.file.record_count()).sum();
        if total as usize > self.limits.max_rows_per_compaction {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{total} rows exceed max_rows_per_compaction {}",
                    self.limits.max_rows_per_compaction
                ),
            ));
        }
        let mut rows = lookup::scan_rows(&self.file_io, &self.codec, live, None, None).await?;
        rows.sort_by(|a, b| (&a.tenant_id, &a.key).cmp(&(&b.tenant_id, &b.key)));
        let added = if rows.is_empty() {
            vec![]
        } else {
            writer::write_rows(
                &self.file_io,
                &base.metadata,
                &self.codec,
                partition,
                &rows,
                &self.limits,
            )
            .await?
        };
        Ok(CompactPlan {
            removed,
            added,
            rows: rows.len(),
        })
    }

    /// A replace holds the same logical rows, so every offset map the base's current snapshot
    /// carries goes forward unchanged (any group's: the table may have had other writers),
    /// plus this group's where only the table property or an ancestor had it.
    pub(super) fn carried_offsets(&self, base: &Loaded) -> HashMap<String, String> {
        let md = &base.metadata;
        let mut summary: HashMap<String, String> = md
            .current_snapshot()
            .map(|s| {
                s.summary()
                    .additional_properties
                    .iter()
                    .filter(|(k, _)| k.starts_with(offsets::OFFSETS_PROPERTY_PREFIX))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let key = self.offsets_key();
        if !summary.contains_key(&key)
            && let Ok(own) = self.read_offsets(md)
            && !own.is_empty()
        {
            summary.insert(key, offsets::encode(&own));
        }
        summary
    }

    /// Tags the current snapshot `name` (which must start with [`CHECKPOINT_TAG_PREFIX`]) and
    /// removes the oldest checkpoint tags beyond `max_kept`. A name already tagged is kept as
    /// it is (a retried call is a no-op). Fails on an empty table (nothing to tag).
    pub async fn tag_checkpoint(&self, name: &str, max_kept: usize) -> Result<()> {
        let ctx = || format!("tag {} as {name}", self.cfg.table);
        if !name.starts_with(CHECKPOINT_TAG_PREFIX) || name.len() == CHECKPOINT_TAG_PREFIX.len() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("checkpoint tag names start with `{CHECKPOINT_TAG_PREFIX}`"),
            )
            .with_context(ctx()));
        }
        if max_kept == 0 {
            return Err(
                Error::new(ErrorKind::InvalidInput, "max_kept must be at least 1")
                    .with_context(ctx()),
            );
        }
        retry::with_commit_retry!(self, |base, _| {
            let res = commit::commit_checkpoint_tag(
                &self.file_io,
                self.catalog.as_ref(),
                &self.ident,
                &base,
                name,
                max_kept,
            )
            .await?;
            Ok::<_, Error>(match res {
                CommitResult::Committed { .. } => Attempt::Done(()),
                CommitResult::Lost(why) => Attempt::Lost(why),
            })
        })
        .map_err(|e| e.with_context(ctx()))
    }

    /// Drops snapshots from the table metadata that are neither among the newest
    /// `keep_last` (>= 1) of main nor tagged (checkpoints) — so the metadata every merge
    /// reads stays small. Metadata only: data and manifest files stay (no orphan sweep yet).
    /// Returns how many snapshots were removed.
    pub async fn expire_snapshots(&self, keep_last: usize) -> Result<usize> {
        let ctx = || format!("expire snapshots of {}", self.cfg.table);
        retry::with_commit_retry!(self, |base, _| {
            let res = commit::commit_expire_snapshots(
                &self.file_io,
                self.catalog.as_ref(),
                &self.ident,
                &base,
                keep_last,
            )
            .await?;
            Ok::<_, Error>(match res {
                (CommitResult::Committed { .. }, n) => Attempt::Done(n),
                (CommitResult::Lost(why), _) => Attempt::Lost(why),
            })
        })
        .map_err(|e| e.with_context(ctx()))
    }

    /// The checkpoint tags, oldest first: (name, snapshot id, snapshot time in ms).
    pub async fn checkpoint_tags(&self) -> Result<Vec<(String, i64, i64)>> {
        let l = self.load().await?;
        commit::checkpoint_tags(&l.metadata)
    }
}

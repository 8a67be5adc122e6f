//! [`Archive::compact`]: the archive's small files merged per Iceberg partition (day,
//! entity type). fold-batch appends one file per partition it touches per batch, so a busy
//! day collects thousands; a scan (replay, history, every engine's query) opens each.
//! The snapshot-compactor runs this on its schedule.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryStreamExt;
use iceberg::spec::{DataFile, Operation, PartitionKey};
use serde::Serialize;

use super::{Archive, ArchivedEvent, event};
use crate::error::{Error, ErrorKind, Result};
use crate::table::commit::{self, CommitResult, SnapshotChange};
use crate::table::retry::{self, Attempt};
use crate::table::{Loaded, files, reader, writer};

/// What one compaction of the archive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveCompaction {
    /// Iceberg partitions (day, entity type) rewritten.
    pub partitions: usize,
    pub files_removed: usize,
    pub files_added: usize,
    pub rows: u64,
    /// Snapshots dropped from the metadata afterwards.
    pub snapshots_expired: usize,
}

/// When a partition is worth rewriting, and how much one rewrite may hold.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveCompactionPolicy {
    /// At least this many small files in one partition.
    pub min_small_files: usize,
    /// A file smaller than this is small.
    pub small_file_bytes: u64,
    /// Rows one partition's rewrite may read (memory).
    pub max_rows: u64,
}

/// One partition's rewrite: the files it replaces and the ones written.
struct Plan {
    removed: Vec<String>,
    added: Vec<DataFile>,
    rows: u64,
}

impl Archive {
    /// Rewrites each partition with at least `min_small_files` small files into files of
    /// the target size, sorted by (Kafka partition, offset); one snapshot per partition.
    /// Appends that land meanwhile only add files, so a lost commit is re-based; a file
    /// gone meanwhile (another compaction) drops this partition's rewrite.
    pub async fn compact(&self, policy: &ArchiveCompactionPolicy) -> Result<ArchiveCompaction> {
        let base = self.load().await?;
        let live = files::live_files(&self.file_io, &base.metadata, None, &self.manifests).await?;
        let mut groups: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
        for f in live.data {
            if f.file.file_size_in_bytes() < policy.small_file_bytes {
                groups
                    .entry(format!("{:?}", f.file.partition()))
                    .or_default()
                    .push(f.file);
            }
        }
        let mut out = ArchiveCompaction::default();
        for small in groups.into_values() {
            let rows: u64 = small.iter().map(DataFile::record_count).sum();
            if small.len() < policy.min_small_files.max(2) || rows > policy.max_rows {
                continue;
            }
            if let Some(p) = self.compact_partition(&base, small).await? {
                out.partitions += 1;
                out.files_removed += p.removed.len();
                out.files_added += p.added.len();
                out.rows += p.rows;
            }
        }
        Ok(out)
    }

    async fn compact_partition(&self, base: &Loaded, small: Vec<DataFile>) -> Result<Option<Plan>> {
        let plan = self.rewrite(base, &small).await?;
        let mut plan = Some(plan);
        let res = retry::with_commit_retry!(self, |b, _n| self.compact_attempt(&mut plan, b).await);
        // Never committed: the partition changed meanwhile, or the race was lost too often.
        // (After any other error the commit may have landed: then the files stay.)
        let abandoned = match &res {
            Ok(done) => done.is_none(),
            Err(e) => e.kind() == ErrorKind::CommitConflict,
        };
        if abandoned && let Some(p) = plan.take() {
            let paths = p.added.iter().map(|f| f.file_path().to_string());
            writer::delete_files_best_effort(&self.file_io, paths).await;
        }
        res
    }

    async fn compact_attempt(
        &self,
        plan: &mut Option<Plan>,
        base: Loaded,
    ) -> Result<Attempt<Option<Plan>>> {
        self.check_base(&base)?;
        let Some(p) = plan.as_ref() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "archive compaction plan missing",
            ));
        };
        let live = files::live_files(&self.file_io, &base.metadata, None, &self.manifests).await?;
        let now: HashSet<&str> = live.data.iter().map(|f| f.file.file_path()).collect();
        if !p.removed.iter().all(|r| now.contains(r.as_str())) {
            return Ok(Attempt::Done(None));
        }
        let change = SnapshotChange {
            operation: Operation::Replace,
            added_data: p.added.clone(),
            added_deletes: vec![],
            removed_paths: p.removed.iter().cloned().collect(),
            removed_partition: None,
            summary: carried_offsets(&base),
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
            CommitResult::Committed { .. } => Attempt::Done(plan.take()),
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }

    /// Reads the small files' rows and writes them again, sorted, as one partition's files.
    async fn rewrite(&self, base: &Loaded, small: &[DataFile]) -> Result<Plan> {
        let md = &base.metadata;
        let mut rows: Vec<ArchivedEvent> = Vec::new();
        for f in small {
            let path = f.file_path();
            let stream = reader::open(&self.file_io, path, f.file_size_in_bytes(), false, false)
                .await?
                .build()
                .map_err(|e| Error::new(ErrorKind::Io, format!("read {path}")).with_source(e))?;
            let batches: Vec<_> = stream
                .try_collect()
                .await
                .map_err(|e| Error::new(ErrorKind::Io, format!("read {path}")).with_source(e))?;
            for b in &batches {
                rows.extend(event::from_batch(b)?);
            }
        }
        rows.sort_by_key(|e| (e.kafka_partition, e.kafka_offset));
        let key = PartitionKey::new(
            md.default_partition_spec().as_ref().clone(),
            md.current_schema().clone(),
            small[0].partition().clone(),
        );
        // One Kafka partition per file, as appends write them: first offsets come from the
        // files' bounds (`Archive::first_offsets`), not from reading every row.
        let mut added = Vec::new();
        for part in rows.chunk_by(|a, b| a.kafka_partition == b.kafka_partition) {
            let part = event::to_batch(&self.arrow, part)?;
            match self.write_partition(md, key.clone(), part).await {
                Ok(files) => added.extend(files),
                Err(e) => {
                    let paths = added.iter().map(|f: &DataFile| f.file_path().to_string());
                    writer::delete_files_best_effort(&self.file_io, paths).await;
                    return Err(e);
                }
            }
        }
        Ok(Plan {
            removed: small.iter().map(|f| f.file_path().to_string()).collect(),
            added,
            rows: rows.len() as u64,
        })
    }
}

impl Archive {
    /// Drops from the metadata every snapshot but the newest `keep_last` (>= 1) of main:
    /// each append rewrites the metadata, which lists every snapshot, so an unbounded list
    /// slows every commit. The offsets survive in the table property. Metadata only: the
    /// files of rewritten data stay in storage (no orphan sweep of the archive yet).
    pub async fn expire_snapshots(&self, keep_last: usize) -> Result<usize> {
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
        .map_err(|e| e.with_context(format!("expire snapshots of {}", self.cfg.table)))
    }
}

/// Every `refold.offsets.*` entry of the current snapshot's summary (a replace must not hide
/// a consumer group's offsets behind a snapshot that lacks them).
fn carried_offsets(base: &Loaded) -> HashMap<String, String> {
    let mut summary: HashMap<String, String> = base
        .metadata
        .current_snapshot()
        .map(|s| {
            s.summary()
                .additional_properties
                .iter()
                .filter(|(k, _)| k.starts_with(crate::table::offsets::OFFSETS_PROPERTY_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    summary.insert("refold.writer".into(), crate::table::WRITER.into());
    summary.insert("refold.archive-compaction".into(), "true".into());
    summary
}

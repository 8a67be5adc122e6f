//! The batch engine: one batch of source records onto the state table, partition by
//! partition, exactly once in effect. Every consumer runs this one code path: the
//! fold-batch Lambda (records from the Kafka ESM event), `refold demo` (records from the
//! in-process Kafka), and the replay worker (records read from Kafka directly).
//!
//! Per partition: [`batch::decode`], the event archive's append started beside the rest
//! ([`archive_task`]: it builds its rows from the same decoded envelopes, on another core),
//! [`batch::prepare_decoded`] (key check, group), then [`StateTable::merge_batch`] with a step
//! that folds onto the priors the table found, writes the partition's dead letters and
//! waits for the archive's commit, all *before* the commit that moves the offsets past
//! them (dead letters under a name that is a function of the batch: a rewrite is
//! harmless). A crash or a store error anywhere before the commit leaves the offsets where
//! they were, so the source delivers the batch again and nothing is lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;

use crate::archive::{Archive, EventColumns};
use crate::batch::{self, CompiledPipeline, Counts, Folded};
use crate::dead_letter::{DeadLetter, DeadLetterStore};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::ErrorPolicy;
use crate::record::SourceRecord;
use crate::table::{CatalogConfig, FoldedBatch, StateTable};

mod archive_task;
pub mod config;
pub mod partitions;

use archive_task::ArchiveTask;

pub use config::{archive_config, table_config};

/// Records (decodable or not) one [`BatchProcessor::process`] takes. An event source mapping
/// batch is at most 10,000 records (and 6 MB), a replay batch `REFOLD_REPLAY_BATCH_RECORDS`
/// (10,000 by default); ten times that is a caller's bug, refused before any work.
pub const MAX_RECORDS_PER_BATCH: usize = 100_000;

/// Refuses a batch of more than [`MAX_RECORDS_PER_BATCH`] records.
pub fn check_batch_size(records: usize) -> Result<()> {
    if records > MAX_RECORDS_PER_BATCH {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a batch of {records} records, more than the limit of {MAX_RECORDS_PER_BATCH}: \
                 split it"
            ),
        ));
    }
    Ok(())
}

/// What one batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    /// Every record of the batch (decoded or not) is in exactly one count.
    pub counts: Counts,
    /// Under policy `fail`: per partition, the offset the source must deliver again from.
    pub failed_at: BTreeMap<i32, i64>,
    /// State rows written.
    pub keys: usize,
    /// Snapshots committed (one per partition that moved).
    pub snapshots: usize,
    pub fold_ms: f64,
    /// Everything else of the merge: lookup, files, dead letters, commit.
    pub commit_ms: f64,
    /// The dead letters written (policy `dead_letter`).
    pub dead_letters: Vec<DeadLetter>,
    /// Events appended to the event archive (a redelivery appends none).
    pub archived: usize,
}

/// One partition's records (sorted by offset) and their decoded envelopes: read by the
/// merge and, at the same time, by the archive's append task, which builds its rows from
/// them on another core.
struct DecodedPartition {
    records: Vec<SourceRecord>,
    /// `decoded[i]` is record `i`'s.
    decoded: Vec<batch::Decoded>,
}

impl DecodedPartition {
    /// The archive's rows: every record whose envelope decoded, in offset order.
    fn archive_rows(&self, cp: &CompiledPipeline, archive: &Archive) -> Result<RecordBatch> {
        let mut columns = EventColumns::with_capacity(self.records.len());
        self.records
            .iter()
            .zip(&self.decoded)
            .filter_map(|(r, d)| Some((r, d.envelope.as_ref().ok()?, d)))
            .try_for_each(|(r, e, d)| columns.push(r, e, d.row_key(cp).as_deref()))?;
        columns.finish(archive.arrow_schema())
    }
}

/// What one partition of a batch did.
struct PartitionReport {
    /// The fold's outcome (its rows moved into the commit: see `rows`).
    folded: Folded,
    rows: usize,
    snapshot: bool,
    archived: usize,
    fold_ms: f64,
    merge_ms: f64,
}

/// The batch engine of one pipeline and its state table.
pub struct BatchProcessor {
    /// Shared with the archive's append tasks (they read row keys through it).
    cp: Arc<CompiledPipeline>,
    table: StateTable,
    dead_letters: Arc<dyn DeadLetterStore>,
    /// The source's event archive; None for `archive: false` and for replays (which
    /// read history rather than record it).
    archive: Option<Arc<Archive>>,
    /// The source topic's partition count to hold batches to (see [`partitions`]).
    source_partitions: Option<u32>,
}

impl BatchProcessor {
    pub fn new(
        cp: CompiledPipeline,
        table: StateTable,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Self {
        // Held to the partition count the pipeline declares (`open` adds the recorded one).
        let source_partitions = cp
            .pipeline
            .source_of(cp.pipeline.transformation())
            .partitions;
        Self {
            cp: Arc::new(cp),
            table,
            dead_letters,
            archive: None,
            source_partitions,
        }
    }

    /// Opens (or creates) the pipeline's state table and event archive in `catalog`.
    pub async fn open(
        cp: CompiledPipeline,
        catalog: CatalogConfig,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Result<Self> {
        let archive = match archive_config(&cp, catalog.clone()) {
            Some(cfg) => Some(Arc::new(Archive::open_or_create(cfg).await?)),
            None => None,
        };
        let table = StateTable::open_or_create(table_config(&cp, catalog)?).await?;
        let mut p = Self::new(cp, table, dead_letters);
        p.archive = archive;
        p.source_partitions = partitions::effective(
            &p.table.config().table.to_string(),
            p.source_partitions,
            p.table.properties_at_open(),
        )?;
        Ok(p)
    }

    /// The event archive this processor appends to, if any.
    pub fn archive(&self) -> Option<&Archive> {
        self.archive.as_deref()
    }

    /// Pipeline, catalog and dead letters from the environment (see [`config`]).
    pub async fn from_env() -> Result<Self> {
        let dead_letters = config::dead_letters_from_env()?;
        Self::open(
            config::pipeline_from_env()?,
            config::catalog_from_env()?,
            dead_letters,
        )
        .await
    }

    pub fn pipeline_name(&self) -> &str {
        self.cp.name()
    }

    pub fn pipeline(&self) -> &CompiledPipeline {
        &self.cp
    }

    pub fn table(&self) -> &StateTable {
        &self.table
    }

    pub fn dead_letter_store(&self) -> &dyn DeadLetterStore {
        self.dead_letters.as_ref()
    }

    /// Folds a batch and merges it, one snapshot per partition that moves. `records` may
    /// come in any order; `undecodable` are records of the batch that could not be read at
    /// all (bad base64): they take the same path as every other poison record.
    pub async fn process(
        &self,
        records: Vec<SourceRecord>,
        undecodable: Vec<DeadLetter>,
    ) -> Result<BatchReport> {
        check_batch_size(records.len() + undecodable.len())?;
        partitions::check(
            &self.table.config().topic,
            self.source_partitions,
            records
                .iter()
                .map(|r| r.partition)
                .chain(undecodable.iter().map(|d| d.partition)),
        )?;
        let mut parts: BTreeMap<i32, (Vec<SourceRecord>, Vec<DeadLetter>)> = BTreeMap::new();
        for r in records {
            parts.entry(r.partition).or_default().0.push(r);
        }
        for d in undecodable {
            parts.entry(d.partition).or_default().1.push(d);
        }
        let mut report = BatchReport::default();
        for (p, (mut recs, mut bad)) in parts {
            recs.sort_by_key(|r| r.offset);
            bad.sort_by_key(|d| d.offset);
            let received = recs.len() + bad.len();
            let part = self
                .process_partition(p, recs, &bad)
                .await
                .map_err(|e| e.with_context(format!("{} partition {p}", self.cp.name())))?;
            let f = part.folded;
            if !f.counts.balanced() || f.counts.received != received {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("batch accounting, partition {p}: {:?}", f.counts),
                ));
            }
            report.counts += f.counts;
            report.keys += part.rows;
            report.snapshots += usize::from(part.snapshot);
            report.archived += part.archived;
            report.fold_ms += part.fold_ms;
            report.commit_ms += (part.merge_ms - part.fold_ms).max(0.0);
            report.failed_at.extend(f.failed_at);
            report.dead_letters.extend(f.dead_letters);
        }
        Ok(report)
    }

    /// One partition's records (sorted by offset) through archive, fold, dead letters and
    /// commit.
    async fn process_partition(
        &self,
        p: i32,
        records: Vec<SourceRecord>,
        undecodable: &[DeadLetter],
    ) -> Result<PartitionReport> {
        let t_decode = Instant::now();
        // The merge's first reads (metadata, manifests, delete files: round trips on S3) are
        // made ahead, beside the decode, which is CPU only.
        let cp = Arc::clone(&self.cp);
        let decoding = tokio::task::spawn_blocking(move || {
            let decoded = batch::decode(&cp, &records);
            (records, decoded, t_decode.elapsed().as_secs_f64() * 1e3)
        });
        let (decoding, ()) = tokio::join!(decoding, self.table.prefetch(p));
        let (records, decoded, decode_ms) =
            decoding.map_err(|e| Error::task_failed("decode", e))?;
        let prefetch_wait_ms = t_decode.elapsed().as_secs_f64() * 1e3 - decode_ms;
        tracing::debug!(
            pipeline = self.cp.name(),
            partition = p,
            records = records.len(),
            decode_ms,
            prefetch_wait_ms,
            "decoded"
        );
        let batch = Arc::new(DecodedPartition { records, decoded });
        let mut archive = self.start_archive(p, &batch, undecodable);
        let merged = self
            .merge_partition(p, &batch, undecodable, &mut archive)
            .await;
        // A merge that failed before its step waited leaves the append running: wait for it
        // here, so nothing of this batch still runs once the call returns.
        let t_wait = Instant::now();
        let archived = archive.wait().await;
        tracing::debug!(
            pipeline = self.cp.name(),
            partition = p,
            archive_wait_ms = t_wait.elapsed().as_secs_f64() * 1e3,
            total_ms = t_decode.elapsed().as_secs_f64() * 1e3,
            "partition done"
        );
        let mut report = merged?;
        report.archived = archived?;
        Ok(report)
    }

    /// The partition's fold and state commit; the commit waits for `archive`.
    async fn merge_partition(
        &self,
        p: i32,
        batch: &DecodedPartition,
        undecodable: &[DeadLetter],
        archive: &mut ArchiveTask,
    ) -> Result<PartitionReport> {
        let t_prepare = Instant::now();
        let prepared =
            batch::prepare_decoded(&self.cp, &batch.records, &batch.decoded, undecodable)?;
        let prepare_ms = t_prepare.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(
            pipeline = self.cp.name(),
            partition = p,
            prepare_ms,
            "prepared"
        );
        let keys = prepared.row_ids();
        let ends = prepared.partition_ends();
        let first = prepared.first_offset(p);
        let mut last: Option<Folded> = None;
        let mut fold_ms = 0.0;
        let mut rows_written = 0;
        let t_merge = Instant::now();
        let outcome = self
            .table
            .merge_batch(p, &keys, async |committed, priors| {
                self.check_no_gap(p, committed, first)?;
                let t = Instant::now();
                let mut f = prepared.fold(&self.cp, priors, &|_| committed, &ends);
                fold_ms += t.elapsed().as_secs_f64() * 1e3;
                // Before the commit: once the offsets move past them, nothing writes them.
                self.dead_letters.put(&f.dead_letters).await?;
                // The archive is never behind the view.
                archive.wait().await?;
                let next_offset = f.next_offsets.get(&p).copied().unwrap_or(committed);
                let rows = std::mem::take(&mut f.rows);
                rows_written = rows.len();
                last = Some(f);
                Ok(FoldedBatch {
                    rows,
                    next_offset: next_offset.max(committed),
                    extra_summary: BTreeMap::new(),
                })
            })
            .await?;
        let folded = last.ok_or_else(|| {
            Error::new(ErrorKind::Internal, "the merge never called the fold step")
        })?;
        Ok(PartitionReport {
            folded,
            rows: rows_written,
            snapshot: outcome.snapshot_id.is_some(),
            archived: 0,
            fold_ms,
            merge_ms: t_merge.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Starts appending the partition's valid envelopes to the archive (see
    /// [`archive_task`]): each event is archived exactly once, on its own offsets.
    fn start_archive(
        &self,
        p: i32,
        batch: &Arc<DecodedPartition>,
        undecodable: &[DeadLetter],
    ) -> ArchiveTask {
        let Some(archive) = &self.archive else {
            return ArchiveTask::None;
        };
        let next_offset = batch
            .records
            .iter()
            .map(|r| r.offset)
            .chain(undecodable.iter().map(|d| d.offset))
            .max()
            .map_or(0, |o| o + 1);
        if next_offset == 0 {
            return ArchiveTask::None;
        }
        let (batch, cp) = (Arc::clone(batch), Arc::clone(&self.cp));
        ArchiveTask::start(archive, p, move |a| batch.archive_rows(&cp, a), next_offset)
    }

    /// Under `on_error: fail`, a batch must start at or before the committed offset: a
    /// later start means the source moved past records refold never folded (an event
    /// source mapping without `ReportBatchItemFailures` commits past a failed batch).
    /// Kafka leaves offset gaps only for transaction markers and compacted topics; under
    /// `fail` refold stops there too, loudly, rather than guess.
    fn check_no_gap(&self, p: i32, committed: i64, first: Option<i64>) -> Result<()> {
        let Some(first) = first else { return Ok(()) };
        if self.cp.on_error != ErrorPolicy::Fail || committed < 0 || first <= committed {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "partition {p}: the batch starts at offset {first} but the table's committed \
                 offset is {committed}: offsets {committed}..{} were never folded, and \
                 on_error: fail does not skip records (does the event source mapping report \
                 batch item failures?)",
                first - 1
            ),
        ))
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn batches_past_the_limit_are_refused() {
        assert!(check_batch_size(MAX_RECORDS_PER_BATCH).is_ok());
        let e = check_batch_size(MAX_RECORDS_PER_BATCH + 1).err();
        let e = e.map(|e| (e.kind(), e.to_string()));
        assert!(
            matches!(&e, Some((ErrorKind::InvalidInput, m)) if m.contains("more than the limit of 100000")),
            "{e:?}"
        );
    }
}

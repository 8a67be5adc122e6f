//! The exactly-once merge of one batch of one source partition (`StateTable::merge_batch`);
//! the protocol is in the module docs of `table`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use iceberg::io::FileIO;
use iceberg::spec::{DataFile, Operation};

use super::commit::{self, CommitResult, SnapshotChange};
use super::delete_cache::DeletedPositions;
use super::file_index::FileIndex;
use super::files::{self, LiveFiles};
use super::retry::{self, Attempt};
use super::{
    FaultPoint, Loaded, StateRow, StateTable, TableLimits, lookup, offsets, position_delete, writer,
};
use crate::batch::Rows;
use crate::error::{Error, ErrorKind, Result};

/// What the fold closure of `merge_batch` returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoldedBatch {
    /// The new rows (one per changed (tenant, key) of the batch, all of its partition).
    pub rows: Vec<StateRow>,
    /// The new committed (next) offset of the partition: last applied offset + 1.
    pub next_offset: i64,
    /// Extra snapshot summary properties (refold's own keys win on a clash).
    pub extra_summary: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The committed snapshot; `None` if there was nothing to commit (already applied).
    pub snapshot_id: Option<i64>,
    /// Commit attempts made (1 = no conflict).
    pub attempts: u32,
    pub rows_written: usize,
    pub rows_deleted: usize,
    pub already_applied: bool,
}

type Identity = (String, String);
/// A live row's place: (data file, position in it).
type Position = (Arc<str>, i64);
/// An identity and the places of its live rows (more than one only after another writer's
/// append).
type Located = (Identity, Vec<Position>);

/// What one merge carries from attempt to attempt.
struct MergeState {
    partition: i32,
    keys: HashSet<Identity>,
    plan: Option<MergePlan>,
    timings: MergeTimings,
}

impl StateTable {
    /// The exactly-once merge of one batch of ONE source partition; see the module docs.
    /// `keys` are the (tenant, key) pairs of the batch: their current rows are the priors the
    /// fold gets. The fold may do I/O that must precede the commit (dead letters), but its
    /// rows must depend on its inputs only: it is called again after a conflict that
    /// invalidates them (the committed offset moved, or the partition's files changed).
    ///
    /// `Send`: the merge future is `Send` when the fold owns its captures (`async move`,
    /// `Arc` for shared state); with borrowed captures rustc 1.95 cannot prove it
    /// (rust-lang/rust#139475), so such a merge can be awaited but not spawned.
    pub async fn merge_batch<F>(
        &self,
        partition: i32,
        keys: &[(String, String)],
        mut fold: F,
    ) -> Result<MergeOutcome>
    where
        F: AsyncFnMut(i64, &Rows) -> Result<FoldedBatch>,
    {
        let ctx = || format!("merge into {} partition {partition}", self.cfg.table);
        self.check_merge_input(partition, keys)
            .map_err(|e| e.with_context(ctx()))?;
        let mut st = MergeState {
            partition,
            keys: keys.iter().cloned().collect(),
            plan: None,
            timings: MergeTimings::default(),
        };
        let first = self.take_prefetched(partition);
        let res = retry::with_commit_retry!(self, first = first, |base, n| self
            .merge_attempt(&mut st, &mut fold, base, n)
            .await);
        // Out of attempts: the planned files were never committed. Any other error may have
        // come after the pointer moved (a lost connection), so the files stay.
        if let Err(e) = &res
            && e.kind() == ErrorKind::CommitConflict
            && let Some(p) = st.plan.take()
        {
            p.discard(&self.file_io).await;
        }
        res.map_err(|e| e.with_context(ctx()))
    }

    fn check_merge_input(&self, partition: i32, keys: &[(String, String)]) -> Result<()> {
        if partition < 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "negative source partition",
            ));
        }
        if keys.len() > self.limits.max_keys_per_batch {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} keys exceed max_keys_per_batch {}",
                    keys.len(),
                    self.limits.max_keys_per_batch
                ),
            ));
        }
        Ok(())
    }

    async fn merge_attempt<F>(
        &self,
        st: &mut MergeState,
        fold: &mut F,
        base: Loaded,
        attempts: u32,
    ) -> Result<Attempt<MergeOutcome>>
    where
        F: AsyncFnMut(i64, &Rows) -> Result<FoldedBatch>,
    {
        let t_load = Instant::now();
        self.check_base(&base)?;
        let offsets_now = self.read_offsets(&base.metadata)?;
        let committed = offsets_now.get(&st.partition).copied().unwrap_or(-1);
        let live = files::live_files(
            &self.file_io,
            &base.metadata,
            Some(st.partition),
            &self.manifests,
        )
        .await?;
        let base_files: BTreeSet<String> = live.all_paths().into_iter().collect();
        st.timings.load_ms = ms(t_load, Instant::now());
        // The plan's positions and priors hold only on exactly the files it was planned on:
        // a file added (a second writer's row for a batch key) or removed (a compaction) since
        // means a new lookup and fold.
        let reuse =
            matches!(&st.plan, Some(p) if p.committed == committed && p.base_files == base_files);
        if !reuse {
            if let Some(old) = st.plan.take() {
                old.discard(&self.file_io).await;
            }
            let planned = self
                .plan_merge(st, fold, &base, &live, committed, base_files)
                .await?;
            match planned {
                Some(p) => st.plan = Some(p),
                None => {
                    return Ok(Attempt::Done(MergeOutcome {
                        snapshot_id: None,
                        attempts,
                        rows_written: 0,
                        rows_deleted: 0,
                        already_applied: true,
                    }));
                }
            }
        }
        self.take_fault(FaultPoint::AfterFilesWritten)?;
        self.hooks
            .run(super::hooks::HookPoint::MergeBeforeCommit, attempts)
            .await;
        self.commit_merge(st, &base, &offsets_now, attempts).await
    }

    /// Looks up the priors, folds, and writes the files; `None` when the fold has nothing to
    /// apply (already applied).
    async fn plan_merge<F>(
        &self,
        st: &mut MergeState,
        fold: &mut F,
        base: &Loaded,
        live: &LiveFiles,
        committed: i64,
        base_files: BTreeSet<String>,
    ) -> Result<Option<MergePlan>>
    where
        F: AsyncFnMut(i64, &Rows) -> Result<FoldedBatch>,
    {
        let t_lookup = Instant::now();
        let caches = lookup::Caches {
            files: &self.file_index,
            deletes: &self.deletes,
        };
        let found = lookup::find_rows(&self.file_io, &self.codec, live, &st.keys, caches).await?;
        let t_fold = Instant::now();
        st.timings.lookup_ms = ms(t_lookup, t_fold);
        let mut priors = Rows::with_capacity_and_hasher(found.len(), Default::default());
        // Sorted by identity, as the fold's rows will be: the write pairs them in one pass.
        let mut located: Vec<Located> = Vec::with_capacity(found.len());
        for (id, f) in found {
            let mut at = vec![(f.file_path, f.pos)];
            at.extend(f.superseded);
            located.push((id.clone(), at));
            priors.insert(id, f.row);
        }
        located.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut folded = fold(committed, &priors).await?;
        drop(priors);
        folded
            .rows
            .sort_unstable_by(|a, b| (&a.tenant_id, &a.key).cmp(&(&b.tenant_id, &b.key)));
        let t_write = Instant::now();
        st.timings.fold_ms = ms(t_fold, t_write);
        if !check_folded(&folded, committed, st.partition, &st.keys, &self.limits)? {
            return Ok(None);
        }
        let plan = MergePlan::write(self, base, st.partition, committed, folded, &located)
            .await?
            .with_base_files(base_files);
        st.timings.write_ms = ms(t_write, Instant::now());
        Ok(Some(plan))
    }

    /// Commits the planned files with the group's offset map (summary and table property).
    async fn commit_merge(
        &self,
        st: &mut MergeState,
        base: &Loaded,
        offsets_now: &BTreeMap<i32, i64>,
        attempts: u32,
    ) -> Result<Attempt<MergeOutcome>> {
        let Some(p) = st.plan.as_ref() else {
            return Err(Error::new(ErrorKind::Internal, "merge plan missing"));
        };
        let t_commit = Instant::now();
        // The whole group's offset map: the base's, this partition advanced.
        let mut new_offsets = offsets_now.clone();
        new_offsets.insert(st.partition, p.next_offset);
        offsets::assert_forward(offsets_now, &new_offsets)?;
        let (key, encoded) = (self.offsets_key(), offsets::encode(&new_offsets));
        let mut summary: HashMap<String, String> = p.extra_summary.clone().into_iter().collect();
        summary.insert(key.clone(), encoded.clone());
        summary.insert("refold.source-partition".into(), st.partition.to_string());
        summary.insert("refold.writer".into(), WRITER.into());
        let change = SnapshotChange {
            operation: if p.deletes.is_empty() {
                Operation::Append
            } else {
                Operation::Overwrite
            },
            added_data: p.data.clone(),
            added_deletes: p.deletes.clone(),
            removed_paths: HashSet::new(),
            removed_partition: None,
            summary,
            // Table properties survive other engines' rewrites and snapshot expiry.
            properties: HashMap::from([(key, encoded)]),
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
        match res {
            CommitResult::Committed { snapshot_id } => {
                if let Some((path, index)) = &p.index {
                    self.file_index.insert(path, index.clone());
                }
                if let Some((path, deleted)) = &p.deleted {
                    self.deletes.insert(path, deleted.clone());
                }
                st.timings.commit_ms = ms(t_commit, Instant::now());
                let timings = st.timings;
                tracing::debug!(table = %self.cfg.table, partition = st.partition, attempts, ?timings, "merged");
                Ok(Attempt::Done(MergeOutcome {
                    snapshot_id: Some(snapshot_id),
                    attempts,
                    rows_written: p.rows_written,
                    rows_deleted: p.rows_deleted,
                    already_applied: false,
                }))
            }
            CommitResult::Lost(why) => Ok(Attempt::Lost(why)),
        }
    }
}

/// `refold.writer` of every snapshot refold commits.
pub(crate) const WRITER: &str = concat!("refold ", env!("CARGO_PKG_VERSION"));

/// Checks the fold's output; `Ok(false)` means already applied (nothing to commit).
pub(crate) fn check_folded(
    folded: &FoldedBatch,
    committed: i64,
    partition: i32,
    keys: &HashSet<(String, String)>,
    limits: &TableLimits,
) -> Result<bool> {
    if folded.next_offset <= committed {
        if folded.rows.is_empty() {
            return Ok(false);
        }
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "fold returned {} rows but next offset {} does not advance committed offset {committed}",
                folded.rows.len(),
                folded.next_offset
            ),
        ));
    }
    if folded.next_offset < 0 {
        return Err(Error::new(
            ErrorKind::Internal,
            "fold returned a negative next offset",
        ));
    }
    if folded.rows.len() > limits.max_rows_per_batch {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} rows exceed max_rows_per_batch {}",
                folded.rows.len(),
                limits.max_rows_per_batch
            ),
        ));
    }
    check_rows(&folded.rows, partition, keys)
}

/// The positions of the live rows that `rows` replace; both sorted by identity.
fn replaced_positions(rows: &[StateRow], located: &[Located]) -> Vec<Position> {
    debug_assert!(located.is_sorted_by(|a, b| a.0 <= b.0));
    let mut out = Vec::with_capacity(located.len());
    let mut at = 0;
    for r in rows {
        let id = (r.tenant_id.as_str(), r.key.as_str());
        while at < located.len() && (located[at].0.0.as_str(), located[at].0.1.as_str()) < id {
            at += 1;
        }
        if let Some((l, found)) = located.get(at)
            && (l.0.as_str(), l.1.as_str()) == id
        {
            out.extend(found.iter().cloned());
        }
    }
    out
}

/// Each row (sorted by identity) of the batch's partition, of a batch key, once.
fn check_rows(rows: &[StateRow], partition: i32, keys: &HashSet<Identity>) -> Result<bool> {
    let mut batch_keys: Vec<(&str, &str)> =
        keys.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    batch_keys.sort_unstable();
    let mut prev: Option<(&str, &str)> = None;
    for r in rows {
        let id = (r.tenant_id.as_str(), r.key.as_str());
        if prev.is_some_and(|p| p > id) {
            return Err(Error::new(
                ErrorKind::Internal,
                "fold rows reached the check unsorted",
            ));
        }
        if r.source_partition != partition {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "row {id:?} has source_partition {} in a batch of partition {partition}",
                    r.source_partition
                ),
            ));
        }
        if batch_keys.binary_search(&id).is_err() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("fold returned a row for {id:?}, not a key of the batch"),
            ));
        }
        if prev == Some(id) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("fold returned two rows for {id:?}"),
            ));
        }
        prev = Some(id);
    }
    Ok(true)
}

/// Where the time of the last attempt of a merge went (logged at debug level).
#[derive(Debug, Default, Clone, Copy)]
#[allow(dead_code)] // read through Debug
struct MergeTimings {
    load_ms: f64,
    lookup_ms: f64,
    fold_ms: f64,
    write_ms: f64,
    commit_ms: f64,
}

fn ms(a: Instant, b: Instant) -> f64 {
    (b - a).as_secs_f64() * 1e3
}

/// The files written for one fold result, valid while the partition's committed offset is
/// `committed` and its live files are exactly `base_files`.
struct MergePlan {
    committed: i64,
    next_offset: i64,
    extra_summary: BTreeMap<String, String>,
    data: Vec<DataFile>,
    deletes: Vec<DataFile>,
    /// Every live data and delete file of the partition the plan was made on.
    base_files: BTreeSet<String>,
    rows_written: usize,
    rows_deleted: usize,
    /// The index of the data file written (see [`index_written`]), kept once committed.
    index: Option<(String, Arc<FileIndex>)>,
    /// The positions of the delete file written (see [`deletes_written`]), kept once
    /// committed.
    deleted: Option<(String, Arc<DeletedPositions>)>,
}

/// The parsed form of the one position-delete file a merge wrote, from the positions in
/// hand, so that the next lookups of this warm handle need not read it back
/// (`delete_cache`). `None` when the write rolled over into several files.
fn deletes_written(
    files: &[DataFile],
    positions: &[(Arc<str>, i64)],
) -> Option<(String, Arc<DeletedPositions>)> {
    let [file] = files else {
        return None;
    };
    if file.record_count() != positions.len() as u64 {
        return None;
    }
    let parsed = position_delete::parsed(positions);
    Some((file.file_path().to_string(), Arc::new(parsed)))
}

/// The index of the one data file a merge wrote, built from the rows in hand (`built`), so
/// that the next lookups of this warm handle read its rows from local disk without reading
/// the file back (`file_index`). `None` when the index budgets left it out, when the build
/// failed (logged: lookups then read Parquet), or when the write rolled over into several
/// files (which rows went to which file is the rolling writer's business).
fn index_written(
    data: &[DataFile],
    rows: usize,
    built: Result<Option<FileIndex>>,
) -> Option<(String, Arc<FileIndex>)> {
    let [file] = data else {
        return None;
    };
    if file.record_count() != rows as u64 {
        return None;
    }
    match built {
        Ok(index) => Some((file.file_path().to_string(), Arc::new(index?))),
        Err(e) => {
            tracing::warn!(path = %file.file_path(), error = %e, "written file not indexed; its lookups read Parquet");
            None
        }
    }
}

impl MergePlan {
    /// Writes the data file, the position delete file and this handle's index of the data
    /// file at the same time: the delete file on a runtime worker, the index on a blocking
    /// thread (both wait for nothing the data file gives), the data file here. Each is
    /// awaited before this returns, failed or not, so nothing of the plan still runs after.
    async fn write(
        t: &StateTable,
        base: &Loaded,
        partition: i32,
        committed: i64,
        folded: FoldedBatch,
        located: &[Located],
    ) -> Result<Self> {
        let started = Instant::now();
        let rows = Arc::new(folded.rows);
        debug_assert!(rows.is_sorted_by(|a, b| (&a.tenant_id, &a.key) <= (&b.tenant_id, &b.key)));
        // Every live version of the rows being replaced (more than one only after another
        // writer added a row for the same key).
        let mut positions = replaced_positions(&rows, located);
        positions.sort_unstable();
        let rows_deleted = positions.len();
        let deletes = tokio::spawn({
            let (io, md, limits) = (t.file_io.clone(), base.metadata.clone(), t.limits.clone());
            async move {
                if positions.is_empty() {
                    return Ok((vec![], None));
                }
                let files = position_delete::write(&io, &md, partition, &positions, &limits);
                let files = files.await?;
                let kept = deletes_written(&files, &positions);
                Ok((files, kept))
            }
        });
        let index = t.file_index.admits(rows.len() as u64).then(|| {
            let (codec, rows) = (t.codec.clone(), Arc::clone(&rows));
            let max_bytes = t.file_index.max_disk_bytes();
            tokio::task::spawn_blocking(move || lookup::index_rows(&codec, &rows, max_bytes))
        });
        let data = if rows.is_empty() {
            Ok(vec![])
        } else {
            writer::write_rows(
                &t.file_io,
                &base.metadata,
                &t.codec,
                partition,
                &rows,
                &t.limits,
            )
            .await
        };
        let deletes = deletes.await.unwrap_or_else(|e| {
            Err(Error::task_failed(
                "merge: position delete write did not finish",
                e,
            ))
        });
        let index = match index {
            Some(job) => Some(job.await.unwrap_or_else(|e| {
                Err(Error::task_failed("merge: index build did not finish", e))
            })),
            None => None,
        };
        let (data, (deletes, deleted)) = (data?, deletes?);
        let index = index.and_then(|built| index_written(&data, rows.len(), built));
        tracing::debug!(
            rows = rows.len(),
            deletes = rows_deleted,
            ms = started.elapsed().as_millis() as u64,
            "merge files written"
        );
        Ok(Self {
            committed,
            next_offset: folded.next_offset,
            extra_summary: folded.extra_summary,
            data,
            deletes,
            base_files: BTreeSet::new(),
            rows_written: rows.len(),
            rows_deleted,
            index,
            deleted,
        })
    }

    fn with_base_files(mut self, base_files: BTreeSet<String>) -> Self {
        self.base_files = base_files;
        self
    }

    /// Removes the files of an abandoned plan (never committed, so nothing references them).
    async fn discard(self, io: &FileIO) {
        let paths = self
            .data
            .iter()
            .chain(self.deletes.iter())
            .map(|f| f.file_path().to_string());
        writer::delete_files_best_effort(io, paths).await;
    }
}

#[cfg(test)]
mod warm_cache_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use iceberg::spec::{DataContentType, ManifestList, TableMetadata};

    use super::*;
    use crate::table::metadata_cache::{manifest_lists, metadata};
    use crate::table::written_files;
    use crate::table::{CatalogConfig, StateColumns, TableConfig, TableIdentity};

    fn row(total: i64, offset: i64) -> StateRow {
        StateRow {
            tenant_id: "acme".into(),
            key: "o-1".into(),
            state: crate::fold::State::parse(&format!(r#"{{"total":{total}}}"#)).unwrap(),
            source_partition: 0,
            last_offset: offset,
            last_event_id: format!("e-{offset}"),
            last_event_time_us: 1_700_000_000_000_000,
            events_folded: total,
        }
    }

    async fn merge_one(t: &StateTable, r: StateRow) {
        let keys = [r.identity()];
        let next_offset = r.last_offset + 1;
        t.merge_batch(0, &keys, async |_, _| {
            Ok(FoldedBatch {
                rows: vec![r.clone()],
                next_offset,
                extra_summary: Default::default(),
            })
        })
        .await
        .unwrap();
    }

    /// What a warm handle keeps of its own commits is what a reader parses from their files:
    /// the metadata a won commit inserts, the bytes of the manifests and manifest list it
    /// wrote, that list once parsed (here by `prefetch`; never before), the position-delete
    /// file it wrote. (The only test of this crate's unit tests that commits: no other
    /// evicts the process caches' entries.)
    #[tokio::test]
    async fn a_warm_handle_caches_what_its_files_hold() {
        let dir = tempfile::tempdir().unwrap();
        let t = StateTable::open_or_create(TableConfig {
            catalog: CatalogConfig::embedded(dir.path()).unwrap(),
            table: TableIdentity::parse("domain.orders.current_state").unwrap(),
            key_field: "order_id".into(),
            columns: StateColumns::Json,
            topic: "domain.orders.events".into(),
            consumer_group: "order-projection-v1".into(),
            properties: Default::default(),
        })
        .await
        .unwrap();
        merge_one(&t, row(5, 7)).await;
        // The second merge replaces the first's row: a position-delete file.
        merge_one(&t, row(9, 8)).await;

        let loc = t.catalog.current_location(&t.ident).await.unwrap().unwrap();
        let cached = metadata()
            .get(&loc)
            .expect("the commit's metadata is cached");
        let read = TableMetadata::read_from(&t.file_io, &loc).await.unwrap();
        assert_eq!(*cached, read);

        // The files as a reader finds them, through no cache.
        let plain = iceberg::io::FileIOBuilder::new(Arc::new(
            iceberg_storage_opendal::OpenDalResolvingStorageFactory::new(),
        ))
        .build();
        let snapshot = read.current_snapshot().unwrap();
        let list_bytes = plain
            .new_input(snapshot.manifest_list())
            .unwrap()
            .read()
            .await
            .unwrap();
        assert_eq!(
            written_files::written(snapshot.manifest_list()),
            Some(list_bytes.clone())
        );
        let parsed = ManifestList::parse_with_version(&list_bytes, read.format_version()).unwrap();
        let mut deletes = vec![];
        for mf in parsed.entries() {
            let stored = plain.new_input(&mf.manifest_path).unwrap().read().await;
            assert_eq!(written_files::written(&mf.manifest_path), stored.ok());
            let m = mf.load_manifest(&plain).await.unwrap();
            deletes.extend(
                m.entries()
                    .iter()
                    .filter(|e| {
                        e.is_alive() && e.content_type() == DataContentType::PositionDeletes
                    })
                    .map(|e| e.data_file().clone()),
            );
        }
        let [del] = deletes.as_slice() else {
            panic!("one delete file: {deletes:?}");
        };
        let (path, size) = (del.file_path(), del.file_size_in_bytes());
        // Before any lookup or prefetch could have read it.
        let kept = t.deletes.get(path).expect("the merge kept its delete file");
        let from_file = position_delete::read_file(&plain, path, size)
            .await
            .unwrap();
        assert_eq!(*kept, from_file);
        assert_eq!(from_file.values().map(Vec::len).sum::<usize>(), 1);

        assert!(manifest_lists().get(snapshot.manifest_list()).is_none());
        t.prefetch(0).await;
        let listed = manifest_lists()
            .get(snapshot.manifest_list())
            .expect("prefetch read the manifest list");
        assert_eq!(listed.as_slice(), parsed.entries());
    }
}

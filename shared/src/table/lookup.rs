//! Finding the live rows of a batch's keys, and full scans.
//!
//! What a lookup costs (`find_rows`), for a batch of K keys into a partition of N rows
//! (physical rows: live ones plus those deleted since the last compaction):
//! - the partition's manifests only (`files::live_files` prunes by partition summary);
//! - the partition's position-delete rows, only from delete files whose `file_path` bounds
//!   can name a candidate data file (compaction folds them away); a warm handle parses each
//!   delete file once (`delete_cache`);
//! - per data file whose (tenant, key) bounds can hold a batch identity, either
//!   - its index (`file_index`, a warm container's): K hash probes and K row reads from
//!     local disk, no Parquet at all, split over the cores for a large file; a file this
//!     handle wrote is indexed from the rows in hand as its merge commits ([`index_rows`]),
//!     any other file on its second lookup, by reading it once;
//!   - or, for a file the index's budgets leave out: its footer, then the row groups whose
//!     (tenant, key) min/max can hold a batch identity, their tenant and key columns to find
//!     the matches, then the matches' full rows through a row selection. K random keys over N
//!     rows put a match on nearly every page once K is about N / 100, so this decompresses
//!     the partition. Row groups are decoded in parallel units (two per core).
//!
//! Memory O(K + one row group per core) plus the index's budgets: proportional to the batch
//! and its partition, never to the rest of the table. Measured (shared/benches/table.rs, mode
//! `warm` against `scan`): see BENCHMARKS.md.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};
use parquet::file::metadata::ParquetMetaData;
use rustc_hash::FxHashMap;

use super::delete_cache::DeleteCache;
use super::file_index::{self, FileIndex, FileIndexBuilder, FileIndexCache};
use super::files::{LiveFile, LiveFiles};
use super::reader::{self, ROW_POS};
use super::row::{RowCodec, utf8_array};
use super::schema::TENANT_ID;
use super::{ResultExt, StateRow, position_delete};
use crate::error::{Error, ErrorKind, Result};

/// Files of at least this many rows have their index probes split over the cores.
const PARALLEL_INDEX_ROWS: usize = 100_000;

/// Rows decoded per Arrow batch while reading.
const READ_BATCH_ROWS: usize = 32 * 1024;

/// The live row of one (tenant, key) and where it is.
#[derive(Debug, Clone)]
pub struct Found {
    pub row: StateRow,
    /// Shared by the file's rows (a position delete names it once per row replaced).
    pub file_path: Arc<str>,
    pub pos: i64,
    /// Older live rows of the same (tenant, key) (file, position): only another writer's
    /// append makes these; a merge deletes them with the row it replaces.
    pub superseded: Vec<(Arc<str>, i64)>,
}

/// Which rows a read keeps.
#[derive(Debug)]
enum Want {
    /// The batch's identities.
    Batch(KeyIndex),
    /// Optionally one tenant and/or one key; all rows if both are `None`.
    Match {
        tenant: Option<String>,
        key: Option<String>,
    },
}

/// The batch's identities, indexed for bounds checks and probes.
#[derive(Debug)]
struct KeyIndex {
    /// key -> tenants having it in the batch (FxHash: one probe per row read)
    by_key: FxHashMap<String, Vec<String>>,
    /// sorted distinct keys
    keys: Vec<String>,
    /// sorted distinct [`file_index::identity_hash`]es of the identities
    hashes: Vec<u32>,
}

impl KeyIndex {
    fn new<'a>(ids: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut by_key: FxHashMap<String, Vec<String>> = FxHashMap::default();
        let mut hashes = vec![];
        for (t, k) in ids {
            hashes.push(file_index::identity_hash(t, k));
            by_key.entry(k.to_string()).or_default().push(t.to_string());
        }
        let mut keys: Vec<String> = by_key.keys().cloned().collect();
        keys.sort_unstable();
        hashes.sort_unstable();
        hashes.dedup();
        Self {
            by_key,
            keys,
            hashes,
        }
    }

    fn contains(&self, tenant: &str, key: &str) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|ts| ts.iter().any(|t| t == tenant))
    }
}

type Bounds<'a> = (Option<&'a str>, Option<&'a str>);

/// A data file still to read: path, size in bytes, row groups to read, deleted positions.
type PendingFile = (Arc<str>, u64, Vec<usize>, Arc<Vec<i64>>);

fn within(b: Bounds<'_>, v: &str) -> bool {
    b.0.is_none_or(|lo| lo <= v) && b.1.is_none_or(|hi| v <= hi)
}

impl Want {
    /// Whether rows with tenant in `t` and key in `k` (inclusive, optional bounds) may be kept.
    fn any_within(&self, t: Bounds<'_>, k: Bounds<'_>) -> bool {
        match self {
            Want::Batch(ix) => {
                let start =
                    k.0.map_or(0, |lo| ix.keys.partition_point(|x| x.as_str() < lo));
                let end = k.1.map_or(ix.keys.len(), |hi| {
                    ix.keys.partition_point(|x| x.as_str() <= hi)
                });
                ix.keys.get(start..end).unwrap_or(&[]).iter().any(|key| {
                    ix.by_key
                        .get(key)
                        .is_some_and(|ts| ts.iter().any(|x| within(t, x)))
                })
            }
            Want::Match { tenant, key } => {
                tenant.as_deref().is_none_or(|x| within(t, x))
                    && key.as_deref().is_none_or(|x| within(k, x))
            }
        }
    }

    fn keeps(&self, tenant: &str, key: &str) -> bool {
        match self {
            Want::Batch(ix) => ix.contains(tenant, key),
            Want::Match { tenant: t, key: k } => {
                t.as_deref().is_none_or(|x| x == tenant) && k.as_deref().is_none_or(|x| x == key)
            }
        }
    }
}

fn str_datum(d: Option<&Datum>) -> Option<&str> {
    match d?.literal() {
        PrimitiveLiteral::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// (tenant bounds, key bounds) of a data file from its manifest entry.
fn file_bounds<'f>(codec: &RowCodec, f: &'f DataFile) -> Result<(Bounds<'f>, Bounds<'f>)> {
    let t = super::schema::field_id(&codec.schema, TENANT_ID)?;
    let k = super::schema::field_id(&codec.schema, &codec.key_field)?;
    let (lb, ub) = (f.lower_bounds(), f.upper_bounds());
    Ok((
        (str_datum(lb.get(&t)), str_datum(ub.get(&t))),
        (str_datum(lb.get(&k)), str_datum(ub.get(&k))),
    ))
}

/// Leaf column index of a top-level column.
fn leaf(md: &ParquetMetaData, name: &str) -> Result<usize> {
    md.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name.to_string()])
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Io,
                format!("column `{name}` missing from a data file"),
            )
        })
}

/// (min, max) of a string column in one row group, if exact statistics exist.
fn rg_bounds(md: &ParquetMetaData, rg: usize, col: usize) -> Bounds<'_> {
    let Some(s) = md.row_group(rg).column(col).statistics() else {
        return (None, None);
    };
    let lo = s
        .min_is_exact()
        .then(|| s.min_bytes_opt())
        .flatten()
        .and_then(|b| std::str::from_utf8(b).ok());
    let hi = s
        .max_is_exact()
        .then(|| s.max_bytes_opt())
        .flatten()
        .and_then(|b| std::str::from_utf8(b).ok());
    (lo, hi)
}

/// One piece of decoding work: some row groups of one file.
struct Unit {
    path: Arc<str>,
    size: u64,
    groups: Vec<usize>,
    deleted: Arc<Vec<i64>>,
}

/// What a warm handle keeps between lookups.
#[derive(Debug, Clone, Copy)]
pub struct Caches<'a> {
    pub files: &'a FileIndexCache,
    pub deletes: &'a DeleteCache,
}

/// Reads the kept live rows of `files`: prunes files by bounds; a batch lookup reads the
/// files `index` keeps (or can keep) through their index, the others by row group bounds,
/// decoding the row groups left in parallel units.
async fn read(
    io: &FileIO,
    codec: &RowCodec,
    files: &[&LiveFile],
    deletes: &[LiveFile],
    want: Want,
    caches: Option<Caches<'_>>,
) -> Result<Vec<Found>> {
    let files: Vec<&LiveFile> = files
        .iter()
        .copied()
        .filter(|f| {
            file_bounds(codec, &f.file)
                .map(|(t, k)| want.any_within(t, k))
                .unwrap_or(true)
        })
        .collect();
    if files.is_empty() {
        return Ok(vec![]);
    }
    let paths: HashSet<&str> = files.iter().map(|f| f.file.file_path()).collect();
    let mut deleted =
        position_delete::read_deleted(io, deletes, &paths, caches.map(|c| c.deletes)).await?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1);
    let want = Arc::new(want);
    let (mut found, scanned) = match (&*want, caches) {
        (Want::Batch(_), Some(c)) => {
            read_indexed(io, codec, c.files, files, &want, &mut deleted, threads).await?
        }
        _ => (vec![], files),
    };
    let units = scanned_units(io, codec, &scanned, &want, &mut deleted, threads).await?;
    found.extend(run_units(io, codec, units, want, threads).await?);
    Ok(found)
}

/// Reads the batch's rows of the files `cache` indexes or can index (building the indexes
/// it lacks); returns them and the files left to read through Parquet.
async fn read_indexed<'f>(
    io: &FileIO,
    codec: &RowCodec,
    cache: &FileIndexCache,
    files: Vec<&'f LiveFile>,
    want: &Arc<Want>,
    deleted: &mut HashMap<String, Vec<i64>>,
    threads: usize,
) -> Result<(Vec<Found>, Vec<&'f LiveFile>)> {
    let Want::Batch(ix) = &**want else {
        return Ok((vec![], files));
    };
    // The futures own what they read: borrowed items would make this future `!Send` for
    // callers that spawn a merge (a higher-ranked lifetime the compiler cannot prove).
    let jobs: Vec<(String, u64, u64)> = files
        .iter()
        .map(|f| {
            let d = &f.file;
            (
                d.file_path().to_string(),
                d.file_size_in_bytes(),
                d.record_count(),
            )
        })
        .collect();
    let indexes: Vec<Option<Arc<FileIndex>>> = futures::stream::iter(jobs)
        .map(|(path, size, rows)| index_of(io, codec, cache, path, size, rows))
        // One file at a time: a build decodes whole row groups, and two at once raised a
        // merge's peak memory by tens of MB for a one-off gain in wall time.
        .buffered(1)
        .try_collect()
        .await?;
    let hashes = Arc::new(ix.hashes.clone());
    let mut rest = vec![];
    let mut reads = vec![];
    for (f, index) in files.into_iter().zip(indexes) {
        let Some(index) = index else {
            rest.push(f);
            continue;
        };
        let path: Arc<str> = f.file.file_path().into();
        let del = Arc::new(deleted.remove(&*path).unwrap_or_default());
        // A large file's probes are split over the cores (each part reads its own rows).
        let parts = if index.rows() >= PARALLEL_INDEX_ROWS {
            threads
        } else {
            1
        };
        let per_part = hashes.len().div_ceil(parts).max(1);
        for start in (0..hashes.len()).step_by(per_part) {
            let range = start..(start + per_part).min(hashes.len());
            let (index, h, del, path) = (index.clone(), hashes.clone(), del.clone(), path.clone());
            let (codec, want) = (codec.clone(), want.clone());
            reads.push(move || {
                let rows = index.rows_of(&h[range])?;
                kept_rows(&codec, &rows, &path, &del, &want)
            });
        }
    }
    // At most one read per core at a time: a partition of many small files must not start a
    // blocking thread per file.
    let results: Vec<Result<Vec<Found>>> = futures::stream::iter(reads)
        .map(|read| async move {
            tokio::task::spawn_blocking(read)
                .await
                .unwrap_or_else(|e| Err(Error::task_failed("key index read failed", e)))
        })
        .buffer_unordered(threads)
        .collect()
        .await;
    let mut found = vec![];
    for r in results {
        found.extend(r?);
    }
    Ok((found, rest))
}

/// The rows of `batch` (read from `path`) that `want` keeps and no position delete names.
fn kept_rows(
    codec: &RowCodec,
    batch: &RecordBatch,
    path: &Arc<str>,
    deleted: &[i64],
    want: &Want,
) -> Result<Vec<Found>> {
    let tenant = utf8_array(batch, TENANT_ID)?;
    let tenant = tenant.as_string::<i32>();
    let key = utf8_array(batch, &codec.key_field)?;
    let key = key.as_string::<i32>();
    let pos = row_pos(batch)?;
    let hits: Vec<usize> = (0..batch.num_rows())
        .filter(|&i| {
            want.keeps(tenant.value(i), key.value(i))
                && deleted.binary_search(&pos.value(i)).is_err()
        })
        .collect();
    if hits.is_empty() {
        return Ok(vec![]);
    }
    Ok(codec
        .from_batch(batch, Some(&hits))?
        .into_iter()
        .zip(&hits)
        .map(|(row, &i)| Found {
            row,
            file_path: path.clone(),
            pos: pos.value(i),
            superseded: vec![],
        })
        .collect())
}

/// The index of one data file: the cached one, one built from the file now, or `None` if
/// the file does not fit the cache's budgets.
async fn index_of(
    io: &FileIO,
    codec: &RowCodec,
    cache: &FileIndexCache,
    path: String,
    size: u64,
    rows: u64,
) -> Result<Option<Arc<FileIndex>>> {
    if let Some(index) = cache.get(&path) {
        return Ok(Some(index));
    }
    if !cache.admits(rows) || cache.refused(&path) || !cache.seen_before(&path) {
        return Ok(None);
    }
    let (io2, codec2, path2) = (io.clone(), codec.clone(), path.clone());
    let max_bytes = cache.max_disk_bytes();
    let built =
        tokio::spawn(async move { index_file(&io2, &codec2, &path2, size, max_bytes).await })
            .await
            .unwrap_or_else(|e| Err(Error::task_failed("key index task failed", e)));
    // The index is an optimization: a file it cannot take (no writable temporary directory,
    // a full disk, a read error the Parquet path will report) is read through Parquet.
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "file not indexed; its lookups read Parquet");
            return Ok(None);
        }
    };
    let Some(index) = built else {
        cache.refuse(&path);
        return Ok(None);
    };
    let index = Arc::new(index);
    cache.insert(&path, index.clone());
    Ok(Some(index))
}

/// Reads every row of a data file into an index; `None` if its rows outgrow `max_bytes`.
async fn index_file(
    io: &FileIO,
    codec: &RowCodec,
    path: &str,
    size: u64,
    max_bytes: u64,
) -> Result<Option<FileIndex>> {
    let b = reader::open(io, path, size, false, true).await?;
    let rows = usize::try_from(b.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut builder: Option<FileIndexBuilder> = None;
    let mut stream = b
        .with_batch_size(INDEX_CHUNK_ROWS)
        .build()
        .io(|| format!("read {path}"))?;
    let mut hashes = vec![];
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        let tenant = utf8_array(&batch, TENANT_ID)?;
        let tenant = tenant.as_string::<i32>();
        let key = utf8_array(&batch, &codec.key_field)?;
        let key = key.as_string::<i32>();
        hashes.clear();
        hashes.extend(
            (0..batch.num_rows()).map(|i| file_index::identity_hash(tenant.value(i), key.value(i))),
        );
        // The batches' schema (with the row position column) is the index's.
        let builder = match &mut builder {
            Some(b) => b,
            None => builder.insert(FileIndexBuilder::new(batch.schema(), rows, max_bytes)?),
        };
        if !builder.push(&batch, &hashes)? {
            return Ok(None);
        }
    }
    builder.map(FileIndexBuilder::finish).transpose()
}

/// Rows per batch when indexing (rows in hand, or a data file read back).
const INDEX_CHUNK_ROWS: usize = 8 * 1024;

/// An index of a data file built from the rows it was written from (in file order), so a
/// merge's own file is indexed without being read back; `None` if they outgrow `max_bytes`.
pub fn index_rows(
    codec: &RowCodec,
    rows: &[StateRow],
    max_bytes: u64,
) -> Result<Option<FileIndex>> {
    let mut builder: Option<FileIndexBuilder> = None;
    let mut hashes = Vec::with_capacity(INDEX_CHUNK_ROWS);
    let mut pos = 0i64;
    for chunk in rows.chunks(INDEX_CHUNK_ROWS) {
        let batch = reader::with_row_pos(&codec.to_batch(chunk)?, pos)?;
        hashes.clear();
        hashes.extend(
            chunk
                .iter()
                .map(|r| file_index::identity_hash(&r.tenant_id, &r.key)),
        );
        let builder = match &mut builder {
            Some(b) => b,
            None => builder.insert(FileIndexBuilder::new(
                batch.schema(),
                rows.len(),
                max_bytes,
            )?),
        };
        if !builder.push(&batch, &hashes)? {
            return Ok(None);
        }
        pos += chunk.len() as i64;
    }
    builder.map(FileIndexBuilder::finish).transpose()
}

/// Units for files read by their row groups' key bounds, about two per core.
async fn scanned_units(
    io: &FileIO,
    codec: &RowCodec,
    files: &[&LiveFile],
    want: &Want,
    deleted: &mut HashMap<String, Vec<i64>>,
    threads: usize,
) -> Result<Vec<Unit>> {
    let mut units = vec![];
    let mut pending: Vec<PendingFile> = vec![];
    for f in files {
        let path = f.file.file_path();
        let md = reader::open(io, path, f.file.file_size_in_bytes(), false, false)
            .await?
            .metadata()
            .clone();
        let (tc, kc) = (leaf(&md, TENANT_ID)?, leaf(&md, &codec.key_field)?);
        let groups: Vec<usize> = (0..md.num_row_groups())
            .filter(|&rg| want.any_within(rg_bounds(&md, rg, tc), rg_bounds(&md, rg, kc)))
            .collect();
        if !groups.is_empty() {
            let del = Arc::new(deleted.remove(path).unwrap_or_default());
            let path: Arc<str> = path.into();
            pending.push((path, f.file.file_size_in_bytes(), groups, del));
        }
    }
    // Split into about two units per core (a unit is at least one row group).
    let total: usize = pending.iter().map(|p| p.2.len()).sum();
    let per_unit = total.div_ceil(threads * 2).max(1);
    for (path, size, groups, del) in pending {
        for chunk in groups.chunks(per_unit) {
            units.push(Unit {
                path: path.clone(),
                size,
                groups: chunk.to_vec(),
                deleted: del.clone(),
            });
        }
    }
    Ok(units)
}

/// Decodes `units` in parallel tasks, `threads` at a time.
async fn run_units(
    io: &FileIO,
    codec: &RowCodec,
    units: Vec<Unit>,
    want: Arc<Want>,
    threads: usize,
) -> Result<Vec<Found>> {
    let results: Vec<Result<Vec<Found>>> = futures::stream::iter(units)
        .map(|u| {
            let (io, codec, want) = (io.clone(), codec.clone(), want.clone());
            async move {
                tokio::spawn(async move { read_unit(&io, &codec, u, &want).await })
                    .await
                    .unwrap_or_else(|e| Err(Error::task_failed("row group reader task failed", e)))
            }
        })
        .buffered(threads)
        .collect()
        .await;
    let mut out = vec![];
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Decodes one unit. A batch lookup keeps about 1% of the rows: two passes (below). A scan
/// keeps most: one pass, probing each row's tenant and key, full rows for the kept ones.
async fn read_unit(io: &FileIO, codec: &RowCodec, u: Unit, want: &Want) -> Result<Vec<Found>> {
    if matches!(want, Want::Batch(_)) {
        return read_unit_two_pass(io, codec, u, want).await;
    }
    let path = &*u.path;
    let b = reader::open(io, path, u.size, false, true).await?;
    let mut stream = b
        .with_row_groups(u.groups)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .io(|| format!("read {path}"))?;
    let mut out = vec![];
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        out.extend(kept_rows(codec, &batch, &u.path, &u.deleted, want)?);
    }
    Ok(out)
}

/// Two passes over one unit: the tenant and key columns to find the matches, then the full
/// rows of the matches only, through a row selection: every page is still decompressed (random
/// keys put a match on most pages), but skipped values are not materialized. Measured at 1 M
/// rows: about 15% less CPU and memory than one pass decoding every column.
async fn read_unit_two_pass(
    io: &FileIO,
    codec: &RowCodec,
    u: Unit,
    want: &Want,
) -> Result<Vec<Found>> {
    let path = &*u.path;
    let b = reader::open(io, path, u.size, false, true).await?;
    let md = b.metadata().clone();
    let (tc, kc) = (leaf(&md, TENANT_ID)?, leaf(&md, &codec.key_field)?);
    let mask = parquet::arrow::ProjectionMask::leaves(md.file_metadata().schema_descr(), [tc, kc]);
    let mut stream = b
        .with_projection(mask)
        .with_row_groups(u.groups.clone())
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .io(|| format!("read {path}"))?;
    // (offset within the unit's rows, file position)
    let mut hits: Vec<(usize, i64)> = vec![];
    let mut seen = 0usize;
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        let tenant = utf8_array(&batch, TENANT_ID)?;
        let tenant = tenant.as_string::<i32>();
        let key = utf8_array(&batch, &codec.key_field)?;
        let key = key.as_string::<i32>();
        let pos = row_pos(&batch)?;
        for i in 0..batch.num_rows() {
            if want.keeps(tenant.value(i), key.value(i))
                && u.deleted.binary_search(&pos.value(i)).is_err()
            {
                hits.push((seen + i, pos.value(i)));
            }
        }
        seen += batch.num_rows();
    }
    if hits.is_empty() {
        return Ok(vec![]);
    }
    let selection = parquet::arrow::arrow_reader::RowSelection::from_consecutive_ranges(
        hits.iter().map(|(o, _)| *o..*o + 1),
        seen,
    );
    let b = reader::open(io, path, u.size, false, true).await?;
    let mut stream = b
        .with_row_groups(u.groups)
        .with_row_selection(selection)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .io(|| format!("read {path}"))?;
    let mut out = Vec::with_capacity(hits.len());
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        let pos = row_pos(&batch)?;
        for (i, row) in codec.from_batch(&batch, None)?.into_iter().enumerate() {
            out.push(Found {
                row,
                file_path: u.path.clone(),
                pos: pos.value(i),
                superseded: vec![],
            });
        }
    }
    if out.len() != hits.len() || out.iter().zip(&hits).any(|(f, h)| f.pos != h.1) {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("row selection of {path} returned other rows"),
        ));
    }
    Ok(out)
}

fn row_pos(batch: &RecordBatch) -> Result<arrow_array::Int64Array> {
    batch
        .column_by_name(ROW_POS)
        .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
        .ok_or_else(|| Error::new(ErrorKind::Internal, "row position column missing"))
}

/// The live rows of `keys` among `live` (files of one partition), with their positions.
/// Two live rows of one (tenant, key) (another writer appended one) resolve to the newest
/// write (data sequence number, then last offset); the others are `superseded`.
pub async fn find_rows(
    io: &FileIO,
    codec: &RowCodec,
    live: &LiveFiles,
    keys: &HashSet<(String, String)>,
    caches: Caches<'_>,
) -> Result<HashMap<(String, String), Found>> {
    let mut out: HashMap<(String, String), Found> = HashMap::new();
    if keys.is_empty() || live.data.is_empty() {
        return Ok(out);
    }
    let want = Want::Batch(KeyIndex::new(
        keys.iter().map(|(t, k)| (t.as_str(), k.as_str())),
    ));
    let seq: HashMap<&str, i64> = live
        .data
        .iter()
        .map(|f| (f.file.file_path(), f.data_seq))
        .collect();
    let rank = |f: &Found| {
        let s = seq.get(&*f.file_path).copied().unwrap_or(i64::MIN);
        (s, f.row.last_offset, f.pos)
    };
    let files: Vec<&LiveFile> = live.data.iter().collect();
    for found in read(io, codec, &files, &live.deletes, want, Some(caches)).await? {
        let id = found.row.identity();
        let Some(prev) = out.remove(&id) else {
            out.insert(id, found);
            continue;
        };
        tracing::warn!(tenant = %id.0, key = %id.1, "two live rows of one key (another writer appended one); the newest wins, the merge deletes both");
        let (mut keep, old) = if rank(&found) > rank(&prev) {
            (found, prev)
        } else {
            (prev, found)
        };
        keep.superseded.push((old.file_path, old.pos));
        keep.superseded.extend(old.superseded);
        out.insert(id, keep);
    }
    Ok(out)
}

/// All live rows of `live`, optionally only of one tenant and/or key. Unsorted.
pub async fn scan_rows(
    io: &FileIO,
    codec: &RowCodec,
    live: &LiveFiles,
    tenant: Option<&str>,
    key: Option<&str>,
) -> Result<Vec<StateRow>> {
    let want = Want::Match {
        tenant: tenant.map(str::to_string),
        key: key.map(str::to_string),
    };
    let files: Vec<&LiveFile> = live.data.iter().collect();
    Ok(read(io, codec, &files, &live.deletes, want, None)
        .await?
        .into_iter()
        .map(|f| f.row)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_index_bounds() {
        let ids = [("t1", "b"), ("t2", "m"), ("t1", "x")];
        let w = Want::Batch(KeyIndex::new(ids.iter().copied()));
        assert!(w.any_within((None, None), (Some("a"), Some("c"))));
        assert!(!w.any_within((None, None), (Some("c"), Some("l"))));
        assert!(!w.any_within((Some("t2"), Some("t2")), (Some("a"), Some("c"))));
        assert!(w.any_within((Some("t2"), Some("t9")), (Some("m"), Some("m"))));
        assert!(w.keeps("t1", "x") && !w.keeps("t2", "x"));
        let m = Want::Match {
            tenant: Some("t1".into()),
            key: None,
        };
        assert!(m.any_within((Some("t0"), Some("t2")), (None, None)));
        assert!(!m.any_within((Some("t2"), Some("t3")), (None, None)));
        assert!(m.keeps("t1", "q") && !m.keeps("t2", "q"));
    }
}

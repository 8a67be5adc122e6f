//! Finding the live rows of a batch's keys, and full scans.
//!
//! What a lookup costs (`find_rows`), for a batch of K keys into a partition of N rows:
//! - the partition's manifests only (`files::live_files` prunes by partition summary);
//! - the partition's position-delete rows (bounded by compaction), only from delete files
//!   whose `file_path` bounds can name a candidate data file;
//! - per data file whose (tenant, key) bounds can hold a batch key: the footer, then the
//!   tenant and key columns of the row groups whose min/max can hold one (files and row
//!   groups are sorted by (tenant, key), so a batch of few or clustered keys reads few row
//!   groups; K random keys over N rows touch about min(N / row_group_rows, K) groups), and a
//!   hash probe per row read: O(rows read) time, O(K + one row group) memory;
//! - then the full rows of the K' matches only, through a row selection that skips pages.
//!
//! So: proportional to the batch and its partition, never to the rest of the table.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::RecordBatch;
use futures::TryStreamExt;
use iceberg::io::FileIO;
use iceberg::spec::{DataFile, Datum, PrimitiveLiteral};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::RowSelection;
use parquet::file::metadata::ParquetMetaData;

use super::files::{LiveFile, LiveFiles};
use super::reader::{self, ROW_POS};
use super::row::{RowCodec, utf8_array};
use super::schema::TENANT_ID;
use super::{ResultExt, StateRow, position_delete};
use crate::error::{Error, ErrorKind, Result};

/// Rows decoded per Arrow batch while reading.
const READ_BATCH_ROWS: usize = 8 * 1024;

/// The live row of one (tenant, key) and where it is.
#[derive(Debug, Clone)]
pub struct Found {
    pub row: StateRow,
    pub file_path: String,
    pub pos: i64,
}

/// The batch's identities, indexed for bounds checks and probes.
struct KeyIndex<'a> {
    /// key -> tenants having it in the batch
    by_key: HashMap<&'a str, Vec<&'a str>>,
    /// sorted distinct keys
    keys: Vec<&'a str>,
}

impl<'a> KeyIndex<'a> {
    fn new(ids: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
        for (t, k) in ids {
            by_key.entry(k).or_default().push(t);
        }
        let mut keys: Vec<&str> = by_key.keys().copied().collect();
        keys.sort_unstable();
        Self { by_key, keys }
    }

    /// Whether some batch identity lies in the (inclusive, optional) tenant and key bounds.
    fn any_within(&self, t: (Option<&str>, Option<&str>), k: (Option<&str>, Option<&str>)) -> bool {
        let start = k.0.map_or(0, |lo| self.keys.partition_point(|x| *x < lo));
        let end = k.1.map_or(self.keys.len(), |hi| self.keys.partition_point(|x| *x <= hi));
        self.keys.get(start..end).unwrap_or(&[]).iter().any(|key| {
            self.by_key
                .get(key)
                .is_some_and(|ts| ts.iter().any(|x| t.0.is_none_or(|lo| lo <= *x) && t.1.is_none_or(|hi| *x <= hi)))
        })
    }

    fn contains(&self, tenant: &str, key: &str) -> bool {
        self.by_key.get(key).is_some_and(|ts| ts.contains(&tenant))
    }
}

fn str_datum(d: Option<&Datum>) -> Option<&str> {
    match d?.literal() {
        PrimitiveLiteral::String(s) => Some(s.as_str()),
        _ => None,
    }
}

struct ColumnIds {
    tenant: i32,
    key: i32,
}

impl ColumnIds {
    fn new(codec: &RowCodec) -> Result<Self> {
        Ok(Self {
            tenant: super::schema::field_id(&codec.schema, TENANT_ID)?,
            key: super::schema::field_id(&codec.schema, &codec.key_field)?,
        })
    }

    /// (tenant bounds, key bounds) of a data file from its manifest entry.
    fn file_bounds<'f>(&self, f: &'f DataFile) -> ((Option<&'f str>, Option<&'f str>), (Option<&'f str>, Option<&'f str>)) {
        let lb = f.lower_bounds();
        let ub = f.upper_bounds();
        (
            (str_datum(lb.get(&self.tenant)), str_datum(ub.get(&self.tenant))),
            (str_datum(lb.get(&self.key)), str_datum(ub.get(&self.key))),
        )
    }
}

/// Leaf column index of a top-level column.
fn leaf(md: &ParquetMetaData, name: &str) -> Result<usize> {
    md.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name.to_string()])
        .ok_or_else(|| Error::new(ErrorKind::Io, format!("column `{name}` missing from a data file")))
}

/// (min, max) of a string column in one row group, if exact statistics exist.
fn rg_bounds(md: &ParquetMetaData, rg: usize, col: usize) -> (Option<&str>, Option<&str>) {
    let Some(s) = md.row_group(rg).column(col).statistics() else {
        return (None, None);
    };
    let lo = s.min_is_exact().then(|| s.min_bytes_opt()).flatten().and_then(|b| std::str::from_utf8(b).ok());
    let hi = s.max_is_exact().then(|| s.max_bytes_opt()).flatten().and_then(|b| std::str::from_utf8(b).ok());
    (lo, hi)
}

/// The live rows of `keys` among `live` (files of one partition), with their positions.
pub async fn find_rows(
    io: &FileIO,
    codec: &RowCodec,
    live: &LiveFiles,
    keys: &HashSet<(String, String)>,
) -> Result<HashMap<(String, String), Found>> {
    let mut out = HashMap::new();
    if keys.is_empty() || live.data.is_empty() {
        return Ok(out);
    }
    let index = KeyIndex::new(keys.iter().map(|(t, k)| (t.as_str(), k.as_str())));
    let ids = ColumnIds::new(codec)?;
    let candidates: Vec<&LiveFile> = live
        .data
        .iter()
        .filter(|f| {
            let (t, k) = ids.file_bounds(&f.file);
            index.any_within(t, k)
        })
        .collect();
    let paths: HashSet<&str> = candidates.iter().map(|f| f.file.file_path()).collect();
    let deleted = position_delete::read_deleted(io, &live.deletes, &paths).await?;
    for f in candidates {
        let path = f.file.file_path();
        let del = deleted.get(path).map(Vec::as_slice).unwrap_or(&[]);
        let hits = probe_file(io, codec, f, &index, del).await?;
        if hits.is_empty() {
            continue;
        }
        for found in fetch_rows(io, codec, f, &hits).await? {
            let id = found.row.identity();
            if let Some(prev) = out.insert(id.clone(), found) {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("two live rows for {id:?}: {}@{} and another (table corrupt)", prev.file_path, prev.pos),
                ));
            }
        }
    }
    Ok(out)
}

/// Phase 1: positions of live rows of the batch's identities in one file (tenant and key
/// columns only, of the row groups whose bounds can hold one).
async fn probe_file(io: &FileIO, codec: &RowCodec, f: &LiveFile, index: &KeyIndex<'_>, deleted: &[i64]) -> Result<Vec<i64>> {
    let path = f.file.file_path();
    let b = reader::open(io, path, f.file.file_size_in_bytes(), false, true).await?;
    let md = b.metadata().clone();
    let (tc, kc) = (leaf(&md, TENANT_ID)?, leaf(&md, &codec.key_field)?);
    let groups: Vec<usize> = (0..md.num_row_groups())
        .filter(|&rg| index.any_within(rg_bounds(&md, rg, tc), rg_bounds(&md, rg, kc)))
        .collect();
    if groups.is_empty() {
        return Ok(vec![]);
    }
    let mask = ProjectionMask::leaves(md.file_metadata().schema_descr(), [tc, kc]);
    let mut stream = b
        .with_projection(mask)
        .with_row_groups(groups)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .io(|| format!("read {path}"))?;
    let mut hits = vec![];
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        let tenant = utf8_array(&batch, TENANT_ID)?;
        let tenant = tenant.as_string::<i32>();
        let key = utf8_array(&batch, &codec.key_field)?;
        let key = key.as_string::<i32>();
        let pos = row_pos(&batch)?;
        for i in 0..batch.num_rows() {
            if index.contains(tenant.value(i), key.value(i)) {
                let p = pos.value(i);
                if deleted.binary_search(&p).is_err() {
                    hits.push(p);
                }
            }
        }
    }
    hits.sort_unstable();
    Ok(hits)
}

fn row_pos(batch: &RecordBatch) -> Result<arrow_array::Int64Array> {
    batch
        .column_by_name(ROW_POS)
        .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
        .ok_or_else(|| Error::new(ErrorKind::Internal, "row position column missing"))
}

/// Phase 2: the full rows at `positions` (sorted) of one file, through a row selection over
/// the row groups that hold them.
async fn fetch_rows(io: &FileIO, codec: &RowCodec, f: &LiveFile, positions: &[i64]) -> Result<Vec<Found>> {
    let path = f.file.file_path();
    let b = reader::open(io, path, f.file.file_size_in_bytes(), true, true).await?;
    let md = b.metadata().clone();
    let mut starts = Vec::with_capacity(md.num_row_groups());
    let mut acc = 0i64;
    for rg in md.row_groups() {
        starts.push(acc);
        acc += rg.num_rows();
    }
    let group_of = |p: i64| starts.partition_point(|s| *s <= p) - 1;
    let groups: Vec<usize> = positions.iter().map(|p| group_of(*p)).collect::<BTreeSet<_>>().into_iter().collect();
    // Offsets of the selected groups within their concatenation.
    let mut base: HashMap<usize, i64> = HashMap::new();
    let mut total = 0i64;
    for g in &groups {
        base.insert(*g, total);
        total += md.row_group(*g).num_rows();
    }
    let ranges: Vec<Range<usize>> = positions
        .iter()
        .map(|p| {
            let g = group_of(*p);
            let r = (base[&g] + p - starts[g]) as usize;
            r..r + 1
        })
        .collect();
    let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), total as usize);
    let mut stream = b
        .with_row_groups(groups)
        .with_row_selection(selection)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .io(|| format!("read {path}"))?;
    let mut out = Vec::with_capacity(positions.len());
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        let pos = row_pos(&batch)?;
        for (i, row) in codec.from_batch(&batch, None)?.into_iter().enumerate() {
            out.push(Found { row, file_path: path.to_string(), pos: pos.value(i) });
        }
    }
    if out.len() != positions.len() || out.iter().zip(positions).any(|(f, p)| f.pos != *p) {
        return Err(Error::new(ErrorKind::Internal, format!("row selection of {path} returned other rows")));
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
    let ids = ColumnIds::new(codec)?;
    let within = |b: (Option<&str>, Option<&str>), v: Option<&str>| match v {
        None => true,
        Some(v) => b.0.is_none_or(|lo| lo <= v) && b.1.is_none_or(|hi| v <= hi),
    };
    let files: Vec<&LiveFile> = live
        .data
        .iter()
        .filter(|f| {
            let (t, k) = ids.file_bounds(&f.file);
            within(t, tenant) && within(k, key)
        })
        .collect();
    let paths: HashSet<&str> = files.iter().map(|f| f.file.file_path()).collect();
    let deleted = position_delete::read_deleted(io, &live.deletes, &paths).await?;
    let mut out = vec![];
    for f in files {
        let path = f.file.file_path();
        let del = deleted.get(path).map(Vec::as_slice).unwrap_or(&[]);
        let b = reader::open(io, path, f.file.file_size_in_bytes(), false, true).await?;
        let mut stream = b.with_batch_size(READ_BATCH_ROWS).build().io(|| format!("read {path}"))?;
        while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
            let pos = row_pos(&batch)?;
            let t = utf8_array(&batch, TENANT_ID)?;
            let t = t.as_string::<i32>();
            let k = utf8_array(&batch, &codec.key_field)?;
            let k = k.as_string::<i32>();
            let keep: Vec<usize> = (0..batch.num_rows())
                .filter(|&i| {
                    del.binary_search(&pos.value(i)).is_err()
                        && tenant.is_none_or(|x| t.value(i) == x)
                        && key.is_none_or(|x| k.value(i) == x)
                })
                .collect();
            if !keep.is_empty() {
                out.extend(codec.from_batch(&batch, Some(&keep))?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_index_bounds() {
        let ids = [("t1", "b"), ("t2", "m"), ("t1", "x")];
        let ix = KeyIndex::new(ids.iter().copied());
        assert!(ix.any_within((None, None), (Some("a"), Some("c"))));
        assert!(!ix.any_within((None, None), (Some("c"), Some("l"))));
        assert!(!ix.any_within((Some("t2"), Some("t2")), (Some("a"), Some("c"))));
        assert!(ix.any_within((Some("t2"), Some("t9")), (Some("m"), Some("m"))));
        assert!(ix.contains("t1", "x") && !ix.contains("t2", "x"));
    }
}

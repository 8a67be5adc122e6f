//! A warm container's index of data files: each file's rows kept on local disk (uncompressed,
//! one record per row) and the hash of each row's (tenant, key) in memory, so that a lookup
//! reads only the rows of the batch's keys instead of decompressing the whole partition.
//!
//! Why: a batch of K random keys into a partition of N rows puts a match on nearly every
//! Parquet page once K is about N / 100, so any read through the Parquet file decompresses
//! and skims all of it (at 1 M rows, most of a merge's CPU). Row-level random access needs
//! the rows stored row by row; local disk (Lambda's `/tmp`) holds them for as long as the
//! container lives, like Paimon's local lookup files.
//!
//! Data files never change once written (Iceberg), so the index of one file is built once and
//! stays true for as long as the file lives: nothing needs refreshing when new snapshots
//! come. A file this handle's merge wrote is indexed from the rows in hand as the merge
//! commits; any other file (another writer's, a compaction's, one from before the container
//! started) on its second lookup (the first reads Parquet: a container may never see a
//! third). Files a compaction replaced are no longer looked up and age out; when a budget is
//! full, smaller files go before larger ones (re-reading the compacted file is the dearest
//! miss). Deletes
//! are not in the index (they change with every merge): the lookup drops the rows whose
//! position the current position deletes name. Every row read is checked for its (tenant,
//! key): a hash collision costs one row read, never a wrong row.
//!
//! Rows are stored in Arrow's row format (`arrow-row`), which round-trips every column type
//! the state table has. Limits: [`super::TableLimits::max_indexed_rows`] rows in memory (12
//! bytes each) and [`super::TableLimits::max_index_disk_bytes`] on disk, across all files;
//! the least recently used files go first. A file that does not fit is looked up through
//! Parquet (`lookup`). The row files are unnamed temporary files: the kernel frees them when
//! their index is dropped, or when the process ends, whatever way it ends.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::Hasher;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;

use crate::error::{Error, ErrorKind, Result};

/// The hash an index files a (tenant, key) under: 32 bits, so that an entry is 12 bytes. At
/// 100,000 rows a file, a probe meets another identity's row about once in 40,000 probes:
/// one row read more, which the lookup's identity check drops.
pub fn identity_hash(tenant: &str, key: &str) -> u32 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(tenant.as_bytes());
    // A separator byte no UTF-8 text holds: ("ab", "c") and ("a", "bc") hash apart.
    h.write_u8(0xff);
    h.write(key.as_bytes());
    // The high half: over 1 M identities it spreads as 32 uniform bits would (a test below).
    (h.finish() >> 32) as u32
}

/// One row's entry: its identity hash and where its record lies in the row file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    hash: u32,
    offset: u32,
    len: u32,
}

// 12 bytes an indexed row: 12 MB of memory for a 1 M-key partition.
const _: () = assert!(std::mem::size_of::<Entry>() == 12);

/// One data file's rows on local disk, by identity hash.
pub struct FileIndex {
    /// Sorted by hash.
    entries: Vec<Entry>,
    rows: File,
    size_bytes: u64,
    converter: RowConverter,
    schema: SchemaRef,
}

impl std::fmt::Debug for FileIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileIndex")
            .field("rows", &self.entries.len())
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`FileIndex`] from a data file's record batches, in any order.
pub struct FileIndexBuilder {
    entries: Vec<Entry>,
    rows: BufWriter<File>,
    size_bytes: u64,
    max_size_bytes: u64,
    converter: RowConverter,
    schema: SchemaRef,
}

impl FileIndexBuilder {
    /// A builder for batches of `schema`, writing at most `max_size_bytes` of rows.
    pub fn new(schema: SchemaRef, rows_hint: usize, max_size_bytes: u64) -> Result<Self> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                "a state table column has no row format",
            )
            .with_source(e)
        })?;
        let file = tempfile::tempfile().map_err(|e| {
            Error::new(ErrorKind::Io, "create a local row file for a key index").with_source(e)
        })?;
        Ok(Self {
            entries: Vec::with_capacity(rows_hint),
            rows: BufWriter::with_capacity(1 << 20, file),
            size_bytes: 0,
            max_size_bytes: max_size_bytes.min(u64::from(u32::MAX)),
            converter,
            schema,
        })
    }

    /// Adds a batch's rows; `hashes[i]` is row i's [`identity_hash`]. `Ok(false)`: the rows
    /// outgrow the disk budget (the file is not indexed).
    pub fn push(&mut self, batch: &RecordBatch, hashes: &[u32]) -> Result<bool> {
        debug_assert_eq!(batch.num_rows(), hashes.len());
        if batch.schema() != self.schema {
            return Err(Error::new(
                ErrorKind::Internal,
                "key index: batches of two schemas",
            ));
        }
        let rows = self
            .converter
            .convert_columns(batch.columns())
            .map_err(|e| Error::new(ErrorKind::Internal, "key index: row format").with_source(e))?;
        for (row, &hash) in rows.iter().zip(hashes) {
            let bytes = row.as_ref();
            let len = bytes.len() as u64;
            if self.size_bytes + len > self.max_size_bytes {
                return Ok(false);
            }
            self.rows.write_all(bytes).map_err(write_err)?;
            // Both fit in u32: max_size_bytes does.
            self.entries.push(Entry {
                hash,
                offset: self.size_bytes as u32,
                len: len as u32,
            });
            self.size_bytes += len;
        }
        Ok(true)
    }

    pub fn finish(mut self) -> Result<FileIndex> {
        self.entries.sort_unstable();
        let rows = self
            .rows
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        Ok(FileIndex {
            entries: self.entries,
            rows,
            size_bytes: self.size_bytes,
            converter: self.converter,
            schema: self.schema,
        })
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, "write a key index's local row file").with_source(e)
}

impl FileIndex {
    pub fn rows(&self) -> usize {
        self.entries.len()
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The rows whose hash is in `wanted` (sorted, ascending), as one batch of the file's
    /// schema (in row file order), each row once. Blocking: reads the local row file.
    pub fn rows_of(&self, wanted: &[u32]) -> Result<RecordBatch> {
        debug_assert!(wanted.is_sorted());
        let mut hits: Vec<Entry> = vec![];
        let mut at = 0;
        for (i, &w) in wanted.iter().enumerate() {
            if i > 0 && wanted[i - 1] == w {
                continue;
            }
            at = gallop(&self.entries, at, w);
            hits.extend(self.entries[at..].iter().take_while(|e| e.hash == w));
        }
        // File order: reads go forward through the row file.
        hits.sort_unstable_by_key(|e| e.offset);
        let total: usize = hits.iter().map(|e| e.len as usize).sum();
        let mut buf = vec![0u8; total];
        let mut spans = Vec::with_capacity(hits.len());
        let mut at = 0usize;
        for e in &hits {
            let span = at..at + e.len as usize;
            self.rows
                .read_exact_at(&mut buf[span.clone()], u64::from(e.offset))
                .map_err(|e| {
                    Error::new(ErrorKind::Io, "read a key index's local row file").with_source(e)
                })?;
            spans.push(span.clone());
            at = span.end;
        }
        let parser = self.converter.parser();
        let columns = self
            .converter
            .convert_rows(spans.into_iter().map(|s| parser.parse(&buf[s])))
            .map_err(|e| Error::new(ErrorKind::Internal, "key index: row format").with_source(e))?;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::new(ErrorKind::Internal, "key index: rows to batch").with_source(e))
    }
}

/// The first index at or after `from` whose entry's hash is not below `w` (`entries` sorted
/// by hash). An exponential search from `from`: every data file is probed with all of a
/// batch's hashes, so consecutive probes land a few entries apart (10,000 hashes into
/// 100,000 entries: about 10), and a search over the whole rest of the file paid ~17
/// cache-missing steps each.
fn gallop(entries: &[Entry], from: usize, w: u32) -> usize {
    let rest = &entries[from..];
    let mut end = 1;
    while end < rest.len() && rest[end - 1].hash < w {
        end *= 2;
    }
    let end = end.min(rest.len());
    // rest[..end / 2] is below w (each probed end - 1 was), so the answer lies past it.
    let start = end / 2;
    from + start + rest[start..end].partition_point(|e| e.hash < w)
}

/// Paths remembered as too large to index, or as looked up once, at most (each).
const MAX_REMEMBERED_FILES: usize = 4096;

/// Data files' indexes by path, within a budget of rows (memory) and bytes (local disk).
#[derive(Debug)]
pub struct FileIndexCache {
    inner: Mutex<Inner>,
    max_rows: usize,
    max_disk_bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// path -> (index, last use)
    files: HashMap<String, (Arc<FileIndex>, u64)>,
    /// Files whose rows outgrew the disk budget: not read again to find that out.
    refused: HashSet<String>,
    /// Files looked up once and not indexed yet: the second lookup indexes them.
    seen: HashSet<String>,
    rows: usize,
    disk_bytes: u64,
    clock: u64,
}

impl FileIndexCache {
    /// A cache of at most `max_rows` indexed rows and `max_disk_bytes` of row files (either
    /// 0: no index; every lookup reads Parquet).
    pub fn new(max_rows: usize, max_disk_bytes: u64) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_rows,
            max_disk_bytes,
        }
    }

    /// Whether a file of `rows` rows may be indexed at all.
    pub fn admits(&self, rows: u64) -> bool {
        rows > 0 && rows <= self.max_rows as u64 && self.max_disk_bytes > 0
    }

    /// The disk budget of one file's rows.
    pub fn max_disk_bytes(&self) -> u64 {
        self.max_disk_bytes
    }

    /// The index of `path`, if it is kept.
    pub fn get(&self, path: &str) -> Option<Arc<FileIndex>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.files.get_mut(path)?;
        entry.1 = now;
        Some(entry.0.clone())
    }

    /// Keeps the index of `path`, dropping files until it fits: the least recently used of
    /// those no larger than it first, so that a merge's small new file never evicts the
    /// partition's large compacted file (a full re-read) while small ones remain.
    pub fn insert(&self, path: &str, index: Arc<FileIndex>) {
        if !self.admits(index.rows() as u64) || index.size_bytes() > self.max_disk_bytes {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let now = inner.clock;
        inner.remove(path);
        while inner.rows + index.rows() > self.max_rows
            || inner.disk_bytes + index.size_bytes() > self.max_disk_bytes
        {
            let Some(victim) = inner.victim(index.rows()) else {
                break;
            };
            inner.remove(&victim);
        }
        inner.rows += index.rows();
        inner.disk_bytes += index.size_bytes();
        inner.files.insert(path.to_owned(), (index, now));
        assert!(inner.rows <= self.max_rows && inner.disk_bytes <= self.max_disk_bytes);
    }

    /// Whether `path` was found too large to index.
    pub fn refused(&self, path: &str) -> bool {
        self.inner.lock().is_ok_and(|i| i.refused.contains(path))
    }

    /// Records that `path` is too large to index.
    pub fn refuse(&self, path: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            remember(&mut inner.refused, path);
        }
    }

    /// Whether `path` was looked up before (it is worth indexing: building an index reads
    /// the whole file, about three lookups' worth, so a container that looks a file up once
    /// and ends does not pay for it). Records this lookup.
    pub fn seen_before(&self, path: &str) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if inner.seen.remove(path) {
            return true;
        }
        remember(&mut inner.seen, path);
        false
    }

    /// (rows, row file bytes) indexed now, all files.
    pub fn usage(&self) -> (usize, u64) {
        self.inner.lock().map_or((0, 0), |i| (i.rows, i.disk_bytes))
    }
}

/// Adds `path` to a bounded set: files come and go with compactions, and forgetting one
/// costs one more Parquet lookup.
impl Inner {
    /// The file to evict for a file of `rows` rows (see `FileIndexCache::insert`).
    fn victim(&self, rows: usize) -> Option<String> {
        let lru = |small: bool| {
            self.files
                .iter()
                .filter(|(_, (ix, _))| !small || ix.rows() <= rows)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone())
        };
        lru(true).or_else(|| lru(false))
    }
}

fn remember(set: &mut HashSet<String>, path: &str) {
    if set.len() >= MAX_REMEMBERED_FILES {
        set.clear();
    }
    set.insert(path.to_owned());
}

impl Inner {
    fn remove(&mut self, path: &str) {
        if let Some((old, _)) = self.files.remove(path) {
            self.rows -= old.rows();
            self.disk_bytes -= old.size_bytes();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(keys: &[&str], first: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let n: Vec<Option<i64>> = (0..keys.len() as i64)
            .map(|i| (i % 2 == 0).then_some(first + i))
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(keys.to_vec())),
            Arc::new(Int64Array::from(n)),
        ];
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn index(batches: &[RecordBatch], max_bytes: u64) -> Option<FileIndex> {
        let mut b = FileIndexBuilder::new(batches[0].schema(), 0, max_bytes).unwrap();
        for batch in batches {
            let keys = batch.column(0).as_string::<i32>();
            let hashes: Vec<u32> = keys
                .iter()
                .map(|k| identity_hash("t", k.unwrap()))
                .collect();
            if !b.push(batch, &hashes).unwrap() {
                return None;
            }
        }
        Some(b.finish().unwrap())
    }

    proptest::proptest! {
        /// The exponential search finds what a binary search over the rest finds, from any
        /// start, for hashes present, absent, below and above every entry (runs of equal
        /// hashes included).
        #[test]
        fn gallop_finds_the_first_entry_not_below(
            mut hashes in proptest::collection::vec(0u32..64, 0..300),
            from_pick in 0usize..301,
            w in 0u32..70,
        ) {
            hashes.sort_unstable();
            let entries: Vec<Entry> =
                hashes.iter().map(|&hash| Entry { hash, offset: 0, len: 0 }).collect();
            let from = from_pick.min(entries.len());
            let expected = from + entries[from..].partition_point(|e| e.hash < w);
            proptest::prop_assert_eq!(gallop(&entries, from, w), expected);
        }
    }

    #[test]
    fn rows_of_returns_every_row_of_the_wanted_hashes_with_its_values() {
        let ix = index(
            &[batch(&["a", "b", "c"], 10), batch(&["d", "b"], 20)],
            1 << 20,
        )
        .unwrap();
        assert_eq!(ix.rows(), 5);
        let mut wanted = vec![identity_hash("t", "b"), identity_hash("t", "d")];
        wanted.sort_unstable();
        let got = ix.rows_of(&wanted).unwrap();
        let keys: Vec<&str> = got.column(0).as_string::<i32>().iter().flatten().collect();
        let n: Vec<Option<i64>> = got.column(1).as_primitive::<Int64Type>().iter().collect();
        // row file order: b (first batch), then d and b (second)
        assert_eq!(keys, ["b", "d", "b"]);
        assert_eq!(n, [None, Some(20), None]);
        assert_eq!(ix.rows_of(&[]).unwrap().num_rows(), 0);
        assert_eq!(
            ix.rows_of(&[identity_hash("t", "zz")]).unwrap().num_rows(),
            0
        );
    }

    #[test]
    fn a_shared_hash_reads_every_row_under_it_once() {
        // Two identities filed under one hash (a 32-bit collision, forced here): both rows
        // come back, each once, even if the hash is wanted twice; the lookup's identity
        // check then keeps the one it asked for.
        let b = batch(&["a", "b", "c"], 1);
        let mut builder = FileIndexBuilder::new(b.schema(), 3, 1 << 20).unwrap();
        assert!(builder.push(&b, &[7, 3, 7]).unwrap());
        let ix = builder.finish().unwrap();
        let keys = |wanted: &[u32]| -> Vec<String> {
            let got = ix.rows_of(wanted).unwrap();
            let col = got.column(0).as_string::<i32>();
            col.iter().flatten().map(str::to_owned).collect()
        };
        assert_eq!(keys(&[7]), ["a", "c"]);
        assert_eq!(keys(&[7, 7]), ["a", "c"]);
        assert_eq!(keys(&[3, 7]), ["a", "b", "c"]);
        assert!(keys(&[5]).is_empty());
    }

    #[test]
    fn a_file_over_the_disk_budget_is_not_indexed() {
        assert!(index(&[batch(&["a", "b", "c"], 0)], 8).is_none());
    }

    #[test]
    fn the_hash_spreads_a_million_identities_over_its_32_bits() {
        // 1 M identities as a partition holds them: uniform 32-bit hashes would put about
        // n^2 / 2^33 = 116 pairs together; a hash that kept weak bits would put thousands.
        let mut hashes: Vec<u32> = (0..1_000_000u64)
            .map(|i| {
                identity_hash(
                    ["acme", "globex", "initech", "umbrella"][(i % 4) as usize],
                    &format!("order-{i:09}"),
                )
            })
            .collect();
        hashes.sort_unstable();
        let shared = hashes.windows(2).filter(|w| w[0] == w[1]).count();
        eprintln!("identities sharing a hash: {shared}");
        assert!(shared < 300, "{shared} identities share a hash");
    }

    #[test]
    fn the_separator_keeps_tenant_and_key_apart() {
        assert_ne!(identity_hash("ab", "c"), identity_hash("a", "bc"));
        assert_eq!(identity_hash("t", "k"), identity_hash("t", "k"));
    }

    #[test]
    fn the_least_recently_used_file_goes_first_and_the_budgets_hold() {
        let file = |n: usize| {
            let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            Arc::new(index(&[batch(&keys, 0)], 1 << 20).unwrap())
        };
        let cache = FileIndexCache::new(10, 1 << 20);
        cache.insert("a", file(4));
        cache.insert("b", file(4));
        assert!(cache.get("a").is_some()); // b is now the least recently used
        cache.insert("c", file(4));
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        assert_eq!(cache.usage().0, 8);
        cache.insert("big", file(11)); // over the row budget: never kept
        assert!(cache.get("big").is_none());
        assert_eq!(cache.usage().0, 8);
        // A disk budget of one file's bytes keeps one file.
        let one = file(4).size_bytes();
        let small = FileIndexCache::new(100, one);
        small.insert("a", file(4));
        small.insert("b", file(4));
        assert!(small.get("a").is_none() && small.get("b").is_some());
        assert_eq!(small.usage(), (4, one));
        assert!(!small.seen_before("x") && small.seen_before("x"));
        assert!(!FileIndexCache::new(0, 1).admits(1));
        // A small file makes room by evicting small files, even if the large one is older.
        let sized = FileIndexCache::new(12, 1 << 20);
        sized.insert("large", file(8));
        sized.insert("s1", file(2));
        sized.insert("s2", file(2));
        sized.insert("s3", file(2));
        assert!(sized.get("large").is_some() && sized.get("s1").is_none());
        assert!(sized.get("s2").is_some() && sized.get("s3").is_some());
        // A larger file evicts the least recently used whatever its size.
        sized.insert("larger", file(9));
        assert!(sized.get("large").is_none() && sized.get("larger").is_some());
        assert!(!FileIndexCache::new(1, 0).admits(1));
    }
}

//! The live files of a table's current snapshot, pruned by source partition.
//!
//! Cost: the manifest list (one entry per manifest), plus only the manifests whose partition
//! summary can hold the asked partition. Every refold commit writes manifests of one
//! partition, so for a merge that is the partition's own manifests, not the table's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, Datum, Manifest, ManifestFile, ManifestList, PrimitiveLiteral,
    PrimitiveType, Snapshot, TableMetadata,
};

use super::ResultExt;
use crate::error::{Error, ErrorKind, Result};

/// A live (added or existing) manifest entry.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub file: DataFile,
    pub data_seq: i64,
    pub file_seq: Option<i64>,
    pub snapshot_id: i64,
    pub partition: Option<i32>,
}

/// The live data and delete files of a snapshot (of one partition, or all).
#[derive(Debug, Clone, Default)]
pub struct LiveFiles {
    pub data: Vec<LiveFile>,
    pub deletes: Vec<LiveFile>,
}

impl LiveFiles {
    pub fn all_paths(&self) -> Vec<String> {
        self.data
            .iter()
            .chain(self.deletes.iter())
            .map(|f| f.file.file_path().to_string())
            .collect()
    }

    /// Partitions with delete files or more than one data file.
    pub fn partitions_needing_compaction(&self) -> Vec<i32> {
        let mut n: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
        for f in &self.data {
            if let Some(p) = f.partition {
                n.entry(p).or_default().0 += 1;
            }
        }
        for f in &self.deletes {
            if let Some(p) = f.partition {
                n.entry(p).or_default().1 += 1;
            }
        }
        n.into_iter()
            .filter(|(_, (d, x))| *d > 1 || *x > 0)
            .map(|(p, _)| p)
            .collect()
    }
}

/// Manifests one listing reads at once.
const MAX_MANIFEST_READS_IN_FLIGHT: usize = 8;

/// Parsed manifests by path (manifest files are immutable). Cleared when it reaches `max`.
#[derive(Debug)]
pub struct ManifestCache {
    inner: Mutex<HashMap<String, Arc<Manifest>>>,
    max: usize,
}

impl ManifestCache {
    pub fn new(max: usize) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub async fn get(&self, io: &FileIO, mf: &ManifestFile) -> Result<Arc<Manifest>> {
        if let Some(m) = self
            .inner
            .lock()
            .ok()
            .and_then(|c| c.get(&mf.manifest_path).cloned())
        {
            return Ok(m);
        }
        let m = Arc::new(
            mf.load_manifest(io)
                .await
                .io(|| format!("read manifest {}", mf.manifest_path))?,
        );
        if self.max > 0
            && let Ok(mut c) = self.inner.lock()
        {
            if c.len() >= self.max {
                c.clear();
            }
            c.insert(mf.manifest_path.clone(), m.clone());
        }
        Ok(m)
    }
}

/// The current snapshot's manifests (empty for a table without snapshots).
pub async fn manifest_list(io: &FileIO, md: &TableMetadata) -> Result<Vec<ManifestFile>> {
    match md.current_snapshot() {
        Some(s) => manifest_list_of(io, md, s).await,
        None => Ok(vec![]),
    }
}

/// The manifests of snapshot `s` of `md` (immutable: read once per process, see
/// `metadata_cache`).
pub async fn manifest_list_of(
    io: &FileIO,
    md: &TableMetadata,
    s: &Snapshot,
) -> Result<Vec<ManifestFile>> {
    let location = s.manifest_list();
    let list = super::metadata_cache::manifest_lists()
        .get_or_load(location, || async {
            let bytes = io
                .new_input(location)
                .io(|| format!("open manifest list {location}"))?
                .read()
                .await
                .io(|| format!("read manifest list {location}"))?;
            let list = ManifestList::parse_with_version(&bytes, md.format_version())
                .io(|| format!("parse manifest list {location}"))?;
            Ok(list.consume_entries().into_iter().collect())
        })
        .await?;
    Ok(list.as_ref().clone())
}

fn int_bound(b: Option<&[u8]>) -> Option<i32> {
    let d = Datum::try_from_bytes(b?, PrimitiveType::Int).ok()?;
    match d.literal() {
        PrimitiveLiteral::Int(v) => Some(*v),
        _ => None,
    }
}

/// Whether a manifest may hold files of source partition `p` (by its partition summary).
pub fn manifest_may_contain(mf: &ManifestFile, p: i32) -> bool {
    let Some(s) = mf.partitions.as_ref().and_then(|v| v.first()) else {
        return true;
    };
    match (
        int_bound(s.lower_bound.as_ref().map(|b| b.as_slice())),
        int_bound(s.upper_bound.as_ref().map(|b| b.as_slice())),
    ) {
        (Some(lo), Some(hi)) => lo <= p && p <= hi,
        _ => true,
    }
}

/// The source partition of a file (first partition field, an int).
pub fn partition_of(f: &DataFile) -> Option<i32> {
    match f.partition().fields().first() {
        Some(Some(iceberg::spec::Literal::Primitive(PrimitiveLiteral::Int(v)))) => Some(*v),
        _ => None,
    }
}

/// The live files of the current snapshot, of source partition `partition` (or all).
pub async fn live_files(
    io: &FileIO,
    md: &TableMetadata,
    partition: Option<i32>,
    cache: &ManifestCache,
) -> Result<LiveFiles> {
    match md.current_snapshot() {
        Some(s) => live_files_of(io, md, s, partition, cache).await,
        None => Ok(LiveFiles::default()),
    }
}

/// The live files of snapshot `snapshot` of `md`, of source partition `partition` (or all).
pub async fn live_files_of(
    io: &FileIO,
    md: &TableMetadata,
    snapshot: &Snapshot,
    partition: Option<i32>,
    cache: &ManifestCache,
) -> Result<LiveFiles> {
    let mut out = LiveFiles::default();
    let wanted: Vec<ManifestFile> = manifest_list_of(io, md, snapshot)
        .await?
        .into_iter()
        .filter(|mf| partition.is_none_or(|p| manifest_may_contain(mf, p)))
        .collect();
    // Several reads in flight (each a GET on S3), results in list order. The futures are
    // collected first: a stream mapped by a closure makes callers' futures not `Send`
    // (rust-lang/rust#139475).
    let reads: Vec<_> = wanted.iter().map(|mf| cache.get(io, mf)).collect();
    let manifests: Vec<Arc<Manifest>> = futures::stream::iter(reads)
        .buffered(MAX_MANIFEST_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    for (mf, m) in wanted.iter().zip(manifests) {
        for e in m.entries() {
            if !e.is_alive() {
                continue;
            }
            let f = e.data_file();
            let part = partition_of(f);
            if partition.is_some() && part != partition {
                continue;
            }
            let lf = LiveFile {
                file: f.clone(),
                data_seq: e.sequence_number().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Io,
                        format!("manifest entry {} has no sequence number", f.file_path()),
                    )
                })?,
                file_seq: e.file_sequence_number,
                snapshot_id: e.snapshot_id().unwrap_or(mf.added_snapshot_id),
                partition: part,
            };
            match f.content_type() {
                DataContentType::Data => out.data.push(lf),
                DataContentType::PositionDeletes => out.deletes.push(lf),
                DataContentType::EqualityDeletes => {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "equality delete file {} in a refold table (not written by refold)",
                            f.file_path()
                        ),
                    ));
                }
            }
        }
    }
    Ok(out)
}

//! What a table's current snapshot is made of: live data and delete files per source
//! partition (the compaction thresholds decide on these), and the table-wide counts and
//! sizes a maintenance report and the benchmark print (snapshots, manifests, files, the
//! metadata file's size).
//!
//! Cost: the manifest list and every manifest of the current snapshot (cached by path), and
//! one `stat` of the metadata file. Maintenance only.

use std::collections::BTreeMap;

use serde::Serialize;

use super::files::{self, LiveFile};
use super::{ResultExt, StateTable};
use crate::error::Result;

/// The live files of one source partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartitionStats {
    pub partition: i32,
    /// Sizes of the live data files.
    pub data_file_bytes: Vec<u64>,
    /// Rows in the live data files (deleted ones included).
    pub data_rows: u64,
    pub delete_files: usize,
    pub delete_bytes: u64,
    /// Rows the live position-delete files delete (each merge deletes a row once).
    pub deleted_rows: u64,
}

impl PartitionStats {
    pub fn data_files(&self) -> usize {
        self.data_file_bytes.len()
    }
}

/// Table-wide counts and sizes of the current metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub snapshots: usize,
    pub tags: usize,
    pub data_manifests: usize,
    pub delete_manifests: usize,
    /// Sum of the current snapshot's manifest sizes.
    pub manifest_bytes: u64,
    pub data_files: usize,
    pub delete_files: usize,
    pub data_bytes: u64,
    pub delete_bytes: u64,
    /// Data file rows minus deleted rows: the live rows.
    pub live_rows: u64,
    /// The current metadata file (`vN-<uuid>.metadata.json`): every commit reads and writes it.
    pub metadata_bytes: u64,
}

impl TableStats {
    pub fn manifests(&self) -> usize {
        self.data_manifests + self.delete_manifests
    }
}

fn group(data: &[LiveFile], deletes: &[LiveFile]) -> Vec<PartitionStats> {
    let mut by: BTreeMap<i32, PartitionStats> = BTreeMap::new();
    for f in data {
        let Some(p) = f.partition else { continue };
        let s = by.entry(p).or_insert_with(|| PartitionStats {
            partition: p,
            ..PartitionStats::default()
        });
        s.data_file_bytes.push(f.file.file_size_in_bytes());
        s.data_rows += f.file.record_count();
    }
    for f in deletes {
        let Some(p) = f.partition else { continue };
        let s = by.entry(p).or_insert_with(|| PartitionStats {
            partition: p,
            ..PartitionStats::default()
        });
        s.delete_files += 1;
        s.delete_bytes += f.file.file_size_in_bytes();
        s.deleted_rows += f.file.record_count();
    }
    by.into_values().collect()
}

impl StateTable {
    /// The live files of the current snapshot, per source partition (sorted by partition).
    pub async fn partition_stats(&self) -> Result<Vec<PartitionStats>> {
        let l = self.load().await?;
        let live = files::live_files(&self.file_io, &l.metadata, None, &self.manifests).await?;
        Ok(group(&live.data, &live.deletes))
    }

    /// Counts and sizes of the current metadata (see [`TableStats`]).
    pub async fn table_stats(&self) -> Result<TableStats> {
        let l = self.load().await?;
        let md = &l.metadata;
        let manifests = files::manifest_list(&self.file_io, md).await?;
        let live = files::live_files(&self.file_io, md, None, &self.manifests).await?;
        let parts = group(&live.data, &live.deletes);
        let metadata_bytes = self
            .file_io
            .new_input(&l.location)
            .io(|| format!("open {}", l.location))?
            .metadata()
            .await
            .io(|| format!("stat {}", l.location))?
            .size;
        let is_data = |m: &&iceberg::spec::ManifestFile| {
            m.content == iceberg::spec::ManifestContentType::Data
        };
        let data_rows: u64 = parts.iter().map(|p| p.data_rows).sum();
        let deleted_rows: u64 = parts.iter().map(|p| p.deleted_rows).sum();
        Ok(TableStats {
            snapshots: md.snapshots().len(),
            tags: super::commit::refs(md)?
                .values()
                .filter(|r| !r.is_branch())
                .count(),
            data_manifests: manifests.iter().filter(is_data).count(),
            delete_manifests: manifests.iter().filter(|m| !is_data(m)).count(),
            manifest_bytes: manifests.iter().map(|m| m.manifest_length as u64).sum(),
            data_files: live.data.len(),
            delete_files: live.deletes.len(),
            data_bytes: live.data.iter().map(|f| f.file.file_size_in_bytes()).sum(),
            delete_bytes: live
                .deletes
                .iter()
                .map(|f| f.file.file_size_in_bytes())
                .sum(),
            live_rows: data_rows.saturating_sub(deleted_rows),
            metadata_bytes,
        })
    }
}

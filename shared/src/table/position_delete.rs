//! Position-delete files: rows `(file_path, pos)` naming rows of data files that no longer
//! count, per the Iceberg spec (field ids 2147483546 and 2147483545, sorted by both).
//!
//! iceberg 0.10 has no writer for them; this one uses its Parquet writer (which computes the
//! column bounds) and marks the result `PositionDeletes`. Pitfalls it guards against:
//! - `file_path` must equal the data file's stored path byte for byte (we copy it from the
//!   manifest entry);
//! - statistics must not be truncated, or the `file_path` bounds are dropped and readers
//!   (PyIceberg) apply the file to every data file of the partition;
//! - positions are those of LIVE rows (the caller subtracts already-deleted positions).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::{StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::metadata_columns::{
    RESERVED_FIELD_ID_DELETE_FILE_PATH, delete_file_path_field, delete_file_pos_field,
};
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, Datum, PrimitiveLiteral, Schema, TableMetadata,
};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::delete_cache::{DeleteCache, DeletedPositions};
use super::files::LiveFile;
use super::{ResultExt, TableLimits, writer};
use crate::error::{Error, ErrorKind, Result};

fn schema() -> Result<Arc<Schema>> {
    Ok(Arc::new(
        Schema::builder()
            .with_fields(vec![
                delete_file_path_field().clone(),
                delete_file_pos_field().clone(),
            ])
            .build()
            .kind(ErrorKind::Internal, || "position delete schema".into())?,
    ))
}

/// Writes `positions` (sorted by path, then pos; no duplicates) for data files of source
/// partition `partition`.
pub async fn write(
    io: &FileIO,
    md: &TableMetadata,
    partition: i32,
    positions: &[(Arc<str>, i64)],
    limits: &TableLimits,
) -> Result<Vec<DataFile>> {
    if positions.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::new(
            ErrorKind::Internal,
            "position deletes not sorted and unique",
        ));
    }
    let schema = schema()?;
    let arrow = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(&schema).kind(ErrorKind::Internal, || {
            "position delete arrow schema".into()
        })?,
    );
    let batch = RecordBatch::try_new(
        arrow,
        vec![
            Arc::new(StringArray::from_iter_values(
                positions.iter().map(|p| &*p.0),
            )) as ArrayRef,
            Arc::new(Int64Array::from_iter_values(positions.iter().map(|p| p.1))),
        ],
    )
    .kind(ErrorKind::Internal, || "position delete batch".into())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_truncate_length(None)
        .set_max_row_group_row_count(Some(limits.row_group_rows.max(1)))
        .build();
    let key = writer::partition_key(md, partition)?;
    let mut w = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, schema),
        limits.target_file_size_bytes,
        io.clone(),
        DefaultLocationGenerator::new(md)
            .kind(ErrorKind::Internal, || "location generator".into())?,
        DefaultFileNameGenerator::new(
            "delete".into(),
            Some(uuid::Uuid::new_v4().to_string()),
            DataFileFormat::Parquet,
        ),
    )
    .build();
    w.write(&Some(key.clone()), &batch)
        .await
        .io(|| "write position deletes".into())?;
    let targets: HashSet<&str> = positions.iter().map(|p| &*p.0).collect();
    let mut out = vec![];
    for mut b in w.close().await.io(|| "close position delete file".into())? {
        b.content(DataContentType::PositionDeletes)
            .partition(key.data().clone())
            .partition_spec_id(key.spec().spec_id());
        if targets.len() == 1 {
            b.referenced_data_file(targets.iter().next().map(|s| s.to_string()));
        }
        let f = b
            .build()
            .kind(ErrorKind::Internal, || "position delete data file".into())?;
        // Guard the truncation pitfall: without exact bounds every reader would apply this file
        // to every data file of the partition.
        if !f
            .lower_bounds()
            .contains_key(&RESERVED_FIELD_ID_DELETE_FILE_PATH)
        {
            return Err(Error::new(
                ErrorKind::Internal,
                "position delete file has no file_path bounds",
            ));
        }
        out.push(f);
    }
    Ok(out)
}

/// What reading a delete file that holds exactly `positions` (sorted by path, then pos)
/// gives: the writer's own file, cached without reading it back.
pub fn parsed(positions: &[(Arc<str>, i64)]) -> DeletedPositions {
    let mut out = DeletedPositions::new();
    for (path, pos) in positions {
        match out.get_mut(&**path) {
            Some(v) => v.push(*pos),
            None => {
                out.insert(path.to_string(), vec![*pos]);
            }
        }
    }
    out
}

fn str_bound(d: Option<&Datum>) -> Option<&str> {
    match d?.literal() {
        PrimitiveLiteral::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// Whether a delete file may hold positions of data file `path` (by referenced file or bounds).
pub fn may_target(del: &DataFile, path: &str) -> bool {
    if let Some(r) = del.referenced_data_file() {
        return r == path;
    }
    let lo = str_bound(del.lower_bounds().get(&RESERVED_FIELD_ID_DELETE_FILE_PATH));
    let hi = str_bound(del.upper_bounds().get(&RESERVED_FIELD_ID_DELETE_FILE_PATH));
    lo.is_none_or(|lo| lo <= path) && hi.is_none_or(|hi| path <= hi)
}

/// The deleted positions of the data files `paths`, from the delete files that may target
/// them; each list sorted. Cost: the partition's position-delete rows (until compaction
/// folds them away), or none for the files `cache` holds.
pub async fn read_deleted(
    io: &FileIO,
    deletes: &[LiveFile],
    paths: &HashSet<&str>,
    cache: Option<&DeleteCache>,
) -> Result<HashMap<String, Vec<i64>>> {
    let targeting = deletes
        .iter()
        .filter(|d| paths.iter().any(|p| may_target(&d.file, p)));
    // Several reads in flight (each a GET on S3); a cached file is no read at all. The
    // futures are collected first, as in `files::live_files_of`.
    let reads: Vec<_> = targeting.map(|d| read_cached(io, d, cache)).collect();
    let parsed: Vec<Arc<DeletedPositions>> = futures::stream::iter(reads)
        .buffered(MAX_DELETE_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for parsed in parsed {
        for (data_path, pos) in parsed.iter() {
            if paths.contains(data_path.as_str()) {
                out.entry(data_path.clone()).or_default().extend(pos);
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    Ok(out)
}

/// Delete files one lookup reads at once.
const MAX_DELETE_READS_IN_FLIGHT: usize = 8;

/// The positions of delete file `d`, from `cache` or read (then cached).
async fn read_cached(
    io: &FileIO,
    d: &LiveFile,
    cache: Option<&DeleteCache>,
) -> Result<Arc<DeletedPositions>> {
    let path = d.file.file_path();
    if let Some(p) = cache.and_then(|c| c.get(path)) {
        return Ok(p);
    }
    let p = Arc::new(read_file(io, path, d.file.file_size_in_bytes()).await?);
    if let Some(c) = cache {
        c.insert(path, p.clone());
    }
    Ok(p)
}

/// Every position one delete file names, by data file (each list sorted).
pub(super) async fn read_file(io: &FileIO, path: &str, size: u64) -> Result<DeletedPositions> {
    let mut out = DeletedPositions::new();
    let b = super::reader::open(io, path, size, false, false).await?;
    let mut stream = b.build().io(|| format!("read {path}"))?;
    while let Some(batch) = stream.try_next().await.io(|| format!("read {path}"))? {
        let fp = super::row::utf8_array(&batch, delete_file_path_field().name.as_str())?;
        let fp = fp.as_string::<i32>();
        let pos = batch
            .column_by_name(delete_file_pos_field().name.as_str())
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
            .ok_or_else(|| Error::new(ErrorKind::Io, format!("{path}: no pos column")))?;
        for i in 0..batch.num_rows() {
            let p = fp.value(i);
            match out.get_mut(p) {
                Some(v) => v.push(pos.value(i)),
                None => {
                    out.insert(p.to_string(), vec![pos.value(i)]);
                }
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    Ok(out)
}

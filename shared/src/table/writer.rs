//! Data files: state rows of one source partition, sorted by (tenant_id, key), as Parquet.
//!
//! Row groups of `row_group_rows` rows with exact (untruncated) min/max of the key columns
//! are the unit the lookup prunes by; the page index lets a row selection skip pages.

use iceberg::io::FileIO;
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct, TableMetadata};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::row::RowCodec;
use super::schema::{LAST_EVENT_ID, LAST_EVENT_TIME, LAST_OFFSET, RESERVED_COLUMNS, TENANT_ID};
use super::{ResultExt, StateRow, TableLimits};
use crate::error::{Error, ErrorKind, Result};

/// Rows converted to Arrow at a time while writing (bounds the transient memory).
const WRITE_CHUNK_ROWS: usize = 16 * 1024;

/// The partition key of source partition `p` (identity spec on `source_partition`).
pub fn partition_key(md: &TableMetadata, p: i32) -> Result<PartitionKey> {
    let spec = md.default_partition_spec();
    if spec.fields().len() != 1 {
        return Err(Error::new(
            ErrorKind::Internal,
            "state table spec is not identity(source_partition)",
        ));
    }
    Ok(PartitionKey::new(
        spec.as_ref().clone(),
        md.current_schema().clone(),
        Struct::from_iter([Some(Literal::int(p))]),
    ))
}

fn properties(codec: &RowCodec, limits: &TableLimits) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Exact bounds for the key columns (truncated ones are dropped by iceberg's writer).
        .set_statistics_truncate_length(None)
        .set_max_row_group_row_count(Some(limits.row_group_rows.max(1)))
        .set_column_dictionary_enabled(ColumnPath::from(codec.key_field.as_str()), false);
    // A key's last event and offset are its own: a dictionary would only repeat them.
    for name in [LAST_EVENT_ID, LAST_OFFSET, LAST_EVENT_TIME] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    for f in codec.arrow.fields() {
        let name = f.name().as_str();
        if name != TENANT_ID && name != codec.key_field && !RESERVED_COLUMNS.contains(&name) {
            // State columns: no statistics (long JSON would bloat every manifest), no dictionary.
            b = b
                .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None)
                .set_column_dictionary_enabled(ColumnPath::from(name), false);
        }
    }
    b.build()
}

/// Writes `rows` (already sorted by (tenant_id, key)) of source partition `partition`.
pub async fn write_rows(
    io: &FileIO,
    md: &TableMetadata,
    codec: &RowCodec,
    partition: i32,
    rows: &[StateRow],
    limits: &TableLimits,
) -> Result<Vec<DataFile>> {
    let key = partition_key(md, partition)?;
    let rolling = RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(properties(codec, limits), md.current_schema().clone()),
        limits.target_file_size_bytes,
        io.clone(),
        DefaultLocationGenerator::new(md)
            .kind(ErrorKind::Internal, || "location generator".into())?,
        DefaultFileNameGenerator::new(
            "data".into(),
            Some(uuid::Uuid::new_v4().to_string()),
            DataFileFormat::Parquet,
        ),
    );
    let mut w = DataFileWriterBuilder::new(rolling)
        .build(Some(key))
        .await
        .io(|| "open data file writer".into())?;
    for chunk in rows.chunks(WRITE_CHUNK_ROWS) {
        w.write(codec.to_batch(chunk)?)
            .await
            .io(|| "write data file".into())?;
    }
    w.close().await.io(|| "close data file".into())
}

/// Deletes files that no snapshot references (an abandoned attempt's); errors are ignored:
/// an orphan costs storage, never correctness.
pub async fn delete_files_best_effort(io: &FileIO, paths: impl Iterator<Item = String>) {
    for p in paths {
        if let Err(e) = io.delete(&p).await {
            tracing::debug!(path = %p, error = %e, "could not remove an uncommitted file");
        }
    }
}

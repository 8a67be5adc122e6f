//! [`Archive::append`]: one partition's events of a batch, exactly once in effect.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, UInt32Array};

use iceberg::spec::{
    DataFile, DataFileFormat, Literal, Operation, PartitionKey, Struct, TableMetadata,
};
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

use super::Archive;
use super::layout::{
    DATA, ENTITY_TYPE, EVENT_ID, EVENT_TIME, EVENT_TIME_TEXT, KAFKA_OFFSET, KAFKA_PARTITION,
    KAFKA_TIMESTAMP, METADATA,
};
use crate::error::{Error, ErrorKind, Result};
use crate::table::commit::{self, CommitResult, SnapshotChange};
use crate::table::retry::{self, Attempt};
use crate::table::{Loaded, ResultExt, offsets, writer};

/// µs in a day: the day transform's unit.
const DAY_US: i64 = 86_400_000_000;

/// What one append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The snapshot committed; `None` when every event was archived already.
    pub snapshot_id: Option<i64>,
    pub appended: usize,
    /// Events at offsets the archive had committed before (a redelivery).
    pub already_archived: usize,
    pub attempts: u32,
}

/// The files written for the events past `committed`.
struct Plan {
    committed: i64,
    files: Vec<DataFile>,
    appended: usize,
}

impl Archive {
    /// Appends `events` of source partition `partition` (archive rows, see
    /// [`super::EventColumns`]: every valid envelope of the batch, sorted by offset) and moves
    /// the partition's committed offset to `next_offset` (past the batch, invalid records
    /// included), in one compare-and-set. Events below the committed offset are skipped: a
    /// redelivered batch appends nothing.
    pub async fn append(
        &self,
        partition: i32,
        events: &RecordBatch,
        next_offset: i64,
    ) -> Result<AppendOutcome> {
        let ctx = || format!("append to {} partition {partition}", self.cfg.table);
        check_input(partition, events, next_offset).map_err(|e| e.with_context(ctx()))?;
        let mut plan: Option<Plan> = None;
        let res = retry::with_commit_retry!(self, |base, n| self
            .append_attempt(&mut plan, partition, events, next_offset, base, n)
            .await);
        if res.is_err()
            && let Some(p) = plan.take()
        {
            // Never committed by this call (a lost race, or a failed write): nothing refers
            // to them. After an I/O error the commit may have landed: then they stay.
            if res
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::CommitConflict)
            {
                discard(self, p).await;
            }
        }
        res.map_err(|e| e.with_context(ctx()))
    }

    async fn append_attempt(
        &self,
        plan: &mut Option<Plan>,
        partition: i32,
        events: &RecordBatch,
        next_offset: i64,
        base: Loaded,
        attempts: u32,
    ) -> Result<Attempt<AppendOutcome>> {
        self.check_base(&base)?;
        let offsets_now = self.read_offsets(&base.metadata)?;
        let committed = offsets_now.get(&partition).copied().unwrap_or(-1);
        // Sorted by offset (checked): the fresh events are a suffix.
        let already_archived = offsets_of(events)?
            .values()
            .partition_point(|o| *o < committed);
        let fresh = events.slice(already_archived, events.num_rows() - already_archived);
        if next_offset <= committed {
            // A redelivery: nothing new.
            if let Some(p) = plan.take() {
                discard(self, p).await;
            }
            return Ok(Attempt::Done(AppendOutcome {
                snapshot_id: None,
                appended: 0,
                already_archived,
                attempts,
            }));
        }
        if plan.as_ref().is_none_or(|p| p.committed != committed) {
            if let Some(p) = plan.take() {
                discard(self, p).await;
            }
            let files = self.write_files(&base.metadata, &fresh).await?;
            *plan = Some(Plan {
                committed,
                files,
                appended: fresh.num_rows(),
            });
        }
        let Some(p) = plan.as_ref() else {
            return Err(Error::new(ErrorKind::Internal, "archive plan missing"));
        };
        let mut new_offsets = offsets_now.clone();
        new_offsets.insert(partition, next_offset.max(committed));
        offsets::assert_forward(&offsets_now, &new_offsets)?;
        let key = offsets::key(&self.cfg.topic, super::OFFSETS_GROUP);
        let encoded = offsets::encode(&new_offsets);
        let change = SnapshotChange {
            operation: Operation::Append,
            added_data: p.files.clone(),
            added_deletes: vec![],
            removed_paths: HashSet::new(),
            removed_partition: None,
            summary: HashMap::from([
                (key.clone(), encoded.clone()),
                ("refold.source-partition".into(), partition.to_string()),
                ("refold.writer".into(), crate::table::WRITER.into()),
            ]),
            properties: HashMap::from([(key, encoded)]),
        };
        self.hooks
            .run(
                crate::table::hooks::HookPoint::ArchiveBeforeCommit,
                attempts,
            )
            .await;
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
            CommitResult::Committed { snapshot_id } => Attempt::Done(AppendOutcome {
                snapshot_id: Some(snapshot_id),
                appended: p.appended,
                already_archived,
                attempts,
            }),
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }

    /// One data file (or more, past the target size) per Iceberg partition (day, entity type).
    async fn write_files(&self, md: &TableMetadata, events: &RecordBatch) -> Result<Vec<DataFile>> {
        let mut files = vec![];
        for ((day, entity_type), rows) in partitions(events)? {
            let day = i32::try_from(day).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("event day {day} out of range"),
                )
            })?;
            let key = PartitionKey::new(
                md.default_partition_spec().as_ref().clone(),
                md.current_schema().clone(),
                Struct::from_iter([Some(Literal::date(day)), Some(Literal::string(entity_type))]),
            );
            match self.write_partition(md, key, rows).await {
                Ok(written) => files.extend(written),
                Err(e) => {
                    let paths = files.iter().map(|f: &DataFile| f.file_path().to_string());
                    writer::delete_files_best_effort(&self.file_io, paths).await;
                    return Err(e);
                }
            }
        }
        Ok(files)
    }

    pub(super) async fn write_partition(
        &self,
        md: &TableMetadata,
        key: PartitionKey,
        rows: RecordBatch,
    ) -> Result<Vec<DataFile>> {
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(properties(), md.current_schema().clone()),
            self.limits.target_file_size_bytes,
            self.file_io.clone(),
            DefaultLocationGenerator::new(md)
                .kind(ErrorKind::Internal, || "location generator".into())?,
            DefaultFileNameGenerator::new(
                "events".into(),
                Some(uuid::Uuid::new_v4().to_string()),
                DataFileFormat::Parquet,
            ),
        );
        let mut w = DataFileWriterBuilder::new(rolling)
            .build(Some(key))
            .await
            .io(|| "open archive data file writer".into())?;
        w.write(rows)
            .await
            .io(|| "write archive data file".into())?;
        w.close().await.io(|| "close archive data file".into())
    }
}

/// Snappy; no statistics for the JSON columns (long text would bloat every manifest);
/// exact bounds for the rest (replay prunes by Kafka partition and offset). No dictionary
/// where each event has a value of its own: one there would hold every value once more, and
/// building it was most of the archive write's encoding time (BENCHMARKS.md).
fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_truncate_length(None);
    for name in [DATA, METADATA] {
        b = b
            .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    for name in [
        EVENT_ID,
        EVENT_TIME,
        EVENT_TIME_TEXT,
        KAFKA_OFFSET,
        KAFKA_TIMESTAMP,
    ] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    b.build()
}

async fn discard(archive: &Archive, plan: Plan) {
    let paths = plan.files.iter().map(|f| f.file_path().to_string());
    writer::delete_files_best_effort(&archive.file_io, paths).await;
}

/// The rows of each Iceberg partition (day of the event's time, entity type), in offset
/// order; the batch itself when it is all one partition (the usual case).
fn partitions(events: &RecordBatch) -> Result<Vec<((i64, String), RecordBatch)>> {
    let times = column(events, EVENT_TIME)?.as_primitive_opt::<TimestampMicrosecondType>();
    let types = column(events, ENTITY_TYPE)?.as_string_opt::<i32>();
    let (Some(times), Some(types)) = (times, types) else {
        return Err(Error::new(
            ErrorKind::Internal,
            "archive rows: column types",
        ));
    };
    let mut groups: BTreeMap<(i64, &str), Vec<u32>> = BTreeMap::new();
    for (i, (us, ty)) in times.values().iter().zip(types.iter()).enumerate() {
        let i = u32::try_from(i).map_err(|_| Error::new(ErrorKind::Internal, "archive rows"))?;
        groups
            .entry((us.div_euclid(DAY_US), ty.unwrap_or_default()))
            .or_default()
            .push(i);
    }
    let whole = groups.len() == 1;
    groups
        .into_iter()
        .map(|((day, ty), rows)| {
            let batch = if whole {
                events.clone()
            } else {
                arrow_select::take::take_record_batch(events, &UInt32Array::from(rows))
                    .map_err(|e| Error::new(ErrorKind::Internal, "archive rows").with_source(e))?
            };
            Ok(((day, ty.to_owned()), batch))
        })
        .collect()
}

fn column<'b>(events: &'b RecordBatch, name: &str) -> Result<&'b std::sync::Arc<dyn Array>> {
    events.column_by_name(name).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("archive rows without `{name}`"),
        )
    })
}

fn offsets_of(events: &RecordBatch) -> Result<&Int64Array> {
    column(events, KAFKA_OFFSET)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "archive rows: offset type"))
}

fn partitions_of(events: &RecordBatch) -> Result<&Int32Array> {
    column(events, KAFKA_PARTITION)?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "archive rows: partition type"))
}

/// Events of one partition, in offset order, below `next_offset`.
fn check_input(partition: i32, events: &RecordBatch, next_offset: i64) -> Result<()> {
    let bad = |m: String| Err(Error::new(ErrorKind::Internal, m));
    if partition < 0 || next_offset < 0 {
        return bad(format!("partition {partition}, next offset {next_offset}"));
    }
    if let Some(p) = partitions_of(events)?
        .values()
        .iter()
        .find(|p| **p != partition)
    {
        return bad(format!(
            "an event of partition {p} in a batch of {partition}"
        ));
    }
    let offsets = offsets_of(events)?.values();
    if offsets.windows(2).any(|w| w[0] >= w[1]) {
        return bad("archive events out of offset order".into());
    }
    if offsets.last().is_some_and(|o| *o >= next_offset) {
        return bad(format!("next offset {next_offset} is not past the batch"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::archive::EventColumns;
    use crate::envelope::Envelope;
    use crate::record::SourceRecord;

    fn rows(events: &[(i64, &str, &str)]) -> RecordBatch {
        let layout = super::super::layout::layout("orders").unwrap();
        let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&layout.schema).unwrap());
        let mut columns = EventColumns::with_capacity(events.len());
        for (offset, entity_type, timestamp) in events {
            let value = format!(
                r#"{{"event_id":"e{offset}","event_type":"T","entity_type":"{entity_type}","entity_id":"x","tenant_id":"t","timestamp":"{timestamp}","version":1,"data":{{}}}}"#
            );
            let r = SourceRecord {
                topic: "orders".into(),
                partition: 0,
                offset: *offset,
                timestamp_ms: None,
                key: None,
                value: value.into_bytes(),
            };
            columns
                .push(&r, &Envelope::decode(&r.value).unwrap(), None)
                .unwrap();
        }
        columns.finish(&schema).unwrap()
    }

    fn offsets(b: &RecordBatch) -> Vec<i64> {
        offsets_of(b).unwrap().values().to_vec()
    }

    #[test]
    fn rows_split_by_day_and_entity_type_in_offset_order() {
        let b = rows(&[
            (1, "Order", "2026-02-01T23:59:59Z"),
            (2, "Invoice", "2026-02-01T10:00:00Z"),
            (3, "Order", "2026-02-02T00:00:00Z"),
            (4, "Order", "2026-02-01T00:00:00Z"),
        ]);
        let got: Vec<((i64, String), Vec<i64>)> = partitions(&b)
            .unwrap()
            .into_iter()
            .map(|(k, rows)| (k, offsets(&rows)))
            .collect();
        let day = 20_485; // 2026-02-01
        assert_eq!(
            got,
            [
                ((day, "Invoice".into()), vec![2]),
                ((day, "Order".into()), vec![1, 4]),
                ((day + 1, "Order".into()), vec![3]),
            ]
        );
        let one = rows(&[(5, "Order", "2026-02-01T01:00:00Z")]);
        assert_eq!(partitions(&one).unwrap().len(), 1);
    }

    #[test]
    fn input_out_of_order_or_past_the_next_offset_is_refused() {
        let b = rows(&[
            (1, "Order", "2026-02-01T00:00:00Z"),
            (3, "Order", "2026-02-01T00:00:00Z"),
        ]);
        assert!(check_input(0, &b, 4).is_ok());
        assert!(check_input(0, &b, 3).is_err());
        assert!(check_input(1, &b, 4).is_err());
        let swapped = rows(&[
            (3, "Order", "2026-02-01T00:00:00Z"),
            (1, "Order", "2026-02-01T00:00:00Z"),
        ]);
        assert!(check_input(0, &swapped, 4).is_err());
    }

    #[test]
    fn columns_of_one_value_an_event_have_no_dictionary() {
        let props = properties();
        let dictionary = |name: &str| props.dictionary_enabled(&ColumnPath::from(name));
        for name in [
            EVENT_ID,
            EVENT_TIME,
            EVENT_TIME_TEXT,
            KAFKA_OFFSET,
            KAFKA_TIMESTAMP,
        ] {
            assert!(!dictionary(name), "{name}");
        }
        // Values that repeat across a batch's events keep theirs.
        for name in [
            ENTITY_TYPE,
            KAFKA_PARTITION,
            super::super::layout::EVENT_TYPE,
        ] {
            assert!(dictionary(name), "{name}");
        }
    }
}

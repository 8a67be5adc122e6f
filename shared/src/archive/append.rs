//! [`Archive::append`]: one partition's events of a batch, exactly once in effect.

use std::collections::{BTreeMap, HashMap, HashSet};

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

use super::layout::{DATA, METADATA};
use super::{Archive, ArchivedEvent, event};
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
    /// Appends `events` of source partition `partition` (sorted by offset; every valid
    /// envelope of the batch) and moves the partition's committed offset to `next_offset`
    /// (past the batch, invalid records included), in one compare-and-set. Events below the
    /// committed offset are skipped: a redelivered batch appends nothing.
    pub async fn append(
        &self,
        partition: i32,
        events: &[ArchivedEvent],
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
        events: &[ArchivedEvent],
        next_offset: i64,
        base: Loaded,
        attempts: u32,
    ) -> Result<Attempt<AppendOutcome>> {
        self.check_base(&base)?;
        let offsets_now = self.read_offsets(&base.metadata)?;
        let committed = offsets_now.get(&partition).copied().unwrap_or(-1);
        let fresh: Vec<&ArchivedEvent> = events
            .iter()
            .filter(|e| e.kafka_offset >= committed)
            .collect();
        let already_archived = events.len() - fresh.len();
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
                appended: fresh.len(),
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
    async fn write_files(
        &self,
        md: &TableMetadata,
        events: &[&ArchivedEvent],
    ) -> Result<Vec<DataFile>> {
        let mut groups: BTreeMap<(i64, &str), Vec<&ArchivedEvent>> = BTreeMap::new();
        for e in events {
            let day = e.event_time_us.div_euclid(DAY_US);
            groups
                .entry((day, e.entity_type.as_str()))
                .or_default()
                .push(e);
        }
        let mut files = vec![];
        for ((day, entity_type), rows) in groups {
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
            match self.write_partition(md, key, &rows).await {
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

    pub(super) async fn write_partition<R: std::borrow::Borrow<ArchivedEvent> + Sync>(
        &self,
        md: &TableMetadata,
        key: PartitionKey,
        rows: &[R],
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
        w.write(event::to_batch(&self.arrow, rows)?)
            .await
            .io(|| "write archive data file".into())?;
        w.close().await.io(|| "close archive data file".into())
    }
}

/// Snappy; no statistics for the JSON columns (long text would bloat every manifest);
/// exact bounds for the rest (replay prunes by Kafka partition and offset).
fn properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_truncate_length(None);
    for name in [DATA, METADATA] {
        b = b
            .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None)
            .set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    b.build()
}

async fn discard(archive: &Archive, plan: Plan) {
    let paths = plan.files.iter().map(|f| f.file_path().to_string());
    writer::delete_files_best_effort(&archive.file_io, paths).await;
}

/// Events of one partition, in offset order, below `next_offset`.
fn check_input(partition: i32, events: &[ArchivedEvent], next_offset: i64) -> Result<()> {
    let bad = |m: String| Err(Error::new(ErrorKind::Internal, m));
    if partition < 0 || next_offset < 0 {
        return bad(format!("partition {partition}, next offset {next_offset}"));
    }
    if let Some(e) = events.iter().find(|e| e.kafka_partition != partition) {
        return bad(format!(
            "an event of partition {} in a batch of {partition}",
            e.kafka_partition
        ));
    }
    if events
        .windows(2)
        .any(|w| w[0].kafka_offset >= w[1].kafka_offset)
    {
        return bad("archive events out of offset order".into());
    }
    if events.last().is_some_and(|e| e.kafka_offset >= next_offset) {
        return bad(format!("next offset {next_offset} is not past the batch"));
    }
    Ok(())
}

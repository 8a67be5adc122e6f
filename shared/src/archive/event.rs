//! One archived event ([`ArchivedEvent`]) as replay, history and compaction read it back:
//! turned back into the record replay and history fold, and to and from Arrow. (Appends
//! build their rows straight into Arrow: [`super::EventColumns`].)

use std::borrow::Borrow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};

use super::layout::*;
use crate::error::{Error, ErrorKind, Result};
use crate::record::SourceRecord;

/// One row of the archive: the envelope's fields and the record's place in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedEvent {
    pub event_id: String,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub tenant_id: String,
    /// µs since the Unix epoch (UTC).
    pub event_time_us: i64,
    /// The envelope's `timestamp` as written.
    pub event_time_text: String,
    pub version: i64,
    /// JSON text of the envelope's `data` (an object).
    pub data: String,
    /// JSON text of the envelope's `metadata`.
    pub metadata: Option<String>,
    pub entity_key: Option<String>,
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
    pub kafka_timestamp_ms: Option<i64>,
    pub kafka_key: Option<Vec<u8>>,
}

impl ArchivedEvent {
    /// The record as Kafka held it, its value an envelope that decodes to the same fields
    /// (`data` and `metadata` in serde_json's canonical spelling).
    pub fn to_record(&self) -> SourceRecord {
        SourceRecord {
            topic: self.kafka_topic.clone(),
            partition: self.kafka_partition,
            offset: self.kafka_offset,
            timestamp_ms: self.kafka_timestamp_ms,
            key: self.kafka_key.clone(),
            value: self.envelope_text().into_bytes(),
        }
    }

    fn envelope_text(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = String::with_capacity(self.data.len() + 256);
        out.push('{');
        for (name, value) in [
            ("event_id", &self.event_id),
            ("event_type", &self.event_type),
            ("entity_type", &self.entity_type),
            ("entity_id", &self.entity_id),
            ("tenant_id", &self.tenant_id),
            ("timestamp", &self.event_time_text),
        ] {
            out.push_str(&format!("{}:{},", q(name), q(value)));
        }
        out.push_str(&format!(
            "\"version\":{},\"data\":{}",
            self.version, self.data
        ));
        if let Some(m) = &self.metadata {
            out.push_str(&format!(",\"metadata\":{m}"));
        }
        out.push('}');
        out
    }
}

/// Rows (owned, or borrowed from a batch) as one Arrow batch of `schema` (the archive's,
/// with Iceberg's field ids).
pub(crate) fn to_batch<R: Borrow<ArchivedEvent>>(
    schema: &SchemaRef,
    rows: &[R],
) -> Result<RecordBatch> {
    let rows: Vec<&ArchivedEvent> = rows.iter().map(Borrow::borrow).collect();
    let s = |f: fn(&ArchivedEvent) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| f(r))))
    };
    let opt = |f: fn(&ArchivedEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|r| f(r)).collect::<StringArray>())
    };
    let ts = |v: Vec<Option<i64>>, name: &str| super::columns::timestamps(schema, name, v);
    let columns: Vec<ArrayRef> = vec![
        s(|r| &r.event_id),
        s(|r| &r.event_type),
        s(|r| &r.entity_type),
        s(|r| &r.entity_id),
        s(|r| &r.tenant_id),
        ts(
            rows.iter().map(|r| Some(r.event_time_us)).collect(),
            EVENT_TIME,
        )?,
        s(|r| &r.event_time_text),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.version))),
        s(|r| &r.data),
        opt(|r| r.metadata.as_deref()),
        opt(|r| r.entity_key.as_deref()),
        s(|r| &r.kafka_topic),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.kafka_partition),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.kafka_offset),
        )),
        ts(
            rows.iter()
                .map(|r| r.kafka_timestamp_ms.map(|ms| ms.saturating_mul(1000)))
                .collect(),
            KAFKA_TIMESTAMP,
        )?,
        binary(schema, &rows)?,
    ];
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::new(ErrorKind::Internal, "archive batch").with_source(e))
}

fn binary(schema: &SchemaRef, rows: &[&ArchivedEvent]) -> Result<ArrayRef> {
    let keys = rows.iter().map(|r| r.kafka_key.as_deref());
    binary_as(schema, Arc::new(keys.collect::<BinaryArray>()))
}

/// Kafka keys as the schema's binary type.
pub(super) fn binary_as(schema: &SchemaRef, array: ArrayRef) -> Result<ArrayRef> {
    let want = schema
        .field_with_name(KAFKA_KEY)
        .map_err(|e| Error::new(ErrorKind::Internal, "archive schema").with_source(e))?
        .data_type()
        .clone();
    cast(&array, &want, KAFKA_KEY)
}

fn cast(array: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef> {
    arrow_cast::cast(array, to).map_err(|e| {
        Error::new(ErrorKind::Io, format!("archive column `{name}` as {to}")).with_source(e)
    })
}

/// The rows of a batch read from the archive (any engine's spelling of the types).
pub(crate) fn from_batch(batch: &RecordBatch) -> Result<Vec<ArchivedEvent>> {
    let col = |name: &str, to: &DataType| -> Result<ArrayRef> {
        let c = batch.column_by_name(name).ok_or_else(|| {
            Error::new(ErrorKind::Io, format!("the archive has no column `{name}`"))
        })?;
        cast(c, to, name)
    };
    let (utf8, i64_, i32_) = (DataType::Utf8, DataType::Int64, DataType::Int32);
    let strings: Vec<ArrayRef> = [
        EVENT_ID,
        EVENT_TYPE,
        ENTITY_TYPE,
        ENTITY_ID,
        TENANT_ID,
        EVENT_TIME_TEXT,
        DATA,
        METADATA,
        ENTITY_KEY,
        KAFKA_TOPIC,
    ]
    .iter()
    .map(|n| col(n, &utf8))
    .collect::<Result<_>>()?;
    let st = |i: usize| strings[i].as_string::<i32>();
    let event_time = col(EVENT_TIME, &i64_)?;
    let version = col(VERSION, &i64_)?;
    let partition = col(KAFKA_PARTITION, &i32_)?;
    let offset = col(KAFKA_OFFSET, &i64_)?;
    let kafka_ts = col(KAFKA_TIMESTAMP, &i64_)?;
    let key = col(KAFKA_KEY, &DataType::Binary)?;
    let (event_time, version) = (
        event_time.as_primitive::<Int64Type>(),
        version.as_primitive::<Int64Type>(),
    );
    let (partition, offset, kafka_ts) = (
        partition.as_primitive::<Int32Type>(),
        offset.as_primitive::<Int64Type>(),
        kafka_ts.as_primitive::<Int64Type>(),
    );
    let key = key.as_binary::<i32>();
    let text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_owned());
    let req = |a: &StringArray, i: usize| a.value(i).to_owned();
    Ok((0..batch.num_rows())
        .map(|i| ArchivedEvent {
            event_id: req(st(0), i),
            event_type: req(st(1), i),
            entity_type: req(st(2), i),
            entity_id: req(st(3), i),
            tenant_id: req(st(4), i),
            event_time_text: req(st(5), i),
            data: req(st(6), i),
            metadata: text(st(7), i),
            entity_key: text(st(8), i),
            kafka_topic: req(st(9), i),
            event_time_us: event_time.value(i),
            version: version.value(i),
            kafka_partition: partition.value(i),
            kafka_offset: offset.value(i),
            kafka_timestamp_ms: kafka_ts
                .is_valid(i)
                .then(|| kafka_ts.value(i).div_euclid(1000)),
            kafka_key: key.is_valid(i).then(|| key.value(i).to_vec()),
        })
        .collect())
}

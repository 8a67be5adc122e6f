//! A batch's archive rows built straight into Arrow columns from the records and their
//! envelopes: no [`ArchivedEvent`](super::ArchivedEvent) per event on the append path (its
//! eleven strings, allocated, copied into Arrow and freed, were most of an append's CPU
//! besides Parquet). `data` and `metadata` are written as JSON text into one buffer each.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer};
use arrow_schema::SchemaRef;

use super::layout::*;
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};
use crate::json;
use crate::record::SourceRecord;

/// JSON text, one value per row, in one buffer.
struct JsonColumn {
    text: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl JsonColumn {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            text: Vec::with_capacity(bytes),
            offsets,
            nulls: NullBufferBuilder::new(rows),
        }
    }

    fn push(&mut self, v: Option<&json::Value>) -> Result<()> {
        match v {
            Some(v) => {
                json::write_value_text(v, &mut self.text);
                self.nulls.append_non_null();
            }
            None => self.nulls.append_null(),
        }
        let end = i32::try_from(self.text.len()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                "a batch's archive text is over 2 GiB",
            )
        })?;
        self.offsets.push(end);
        Ok(())
    }

    fn finish(mut self) -> Result<ArrayRef> {
        let offsets = OffsetBuffer::new(self.offsets.into());
        let array = StringArray::try_new(offsets, Buffer::from(self.text), self.nulls.finish())
            .map_err(|e| Error::new(ErrorKind::Internal, "archive JSON column").with_source(e))?;
        Ok(Arc::new(array))
    }
}

/// The columns of [`super::layout`], in its order, filled one event at a time.
pub struct EventColumns {
    ids: [StringBuilder; 5],
    event_time: Vec<i64>,
    event_time_text: StringBuilder,
    version: Int64Builder,
    data: JsonColumn,
    metadata: JsonColumn,
    entity_key: StringBuilder,
    kafka_topic: StringBuilder,
    kafka_partition: Int32Builder,
    kafka_offset: Int64Builder,
    kafka_timestamp: Vec<Option<i64>>,
    kafka_key: BinaryBuilder,
}

impl EventColumns {
    /// Room for `rows` events without growing (the usual envelope's sizes).
    pub fn with_capacity(rows: usize) -> Self {
        let strings = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        Self {
            ids: std::array::from_fn(|_| strings(24)),
            event_time: Vec::with_capacity(rows),
            event_time_text: strings(24),
            version: Int64Builder::with_capacity(rows),
            data: JsonColumn::with_capacity(rows, rows * 128),
            metadata: JsonColumn::with_capacity(rows, rows * 64),
            entity_key: strings(24),
            kafka_topic: strings(24),
            kafka_partition: Int32Builder::with_capacity(rows),
            kafka_offset: Int64Builder::with_capacity(rows),
            kafka_timestamp: Vec::with_capacity(rows),
            kafka_key: BinaryBuilder::with_capacity(rows, rows * 24),
        }
    }

    /// One event: its record, its envelope (as produced, before any upcast) and the row key
    /// the fold groups it under (of the upcast envelope, see
    /// [`CompiledPipeline::row_key`](crate::batch::CompiledPipeline::row_key)).
    pub fn push(
        &mut self,
        record: &SourceRecord,
        envelope: &Envelope,
        entity_key: Option<&str>,
    ) -> Result<()> {
        let ids = [
            envelope.event_id(),
            envelope.event_type(),
            envelope.entity_type(),
            envelope.entity_id(),
            envelope.tenant_id(),
        ];
        for (builder, id) in self.ids.iter_mut().zip(ids) {
            builder.append_value(id);
        }
        self.event_time.push(envelope.timestamp_us());
        self.event_time_text.append_value(envelope.timestamp());
        self.version.append_value(envelope.version());
        self.data.push(Some(envelope.data()))?;
        self.metadata.push(envelope.metadata())?;
        self.entity_key.append_option(entity_key);
        self.kafka_topic.append_value(&record.topic);
        self.kafka_partition.append_value(record.partition);
        self.kafka_offset.append_value(record.offset);
        self.kafka_timestamp
            .push(record.timestamp_ms.map(|ms| ms.saturating_mul(1000)));
        self.kafka_key.append_option(record.key.as_deref());
        Ok(())
    }

    /// The rows as one batch of `schema` (the archive's, with Iceberg's field ids).
    pub fn finish(self, schema: &SchemaRef) -> Result<RecordBatch> {
        let Self {
            ids,
            event_time,
            mut event_time_text,
            mut version,
            data,
            metadata,
            mut entity_key,
            mut kafka_topic,
            mut kafka_partition,
            mut kafka_offset,
            kafka_timestamp,
            mut kafka_key,
        } = self;
        let [
            mut event_id,
            mut event_type,
            mut entity_type,
            mut entity_id,
            mut tenant_id,
        ] = ids;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(event_id.finish()),
            Arc::new(event_type.finish()),
            Arc::new(entity_type.finish()),
            Arc::new(entity_id.finish()),
            Arc::new(tenant_id.finish()),
            timestamps(schema, EVENT_TIME, event_time.into_iter().map(Some))?,
            Arc::new(event_time_text.finish()),
            Arc::new(version.finish()),
            data.finish()?,
            metadata.finish()?,
            Arc::new(entity_key.finish()),
            Arc::new(kafka_topic.finish()),
            Arc::new(kafka_partition.finish()),
            Arc::new(kafka_offset.finish()),
            timestamps(schema, KAFKA_TIMESTAMP, kafka_timestamp)?,
            super::event::binary_as(schema, Arc::new(kafka_key.finish()))?,
        ];
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::new(ErrorKind::Internal, "archive batch").with_source(e))
    }
}

/// Microseconds as the schema's timestamp type of column `name` (its time zone included).
pub(super) fn timestamps(
    schema: &SchemaRef,
    name: &str,
    us: impl IntoIterator<Item = Option<i64>>,
) -> Result<ArrayRef> {
    let ty = schema
        .field_with_name(name)
        .map_err(|e| Error::new(ErrorKind::Internal, "archive schema").with_source(e))?
        .data_type()
        .clone();
    Ok(Arc::new(
        us.into_iter()
            .collect::<TimestampMicrosecondArray>()
            .with_data_type(ty),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::archive::ArchivedEvent;

    fn schema() -> SchemaRef {
        let layout = super::super::layout::layout("orders").unwrap();
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&layout.schema).unwrap())
    }

    fn record(offset: i64, key: Option<&[u8]>, value: &str) -> SourceRecord {
        SourceRecord {
            topic: "orders".into(),
            partition: 3,
            offset,
            timestamp_ms: (offset == 7).then_some(1_770_000_000_123),
            key: key.map(<[u8]>::to_vec),
            value: value.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rows_read_back_as_the_events_written() {
        let values = [
            r#"{"event_id":"e1","event_type":"OrderPlaced","entity_type":"Order","entity_id":"o-1","tenant_id":"acme","timestamp":"2026-02-01T08:00:00.5+01:00","version":2,"data":{"z":[1,2.5,null],"a":"\u00e9\"","n":{"y":true,"x":-0}},"metadata":{"source":"s"}}"#,
            r#"{"event_id":"e2","event_type":"OrderShipped","entity_type":"Order","entity_id":"o-2","tenant_id":"globex","timestamp":"2026-02-01T23:59:59Z","version":1,"data":{},"metadata":null}"#,
        ];
        let records = [
            record(7, Some(b"o-1"), values[0]),
            record(9, None, values[1]),
        ];
        let mut columns = EventColumns::with_capacity(1);
        for (r, key) in records.iter().zip([Some("o-1"), None]) {
            let e = Envelope::decode(&r.value).unwrap();
            columns.push(r, &e, key).unwrap();
        }
        let batch = columns.finish(&schema()).unwrap();
        let got = crate::archive::event::from_batch(&batch).unwrap();
        // Written out by hand: data with sorted keys in serde_json's spelling.
        let first = ArchivedEvent {
            event_id: "e1".into(),
            event_type: "OrderPlaced".into(),
            entity_type: "Order".into(),
            entity_id: "o-1".into(),
            tenant_id: "acme".into(),
            event_time_us: 1_769_929_200_500_000,
            event_time_text: "2026-02-01T08:00:00.5+01:00".into(),
            version: 2,
            data: r#"{"a":"é\"","n":{"x":0,"y":true},"z":[1,2.5,null]}"#.into(),
            metadata: Some(r#"{"source":"s"}"#.into()),
            entity_key: Some("o-1".into()),
            kafka_topic: "orders".into(),
            kafka_partition: 3,
            kafka_offset: 7,
            kafka_timestamp_ms: Some(1_770_000_000_123),
            kafka_key: Some(b"o-1".to_vec()),
        };
        let second = ArchivedEvent {
            event_id: "e2".into(),
            event_type: "OrderShipped".into(),
            entity_id: "o-2".into(),
            tenant_id: "globex".into(),
            event_time_us: 1_769_990_399_000_000,
            event_time_text: "2026-02-01T23:59:59Z".into(),
            version: 1,
            data: "{}".into(),
            metadata: None,
            entity_key: None,
            kafka_offset: 9,
            kafka_timestamp_ms: None,
            kafka_key: None,
            ..first.clone()
        };
        assert_eq!(got, [first, second]);
    }
}

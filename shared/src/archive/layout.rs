//! The archive table's layout: one row per archived event, the envelope's fields as
//! columns (`data` and `metadata` as JSON text) and where the record sat in Kafka.
//! Partitioned by day of the event's time and by entity type (what historical queries
//! filter on); sorted by (Kafka partition, offset) (what replay reads by).

use std::collections::HashMap;

use iceberg::spec::{
    NestedField, NullOrder, PrimitiveType, Schema, SortDirection, SortField, SortOrder, Transform,
    Type, UnboundPartitionSpec,
};

use crate::error::{Error, ErrorKind, Result};
use crate::table::schema::{TableLayout, field_id};

pub const EVENT_ID: &str = "event_id";
pub const EVENT_TYPE: &str = "event_type";
pub const ENTITY_TYPE: &str = "entity_type";
pub const ENTITY_ID: &str = "entity_id";
pub const TENANT_ID: &str = "tenant_id";
/// The envelope's `timestamp` as an instant (µs, UTC).
pub const EVENT_TIME: &str = "event_time";
/// The envelope's `timestamp` exactly as the producer wrote it (replay hands the fold the
/// same text).
pub const EVENT_TIME_TEXT: &str = "event_time_text";
pub const VERSION: &str = "version";
pub const DATA: &str = "data";
pub const METADATA: &str = "metadata";
/// The row key the pipeline's fold groups by (`data.<key_field>`, else `entity_id`); null
/// when the event has none.
pub const ENTITY_KEY: &str = "entity_key";
pub const KAFKA_TOPIC: &str = "kafka_topic";
pub const KAFKA_PARTITION: &str = "kafka_partition";
pub const KAFKA_OFFSET: &str = "kafka_offset";
pub const KAFKA_TIMESTAMP: &str = "kafka_timestamp";
pub const KAFKA_KEY: &str = "kafka_key";

/// The partition field of the day transform on `event_time`.
pub const EVENT_DAY: &str = "event_day";

/// Columns in order: (name, type, required, doc).
const COLUMNS: [(&str, PrimitiveType, bool, &str); 16] = [
    (
        EVENT_ID,
        PrimitiveType::String,
        true,
        "the envelope's event_id",
    ),
    (
        EVENT_TYPE,
        PrimitiveType::String,
        true,
        "the envelope's event_type",
    ),
    (
        ENTITY_TYPE,
        PrimitiveType::String,
        true,
        "the envelope's entity_type",
    ),
    (
        ENTITY_ID,
        PrimitiveType::String,
        true,
        "the envelope's entity_id",
    ),
    (
        TENANT_ID,
        PrimitiveType::String,
        true,
        "the envelope's tenant_id",
    ),
    (
        EVENT_TIME,
        PrimitiveType::Timestamptz,
        true,
        "the envelope's timestamp",
    ),
    (
        EVENT_TIME_TEXT,
        PrimitiveType::String,
        true,
        "the envelope's timestamp as written",
    ),
    (VERSION, PrimitiveType::Long, true, "the envelope's version"),
    (
        DATA,
        PrimitiveType::String,
        true,
        "the envelope's data, JSON",
    ),
    (
        METADATA,
        PrimitiveType::String,
        false,
        "the envelope's metadata, JSON",
    ),
    (
        ENTITY_KEY,
        PrimitiveType::String,
        false,
        "the key the pipeline folds by",
    ),
    (
        KAFKA_TOPIC,
        PrimitiveType::String,
        true,
        "Kafka topic of the record",
    ),
    (
        KAFKA_PARTITION,
        PrimitiveType::Int,
        true,
        "Kafka partition of the record",
    ),
    (
        KAFKA_OFFSET,
        PrimitiveType::Long,
        true,
        "Kafka offset of the record",
    ),
    (
        KAFKA_TIMESTAMP,
        PrimitiveType::Timestamptz,
        false,
        "Kafka timestamp of the record",
    ),
    (
        KAFKA_KEY,
        PrimitiveType::Binary,
        false,
        "Kafka key of the record",
    ),
];

/// The column names, in schema order.
pub fn column_names() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().map(|c| c.0)
}

fn config(what: &str) -> impl FnOnce(iceberg::Error) -> Error + '_ {
    move |e| Error::new(ErrorKind::Internal, format!("archive {what}")).with_source(e)
}

pub(crate) fn layout(topic: &str) -> Result<TableLayout> {
    let fields = COLUMNS
        .iter()
        .zip(1..)
        .map(|((name, ty, required, doc), id)| {
            let ty = Type::Primitive(ty.clone());
            let f = if *required {
                NestedField::required(id, *name, ty)
            } else {
                NestedField::optional(id, *name, ty)
            };
            f.with_doc(*doc).into()
        });
    let schema = Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(config("schema"))?;
    let (time_id, type_id) = (
        field_id(&schema, EVENT_TIME)?,
        field_id(&schema, ENTITY_TYPE)?,
    );
    let spec = UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(time_id, EVENT_DAY, Transform::Day)
        .and_then(|b| b.add_partition_field(type_id, ENTITY_TYPE, Transform::Identity))
        .map_err(config("partition spec"))?
        .build();
    let sort_field = |id| SortField {
        source_id: id,
        transform: Transform::Identity,
        direction: SortDirection::Ascending,
        null_order: NullOrder::First,
    };
    let sort_order = SortOrder::builder()
        .with_order_id(1)
        .with_sort_field(sort_field(field_id(&schema, KAFKA_PARTITION)?))
        .with_sort_field(sort_field(field_id(&schema, KAFKA_OFFSET)?))
        .build(&schema)
        .map_err(config("sort order"))?;
    let properties = HashMap::from([
        ("write.format.default".to_string(), "parquet".to_string()),
        (
            "write.parquet.compression-codec".to_string(),
            "snappy".to_string(),
        ),
        ("refold.archive-of".to_string(), topic.to_string()),
    ]);
    Ok(TableLayout {
        schema,
        spec,
        sort_order,
        properties,
    })
}

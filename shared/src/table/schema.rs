//! The state table's layout: schema, partition spec and sort order.
//!
//! Columns, in order: `tenant_id` (string, required), the key column named by `key_field`
//! (string, required) — together the identifier fields —, the state columns (one `state`
//! string of canonical JSON, or one optional column per declared state field), then the
//! bookkeeping `source_partition` (int), `last_offset` (long), `last_event_id` (string),
//! `last_event_time` (timestamptz), `events_folded` (long), all required.
//! Partitioned by identity(`source_partition`): one batch touches one Iceberg partition.
//! Sorted by (`tenant_id`, key): files and row groups have narrow key bounds.

use std::collections::HashMap;

use iceberg::spec::{
    NestedField, NullOrder, PrimitiveType, Schema, SortDirection, SortField, SortOrder, Transform,
    Type, UnboundPartitionSpec,
};

use crate::error::{Error, ErrorKind, Result};

/// The type of one declared state field (the pipeline's). Timestamp is stored as timestamptz
/// (µs, UTC) and is an RFC 3339 string (or integer µs) in the state map; Json is any JSON
/// value stored as a canonical JSON string.
pub use crate::pipeline::ColumnType;

pub const TENANT_ID: &str = "tenant_id";
pub const STATE: &str = "state";
pub const SOURCE_PARTITION: &str = "source_partition";
pub const LAST_OFFSET: &str = "last_offset";
pub const LAST_EVENT_ID: &str = "last_event_id";
pub const LAST_EVENT_TIME: &str = "last_event_time";
pub const EVENTS_FOLDED: &str = "events_folded";

/// Names the state columns cannot take.
pub const RESERVED_COLUMNS: [&str; 6] = [
    TENANT_ID,
    SOURCE_PARTITION,
    LAST_OFFSET,
    LAST_EVENT_ID,
    LAST_EVENT_TIME,
    EVENTS_FOLDED,
];

/// Sort order id of (tenant_id, key) ascending.
pub const SORT_ORDER_ID: i64 = 1;

pub(crate) struct TableLayout {
    pub schema: Schema,
    pub spec: UnboundPartitionSpec,
    pub sort_order: SortOrder,
    pub properties: HashMap<String, String>,
}

fn iceberg_type(t: ColumnType) -> PrimitiveType {
    match t {
        ColumnType::String | ColumnType::Json => PrimitiveType::String,
        ColumnType::Long => PrimitiveType::Long,
        ColumnType::Double => PrimitiveType::Double,
        ColumnType::Boolean => PrimitiveType::Boolean,
        ColumnType::Timestamp => PrimitiveType::Timestamptz,
    }
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::Config, msg)
}

/// Builds the layout for a key field and state columns; rejects clashing or empty names.
pub(crate) fn layout(key_field: &str, columns: &super::StateColumns) -> Result<TableLayout> {
    if key_field.is_empty() || RESERVED_COLUMNS.contains(&key_field) {
        return Err(bad(format!(
            "key_field `{key_field}` is empty or a reserved column name"
        )));
    }
    let s = |t| Type::Primitive(t);
    let mut fields = vec![
        NestedField::required(1, TENANT_ID, s(PrimitiveType::String))
            .with_doc("tenant of the entity"),
        NestedField::required(2, key_field, s(PrimitiveType::String)).with_doc("entity key"),
    ];
    let mut next_id = 3;
    match columns {
        super::StateColumns::Json => {
            if key_field == STATE {
                return Err(bad(
                    "key_field `state` clashes with the JSON state column".into()
                ));
            }
            fields.push(
                NestedField::required(next_id, STATE, s(PrimitiveType::String))
                    .with_doc("folded state, canonical JSON"),
            );
            next_id += 1;
        }
        super::StateColumns::Typed(cols) => {
            if cols.is_empty() {
                return Err(bad("a typed state needs at least one column".into()));
            }
            let mut seen = std::collections::HashSet::new();
            for (name, t) in cols {
                if name.is_empty() || name == key_field || RESERVED_COLUMNS.contains(&name.as_str())
                {
                    return Err(bad(format!(
                        "state column `{name}` is empty or clashes with the key or a bookkeeping column"
                    )));
                }
                if !seen.insert(name.as_str()) {
                    return Err(bad(format!("state column `{name}` declared twice")));
                }
                fields.push(NestedField::optional(next_id, name, s(iceberg_type(*t))));
                next_id += 1;
            }
        }
    }
    let book = [
        (
            SOURCE_PARTITION,
            PrimitiveType::Int,
            "Kafka partition the row's events came from",
        ),
        (
            LAST_OFFSET,
            PrimitiveType::Long,
            "offset of the last event folded",
        ),
        (
            LAST_EVENT_ID,
            PrimitiveType::String,
            "id of the last event folded",
        ),
        (
            LAST_EVENT_TIME,
            PrimitiveType::Timestamptz,
            "time of the last event folded",
        ),
        (
            EVENTS_FOLDED,
            PrimitiveType::Long,
            "number of events folded into the state",
        ),
    ];
    for (name, t, doc) in book {
        fields.push(NestedField::required(next_id, name, s(t)).with_doc(doc));
        next_id += 1;
    }
    let schema = Schema::builder()
        .with_schema_id(0)
        .with_identifier_field_ids(vec![1, 2])
        .with_fields(fields.into_iter().map(Into::into))
        .build()
        .map_err(|e| Error::new(ErrorKind::Config, "state table schema").with_source(e))?;
    let source_partition_id = field_id(&schema, SOURCE_PARTITION)?;
    let spec = UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(source_partition_id, SOURCE_PARTITION, Transform::Identity)
        .map_err(|e| Error::new(ErrorKind::Config, "partition spec").with_source(e))?
        .build();
    let sort_field = |id| SortField {
        source_id: id,
        transform: Transform::Identity,
        direction: SortDirection::Ascending,
        null_order: NullOrder::First,
    };
    let sort_order = SortOrder::builder()
        .with_order_id(SORT_ORDER_ID)
        .with_sort_field(sort_field(1))
        .with_sort_field(sort_field(2))
        .build(&schema)
        .map_err(|e| Error::new(ErrorKind::Config, "sort order").with_source(e))?;
    let properties = HashMap::from([
        ("write.format.default".to_string(), "parquet".to_string()),
        ("write.delete.mode".to_string(), "merge-on-read".to_string()),
        ("write.update.mode".to_string(), "merge-on-read".to_string()),
        ("write.merge.mode".to_string(), "merge-on-read".to_string()),
        (
            "write.parquet.compression-codec".to_string(),
            "snappy".to_string(),
        ),
        ("refold.key-field".to_string(), key_field.to_string()),
    ]);
    Ok(TableLayout {
        schema,
        spec,
        sort_order,
        properties,
    })
}

pub(crate) fn field_id(schema: &Schema, name: &str) -> Result<i32> {
    schema.field_by_name(name).map(|f| f.id).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("column `{name}` missing from the schema"),
        )
    })
}

/// An existing table must have exactly the columns (names, types, required-ness, order) the
/// configuration asks for: refold does not evolve schemas in place (replay into a new table).
pub(crate) fn check_compatible(existing: &Schema, wanted: &Schema) -> Result<()> {
    let shape = |s: &Schema| -> Vec<(String, String, bool)> {
        s.as_struct()
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.field_type.to_string(), f.required))
            .collect()
    };
    let (have, want) = (shape(existing), shape(wanted));
    if have != want {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "existing table has columns {:?}, the pipeline needs {:?}; replay into a new table",
                have.iter().map(|c| &c.0).collect::<Vec<_>>(),
                want.iter().map(|c| &c.0).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(())
}

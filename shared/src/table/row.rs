//! [`StateRow`] <-> Arrow record batches of the table schema, and canonical JSON.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, SchemaRef as ArrowSchemaRef};
use iceberg::spec::SchemaRef;
use serde_json::{Map, Value};

use super::schema::{
    ColumnType, EVENTS_FOLDED, LAST_EVENT_ID, LAST_EVENT_TIME, LAST_OFFSET, SOURCE_PARTITION,
    STATE, TENANT_ID,
};
use super::{ResultExt, StateColumns, StateRow};
use crate::error::{Error, ErrorKind, Result};
use crate::fold::{State, StateMap};

/// Writes `v` as canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace,
/// numbers as serde_json prints them. Independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_canonical(v, &mut out);
    crate::json::utf8_text(out)
}

/// [`canonical_json`] of an object, without building a `Value` around it.
pub fn canonical_object(m: &Map<String, Value>) -> String {
    let mut out = Vec::with_capacity(64);
    write_object(m, &mut out);
    crate::json::utf8_text(out)
}

/// Writes straight into `out`: this runs for every row of every merge, so no key, number or
/// string is allocated on the way.
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => write_object(m, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => crate::json::write_serde(other, out),
    }
}

fn write_object(m: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = m.iter().collect();
    // Already sorted unless serde_json's `preserve_order` is on somewhere in the build.
    if !entries.is_sorted_by_key(|e| e.0) {
        entries.sort_unstable_by_key(|e| e.0);
    }
    out.push(b'{');
    for (i, (k, x)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::json::write_serde(k, out);
        out.push(b':');
        write_canonical(x, out);
    }
    out.push(b'}');
}

/// Converts rows of one table to and from Arrow.
#[derive(Debug, Clone)]
pub struct RowCodec {
    pub(crate) schema: SchemaRef,
    pub(crate) arrow: ArrowSchemaRef,
    pub(crate) key_field: String,
    columns: StateColumns,
    time_zone: Option<Arc<str>>,
}

impl RowCodec {
    pub fn new(schema: SchemaRef, key_field: &str, columns: &StateColumns) -> Result<Self> {
        let arrow = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(&schema).kind(ErrorKind::Internal, || {
                "arrow schema of the state table".into()
            })?,
        );
        let time_zone = match arrow
            .field_with_name(LAST_EVENT_TIME)
            .map(|f| f.data_type().clone())
        {
            Ok(DataType::Timestamp(_, tz)) => tz,
            other => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("last_event_time has arrow type {other:?}"),
                ));
            }
        };
        Ok(Self {
            schema,
            arrow,
            key_field: key_field.to_string(),
            columns: columns.clone(),
            time_zone,
        })
    }

    pub fn arrow_schema(&self) -> &ArrowSchemaRef {
        &self.arrow
    }

    fn ts_array(&self, v: Vec<Option<i64>>) -> TimestampMicrosecondArray {
        TimestampMicrosecondArray::from(v).with_timezone_opt(self.time_zone.clone())
    }

    /// Rows -> one record batch (in the given order).
    pub fn to_batch(&self, rows: &[StateRow]) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.tenant_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.key.as_str()),
            )),
        ];
        match &self.columns {
            StateColumns::Json => {
                cols.push(Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.state.as_str()),
                )));
            }
            StateColumns::Typed(decl) => {
                let states = rows
                    .iter()
                    .map(|r| r.state.to_map())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::new(ErrorKind::Internal, e))?;
                for (r, state) in rows.iter().zip(&states) {
                    if let Some(extra) = state.keys().find(|k| !decl.iter().any(|(n, _)| n == *k)) {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!(
                                "state of ({}, {}) has field `{extra}` not declared in the state type",
                                r.tenant_id, r.key
                            ),
                        ));
                    }
                }
                for (name, t) in decl {
                    cols.push(self.typed_column(rows, &states, name, *t)?);
                }
            }
        }
        cols.push(Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.source_partition),
        )));
        cols.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.last_offset),
        )));
        cols.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.last_event_id.as_str()),
        )));
        cols.push(Arc::new(self.ts_array(
            rows.iter().map(|r| Some(r.last_event_time_us)).collect(),
        )));
        cols.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.events_folded),
        )));
        RecordBatch::try_new(self.arrow.clone(), cols)
            .kind(ErrorKind::Internal, || "state rows to arrow".into())
    }

    /// Column `name` of the rows, `states[i]` being row `i`'s state.
    fn typed_column(
        &self,
        rows: &[StateRow],
        states: &[StateMap],
        name: &str,
        t: ColumnType,
    ) -> Result<ArrayRef> {
        let wrong = |r: &StateRow, v: &Value| {
            Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "state field `{name}` of ({}, {}) is {v}, not a {t:?}",
                    r.tenant_id, r.key
                ),
            )
        };
        let vals = rows
            .iter()
            .zip(states)
            .map(|(r, state)| (r, state.get(name).filter(|v| !v.is_null())));
        Ok(match t {
            ColumnType::String => Arc::new(
                vals.map(|(r, v)| match v {
                    None => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(v) => Err(wrong(r, v)),
                })
                .collect::<Result<StringArray>>()?,
            ),
            ColumnType::Json => Arc::new(
                vals.map(|(_, v)| Ok(v.map(canonical_json)))
                    .collect::<Result<StringArray>>()?,
            ),
            ColumnType::Long => Arc::new(
                vals.map(|(r, v)| match v {
                    None => Ok(None),
                    Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
                    Some(v) => Err(wrong(r, v)),
                })
                .collect::<Result<Int64Array>>()?,
            ),
            ColumnType::Double => Arc::new(
                vals.map(|(r, v)| match v {
                    None => Ok(None),
                    Some(Value::Number(n)) => n
                        .as_f64()
                        .map(Some)
                        .ok_or_else(|| wrong(r, &Value::Number(n.clone()))),
                    Some(v) => Err(wrong(r, v)),
                })
                .collect::<Result<Float64Array>>()?,
            ),
            ColumnType::Boolean => Arc::new(
                vals.map(|(r, v)| match v {
                    None => Ok(None),
                    Some(Value::Bool(b)) => Ok(Some(*b)),
                    Some(v) => Err(wrong(r, v)),
                })
                .collect::<Result<BooleanArray>>()?,
            ),
            ColumnType::Timestamp => {
                let v = vals
                    .map(|(r, v)| match v {
                        None => Ok(None),
                        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
                        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                            .map(|d| Some(d.timestamp_micros()))
                            .map_err(|_| wrong(r, &Value::String(s.clone()))),
                        Some(v) => Err(wrong(r, v)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(self.ts_array(v))
            }
        })
    }

    /// One record batch (with every table column, any column order) -> rows; only the rows at
    /// `indices` if given.
    pub fn from_batch(&self, b: &RecordBatch, indices: Option<&[usize]>) -> Result<Vec<StateRow>> {
        let all: Vec<usize>;
        let idx = match indices {
            Some(i) => i,
            None => {
                all = (0..b.num_rows()).collect();
                &all
            }
        };
        let tenant = utf8(b, TENANT_ID)?;
        let key = utf8(b, &self.key_field)?;
        let sp = col(b, SOURCE_PARTITION)?;
        let sp = sp
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| type_err(SOURCE_PARTITION))?;
        let lo = col(b, LAST_OFFSET)?;
        let lo = lo
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| type_err(LAST_OFFSET))?;
        let le = utf8(b, LAST_EVENT_ID)?;
        let lt = col(b, LAST_EVENT_TIME)?;
        let lt = lt
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| type_err(LAST_EVENT_TIME))?;
        let ef = col(b, EVENTS_FOLDED)?;
        let ef = ef
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| type_err(EVENTS_FOLDED))?;
        enum StateCol {
            Json(ArrayRef),
            Typed(Vec<(String, ColumnType, ArrayRef)>),
        }
        let state = match &self.columns {
            StateColumns::Json => StateCol::Json(utf8_array(b, STATE)?),
            StateColumns::Typed(decl) => StateCol::Typed(
                decl.iter()
                    .map(|(n, t)| {
                        let a = if matches!(t, ColumnType::String | ColumnType::Json) {
                            utf8_array(b, n)?
                        } else {
                            col(b, n)?
                        };
                        Ok((n.clone(), *t, a))
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        let mut out = Vec::with_capacity(idx.len());
        for &i in idx {
            let state = match &state {
                StateCol::Json(a) => {
                    let s = a.as_string::<i32>().value(i);
                    State::parse(s).map_err(|reason| {
                        Error::new(
                            ErrorKind::Io,
                            format!("state column holds no JSON object ({reason}): {s:.80}"),
                        )
                    })?
                }
                StateCol::Typed(cols) => {
                    let mut m = Map::new();
                    for (n, t, a) in cols {
                        if a.is_null(i) {
                            continue;
                        }
                        m.insert(n.clone(), typed_value(a, *t, i, n)?);
                    }
                    State::from_map(&m)
                }
            };
            out.push(StateRow {
                tenant_id: tenant.value(i).to_string(),
                key: key.value(i).to_string(),
                state,
                source_partition: sp.value(i),
                last_offset: lo.value(i),
                last_event_id: le.value(i).to_string(),
                last_event_time_us: lt.value(i),
                events_folded: ef.value(i),
            });
        }
        Ok(out)
    }
}

fn typed_value(a: &ArrayRef, t: ColumnType, i: usize, name: &str) -> Result<Value> {
    Ok(match t {
        ColumnType::String => Value::String(a.as_string::<i32>().value(i).to_string()),
        ColumnType::Json => {
            let s = a.as_string::<i32>().value(i);
            serde_json::from_str(s).kind(ErrorKind::Io, || {
                format!("column `{name}` holds invalid JSON")
            })?
        }
        ColumnType::Long => Value::from(
            a.as_primitive_opt::<Int64Type>()
                .ok_or_else(|| type_err(name))?
                .value(i),
        ),
        ColumnType::Double => {
            let v = a
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| type_err(name))?
                .value(i);
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        ColumnType::Boolean => {
            Value::Bool(a.as_boolean_opt().ok_or_else(|| type_err(name))?.value(i))
        }
        ColumnType::Timestamp => {
            let us = a
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| type_err(name))?
                .value(i);
            let d = chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| {
                Error::new(
                    ErrorKind::Io,
                    format!("column `{name}` timestamp {us} out of range"),
                )
            })?;
            Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
    })
}

fn type_err(name: &str) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("column `{name}` has an unexpected type"),
    )
}

fn col(b: &RecordBatch, name: &str) -> Result<ArrayRef> {
    b.column_by_name(name).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!("column `{name}` missing from a data file"),
        )
    })
}

/// A string column as `Utf8` (casting `LargeUtf8`, views and dictionaries).
pub(crate) fn utf8_array(b: &RecordBatch, name: &str) -> Result<ArrayRef> {
    let a = col(b, name)?;
    if a.data_type() == &DataType::Utf8 {
        return Ok(a);
    }
    arrow_cast::cast(&a, &DataType::Utf8)
        .kind(ErrorKind::Io, || format!("column `{name}` is not a string"))
}

fn utf8(b: &RecordBatch, name: &str) -> Result<StringArray> {
    Ok(utf8_array(b, name)?.as_string::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_escapes_like_serde_json() {
        let v: Value = serde_json::from_str(
            r#"{"b":[1,"x\"y\n",{"d":true,"c":null}],"a":{"z":-2.5,"é":1.5}}"#,
        )
        .unwrap_or_default();
        let want = r#"{"a":{"z":-2.5,"é":1.5},"b":[1,"x\"y\n",{"c":null,"d":true}]}"#;
        assert_eq!(canonical_json(&v), want);
        let Value::Object(m) = &v else {
            panic!("not an object")
        };
        assert_eq!(canonical_object(m), want);
        assert_eq!(canonical_json(&Value::from("\u{1}")), r#""\u0001""#);
    }
}

//! The event envelope (`seed/event-envelope.json`): decoding and validation.
//!
//! Decoding is the hot path of every batch: an envelope is the sonic-rs `Value` of the
//! record (see [`crate::json`]), checked once and read through accessors. Each rejection
//! names the field and the reason.

use std::borrow::Cow;
use std::fmt;

use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use crate::json::{self, Json, Value};

/// Envelopes larger than this are rejected before parsing (Kafka's default
/// `message.max.bytes` is about 1 MB; a bigger record is not an event we can fold).
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
/// Longest accepted identifier-like string field (`event_id`, `entity_id`, ...).
pub const MAX_ID_BYTES: usize = 1024;

/// The envelope fields, in the order of the seed document.
pub const FIELDS: [&str; 9] = [
    "event_id",
    "event_type",
    "entity_type",
    "entity_id",
    "tenant_id",
    "timestamp",
    "version",
    "data",
    "metadata",
];

const EVENT_ID: usize = 0;
const EVENT_TYPE: usize = 1;
const ENTITY_TYPE: usize = 2;
const ENTITY_ID: usize = 3;
const TENANT_ID: usize = 4;
const TIMESTAMP: usize = 5;
const VERSION: usize = 6;
const DATA: usize = 7;
const METADATA: usize = 8;

/// The index in [`FIELDS`] of an envelope field's name.
#[inline]
fn field_index(name: &str) -> Option<usize> {
    Some(match name {
        "event_id" => EVENT_ID,
        "event_type" => EVENT_TYPE,
        "entity_type" => ENTITY_TYPE,
        "entity_id" => ENTITY_ID,
        "tenant_id" => TENANT_ID,
        "timestamp" => TIMESTAMP,
        "version" => VERSION,
        "data" => DATA,
        "metadata" => METADATA,
        _ => return None,
    })
}

/// The string fields, in the order of [`FIELDS`] (their indexes are `0..IDS`).
const IDS: usize = 6;

/// The string fields, one after the other: in the envelope itself when they fit (the usual
/// case, UUIDs included), else in an allocation of their own. They are read for every
/// event (filter, grouping, `event.type`), so in the envelope they cost no cache miss of
/// their own: the Starlark fold would be ~5% slower with them in a separate allocation.
#[derive(Debug, Clone)]
enum Ids {
    Inline(arrayvec::ArrayString<INLINE_IDS>),
    Heap(Box<str>),
}

const INLINE_IDS: usize = 160;

/// `null`, for reads of what an envelope does not have.
static NULL: Value = Value::new();

/// A validated event envelope. Every field the seed shows is required except `metadata`.
///
/// It owns what it holds (no borrow of the record): handles on the `data` and `metadata`
/// of the record's parsed document (a sonic-rs `Value`, kept alive by them), and the string
/// fields copied out of it, so that reading them is a slice of the envelope: a sonic-rs
/// document finds a field by walking its fields, about 10 ns each.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `event_id`, `event_type`, `entity_type`, `entity_id`, `tenant_id`, `timestamp`,
    /// one after the other; `ends[i]` is where the `i`th ends.
    ids: Ids,
    ends: [u32; IDS],
    timestamp_us: i64,
    version: i64,
    /// `data`, always an object: a handle on its part of the record's parsed document
    /// (sonic-rs counts the document's references).
    data: Value,
    /// `metadata` when it is an object (a handle, as `data`): the archive writes it for
    /// every event, and finding it in the document walks every field.
    metadata: Option<Value>,
}

/// Why an envelope was rejected: the field (if one is to blame) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    pub field: Option<String>,
    pub reason: String,
}

impl EnvelopeError {
    fn field(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            reason: reason.into(),
        }
    }
    fn whole(reason: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: reason.into(),
        }
    }

    /// The record is not JSON at all (as opposed to JSON that is not a valid envelope).
    pub fn is_bad_json(&self) -> bool {
        self.field.is_none() && self.reason.starts_with(NOT_JSON)
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl Envelope {
    /// Decodes and validates one envelope from a record's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::whole(format!(
                "envelope is {} bytes, more than the limit of {MAX_ENVELOPE_BYTES} bytes",
                bytes.len()
            )));
        }
        let doc = json::parse(bytes).map_err(|e| {
            let (line, column) = line_column(bytes, e.offset);
            EnvelopeError::whole(format!(
                "{NOT_JSON}{} (line {line}, column {column})",
                e.message
            ))
        })?;
        let Some(fields) = doc.as_object() else {
            return Err(EnvelopeError::whole(format!(
                "not an event envelope: expected a JSON object, got {}",
                describe(Json::of(&doc))
            )));
        };
        let mut found: [Option<&Value>; 9] = [None; 9];
        let mut duplicate = None;
        for (key, v) in fields.iter() {
            // Unknown fields are ignored so that producers can add fields without breaking
            // consumers.
            if let Some(i) = field_index(key)
                && found[i].replace(v).is_some()
                && duplicate.is_none()
            {
                duplicate = Some(FIELDS[i]);
            }
        }
        let (ids, timestamp_us, version) = match (duplicate, checked(&found)) {
            (None, Some(ok)) => ok,
            // The same checks again, to say which field fails and why.
            _ => validate(&found, duplicate)?,
        };
        let total: usize = ids.iter().map(|s| s.len()).sum();
        let mut end = 0;
        let ends = ids.map(|s| {
            end += s.len();
            // No more than MAX_ENVELOPE_BYTES in all.
            u32::try_from(end).unwrap_or(u32::MAX)
        });
        let ids = if total <= INLINE_IDS {
            let mut buffer = arrayvec::ArrayString::new();
            for s in ids {
                buffer.push_str(s);
            }
            Ids::Inline(buffer)
        } else {
            Ids::Heap(ids.concat().into_boxed_str())
        };
        Ok(Envelope {
            ids,
            ends,
            timestamp_us,
            version,
            data: found[DATA].cloned().unwrap_or_default(),
            metadata: found[METADATA].filter(|m| m.is_object()).cloned(),
        })
    }

    /// This envelope with `data` and `version` replaced (an upcaster's output), validated
    /// as any envelope is: the same fields, re-encoded and decoded.
    pub fn with_data(&self, data: &serde_json::Value, version: i64) -> Result<Self, EnvelopeError> {
        let mut doc = serde_json::Map::with_capacity(FIELDS.len());
        for (i, name) in FIELDS[..IDS].iter().enumerate() {
            doc.insert((*name).to_owned(), serde_json::Value::from(self.string(i)));
        }
        doc.insert("version".to_owned(), serde_json::Value::from(version));
        doc.insert("data".to_owned(), data.clone());
        if let Some(m) = self.metadata() {
            doc.insert("metadata".to_owned(), json::to_value(m));
        }
        Self::decode(serde_json::Value::Object(doc).to_string().as_bytes())
    }

    /// String field `i` of [`FIELDS`].
    #[inline]
    fn string(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let ids: &str = match &self.ids {
            Ids::Inline(s) => s,
            Ids::Heap(s) => s,
        };
        ids.get(start..self.ends[i] as usize).unwrap_or_default()
    }

    pub fn event_id(&self) -> &str {
        self.string(EVENT_ID)
    }

    pub fn event_type(&self) -> &str {
        self.string(EVENT_TYPE)
    }

    pub fn entity_type(&self) -> &str {
        self.string(ENTITY_TYPE)
    }

    pub fn entity_id(&self) -> &str {
        self.string(ENTITY_ID)
    }

    pub fn tenant_id(&self) -> &str {
        self.string(TENANT_ID)
    }

    /// The timestamp as written (RFC 3339).
    pub fn timestamp(&self) -> &str {
        self.string(TIMESTAMP)
    }

    /// The timestamp in microseconds since the Unix epoch, UTC.
    pub fn timestamp_us(&self) -> i64 {
        self.timestamp_us
    }

    /// Schema version of the event, a positive integer.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The event's payload; always a JSON object.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The optional object of producer metadata (`None` when missing or null).
    pub fn metadata(&self) -> Option<&Value> {
        self.metadata.as_ref()
    }

    /// The entity key under `key_field`: `data.<key_field>` when present (a string, or an
    /// integer written as decimal), else `entity_id`.
    pub fn key(&self, key_field: &str) -> Result<Cow<'_, str>, EnvelopeError> {
        match json::get(self.data(), key_field).map(Json::of) {
            None | Some(Json::Null) => Ok(Cow::Borrowed(self.entity_id())),
            Some(Json::Str(s)) if !s.is_empty() => Ok(Cow::Borrowed(s)),
            Some(Json::Int(i)) => Ok(Cow::Owned(i.to_string())),
            Some(other) => Err(EnvelopeError::field(
                &format!("data.{key_field}"),
                format!(
                    "the key must be a non-empty string or an integer, got {}",
                    describe(other)
                ),
            )),
        }
    }

    /// Looks an attribute up the way a fold sees `event.<name>`: `type` is `event_type`,
    /// then the envelope's own fields, then the fields of `data` (a key written twice
    /// reads as its last occurrence).
    pub fn attr(&self, name: &str) -> Option<Attr<'_>> {
        Some(match name {
            "type" | "event_type" => Attr::Str(self.event_type()),
            "event_id" => Attr::Str(self.event_id()),
            "entity_type" => Attr::Str(self.entity_type()),
            "entity_id" => Attr::Str(self.entity_id()),
            "tenant_id" => Attr::Str(self.tenant_id()),
            "timestamp" => Attr::Str(self.timestamp()),
            "version" => Attr::Int(self.version),
            "data" => Attr::Json(self.data()),
            "metadata" => Attr::Json(self.metadata().unwrap_or(&NULL)),
            _ => Attr::Json(json::get(self.data(), name)?),
        })
    }
}

/// An attribute of an event as the fold sees it.
#[derive(Debug, Clone, Copy)]
pub enum Attr<'e> {
    Str(&'e str),
    Int(i64),
    /// A JSON value; read it with [`Json::of`].
    Json(&'e Value),
}

const NOT_JSON: &str = "not valid JSON: ";

/// 1-based line and column (in characters) of a byte offset.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn describe(v: Json<'_>) -> String {
    let text = v.to_value().to_string();
    if text.len() > 40 {
        format!(
            "{} {}…",
            v.kind(),
            text.chars().take(40).collect::<String>()
        )
    } else {
        format!("{} {text}", v.kind())
    }
}

/// The checks of [`validate`] without the reasons: the fast path of a valid envelope.
#[inline]
fn checked<'v>(found: &[Option<&'v Value>; 9]) -> Option<([&'v str; IDS], i64, i64)> {
    let id = |i: usize| {
        found[i]?
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES)
    };
    let ids = [
        id(EVENT_ID)?,
        id(EVENT_TYPE)?,
        id(ENTITY_TYPE)?,
        id(ENTITY_ID)?,
        id(TENANT_ID)?,
        id(TIMESTAMP)?,
    ];
    let version = found[VERSION]?.as_i64().filter(|v| *v >= 1)?;
    let objects =
        found[DATA]?.is_object() && found[METADATA].is_none_or(|m| m.is_null() || m.is_object());
    let timestamp_us = parse_rfc3339_us(ids[TIMESTAMP]).ok()?;
    objects.then_some((ids, timestamp_us, version))
}

/// Checks the envelope's fields as found (`found[i]` is field `i` of [`FIELDS`]); the
/// string fields, the timestamp in microseconds and the version.
fn validate<'v>(
    found: &[Option<&'v Value>; 9],
    duplicate: Option<&'static str>,
) -> Result<([&'v str; IDS], i64, i64), EnvelopeError> {
    if let Some(field) = duplicate {
        return Err(EnvelopeError::field(field, "appears more than once"));
    }
    let missing: Vec<&str> = FIELDS[..METADATA]
        .iter()
        .zip(found)
        .filter(|(_, v)| v.is_none())
        .map(|(name, _)| *name)
        .collect();
    match missing.as_slice() {
        [] => {}
        [one] => return Err(EnvelopeError::field(one, "is required but missing")),
        many => {
            return Err(EnvelopeError::whole(format!(
                "required fields missing: {}",
                many.join(", ")
            )));
        }
    }
    let timestamp = id_string(TIMESTAMP, found[TIMESTAMP])?;
    let timestamp_us =
        parse_rfc3339_us(timestamp).map_err(|reason| EnvelopeError::field("timestamp", reason))?;
    let version = match found[VERSION].map(Json::of) {
        Some(Json::Int(v)) if v >= 1 => v,
        Some(other) => {
            return Err(EnvelopeError::field(
                "version",
                format!("must be a positive integer, got {}", describe(other)),
            ));
        }
        None => unreachable_missing("version")?,
    };
    match found[DATA] {
        Some(d) if d.is_object() => {}
        Some(other) => {
            return Err(EnvelopeError::field(
                "data",
                format!("must be an object, got {}", describe(Json::of(other))),
            ));
        }
        None => unreachable_missing("data")?,
    }
    match found[METADATA] {
        Some(m) if !(m.is_null() || m.is_object()) => {
            return Err(EnvelopeError::field(
                "metadata",
                format!(
                    "must be an object when present, got {}",
                    describe(Json::of(m))
                ),
            ));
        }
        _ => {}
    }
    let ids = [
        id_string(EVENT_ID, found[EVENT_ID])?,
        id_string(EVENT_TYPE, found[EVENT_TYPE])?,
        id_string(ENTITY_TYPE, found[ENTITY_TYPE])?,
        id_string(ENTITY_ID, found[ENTITY_ID])?,
        id_string(TENANT_ID, found[TENANT_ID])?,
        timestamp,
    ];
    Ok((ids, timestamp_us, version))
}

/// Missing fields were reported above; reaching this is a bug, reported as an error rather
/// than a panic because it sits on the input path.
fn unreachable_missing<T>(field: &str) -> Result<T, EnvelopeError> {
    Err(EnvelopeError::field(
        field,
        "is required but missing (internal: missed by the check)",
    ))
}

/// Field `i` of [`FIELDS`] as an identifier-like string.
fn id_string(i: usize, v: Option<&Value>) -> Result<&str, EnvelopeError> {
    let field = FIELDS[i];
    match v.map(Json::of) {
        Some(Json::Str("")) => Err(EnvelopeError::field(
            field,
            "must be a non-empty string, got an empty string",
        )),
        Some(Json::Str(s)) if s.len() > MAX_ID_BYTES => Err(EnvelopeError::field(
            field,
            format!(
                "is {} bytes long, more than the limit of {MAX_ID_BYTES}",
                s.len()
            ),
        )),
        Some(Json::Str(s)) => Ok(s),
        Some(other) => Err(EnvelopeError::field(
            field,
            format!("must be a string, got {}", describe(other)),
        )),
        None => unreachable_missing(field),
    }
}

/// Parses an RFC 3339 date-time (`2026-02-12T10:30:00Z`, `...T10:30:00.123+02:00`) into
/// microseconds since the epoch. Stricter than ISO 8601: a `T` or space separator, seconds
/// and an offset are required.
pub fn parse_rfc3339_us(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 timestamp ({e}); expected e.g. 2026-02-12T10:30:00Z")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
      "event_id": "evt-abc-123", "event_type": "OrderPlaced", "entity_type": "Order",
      "entity_id": "order-456", "tenant_id": "tenant-789", "timestamp": "2026-02-12T10:30:00Z",
      "version": 1,
      "data": {"customer_id": "cust-100", "amount": 99.99, "currency": "USD"},
      "metadata": {"source": "order-service", "correlation_id": "req-xyz"}
    }"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(SEED).expect("seed");
        v[field] = serde_json::from_str(value).expect("value");
        v.to_string()
    }

    fn without(field: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(SEED).expect("seed");
        v.as_object_mut().expect("object").remove(field);
        v.to_string()
    }

    fn reject(text: &str) -> EnvelopeError {
        Envelope::decode(text.as_bytes()).expect_err("must be rejected")
    }

    #[test]
    fn seed_envelope_decodes() {
        let e = Envelope::decode(SEED.as_bytes()).expect("seed decodes");
        assert_eq!(e.event_id(), "evt-abc-123");
        assert_eq!(e.event_type(), "OrderPlaced");
        assert_eq!(e.entity_type(), "Order");
        assert_eq!(e.entity_id(), "order-456");
        assert_eq!(e.tenant_id(), "tenant-789");
        assert_eq!(e.timestamp(), "2026-02-12T10:30:00Z");
        assert_eq!(e.version(), 1);
        assert_eq!(e.timestamp_us(), 1_770_892_200_000_000);
        assert_eq!(e.key("order_id").expect("key"), "order-456");
        assert!(
            matches!(e.attr("amount"), Some(Attr::Json(j)) if matches!(Json::of(j), Json::Float(f) if f == 99.99))
        );
        assert!(matches!(e.attr("type"), Some(Attr::Str("OrderPlaced"))));
        assert!(matches!(e.attr("version"), Some(Attr::Int(1))));
        assert!(e.attr("nope").is_none());
        assert_eq!(
            json::to_text(e.metadata().expect("metadata")),
            r#"{"correlation_id":"req-xyz","source":"order-service"}"#
        );
        assert_eq!(json::kind(e.data()), "object");
        // Fields in another order, unknown ones among them, and no metadata.
        let text = r#"{"x": 1, "data": {"k": "v", "k": "w"}, "version": 2, "timestamp": "2026-02-12T10:30:00.5+01:00",
            "tenant_id": "t", "entity_id": "e", "entity_type": "E", "event_type": "T", "event_id": "i"}"#;
        let e = Envelope::decode(text.as_bytes()).expect("valid");
        assert_eq!(
            (
                e.event_id(),
                e.event_type(),
                e.entity_type(),
                e.entity_id(),
                e.tenant_id()
            ),
            ("i", "T", "E", "e", "t")
        );
        assert_eq!((e.version(), e.timestamp_us()), (2, 1_770_888_600_500_000));
        assert!(e.metadata().is_none());
        assert!(matches!(e.attr("metadata"), Some(Attr::Json(m)) if m.is_null()));
        assert!(matches!(e.attr("k"), Some(Attr::Json(v)) if v.as_str() == Some("w")));
        assert_eq!(e.key("k").expect("key"), "w", "the last occurrence");
    }

    #[test]
    fn each_rejection_names_field_and_reason() {
        let cases: Vec<(String, &str, &str)> = vec![
            (without("event_id"), "event_id", "required"),
            (without("timestamp"), "timestamp", "required"),
            (
                with("event_type", "5"),
                "event_type",
                "must be a string, got number 5",
            ),
            (with("entity_id", r#""""#), "entity_id", "non-empty"),
            (
                with("timestamp", r#""2026-02-12 10:30""#),
                "timestamp",
                "not an RFC 3339",
            ),
            (
                with("timestamp", r#""yesterday""#),
                "timestamp",
                "not an RFC 3339",
            ),
            (
                with("version", "0"),
                "version",
                "positive integer, got number 0",
            ),
            (with("version", "-3"), "version", "positive integer"),
            (with("version", "1.5"), "version", "positive integer"),
            (
                with("version", r#""1""#),
                "version",
                "positive integer, got string",
            ),
            (with("data", "[1]"), "data", "must be an object, got array"),
            (with("data", "null"), "data", "must be an object, got null"),
            (with("metadata", r#""x""#), "metadata", "must be an object"),
        ];
        for (text, field, reason) in cases {
            let e = reject(&text);
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert!(e.reason.contains(reason), "{field}: `{e}` lacks `{reason}`");
        }
    }

    #[test]
    fn whole_envelope_rejections() {
        assert!(reject("{not json").reason.starts_with("not valid JSON"));
        assert!(reject("[1,2]").reason.contains("not an event envelope"));
        assert!(reject("{not json").is_bad_json() && !reject("[1]").is_bad_json());
        assert!(
            reject(&format!("{SEED} trailing"))
                .reason
                .contains("trailing")
        );
        let e = reject(r#"{"event_id":"a"}"#);
        assert!(e.reason.contains("event_type, entity_type"), "{e}");
        let dup = SEED.replacen("\"version\": 1,", "\"version\": 1, \"version\": 2,", 1);
        assert_eq!(
            reject(&dup).to_string(),
            "field `version`: appears more than once"
        );
    }

    #[test]
    fn nesting_is_bounded_and_negative_zero_reads_as_in_python() {
        let nested = |n: usize| {
            with(
                "data",
                &format!("{{\"a\": {}1{}}}", "[".repeat(n), "]".repeat(n)),
            )
        };
        // The envelope and `data` are two of the 64 levels.
        assert!(Envelope::decode(nested(62).as_bytes()).is_ok());
        let e = reject(&nested(63));
        assert!(
            e.is_bad_json() && e.reason.contains("nested deeper than 64"),
            "{e}"
        );
        // sonic-rs alone would overflow the stack on this (a 100 KB record).
        let deep = SEED.replacen(
            r#"{"customer_id""#,
            &format!("{{\"a\": {}, \"customer_id\"", "[".repeat(50_000)),
            1,
        );
        let e = reject(&deep);
        assert!(e.is_bad_json() && e.reason.contains("nested deeper"), "{e}");
        let text = with(
            "data",
            r#"{"order_id": -0, "amount": -0.0, "n": -0e3, "s": "-0"}"#,
        );
        let e = Envelope::decode(text.as_bytes()).expect("valid");
        assert_eq!(e.key("order_id").expect("key"), "0");
        assert_eq!(
            json::to_text(e.data()),
            r#"{"amount":-0.0,"n":-0.0,"order_id":0,"s":"-0"}"#
        );
    }

    #[test]
    fn long_string_fields_are_kept_whole() {
        let long = "x".repeat(MAX_ID_BYTES);
        let text = with("event_id", &format!("\"{long}\""));
        let text = text.replace(
            "\"tenant-789\"",
            &format!("\"{}\"", "t".repeat(MAX_ID_BYTES)),
        );
        let e = Envelope::decode(text.as_bytes()).expect("valid");
        assert_eq!(e.event_id(), long);
        assert_eq!(e.tenant_id(), "t".repeat(MAX_ID_BYTES));
        assert_eq!(
            (e.event_type(), e.entity_id()),
            ("OrderPlaced", "order-456")
        );
        let e = reject(&with("entity_id", &format!("\"{long}y\"")));
        assert_eq!(
            e.to_string(),
            "field `entity_id`: is 1025 bytes long, more than the limit of 1024"
        );
    }

    #[test]
    fn key_falls_back_to_entity_id_and_rejects_bad_keys() {
        let text = with("data", r#"{"order_id": "o-1"}"#);
        let e = Envelope::decode(text.as_bytes()).expect("valid");
        assert_eq!(e.key("order_id").expect("key"), "o-1");
        assert_eq!(e.key("customer").expect("key"), "order-456");
        let text = with("data", r#"{"order_id": 42}"#);
        assert_eq!(
            Envelope::decode(text.as_bytes())
                .expect("valid")
                .key("order_id")
                .expect("k"),
            "42"
        );
        let text = with("data", r#"{"order_id": {"a": 1}}"#);
        let err = Envelope::decode(text.as_bytes())
            .expect("valid")
            .key("order_id")
            .expect_err("bad");
        assert_eq!(err.field.as_deref(), Some("data.order_id"));
    }

    #[test]
    fn unknown_fields_are_ignored_and_size_is_bounded() {
        let text = with("schema", r#"{"x": [1, 2]}"#);
        assert!(Envelope::decode(text.as_bytes()).is_ok());
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(
            reject(std::str::from_utf8(&big).expect("ascii"))
                .reason
                .contains("limit")
        );
    }
}

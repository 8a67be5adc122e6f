//! The event envelope (`seed/event-envelope.json`): decoding and validation.
//!
//! Decoding is the hot path of every batch, so an envelope borrows its strings from the
//! record's bytes (see [`crate::json`]). Each rejection names the field and the reason.

use std::borrow::Cow;
use std::fmt;

use crate::json::Json;

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

/// A validated event envelope. Every field the seed shows is required except `metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub entity_type: Cow<'a, str>,
    pub entity_id: Cow<'a, str>,
    pub tenant_id: Cow<'a, str>,
    /// The timestamp as written (RFC 3339).
    pub timestamp: Cow<'a, str>,
    /// The timestamp in microseconds since the Unix epoch, UTC.
    pub timestamp_us: i64,
    /// Schema version of the event, a positive integer.
    pub version: i64,
    /// The event's payload; always a JSON object.
    pub data: Json<'a>,
    /// Optional object of producer metadata.
    pub metadata: Option<Json<'a>>,
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

impl<'a> Envelope<'a> {
    /// Decodes and validates one envelope from a record's bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::whole(format!(
                "envelope is {} bytes, more than the limit of {MAX_ENVELOPE_BYTES} bytes",
                bytes.len()
            )));
        }
        let value = crate::json::parse(bytes).map_err(|e| {
            let (line, column) = line_column(bytes, e.offset);
            EnvelopeError::whole(format!(
                "{NOT_JSON}{} (line {line}, column {column})",
                e.message
            ))
        })?;
        let Json::Object(fields) = value else {
            return Err(EnvelopeError::whole(format!(
                "not an event envelope: expected a JSON object, got {}",
                describe(&value)
            )));
        };
        let mut raw = Raw::default();
        for (key, v) in fields {
            // Unknown fields are ignored so that producers can add fields without breaking
            // consumers.
            if let Some(i) = FIELDS.iter().position(|f| *f == key)
                && raw.fields[i].replace(v).is_some()
                && raw.duplicate.is_none()
            {
                raw.duplicate = Some(FIELDS[i]);
            }
        }
        raw.validate()
    }

    /// The entity key under `key_field`: `data.<key_field>` when present (a string, or an
    /// integer written as decimal), else `entity_id`.
    pub fn key(&self, key_field: &str) -> Result<Cow<'_, str>, EnvelopeError> {
        match self.data.get(key_field) {
            None | Some(Json::Null) => Ok(Cow::Borrowed(&self.entity_id)),
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
    /// then the envelope's own fields, then the fields of `data`.
    pub fn attr(&self, name: &str) -> Option<Attr<'_, 'a>> {
        Some(match name {
            "type" | "event_type" => Attr::Str(&self.event_type),
            "event_id" => Attr::Str(&self.event_id),
            "entity_type" => Attr::Str(&self.entity_type),
            "entity_id" => Attr::Str(&self.entity_id),
            "tenant_id" => Attr::Str(&self.tenant_id),
            "timestamp" => Attr::Str(&self.timestamp),
            "version" => Attr::Int(self.version),
            "data" => Attr::Json(&self.data),
            "metadata" => match &self.metadata {
                Some(m) => Attr::Json(m),
                None => Attr::Json(&Json::Null),
            },
            _ => Attr::Json(self.data.get(name)?),
        })
    }

    /// Detaches the envelope from the record's bytes.
    pub fn into_owned(self) -> Envelope<'static> {
        Envelope {
            event_id: Cow::Owned(self.event_id.into_owned()),
            event_type: Cow::Owned(self.event_type.into_owned()),
            entity_type: Cow::Owned(self.entity_type.into_owned()),
            entity_id: Cow::Owned(self.entity_id.into_owned()),
            tenant_id: Cow::Owned(self.tenant_id.into_owned()),
            timestamp: Cow::Owned(self.timestamp.into_owned()),
            timestamp_us: self.timestamp_us,
            version: self.version,
            data: self.data.into_owned(),
            metadata: self.metadata.map(Json::into_owned),
        }
    }
}

/// An attribute of an event as the fold sees it.
#[derive(Debug, Clone, Copy)]
pub enum Attr<'e, 'a> {
    Str(&'e str),
    Int(i64),
    Json(&'e Json<'a>),
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

fn describe(v: &Json<'_>) -> String {
    let text = v.to_string();
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

/// The envelope's fields as found, before validation.
#[derive(Default)]
struct Raw<'a> {
    fields: [Option<Json<'a>>; 9],
    duplicate: Option<&'static str>,
}

impl<'a> Raw<'a> {
    fn validate(self) -> Result<Envelope<'a>, EnvelopeError> {
        if let Some(field) = self.duplicate {
            return Err(EnvelopeError::field(field, "appears more than once"));
        }
        let [
            event_id,
            event_type,
            entity_type,
            entity_id,
            tenant_id,
            timestamp,
            version,
            data,
            metadata,
        ] = self.fields;
        let missing: Vec<&str> = [
            (&event_id, "event_id"),
            (&event_type, "event_type"),
            (&entity_type, "entity_type"),
            (&entity_id, "entity_id"),
            (&tenant_id, "tenant_id"),
            (&timestamp, "timestamp"),
            (&version, "version"),
            (&data, "data"),
        ]
        .into_iter()
        .filter(|(v, _)| v.is_none())
        .map(|(_, name)| name)
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
        let timestamp = id_string("timestamp", timestamp)?;
        let timestamp_us = parse_rfc3339_us(&timestamp)
            .map_err(|reason| EnvelopeError::field("timestamp", reason))?;
        let version = match version {
            Some(Json::Int(v)) if v >= 1 => v,
            Some(other) => {
                return Err(EnvelopeError::field(
                    "version",
                    format!("must be a positive integer, got {}", describe(&other)),
                ));
            }
            None => unreachable_missing("version")?,
        };
        let data = match data {
            Some(d @ Json::Object(_)) => d,
            Some(other) => {
                return Err(EnvelopeError::field(
                    "data",
                    format!("must be an object, got {}", describe(&other)),
                ));
            }
            None => unreachable_missing("data")?,
        };
        let metadata = match metadata {
            None | Some(Json::Null) => None,
            Some(m @ Json::Object(_)) => Some(m),
            Some(other) => {
                return Err(EnvelopeError::field(
                    "metadata",
                    format!("must be an object when present, got {}", describe(&other)),
                ));
            }
        };
        Ok(Envelope {
            event_id: id_string("event_id", event_id)?,
            event_type: id_string("event_type", event_type)?,
            entity_type: id_string("entity_type", entity_type)?,
            entity_id: id_string("entity_id", entity_id)?,
            tenant_id: id_string("tenant_id", tenant_id)?,
            timestamp,
            timestamp_us,
            version,
            data,
            metadata,
        })
    }
}

/// Missing fields were reported above; reaching this is a bug, reported as an error rather
/// than a panic because it sits on the input path.
fn unreachable_missing<T>(field: &str) -> Result<T, EnvelopeError> {
    Err(EnvelopeError::field(
        field,
        "is required but missing (internal: missed by the check)",
    ))
}

fn id_string<'a>(field: &str, v: Option<Json<'a>>) -> Result<Cow<'a, str>, EnvelopeError> {
    match v {
        Some(Json::Str(s)) if s.is_empty() => Err(EnvelopeError::field(
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
            format!("must be a string, got {}", describe(&other)),
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
        assert_eq!(e.event_type, "OrderPlaced");
        assert_eq!(e.version, 1);
        assert_eq!(e.timestamp_us, 1_770_892_200_000_000);
        assert_eq!(e.key("order_id").expect("key"), "order-456");
        assert!(matches!(e.attr("amount"), Some(Attr::Json(Json::Float(f))) if *f == 99.99));
        assert!(matches!(e.attr("type"), Some(Attr::Str("OrderPlaced"))));
        assert!(e.attr("nope").is_none());
        assert!(
            matches!(e.event_id, Cow::Borrowed(_)),
            "strings borrow from the record"
        );
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

//! The replay request body, as the seed has it:
//!
//! ```json
//! {"from_offset": "earliest", "to_timestamp": "2026-02-10T00:00:00Z",
//!  "target_consumer_group": "order-projection-replay-v1", "parallel_consumers": 4}
//! ```
//!
//! `from_offset`: `"earliest"`, `"latest_checkpoint"`, an offset (every partition from it),
//! a map `{"<partition>": offset}` naming every partition, or an RFC 3339 time.
//! `to_timestamp` (optional): the last record time included; default: the end of each
//! partition at planning time. `target` (optional, beyond the seed): the target table's
//! name in the live table's namespace. Unknown fields are refused (a typo would otherwise
//! replay something else than asked). Every problem is a [`RequestError`] naming its field;
//! what needs the broker or the pipeline (partition count, live names) is checked by the
//! plan, with the same fields.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde_json::{Map, Value};

use super::problem::RequestError;

/// Bytes a request body may have.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;
/// Bytes of `target_consumer_group` (Kafka's own limit for names is 249).
pub const MAX_GROUP_NAME_BYTES: usize = 249;
/// Bytes of `target` (a table name).
pub const MAX_TABLE_NAME_BYTES: usize = 128;
/// Entries of a per-partition `from_offset` map.
pub const MAX_PARTITIONS: usize = 4096;
/// Highest `parallel_consumers` (also at most the topic's partition count).
pub const MAX_PARALLEL_CONSUMERS: u32 = 256;

/// Where the replay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromOffset {
    /// Each partition's log start (its low watermark).
    Earliest,
    /// The live table's newest checkpoint: its rows as the start state, its offsets.
    LatestCheckpoint,
    /// The same offset in every partition.
    Offset(i64),
    /// One offset per partition (every partition of the topic).
    Partitions(BTreeMap<i32, i64>),
    /// The first record at or after this time (milliseconds since the Unix epoch).
    TimeMs(i64),
}

/// A validated replay request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub from_offset: FromOffset,
    /// The last record time included (milliseconds since the Unix epoch).
    pub to_timestamp_ms: Option<i64>,
    pub target_consumer_group: String,
    pub parallel_consumers: u32,
    /// Target table name (no namespace) or `None` for `<table>__replay_<id>`.
    pub target: Option<String>,
}

const FIELDS: [&str; 5] = [
    "from_offset",
    "to_timestamp",
    "target_consumer_group",
    "parallel_consumers",
    "target",
];

fn err(field: &str, message: impl Into<String>) -> RequestError {
    RequestError::new(field, message)
}

/// An RFC 3339 time in milliseconds.
pub fn parse_time(field: &str, s: &str) -> Result<i64, RequestError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            err(
                field,
                format!("`{s:.64}` is not an RFC 3339 time like 2026-02-10T00:00:00Z ({e})"),
            )
        })
}

fn offset_value(field: &str, what: &str, v: &Value) -> Result<i64, RequestError> {
    match v.as_i64() {
        Some(o) if o >= 0 => Ok(o),
        _ => Err(err(
            field,
            format!("{what} must be an offset (an integer >= 0), got {v:.64}"),
        )),
    }
}

fn from_map(m: &Map<String, Value>) -> Result<FromOffset, RequestError> {
    const F: &str = "from_offset";
    if m.is_empty() {
        return Err(err(F, "the per-partition map is empty"));
    }
    if m.len() > MAX_PARTITIONS {
        return Err(err(
            F,
            format!("{} partitions exceed the limit {MAX_PARTITIONS}", m.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let p = k
            .parse::<i32>()
            .ok()
            .filter(|p| *p >= 0 && p.to_string() == *k)
            .ok_or_else(|| {
                err(
                    F,
                    format!("key `{k:.32}` is not a partition number (0, 1, ...)"),
                )
            })?;
        out.insert(p, offset_value(F, &format!("partition {p}'s value"), v)?);
    }
    Ok(FromOffset::Partitions(out))
}

fn from_offset(v: &Value) -> Result<FromOffset, RequestError> {
    const F: &str = "from_offset";
    match v {
        Value::String(s) if s == "earliest" => Ok(FromOffset::Earliest),
        Value::String(s) if s == "latest_checkpoint" => Ok(FromOffset::LatestCheckpoint),
        Value::String(s) => parse_time(F, s).map(FromOffset::TimeMs).map_err(|_| {
            err(
                F,
                format!(
                    "`{s:.64}` is none of \"earliest\", \"latest_checkpoint\", an RFC 3339 time"
                ),
            )
        }),
        Value::Number(_) => offset_value(F, "from_offset", v).map(FromOffset::Offset),
        Value::Object(m) => from_map(m),
        other => Err(err(
            F,
            format!(
                "want \"earliest\", \"latest_checkpoint\", an offset, a map \
                 {{\"<partition>\": offset}} or an RFC 3339 time; got {other:.64}"
            ),
        )),
    }
}

fn name_chars_ok(s: &str, extra: &[char]) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
}

fn consumer_group(v: Option<&Value>) -> Result<String, RequestError> {
    const F: &str = "target_consumer_group";
    let s = match v {
        None | Some(Value::Null) => return Err(err(F, "required")),
        Some(Value::String(s)) => s,
        Some(other) => return Err(err(F, format!("must be a string, got {other:.64}"))),
    };
    if s.is_empty() || s.len() > MAX_GROUP_NAME_BYTES {
        return Err(err(
            F,
            format!("must be 1 to {MAX_GROUP_NAME_BYTES} bytes long"),
        ));
    }
    if !name_chars_ok(s, &['.', '-']) {
        return Err(err(
            F,
            format!("`{s:.64}` may hold only letters, digits, `.`, `_` and `-`"),
        ));
    }
    Ok(s.clone())
}

fn parallel(v: Option<&Value>) -> Result<u32, RequestError> {
    const F: &str = "parallel_consumers";
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Err(err(F, "required"));
    };
    match v.as_u64() {
        Some(n) if n >= 1 && n <= u64::from(MAX_PARALLEL_CONSUMERS) => Ok(n as u32),
        _ => Err(err(
            F,
            format!(
                "must be an integer from 1 to {MAX_PARALLEL_CONSUMERS} (and at most the \
                 topic's partitions), got {v:.64}"
            ),
        )),
    }
}

fn target(v: Option<&Value>) -> Result<Option<String>, RequestError> {
    const F: &str = "target";
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(other) => return Err(err(F, format!("must be a string, got {other:.64}"))),
    };
    let lower = s.chars().all(|c| !c.is_ascii_uppercase());
    if s.is_empty() || s.len() > MAX_TABLE_NAME_BYTES || !name_chars_ok(s, &[]) || !lower {
        return Err(err(
            F,
            format!(
                "`{s:.64}` must be a table name of 1 to {MAX_TABLE_NAME_BYTES} lowercase \
                 letters, digits and `_` (it goes in the live table's namespace)"
            ),
        ));
    }
    Ok(Some(s.clone()))
}

fn to_timestamp(v: Option<&Value>) -> Result<Option<i64>, RequestError> {
    const F: &str = "to_timestamp";
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(F, s).map(Some),
        Some(other) => Err(err(
            F,
            format!("must be an RFC 3339 time string, got {other:.64}"),
        )),
    }
}

impl ReplayRequest {
    /// Parses and validates a request body; the first problem found, naming its field.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        if body.len() > MAX_REQUEST_BODY_BYTES {
            return Err(err(
                "body",
                format!(
                    "{} bytes exceed the limit of {MAX_REQUEST_BODY_BYTES}",
                    body.len()
                ),
            ));
        }
        let v: Value =
            serde_json::from_slice(body).map_err(|e| err("body", format!("not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(err("body", "must be a JSON object"));
        };
        Self::from_object(&m)
    }

    /// Validates a body already parsed into a JSON object.
    pub fn from_object(m: &Map<String, Value>) -> Result<Self, RequestError> {
        if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(RequestError::new(
                k.chars().take(64).collect::<String>(),
                format!("unknown field (known: {})", FIELDS.join(", ")),
            ));
        }
        let from = match m.get("from_offset") {
            None | Some(Value::Null) => return Err(err("from_offset", "required")),
            Some(v) => from_offset(v)?,
        };
        let req = Self {
            from_offset: from,
            to_timestamp_ms: to_timestamp(m.get("to_timestamp"))?,
            target_consumer_group: consumer_group(m.get("target_consumer_group"))?,
            parallel_consumers: parallel(m.get("parallel_consumers"))?,
            target: target(m.get("target"))?,
        };
        if let (FromOffset::TimeMs(from), Some(to)) = (&req.from_offset, req.to_timestamp_ms)
            && *from > to
        {
            return Err(err(
                "to_timestamp",
                "is before from_offset's time: the range is empty",
            ));
        }
        Ok(req)
    }

    /// The request as the JSON body it came from (normalized), for the stored plan.
    pub fn to_json(&self) -> Value {
        let from = match &self.from_offset {
            FromOffset::Earliest => Value::from("earliest"),
            FromOffset::LatestCheckpoint => Value::from("latest_checkpoint"),
            FromOffset::Offset(o) => Value::from(*o),
            FromOffset::Partitions(m) => Value::Object(
                m.iter()
                    .map(|(p, o)| (p.to_string(), Value::from(*o)))
                    .collect(),
            ),
            FromOffset::TimeMs(t) => Value::from(crate::table::as_of::fmt_ms(*t)),
        };
        let mut m = Map::new();
        m.insert("from_offset".into(), from);
        if let Some(t) = self.to_timestamp_ms {
            m.insert(
                "to_timestamp".into(),
                Value::from(crate::table::as_of::fmt_ms(t)),
            );
        }
        m.insert(
            "target_consumer_group".into(),
            Value::from(self.target_consumer_group.clone()),
        );
        m.insert(
            "parallel_consumers".into(),
            Value::from(self.parallel_consumers),
        );
        if let Some(t) = &self.target {
            m.insert("target".into(), Value::from(t.clone()));
        }
        Value::Object(m)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The seed's body (`seed/replay-request.json`), copied.
    const SEED: &str = r#"{
  "from_offset": "earliest",
  "to_timestamp": "2026-02-10T00:00:00Z",
  "target_consumer_group": "order-projection-replay-v1",
  "parallel_consumers": 4
}"#;

    #[test]
    fn the_seed_body_parses() {
        let r = ReplayRequest::parse(SEED.as_bytes()).unwrap();
        assert_eq!(r.from_offset, FromOffset::Earliest);
        assert_eq!(r.to_timestamp_ms, Some(1_770_681_600_000));
        assert_eq!(r.target_consumer_group, "order-projection-replay-v1");
        assert_eq!(r.parallel_consumers, 4);
        assert_eq!(r.target, None);
        let again = serde_json::to_vec(&r.to_json()).unwrap();
        assert_eq!(ReplayRequest::parse(&again).unwrap(), r);
    }

    #[test]
    fn from_offset_forms() {
        let parse = |from: &str| {
            let body = format!(
                r#"{{"from_offset": {from}, "target_consumer_group": "g", "parallel_consumers": 1}}"#
            );
            ReplayRequest::parse(body.as_bytes()).map(|r| r.from_offset)
        };
        assert_eq!(
            parse(r#""latest_checkpoint""#).unwrap(),
            FromOffset::LatestCheckpoint
        );
        assert_eq!(parse("12").unwrap(), FromOffset::Offset(12));
        assert_eq!(
            parse(r#"{"0": 12, "1": 0}"#).unwrap(),
            FromOffset::Partitions(BTreeMap::from([(0, 12), (1, 0)]))
        );
        assert_eq!(
            parse(r#""2026-02-10T01:00:00+01:00""#).unwrap(),
            FromOffset::TimeMs(1_770_681_600_000)
        );
    }

    /// Every bad body answers with the field it is about.
    #[test]
    fn every_problem_names_its_field() {
        let ok = r#""target_consumer_group": "g", "parallel_consumers": 2"#;
        let cases: Vec<(String, &str)> = vec![
            ("[]".into(), "body"),
            ("{".into(), "body"),
            (format!(r#"{{{ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": null, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": "soon", {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": -1, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": 1.5, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": true, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": {{}}, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": {{"x": 1}}, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": {{"01": 1}}, {ok}}}"#), "from_offset"),
            (format!(r#"{{"from_offset": {{"0": -4}}, {ok}}}"#), "from_offset"),
            (
                format!(r#"{{"from_offset": "earliest", "to_timestamp": "tomorrow", {ok}}}"#),
                "to_timestamp",
            ),
            (
                format!(r#"{{"from_offset": "earliest", "to_timestamp": 5, {ok}}}"#),
                "to_timestamp",
            ),
            (
                format!(
                    r#"{{"from_offset": "2026-02-10T00:00:00Z", "to_timestamp": "2026-02-09T00:00:00Z", {ok}}}"#
                ),
                "to_timestamp",
            ),
            (
                r#"{"from_offset": "earliest", "parallel_consumers": 1}"#.into(),
                "target_consumer_group",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": "", "parallel_consumers": 1}"#.into(),
                "target_consumer_group",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": "a b", "parallel_consumers": 1}"#.into(),
                "target_consumer_group",
            ),
            (
                format!(
                    r#"{{"from_offset": "earliest", "target_consumer_group": "{}", "parallel_consumers": 1}}"#,
                    "g".repeat(MAX_GROUP_NAME_BYTES + 1)
                ),
                "target_consumer_group",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": 7, "parallel_consumers": 1}"#.into(),
                "target_consumer_group",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": "g"}"#.into(),
                "parallel_consumers",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 0}"#.into(),
                "parallel_consumers",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": "4"}"#.into(),
                "parallel_consumers",
            ),
            (
                r#"{"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 9999}"#.into(),
                "parallel_consumers",
            ),
            (
                format!(r#"{{"from_offset": "earliest", "target": "../x", {ok}}}"#),
                "target",
            ),
            (
                format!(r#"{{"from_offset": "earliest", "target": "Orders", {ok}}}"#),
                "target",
            ),
            (
                format!(r#"{{"from_offset": "earliest", "targte": "x", {ok}}}"#),
                "targte",
            ),
        ];
        for (body, field) in cases {
            let e = ReplayRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.field, field, "body {body}: {e}");
            assert!(!e.message.is_empty());
        }
        let big = vec![b' '; MAX_REQUEST_BODY_BYTES + 1];
        assert_eq!(ReplayRequest::parse(&big).unwrap_err().field, "body");
    }
}

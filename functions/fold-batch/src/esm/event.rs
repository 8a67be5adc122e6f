//! The Kafka event source mapping event as the Lambda runtime hands it over, deserialized
//! straight into what the batch needs: each record's key and value base64-decoded while the
//! event is parsed (no copy of their text kept), its time an exact integer of milliseconds.
//!
//! Why not `aws_lambda_events`' `KafkaEvent` (1.2): it keeps key and value as base64 text
//! (7 MB for 10,000 records, copied once more to decode), reads the time through an untagged
//! enum and `f64` (1 ms early for some times, and an `assert!` that panics on a fraction),
//! and keeps headers as one map per header. Headers are not read by refold; serde skips them.
//! `tests/esm_payload.rs` holds this type to `aws_lambda_events`' reading of the same payload.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::Simd;
use base64::engine::general_purpose::{PAD, STANDARD};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The event: MSK (`aws:kafka`) and self-managed (`SelfManagedKafka`) shapes alike.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EsmEvent {
    #[serde(default)]
    pub event_source: Option<String>,
    /// `"<topic>-<partition>"` -> that partition's records, in no particular order.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub records: HashMap<String, Vec<EsmRecord>>,
}

/// One record of the event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EsmRecord {
    /// Missing in some test events: the `records` map key names it then.
    #[serde(default)]
    pub topic: Option<String>,
    pub partition: i64,
    pub offset: i64,
    /// The record's Kafka timestamp, ms since the Unix epoch.
    #[serde(rename = "timestamp", deserialize_with = "millis")]
    pub timestamp_ms: i64,
    #[serde(default)]
    pub key: Option<Base64>,
    /// `None` for a tombstone.
    #[serde(default)]
    pub value: Option<Base64>,
}

/// A base64 field: its bytes, or its text when it is not base64 (kept for the dead letter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base64 {
    Bytes(Vec<u8>),
    NotBase64(String),
}

impl Base64 {
    /// The field as the event spelled it.
    pub fn text(&self) -> String {
        match self {
            Base64::Bytes(b) => STANDARD.encode(b),
            Base64::NotBase64(t) => t.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Base64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Base64, E> {
                Ok(match simd_standard().decode(s) {
                    Ok(bytes) => Base64::Bytes(bytes),
                    Err(_) => Base64::NotBase64(s.to_owned()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// The standard padded alphabet, as `STANDARD` reads it, decoded with AVX2 or NEON where the
/// CPU has them (detected once): the values are most of an event's bytes, and the scalar
/// engine's decode was a third of the event's parse (BENCHMARKS.md).
fn simd_standard() -> &'static Simd {
    static ENGINE: LazyLock<Simd> = LazyLock::new(|| Simd::standard(PAD));
    &ENGINE
}

/// An integer of milliseconds; a float or a numeric string too (as some test events write
/// it), its fraction dropped toward the past.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a time in milliseconds since the Unix epoch")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} out of range")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            // i64::MAX as f64 rounds up to 2^63: keep below it.
            if v.is_finite() && v.abs() < 9.2e18 {
                Ok(v.floor() as i64)
            } else {
                Err(E::custom(format!("timestamp {v} out of range")))
            }
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
            match s.parse::<i64>() {
                Ok(v) => Ok(v),
                Err(_) => match s.parse::<f64>() {
                    Ok(f) => self.visit_f64(f),
                    Err(_) => Err(E::custom(format!("timestamp `{s}` is not a number"))),
                },
            }
        }
    }
    d.deserialize_any(V)
}

/// `null` reads as an empty map (ESM test events sometimes write `"records": null`).
fn null_as_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, Vec<EsmRecord>>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(timestamp: serde_json::Value, value: serde_json::Value) -> EsmRecord {
        serde_json::from_value(json!({"topic": "t", "partition": 1, "offset": 2,
            "timestamp": timestamp, "timestampType": "CREATE_TIME", "key": null,
            "value": value, "headers": [{"h": [104, -1]}]}))
        .unwrap()
    }

    #[test]
    fn times_are_exact_milliseconds_in_any_spelling() {
        // Through f64 seconds (aws_lambda_events 1.2), 1770000000010 reads as ...009.
        for t in [json!(1_770_000_000_010i64), json!("1770000000010")] {
            assert_eq!(record(t, json!(null)).timestamp_ms, 1_770_000_000_010);
        }
        assert_eq!(record(json!(1.5), json!(null)).timestamp_ms, 1);
        assert_eq!(record(json!(-1.5), json!(null)).timestamp_ms, -2);
        for bad in [json!("soon"), json!(1e300), json!(u64::MAX), json!([1])] {
            let r: Result<EsmRecord, _> = serde_json::from_value(json!({"partition": 1,
                "offset": 2, "timestamp": bad, "key": null, "value": null}));
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_fields_decode_or_keep_their_text() {
        let r = record(json!(0), json!("eyJhIjoxfQ=="));
        assert_eq!(r.value, Some(Base64::Bytes(b"{\"a\":1}".to_vec())));
        assert_eq!(r.value.unwrap().text(), "eyJhIjoxfQ==");
        let r = record(json!(0), json!("not*base64!"));
        assert_eq!(r.value, Some(Base64::NotBase64("not*base64!".into())));
        assert_eq!(r.key, None);
        let wrong: Result<EsmRecord, _> = serde_json::from_value(json!({"partition": 1,
            "offset": 2, "timestamp": 0, "value": 7}));
        assert!(wrong.unwrap_err().to_string().contains("base64"));
    }

    #[test]
    fn null_or_missing_records_are_no_records() {
        for v in [
            json!({"eventSource": "aws:kafka", "records": null}),
            json!({}),
        ] {
            let e: EsmEvent = serde_json::from_value(v).unwrap();
            assert!(e.records.is_empty());
        }
    }
}

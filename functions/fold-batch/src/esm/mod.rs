//! The Kafka event source mapping (ESM) event, MSK (`aws:kafka`) and self-managed
//! (`SelfManagedKafka`) shapes alike, turned into refold's [`SourceRecord`]s; and the
//! partial batch response for Kafka.
//!
//! The event's `records` is a map keyed `"<topic>-<partition>"` in no particular order; the
//! records come out sorted by (topic, partition, offset). Key and value are base64 text: a
//! record whose text does not decode becomes a [`DeadLetter`] of kind `BadBase64` (its raw
//! bytes are the undecoded text), never a record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use refold::dead_letter::{DeadLetter, DeadLetterKind};
use refold::error::{Error, ErrorKind, Result};
use refold::record::SourceRecord;

mod event;

pub use event::{Base64, EsmEvent, EsmRecord};

/// A decoded ESM batch: the records to fold, in (topic, partition, offset) order, and the
/// records that could not even be decoded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EsmBatch {
    pub records: Vec<SourceRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// `aws:kafka` (MSK) or `SelfManagedKafka`, as the event said.
    pub event_source: Option<String>,
    /// Per (topic, partition): the key of the event's `records` map (`"topic-partition"`),
    /// what the partial batch response names.
    pub partition_keys: BTreeMap<(String, i32), String>,
}

impl EsmBatch {
    /// How many records the event held (decoded or not).
    pub fn received(&self) -> usize {
        self.records.len() + self.dead_letters.len()
    }

    /// The `"topic-partition"` key of a partition of this batch.
    pub fn partition_key(&self, topic: &str, partition: i32) -> String {
        self.partition_keys
            .get(&(topic.to_owned(), partition))
            .cloned()
            .unwrap_or_else(|| format!("{topic}-{partition}"))
    }

    /// The topic of a partition of this batch (a batch holds one topic in practice).
    pub fn topic_of(&self, partition: i32) -> Option<&str> {
        self.partition_keys
            .keys()
            .find(|(_, p)| *p == partition)
            .map(|(t, _)| t.as_str())
    }
}

/// An ESM event from its JSON (as the Lambda runtime would deserialize it).
pub fn parse_event(json: serde_json::Value) -> Result<EsmEvent> {
    serde_json::from_value(json).map_err(|e| {
        Error::new(
            ErrorKind::InvalidInput,
            "not a Kafka event source mapping event",
        )
        .with_source(e)
    })
}

/// Decodes an ESM event, taking its records' bytes. `pipeline` names the pipeline in dead
/// letters.
pub fn decode(event: EsmEvent, pipeline: &str) -> Result<EsmBatch> {
    let mut batch = EsmBatch {
        event_source: event.event_source,
        ..EsmBatch::default()
    };
    for (map_key, records) in event.records {
        // A map key's records share one (topic, partition): look it up once, not per record.
        let mut known: Option<(String, i32)> = None;
        for mut r in records {
            // Moved, not cloned: one allocation per record fewer.
            let topic = match r.topic.take() {
                Some(t) if !t.is_empty() => t,
                _ => topic_from_map_key(&map_key, r.partition).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("ESM record without topic under key `{map_key}`"),
                    )
                })?,
            };
            let partition = i32::try_from(r.partition).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("ESM partition {} out of range", r.partition),
                )
            })?;
            if known
                .as_ref()
                .is_none_or(|(t, p)| *p != partition || *t != topic)
            {
                batch
                    .partition_keys
                    .entry((topic.clone(), partition))
                    .or_insert_with(|| map_key.clone());
                known = Some((topic.clone(), partition));
            }
            match record(r, topic, partition, pipeline) {
                Ok(rec) => batch.records.push(rec),
                Err(dead) => batch.dead_letters.push(*dead),
            }
        }
    }
    batch
        .records
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    batch
        .dead_letters
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    Ok(batch)
}

/// `"my.topic-3"` -> `"my.topic"` when the suffix is the record's partition.
fn topic_from_map_key(key: &str, partition: i64) -> Option<String> {
    let (topic, p) = key.rsplit_once('-')?;
    (p.parse::<i64>().ok()? == partition && !topic.is_empty()).then(|| topic.to_owned())
}

/// The record, or its dead letter when its key or value is not base64 (the letter keeps
/// the value as the event spelled it, and the key's bytes when they decode).
fn record(
    r: EsmRecord,
    topic: String,
    partition: i32,
    pipeline: &str,
) -> std::result::Result<SourceRecord, Box<DeadLetter>> {
    let bad = match (&r.key, &r.value) {
        (Some(Base64::NotBase64(_)), _) => Some("key"),
        (_, Some(Base64::NotBase64(_))) => Some("value"),
        _ => None,
    };
    if let Some(field) = bad {
        return Err(Box::new(DeadLetter {
            topic,
            partition,
            offset: r.offset,
            timestamp_ms: Some(r.timestamp_ms),
            key: match r.key {
                Some(Base64::Bytes(k)) => Some(k),
                _ => None,
            },
            raw: r.value.map(|v| v.text()).unwrap_or_default().into_bytes(),
            reason: format!("{field} is not valid base64"),
            kind: DeadLetterKind::BadBase64,
            pipeline: pipeline.to_owned(),
        }));
    }
    let bytes = |b: Option<Base64>| match b {
        Some(Base64::Bytes(b)) => Some(b),
        _ => None,
    };
    Ok(SourceRecord {
        topic,
        partition,
        offset: r.offset,
        timestamp_ms: Some(r.timestamp_ms),
        key: bytes(r.key),
        // A tombstone (no value) is not an envelope: the core dead-letters it as bad JSON.
        value: bytes(r.value).unwrap_or_default(),
    })
}

/// The partial batch response for a Kafka event source mapping with
/// `FunctionResponseTypes: ["ReportBatchItemFailures"]`:
/// `{"batchItemFailures":[{"itemIdentifier":{"partition":"<topic>-<partition>","offset":N}}]}`.
/// Unlike SQS/Kinesis, Kafka's `itemIdentifier` is an object: the `records` map key of the
/// partition and the offset to resume that partition from (AWS Lambda developer guide,
/// "Configuring error handling controls for Kafka event sources"; the same shape as
/// Powertools for AWS Lambda (Python)'s `KafkaItemIdentifier`). An empty list means the whole
/// batch succeeded.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchResponse {
    pub batch_item_failures: Vec<KafkaBatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchItemFailure {
    pub item_identifier: KafkaItemIdentifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaItemIdentifier {
    /// The `"topic-partition"` key of the event's `records` map.
    pub partition: String,
    /// The offset of the first record the source must deliver again.
    pub offset: i64,
}

impl KafkaBatchResponse {
    /// The whole batch succeeded.
    pub fn success() -> Self {
        Self::default()
    }

    /// One failure per partition: resume `partition` at `offset` (`failed_at` as the core's
    /// fold reports it under the `fail` policy).
    pub fn from_failed_at(batch: &EsmBatch, failed_at: &BTreeMap<i32, i64>) -> Self {
        let batch_item_failures = failed_at
            .iter()
            .map(|(p, offset)| {
                let topic = batch.topic_of(*p).unwrap_or_default().to_owned();
                KafkaBatchItemFailure {
                    item_identifier: KafkaItemIdentifier {
                        partition: batch.partition_key(&topic, *p),
                        offset: *offset,
                    },
                }
            })
            .collect();
        Self {
            batch_item_failures,
        }
    }

    pub fn is_success(&self) -> bool {
        self.batch_item_failures.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    fn b64(s: &[u8]) -> String {
        STANDARD.encode(s)
    }

    fn rec(
        topic: &str,
        p: i64,
        o: i64,
        key: Option<String>,
        value: Option<String>,
    ) -> serde_json::Value {
        json!({"topic": topic, "partition": p, "offset": o, "timestamp": 1_770_000_000_000i64 + o,
               "timestampType": "CREATE_TIME", "key": key, "value": value,
               "headers": [{"h": [104, -1]}]})
    }

    fn event(source: &str) -> EsmEvent {
        let t = "domain.orders.events";
        let v = json!({
            "eventSource": source,
            "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/demo/abc",
            "bootstrapServers": "b-1:9092",
            "records": {
                "domain.orders.events-2": [
                    rec(t, 2, 11, Some(b64(b"k2")), Some(b64(b"{\"b\":2}"))),
                    rec(t, 2, 10, Some(b64(b"k2")), Some(b64(b"{\"a\":1}"))),
                ],
                "domain.orders.events-0": [
                    rec(t, 0, 5, None, Some(b64(b"{}"))),
                    rec(t, 0, 6, Some(b64(b"k0")), Some("not*base64!".into())),
                    rec(t, 0, 7, Some("%%%".into()), Some(b64(b"{}"))),
                ],
                "domain.orders.events-1": [rec(t, 1, 0, Some(b64(b"k1")), None)]
            }
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn msk_and_self_managed_decode_sorted_with_bad_base64_set_aside() {
        for source in ["aws:kafka", "SelfManagedKafka"] {
            let b = decode(event(source), "p").unwrap();
            assert_eq!(b.event_source.as_deref(), Some(source));
            let order: Vec<(i32, i64)> =
                b.records.iter().map(|r| (r.partition, r.offset)).collect();
            assert_eq!(order, vec![(0, 5), (1, 0), (2, 10), (2, 11)]);
            assert_eq!(b.received(), 6);
            assert_eq!(b.records[2].value, b"{\"a\":1}");
            assert_eq!(b.records[2].key.as_deref(), Some(&b"k2"[..]));
            assert_eq!(b.records[2].timestamp_ms, Some(1_770_000_000_010));
            assert_eq!(b.records[0].key, None);
            assert!(
                b.records[1].value.is_empty(),
                "a tombstone has an empty value"
            );
            let dl: Vec<_> = b
                .dead_letters
                .iter()
                .map(|d| (d.partition, d.offset, d.kind))
                .collect();
            assert_eq!(
                dl,
                vec![
                    (0, 6, DeadLetterKind::BadBase64),
                    (0, 7, DeadLetterKind::BadBase64)
                ]
            );
            assert_eq!(b.dead_letters[0].raw, b"not*base64!");
            assert_eq!(b.dead_letters[0].key.as_deref(), Some(&b"k0"[..]));
            assert!(b.dead_letters[0].reason.contains("value"));
            assert!(b.dead_letters[1].reason.contains("key"));
            assert_eq!(b.dead_letters[1].raw, b64(b"{}").into_bytes());
            assert_eq!(b.dead_letters[0].pipeline, "p");
        }
    }

    #[test]
    fn topic_comes_from_the_map_key_when_missing() {
        let v = json!({"eventSource": "aws:kafka", "records": {"a-b.c-3": [
            {"partition": 3, "offset": 1, "timestamp": 1, "timestampType": "CREATE_TIME",
             "key": null, "value": b64(b"x"), "headers": []}]}});
        let b = decode(serde_json::from_value(v).unwrap(), "p").unwrap();
        assert_eq!(b.records[0].topic, "a-b.c");
        assert_eq!(b.partition_key("a-b.c", 3), "a-b.c-3");
    }

    #[test]
    fn empty_event_is_an_empty_batch() {
        let b = decode(
            serde_json::from_value(json!({"eventSource": "aws:kafka", "records": {}})).unwrap(),
            "p",
        )
        .unwrap();
        assert_eq!(b.received(), 0);
        let b = decode(
            serde_json::from_value(json!({"eventSource": "aws:kafka"})).unwrap(),
            "p",
        )
        .unwrap();
        assert_eq!(b.received(), 0);
    }

    #[test]
    fn batch_item_failures_name_the_partition_key_and_offset() {
        let b = decode(event("aws:kafka"), "p").unwrap();
        let r = KafkaBatchResponse::from_failed_at(&b, &BTreeMap::from([(0, 6), (2, 11)]));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"batchItemFailures": [
                {"itemIdentifier": {"partition": "domain.orders.events-0", "offset": 6}},
                {"itemIdentifier": {"partition": "domain.orders.events-2", "offset": 11}}
            ]})
        );
        assert_eq!(
            serde_json::to_value(KafkaBatchResponse::success()).unwrap(),
            json!({"batchItemFailures": []})
        );
    }
}

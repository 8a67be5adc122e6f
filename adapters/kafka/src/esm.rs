//! The Lambda Kafka event source mapping (ESM) event, and a topic read into such events.
//!
//! This is refold's one builder of ESM JSON: tests, the demo and the committed payload
//! (`examples/build_esm.rs`) all use [`esm_event`].

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use refold::error::Result;
use refold::record::SourceRecord;

use crate::reader::read_topic;

/// How long [`consume_esm_batches`] may take to read the topic.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The ARN the ESM event names for a local MSK cluster.
const LOCAL_MSK_ARN: &str = "arn:aws:kafka:us-east-1:000000000000:cluster/refold-local/00000000-0000-0000-0000-000000000000-1";

/// Which Kafka event source mapping delivered the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsmSource {
    /// Amazon MSK: `"eventSource": "aws:kafka"`, with `eventSourceArn`.
    Msk,
    /// Self-managed Apache Kafka: `"eventSource": "SelfManagedKafka"`.
    SelfManaged,
}

/// The Lambda Kafka ESM event for `records`: `records` keyed `"topic-partition"`, key and
/// value as standard base64 (null when absent), `timestamp` in ms, `headers: []`.
pub fn esm_event(records: &[SourceRecord], source: EsmSource, bootstrap_servers: &str) -> Value {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records {
        map.entry(format!("{}-{}", r.topic, r.partition))
            .or_default()
            .push(esm_record(r));
    }
    let mut ev = serde_json::Map::new();
    match source {
        EsmSource::Msk => {
            ev.insert("eventSource".into(), json!("aws:kafka"));
            ev.insert("eventSourceArn".into(), json!(LOCAL_MSK_ARN));
        }
        EsmSource::SelfManaged => {
            ev.insert("eventSource".into(), json!("SelfManagedKafka"));
        }
    }
    ev.insert("bootstrapServers".into(), json!(bootstrap_servers));
    ev.insert("records".into(), json!(map));
    Value::Object(ev)
}

/// One record of an ESM event.
pub fn esm_record(r: &SourceRecord) -> Value {
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms.unwrap_or(0),
        "timestampType": "CREATE_TIME",
        "key": r.key.as_ref().map(|k| STANDARD.encode(k)),
        "value": STANDARD.encode(&r.value),
        "headers": []
    })
}

/// Reads the whole topic as [`read_topic`] does (failing as it does when a partition's log
/// no longer starts at offset 0) and cuts what was read, in consumption order, into ESM
/// events of at most `max_records` records (several partitions per event, as the event
/// source mapping delivers them). Blocking.
pub fn consume_esm_batches(
    brokers: &str,
    topic: &str,
    max_records: usize,
    source: EsmSource,
) -> Result<Vec<Value>> {
    let records = read_topic(brokers, topic, READ_TIMEOUT)?;
    Ok(records
        .chunks(max_records.max(1))
        .map(|c| esm_event(c, source, brokers))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn esm_event_shape() {
        let r = |p, o| SourceRecord {
            topic: "t".into(),
            partition: p,
            offset: o,
            timestamp_ms: Some(5),
            key: Some(b"k".to_vec()),
            value: b"{}".to_vec(),
        };
        let ev = esm_event(&[r(1, 3), r(0, 2), r(1, 4)], EsmSource::SelfManaged, "b:1");
        assert_eq!(ev["eventSource"], "SelfManagedKafka");
        assert_eq!(ev["records"]["t-1"].as_array().unwrap().len(), 2);
        assert_eq!(ev["records"]["t-0"][0]["value"], "e30=");
        assert_eq!(ev["records"]["t-0"][0]["key"], "aw==");
        assert_eq!(ev["records"]["t-0"][0]["headers"], json!([]));
        let ev = esm_event(&[r(0, 0)], EsmSource::Msk, "b:1");
        assert_eq!(ev["eventSource"], "aws:kafka");
        assert!(
            ev["eventSourceArn"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:kafka:")
        );
    }
}

//! Builds a real Kafka event source mapping (ESM) payload from a JSONL file of envelopes,
//! with refold-kafka's ESM builder (`esm_event`), the one every Rust caller uses.
//!
//!   cargo run --release --example build_esm -- \
//!       [--events events/orders.jsonl] [--out events/esm/orders-batch.json] \
//!       [--topic domain.orders.events] [--partitions 3] [--key-field order_id] [--self-managed]
//!
//! (paths relative to the working directory; run it from the workspace root).
//!
//! What Lambda delivers for MSK (`"eventSource": "aws:kafka"`) or self-managed Kafka
//! (`"eventSource": "SelfManagedKafka"`): `records` keyed `"<topic>-<partition>"`, each record
//! with topic, partition, offset, timestamp (ms), timestampType, key and value as standard
//! base64, headers. Each non-blank line is one record, in file order; its key is the
//! pipeline's key as refold's core computes it (`data.<key-field>`, else `entity_id`); lines
//! that are not valid envelopes go unkeyed. A keyed record's partition is Kafka's default
//! partitioner's (murmur2); unkeyed ones go to partition 0; offsets count up from 0 per
//! partition; the timestamp is the envelope's, else a fixed base plus the line's index. Each
//! record carries one header (`source: refold-events`). One extra record whose value is not
//! base64 is appended to the last partition (a poison record the handler must dead-letter).
//! The payload must stay under Lambda's 6 MB synchronous payload limit; it fails if not.
//!
//! Use it with: cargo lambda invoke fold-batch --data-file events/esm/orders-batch.json

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use refold::envelope::Envelope;
use refold::record::SourceRecord;
use refold_kafka::{EsmSource, default_partition, esm_event, esm_record, jsonl_lines};
use serde_json::{Value, json};

/// Lambda's synchronous invocation payload limit.
const PAYLOAD_LIMIT_BYTES: usize = 6 * 1024 * 1024;
/// 2026-02-01T00:00:00Z: the time of lines without a valid envelope timestamp, plus their
/// index.
const BASE_TIMESTAMP_MS: i64 = 1_769_904_000_000;
const BOOTSTRAP_SERVERS: &str = "b-1.refold-local.kafka.us-east-1.amazonaws.com:9092";
/// The value of the poison record: not base64.
const NOT_BASE64: &str = "this is *not* base64!";

struct Args {
    events: PathBuf,
    out: PathBuf,
    topic: String,
    partitions: i32,
    key_field: String,
    source: EsmSource,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        events: PathBuf::from("events/orders.jsonl"),
        out: PathBuf::from("events/esm/orders-batch.json"),
        topic: "domain.orders.events".into(),
        partitions: 3,
        key_field: "order_id".into(),
        source: EsmSource::Msk,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--self-managed" {
            a.source = EsmSource::SelfManaged;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--events" => a.events = value.into(),
            "--out" => a.out = value.into(),
            "--topic" => a.topic = value,
            "--key-field" => a.key_field = value,
            "--partitions" => {
                a.partitions = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("--partitions must be a positive integer, got {value}")
                })?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The records of the lines: keyed, partitioned and numbered as a topic would hold them.
fn records(lines: &[&[u8]], a: &Args) -> Vec<SourceRecord> {
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let envelope = Envelope::decode(line).ok();
            let key = envelope
                .as_ref()
                .and_then(|e| e.key(&a.key_field).ok())
                .map(|k| k.into_owned().into_bytes());
            let partition = key
                .as_deref()
                .map_or(0, |k| default_partition(k, a.partitions));
            let offset = next_offset.entry(partition).or_insert(0);
            let record = SourceRecord {
                topic: a.topic.clone(),
                partition,
                offset: *offset,
                timestamp_ms: Some(envelope.map_or(BASE_TIMESTAMP_MS + i as i64, |e| {
                    e.timestamp_us().div_euclid(1000)
                })),
                key,
                value: line.to_vec(),
            };
            *offset += 1;
            record
        })
        .collect()
}

/// The ESM event of the records, each with a `source` header, plus the poison record.
fn payload(records: &[SourceRecord], a: &Args) -> Result<Value, String> {
    let mut event = esm_event(records, a.source, BOOTSTRAP_SERVERS);
    let header = json!([{ "source": b"refold-events".to_vec() }]);
    let by_partition = event["records"]
        .as_object_mut()
        .ok_or("esm_event made no records map")?;
    for r in by_partition
        .values_mut()
        .filter_map(Value::as_array_mut)
        .flatten()
    {
        r["headers"] = header.clone();
    }
    let last = a.partitions - 1;
    let offset = records.iter().filter(|r| r.partition == last).count() as i64;
    let mut poison = esm_record(&SourceRecord {
        topic: a.topic.clone(),
        partition: last,
        offset,
        timestamp_ms: Some(BASE_TIMESTAMP_MS + records.len() as i64),
        key: Some(b"poison".to_vec()),
        value: Vec::new(),
    });
    poison["value"] = json!(NOT_BASE64);
    let list = by_partition
        .entry(format!("{}-{last}", a.topic))
        .or_insert_with(|| json!([]));
    list.as_array_mut()
        .ok_or("a partition's records are not a list")?
        .push(poison);
    Ok(event)
}

fn run() -> Result<String, String> {
    let a = parse_args()?;
    let text =
        std::fs::read(&a.events).map_err(|e| format!("reading {}: {e}", a.events.display()))?;
    let lines = jsonl_lines(&text);
    let records = records(&lines, &a);
    let event = payload(&records, &a)?;
    let mut body =
        serde_json::to_vec(&event).map_err(|e| format!("serializing the payload: {e}"))?;
    if body.len() >= PAYLOAD_LIMIT_BYTES {
        return Err(format!(
            "the payload is {} bytes, over Lambda's limit of {PAYLOAD_LIMIT_BYTES} bytes; use fewer events",
            body.len()
        ));
    }
    body.push(b'\n');
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let tmp = a.out.with_extension("json.tmp");
    std::fs::write(&tmp, &body).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out)
        .map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), a.out.display()))?;
    let counts: BTreeMap<&str, usize> = event["records"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_array().map_or(0, Vec::len)))
                .collect()
        })
        .unwrap_or_default();
    Ok(format!(
        "wrote {}: {} bytes, {} records ({} lines + 1 bad-base64), partitions {counts:?}",
        a.out.display(),
        body.len(),
        counts.values().sum::<usize>(),
        lines.len()
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("build_esm: {e}");
            ExitCode::FAILURE
        }
    }
}

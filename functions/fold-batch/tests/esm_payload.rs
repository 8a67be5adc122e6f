//! The committed ESM payload (events/esm/orders-batch.json, from `cargo run --release --example build_esm`) is a
//! real Kafka ESM event: fold-batch's reading of it agrees with aws_lambda_events' `KafkaEvent`
//! and with the JSON itself, and it decodes into every line of events/orders.jsonl plus one bad-base64 dead letter; folded in memory, its
//! records give the CPython oracle's rows (`tests/py/seed_fold.py` over the same lines).

#![allow(clippy::unwrap_used)]
mod common;

use aws_lambda_events::event::kafka::KafkaEvent;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fold_batch::esm::{Base64, EsmEvent};
use refold::dead_letter::DeadLetterKind;

/// Oracles independent of fold-batch's own event type: aws_lambda_events' `KafkaEvent` for
/// everything but the time (it reads it through `f64`, up to 1 ms early), the JSON's own
/// integer for the time.
#[test]
fn the_event_reads_as_aws_lambda_events_and_the_json_say() {
    let text = std::fs::read(common::esm_payload_path()).unwrap();
    let ours: EsmEvent = serde_json::from_slice(&text).unwrap();
    let theirs: KafkaEvent = serde_json::from_slice(&text).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(ours.event_source, theirs.event_source);
    assert_eq!(ours.records.len(), theirs.records.len());
    let bytes = |b: &Option<Base64>| match b {
        Some(Base64::Bytes(b)) => Some(b.clone()),
        Some(Base64::NotBase64(t)) => Some(t.clone().into_bytes()),
        None => None,
    };
    let mut n = 0;
    for (key, records) in &ours.records {
        let aws = &theirs.records[key];
        assert_eq!(records.len(), aws.len(), "{key}");
        for (i, (r, a)) in records.iter().zip(aws).enumerate() {
            assert_eq!(
                (&r.topic, r.partition, r.offset),
                (&a.topic, a.partition, a.offset)
            );
            let decoded = |t: &Option<String>| {
                t.as_deref()
                    .map(|t| STANDARD.decode(t).unwrap_or_else(|_| t.as_bytes().to_vec()))
            };
            assert_eq!(bytes(&r.key), decoded(&a.key), "{key}[{i}] key");
            assert_eq!(bytes(&r.value), decoded(&a.value), "{key}[{i}] value");
            let written = json["records"][key][i]["timestamp"].as_i64().unwrap();
            assert_eq!(r.timestamp_ms, written, "{key}[{i}] time");
            assert!((0..=1).contains(&(written - a.timestamp.timestamp_millis())));
            n += 1;
        }
    }
    assert!(n > 1000, "{n} records compared");
}

#[test]
fn payload_decodes_to_every_line_plus_one_bad_base64() {
    let ev = common::esm_payload();
    assert_eq!(ev.event_source.as_deref(), Some("aws:kafka"));
    assert!(ev.records.len() >= 3, "several partitions");
    let b = fold_batch::esm::decode(ev, "order-events-pipeline").unwrap();
    let jsonl = common::orders_jsonl();
    let mut lines: Vec<Vec<u8>> = jsonl
        .split(|c| *c == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect();
    let mut got: Vec<Vec<u8>> = b.records.iter().map(|r| r.value.clone()).collect();
    assert_eq!(got.len(), lines.len());
    lines.sort();
    got.sort();
    assert!(got == lines);
    assert_eq!(b.dead_letters.len(), 1);
    assert_eq!(b.dead_letters[0].kind, DeadLetterKind::BadBase64);
    assert!(
        b.records
            .windows(2)
            .all(|w| (w[0].partition, w[0].offset) < (w[1].partition, w[1].offset))
    );

    // In batches of 500 records, each folded onto the states the previous ones left: the
    // payload keeps each key's events in file order, so the rows are the oracle's, and the
    // records refold rejects are the lines the oracle rejects.
    let cp = common::compile_path(&common::seed_pipeline_path());
    let view = refold::batch::fold_in_memory(&cp, &b.records, 500).unwrap();
    let want = common::seed_oracle();
    common::assert_matches_oracle(view.rows.values(), &want, "the payload folded in memory");
    common::assert_dead_letters_match_oracle(
        &view.dead_letters,
        &want,
        "the payload folded in memory",
    );

    let size = std::fs::metadata(common::esm_payload_path()).unwrap().len();
    assert!(
        size < 6 * 1024 * 1024,
        "under Lambda's 6 MB payload limit: {size}"
    );
}

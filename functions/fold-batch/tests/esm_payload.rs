//! The committed ESM payload (events/esm/orders-batch.json, from `cargo run --release --example build_esm`) is a
//! real Kafka ESM event: it deserializes as aws_lambda_events' KafkaEvent and decodes into
//! every line of events/orders.jsonl plus one bad-base64 dead letter; folded in memory, its
//! records give the CPython oracle's rows (`tests/py/seed_fold.py` over the same lines).

#![allow(clippy::unwrap_used)]
mod common;

use refold::dead_letter::DeadLetterKind;

#[test]
fn payload_decodes_to_every_line_plus_one_bad_base64() {
    let ev = common::esm_payload();
    assert_eq!(ev.event_source.as_deref(), Some("aws:kafka"));
    assert!(ev.records.len() >= 3, "several partitions");
    let b = fold_batch::esm::decode(&ev, "order-events-pipeline").unwrap();
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

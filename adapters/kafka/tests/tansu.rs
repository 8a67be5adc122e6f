//! Against a real Kafka-protocol broker (tansu, started by `scripts/stack.sh up DIR kafka`):
//! produce `events/orders.jsonl` keyed by the pipeline key, read it back into ESM-shaped
//! batches, and check that nothing is lost, reordered or mis-keyed.
//!
//!   scripts/stack.sh up /tmp/refold-stack kafka && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test tansu

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use refold::envelope::Envelope;
use refold_kafka::{EsmSource, Producer, consume_esm_batches, create_topic, read_topic};

/// The pipeline's key of a line, as the core computes it (`None`: not a valid envelope).
fn order_key(line: &[u8]) -> Option<String> {
    Some(
        Envelope::decode(line)
            .ok()?
            .key("order_id")
            .ok()?
            .into_owned(),
    )
}

fn brokers() -> String {
    match std::env::var("REFOLD_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => panic!(
            "REFOLD_KAFKA_BROKERS is not set: start a broker with `scripts/stack.sh up DIR kafka` \
             and export the variables of DIR/stack.env (this test needs a real broker)"
        ),
    }
}

fn orders() -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/orders.jsonl");
    std::fs::read(p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume_as_esm_batches() {
    let brokers = brokers();
    let topic = format!("refold.test.{}", uuid::Uuid::new_v4().simple());
    create_topic(&brokers, &topic, 3).await.unwrap();
    let text = orders();
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();

    let producer = Producer::new(&brokers).unwrap();
    let report = producer
        .produce_jsonl(&topic, &text, order_key)
        .await
        .unwrap();
    assert_eq!(report.produced, lines.len());
    assert!(
        report.partitions.len() > 1,
        "keys spread over partitions: {:?}",
        report.partitions
    );

    let (b, t) = (brokers.clone(), topic.clone());
    let batches = tokio::task::spawn_blocking(move || {
        consume_esm_batches(&b, &t, 500, EsmSource::SelfManaged)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(batches.len() >= lines.len() / 500);

    // Every line comes back exactly once; per partition, offsets increase across batches;
    // a key always lands in one partition; the ESM shape is what Lambda sends.
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    let mut key_partition: HashMap<String, i64> = HashMap::new();
    for ev in &batches {
        assert_eq!(ev["eventSource"], "SelfManagedKafka");
        for (map_key, recs) in ev["records"].as_object().unwrap() {
            for r in recs.as_array().unwrap() {
                let p = r["partition"].as_i64().unwrap();
                assert_eq!(map_key, &format!("{topic}-{p}"));
                let o = r["offset"].as_i64().unwrap();
                assert!(
                    last.get(&p).is_none_or(|prev| o > *prev),
                    "offsets increase in partition {p}"
                );
                last.insert(p, o);
                let value = STANDARD.decode(r["value"].as_str().unwrap()).unwrap();
                if let Some(k) = r["key"].as_str() {
                    let k = String::from_utf8(STANDARD.decode(k).unwrap()).unwrap();
                    assert_eq!(order_key(&value).as_deref(), Some(k.as_str()));
                    assert_eq!(
                        *key_partition.entry(k).or_insert(p),
                        p,
                        "one key, one partition"
                    );
                }
                assert!(r["timestamp"].as_i64().unwrap() > 0);
                seen.push(value);
            }
        }
    }
    let mut want: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
    want.sort();
    seen.sort();
    assert_eq!(seen.len(), want.len());
    assert!(seen == want, "the topic holds exactly the file's lines");

    // The plain reader agrees.
    let (b, t) = (brokers.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || read_topic(&b, &t, Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(records.len(), lines.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_to_a_dlq_topic() {
    use refold::dead_letter::{DeadLetter, DeadLetterKind, DeadLetterStore};
    use refold_kafka::KafkaDeadLetters;

    let brokers = brokers();
    let topic = format!("refold.dlq.{}", uuid::Uuid::new_v4().simple());
    create_topic(&brokers, &topic, 1).await.unwrap();
    let batch: Vec<DeadLetter> = DeadLetterKind::ALL
        .iter()
        .enumerate()
        .map(|(i, k)| DeadLetter {
            topic: "domain.orders.events".into(),
            partition: 2,
            offset: i as i64,
            timestamp_ms: Some(1),
            key: Some(format!("order-{i}").into_bytes()),
            raw: vec![0xff, b'x'],
            reason: "test".into(),
            kind: *k,
            pipeline: "p".into(),
        })
        .collect();
    let dlq = KafkaDeadLetters::new(&brokers, &topic).unwrap();
    dlq.put(&batch).await.unwrap();
    let (b, t) = (brokers.clone(), topic.clone());
    let got = tokio::task::spawn_blocking(move || read_topic(&b, &t, Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let back: Vec<DeadLetter> = got
        .iter()
        .map(|r| serde_json::from_slice(&r.value).unwrap())
        .collect();
    assert_eq!(
        back, batch,
        "one message per dead letter, in order, bytes intact"
    );
    assert_eq!(
        got[1].key.as_deref(),
        Some(&b"order-1"[..]),
        "keyed by the original key"
    );
}

/// A reader from a position reads the rest of the partition, then only what came since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_goes_on_from_its_position() {
    use refold_kafka::TopicReader;

    let brokers = brokers();
    let topic = format!("refold.positions.{}", uuid::Uuid::new_v4().simple());
    create_topic(&brokers, &topic, 1).await.unwrap();
    let producer = Producer::new(&brokers).unwrap();
    for i in 0..10 {
        let value = format!("record {i}");
        producer
            .produce(&topic, Some(b"k"), value.as_bytes())
            .await
            .unwrap();
    }
    let reader = TopicReader::new(&brokers, &topic)
        .unwrap()
        .starting_at([(0, 6)]);
    let (mut reader, rest) = tokio::task::spawn_blocking(move || {
        let mut r = reader;
        let got = r.read_available().unwrap();
        (r, got)
    })
    .await
    .unwrap();
    let offsets: Vec<i64> = rest.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);
    assert_eq!(rest[0].value, b"record 6");
    assert_eq!(reader.positions().get(&0), Some(&10));

    producer
        .produce(&topic, Some(b"k"), b"record 10")
        .await
        .unwrap();
    let new = tokio::task::spawn_blocking(move || reader.read_available().unwrap())
        .await
        .unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!((new[0].offset, &new[0].value[..]), (10, &b"record 10"[..]));
}

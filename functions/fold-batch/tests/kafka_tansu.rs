//! A real Kafka-protocol broker (tansu, from `scripts/stack.sh up DIR kafka`): the events
//! produced with rdkafka keyed by the pipeline key, read back by a consumer into ESM batches
//! (several partitions each), handed to the fold-batch handler, one batch delivered twice and
//! one carrying a poison record: the table equals the CPython oracle's fold of the same
//! events (`tests/py/seed_fold.py`), and the dead letters are the lines the oracle rejects.
//!
//!   scripts/stack.sh up /tmp/refold-stack kafka && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test kafka_tansu

#![allow(clippy::unwrap_used)]
mod common;

use fold_batch::esm::EsmEvent;
use fold_batch::handler::FoldBatch;
use refold::dead_letter::DeadLetterKind;
use refold::envelope::Envelope;
use refold_kafka::{EsmSource, Producer, consume_esm_batches, create_topic};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_consumed_folded_equals_the_oracle() {
    let brokers = match std::env::var("REFOLD_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => panic!(
            "REFOLD_KAFKA_BROKERS is not set: start tansu with `scripts/stack.sh up DIR kafka` and export \
             the variables of DIR/stack.env (this test needs a real broker)"
        ),
    };
    let topic = format!("domain.orders.events.{}", uuid::Uuid::new_v4().simple());
    create_topic(&brokers, &topic, 3).await.unwrap();
    let jsonl = common::orders_jsonl();
    let producer = Producer::new(&brokers).unwrap();
    let rep = producer
        .produce_jsonl(&topic, &jsonl, |l| {
            let e = Envelope::decode(l).ok()?;
            e.key("order_id").ok().map(|k| k.into_owned())
        })
        .await
        .unwrap();
    assert!(
        rep.partitions.len() >= 2,
        "several partitions: {:?}",
        rep.partitions
    );

    let (b, t) = (brokers.clone(), topic.clone());
    let mut batches = tokio::task::spawn_blocking(move || {
        consume_esm_batches(&b, &t, 700, EsmSource::SelfManaged)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(batches.len() >= 5);
    // A poison record: one more record at the end of some partition, value not base64.
    let last = batches.last_mut().unwrap();
    let (pk, recs) = last["records"]
        .as_object_mut()
        .unwrap()
        .iter_mut()
        .next()
        .unwrap();
    let pk = pk.clone();
    let recs = recs.as_array_mut().unwrap();
    let mut poison = recs.last().unwrap().clone();
    poison["offset"] = serde_json::json!(poison["offset"].as_i64().unwrap() + 1);
    poison["value"] = serde_json::json!("!!! not base64");
    recs.push(poison);

    let dir = tempfile::tempdir().unwrap();
    // The pipeline reads this test's topic.
    let yaml = std::fs::read_to_string(common::seed_pipeline_path())
        .unwrap()
        .replace("topic: domain.orders.events", &format!("topic: {topic}"))
        .replace("${KAFKA_CONNECTION}", &brokers);
    let (p, dl) = common::processor(dir.path(), common::compile(&yaml)).await;
    let h = FoldBatch::new(p);
    for (i, ev) in batches.iter().enumerate() {
        let ev: EsmEvent = serde_json::from_value(ev.clone()).unwrap();
        assert_eq!(ev.event_source.as_deref(), Some("SelfManagedKafka"));
        assert!(
            h.handle(ev.clone()).await.unwrap().is_success(),
            "batch {i}"
        );
        if i == 2 {
            // Redelivered (an ESM retry): already applied, no effect.
            assert!(h.handle(ev).await.unwrap().is_success(), "batch {i} again");
        }
    }

    let want = common::seed_oracle();
    let rows = h
        .processor()
        .table()
        .current_rows(None, None)
        .await
        .unwrap();
    common::assert_matches_oracle(&rows, &want, "produced to tansu, consumed, folded");
    let dead = dl.read_all().await.unwrap();
    common::assert_dead_letters_match_oracle(&dead, &want, "produced to tansu");
    let bad: Vec<_> = dead
        .iter()
        .filter(|d| d.kind == DeadLetterKind::BadBase64)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(format!("{}-{}", bad[0].topic, bad[0].partition), pk);
}

//! Poison events of every kind (bad base64, bad JSON, invalid envelope, fold error, limit
//! exceeded) under every policy (dead_letter, skip, fail), through the handler on a local
//! warehouse, with the accounting identity
//! received = folded + filtered + dead_lettered + skipped + already_applied + deferred.

#![allow(clippy::unwrap_used)]
mod common;

use std::collections::BTreeMap;

use fold_batch::esm::EsmEvent;
use fold_batch::handler::FoldBatch;
use refold::dead_letter::DeadLetterKind;
use refold::record::SourceRecord;
use serde_json::json;

const TOPIC: &str = "domain.orders.events";

fn pipeline(policy: &str) -> String {
    format!(
        r#"
metadata:
  name: poison-test
sources:
  order_events:
    type: kafka
    connection: localhost:9092
    topic: {TOPIC}
    consumer_group: poison-test
    format: json
    start_offset: earliest
    event_types: [OrderPlaced, OrderConfirmed, OrderExploded, OrderSpun]
transformations:
  - name: build_order_state
    type: event_fold
    input: order_events
    key_field: order_id
    on_error: {policy}
    limits:
      max_steps_per_event: 10000
    fold_function: |
      def fold(state, event):
          if event.type == "OrderExploded":
              fail("boom")
          if event.type == "OrderSpun":
              n = 0
              for i in range(100000000):
                  n += i
              return {{"n": n}}
          if event.type == "OrderPlaced":
              return {{"status": "placed", "amount": event.amount}}
          return {{**state, "status": event.type.lower().replace("order", "")}}
sinks:
  order_view:
    type: iceberg
    table: test.orders_state
    mode: merge_on_key
    merge_keys: [order_id]
"#
    )
}

fn envelope(n: u32, ty: &str, order: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": format!("evt-{n}"), "event_type": ty, "entity_type": "Order", "entity_id": order,
        "tenant_id": "tenant-1", "timestamp": format!("2026-02-01T10:{n:02}:00Z"), "version": 1,
        "data": {"amount": 10.5, "currency": "USD"}, "metadata": {"source": "test"}
    }))
    .unwrap()
}

/// Partition 0: ok, bad base64, bad JSON, invalid envelope, fold error, limit, ok, and an
/// event of o1 keyed by another key (it could live in another partition).
fn poison_event() -> EsmEvent {
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("o1", envelope(0, "OrderPlaced", "o1")),
        ("x", b"placeholder for bad base64".to_vec()),
        ("x", b"{not json".to_vec()),
        ("x", br#"{"hello": "world"}"#.to_vec()),
        ("o2", envelope(4, "OrderExploded", "o2")),
        ("o3", envelope(5, "OrderSpun", "o3")),
        ("o1", envelope(6, "OrderConfirmed", "o1")),
        ("customer-7", envelope(7, "OrderConfirmed", "o1")),
    ];
    let records: Vec<SourceRecord> = values
        .into_iter()
        .enumerate()
        .map(|(i, (key, v))| SourceRecord {
            topic: TOPIC.into(),
            partition: 0,
            offset: i as i64,
            timestamp_ms: Some(1_770_000_000_000 + i as i64),
            key: Some(key.as_bytes().to_vec()),
            value: v,
        })
        .collect();
    let mut ev = refold_kafka::esm_event(&records, refold_kafka::EsmSource::Msk, "b:9092");
    ev["records"][format!("{TOPIC}-0")][1]["value"] = json!("%%% not base64 %%%");
    serde_json::from_value(ev).unwrap()
}

async fn run(
    policy: &str,
) -> (
    FoldBatch,
    fold_batch::esm::KafkaBatchResponse,
    std::sync::Arc<refold::dead_letter::LocalDeadLetters>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let (p, dl) = common::processor(dir.path(), common::compile(&pipeline(policy))).await;
    let h = FoldBatch::new(p);
    let resp = h.handle(poison_event()).await.unwrap();
    (h, resp, dl, dir)
}

fn states(rows: &[refold::table::StateRow]) -> BTreeMap<String, serde_json::Value> {
    rows.iter()
        .map(|r| (r.key.clone(), r.state.to_value()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_policy_sets_every_kind_aside_and_goes_on() {
    let (h, resp, dl, _dir) = run("dead_letter").await;
    assert!(resp.is_success());
    let dead = dl.read_all().await.unwrap();
    let kinds: Vec<(i64, DeadLetterKind)> = dead.iter().map(|d| (d.offset, d.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, DeadLetterKind::BadBase64),
            (2, DeadLetterKind::BadJson),
            (3, DeadLetterKind::InvalidEnvelope),
            (4, DeadLetterKind::FoldError),
            (5, DeadLetterKind::LimitExceeded),
            (7, DeadLetterKind::KeyMismatch),
        ]
    );
    assert!(
        dead[5]
            .reason
            .contains("Kafka record key `customer-7` is not the event's order_id `o1`"),
        "{}",
        dead[5].reason
    );
    assert!(
        dead.iter()
            .all(|d| d.pipeline == "poison-test" && d.partition == 0 && !d.reason.is_empty())
    );
    assert_eq!(dead[0].raw, b"%%% not base64 %%%");
    assert_eq!(dead[1].raw, b"{not json");
    let rows = h
        .processor()
        .table()
        .current_rows(None, None)
        .await
        .unwrap();
    assert_eq!(
        states(&rows),
        BTreeMap::from([("o1".into(), json!({"status": "confirmed", "amount": 10.5}))])
    );
    assert_eq!(
        h.processor().table().committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 8)])
    );

    // Redelivered: all already applied, no new dead letters.
    let resp = h.handle(poison_event()).await.unwrap();
    assert!(resp.is_success());
    assert_eq!(dl.read_all().await.unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_policy_drops_poison_without_dead_letters() {
    let (h, resp, dl, _dir) = run("skip").await;
    assert!(resp.is_success());
    assert!(dl.read_all().await.unwrap().is_empty());
    let rows = h
        .processor()
        .table()
        .current_rows(None, None)
        .await
        .unwrap();
    assert_eq!(
        states(&rows),
        BTreeMap::from([("o1".into(), json!({"status": "confirmed", "amount": 10.5}))])
    );
    assert_eq!(
        h.processor().table().committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 8)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_policy_answers_batch_item_failures_from_the_first_poison() {
    let (h, resp, dl, _dir) = run("fail").await;
    assert_eq!(
        serde_json::to_value(&resp).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": {"partition": format!("{TOPIC}-0"), "offset": 1}}]})
    );
    assert!(dl.read_all().await.unwrap().is_empty());
    let rows = h
        .processor()
        .table()
        .current_rows(None, None)
        .await
        .unwrap();
    assert_eq!(
        states(&rows),
        BTreeMap::from([("o1".into(), json!({"status": "placed", "amount": 10.5}))])
    );
    assert_eq!(
        h.processor().table().committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_holds_for_every_policy() {
    for (policy, folded, dead, skipped, deferred) in [
        ("dead_letter", 2, 6, 0, 0),
        ("skip", 2, 0, 6, 0),
        ("fail", 1, 0, 0, 7),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (p, _dl) = common::processor(dir.path(), common::compile(&pipeline(policy))).await;
        let b = fold_batch::esm::decode(poison_event(), "poison-test").unwrap();
        let r = p
            .process(b.records.clone(), b.dead_letters.clone())
            .await
            .unwrap();
        let c = r.counts;
        assert!(c.balanced(), "{policy}: {c:?}");
        assert_eq!(c.received, 8, "{policy}");
        assert_eq!(
            (c.folded, c.dead_lettered, c.skipped, c.deferred),
            (folded, dead, skipped, deferred),
            "{policy}: {c:?}"
        );
        // Again: everything the first run committed is already applied.
        let r2 = p.process(b.records, b.dead_letters).await.unwrap();
        assert!(r2.counts.balanced(), "{policy} again: {:?}", r2.counts);
        if policy != "fail" {
            assert_eq!(
                r2.counts.already_applied, 8,
                "{policy} again: {:?}",
                r2.counts
            );
        }
    }
}

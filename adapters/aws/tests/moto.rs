//! S3 dead letters against a local S3 (moto, started by `scripts/stack.sh up DIR s3`).
//!
//!   scripts/stack.sh up /tmp/refold-stack s3 && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release -p refold-aws --test moto

#![allow(clippy::unwrap_used)]

use refold::dead_letter::{DeadLetter, DeadLetterKind, DeadLetterStore};
use refold_aws::{S3DeadLetters, s3_client};

fn endpoint() -> String {
    match std::env::var("REFOLD_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => panic!(
            "REFOLD_S3_ENDPOINT is not set: start moto with `scripts/stack.sh up DIR s3` and export \
             the variables of DIR/stack.env (this test needs a local S3)"
        ),
    }
}

fn dl(offset: i64, kind: DeadLetterKind) -> DeadLetter {
    DeadLetter {
        topic: "domain.orders.events".into(),
        partition: 1,
        offset,
        timestamp_ms: Some(1_770_000_000_000 + offset),
        key: Some(b"order-1".to_vec()),
        raw: vec![0, 159, 146, 150, b'{'],
        reason: format!("reason {offset}"),
        kind,
        pipeline: "order-events-pipeline".into(),
    }
}

#[tokio::test]
async fn batches_become_sorted_jsonl_objects() {
    let ep = endpoint();
    let client = s3_client(Some(&ep)).await;
    let bucket = format!("refold-dl-{}", uuid::Uuid::new_v4().simple());
    client.create_bucket().bucket(&bucket).send().await.unwrap();

    let store = S3DeadLetters::new(
        client.clone(),
        &bucket,
        "dead-letters/order-events-pipeline/",
    );
    assert_eq!(
        store.describe(),
        format!("s3://{bucket}/dead-letters/order-events-pipeline")
    );
    store.put(&[]).await.unwrap();
    assert!(
        store.read_all().await.unwrap().is_empty(),
        "an empty batch writes nothing"
    );

    let mut want = Vec::new();
    for i in 0..4 {
        let batch: Vec<DeadLetter> = DeadLetterKind::ALL
            .iter()
            .enumerate()
            .map(|(j, k)| dl(i * 10 + j as i64, *k))
            .collect();
        store.put(&batch).await.unwrap();
        want.extend(batch);
    }
    let objects = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("dead-letters/")
        .send()
        .await
        .unwrap();
    assert_eq!(objects.contents().len(), 4, "one object per batch");
    assert!(
        objects
            .contents()
            .iter()
            .all(|o| o.key().unwrap().ends_with(".jsonl"))
    );
    assert_eq!(
        store.read_all().await.unwrap(),
        want,
        "everything back, bytes intact, in write order"
    );

    // The URL form with the environment's endpoint.
    let from_url =
        S3DeadLetters::from_url(&format!("s3://{bucket}/dead-letters/order-events-pipeline"))
            .await
            .unwrap();
    assert_eq!(from_url.read_all().await.unwrap().len(), want.len());
}

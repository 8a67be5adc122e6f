//! Dead letters on S3 (refold's `ObjectDeadLetters`, the functions' writer, on iceberg's
//! object-store stack) against a local S3 (moto, started by `scripts/stack.sh up DIR s3`),
//! read back with the AWS SDK (`refold_aws::read_dead_letters`).
//!
//!   scripts/stack.sh up /tmp/refold-stack s3 && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test moto

#![allow(clippy::unwrap_used)]

mod common;

use refold::dead_letter::{DeadLetter, DeadLetterKind, DeadLetterStore, ObjectDeadLetters};
use refold::table::StorageConfig;
use refold_aws::{read_dead_letters, s3_client};

fn endpoint() -> String {
    common::moto_endpoint("a local S3")
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

fn storage(endpoint: &str) -> StorageConfig {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    StorageConfig {
        s3_endpoint: Some(endpoint.to_owned()),
        s3_region: var("AWS_REGION").or_else(|| Some("us-east-1".into())),
        s3_path_style: true,
        s3_access_key_id: var("AWS_ACCESS_KEY_ID").or_else(|| Some("test".into())),
        s3_secret_access_key: var("AWS_SECRET_ACCESS_KEY").or_else(|| Some("test".into())),
        s3_session_token: None,
    }
}

#[tokio::test]
async fn batches_become_jsonl_objects_named_by_their_offsets() {
    let ep = endpoint();
    let client = s3_client(Some(&ep)).await;
    let bucket = format!("refold-dl-{}", uuid::Uuid::new_v4().simple());
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let url = format!("s3://{bucket}/dead-letters/order-events-pipeline");

    let store = ObjectDeadLetters::at(&format!("{url}/"), &storage(&ep)).unwrap();
    assert_eq!(store.describe(), url);
    store.put(&[]).await.unwrap();
    assert!(
        read_dead_letters(&client, &url).await.unwrap().is_empty(),
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
    // A batch written again (redelivered after a crash before its commit): same object.
    let again: Vec<DeadLetter> = want[..DeadLetterKind::ALL.len()].to_vec();
    store.put(&again).await.unwrap();

    let objects = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("dead-letters/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = objects
        .contents()
        .iter()
        .map(|o| o.key().unwrap())
        .collect();
    assert_eq!(
        keys.len(),
        4,
        "one object per batch, a rewrite replaces: {keys:?}"
    );
    assert!(keys.contains(
        &"dead-letters/order-events-pipeline/order-events-pipeline-domain.orders.events-p1-o00000000000000000000-00000000000000000005.jsonl"
    ));
    assert_eq!(
        read_dead_letters(&client, &url).await.unwrap(),
        want,
        "everything back once, bytes intact, in offset order"
    );
}

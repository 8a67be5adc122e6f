//! The state table on S3 (a local moto server at `REFOLD_S3_ENDPOINT`, e.g. from
//! `eval "$(bash tests/py/moto.sh start)"`): merges, upserts, compaction, read back by refold,
//! iceberg-rust and PyIceberg. Fails, never skips, without the endpoint.
#![allow(clippy::unwrap_used)]

mod table_support;

use std::io::{Read, Write};

use refold::table::{CatalogConfig, StateTable, StorageConfig};
use table_support::*;

/// Creates a bucket with a plain (unsigned) S3 `PUT /bucket`, which moto accepts.
fn create_bucket(endpoint: &str, bucket: &str) {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
}

#[tokio::test]
async fn s3_warehouse_on_moto() {
    let endpoint = std::env::var("REFOLD_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("REFOLD_S3_ENDPOINT is not set: start moto with `eval \"$(bash tests/py/moto.sh start)\"`")
    });
    let bucket = format!("refold-{}", uuid::Uuid::new_v4().simple());
    create_bucket(&endpoint, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "current_state");
    cfg.catalog = CatalogConfig::Sql {
        uri: format!("sqlite:{}/catalog.db", dir.path().display()),
        warehouse: format!("s3://{bucket}/warehouse"),
        catalog_name: "refold".into(),
        storage: StorageConfig {
            s3_endpoint: Some(endpoint.clone()),
            s3_region: Some("us-east-1".into()),
            s3_path_style: true,
            s3_access_key_id: Some("testing".into()),
            s3_secret_access_key: Some("testing".into()),
            s3_session_token: None,
        },
    };
    let t = StateTable::open_or_create(cfg).await.unwrap();
    let mut stream = vec![];
    for round in 0..4i64 {
        let batch: Vec<Ev> = (0..20i64)
            .map(|i| {
                ev(
                    if i % 2 == 0 { "acme" } else { "globex" },
                    &format!("o{}", (i + round) % 9),
                    0,
                    round * 20 + i,
                    i,
                )
            })
            .collect();
        merge(&t, &batch).await.unwrap();
        stream.extend(batch);
    }
    let loc = t
        .iceberg_table()
        .await
        .unwrap()
        .metadata_location()
        .unwrap()
        .to_string();
    assert!(
        loc.starts_with(&format!(
            "s3://{bucket}/warehouse/domain/orders/current_state/metadata/"
        )),
        "{loc}"
    );
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    assert_eq!(iceberg_scan(&t).await, summarize(&reference(&stream)));
    t.compact(None).await.unwrap();
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    t.tag_checkpoint("checkpoint-s3", 24).await.unwrap();

    let expect = dir.path().join("expect.jsonl");
    write_expected(&expect, &reference(&stream));
    py_check(&[
        "--uri",
        &format!("sqlite:///{}/catalog.db", dir.path().display()),
        "--warehouse",
        &format!("s3://{bucket}/warehouse"),
        "--table",
        "domain.orders.current_state",
        "--expect",
        expect.to_str().unwrap(),
        "--s3-endpoint",
        &endpoint,
    ]);
}

//! Kafka credentials from Secrets Manager (`refold_aws::kafka_secret`) against moto's
//! Secrets Manager (started by `scripts/stack.sh up DIR s3`; one endpoint serves every
//! service): the event source mapping's secret formats (SCRAM, mTLS) become the rdkafka
//! clients' connection, and no error or printed connection carries a value of the secret.
//!
//!   scripts/stack.sh up /tmp/refold-stack s3 && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test secrets

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::primitives::Blob;
use refold::error::ErrorKind;
use refold_aws::kafka_secret;
use refold_kafka::{KafkaAuth, KafkaConnection};

fn endpoint() -> String {
    common::moto_endpoint("a local Secrets Manager")
}

async fn client() -> aws_sdk_secretsmanager::Client {
    let shared = aws_config::load_from_env().await;
    let mut b = aws_sdk_secretsmanager::config::Builder::from(&shared).endpoint_url(endpoint());
    if shared.region().is_none() {
        b = b.region(aws_sdk_secretsmanager::config::Region::new("us-east-1"));
    }
    aws_sdk_secretsmanager::Client::from_conf(b.build())
}

async fn put(c: &aws_sdk_secretsmanager::Client, text: &str) -> String {
    let name = format!("refold/kafka-{}", uuid::Uuid::new_v4().simple());
    let out = c
        .create_secret()
        .name(&name)
        .secret_string(text)
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_owned()
}

/// The connection the functions build: `REFOLD_KAFKA_AUTH` from the environment (here a
/// map), the credentials from the secret.
fn connection(auth: &str, secret: &BTreeMap<String, String>) -> KafkaConnection {
    KafkaConnection::from_vars("b-1.msk:9096", &|k| {
        secret
            .get(k)
            .cloned()
            .or_else(|| (k == "REFOLD_KAFKA_AUTH").then(|| auth.to_owned()))
    })
    .unwrap()
}

#[tokio::test]
async fn a_scram_secret_becomes_the_clients_credentials() {
    let c = client().await;
    let arn = put(&c, r#"{"username":"refold","password":"s3cr3t-scram"}"#).await;
    let vars = kafka_secret::read(&c, &arn).await.unwrap();
    let conn = connection("scram-sha-512", &vars);
    match &conn.auth {
        KafkaAuth::Scram { username, .. } => assert_eq!(username, "refold"),
        other => panic!("not SCRAM: {other:?}"),
    }
    let cfg = conn.client_config();
    assert_eq!(cfg.get("sasl.password"), Some("s3cr3t-scram"));
    assert_eq!(cfg.get("security.protocol"), Some("SASL_SSL"));
    let shown = format!("{conn} {conn:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[tokio::test]
async fn an_mtls_secret_larger_than_lambdas_environment_is_read() {
    let c = client().await;
    // Lambda's environment holds 4 KB in all; a certificate chain and key are larger.
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        "k".repeat(6000)
    );
    let text = serde_json::json!({"certificate": "-----BEGIN CERTIFICATE-----\nC",
        "privateKey": key, "privateKeyPassword": "pa55phrase"})
    .to_string();
    let arn = put(&c, &text).await;
    let vars = kafka_secret::read(&c, &arn).await.unwrap();
    let conn = connection("mtls", &vars);
    let cfg = conn.client_config();
    assert_eq!(cfg.get("ssl.key.pem"), Some(key.as_str()));
    assert_eq!(cfg.get("ssl.key.password"), Some("pa55phrase"));
    let shown = format!("{conn} {conn:?}");
    assert!(
        !shown.contains("kkkk") && !shown.contains("pa55phrase"),
        "{shown}"
    );
}

#[tokio::test]
async fn refusals_name_the_secret_and_never_its_value() {
    let c = client().await;
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:refold/none-AbCdEf";
    let e = kafka_secret::read(&c, missing).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains(missing), "{e}");

    let arn = put(&c, "password=hunter2-plain").await;
    let e = kafka_secret::read(&c, &arn).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let shown = format!("{e} {e:?}");
    assert!(
        shown.contains(&arn) && !shown.contains("hunter2"),
        "{shown}"
    );

    let name = format!("refold/bin-{}", uuid::Uuid::new_v4().simple());
    let bin = c
        .create_secret()
        .name(&name)
        .secret_binary(Blob::new(b"hunter2-bytes".to_vec()))
        .send()
        .await
        .unwrap();
    let e = kafka_secret::read(&c, bin.arn().unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no SecretString"), "{e}");
}

//! MSK IAM (`REFOLD_KAFKA_AUTH=msk-iam`): the token refold's clients hand librdkafka is the
//! one MSK checks, verified by botocore (`tests/py/msk_iam_token.py`: the URL, scope and
//! SigV4 signature recomputed at the token's own time), and a consumer created on such a
//! connection has asked its context for that token before it is used. No MSK cluster runs
//! here, so the broker's acceptance itself is not tested.
//!
//! Needs AWS credentials in the environment (`scripts/stack.sh up DIR kafka s3` writes test
//! ones to DIR/stack.env) and the broker of the stack:
//!
//!   scripts/stack.sh up /tmp/refold-stack kafka s3 && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test msk_iam

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "../../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

use std::io::Write;
use std::process::{Command, Stdio};

use refold_kafka::reader::consumer_with;
use refold_kafka::{KafkaConnection, MskIamSigner};

fn need(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: start the stack with `scripts/stack.sh up DIR kafka s3` and export the \
             variables of DIR/stack.env (this test needs AWS credentials and a broker)"
        ),
    }
}

fn check_with_botocore(token: &str, region: &str) {
    let root = oracle::workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let mut child = Command::new(oracle::python())
        .arg(root.join("tests/py/msk_iam_token.py"))
        .args(["--region", region])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(token.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.starts_with(b"ok"),
        "botocore refuses the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_token_is_the_sigv4_presigned_connect_url_msk_checks() {
    need("AWS_ACCESS_KEY_ID");
    let now_ms = chrono_now_ms();
    let (token, expires_ms) = MskIamSigner::new("eu-west-1").token().unwrap();
    assert!(
        (now_ms + 890_000..=now_ms + 910_000).contains(&expires_ms),
        "expiry {expires_ms} is not 15 minutes after {now_ms}"
    );
    check_with_botocore(&token, "eu-west-1");
}

#[test]
fn a_consumer_on_an_msk_iam_connection_has_its_token_before_use() {
    need("AWS_ACCESS_KEY_ID");
    let brokers = need("REFOLD_KAFKA_BROKERS");
    let vars = |k: &str| match k {
        "REFOLD_KAFKA_AUTH" => Some("msk-iam".to_owned()),
        "REFOLD_KAFKA_REGION" => Some("us-east-2".to_owned()),
        // The stack's broker speaks no TLS; MSK's IAM listener does (SASL_SSL by default).
        "REFOLD_KAFKA_TLS" => Some("false".to_owned()),
        _ => None,
    };
    let conn = KafkaConnection::from_vars(&brokers, &vars).unwrap();
    let c = consumer_with(&conn, "msk-iam-test").unwrap();
    use rdkafka::consumer::Consumer as _;
    let signer = c.context().msk_iam().unwrap();
    assert_eq!(
        signer.signed(),
        1,
        "librdkafka asked for exactly one token at start"
    );
}

fn chrono_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

//! No credential appears in a log line or an error. A SCRAM password and an mTLS client key
//! (a real one, made by the `openssl` command, encrypted with a passphrase) are handed to
//! clients that cannot connect (nobody listens on the port); everything logged meanwhile
//! (refold's tracing, and librdkafka's own log with every debug context on, bridged from the
//! `log` crate) and the errors' `Display` and `Debug` are searched for them.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refold_kafka::{
    KafkaAuth, KafkaConnection, Producer, ScramMechanism, Secret, TopicReader, create_topic_on,
};

const PASSWORD: &str = "pw-7f3a9c-never-print-me";
const KEY_PASSWORD: &str = "kp-44c2-never-print-me";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

/// `127.0.0.1:<port>` where nothing listens.
fn dead_brokers() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = l.local_addr().expect("local address").port();
    drop(l);
    format!("127.0.0.1:{port}")
}

/// A self-signed client certificate and its private key encrypted with [`KEY_PASSWORD`]
/// (PEM), made by `openssl` (the test fails without it).
fn client_certificate() -> (String, String) {
    let dir = std::env::temp_dir().join(format!("refold-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-subj",
            "/CN=refold-test",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-passout", &format!("pass:{KEY_PASSWORD}")])
        .output()
        .expect("the openssl command (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("read PEM");
    let pems = (read(&cert), read(&key));
    let _ = std::fs::remove_dir_all(&dir);
    pems
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows a secret ({secret}):\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_logs_or_errors() {
    let logs = Captured::default();
    let sink = logs.clone();
    // `init` also bridges the `log` crate (rdkafka's librdkafka log) into tracing.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();

    let brokers = dead_brokers();
    let mut scram = KafkaConnection::scram(
        &brokers,
        ScramMechanism::Sha512,
        "refold",
        Secret::new(PASSWORD),
    );
    scram.debug = Some("all".into());
    let (certificate_pem, key_pem) = client_certificate();
    // A line of the key's base64 body stands for the key.
    let key_line = key_pem.lines().nth(1).expect("a PEM body").to_owned();
    let secrets = [PASSWORD, KEY_PASSWORD, key_line.as_str()];
    let mtls = KafkaConnection {
        auth: KafkaAuth::Mtls {
            certificate_pem,
            key_pem: Secret::new(key_pem),
            key_password: Some(Secret::new(KEY_PASSWORD)),
        },
        ..scram.clone()
    };
    tracing::info!(connection = %scram, debug = ?scram, "connecting");
    tracing::info!(connection = %mtls, debug = ?mtls, "connecting");

    let mut errors = Vec::new();
    for conn in [&scram, &mtls] {
        let read = TopicReader::connect(conn, "domain.orders.events")
            .map(|r| r.with_read_timeout(Duration::from_secs(3)))
            .and_then(|mut r| r.read_available());
        match read {
            Ok(records) => panic!("read {} records from a dead broker", records.len()),
            Err(e) => errors.push(format!("{e} | {e:?}")),
        }
        let admin =
            tokio::time::timeout(Duration::from_secs(30), create_topic_on(conn, "t", 1)).await;
        match admin {
            Ok(Ok(())) => panic!("created a topic on a dead broker"),
            Ok(Err(e)) => errors.push(format!("{e} | {e:?}")),
            Err(_) => errors.push("admin timed out".into()),
        }
        // Created (the key decrypts), or refused with an error to search.
        if let Err(e) = Producer::connect(conn) {
            errors.push(format!("{e} | {e:?}"));
        }
    }
    // Let librdkafka's threads log their connection attempts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let text = logs.text();
    assert!(
        text.contains("refold") && text.contains("SASL_SSL SCRAM-SHA-512 user refold"),
        "the connection was logged:\n{text}"
    );
    assert!(
        text.lines().count() > 20,
        "librdkafka's debug log reached the capture:\n{text}"
    );
    assert!(
        text.contains("SSL client certificate"),
        "the mTLS connection was logged:\n{text}"
    );
    assert_clean("the log", &text, &secrets);
    assert!(!errors.is_empty());
    for e in &errors {
        println!("error: {e}");
        assert!(
            !e.contains("PEM"),
            "the client key was refused, not used: {e}"
        );
        assert_clean("an error", e, &secrets);
    }
}

//! Kafka credentials read from AWS Secrets Manager at run time: `REFOLD_KAFKA_SECRET_ARN`
//! names a secret in the format Lambda's Kafka event source mapping reads, so one secret
//! serves the mapping and the replay functions' rdkafka clients:
//!
//! | secret key | stands for |
//! |---|---|
//! | `username`, `password` | `REFOLD_KAFKA_USERNAME`, `REFOLD_KAFKA_PASSWORD` (SASL/SCRAM) |
//! | `certificate`, `privateKey`, `privateKeyPassword` | `REFOLD_KAFKA_CLIENT_CERT_PEM`, `REFOLD_KAFKA_CLIENT_KEY_PEM`, `REFOLD_KAFKA_CLIENT_KEY_PASSWORD` (mTLS) |
//! | `caCertificate` | `REFOLD_KAFKA_CA_PEM` |
//!
//! Read once per container (cold start). Other keys are ignored. No error carries a value
//! of the secret: a malformed one is described by its shape (which key, what type).

use std::collections::BTreeMap;

use refold::error::{Error, ErrorKind, Result};
use serde_json::Value;

/// The variable naming the secret.
pub const SECRET_ARN_VAR: &str = "REFOLD_KAFKA_SECRET_ARN";
/// Bytes of a secret refold reads (Secrets Manager's own limit is 64 KB).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Keys of the secret and the connection variable each supplies.
const KEYS: [(&str, &str); 6] = [
    ("username", "REFOLD_KAFKA_USERNAME"),
    ("password", "REFOLD_KAFKA_PASSWORD"),
    ("certificate", "REFOLD_KAFKA_CLIENT_CERT_PEM"),
    ("privateKey", "REFOLD_KAFKA_CLIENT_KEY_PEM"),
    ("privateKeyPassword", "REFOLD_KAFKA_CLIENT_KEY_PASSWORD"),
    ("caCertificate", "REFOLD_KAFKA_CA_PEM"),
];

/// The connection variables the secret's text supplies.
pub fn vars_of_secret(arn: &str, text: &str) -> Result<BTreeMap<String, String>> {
    let bad = |what: String| Error::new(ErrorKind::Config, format!("secret {arn}: {what}"));
    if text.len() > MAX_SECRET_BYTES {
        return Err(bad(format!(
            "{} bytes, more than {MAX_SECRET_BYTES}",
            text.len()
        )));
    }
    // serde_json's error would quote the text around the fault: describe it instead.
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err(bad(
            "not a JSON object (expected {\"username\", \"password\"} or \
                        {\"certificate\", \"privateKey\"})"
                .into(),
        ));
    };
    let mut vars = BTreeMap::new();
    for (key, var) in KEYS {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) if !v.is_empty() => {
                vars.insert(var.to_owned(), v.clone());
            }
            Some(_) => return Err(bad(format!("`{key}` must be a non-empty string"))),
        }
    }
    if vars.is_empty() {
        return Err(bad(format!(
            "none of the keys refold reads ({})",
            KEYS.map(|(k, _)| k).join(", ")
        )));
    }
    Ok(vars)
}

/// The variables of the secret `arn`, read with `client`.
pub async fn read(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            let e = aws_sdk_secretsmanager::error::DisplayErrorContext(e);
            Error::new(ErrorKind::Io, format!("read secret {arn}: {e}"))
        })?;
    let text = out.secret_string().ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!("secret {arn} has no SecretString (a binary secret is not read)"),
        )
    })?;
    vars_of_secret(arn, text)
}

/// The variables of the secret `REFOLD_KAFKA_SECRET_ARN` names; none when it is unset.
pub async fn from_env() -> Result<BTreeMap<String, String>> {
    let Some(arn) = std::env::var(SECRET_ARN_VAR).ok().filter(|v| !v.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let conf = aws_config::load_from_env().await;
    read(&aws_sdk_secretsmanager::Client::new(&conf), &arn).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_esm_formats_map_to_the_connection_variables() {
        let v = vars_of_secret("arn:s", r#"{"username":"u","password":"p4ss","other":1}"#).unwrap();
        assert_eq!(
            v,
            BTreeMap::from([
                ("REFOLD_KAFKA_USERNAME".to_owned(), "u".to_owned()),
                ("REFOLD_KAFKA_PASSWORD".to_owned(), "p4ss".to_owned()),
            ])
        );
        let v = vars_of_secret(
            "arn:s",
            r#"{"certificate":"C","privateKey":"K","privateKeyPassword":"P"}"#,
        )
        .unwrap();
        assert_eq!(v["REFOLD_KAFKA_CLIENT_KEY_PEM"], "K");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn a_malformed_secret_is_described_never_quoted() {
        for text in [
            "not json sup3rsecret",
            r#"["sup3rsecret"]"#,
            r#"{"password": 12345678}"#,
            r#"{"passwd": "sup3rsecret"}"#,
        ] {
            let e = vars_of_secret("arn:aws:secretsmanager:x", text).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(shown.contains("arn:aws:secretsmanager:x"), "{shown}");
            assert!(
                !shown.contains("sup3rsecret") && !shown.contains("12345678"),
                "{shown}"
            );
        }
    }
}

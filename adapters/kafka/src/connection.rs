//! Where the brokers are and how a client proves who it is: the one place an rdkafka
//! `ClientConfig` starts from ([`KafkaConnection::client_config`]). Every client refold makes
//! (the reader's consumer, the producer, the admin client, the dead-letter producer) is built
//! from it, so security settings cannot differ between them.
//!
//! From the environment ([`KafkaConnection::from_env`]; the brokers come from the pipeline's
//! `connection`):
//!
//! | variable | meaning |
//! |---|---|
//! | `REFOLD_KAFKA_AUTH` | `none` (default: PLAINTEXT), `scram-sha-512`, `scram-sha-256`, `mtls`, `msk-iam` |
//! | `REFOLD_KAFKA_REGION` | MSK IAM: the cluster's region (default: `AWS_REGION`) |
//! | `REFOLD_KAFKA_USERNAME`, `REFOLD_KAFKA_PASSWORD` | SASL/SCRAM credentials |
//! | `REFOLD_KAFKA_CLIENT_CERT_PEM`, `REFOLD_KAFKA_CLIENT_KEY_PEM` | mTLS: the client certificate (chain) and its private key, PEM text |
//! | `REFOLD_KAFKA_CLIENT_KEY_PASSWORD` | mTLS: the private key's passphrase, if it has one |
//! | `REFOLD_KAFKA_CA_PEM` | the brokers' CA (PEM text); default: the system's trust store |
//! | `REFOLD_KAFKA_TLS` | `true`/`false`: TLS to the brokers (default: on with SCRAM and mTLS, off with `none`) |
//! | `REFOLD_KAFKA_DEBUG` | librdkafka `debug` contexts (e.g. `security,broker`), for troubleshooting |
//!
//! Secrets are held in [`Secret`]: its `Debug` and `Display` print `***`, so neither a log
//! line nor an error that formats a connection can carry one. librdkafka redacts its own
//! sensitive properties (`sasl.password`, `ssl.key.pem`, ...) in its logs.
//!
//! In the functions the credentials can also come from a secret read at run time
//! ([`KafkaConnection::from_env_and_secret`]; `refold_aws::kafka_secret` reads
//! `REFOLD_KAFKA_SECRET_ARN` from Secrets Manager): mTLS keys do not fit in Lambda's 4 KB of
//! environment.
//!
//! MSK IAM is SASL/OAUTHBEARER with a token signed from the AWS credentials chain: every
//! client is created with [`KafkaConnection::context`], which signs the token when librdkafka
//! asks (`crate::context`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use refold::error::{Error, ErrorKind, Result};

use crate::context::{KafkaContext, MskIamSigner};

/// Characters of a credential refold accepts (SCRAM passwords, PEM keys are far shorter).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A credential: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that hands it to librdkafka.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The SCRAM hash (`sasl.mechanism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }
}

/// How a client authenticates to the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    /// None (local brokers, the in-process mock).
    None,
    /// SASL/SCRAM (MSK SCRAM, Confluent, most self-managed clusters).
    Scram {
        mechanism: ScramMechanism,
        username: String,
        password: Secret,
    },
    /// Mutual TLS with a client certificate and its private key (PEM).
    Mtls {
        certificate_pem: String,
        key_pem: Secret,
        key_password: Option<Secret>,
    },
    /// MSK IAM: SASL/OAUTHBEARER, the token a SigV4-presigned URL for `region`.
    MskIam { region: String },
}

/// The brokers and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConnection {
    /// `host:port,...` (`bootstrap.servers`).
    pub brokers: String,
    pub auth: KafkaAuth,
    /// TLS to the brokers.
    pub tls: bool,
    /// The brokers' CA (PEM); `None`: the system's trust store.
    pub ca_pem: Option<String>,
    /// librdkafka `debug` contexts; logs go through the `log` crate at debug level.
    pub debug: Option<String>,
}

impl KafkaConnection {
    /// PLAINTEXT, no authentication.
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            auth: KafkaAuth::None,
            tls: false,
            ca_pem: None,
            debug: None,
        }
    }

    /// SASL/SCRAM over TLS.
    pub fn scram(
        brokers: impl Into<String>,
        mechanism: ScramMechanism,
        username: impl Into<String>,
        password: Secret,
    ) -> Self {
        Self {
            auth: KafkaAuth::Scram {
                mechanism,
                username: username.into(),
                password,
            },
            tls: true,
            ..Self::plaintext(brokers)
        }
    }

    /// The connection to `brokers` the environment describes (see the module's table).
    pub fn from_env(brokers: &str) -> Result<Self> {
        Self::from_vars(brokers, &|k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// As [`KafkaConnection::from_env`], with the variables `secret` supplies (read from a
    /// secret store at run time, e.g. `refold_aws::kafka_secret`) taking precedence.
    pub fn from_env_and_secret(brokers: &str, secret: &BTreeMap<String, String>) -> Result<Self> {
        Self::from_vars(brokers, &|k| {
            secret
                .get(k)
                .cloned()
                .or_else(|| std::env::var(k).ok())
                .filter(|v| !v.is_empty())
        })
    }

    /// As [`KafkaConnection::from_env`], with `var` as the environment.
    pub fn from_vars(brokers: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let need = |k: &str| {
            var(k).ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("{k} is not set (REFOLD_KAFKA_AUTH needs it)"),
                )
            })
        };
        let secret = |k: &str| -> Result<Secret> { checked_secret(k, need(k)?) };
        let auth_name = var("REFOLD_KAFKA_AUTH").unwrap_or_else(|| "none".into());
        let auth = match auth_name.as_str() {
            "none" => KafkaAuth::None,
            "scram-sha-512" | "scram-sha-256" => KafkaAuth::Scram {
                mechanism: if auth_name.ends_with("512") {
                    ScramMechanism::Sha512
                } else {
                    ScramMechanism::Sha256
                },
                username: need("REFOLD_KAFKA_USERNAME")?,
                password: secret("REFOLD_KAFKA_PASSWORD")?,
            },
            "mtls" => KafkaAuth::Mtls {
                certificate_pem: need("REFOLD_KAFKA_CLIENT_CERT_PEM")?,
                key_pem: secret("REFOLD_KAFKA_CLIENT_KEY_PEM")?,
                key_password: var("REFOLD_KAFKA_CLIENT_KEY_PASSWORD")
                    .map(|p| checked_secret("REFOLD_KAFKA_CLIENT_KEY_PASSWORD", p))
                    .transpose()?,
            },
            "msk-iam" => KafkaAuth::MskIam {
                region: var("REFOLD_KAFKA_REGION")
                    .or_else(|| var("AWS_REGION"))
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Config,
                            "REFOLD_KAFKA_AUTH=msk-iam needs the cluster's region \
                             (REFOLD_KAFKA_REGION or AWS_REGION)",
                        )
                    })?,
            },
            other => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "REFOLD_KAFKA_AUTH=`{other}`: expected none, scram-sha-512, \
                         scram-sha-256, mtls or msk-iam"
                    ),
                ));
            }
        };
        let tls = match var("REFOLD_KAFKA_TLS").as_deref() {
            None => auth != KafkaAuth::None,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("REFOLD_KAFKA_TLS=`{other}`: expected true or false"),
                ));
            }
        };
        if matches!(auth, KafkaAuth::Mtls { .. }) && !tls {
            return Err(Error::new(
                ErrorKind::Config,
                "REFOLD_KAFKA_AUTH=mtls needs TLS (REFOLD_KAFKA_TLS=false contradicts it)",
            ));
        }
        Ok(Self {
            brokers: brokers.to_owned(),
            auth,
            tls,
            ca_pem: var("REFOLD_KAFKA_CA_PEM"),
            debug: var("REFOLD_KAFKA_DEBUG"),
        })
    }

    /// `security.protocol` of this connection.
    pub fn security_protocol(&self) -> &'static str {
        match (&self.auth, self.tls) {
            (KafkaAuth::Scram { .. } | KafkaAuth::MskIam { .. }, true) => "SASL_SSL",
            (KafkaAuth::Scram { .. } | KafkaAuth::MskIam { .. }, false) => "SASL_PLAINTEXT",
            (_, true) => "SSL",
            (_, false) => "PLAINTEXT",
        }
    }

    /// The rdkafka configuration every refold client starts from: brokers, security
    /// protocol, credentials, debug contexts.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("security.protocol", self.security_protocol());
        match &self.auth {
            KafkaAuth::None => {}
            KafkaAuth::Scram {
                mechanism,
                username,
                password,
            } => {
                c.set("sasl.mechanism", mechanism.name())
                    .set("sasl.username", username)
                    .set("sasl.password", password.expose());
            }
            KafkaAuth::Mtls {
                certificate_pem,
                key_pem,
                key_password,
            } => {
                c.set("ssl.certificate.pem", certificate_pem)
                    .set("ssl.key.pem", key_pem.expose());
                if let Some(p) = key_password {
                    c.set("ssl.key.password", p.expose());
                }
            }
            KafkaAuth::MskIam { .. } => {
                c.set("sasl.mechanism", "OAUTHBEARER");
            }
        }
        if let Some(ca) = &self.ca_pem {
            c.set("ssl.ca.pem", ca);
        }
        if let Some(d) = &self.debug {
            c.set("debug", d).set_log_level(RDKafkaLogLevel::Debug);
        }
        c
    }
}

impl KafkaConnection {
    /// The context to create every client of this connection with (it signs MSK IAM tokens).
    pub fn context(&self) -> KafkaContext {
        match &self.auth {
            KafkaAuth::MskIam { region } => {
                KafkaContext::with_msk_iam(Arc::new(MskIamSigner::new(region.clone())))
            }
            _ => KafkaContext::default(),
        }
    }
}

fn checked_secret(name: &str, value: String) -> Result<Secret> {
    if value.len() > MAX_SECRET_BYTES {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "{name} is {} bytes, more than {MAX_SECRET_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(Secret(value))
}

/// What a connection says about itself in logs and errors: brokers, protocol, user; never
/// a credential.
impl fmt::Display for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.brokers, self.security_protocol())?;
        match &self.auth {
            KafkaAuth::Scram {
                mechanism,
                username,
                ..
            } => write!(f, " {} user {username}", mechanism.name())?,
            KafkaAuth::Mtls { .. } => f.write_str(" client certificate")?,
            KafkaAuth::MskIam { region } => write!(f, " MSK IAM {region}")?,
            KafkaAuth::None => {}
        }
        f.write_str(")")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn props(c: &KafkaConnection) -> HashMap<String, String> {
        let cfg = c.client_config();
        [
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "sasl.password",
            "ssl.certificate.pem",
            "ssl.key.pem",
            "ssl.key.password",
            "ssl.ca.pem",
        ]
        .iter()
        .filter_map(|k| cfg.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect()
    }

    #[test]
    fn plaintext_by_default() {
        let c = KafkaConnection::from_vars("b:9092", &vars(&[])).unwrap();
        assert_eq!(c, KafkaConnection::plaintext("b:9092"));
        assert_eq!(props(&c)["security.protocol"], "PLAINTEXT");
        assert_eq!(c.client_config().get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn scram_over_tls() {
        let v = vars(&[
            ("REFOLD_KAFKA_AUTH", "scram-sha-512"),
            ("REFOLD_KAFKA_USERNAME", "refold"),
            ("REFOLD_KAFKA_PASSWORD", "hunter2-secret"),
        ]);
        let c = KafkaConnection::from_vars("b:9096", &v).unwrap();
        let p = props(&c);
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["sasl.username"], "refold");
        assert_eq!(p["sasl.password"], "hunter2-secret");
        for shown in [format!("{c}"), format!("{c:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(c.to_string(), "b:9096 (SASL_SSL SCRAM-SHA-512 user refold)");
        let plain = vars(&[
            ("REFOLD_KAFKA_AUTH", "scram-sha-256"),
            ("REFOLD_KAFKA_USERNAME", "u"),
            ("REFOLD_KAFKA_PASSWORD", "p"),
            ("REFOLD_KAFKA_TLS", "false"),
        ]);
        let c = KafkaConnection::from_vars("b:9092", &plain).unwrap();
        assert_eq!(props(&c)["security.protocol"], "SASL_PLAINTEXT");
        assert_eq!(props(&c)["sasl.mechanism"], "SCRAM-SHA-256");
    }

    #[test]
    fn mutual_tls() {
        let v = vars(&[
            ("REFOLD_KAFKA_AUTH", "mtls"),
            (
                "REFOLD_KAFKA_CLIENT_CERT_PEM",
                "-----BEGIN CERTIFICATE-----",
            ),
            (
                "REFOLD_KAFKA_CLIENT_KEY_PEM",
                "-----BEGIN PRIVATE KEY----- k3y",
            ),
            ("REFOLD_KAFKA_CLIENT_KEY_PASSWORD", "pa55"),
            ("REFOLD_KAFKA_CA_PEM", "-----BEGIN CERTIFICATE----- ca"),
        ]);
        let c = KafkaConnection::from_vars("b:9094", &v).unwrap();
        let p = props(&c);
        assert_eq!(p["security.protocol"], "SSL");
        assert_eq!(p["ssl.key.pem"], "-----BEGIN PRIVATE KEY----- k3y");
        assert_eq!(p["ssl.key.password"], "pa55");
        assert_eq!(p["ssl.ca.pem"], "-----BEGIN CERTIFICATE----- ca");
        let shown = format!("{c} {c:?}");
        assert!(!shown.contains("k3y") && !shown.contains("pa55"), "{shown}");
    }

    #[test]
    fn msk_iam_is_oauthbearer_over_tls_with_a_signing_context() {
        let v = vars(&[
            ("REFOLD_KAFKA_AUTH", "msk-iam"),
            ("AWS_REGION", "eu-west-1"),
        ]);
        let c = KafkaConnection::from_vars("b-1.msk:9098", &v).unwrap();
        assert_eq!(
            c.auth,
            KafkaAuth::MskIam {
                region: "eu-west-1".into()
            }
        );
        let p = props(&c);
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.mechanism"], "OAUTHBEARER");
        assert!(c.context().msk_iam().is_some());
        assert!(
            KafkaConnection::plaintext("b:1")
                .context()
                .msk_iam()
                .is_none()
        );
        assert_eq!(c.to_string(), "b-1.msk:9098 (SASL_SSL MSK IAM eu-west-1)");
    }

    #[test]
    fn refusals_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 5] = [
            (
                &[("REFOLD_KAFKA_AUTH", "kerberos")],
                "REFOLD_KAFKA_AUTH=`kerberos`",
            ),
            (
                &[("REFOLD_KAFKA_AUTH", "msk-iam")],
                "needs the cluster's region",
            ),
            (
                &[("REFOLD_KAFKA_AUTH", "scram-sha-512")],
                "REFOLD_KAFKA_USERNAME",
            ),
            (
                &[
                    ("REFOLD_KAFKA_AUTH", "mtls"),
                    ("REFOLD_KAFKA_CLIENT_CERT_PEM", "c"),
                    ("REFOLD_KAFKA_CLIENT_KEY_PEM", "k"),
                    ("REFOLD_KAFKA_TLS", "false"),
                ],
                "needs TLS",
            ),
            (&[("REFOLD_KAFKA_TLS", "yes")], "REFOLD_KAFKA_TLS=`yes`"),
        ];
        for (pairs, want) in cases {
            let e = KafkaConnection::from_vars("b:1", &vars(pairs)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
        let huge = "x".repeat(MAX_SECRET_BYTES + 1);
        let v = vars(&[
            ("REFOLD_KAFKA_AUTH", "scram-sha-512"),
            ("REFOLD_KAFKA_USERNAME", "u"),
            ("REFOLD_KAFKA_PASSWORD", &huge),
        ]);
        let e = KafkaConnection::from_vars("b:1", &v).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        assert!(!e.to_string().contains("xxxx"), "{e}");
    }
}

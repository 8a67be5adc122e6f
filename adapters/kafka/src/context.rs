//! The rdkafka client context every refold client is created with ([`KafkaContext`]). It
//! exists for MSK IAM: librdkafka asks the context for a SASL/OAUTHBEARER token when the
//! client starts and again before the token expires (every 15 minutes), and the context
//! answers with a token signed from the AWS credentials chain ([`MskIamSigner`]). For every
//! other authentication the context does nothing.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use rdkafka::consumer::ConsumerContext;
use refold::error::{Error, ErrorKind, Result};

/// How long one token may take to sign (credentials may come over the network).
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Signs MSK IAM tokens: a SigV4-presigned `kafka-cluster:Connect` URL for the region,
/// base64url-encoded, valid 15 minutes (`aws-msk-iam-sasl-signer`).
#[derive(Debug)]
pub struct MskIamSigner {
    region: String,
    signed: AtomicUsize,
}

impl MskIamSigner {
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            signed: AtomicUsize::new(0),
        }
    }

    /// Tokens signed so far (librdkafka asks at start and before each expiry).
    pub fn signed(&self) -> usize {
        self.signed.load(Ordering::SeqCst)
    }

    /// A token and its expiry (Unix ms). Runs on a thread of its own with its own runtime:
    /// librdkafka calls this from a poll, which may be inside an async runtime or not.
    pub fn token(&self) -> Result<(String, i64)> {
        let region = aws_config::Region::new(self.region.clone());
        let signed = std::thread::spawn(move || -> Result<(String, i64)> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    Error::new(ErrorKind::Io, "a runtime for MSK IAM signing").with_source(e)
                })?;
            rt.block_on(async {
                tokio::time::timeout(
                    TOKEN_TIMEOUT,
                    aws_msk_iam_sasl_signer::generate_auth_token(region),
                )
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Io,
                        format!("MSK IAM token: no credentials within {TOKEN_TIMEOUT:?}"),
                    )
                })?
                .map_err(|e| Error::new(ErrorKind::Io, format!("MSK IAM token: {e}")))
            })
        })
        .join()
        .map_err(|_| Error::new(ErrorKind::Internal, "the MSK IAM signing thread panicked"))??;
        self.signed.fetch_add(1, Ordering::SeqCst);
        Ok(signed)
    }
}

/// The context of every refold rdkafka client.
#[derive(Debug, Clone, Default)]
pub struct KafkaContext {
    msk_iam: Option<Arc<MskIamSigner>>,
}

impl KafkaContext {
    pub fn with_msk_iam(signer: Arc<MskIamSigner>) -> Self {
        Self {
            msk_iam: Some(signer),
        }
    }

    pub fn msk_iam(&self) -> Option<&Arc<MskIamSigner>> {
        self.msk_iam.as_ref()
    }
}

impl ClientContext for KafkaContext {
    // librdkafka asks only when `sasl.mechanism` is OAUTHBEARER, which only MSK IAM sets.
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> std::result::Result<OAuthToken, Box<dyn StdError>> {
        let Some(signer) = &self.msk_iam else {
            return Err("OAUTHBEARER is used only with REFOLD_KAFKA_AUTH=msk-iam".into());
        };
        let (token, lifetime_ms) = signer.token().map_err(|e| e.to_string())?;
        Ok(OAuthToken {
            token,
            principal_name: String::new(),
            lifetime_ms,
        })
    }
}

impl ConsumerContext for KafkaContext {}

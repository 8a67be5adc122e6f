//! refold's AWS adapters (only `functions/*` and this crate know the AWS SDK):
//! - [`S3DeadLetters`]: dead letters as JSONL objects under an S3 prefix, one per batch.
//!
//! A local S3 (moto, MinIO) works through an endpoint override with path-style addressing:
//! `REFOLD_S3_ENDPOINT` (or `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;

use refold::dead_letter::{
    DeadLetter, DeadLetterStore, batch_object_name, decode_jsonl, encode_jsonl,
};
use refold::error::{Error, ErrorKind, Result};

/// The S3 endpoint override from the environment, if any.
pub fn s3_endpoint_from_env() -> Option<String> {
    [
        "REFOLD_S3_ENDPOINT",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// An S3 client from the default AWS configuration chain; with `endpoint`, that endpoint and
/// path-style addressing (what moto and MinIO need).
pub async fn s3_client(endpoint: Option<&str>) -> aws_sdk_s3::Client {
    let shared = aws_config::load_from_env().await;
    let mut b = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(ep) = endpoint {
        b = b.endpoint_url(ep).force_path_style(true);
    }
    if shared.region().is_none() {
        b = b.region(aws_sdk_s3::config::Region::new("us-east-1"));
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// `s3://bucket/some/prefix` -> ("bucket", "some/prefix").
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::new(ErrorKind::Config, format!("not an s3:// URL: `{url}`")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            format!("no bucket in `{url}`"),
        ));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

fn s3_err<E: std::error::Error + Send + Sync + 'static>(what: String) -> impl FnOnce(E) -> Error {
    move |e| Error::new(ErrorKind::Io, what).with_source(e)
}

/// Dead letters under `s3://bucket/prefix/`: one JSONL object per batch, named by
/// [`batch_object_name`] (sorts by write time, never collides), written with
/// `If-None-Match: *` so nothing is ever overwritten.
#[derive(Clone)]
pub struct S3DeadLetters {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3DeadLetters {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
        }
    }

    /// From `s3://bucket/prefix`, with the endpoint override of the environment.
    pub async fn from_url(url: &str) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let client = s3_client(s3_endpoint_from_env().as_deref()).await;
        Ok(Self::new(client, bucket, prefix))
    }

    fn key_for(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Every dead letter under the prefix, objects in key order (write order).
    pub async fn read_all(&self) -> Result<Vec<DeadLetter>> {
        let list_prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&list_prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_err(format!("list s3://{}/{list_prefix}", self.bucket)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.retain(|k| k.ends_with(".jsonl"));
        keys.sort();
        let mut out = Vec::new();
        for k in keys {
            let obj = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&k)
                .send()
                .await
                .map_err(s3_err(format!("get s3://{}/{k}", self.bucket)))?;
            let bytes = obj
                .body
                .collect()
                .await
                .map_err(s3_err(format!("read s3://{}/{k}", self.bucket)))?
                .into_bytes();
            out.extend(
                decode_jsonl(&bytes)
                    .map_err(|e| e.with_context(format!("s3://{}/{k}", self.bucket)))?,
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl DeadLetterStore for S3DeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = encode_jsonl(batch)?;
        let key = self.key_for(&batch_object_name(batch));
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("put dead letters to s3://{}/{key}", self.bucket),
                )
                .with_source(aws_sdk_s3::error::DisplayErrorContext(e).to_string_error())
            })?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

trait ToStringError {
    fn to_string_error(self) -> std::io::Error;
}

impl<E: std::error::Error> ToStringError for aws_sdk_s3::error::DisplayErrorContext<E> {
    fn to_string_error(self) -> std::io::Error {
        std::io::Error::other(self.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_s3_url("file:///x").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }
}

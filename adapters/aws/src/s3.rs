//! S3 through the AWS SDK: [`read_dead_letters`], every dead letter under an S3 prefix, for
//! operators and tests. (Functions *write* dead letters through refold's `ObjectDeadLetters`, on the same
//!   object-store stack as the tables: one S3 client stack per function.)
//!
//! A local S3 (moto, MinIO) works through an endpoint override with path-style addressing:
//! `REFOLD_S3_ENDPOINT` (or `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`).

use refold::dead_letter::{DeadLetter, decode_jsonl};
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

/// Every dead letter under `s3://bucket/prefix/`, objects in key order ((pipeline, topic,
/// partition, offset) order, see `refold::dead_letter::batch_object_name`), then line order.
pub async fn read_dead_letters(client: &aws_sdk_s3::Client, url: &str) -> Result<Vec<DeadLetter>> {
    let (bucket, prefix) = parse_s3_url(url)?;
    let list_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&list_prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(s3_err(format!("list s3://{bucket}/{list_prefix}")))?;
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
        let obj = client
            .get_object()
            .bucket(&bucket)
            .key(&k)
            .send()
            .await
            .map_err(s3_err(format!("get s3://{bucket}/{k}")))?;
        let bytes = obj
            .body
            .collect()
            .await
            .map_err(s3_err(format!("read s3://{bucket}/{k}")))?
            .into_bytes();
        out.extend(decode_jsonl(&bytes).map_err(|e| e.with_context(format!("s3://{bucket}/{k}")))?);
    }
    Ok(out)
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

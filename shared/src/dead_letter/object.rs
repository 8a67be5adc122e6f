//! Dead letters as objects under a prefix of any store iceberg's `FileIO` reaches (S3 on
//! AWS, moto or MinIO locally, the local filesystem): the same client stack as the state
//! table, so a function carries one S3 stack and one credentials chain.
//!
//! One object per batch, named by [`batch_object_name`]. An object PUT is atomic, and the
//! name is a function of the batch, so a rewrite after a crash or a lost commit replaces
//! an object with the same content: the store is idempotent without a conditional put.

use async_trait::async_trait;
use iceberg::io::FileIO;

use super::{DeadLetter, DeadLetterStore, batch_object_name, encode_jsonl};
use crate::error::{Error, ErrorKind, Result};
use crate::table::StorageConfig;

/// Dead letters under `<prefix>/` (e.g. `s3://bucket/dead-letters/order-events-pipeline`).
#[derive(Clone)]
pub struct ObjectDeadLetters {
    io: FileIO,
    prefix: String,
}

impl std::fmt::Debug for ObjectDeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectDeadLetters")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ObjectDeadLetters {
    /// `url` is `s3://bucket/prefix` (or `file:///dir`); `storage` as for the warehouse.
    pub fn at(url: &str, storage: &StorageConfig) -> Result<Self> {
        if !url.contains("://") || url.ends_with("://") {
            return Err(Error::new(
                ErrorKind::Config,
                format!("dead letters: `{url}` is not a URL like s3://bucket/prefix"),
            ));
        }
        Ok(Self {
            io: crate::table::catalog::file_io(storage),
            prefix: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The location of the object a batch goes to.
    pub fn location_of(&self, batch: &[DeadLetter]) -> Result<String> {
        Ok(format!("{}/{}", self.prefix, batch_object_name(batch)?))
    }
}

#[async_trait]
impl DeadLetterStore for ObjectDeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = encode_jsonl(batch)?;
        let location = self.location_of(batch)?;
        let io_err = |what: &str, e: iceberg::Error| {
            Error::new(ErrorKind::Io, format!("{what} dead letters at {location}")).with_source(e)
        };
        self.io
            .new_output(&location)
            .map_err(|e| io_err("open", e))?
            .write(bytes::Bytes::from(body))
            .await
            .map_err(|e| io_err("write", e))
    }

    fn describe(&self) -> String {
        self.prefix.clone()
    }
}

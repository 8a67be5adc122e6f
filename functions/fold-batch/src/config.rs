//! The function's configuration, from its environment (read once per container).
//!
//! | variable | meaning |
//! |---|---|
//! | `REFOLD_PIPELINE` | path of the pipeline file (YAML), or |
//! | `REFOLD_PIPELINE_INLINE` | the pipeline YAML itself |
//! | `REFOLD_WAREHOUSE` | warehouse: a local folder or `s3://bucket/prefix` |
//! | `REFOLD_CATALOG_URI` | SQL catalog (`sqlite:/path/catalog.db`, `postgres://...`); default `<warehouse>/catalog.db` for a local warehouse |
//! | `REFOLD_DEAD_LETTER` | dead letters: a local folder or `s3://bucket/prefix`; default `<warehouse>/dead-letters` for a local warehouse |
//! | `REFOLD_S3_ENDPOINT` | S3 endpoint override (moto, MinIO), path-style |

use std::sync::Arc;

use refold::dead_letter::{DeadLetterStore, LocalDeadLetters};
use refold::error::{Error, ErrorKind, Result};

/// Where the dead letters go, from `REFOLD_DEAD_LETTER` (or next to a local warehouse).
pub async fn dead_letters_from_env() -> Result<Arc<dyn DeadLetterStore>> {
    let target = match std::env::var("REFOLD_DEAD_LETTER")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(t) => t,
        None => match std::env::var("REFOLD_WAREHOUSE")
            .ok()
            .filter(|w| !w.is_empty() && !w.contains("://"))
        {
            Some(w) => format!("{}/dead-letters", w.trim_end_matches('/')),
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "REFOLD_DEAD_LETTER is not set (a local folder or s3://bucket/prefix)",
                ));
            }
        },
    };
    dead_letters_at(&target).await
}

/// A dead-letter store for a local folder (`/path`, `file:///path`) or `s3://bucket/prefix`.
pub async fn dead_letters_at(target: &str) -> Result<Arc<dyn DeadLetterStore>> {
    if target.starts_with("s3://") {
        Ok(Arc::new(refold_aws::S3DeadLetters::from_url(target).await?))
    } else if let Some(path) = target.strip_prefix("file://") {
        Ok(Arc::new(LocalDeadLetters::new(path)))
    } else if target.contains("://") {
        Err(Error::new(
            ErrorKind::Config,
            format!("dead letters: unsupported URL `{target}` (a folder or s3://)"),
        ))
    } else {
        Ok(Arc::new(LocalDeadLetters::new(target)))
    }
}

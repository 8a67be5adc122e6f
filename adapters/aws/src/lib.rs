//! refold's AWS adapters (only `functions/*` and this crate know the AWS SDK):
//! - `s3` (feature `s3`): [`read_dead_letters`], every dead letter under an S3 prefix, for
//!   operators and tests.
//! - `glue` (feature `glue`): [`glue::GlueCatalogSwap`], the Glue Data Catalog as the state
//!   tables' catalog (its compare-and-set is `UpdateTable` with `VersionId`), and
//!   [`catalog_from_env`], which opens the catalog `REFOLD_CATALOG` names (`glue` or `sql`).
//! - `invoke` (feature `lambda`): [`invoke::LambdaShardInvoker`], replay shards as
//!   asynchronous invokes of the replay-worker function.
//!
//! - `kafka_secret` (feature `secrets`): the rdkafka clients' credentials from Secrets
//!   Manager (`REFOLD_KAFKA_SECRET_ARN`), read at cold start.
//!
//! Functions take `default-features = false, features = ["glue"]`: the Glue client, not the
//! S3 SDK (they reach S3 through iceberg's `FileIO`, one S3 stack per function).

#[cfg(feature = "glue")]
mod catalog;
#[cfg(feature = "glue")]
pub mod glue;
#[cfg(feature = "lambda")]
pub mod invoke;
#[cfg(feature = "secrets")]
pub mod kafka_secret;
#[cfg(feature = "s3")]
mod s3;

#[cfg(feature = "glue")]
pub use catalog::{catalog_from_env, replay_store_from_env};
#[cfg(feature = "s3")]
pub use s3::{parse_s3_url, read_dead_letters, s3_client, s3_endpoint_from_env};

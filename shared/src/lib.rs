//! refold's shared crate: everything the Lambda handlers and the CLI have in common.
//!
//! The core (`envelope`, `pipeline`, `fold`, `batch`) is pure: no AWS, no Lambda, no Kafka
//! client types, no I/O in the fold. Around it, `table` (the Iceberg state table) and
//! `dead_letter` are ports with real and in-memory adapters. See ARCHITECTURE.md.

pub mod archive;
pub mod batch;
pub mod compactor;
pub mod dead_letter;
pub mod emf;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod fold;
pub mod history;
pub mod json;
pub mod parallel;
pub mod pipeline;
pub mod record;
pub mod replay;
pub mod table;

pub use error::{Error, ErrorKind, Result};

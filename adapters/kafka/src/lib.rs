//! refold's Kafka adapter: the only crate that knows rdkafka.
//!
//! - [`producer`]: [`Producer`] produces records, or the lines of a JSONL file keyed by the
//!   caller (the pipeline's key).
//! - [`admin`]: topic administration ([`create_topic`]).
//! - [`reader`]: [`TopicReader`] / [`read_topic`] read a topic's partitions into
//!   [`SourceRecord`]s from the offsets asked for up to the high watermark, and fail with
//!   [`BeyondRetention`] when the log no longer starts at or before an asked offset (never
//!   silently starting later).
//! - [`esm`]: the Lambda Kafka event source mapping event, built from records
//!   ([`esm_event`]), and [`consume_esm_batches`], a topic read into such events.
//! - [`mock`]: [`MockBroker`], an in-process broker (`rdkafka::mocking::MockCluster`) for the
//!   embedded demo and tests, and the limits of its log.
//! - [`dlq`]: [`KafkaDeadLetters`], dead letters to a DLQ topic.
//! - [`connection`]: [`KafkaConnection`], brokers and authentication (SASL/SCRAM, mTLS; from
//!   the environment or given), the one place every client's `ClientConfig` starts from.
//!   Constructors taking `brokers: &str` authenticate as the environment says.
//! - [`replay`]: the replay ports: [`KafkaOffsets`] (watermarks, `offsets_for_times`) and
//!   [`KafkaRanges`] (offset ranges read in bounded batches).
//!
//! The ESM JSON is built by hand (serde_json), so this crate does not depend on
//! `aws_lambda_events` (only `functions/*` do).
//!
//! Keys: this crate does not know how the pipeline keys an event; callers pass the key of a
//! line, e.g. from `refold::envelope::Envelope::decode(line)?.key(key_field)`.
//!
//! [`SourceRecord`]: refold::record::SourceRecord

pub mod admin;
pub mod connection;
pub mod context;
pub mod dlq;
pub mod esm;
pub mod mock;
pub mod producer;
pub mod reader;
pub mod replay;

pub use admin::{create_topic, create_topic_on};
pub use connection::{KafkaAuth, KafkaConnection, ScramMechanism, Secret};
pub use context::{KafkaContext, MskIamSigner};
pub use dlq::KafkaDeadLetters;
pub use esm::{EsmSource, consume_esm_batches, esm_event, esm_record};
pub use mock::{MockBroker, mock_windows};
pub use producer::{ProduceReport, Producer, default_partition, jsonl_lines};
pub use reader::{BeyondRetention, TopicReader, beyond_retention, read_topic};
pub use replay::{KafkaOffsets, KafkaRanges};

use rdkafka::error::KafkaError;
use refold::error::{Error, ErrorKind};

/// Maps an rdkafka error to an I/O error saying what was being done.
fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let what = what.into();
    move |e| Error::new(ErrorKind::Io, what).with_source(e)
}

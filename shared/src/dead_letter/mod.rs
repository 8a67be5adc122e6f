//! Dead letters: records that could not be folded (poison events), kept with the raw bytes,
//! where they came from and why, so the rest of the batch goes on.
//!
//! The port is [`DeadLetterStore`]; this crate has the in-memory, local-folder ([`local`])
//! and object-store ([`object`]: S3 and anything else iceberg's `FileIO` reaches, so a function
//! has one S3 stack) adapters. The Kafka DLQ topic lives in `refold-kafka`.
//!
//! Order of writes: the engine puts a batch's dead letters *before* the commit that moves
//! the offsets past them, under a name that is a function of the batch
//! ([`batch_object_name`]); a rewrite after a crash or a lost commit is harmless.
//! On the wire (JSONL, one dead letter per line) `key` and `raw` are base64 (standard,
//! padded), so any bytes survive.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::record::SourceRecord;

pub mod local;
pub mod object;

pub use local::LocalDeadLetters;
pub use object::ObjectDeadLetters;

/// Why a record became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// The trigger's base64 text of the key or value does not decode.
    BadBase64,
    /// The value is not JSON.
    BadJson,
    /// The value is JSON but not a valid event envelope.
    InvalidEnvelope,
    /// The fold function raised (or returned something that is not a state).
    FoldError,
    /// The fold exceeded a limit (ticks, heap, call stack, state size).
    LimitExceeded,
    /// The record's Kafka key is missing or is not the row key (see `batch::KeyCheck`).
    KeyMismatch,
}

impl DeadLetterKind {
    pub const ALL: [DeadLetterKind; 6] = [
        DeadLetterKind::BadBase64,
        DeadLetterKind::BadJson,
        DeadLetterKind::InvalidEnvelope,
        DeadLetterKind::FoldError,
        DeadLetterKind::LimitExceeded,
        DeadLetterKind::KeyMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::BadBase64 => "bad_base64",
            DeadLetterKind::BadJson => "bad_json",
            DeadLetterKind::InvalidEnvelope => "invalid_envelope",
            DeadLetterKind::FoldError => "fold_error",
            DeadLetterKind::LimitExceeded => "limit_exceeded",
            DeadLetterKind::KeyMismatch => "key_mismatch",
        }
    }
}

impl std::fmt::Display for DeadLetterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One poison record with its origin and the reason it was not folded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Record time, milliseconds since the Unix epoch, when the source had one.
    pub timestamp_ms: Option<i64>,
    #[serde(with = "b64_opt", default)]
    pub key: Option<Vec<u8>>,
    /// The record's value as received: the decoded bytes, or for `BadBase64` the undecoded
    /// text of the trigger.
    #[serde(with = "b64")]
    pub raw: Vec<u8>,
    pub reason: String,
    pub kind: DeadLetterKind,
    /// The pipeline (its `metadata.name`) that rejected the record.
    pub pipeline: String,
}

impl DeadLetter {
    /// A dead letter for a record that was read fine but could not be folded.
    pub fn from_record(
        record: &SourceRecord,
        kind: DeadLetterKind,
        reason: impl Into<String>,
        pipeline: impl Into<String>,
    ) -> Self {
        Self {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key.clone(),
            raw: record.value.clone(),
            reason: reason.into(),
            kind,
            pipeline: pipeline.into(),
        }
    }

    /// The raw value as text when it is UTF-8 (for logs and the demo), else a placeholder.
    pub fn raw_text(&self) -> std::borrow::Cow<'_, str> {
        match std::str::from_utf8(&self.raw) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => std::borrow::Cow::Owned(format!("<{} bytes, not UTF-8>", self.raw.len())),
        }
    }
}

/// Serializes a batch as JSONL (one dead letter per line, each line ending in `\n`).
pub fn encode_jsonl(batch: &[DeadLetter]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(batch.len() * 256);
    for d in batch {
        serde_json::to_writer(&mut out, d).map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot serialize a dead letter").with_source(e)
        })?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Parses JSONL written by [`encode_jsonl`]; blank lines are ignored.
pub fn decode_jsonl(bytes: &[u8]) -> Result<Vec<DeadLetter>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::new(ErrorKind::InvalidInput, "dead letters are not UTF-8").with_source(e)
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("dead letter line {}", i + 1),
                )
                .with_source(e)
            })
        })
        .collect()
}

/// The name of one batch's object/file, a function of what it holds:
/// `<pipeline>-<topic>-p<partition>-o<first offset, 20 digits>-<last offset, 20 digits>.jsonl`.
/// Deterministic on purpose: dead letters are written *before* the commit that moves the
/// offsets past them, so a crash in between makes the redelivered batch write the same name
/// again, harmlessly. A batch holds one partition (the engine puts per partition).
pub fn batch_object_name(batch: &[DeadLetter]) -> Result<String> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Err(Error::new(
            ErrorKind::Internal,
            "no name for an empty dead-letter batch",
        ));
    };
    if let Some(d) = batch
        .iter()
        .find(|d| d.partition != first.partition || d.topic != first.topic)
    {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "a dead-letter batch holds one partition: {}/{} and {}/{}",
                first.topic, first.partition, d.topic, d.partition
            ),
        ));
    }
    let (lo, hi) = batch.iter().fold((i64::MAX, i64::MIN), |(lo, hi), d| {
        (lo.min(d.offset), hi.max(d.offset))
    });
    debug_assert!(lo == first.offset && hi == last.offset, "sorted by offset");
    Ok(format!(
        "{}-{}-p{}-o{lo:020}-{hi:020}.jsonl",
        sanitize(&first.pipeline),
        sanitize(&first.topic),
        first.partition,
    ))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where dead letters go. `put` is called once per batch with all of its dead letters and
/// must be durable when it returns Ok; an empty batch writes nothing.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()>;

    /// Where the dead letters go, for logs (`file:///...`, `s3://bucket/prefix`, `memory`).
    fn describe(&self) -> String {
        "dead letters".to_owned()
    }
}

#[async_trait]
impl<T: DeadLetterStore + ?Sized> DeadLetterStore for Arc<T> {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        (**self).put(batch).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

#[async_trait]
impl<T: DeadLetterStore + ?Sized> DeadLetterStore for Box<T> {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        (**self).put(batch).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Dead letters kept in memory (tests, the embedded demo).
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    batches: Mutex<Vec<Vec<DeadLetter>>>,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every dead letter put so far, in put order.
    pub fn all(&self) -> Vec<DeadLetter> {
        self.batches
            .lock()
            .map(|b| b.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// How many non-empty batches were put.
    pub fn batch_count(&self) -> usize {
        self.batches.lock().map(|b| b.len()).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.batches
            .lock()
            .map(|b| b.iter().map(Vec::len).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl DeadLetterStore for MemoryDeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.batches
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "dead letter store lock poisoned"))?
            .push(batch.to_vec());
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// `key` and `raw` as standard padded base64 on the wire (the `base64` crate).
mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD.decode(text.as_bytes()).map_err(D::Error::custom)
    }
}

mod b64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::b64::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::b64")] Vec<u8>);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(v)| v))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(offset: i64, kind: DeadLetterKind) -> DeadLetter {
        DeadLetter {
            topic: "domain.orders.events".into(),
            partition: 2,
            offset,
            timestamp_ms: Some(1_770_000_000_000),
            key: Some(b"order-1".to_vec()),
            raw: vec![0xff, b'{', 0, b'\n'],
            reason: "not JSON".into(),
            kind,
            pipeline: "order-events-pipeline".into(),
        }
    }

    #[test]
    fn names_are_a_function_of_the_batch() {
        let b = [
            sample(7, DeadLetterKind::BadJson),
            sample(9, DeadLetterKind::FoldError),
        ];
        let n = batch_object_name(&b).unwrap();
        assert_eq!(
            n,
            "order-events-pipeline-domain.orders.events-p2-o00000000000000000007-00000000000000000009.jsonl"
        );
        assert_eq!(batch_object_name(&b).unwrap(), n, "same batch, same name");
        let mut other = sample(8, DeadLetterKind::BadJson);
        other.partition = 3;
        assert!(batch_object_name(&[b[0].clone(), other]).is_err());
        assert!(batch_object_name(&[]).is_err());
    }

    #[test]
    fn json_shape_is_base64_and_snake_case() {
        let d = sample(7, DeadLetterKind::BadJson);
        let v: serde_json::Value = serde_json::to_value(&d).unwrap();
        assert_eq!(v["kind"], "bad_json");
        assert_eq!(v["raw"], "/3sACg==");
        assert_eq!(v["key"], "b3JkZXItMQ==");
        let back: DeadLetter = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
        let mut nokey = d.clone();
        nokey.key = None;
        let back: DeadLetter =
            serde_json::from_str(&serde_json::to_string(&nokey).unwrap()).unwrap();
        assert_eq!(back, nokey);
    }

    #[tokio::test]
    async fn memory_store_keeps_batches() {
        let m = MemoryDeadLetters::new();
        m.put(&[]).await.unwrap();
        m.put(&[
            sample(1, DeadLetterKind::BadBase64),
            sample(2, DeadLetterKind::FoldError),
        ])
        .await
        .unwrap();
        m.put(&[sample(3, DeadLetterKind::LimitExceeded)])
            .await
            .unwrap();
        assert_eq!(m.batch_count(), 2);
        assert_eq!(
            m.all().iter().map(|d| d.offset).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}

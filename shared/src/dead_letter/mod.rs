//! Dead letters: records that could not be folded (poison events), kept with the raw bytes,
//! where they came from and why, so the rest of the batch goes on.
//!
//! The port is [`DeadLetterStore`]; this crate has the local-folder and in-memory adapters.
//! The S3 adapter lives in `refold-aws`, the Kafka DLQ topic in `refold-kafka`.
//! On the wire (JSONL, one dead letter per line) `key` and `raw` are base64 (standard,
//! padded), so any bytes survive.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::record::SourceRecord;

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
}

impl DeadLetterKind {
    pub const ALL: [DeadLetterKind; 5] = [
        DeadLetterKind::BadBase64,
        DeadLetterKind::BadJson,
        DeadLetterKind::InvalidEnvelope,
        DeadLetterKind::FoldError,
        DeadLetterKind::LimitExceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::BadBase64 => "bad_base64",
            DeadLetterKind::BadJson => "bad_json",
            DeadLetterKind::InvalidEnvelope => "invalid_envelope",
            DeadLetterKind::FoldError => "fold_error",
            DeadLetterKind::LimitExceeded => "limit_exceeded",
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

/// A name for one batch's object/file that sorts by write time and never collides:
/// `<unix ms, 13 digits>-<topic>-p<partition>-o<first offset, 20 digits>-<uuid>.jsonl`.
pub fn batch_object_name(batch: &[DeadLetter]) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let (topic, partition, offset) = batch
        .first()
        .map(|d| (sanitize(&d.topic), d.partition, d.offset))
        .unwrap_or_else(|| ("none".to_owned(), 0, 0));
    format!(
        "{ms:013}-{topic}-p{partition}-o{offset:020}-{}.jsonl",
        uuid::Uuid::new_v4().simple()
    )
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

/// Dead letters as files in a local folder: one JSONL file per batch, named by
/// [`batch_object_name`], written to a temporary name and renamed (never half a file).
#[derive(Debug, Clone)]
pub struct LocalDeadLetters {
    dir: PathBuf,
}

impl LocalDeadLetters {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every dead letter in the folder, files in name order (write order), then line order.
    pub async fn read_all(&self) -> Result<Vec<DeadLetter>> {
        let mut names = Vec::new();
        let mut rd = match tokio::fs::read_dir(&self.dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e, &self.dir)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(|e| io_err(e, &self.dir))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl") && !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let p = self.dir.join(&n);
            let bytes = tokio::fs::read(&p).await.map_err(|e| io_err(e, &p))?;
            out.extend(decode_jsonl(&bytes).map_err(|e| e.with_context(p.display().to_string()))?);
        }
        Ok(out)
    }
}

fn io_err(e: std::io::Error, path: &Path) -> Error {
    Error::new(ErrorKind::Io, format!("dead letters at {}", path.display())).with_source(e)
}

#[async_trait]
impl DeadLetterStore for LocalDeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = encode_jsonl(batch)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| io_err(e, &self.dir))?;
        let name = batch_object_name(batch);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let dst = self.dir.join(&name);
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| io_err(e, &tmp))?;
        // Durable before it counts: the batch's offsets move on once this returns.
        let f = tokio::fs::File::open(&tmp)
            .await
            .map_err(|e| io_err(e, &tmp))?;
        f.sync_all().await.map_err(|e| io_err(e, &tmp))?;
        tokio::fs::rename(&tmp, &dst)
            .await
            .map_err(|e| io_err(e, &dst))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

/// Standard padded base64 (RFC 4648 §4), small enough to keep this crate free of a codec
/// dependency; used for `key` and `raw` on the wire.
pub mod base64_std {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            out.push(ALPHABET[(n >> 18) as usize & 63] as char);
            out.push(ALPHABET[(n >> 12) as usize & 63] as char);
            out.push(if chunk.len() > 1 {
                ALPHABET[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if chunk.len() > 2 {
                ALPHABET[n as usize & 63] as char
            } else {
                '='
            });
        }
        out
    }

    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }

    /// Decodes padded standard base64; `None` when the text is not exactly that.
    pub fn decode(input: &str) -> Option<Vec<u8>> {
        let s = input.as_bytes();
        if !s.len().is_multiple_of(4) {
            return None;
        }
        let mut out = Vec::with_capacity(s.len() / 4 * 3);
        let last = s.len() / 4;
        for (i, q) in s.chunks(4).enumerate() {
            let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && i + 1 != last) {
                return None;
            }
            let mut n = 0u32;
            for (j, &c) in q.iter().enumerate() {
                let v = if j >= 4 - pad { 0 } else { val(c)? };
                n = (n << 6) | v;
            }
            out.push((n >> 16) as u8);
            if pad < 2 {
                out.push((n >> 8) as u8);
            }
            if pad < 1 {
                out.push(n as u8);
            }
        }
        Some(out)
    }
}

mod b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::base64_std::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let t = String::deserialize(d)?;
        super::base64_std::decode(&t).ok_or_else(|| serde::de::Error::custom("invalid base64"))
    }
}

mod b64_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&super::base64_std::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => super::base64_std::decode(&t)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("invalid base64")),
            None => Ok(None),
        }
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
    fn base64_round_trips_and_rejects() {
        for n in 0..40usize {
            let v: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_std::decode(&base64_std::encode(&v)).unwrap(), v);
        }
        assert_eq!(base64_std::encode(b"Man"), "TWFu");
        assert_eq!(base64_std::encode(b"Ma"), "TWE=");
        assert_eq!(base64_std::decode("TWE=").unwrap(), b"Ma");
        assert!(base64_std::decode("TWE").is_none());
        assert!(base64_std::decode("T!E=").is_none());
        assert!(base64_std::decode("TW==TWFu").is_none());
    }

    #[test]
    fn json_shape_is_base64_and_snake_case() {
        let d = sample(7, DeadLetterKind::BadJson);
        let v: serde_json::Value = serde_json::to_value(&d).unwrap();
        assert_eq!(v["kind"], "bad_json");
        assert_eq!(v["raw"], base64_std::encode(&d.raw));
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

    #[tokio::test]
    async fn local_store_one_sorted_file_per_batch() {
        let dir = std::env::temp_dir().join(format!("refold-dl-{}", uuid::Uuid::new_v4().simple()));
        let s = LocalDeadLetters::new(&dir);
        s.put(&[]).await.unwrap();
        assert!(s.read_all().await.unwrap().is_empty());
        for i in 0..5 {
            s.put(&[
                sample(i * 2, DeadLetterKind::InvalidEnvelope),
                sample(i * 2 + 1, DeadLetterKind::BadJson),
            ])
            .await
            .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(".jsonl") && !n.starts_with('.'))
        );
        names.sort();
        let all = s.read_all().await.unwrap();
        assert_eq!(
            all.iter().map(|d| d.offset).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

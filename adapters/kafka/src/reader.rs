//! Reading a topic: each partition from the offset asked for up to its high watermark.
//!
//! A reader never starts later than asked. When a partition's log now starts after the
//! offset asked for (retention deleted old segments, `DeleteRecords` ran, or the in-process
//! broker trimmed its log), the records in between are gone: the read fails with
//! [`BeyondRetention`] instead of silently starting at the log start. The consumer runs with
//! `auto.offset.reset=error`, so a log start that moves during the read fails it too.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use refold::error::{Error, ErrorKind, Result};
use refold::record::SourceRecord;

use crate::connection::KafkaConnection;
use crate::context::{KafkaContext, TOKEN_TIMEOUT};
use crate::kafka_err;

/// How long a metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll of the consumer waits for a record.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long the broker may hold a fetch that finds no new record, and how long the consumer
/// waits before fetching again after an empty or failed fetch (librdkafka's defaults, 500 ms,
/// made each read of a freshly produced window take a second or two; a reader stops at the
/// high watermark it saw, so it never idles long at these rates).
const FETCH_WAIT_MAX: Duration = Duration::from_millis(20);
/// How long [`TopicReader::read_available`] may take unless told otherwise.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The log of a partition no longer holds the offset a reader was asked to start from: the
/// records from `asked_offset` up to `log_start_offset` are beyond the topic's retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeyondRetention {
    pub topic: String,
    pub partition: i32,
    pub asked_offset: i64,
    /// The partition's low watermark: the first offset the broker still holds.
    pub log_start_offset: i64,
}

impl fmt::Display for BeyondRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {} partition {}: asked to read from offset {}, but the log starts at offset {} \
             now: offsets {}..{} are beyond the topic's retention (the broker deleted them); \
             nothing was read",
            self.topic,
            self.partition,
            self.asked_offset,
            self.log_start_offset,
            self.asked_offset,
            self.log_start_offset - 1
        )
    }
}

impl std::error::Error for BeyondRetention {}

/// The [`BeyondRetention`] behind an error, if that is why it failed.
pub fn beyond_retention(e: &Error) -> Option<&BeyondRetention> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e as _);
    while let Some(c) = cur {
        if let Some(b) = c.downcast_ref::<BeyondRetention>() {
            return Some(b);
        }
        cur = c.source();
    }
    None
}

pub(crate) fn beyond_retention_error(b: BeyondRetention) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "the records asked for are no longer in Kafka",
    )
    .with_source(b)
}

/// What to read of one partition: offsets `from..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    from: i64,
    end: i64,
}

/// Checks an asked offset against a partition's watermarks; the span to read (None when
/// there is nothing new).
fn span(topic: &str, partition: i32, asked: i64, low: i64, high: i64) -> Result<Option<Span>> {
    if low > asked {
        return Err(beyond_retention_error(BeyondRetention {
            topic: topic.to_owned(),
            partition,
            asked_offset: asked,
            log_start_offset: low,
        }));
    }
    if asked > high {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "topic {topic} partition {partition}: asked to read from offset {asked}, past the \
                 end of the log (its next offset is {high})"
            ),
        ));
    }
    Ok((high > asked).then_some(Span {
        from: asked,
        end: high,
    }))
}

/// A consumer on `conn` (never commits, never jumps to another offset), created with the
/// connection's context; an MSK IAM consumer has its first token before this returns.
pub fn consumer_with(conn: &KafkaConnection, group: &str) -> Result<Consumer> {
    conn.client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // Never jump to another offset when the asked one is gone: fail.
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX.as_millis().to_string())
        .set(
            "fetch.error.backoff.ms",
            FETCH_WAIT_MAX.as_millis().to_string(),
        )
        .create_with_context(conn.context())
        .map_err(kafka_err(format!("kafka consumer for {conn}")))
        .map(prime_token)
}

/// Every refold consumer: rdkafka's, with refold's context (it signs MSK IAM tokens).
pub type Consumer = BaseConsumer<KafkaContext>;

/// Serves an MSK IAM consumer's first token request before any metadata call: librdkafka
/// asks through the consumer's queue, which only a poll serves.
fn prime_token(c: Consumer) -> Consumer {
    if let Some(signer) = c.context().msk_iam().cloned() {
        let until = Instant::now() + TOKEN_TIMEOUT;
        while signer.signed() == 0 && Instant::now() < until {
            // No partition is assigned yet: a poll serves events only.
            let _ = c.poll(Duration::from_millis(50));
        }
    }
    c
}

pub(crate) fn source_record(m: &BorrowedMessage<'_>) -> SourceRecord {
    let timestamp_ms = match m.timestamp() {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        Timestamp::NotAvailable => None,
    };
    SourceRecord {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// Reads a topic's partitions, each from a position (offset 0, the start of the topic's
/// history, unless [`TopicReader::starting_at`] says otherwise) up to the high watermark of
/// the moment, and moves the positions on. Blocking (call from `spawn_blocking` in async
/// code).
pub struct TopicReader {
    consumer: Consumer,
    topic: String,
    /// Next offset to read, per partition; a partition not in here starts at offset 0.
    next: BTreeMap<i32, i64>,
    /// The consumer's assignment: per partition, the offset of the next record it will
    /// deliver. A read whose spans start there goes on without a new assignment (which
    /// would restart the fetchers, costing about a second).
    assigned: BTreeMap<i32, i64>,
    read_timeout: Duration,
}

impl TopicReader {
    /// A reader of `topic` at `brokers`, authenticated as the environment says.
    pub fn new(brokers: &str, topic: &str) -> Result<Self> {
        Self::connect(&KafkaConnection::from_env(brokers)?, topic)
    }

    /// A reader of `topic` on `conn`.
    pub fn connect(conn: &KafkaConnection, topic: &str) -> Result<Self> {
        let group = format!("refold-reader-{}", std::process::id());
        Ok(Self {
            consumer: consumer_with(conn, &group)?,
            topic: topic.to_owned(),
            next: BTreeMap::new(),
            assigned: BTreeMap::new(),
            read_timeout: DEFAULT_READ_TIMEOUT,
        })
    }

    /// Starts the given partitions at the given offsets (the others at offset 0).
    #[must_use]
    pub fn starting_at(mut self, offsets: impl IntoIterator<Item = (i32, i64)>) -> Self {
        self.next.extend(offsets);
        self
    }

    /// How long one [`TopicReader::read_available`] may take before it fails.
    #[must_use]
    pub fn with_read_timeout(mut self, read_timeout: Duration) -> Self {
        self.read_timeout = read_timeout;
        self
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next offset to read, per partition read or asked for so far.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.next
    }

    /// Reads every record from each partition's position up to its high watermark (taken at
    /// the start of the call), in consumption order: per partition in offset order,
    /// partitions interleaved as the broker delivered them. Fails with [`BeyondRetention`]
    /// (see [`beyond_retention`]) when a partition's log starts after its position.
    pub fn read_available(&mut self) -> Result<Vec<SourceRecord>> {
        let spans = self.plan()?;
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let records = self.receive(&spans)?;
        self.next.extend(spans.iter().map(|(p, s)| (*p, s.end)));
        Ok(records)
    }

    fn partitions(&self) -> Result<Vec<i32>> {
        let topic = &self.topic;
        let md = self
            .consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(kafka_err(format!("metadata of topic {topic}")))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("topic {topic} has no partitions (does it exist?)"),
            ));
        }
        if let Some(p) = self.next.keys().find(|p| !partitions.contains(p)) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "asked to read partition {p} of topic {topic}, which has partitions {partitions:?}"
                ),
            ));
        }
        Ok(partitions)
    }

    /// The span of each partition with records to read, checking every position against
    /// the log start.
    fn plan(&self) -> Result<BTreeMap<i32, Span>> {
        let mut spans = BTreeMap::new();
        for p in self.partitions()? {
            let asked = self.next.get(&p).copied().unwrap_or(0);
            if let Some(s) = self.check(p, asked)? {
                spans.insert(p, s);
            }
        }
        Ok(spans)
    }

    fn check(&self, partition: i32, asked: i64) -> Result<Option<Span>> {
        let topic = &self.topic;
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(kafka_err(format!(
                "watermarks of topic {topic} partition {partition}"
            )))?;
        span(topic, partition, asked, low, high)
    }

    /// Assigns the spans' partitions at their first offsets, unless the consumer already
    /// delivers each from there.
    fn assign(&mut self, spans: &BTreeMap<i32, Span>) -> Result<()> {
        if spans
            .iter()
            .all(|(p, s)| self.assigned.get(p) == Some(&s.from))
        {
            return Ok(());
        }
        let topic = &self.topic;
        let mut tpl = TopicPartitionList::new();
        for (p, s) in spans {
            tpl.add_partition_offset(topic, *p, Offset::Offset(s.from))
                .map_err(kafka_err(format!("assign topic {topic} partition {p}")))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(kafka_err(format!("assign topic {topic}")))?;
        self.assigned = spans.iter().map(|(p, s)| (*p, s.from)).collect();
        Ok(())
    }

    fn receive(&mut self, spans: &BTreeMap<i32, Span>) -> Result<Vec<SourceRecord>> {
        self.assign(spans)?;
        let mut reached: BTreeMap<i32, i64> = spans.iter().map(|(p, s)| (*p, s.from)).collect();
        let mut out = Vec::new();
        let deadline = Instant::now() + self.read_timeout;
        while spans
            .iter()
            .any(|(p, s)| reached.get(p).is_some_and(|r| *r < s.end))
        {
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "reading topic {}: timed out after {:?}: read up to {reached:?} of {spans:?}",
                        self.topic, self.read_timeout
                    ),
                ));
            }
            let Some(m) = self.consumer.poll(POLL_INTERVAL) else {
                continue;
            };
            let m = m.map_err(|e| self.consume_error(e, &reached))?;
            let (p, o) = (m.partition(), m.offset());
            self.assigned.insert(p, o + 1);
            let (Some(s), Some(r)) = (spans.get(&p), reached.get_mut(&p)) else {
                continue;
            };
            if o < *r {
                continue; // fetched before, already read
            }
            if o >= s.end {
                *r = s.end; // offsets below the end came first: this partition is done
                continue;
            }
            out.push(source_record(&m));
            *r = o + 1;
        }
        Ok(out)
    }

    /// A consume error; when the broker no longer had an offset, which partition and why.
    fn consume_error(&self, e: KafkaError, reached: &BTreeMap<i32, i64>) -> Error {
        let gone = matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
        );
        if gone {
            for (p, asked) in reached {
                if let Err(explained) = self.check(*p, *asked) {
                    return explained;
                }
            }
        }
        Error::new(ErrorKind::Io, format!("consume topic {}", self.topic)).with_source(e)
    }
}

/// Reads every record of `topic` from the start of its history (offset 0 of each partition)
/// up to the high watermarks of the moment; see [`TopicReader::read_available`]. Fails with
/// [`BeyondRetention`] when a partition's log no longer starts at offset 0.
pub fn read_topic(brokers: &str, topic: &str, timeout: Duration) -> Result<Vec<SourceRecord>> {
    TopicReader::new(brokers, topic)?
        .with_read_timeout(timeout)
        .read_available()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_position_before_the_log_start_is_beyond_retention() {
        let e = span("t", 2, 5, 9, 20).unwrap_err();
        let b = beyond_retention(&e).unwrap();
        assert_eq!((b.partition, b.asked_offset, b.log_start_offset), (2, 5, 9));
        let text = e.to_string();
        for needle in ["topic t partition 2", "offset 5", "offset 9", "retention"] {
            assert!(text.contains(needle), "`{needle}` missing from: {text}");
        }
    }

    #[test]
    fn spans_from_the_position_to_the_high_watermark() {
        assert_eq!(
            span("t", 0, 3, 3, 7).unwrap(),
            Some(Span { from: 3, end: 7 })
        );
        assert_eq!(span("t", 0, 7, 0, 7).unwrap(), None, "nothing new");
        let e = span("t", 0, 8, 0, 7).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        assert!(beyond_retention(&e).is_none());
    }
}

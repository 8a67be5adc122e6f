//! The replay ports on rdkafka: [`KafkaOffsets`] (refold's `OffsetResolver`: partitions,
//! watermarks, `offsets_for_times`) and [`KafkaRanges`] (refold's `RangeSource`: offset
//! ranges of partitions read in bounded batches).
//!
//! A time past the last record: Apache Kafka answers "no offset" (-1, `Offset::End`); tansu
//! answers offset 0. So an answer is trusted only when the record there is at or after the
//! time asked (one fetch of that record); otherwise it is "past the end" (`None`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use refold::error::{Error, ErrorKind, Result};
use refold::record::SourceRecord;
use refold::replay::resolve::{OffsetResolver, Watermarks};
use refold::replay::source::{RangeReader, RangeSource, Ranges};

use crate::KafkaConnection;
use crate::kafka_err;
use crate::reader::{
    BeyondRetention, Consumer, beyond_retention_error, consumer_with, source_record,
};

/// How long a metadata, watermark or offset lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll waits.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long one batch read may take before it fails.
pub const DEFAULT_BATCH_TIMEOUT: Duration = Duration::from_secs(60);

fn client(conn: &KafkaConnection, purpose: &str) -> Result<Consumer> {
    consumer_with(conn, &format!("refold-{purpose}-{}", std::process::id()))
}

fn watermarks(c: &Consumer, topic: &str, p: i32) -> Result<Watermarks> {
    let (low, high) = c
        .fetch_watermarks(topic, p, LOOKUP_TIMEOUT)
        .map_err(kafka_err(format!(
            "watermarks of topic {topic} partition {p}"
        )))?;
    Ok(Watermarks { low, high })
}

/// Offsets and times of a topic on a broker.
#[derive(Clone)]
pub struct KafkaOffsets {
    conn: KafkaConnection,
}

impl KafkaOffsets {
    pub fn new(conn: KafkaConnection) -> Self {
        Self { conn }
    }

    /// On `brokers`, authenticated as the environment says ([`KafkaConnection::from_env`]).
    pub fn from_env(brokers: &str) -> Result<Self> {
        Ok(Self::new(KafkaConnection::from_env(brokers)?))
    }

    fn partitions_blocking(&self, topic: &str) -> Result<Vec<i32>> {
        let c = client(&self.conn, "offsets")?;
        let md = c
            .fetch_metadata(Some(topic), LOOKUP_TIMEOUT)
            .map_err(kafka_err(format!("metadata of topic {topic}")))?;
        let mut ps: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        ps.sort_unstable();
        if ps.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("topic {topic} has no partitions (does it exist?)"),
            ));
        }
        Ok(ps)
    }

    fn offset_for_time_blocking(&self, topic: &str, p: i32, time_ms: i64) -> Result<Option<i64>> {
        let c = client(&self.conn, "offsets")?;
        let w = watermarks(&c, topic, p)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(time_ms))
            .map_err(kafka_err(format!(
                "offset for time in {topic} partition {p}"
            )))?;
        let got = c
            .offsets_for_times(tpl, LOOKUP_TIMEOUT)
            .map_err(kafka_err(format!(
                "offsets_for_times of {topic} partition {p}"
            )))?;
        let answer = got
            .find_partition(topic, p)
            .map(|e| e.offset())
            .unwrap_or(Offset::End);
        let o = match answer {
            Offset::Offset(o) if o >= w.low && o < w.high => o,
            _ => return Ok(None),
        };
        // Trust it only when the record there is at or after the time (tansu answers 0).
        match record_time_at(&c, topic, p, o)? {
            Some(t) if t >= time_ms => Ok(Some(o)),
            _ => Ok(None),
        }
    }
}

/// The timestamp of the record at `offset` (None: no timestamp).
fn record_time_at(c: &Consumer, topic: &str, p: i32, offset: i64) -> Result<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(offset))
        .map_err(kafka_err(format!("assign {topic} partition {p}")))?;
    c.assign(&tpl)
        .map_err(kafka_err(format!("assign {topic} partition {p}")))?;
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    while Instant::now() < deadline {
        let Some(m) = c.poll(POLL_INTERVAL) else {
            continue;
        };
        let m = m.map_err(kafka_err(format!(
            "read {topic} partition {p} offset {offset}"
        )))?;
        if m.partition() == p && m.offset() >= offset {
            return Ok(source_record(&m).timestamp_ms);
        }
    }
    Err(Error::new(
        ErrorKind::Io,
        format!("reading the record at {topic} partition {p} offset {offset}: timed out"),
    ))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "a Kafka lookup thread").with_source(e))?
}

#[async_trait]
impl OffsetResolver for KafkaOffsets {
    async fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        let (me, topic) = (self.clone(), topic.to_owned());
        blocking(move || me.partitions_blocking(&topic)).await
    }

    async fn watermarks(&self, topic: &str, partition: i32) -> Result<Watermarks> {
        let (conn, topic) = (self.conn.clone(), topic.to_owned());
        blocking(move || watermarks(&client(&conn, "offsets")?, &topic, partition)).await
    }

    async fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        time_ms: i64,
    ) -> Result<Option<i64>> {
        let (me, topic) = (self.clone(), topic.to_owned());
        blocking(move || me.offset_for_time_blocking(&topic, partition, time_ms)).await
    }
}

/// Reads offset ranges from a broker (one consumer per reader, no group commits).
pub struct KafkaRanges {
    conn: KafkaConnection,
    batch_timeout: Duration,
}

impl KafkaRanges {
    pub fn new(conn: KafkaConnection) -> Self {
        Self {
            conn,
            batch_timeout: DEFAULT_BATCH_TIMEOUT,
        }
    }

    /// On `brokers`, authenticated as the environment says ([`KafkaConnection::from_env`]).
    pub fn from_env(brokers: &str) -> Result<Self> {
        Ok(Self::new(KafkaConnection::from_env(brokers)?))
    }

    #[must_use]
    pub fn with_batch_timeout(mut self, t: Duration) -> Self {
        self.batch_timeout = t;
        self
    }
}

impl RangeSource for KafkaRanges {
    fn open(&self, topic: &str) -> Result<Box<dyn RangeReader>> {
        Ok(Box::new(KafkaRangeReader {
            consumer: client(&self.conn, "replay")?,
            topic: topic.to_owned(),
            assigned: BTreeMap::new(),
            batch_timeout: self.batch_timeout,
        }))
    }
}

struct KafkaRangeReader {
    consumer: Consumer,
    topic: String,
    /// Per partition, the offset of the next record the consumer will deliver.
    assigned: BTreeMap<i32, i64>,
    batch_timeout: Duration,
}

impl KafkaRangeReader {
    /// Fails with [`BeyondRetention`] when a range starts before its partition's log.
    fn check_retention(&self, ranges: &Ranges) -> Result<()> {
        for (p, (from, _)) in ranges {
            let w = watermarks(&self.consumer, &self.topic, *p)?;
            if w.low > *from {
                return Err(beyond_retention_error(BeyondRetention {
                    topic: self.topic.clone(),
                    partition: *p,
                    asked_offset: *from,
                    log_start_offset: w.low,
                }));
            }
        }
        Ok(())
    }

    /// Assigns the ranges' partitions at their starts unless the consumer delivers from there.
    fn assign(&mut self, ranges: &Ranges) -> Result<()> {
        if ranges
            .iter()
            .all(|(p, (from, _))| self.assigned.get(p) == Some(from))
        {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, (from, _)) in ranges {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*from))
                .map_err(kafka_err(format!("assign {} partition {p}", self.topic)))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(kafka_err(format!("assign {}", self.topic)))?;
        self.assigned = ranges.iter().map(|(p, (from, _))| (*p, *from)).collect();
        Ok(())
    }
}

impl RangeReader for KafkaRangeReader {
    fn read(&mut self, ranges: &Ranges, max_records: usize) -> Result<Vec<SourceRecord>> {
        let ranges: Ranges = ranges
            .iter()
            .filter(|(_, (f, t))| f < t)
            .map(|(p, r)| (*p, *r))
            .collect();
        if ranges.is_empty() || max_records == 0 {
            return Ok(Vec::new());
        }
        self.check_retention(&ranges)?;
        self.assign(&ranges)?;
        let mut reached: BTreeMap<i32, i64> = ranges.iter().map(|(p, (f, _))| (*p, *f)).collect();
        let mut out = Vec::new();
        let deadline = Instant::now() + self.batch_timeout;
        let open = |reached: &BTreeMap<i32, i64>| {
            ranges
                .iter()
                .any(|(p, (_, to))| reached.get(p).is_some_and(|r| r < to))
        };
        while out.len() < max_records && open(&reached) {
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "reading {}: timed out after {:?} at {reached:?} of {ranges:?}",
                        self.topic, self.batch_timeout
                    ),
                ));
            }
            let Some(m) = self.consumer.poll(POLL_INTERVAL) else {
                continue;
            };
            let m = m.map_err(kafka_err(format!("consume {}", self.topic)))?;
            let (p, o) = (m.partition(), m.offset());
            self.assigned.insert(p, o + 1);
            let (Some((_, to)), Some(r)) = (ranges.get(&p), reached.get_mut(&p)) else {
                continue;
            };
            if o < *r {
                continue;
            }
            if o >= *to {
                *r = *to;
                continue;
            }
            out.push(source_record(&m));
            *r = o + 1;
        }
        Ok(out)
    }
}

//! An in-memory topic: both ports of a replay ([`OffsetResolver`], [`RangeSource`]) over
//! records held in memory, with offsets from 0 and an optional log start per partition
//! (records below it are "beyond retention"). For unit tests and the bench.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::resolve::{OffsetResolver, Watermarks};
use super::source::{RangeReader, RangeSource, Ranges};
use crate::error::{Error, ErrorKind, Result};
use crate::record::SourceRecord;

#[derive(Default)]
struct Log {
    partitions: BTreeMap<i32, Vec<SourceRecord>>,
    low: BTreeMap<i32, i64>,
}

/// One topic in memory. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct MemoryTopic {
    topic: String,
    log: Arc<Mutex<Log>>,
}

impl MemoryTopic {
    pub fn new(topic: &str, partitions: i32) -> Self {
        let log = Log {
            partitions: (0..partitions).map(|p| (p, Vec::new())).collect(),
            low: BTreeMap::new(),
        };
        Self {
            topic: topic.to_owned(),
            log: Arc::new(Mutex::new(log)),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Log>> {
        self.log
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "memory topic lock poisoned"))
    }

    /// Appends a record to `partition`; its offset.
    pub fn append(
        &self,
        partition: i32,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        timestamp_ms: Option<i64>,
    ) -> Result<i64> {
        let mut log = self.lock()?;
        let part = log.partitions.get_mut(&partition).ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, format!("no partition {partition}"))
        })?;
        let offset = part.len() as i64;
        part.push(SourceRecord {
            topic: self.topic.clone(),
            partition,
            offset,
            timestamp_ms,
            key,
            value,
        });
        Ok(offset)
    }

    /// Moves a partition's log start (as retention would).
    pub fn set_log_start(&self, partition: i32, low: i64) -> Result<()> {
        self.lock()?.low.insert(partition, low);
        Ok(())
    }

    fn check_topic(&self, topic: &str) -> Result<()> {
        if topic != self.topic {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "topic {topic} does not exist (memory topic is {})",
                    self.topic
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl OffsetResolver for MemoryTopic {
    async fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        self.check_topic(topic)?;
        Ok(self.lock()?.partitions.keys().copied().collect())
    }

    async fn watermarks(&self, topic: &str, partition: i32) -> Result<Watermarks> {
        self.check_topic(topic)?;
        let log = self.lock()?;
        let high = log.partitions.get(&partition).map_or(0, |v| v.len() as i64);
        let low = log.low.get(&partition).copied().unwrap_or(0).min(high);
        Ok(Watermarks { low, high })
    }

    async fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        time_ms: i64,
    ) -> Result<Option<i64>> {
        self.check_topic(topic)?;
        let log = self.lock()?;
        let low = log.low.get(&partition).copied().unwrap_or(0);
        Ok(log.partitions.get(&partition).and_then(|v| {
            v.iter()
                .find(|r| r.offset >= low && r.timestamp_ms.unwrap_or(i64::MIN) >= time_ms)
                .map(|r| r.offset)
        }))
    }
}

struct MemoryReader(MemoryTopic);

impl RangeReader for MemoryReader {
    fn read(&mut self, ranges: &Ranges, max_records: usize) -> Result<Vec<SourceRecord>> {
        let log = self.0.lock()?;
        let mut out = Vec::new();
        for (p, (from, to)) in ranges {
            let low = log.low.get(p).copied().unwrap_or(0);
            if *from < low && from < to {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("partition {p}: offset {from} is beyond retention (log start {low})"),
                ));
            }
            let part = log.partitions.get(p).map_or(&[][..], Vec::as_slice);
            let (a, b) = (*from as usize, (*to as usize).min(part.len()));
            let room = max_records.saturating_sub(out.len());
            out.extend(part.get(a..b).unwrap_or(&[]).iter().take(room).cloned());
        }
        Ok(out)
    }
}

impl RangeSource for MemoryTopic {
    fn open(&self, topic: &str) -> Result<Box<dyn RangeReader>> {
        self.check_topic(topic)?;
        Ok(Box::new(MemoryReader(self.clone())))
    }
}

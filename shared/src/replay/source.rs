//! The port a worker reads its ranges through. Blocking (Kafka clients poll): the worker
//! calls it on a blocking thread, moving the reader there and back.
//! `refold-kafka`'s `KafkaRanges` reads with rdkafka; [`super::memory`] from memory.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::record::SourceRecord;

/// Offsets `[from, to)` to read per partition.
pub type Ranges = BTreeMap<i32, (i64, i64)>;

pub trait RangeReader: Send {
    /// Reads up to `max_records` records of `ranges`, each partition in offset order from its
    /// `from`, never a record at or past its `to`. Returns at least one record when any range
    /// is non-empty (else fails: a timeout, the log moved past `from` = beyond retention).
    fn read(&mut self, ranges: &Ranges, max_records: usize) -> Result<Vec<SourceRecord>>;
}

pub trait RangeSource: Send + Sync {
    fn open(&self, topic: &str) -> Result<Box<dyn RangeReader>>;
}

//! A [`RangeSource`] that reads the part of each range the plan put in the event archive
//! (`PartitionRange::archive_to`: offsets Kafka no longer held) from the archive, and the
//! rest from Kafka (the inner source): no gap, no overlap.
//!
//! The archive holds valid envelopes only (poison records went to dead letters when they
//! were live), so its offsets have gaps; a read moves through the archive's part window by
//! window until it finds records, and from its end on to Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::plan::ReplayPlan;
use super::source::{RangeReader, RangeSource, Ranges};
use crate::archive::Archive;
use crate::error::{Error, ErrorKind, Result};
use crate::record::SourceRecord;

pub struct ArchiveThenKafka {
    archive: Arc<Archive>,
    /// Per partition: offsets below this come from the archive.
    archive_to: BTreeMap<i32, i64>,
    kafka: Arc<dyn RangeSource>,
}

impl ArchiveThenKafka {
    /// The plan's archive parts in front of `kafka`; `None` when the plan reads Kafka only.
    pub fn for_plan(
        plan: &ReplayPlan,
        archive: Arc<Archive>,
        kafka: Arc<dyn RangeSource>,
    ) -> Option<Self> {
        let archive_to: BTreeMap<i32, i64> = plan
            .ranges
            .iter()
            .filter_map(|r| r.archive_to.map(|a| (r.partition, a)))
            .collect();
        (!archive_to.is_empty()).then_some(Self {
            archive,
            archive_to,
            kafka,
        })
    }
}

impl RangeSource for ArchiveThenKafka {
    fn open(&self, topic: &str) -> Result<Box<dyn RangeReader>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            Error::new(ErrorKind::Internal, "archive reads need a tokio runtime").with_source(e)
        })?;
        Ok(Box::new(Reader {
            archive: self.archive.clone(),
            archive_to: self.archive_to.clone(),
            kafka: self.kafka.open(topic)?,
            runtime,
        }))
    }
}

struct Reader {
    archive: Arc<Archive>,
    archive_to: BTreeMap<i32, i64>,
    kafka: Box<dyn RangeReader>,
    runtime: tokio::runtime::Handle,
}

impl RangeReader for Reader {
    fn read(&mut self, ranges: &Ranges, max_records: usize) -> Result<Vec<SourceRecord>> {
        let max = max_records.max(1);
        let mut out = Vec::new();
        let mut from_kafka = Ranges::new();
        for (&p, &(from, to)) in ranges {
            let split = self.archive_to.get(&p).copied().unwrap_or(i64::MIN);
            if from >= split {
                from_kafka.insert(p, (from, to));
                continue;
            }
            if out.len() >= max {
                continue;
            }
            let end = to.min(split);
            let found = self.read_archive(p, from, end, max - out.len())?;
            if found.is_empty() {
                // Nothing valid archived in [from, end): on to Kafka's part, if any.
                if to > split {
                    from_kafka.insert(p, (split, to));
                }
                continue;
            }
            out.extend(found);
        }
        if out.is_empty() && !from_kafka.is_empty() {
            out = self.kafka.read(&from_kafka, max)?;
        }
        Ok(out)
    }
}

impl Reader {
    /// The archived records of `[from, end)`, at most `max`: the first window of `max`
    /// offsets that holds any (none: the range holds none).
    fn read_archive(&self, p: i32, from: i64, end: i64, max: usize) -> Result<Vec<SourceRecord>> {
        let window = i64::try_from(max).unwrap_or(i64::MAX);
        let mut start = from;
        while start < end {
            let stop = end.min(start.saturating_add(window));
            let events = self
                .runtime
                .block_on(self.archive.read_range(p, start, stop))?;
            if !events.is_empty() {
                return Ok(events.iter().map(|e| e.to_record()).collect());
            }
            start = stop;
        }
        Ok(Vec::new())
    }
}

//! The port a plan resolves offsets through: the topic's partitions, each partition's
//! watermarks, and the first offset at or after a time. `refold-kafka`'s `KafkaOffsets`
//! answers with rdkafka (`fetch_watermarks`, `offsets_for_times`); [`super::memory`] in
//! memory.

use async_trait::async_trait;

use crate::error::Result;

/// A partition's low watermark (first offset still held) and high watermark (next offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub low: i64,
    pub high: i64,
}

#[async_trait]
pub trait OffsetResolver: Send + Sync {
    /// The topic's partitions, sorted.
    async fn partitions(&self, topic: &str) -> Result<Vec<i32>>;
    async fn watermarks(&self, topic: &str, partition: i32) -> Result<Watermarks>;
    /// The first offset whose record time is at or after `time_ms`; `None` when no record is
    /// (past the end). Adapters map a broker's "past the end" answers (-1, or 0 on tansu
    /// for a time after the last record) to `None` by checking against the watermarks.
    async fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        time_ms: i64,
    ) -> Result<Option<i64>>;
}

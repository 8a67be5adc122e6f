//! Where `refold replay` reads: a broker, or a JSONL file loaded into an in-process topic.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use refold::batch::CompiledPipeline;
use refold::envelope::Envelope;
use refold::replay::memory::MemoryTopic;
use refold::replay::{OffsetResolver, RangeSource};
use refold_kafka::{KafkaOffsets, KafkaRanges, default_partition, jsonl_lines};

use crate::demo::fnv1a;

/// Partitions of the in-process topic (as `refold demo`).
pub const EVENTS_PARTITIONS: i32 = 3;

pub enum Events {
    Brokers(String),
    File(PathBuf),
}

type Ports = (Arc<dyn OffsetResolver>, Arc<dyn RangeSource>);

impl Events {
    pub fn brokers(&self) -> Option<&str> {
        match self {
            Events::Brokers(b) => Some(b),
            Events::File(_) => None,
        }
    }

    /// The offset resolver and range source to replay from.
    pub fn ports(&self, cp: &CompiledPipeline) -> anyhow::Result<Ports> {
        match self {
            Events::Brokers(b) => Ok((
                Arc::new(KafkaOffsets::from_env(b)?),
                Arc::new(KafkaRanges::from_env(b)?),
            )),
            Events::File(path) => {
                let topic = load(path, cp)?;
                Ok((Arc::new(topic.clone()), Arc::new(topic)))
            }
        }
    }
}

/// The file's lines in an in-process topic: keyed by the pipeline's key (a malformed line
/// by a hash of its bytes, as `refold demo` does), partitioned by Kafka's default
/// partitioner, timestamped with the envelope's `timestamp`.
pub fn load(path: &PathBuf, cp: &CompiledPipeline) -> anyhow::Result<MemoryTopic> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let p = &cp.pipeline;
    let topic_name = &p.source_of(p.transformation()).topic;
    let topic = MemoryTopic::new(topic_name, EVENTS_PARTITIONS);
    for line in jsonl_lines(&text) {
        let env = Envelope::decode(line).ok();
        let key = env
            .as_ref()
            .and_then(|e| e.key(&cp.key_field).ok().map(|k| k.into_owned()))
            .unwrap_or_else(|| format!("unkeyed-{:016x}", fnv1a(line)));
        let time_ms = env.as_ref().map(|e| e.timestamp_us().div_euclid(1000));
        let part = default_partition(key.as_bytes(), EVENTS_PARTITIONS);
        topic.append(part, Some(key.into_bytes()), line.to_vec(), time_ms)?;
    }
    Ok(topic)
}

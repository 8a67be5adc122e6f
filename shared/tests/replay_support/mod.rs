//! Shared by the replay tests: the seed pipeline, the order stream in an in-memory topic
//! (keyed by order id, partitioned by a hash of the key, Kafka timestamp = envelope time),
//! a local warehouse, and the CPython oracle (`tests/py/seed_fold.py`) over chosen lines.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../functions/fold-batch/tests/common/oracle.rs"]
pub mod oracle;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use refold::batch::CompiledPipeline;
use refold::dead_letter::LocalDeadLetters;
use refold::envelope::Envelope;
use refold::record::SourceRecord;
use refold::replay::handler::{DeadLettersFor, ReplayWorker};
use refold::replay::invoker::{InProcessInvoker, ShardHandler, ShardInvoker};
use refold::replay::memory::MemoryTopic;
use refold::replay::source::{RangeReader, RangeSource, Ranges};
use refold::replay::store::MemoryReplayStore;
use refold::replay::{ReplayService, ReplayStore, WorkerLimits};
use refold::table::{CatalogConfig, StateRow};

pub const TOPIC: &str = "domain.orders.events";

pub fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

pub fn pipeline_path() -> PathBuf {
    root().join("pipelines/order-events-pipeline.yaml")
}

pub fn pipeline() -> CompiledPipeline {
    let path = pipeline_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| "in-process:9092".to_owned());
    let loaded = refold::pipeline::parse(&text, &path.display().to_string(), &env);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

/// The valid lines of the order stream, sorted by envelope time (stable): with Kafka time =
/// envelope time, a time cut by offset and a time filter over the file then agree.
pub fn sorted_lines() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("events/orders.jsonl")).unwrap();
    let mut lines: Vec<(i64, String)> = text
        .lines()
        .filter_map(|l| {
            Envelope::decode(l.as_bytes())
                .ok()
                .map(|e| (e.timestamp_us(), l.to_owned()))
        })
        .collect();
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}

pub fn time_ms(line: &str) -> i64 {
    Envelope::decode(line.as_bytes()).unwrap().timestamp_us() / 1000
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The lines in an in-memory topic of `partitions` partitions.
pub fn topic_of(lines: &[String], partitions: i32) -> MemoryTopic {
    let t = MemoryTopic::new(TOPIC, partitions);
    append(&t, lines, partitions);
    t
}

/// Appends the lines; the record of each line.
pub fn append(t: &MemoryTopic, lines: &[String], partitions: i32) -> Vec<SourceRecord> {
    lines
        .iter()
        .map(|l| {
            let key = Envelope::decode(l.as_bytes())
                .unwrap()
                .key("order_id")
                .unwrap()
                .into_owned();
            let p = (fnv(key.as_bytes()) % partitions as u64) as i32;
            let value = l.as_bytes().to_vec();
            let ts = Some(time_ms(l));
            let offset = t
                .append(p, Some(key.clone().into_bytes()), value.clone(), ts)
                .unwrap();
            SourceRecord {
                topic: TOPIC.to_owned(),
                partition: p,
                offset,
                timestamp_ms: ts,
                key: Some(key.into_bytes()),
                value,
            }
        })
        .collect()
}

/// The oracle's rows over `lines` (written to a file first).
pub fn oracle_rows(dir: &Path, lines: &[&String]) -> oracle::Rows {
    let f = dir.join(format!("oracle-{}.jsonl", lines.len()));
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&f, body).unwrap();
    oracle::run(&root(), &pipeline_path(), &f).rows
}

pub fn comparable(rows: &[StateRow]) -> oracle::Rows {
    rows.iter()
        .map(|r| {
            (
                (r.tenant_id.clone(), r.key.clone()),
                (
                    oracle::normalize(&r.state.to_value()),
                    r.events_folded,
                    r.last_event_id.clone(),
                ),
            )
        })
        .collect()
}

/// A replay setup on a local warehouse in `dir` over `topic`.
pub struct Fixture {
    pub catalog: CatalogConfig,
    pub store: Arc<MemoryReplayStore>,
    pub topic: MemoryTopic,
    pub worker: Arc<ReplayWorker>,
    pub invoker: InProcessInvoker,
    pub service: ReplayService,
}

pub fn dead_letters(dir: &Path) -> DeadLettersFor {
    let root = dir.join("dead-letters");
    Arc::new(move |plan| {
        Ok(Arc::new(LocalDeadLetters::new(root.join(plan.replay_id.as_str()))) as _)
    })
}

pub fn fixture(dir: &Path, topic: MemoryTopic, limits: WorkerLimits, budget: Duration) -> Fixture {
    fixture_with(dir, topic, limits, budget, |w| w)
}

/// A fixture whose worker reads take at least `read_delay` each: a floor under each batch's
/// time, so a deadline ends invocations whatever the machine's speed.
pub fn fixture_slow(
    dir: &Path,
    topic: MemoryTopic,
    limits: WorkerLimits,
    budget: Duration,
    read_delay: Duration,
) -> Fixture {
    build(dir, topic, limits, budget, Some(read_delay), |w| w)
}

/// A [`RangeSource`] whose reads sleep first (they run on a blocking thread).
struct SlowSource {
    inner: MemoryTopic,
    delay: Duration,
}

struct SlowReader {
    inner: Box<dyn RangeReader>,
    delay: Duration,
}

impl RangeSource for SlowSource {
    fn open(&self, topic: &str) -> refold::error::Result<Box<dyn RangeReader>> {
        let inner = self.inner.open(topic)?;
        Ok(Box::new(SlowReader {
            inner,
            delay: self.delay,
        }))
    }
}

impl RangeReader for SlowReader {
    fn read(
        &mut self,
        ranges: &Ranges,
        max_records: usize,
    ) -> refold::error::Result<Vec<SourceRecord>> {
        std::thread::sleep(self.delay);
        self.inner.read(ranges, max_records)
    }
}

/// A fixture whose invocations run through `wrap(worker)` (a handler that injects faults).
pub fn fixture_with(
    dir: &Path,
    topic: MemoryTopic,
    limits: WorkerLimits,
    budget: Duration,
    wrap: impl FnOnce(Arc<ReplayWorker>) -> Arc<dyn ShardHandler>,
) -> Fixture {
    build(dir, topic, limits, budget, None, wrap)
}

fn build(
    dir: &Path,
    topic: MemoryTopic,
    limits: WorkerLimits,
    budget: Duration,
    read_delay: Option<Duration>,
    wrap: impl FnOnce(Arc<ReplayWorker>) -> Arc<dyn ShardHandler>,
) -> Fixture {
    let cp = pipeline();
    let source: Arc<dyn RangeSource> = match read_delay {
        Some(delay) => Arc::new(SlowSource {
            inner: topic.clone(),
            delay,
        }),
        None => Arc::new(topic.clone()),
    };
    let catalog = CatalogConfig::embedded(&dir.join("warehouse")).unwrap();
    let store = Arc::new(MemoryReplayStore::default());
    let worker = Arc::new(
        ReplayWorker::new(
            &cp,
            catalog.clone(),
            store.clone(),
            source,
            dead_letters(dir),
        )
        .with_limits(limits),
    );
    let invoker = InProcessInvoker::new(wrap(worker.clone()), store.clone(), budget);
    let service = ReplayService::new(
        cp,
        catalog.clone(),
        store.clone() as Arc<dyn ReplayStore>,
        Arc::new(topic.clone()),
        Arc::new(invoker.clone()) as Arc<dyn ShardInvoker>,
    );
    Fixture {
        catalog,
        store,
        topic,
        worker,
        invoker,
        service,
    }
}

/// A deadline far away.
pub fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

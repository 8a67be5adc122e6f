//! Replay benchmark: 1 M order events over 8 partitions replayed into a fresh table with 1,
//! 2 and 4 workers (in-process invoker: one thread and runtime per shard), the events read
//! from refold's in-memory topic (the in-process stand-in for Kafka; the broker is not what
//! is measured), the seed pipeline's Starlark fold, a local warehouse. Prints events/s in
//! total and per worker, and the speed-up over 1 worker. The machine's cores bound the
//! speed-up (2 cores here: 4 workers cannot beat 2 by more than their I/O overlap).
//!
//! `cargo bench --workspace --bench replay` (release). Environment: REFOLD_BENCH_EVENTS
//! (default 1,000,000), REFOLD_BENCH_BATCH (records per batch, 10,000), REFOLD_BENCH_WORKERS
//! (comma list, "1,2,4"), REFOLD_BENCH_DIR (default a temp dir).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use refold::batch::CompiledPipeline;
use refold::dead_letter::LocalDeadLetters;
use refold::replay::handler::ReplayWorker;
use refold::replay::invoker::{InProcessInvoker, ShardInvoker};
use refold::replay::memory::MemoryTopic;
use refold::replay::store::MemoryReplayStore;
use refold::replay::{ReplayService, ReplayState, ReplayStore, WorkerLimits};
use refold::table::CatalogConfig;

const PARTITIONS: i32 = 8;
const TOPIC: &str = "domain.orders.events";
const STEPS: [&str; 4] = [
    "OrderPlaced",
    "OrderConfirmed",
    "OrderShipped",
    "OrderDelivered",
];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pipeline() -> CompiledPipeline {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/order-events-pipeline.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| "in-process:9092".to_owned());
    let loaded = refold::pipeline::parse(&text, path, &env);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

/// `events` events: orders of four steps each, keyed by order id, one partition per key.
fn topic(events: usize) -> MemoryTopic {
    let t = MemoryTopic::new(TOPIC, PARTITIONS);
    let orders = events.div_ceil(STEPS.len());
    let mut n = 0;
    for (step, ty) in STEPS.iter().enumerate() {
        for o in 0..orders {
            if n == events {
                return t;
            }
            let id = format!("order-{o:07}");
            let tenant = ["acme", "globex"][o % 2];
            let line = format!(
                r#"{{"event_id":"evt-{o}-{step}","event_type":"{ty}","entity_type":"Order","entity_id":"{id}","tenant_id":"tenant-{tenant}","timestamp":"2026-02-0{}T08:00:00Z","version":1,"data":{{"order_id":"{id}","amount":{}.5}}}}"#,
                step + 1,
                o % 1000
            );
            let p = (o % PARTITIONS as usize) as i32;
            t.append(p, Some(id.into_bytes()), line.into_bytes(), Some(0))
                .unwrap();
            n += 1;
        }
    }
    t
}

fn run(dir: &std::path::Path, t: &MemoryTopic, workers: u32, batch: usize) -> (f64, i64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cp = pipeline();
        let catalog = CatalogConfig::embedded(&dir.join(format!("w{workers}"))).unwrap();
        let store: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::default());
        let dl = dir.join("dead-letters");
        let worker = ReplayWorker::new(
            &cp,
            catalog.clone(),
            store.clone(),
            Arc::new(t.clone()),
            Arc::new(move |_| Ok(Arc::new(LocalDeadLetters::new(&dl)) as _)),
        )
        .with_limits(WorkerLimits {
            max_batch_records: batch,
            ..WorkerLimits::default()
        });
        let invoker = InProcessInvoker::new(Arc::new(worker), store.clone(), Duration::from_secs(3600));
        let svc = ReplayService::new(
            cp,
            catalog,
            store,
            Arc::new(t.clone()),
            Arc::new(invoker.clone()) as Arc<dyn ShardInvoker>,
        );
        let body = format!(
            r#"{{"from_offset":"earliest","target_consumer_group":"bench-{workers}","parallel_consumers":{workers}}}"#
        );
        let started = Instant::now();
        let s = svc.start("order-events-pipeline", body.as_bytes()).await.unwrap();
        for (task, r) in invoker.wait_idle().await {
            assert!(r.is_ok(), "shard {}: {r:?}", task.shard);
        }
        let secs = started.elapsed().as_secs_f64();
        let st = svc.status("order-events-pipeline", s.replay_id.as_str()).await.unwrap();
        assert_eq!(st.state, ReplayState::Done, "{st:?}");
        (secs, st.events_done)
    })
}

fn main() {
    let events = env_or("REFOLD_BENCH_EVENTS", 1_000_000);
    let batch = env_or("REFOLD_BENCH_BATCH", 10_000);
    let workers: Vec<u32> = std::env::var("REFOLD_BENCH_WORKERS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("REFOLD_BENCH_DIR").map_or(tmp.path().to_path_buf(), Into::into);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t0 = Instant::now();
    let t = topic(events);
    println!(
        "replay bench: {events} events, {PARTITIONS} partitions, batches of {batch}, {cores} core(s) here \
         (topic built in {:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    let mut base = None;
    for w in workers {
        let (secs, done) = run(&dir, &t, w, batch);
        assert_eq!(done as usize, events);
        let rate = done as f64 / secs;
        let speedup = rate / *base.get_or_insert(rate);
        println!(
            "  {w} worker(s): {secs:>6.1} s, {rate:>9.0} events/s total, {:>9.0} events/s per worker, \
             speed-up x{speedup:.2} ({cores} cores here)",
            rate / f64::from(w)
        );
    }
}

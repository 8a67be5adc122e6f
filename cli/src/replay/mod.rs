//! `refold replay`, `refold replays`, `refold promote`: replay on the embedded default, with
//! the same plan, store, workers and promotion the Lambda functions run (`refold::replay`),
//! shards run in process (`InProcessInvoker`: one thread and runtime per shard invocation).
//!
//! Events come from a broker (`--brokers`, rdkafka), or from a JSONL file (`--events`)
//! loaded into an in-process topic keyed as `refold demo` keys them (the pipeline's key,
//! Kafka's murmur2 partitioner), each record's Kafka timestamp the envelope's `timestamp`.
//! That topic is refold's in-memory one, not librdkafka's mock cluster: the mock answers no
//! `offsets_for_times` (a time `--from` needs it) and keeps only 5 MiB per partition.

mod progress;
mod source;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use refold::batch::CompiledPipeline;
use refold::dead_letter::LocalDeadLetters;
use refold::pipeline;
use refold::replay::handler::{DeadLettersFor, ReplayWorker};
use refold::replay::invoker::InProcessInvoker;
use refold::replay::promote::{PromoteInput, PromoteOptions, promote};
use refold::replay::store::ObjectReplayStore;
use refold::replay::{ReplayService, ReplayStore, WorkerLimits};
use refold::table::CatalogConfig;

pub use source::Events;

/// Options of `refold replay`.
pub struct ReplayArgs {
    pub pipeline: PathBuf,
    pub warehouse: PathBuf,
    pub events: Events,
    pub from: String,
    pub to_timestamp: Option<String>,
    pub parallel: u32,
    pub target: Option<String>,
    pub target_group: Option<String>,
    pub batch_size: usize,
    /// Time budget of one shard invocation (as a Lambda timeout), seconds.
    pub invocation_s: u64,
}

/// The pipeline, `${KAFKA_CONNECTION}` defaulting to `brokers` (or a placeholder).
pub fn compile(path: &Path, brokers: Option<&str>) -> anyhow::Result<CompiledPipeline> {
    let yaml =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let env = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            (name == "KAFKA_CONNECTION").then(|| brokers.unwrap_or("in-process").to_owned())
        })
    };
    let loaded = pipeline::parse(&yaml, &path.display().to_string(), &env);
    for w in loaded.warnings() {
        eprintln!("{w}");
    }
    Ok(CompiledPipeline::compile(loaded.into_pipeline()?)?)
}

fn dead_letters_for(warehouse: &Path) -> DeadLettersFor {
    let root = warehouse.join("dead-letters").join("replays");
    Arc::new(move |plan| {
        Ok(Arc::new(LocalDeadLetters::new(root.join(plan.replay_id.as_str()))) as _)
    })
}

/// The `from_offset` of the request: a keyword, a number, a JSON map, or a time.
fn from_value(from: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(from) {
        Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Object(_))) => v,
        _ => serde_json::Value::from(from),
    }
}

fn request_body(a: &ReplayArgs, default_group: String) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    m.insert("from_offset".into(), from_value(&a.from));
    if let Some(t) = &a.to_timestamp {
        m.insert("to_timestamp".into(), t.clone().into());
    }
    m.insert(
        "target_consumer_group".into(),
        a.target_group.clone().unwrap_or(default_group).into(),
    );
    m.insert("parallel_consumers".into(), a.parallel.into());
    if let Some(t) = &a.target {
        m.insert("target".into(), t.clone().into());
    }
    serde_json::Value::Object(m).to_string().into_bytes()
}

pub async fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.warehouse)
        .with_context(|| format!("creating {}", a.warehouse.display()))?;
    let cp = compile(&a.pipeline, a.events.brokers())?;
    let catalog = CatalogConfig::embedded(&a.warehouse)?;
    let store: Arc<dyn ReplayStore> = Arc::new(ObjectReplayStore::for_catalog(&catalog)?);
    let (resolver, ranges) = a.events.ports(&cp)?;
    let limits = WorkerLimits {
        max_batch_records: a.batch_size,
        deadline_margin_ms: 1_000,
        ..WorkerLimits::default()
    };
    let worker = ReplayWorker::new(
        &cp,
        catalog.clone(),
        store.clone(),
        ranges,
        dead_letters_for(&a.warehouse),
    )
    .with_limits(limits);
    let invoker = InProcessInvoker::new(
        Arc::new(worker),
        store.clone(),
        Duration::from_secs(a.invocation_s),
    );
    let default_group = format!("{}-replay", cp.name());
    let name = cp.name().to_owned();
    let service = ReplayService::new(cp, catalog, store, resolver, Arc::new(invoker.clone()));
    let started = service
        .start(&name, &request_body(&a, default_group))
        .await?;
    println!(
        "replay {} into table {} ({} shard(s))",
        started.replay_id,
        started.target_table,
        started.shards.len()
    );
    let results = progress::follow(&service, &name, started.replay_id.as_str(), &invoker).await?;
    let status = service.status(&name, started.replay_id.as_str()).await?;
    progress::print_final(&status, &results);
    Ok(if status.state == refold::replay::ReplayState::Done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `refold replays`: every replay of the pipeline and its state.
pub async fn list(pipeline: &Path, warehouse: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let cp = compile(pipeline, None)?;
    let catalog = CatalogConfig::embedded(warehouse)?;
    let store: Arc<dyn ReplayStore> = Arc::new(ObjectReplayStore::for_catalog(&catalog)?);
    let name = cp.name().to_owned();
    let service = ReplayService::new(
        cp,
        catalog,
        store,
        Arc::new(refold::replay::memory::MemoryTopic::default()),
        Arc::new(refold::replay::invoker::NoInvoker),
    );
    let all = service.list(&name).await?;
    if all.is_empty() {
        println!("no replays of {name}");
    }
    for s in all {
        if json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            println!(
                "{}  {:<9}  {:>10}/{:<10} events  {}",
                s.replay_id,
                format!("{:?}", s.state).to_lowercase(),
                s.events_done,
                s.events_total,
                s.target_table
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `refold promote`: swaps a finished replay's table in as the live table.
pub async fn promote_cmd(
    pipeline: &Path,
    warehouse: &Path,
    replay_id: &str,
    events: Events,
) -> anyhow::Result<ExitCode> {
    let cp = compile(pipeline, events.brokers())?;
    let catalog = CatalogConfig::embedded(warehouse)?;
    let store: Arc<dyn ReplayStore> = Arc::new(ObjectReplayStore::for_catalog(&catalog)?);
    let (_, ranges) = events.ports(&cp)?;
    let id = refold::replay::ReplayId::parse(replay_id)?;
    let r = store.get(cp.name(), &id).await?;
    let dl = (dead_letters_for(warehouse))(&r.plan)?;
    let input = PromoteInput {
        cp: &cp,
        catalog: &catalog,
        store: store.as_ref(),
        source: ranges.as_ref(),
        dead_letters: dl,
    };
    let p = promote(&input, &r, &PromoteOptions::default()).await?;
    println!(
        "replay {id} promoted: {} is now the replay's table (after {} attempt(s)); the old one \
         is kept as {}",
        p.live_table, p.attempts, p.previous_table
    );
    Ok(ExitCode::SUCCESS)
}

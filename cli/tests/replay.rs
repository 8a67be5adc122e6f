//! `refold replay`, `refold replays`: the binary end to end, from a JSONL file (in-process
//! topic) and from a real broker (tansu, `REFOLD_KAFKA_BROKERS` from `scripts/stack.sh up DIR
//! kafka`), parallel 1 and 4 and a time cut, each target table compared with the CPython
//! oracle (`tests/py/seed_fold.py`) over the same lines; and a worker killed mid-commit on
//! the real broker, re-run.
//!
//! The stream is `events/orders.jsonl`'s valid lines sorted by time (stable), so that a cut
//! by offset (what the plan does with `to_timestamp`) and a time filter over the file agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use refold::envelope::Envelope;
use refold::table::{CatalogConfig, StateTable};

fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn refold(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_refold"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "refold {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn time_ms(line: &str) -> i64 {
    Envelope::decode(line.as_bytes()).unwrap().timestamp_us() / 1000
}

fn sorted_lines() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("events/orders.jsonl")).unwrap();
    let mut v: Vec<(i64, String)> = text
        .lines()
        .filter_map(|l| {
            Envelope::decode(l.as_bytes())
                .ok()
                .map(|e| (e.timestamp_us(), l.to_owned()))
        })
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v.into_iter().map(|(_, l)| l).collect()
}

fn write_lines(path: &Path, lines: &[&String]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, body).unwrap();
}

/// The pipeline with another topic (a fresh one per run on a shared broker).
fn pipeline_with_topic(dir: &Path, topic: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(root().join("pipelines/order-events-pipeline.yaml")).unwrap();
    let p = dir.join("pipeline.yaml");
    std::fs::write(
        &p,
        text.replace("topic: domain.orders.events", &format!("topic: {topic}")),
    )
    .unwrap();
    p
}

/// The rows of a replay's target table `name`.
fn table_rows(pipeline: &Path, warehouse: &Path, name: &str) -> oracle::Rows {
    let text = std::fs::read_to_string(pipeline).unwrap();
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| "x:1".to_owned());
    let loaded = refold::pipeline::parse(&text, "p.yaml", &env);
    let cp = refold::batch::CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap();
    let mut cfg =
        refold::engine::table_config(&cp, CatalogConfig::embedded(warehouse).unwrap()).unwrap();
    cfg.table.name = name.to_owned();
    cfg.consumer_group = "order-events-pipeline-replay".to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(async {
        StateTable::open_or_create(cfg)
            .await
            .unwrap()
            .current_rows(None, None)
            .await
            .unwrap()
    });
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

fn oracle_of(dir: &Path, pipeline: &Path, lines: &[&String], name: &str) -> oracle::Rows {
    let f = dir.join(format!("{name}.jsonl"));
    write_lines(&f, lines);
    oracle::run(&root(), pipeline, &f).rows
}

/// Replays parallel 1 and 4 (4 only where the source has 4+ partitions) and a time cut;
/// checks each table against the oracle; lists the replays.
fn replays_match_the_oracle(dir: &Path, pipeline: &Path, source: &[&str], max_parallel: u32) {
    let wh = dir.join("warehouse");
    let whs = wh.to_str().unwrap();
    let p = pipeline.to_str().unwrap();
    let lines = sorted_lines();
    let all: Vec<&String> = lines.iter().collect();
    let want_all = oracle_of(dir, pipeline, &all, "all");
    for (n, target) in [(1, "p1"), (max_parallel, "pn")] {
        let ns = n.to_string();
        let mut args = vec![
            "replay",
            p,
            "--warehouse",
            whs,
            "--parallel",
            &ns,
            "--target",
            target,
        ];
        args.extend_from_slice(source);
        let out = refold(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("into table domain.orders.") && stdout.contains(": Done;"),
            "{stdout}"
        );
        oracle::assert_rows_eq(&table_rows(pipeline, &wh, target), &want_all, target);
    }
    let (from, to) = ("2026-02-03T00:00:00Z", "2026-02-08T12:00:00Z");
    let ms = |s: &str| chrono_ms(s);
    let mut args = vec![
        "replay",
        p,
        "--warehouse",
        whs,
        "--parallel",
        "2",
        "--target",
        "cut",
        "--from",
        from,
        "--to-timestamp",
        to,
    ];
    args.extend_from_slice(source);
    refold(&args);
    let cut: Vec<&String> = lines
        .iter()
        .filter(|l| (ms(from)..=ms(to)).contains(&time_ms(l)))
        .collect();
    oracle::assert_rows_eq(
        &table_rows(pipeline, &wh, "cut"),
        &oracle_of(dir, pipeline, &cut, "cut"),
        "time cut",
    );
    let listed = String::from_utf8(refold(&["replays", p, "--warehouse", whs]).stdout).unwrap();
    assert_eq!(
        listed.lines().filter(|l| l.contains(" done ")).count(),
        3,
        "{listed}"
    );
}

fn chrono_ms(s: &str) -> i64 {
    refold::replay::request::parse_time("test", s).unwrap()
}

#[test]
fn replay_from_a_file_matches_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let events = dir.path().join("sorted.jsonl");
    write_lines(&events, &lines.iter().collect::<Vec<_>>());
    let pipeline = root().join("pipelines/order-events-pipeline.yaml");
    let ev = events.to_str().unwrap().to_owned();
    replays_match_the_oracle(dir.path(), &pipeline, &["--events", &ev], 3);
}

#[test]
fn replay_from_tansu_matches_the_oracle() {
    let brokers = brokers();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("replay-{}", uuid_like());
    let pipeline = pipeline_with_topic(dir.path(), &topic);
    let lines = sorted_lines();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        produce_topic(&brokers, &topic, 4, &lines).await;
    });
    replays_match_the_oracle(dir.path(), &pipeline, &["--brokers", &brokers], 4);
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}-{}", t.as_nanos(), std::process::id())
}

/// The live pipeline over the whole topic (every partition to its end), through the batch
/// engine: it fills the state table and the event archive, as fold-batch would have.
fn fold_live(pipeline: &Path, warehouse: &Path, brokers: &str, topic: &str) {
    use refold::replay::{OffsetResolver, RangeSource};
    let text = std::fs::read_to_string(pipeline).unwrap();
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| brokers.to_owned());
    let loaded = refold::pipeline::parse(&text, "p.yaml", &env);
    let cp = refold::batch::CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dl = std::sync::Arc::new(refold::dead_letter::LocalDeadLetters::new(
            warehouse.join("live-dead-letters"),
        ));
        let catalog = CatalogConfig::embedded(warehouse).unwrap();
        let live = refold::engine::BatchProcessor::open(cp, catalog, dl)
            .await
            .unwrap();
        let offsets = refold_kafka::replay::KafkaOffsets::from_env(brokers).unwrap();
        let mut todo = std::collections::BTreeMap::new();
        for p in offsets.partitions(topic).await.unwrap() {
            let w = offsets.watermarks(topic, p).await.unwrap();
            todo.insert(p, (w.low, w.high));
        }
        let mut reader = refold_kafka::replay::KafkaRanges::from_env(brokers)
            .unwrap()
            .open(topic)
            .unwrap();
        while !todo.is_empty() {
            let (r, records) = tokio::task::spawn_blocking(move || {
                let records = reader.read(&todo, 2000).unwrap();
                (reader, (todo, records))
            })
            .await
            .unwrap();
            reader = r;
            let (mut t, records) = records;
            for rec in &records {
                if let Some(range) = t.get_mut(&rec.partition) {
                    range.0 = range.0.max(rec.offset + 1);
                }
            }
            t.retain(|_, (from, to)| from < to);
            todo = t;
            live.process(records, vec![]).await.unwrap();
        }
    });
}

#[test]
fn a_replay_from_earliest_after_tansu_retention_reads_the_archive() {
    let brokers = brokers();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("warehouse");
    let topic = format!("retention-{}", uuid_like());
    let pipeline = pipeline_with_topic(dir.path(), &topic);
    let lines = sorted_lines();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Record times are the events' (February): retention sees them as old.
        produce_topic(&brokers, &topic, 4, &lines).await;
    });
    drop(rt);
    fold_live(&pipeline, &wh, &brokers, &topic);

    // Retention drops every record older than the middle line's time.
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let middle = time_ms(&lines[lines.len() / 2]);
    let out = Command::new(oracle::python())
        .arg(root().join("tests/py/kafka_retention.py"))
        .args(["--brokers", &brokers, "--topic", &topic, "--retention-ms"])
        .arg((now_ms - middle).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kafka_retention.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let starts: std::collections::BTreeMap<String, i64> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert!(starts.values().all(|o| *o > 0), "{starts:?}");

    let (p, whs) = (pipeline.to_str().unwrap(), wh.to_str().unwrap());
    let out = refold(&[
        "replay",
        p,
        "--warehouse",
        whs,
        "--brokers",
        &brokers,
        "--parallel",
        "2",
        "--target",
        "deep",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": Done;"), "{stdout}");
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &table_rows(&pipeline, &wh, "deep"),
        &oracle_of(dir.path(), &pipeline, &all, "all"),
        "replay from earliest beyond tansu's retention",
    );
}

/// A new topic of `partitions` holding `lines`, keyed by `order_id`, each record's Kafka
/// time its event's.
async fn produce_topic(brokers: &str, topic: &str, partitions: i32, lines: &[String]) {
    refold_kafka::create_topic(brokers, topic, partitions)
        .await
        .unwrap();
    let producer = refold_kafka::Producer::new(brokers).unwrap();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let key = |l: &[u8]| {
        Envelope::decode(l)
            .ok()
            .and_then(|e| e.key("order_id").ok().map(|k| k.into_owned()))
    };
    let time = |l: &[u8]| Envelope::decode(l).ok().map(|e| e.timestamp_us() / 1000);
    let rep = producer
        .produce_lines_at(topic, &refs, key, time)
        .await
        .unwrap();
    assert_eq!(rep.produced, lines.len());
}

/// The broker of the stack (`REFOLD_KAFKA_BROKERS`); a failure when none runs.
fn brokers() -> String {
    match std::env::var("REFOLD_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => panic!(
            "REFOLD_KAFKA_BROKERS is not set: start a broker with `scripts/stack.sh up DIR kafka` \
             and export the variables of DIR/stack.env (this test needs a real broker)"
        ),
    }
}

/// A worker dies on tansu at the worst point of a shard: after its batch's files are
/// written, before the commit (the table's crash hook forces it there). A new container
/// re-runs the shard; the target equals the CPython fold of every record: nothing lost,
/// nothing twice.
#[test]
fn a_worker_killed_mid_commit_on_tansu_lands_every_record_once() {
    use std::sync::Arc;

    use refold::replay::invoker::NoInvoker;
    use refold::replay::store::MemoryReplayStore;
    use refold::replay::{ReplayService, ShardOutcome, WorkerLimits, run_shard, target};

    let brokers = brokers();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("warehouse");
    let topic = format!("killed-{}", uuid_like());
    let pipeline = pipeline_with_topic(dir.path(), &topic);
    let lines = sorted_lines();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        produce_topic(&brokers, &topic, 2, &lines).await;

        let text = std::fs::read_to_string(&pipeline).unwrap();
        let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| brokers.clone());
        let loaded = refold::pipeline::parse(&text, "p.yaml", &env);
        let cp = refold::batch::CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap();
        let catalog = CatalogConfig::embedded(&wh).unwrap();
        let store = Arc::new(MemoryReplayStore::default());
        let offsets = refold_kafka::replay::KafkaOffsets::from_env(&brokers).unwrap();
        let service = ReplayService::new(
            target::recompiled(&cp).unwrap(),
            catalog.clone(),
            store.clone(),
            Arc::new(offsets),
            Arc::new(NoInvoker),
        );
        // The group `table_rows` reads the target under (the CLI's default).
        let body = serde_json::json!({"from_offset": "earliest",
            "target_consumer_group": "order-events-pipeline-replay",
            "parallel_consumers": 1, "target": "killed"});
        let plan = service
            .plan("order-events-pipeline", body.to_string().as_bytes())
            .await
            .unwrap();
        let ranges = refold_kafka::replay::KafkaRanges::from_env(&brokers).unwrap();
        let dl = Arc::new(refold::dead_letter::LocalDeadLetters::new(wh.join("dl")));
        let open = || {
            target::open_engine(
                target::recompiled(&cp).unwrap(),
                catalog.clone(),
                &plan,
                dl.clone(),
            )
        };
        let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
        let limits = |batches| WorkerLimits {
            max_batch_records: 500,
            max_batches_per_invocation: batches,
            ..WorkerLimits::default()
        };

        let engine = open().await.unwrap();
        let r = run_shard(&plan, 0, &engine, &ranges, store.as_ref(), &limits(2), far)
            .await
            .unwrap();
        assert_eq!((r.outcome, r.batches), (ShardOutcome::Continue, 2));
        engine
            .table()
            .inject_fault(refold::table::FaultPoint::AfterFilesWritten);
        let died = run_shard(
            &plan,
            0,
            &engine,
            &ranges,
            store.as_ref(),
            &limits(100),
            far,
        )
        .await;
        assert!(died.is_err(), "the forced crash did not happen: {died:?}");
        drop(engine);

        let engine = open().await.unwrap();
        let r = run_shard(
            &plan,
            0,
            &engine,
            &ranges,
            store.as_ref(),
            &limits(1_000),
            far,
        )
        .await
        .unwrap();
        assert_eq!(r.outcome, ShardOutcome::Done, "{r:?}");
    });
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &table_rows(&pipeline, &wh, "killed"),
        &oracle_of(dir.path(), &pipeline, &all, "killed"),
        "a worker killed mid-commit, re-run",
    );
}

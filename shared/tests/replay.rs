//! Replay on in-memory ports (topic, store) and a real local warehouse: plans and their
//! 400/404/409 answers, parallel shards, time cuts, continuation across invocations, a
//! stopped worker re-run, cancel, and promotion interleaved with live batches. Tables are
//! compared with the CPython oracle (`tests/py/seed_fold.py`) over the same lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod replay_support;

use std::sync::Arc;
use std::time::Duration;

use refold::engine::BatchProcessor;
use refold::replay::promote::{PromoteInput, PromoteOptions, promote};
use refold::replay::store::Marker;
use refold::replay::worker::run_shard;
use refold::replay::{
    Problem, ReplayPlan, ReplayState, ReplayStore, ShardOutcome, WorkerLimits, target,
};
use refold::table::{StateRow, StateTable};
use replay_support::*;

fn body(json: serde_json::Value) -> Vec<u8> {
    json.to_string().into_bytes()
}

async fn rows_of(f: &Fixture, plan: &ReplayPlan) -> Vec<StateRow> {
    let cfg = target::target_config(&pipeline(), f.catalog.clone(), plan).unwrap();
    StateTable::open_or_create(cfg)
        .await
        .unwrap()
        .current_rows(None, None)
        .await
        .unwrap()
}

async fn run_to_end(f: &Fixture, req: serde_json::Value) -> ReplayPlan {
    let started = f
        .service
        .start("order-events-pipeline", &body(req))
        .await
        .unwrap();
    let results = f.invoker.wait_idle().await;
    for (task, r) in &results {
        assert!(r.is_ok(), "shard {} failed: {r:?}", task.shard);
    }
    let st = f
        .service
        .status("order-events-pipeline", started.replay_id.as_str())
        .await
        .unwrap();
    assert_eq!(st.state, ReplayState::Done, "{st:?}");
    assert_eq!(st.events_done, st.events_total);
    f.store
        .get("order-events-pipeline", &started.replay_id)
        .await
        .unwrap()
        .plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_1_and_4_give_the_oracles_table() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let f = fixture(
        dir.path(),
        topic_of(&lines, 8),
        WorkerLimits::default(),
        Duration::from_secs(600),
    );
    let req = |n: u32, t: &str| {
        serde_json::json!({"from_offset": "earliest", "target_consumer_group": format!("g{n}"),
            "parallel_consumers": n, "target": t})
    };
    let one = run_to_end(&f, req(1, "p1")).await;
    let four = run_to_end(&f, req(4, "p4")).await;
    assert_eq!(one.shards.len(), 1);
    assert_eq!(four.shards.len(), 4);
    assert!(
        four.shards.iter().all(|s| s.ranges.len() == 2),
        "{:?}",
        four.shards
    );
    let (a, b) = (rows_of(&f, &one).await, rows_of(&f, &four).await);
    assert_eq!(comparable(&a), comparable(&b), "parallel 1 and 4 differ");
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &comparable(&b),
        &oracle_rows(dir.path(), &all),
        "parallel 4",
    );
    let listed = f.service.list("order-events-pipeline").await.unwrap();
    assert_eq!(listed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_cuts_take_exactly_the_records_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let f = fixture(
        dir.path(),
        topic_of(&lines, 4),
        WorkerLimits::default(),
        Duration::from_secs(600),
    );
    let (from, to) = ("2026-02-03T00:00:00Z", "2026-02-08T12:00:00Z");
    let ms = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };
    let plan = run_to_end(
        &f,
        serde_json::json!({"from_offset": from, "to_timestamp": to,
            "target_consumer_group": "cut", "parallel_consumers": 2}),
    )
    .await;
    let want: Vec<&String> = lines
        .iter()
        .filter(|l| (ms(from)..=ms(to)).contains(&time_ms(l)))
        .collect();
    assert!(
        want.len() > 100 && want.len() < lines.len() - 100,
        "a real cut: {}",
        want.len()
    );
    assert_eq!(
        plan.events() as usize,
        want.len(),
        "records in the planned ranges"
    );
    let got = rows_of(&f, &plan).await;
    oracle::assert_rows_eq(
        &comparable(&got),
        &oracle_rows(dir.path(), &want),
        "time cut",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_deadline_continues_across_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let limits = WorkerLimits {
        max_batch_records: 150,
        deadline_margin_ms: 700,
        ..WorkerLimits::default()
    };
    // 300 ms of batches per invocation, each batch at least 60 ms (its read sleeps): at most
    // 6 of a shard's ~17 batches fit, so each shard continues at least twice, however fast
    // the machine folds (it once finished a shard within one invocation).
    let f = fixture_slow(
        dir.path(),
        topic_of(&lines, 4),
        limits,
        Duration::from_millis(1_000),
        Duration::from_millis(60),
    );
    let started = f
        .service
        .start(
            "order-events-pipeline",
            &body(serde_json::json!({"from_offset": "earliest",
                "target_consumer_group": "short", "parallel_consumers": 2})),
        )
        .await
        .unwrap();
    let results = f.invoker.wait_idle().await;
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let continued = results
        .iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_ok_and(|r| r.outcome == ShardOutcome::Continue)
        })
        .count();
    assert!(continued >= 4, "expected continuations, got {results:?}");
    let plan = f
        .store
        .get("order-events-pipeline", &started.replay_id)
        .await
        .unwrap()
        .plan;
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &comparable(&rows_of(&f, &plan).await),
        &oracle_rows(dir.path(), &all),
        "continued",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_shard_rerun_lands_once_and_cancel_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let f = fixture(
        dir.path(),
        topic_of(&lines, 3),
        WorkerLimits::default(),
        Duration::from_secs(600),
    );
    let plan = f
        .service
        .plan(
            "order-events-pipeline",
            &body(serde_json::json!({"from_offset": "earliest",
                "target_consumer_group": "stop", "parallel_consumers": 1})),
        )
        .await
        .unwrap();
    let engine = target::open_engine(
        refold::replay::target::recompiled(&pipeline()).unwrap(),
        f.catalog.clone(),
        &plan,
        (dead_letters(dir.path()))(&plan).unwrap(),
    )
    .await
    .unwrap();
    let stop_after = |n| WorkerLimits {
        max_batch_records: 500,
        max_batches_per_invocation: n,
        ..WorkerLimits::default()
    };
    let r1 = run_shard(
        &plan,
        0,
        &engine,
        &f.topic,
        f.store.as_ref(),
        &stop_after(2),
        far(),
    )
    .await
    .unwrap();
    assert_eq!((r1.outcome, r1.batches), (ShardOutcome::Continue, 2));
    let mid = f
        .service
        .status("order-events-pipeline", plan.replay_id.as_str())
        .await
        .unwrap();
    assert_eq!(mid.state, ReplayState::Running);
    assert!(
        mid.events_done > 0 && mid.events_done < mid.events_total,
        "{mid:?}"
    );
    // A duplicate invocation of the same shard runs beside the rest: each record lands once.
    let r2 = run_shard(
        &plan,
        0,
        &engine,
        &f.topic,
        f.store.as_ref(),
        &stop_after(1000),
        far(),
    )
    .await
    .unwrap();
    assert_eq!(r2.outcome, ShardOutcome::Done);
    let r3 = run_shard(
        &plan,
        0,
        &engine,
        &f.topic,
        f.store.as_ref(),
        &stop_after(1000),
        far(),
    )
    .await
    .unwrap();
    assert_eq!(
        (r3.outcome, r3.batches),
        (ShardOutcome::Done, 0),
        "nothing left"
    );
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &comparable(&rows_of(&f, &plan).await),
        &oracle_rows(dir.path(), &all),
        "re-run",
    );

    // Cancel: a worker stops before its next batch.
    let plan2 = f
        .service
        .plan(
            "order-events-pipeline",
            &body(serde_json::json!({"from_offset": "earliest",
                "target_consumer_group": "cancel", "parallel_consumers": 1})),
        )
        .await
        .unwrap();
    let st = f
        .service
        .cancel("order-events-pipeline", plan2.replay_id.as_str())
        .await
        .unwrap();
    assert_eq!(st.state, ReplayState::Cancelled);
    let engine2 = target::open_engine(
        refold::replay::target::recompiled(&pipeline()).unwrap(),
        f.catalog.clone(),
        &plan2,
        (dead_letters(dir.path()))(&plan2).unwrap(),
    )
    .await
    .unwrap();
    let rc = run_shard(
        &plan2,
        0,
        &engine2,
        &f.topic,
        f.store.as_ref(),
        &stop_after(1000),
        far(),
    )
    .await
    .unwrap();
    assert_eq!((rc.outcome, rc.batches), (ShardOutcome::Cancelled, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_their_field_and_conflicts_are_409() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let topic = topic_of(&lines, 4);
    let f = fixture(
        dir.path(),
        topic.clone(),
        WorkerLimits::default(),
        Duration::from_secs(600),
    );
    let plan = |v: serde_json::Value| {
        let svc = &f.service;
        async move { svc.plan("order-events-pipeline", &body(v)).await }
    };
    let ok = |from: serde_json::Value| serde_json::json!({"from_offset": from, "target_consumer_group": "g", "parallel_consumers": 2});
    let cases = [
        (
            serde_json::json!({"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 5}),
            "parallel_consumers",
        ),
        (
            serde_json::json!({"from_offset": "earliest", "target_consumer_group": "order-projection-v1", "parallel_consumers": 1}),
            "target_consumer_group",
        ),
        (
            serde_json::json!({"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 1, "target": "current_state"}),
            "target",
        ),
        (ok(serde_json::json!({"0": 1, "1": 0})), "from_offset"),
        (
            ok(serde_json::json!({"0": 1, "1": 0, "2": 0, "3": 0, "7": 0})),
            "from_offset",
        ),
        (ok(serde_json::json!("latest_checkpoint")), "from_offset"),
        (ok(serde_json::json!("tomorrow")), "from_offset"),
    ];
    for (req, field) in cases {
        let e = plan(req.clone()).await.unwrap_err();
        let p = Problem::of(&e);
        assert_eq!(
            (p.status, p.field.as_deref()),
            (400, Some(field)),
            "{req}: {e}"
        );
    }
    topic.set_log_start(2, 10).unwrap();
    let e = plan(ok(serde_json::json!("earliest"))).await.unwrap();
    assert_eq!(e.ranges[2].from, 10, "earliest is the log start");
    let e = plan(ok(serde_json::json!(0))).await.unwrap_err();
    let p = Problem::of(&e);
    assert_eq!((p.status, p.field.as_deref()), (400, Some("from_offset")));
    assert!(p.error.contains("beyond retention"), "{}", p.error);
    assert!(
        p.error.contains("the event archive holds none of it"),
        "{}",
        p.error
    );
    // 404s
    let nf = f
        .service
        .plan("nope", &body(ok(serde_json::json!("earliest"))))
        .await
        .unwrap_err();
    assert_eq!(Problem::of(&nf).status, 404);
    for id in ["20261202t051500z-3f9a1c2e", "../x"] {
        let nf = f
            .service
            .status("order-events-pipeline", id)
            .await
            .unwrap_err();
        assert_eq!(Problem::of(&nf).status, 404, "{id}");
    }
    // 409: a running replay holds its target; a table that exists is never a target.
    let mut t = ok(serde_json::json!("earliest"));
    t["target"] = "mine".into();
    let first = plan(t.clone()).await.unwrap();
    let e = plan(t.clone()).await.unwrap_err();
    assert_eq!(Problem::of(&e).status, 409, "{e}");
    f.store
        .mark(
            "order-events-pipeline",
            &first.replay_id,
            Marker::Cancelled { at_ms: 0 },
        )
        .await
        .unwrap();
    let cfg = target::target_config(&pipeline(), f.catalog.clone(), &first).unwrap();
    StateTable::open_or_create(cfg).await.unwrap();
    let e = plan(t).await.unwrap_err();
    assert_eq!(Problem::of(&e).status, 409, "{e}");
}

/// Runs a promotion on its own thread and runtime (as another process would).
fn promote_elsewhere(
    dir: std::path::PathBuf,
    catalog: refold::table::CatalogConfig,
    store: Arc<dyn ReplayStore>,
    topic: refold::replay::memory::MemoryTopic,
    plan: ReplayPlan,
    opts: PromoteOptions,
) -> refold::replay::promote::Promoted {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let cp = pipeline();
        let r = store.get(&plan.pipeline, &plan.replay_id).await.unwrap();
        let input = PromoteInput {
            cp: &cp,
            catalog: &catalog,
            store: store.as_ref(),
            source: &topic,
            dead_letters: (dead_letters(&dir))(&plan).unwrap(),
        };
        promote(&input, &r, &opts).await.unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_under_live_batches_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let n = lines.len();
    let cut = |pct: usize| n * pct / 100;
    let topic = refold::replay::memory::MemoryTopic::new(TOPIC, 4);
    let records = append(&topic, &lines[..cut(70)], 4);
    let f = fixture(
        dir.path(),
        topic.clone(),
        WorkerLimits::default(),
        Duration::from_secs(600),
    );
    let live_dl = Arc::new(refold::dead_letter::LocalDeadLetters::new(
        dir.path().join("live-dl"),
    ));
    let live = BatchProcessor::open(pipeline(), f.catalog.clone(), live_dl.clone())
        .await
        .unwrap();
    live.process(records, vec![]).await.unwrap();
    // The replay covers what the topic has now (70%).
    let plan = run_to_end(
        &f,
        serde_json::json!({"from_offset": "earliest", "target_consumer_group": "promo", "parallel_consumers": 2}),
    )
    .await;
    // Live moves on past the replay: 70..80%.
    let more = append(&topic, &lines[cut(70)..], 4);
    let (b80, b85, b90, b100) = (
        more[..cut(80) - cut(70)].to_vec(),
        more[cut(80) - cut(70)..cut(85) - cut(70)].to_vec(),
        more[cut(80) - cut(70)..cut(90) - cut(70)].to_vec(),
        more[cut(90) - cut(70)..].to_vec(),
    );
    live.process(b80, vec![]).await.unwrap();
    // The live batch 80..90% is in flight (files written, compare-and-set next) when the
    // promotion runs; the promotion itself first loses to a second live writer (80..85%).
    let opts = PromoteOptions {
        before_swap: Some({
            let (catalog, dl) = (f.catalog.clone(), live_dl.clone());
            Arc::new(move |attempt| {
                let (catalog, dl, b85) = (catalog.clone(), dl.clone(), b85.clone());
                Box::pin(async move {
                    if attempt == 1 {
                        // On its own thread and runtime: the engine's future is not `Send`.
                        tokio::task::spawn_blocking(move || {
                            let rt = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .unwrap();
                            rt.block_on(async move {
                                let other =
                                    BatchProcessor::open(pipeline(), catalog, dl).await.unwrap();
                                let c = other.process(b85, vec![]).await.unwrap().counts;
                                assert!(c.folded > 0, "{c:?}");
                            })
                        })
                        .await
                        .unwrap();
                    }
                })
            })
        }),
        ..PromoteOptions::default()
    };
    let promoted = Arc::new(std::sync::Mutex::new(None));
    {
        let (dir, catalog, topic, plan) = (
            dir.path().to_path_buf(),
            f.catalog.clone(),
            topic.clone(),
            plan.clone(),
        );
        let store: Arc<dyn ReplayStore> = f.store.clone();
        let promoted = promoted.clone();
        live.table().set_hook(
            refold::table::hooks::HookPoint::MergeBeforeCommit,
            Some(Arc::new(move |_, attempt| {
                let args = (
                    dir.clone(),
                    catalog.clone(),
                    store.clone(),
                    topic.clone(),
                    plan.clone(),
                    opts.clone(),
                );
                let promoted = promoted.clone();
                Box::pin(async move {
                    // Once: the hook fires in each partition's merge of the batch.
                    if attempt == 1 && promoted.lock().unwrap().is_none() {
                        let p = tokio::task::spawn_blocking(move || {
                            promote_elsewhere(args.0, args.1, args.2, args.3, args.4, args.5)
                        })
                        .await
                        .unwrap();
                        *promoted.lock().unwrap() = Some(p);
                    }
                })
            })),
        );
    }
    let a = live.process(b90, vec![]).await.unwrap().counts;
    live.table()
        .set_hook(refold::table::hooks::HookPoint::MergeBeforeCommit, None);
    let p = promoted.lock().unwrap().clone().expect("the promotion ran");
    assert_eq!(
        p.attempts, 2,
        "the first swap lost to the live commit: {p:?}"
    );
    assert_eq!(a.received, cut(90) - cut(80));
    // 80..85% were applied by the other writer: already applied, or filtered (event types
    // the source drops are counted as filtered first).
    let other = cut(85) - cut(80);
    assert!(
        a.already_applied <= other && a.already_applied + a.filtered >= other,
        "80..85% applied by the other writer: {a:?}"
    );
    live.process(b100, vec![]).await.unwrap();
    let all: Vec<&String> = lines.iter().collect();
    let now = live.table().current_rows(None, None).await.unwrap();
    oracle::assert_rows_eq(
        &comparable(&now),
        &oracle_rows(dir.path(), &all),
        "live after promotion",
    );
    let props = live.table().properties().await.unwrap();
    assert_eq!(
        props.get("refold.replay").map(String::as_str),
        Some(plan.replay_id.as_str()),
        "the replay's table is live"
    );
    let st = f
        .service
        .status("order-events-pipeline", plan.replay_id.as_str())
        .await
        .unwrap();
    assert_eq!(st.state, ReplayState::Promoted);
    // The old live table is kept: the state at 85%.
    let mut before = live.table().config().clone();
    before.table.name = p.previous_table.rsplit('.').next().unwrap().to_owned();
    let old = StateTable::open_or_create(before)
        .await
        .unwrap()
        .current_rows(None, None)
        .await
        .unwrap();
    let upto85: Vec<&String> = lines[..cut(85)].iter().collect();
    oracle::assert_rows_eq(
        &comparable(&old),
        &oracle_rows(dir.path(), &upto85),
        "old live table",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_earliest_reads_what_retention_dropped_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let topic = refold::replay::memory::MemoryTopic::new(TOPIC, 4);
    let records = append(&topic, &lines, 4);
    let limits = WorkerLimits {
        max_batch_records: 500,
        ..WorkerLimits::default()
    };
    let f = fixture(dir.path(), topic.clone(), limits, Duration::from_secs(600));
    // The live pipeline archives every event it folds.
    let live_dl = Arc::new(refold::dead_letter::LocalDeadLetters::new(
        dir.path().join("live-dl"),
    ));
    let live = BatchProcessor::open(pipeline(), f.catalog.clone(), live_dl)
        .await
        .unwrap();
    for chunk in records.chunks(1000) {
        live.process(chunk.to_vec(), vec![]).await.unwrap();
    }
    // Retention drops the first half of every partition.
    let mut lows = std::collections::BTreeMap::new();
    for p in 0..4 {
        let n = records.iter().filter(|r| r.partition == p).count() as i64;
        topic.set_log_start(p, n / 2).unwrap();
        lows.insert(p, n / 2);
    }
    let plan = run_to_end(
        &f,
        serde_json::json!({"from_offset": "earliest", "target_consumer_group": "deep",
            "parallel_consumers": 2}),
    )
    .await;
    for r in &plan.ranges {
        assert_eq!(r.from, 0, "earliest is the archive's first offset: {r:?}");
        assert_eq!(r.archive_to, lows.get(&r.partition).copied(), "{r:?}");
    }
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &comparable(&rows_of(&f, &plan).await),
        &oracle_rows(dir.path(), &all),
        "replay beyond retention",
    );
    // The status says which part of each range came from the archive.
    let st = f
        .service
        .status("order-events-pipeline", plan.replay_id.as_str())
        .await
        .unwrap();
    let split: std::collections::BTreeMap<i32, Option<i64>> = st
        .shards
        .iter()
        .flat_map(|s| s.partitions.iter().map(|p| (p.partition, p.archive_to)))
        .collect();
    assert_eq!(split, lows.iter().map(|(p, l)| (*p, Some(*l))).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_in_the_archived_part_are_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let lines = sorted_lines();
    let topic = refold::replay::memory::MemoryTopic::new(TOPIC, 2);
    let records = append(&topic, &lines, 2);
    let f = fixture(
        dir.path(),
        topic.clone(),
        WorkerLimits::default(),
        Duration::from_secs(600),
    );
    let live_dl = Arc::new(refold::dead_letter::LocalDeadLetters::new(
        dir.path().join("live-dl"),
    ));
    let live = BatchProcessor::open(pipeline(), f.catalog.clone(), live_dl)
        .await
        .unwrap();
    live.process(records.clone(), vec![]).await.unwrap();
    for p in 0..2 {
        let n = records.iter().filter(|r| r.partition == p).count() as i64;
        topic.set_log_start(p, n / 2).unwrap();
    }
    // A time in the first days: only the archive holds those records.
    for (req, field) in [
        (
            serde_json::json!({"from_offset": "2026-02-01T12:00:00Z", "target_consumer_group": "t",
                "parallel_consumers": 1}),
            "from_offset",
        ),
        (
            serde_json::json!({"from_offset": "earliest", "to_timestamp": "2026-02-01T12:00:00Z",
                "target_consumer_group": "t", "parallel_consumers": 1}),
            "to_timestamp",
        ),
    ] {
        let e = f
            .service
            .plan("order-events-pipeline", &body(req.clone()))
            .await
            .unwrap_err();
        let p = Problem::of(&e);
        assert_eq!(
            (p.status, p.field.as_deref()),
            (400, Some(field)),
            "{req}: {}",
            p.error
        );
        assert!(
            p.error.contains("only the event archive holds"),
            "{}",
            p.error
        );
    }
}

/// Fails the invocations of shard 0 whose attempt is below `fail_below` with `kind`, then
/// runs the real worker: a fault forced at a known point, not hoped for.
struct Flaky {
    worker: Arc<refold::replay::handler::ReplayWorker>,
    kind: refold::error::ErrorKind,
    fail_below: u32,
}

#[async_trait::async_trait(?Send)]
impl refold::replay::invoker::ShardHandler for Flaky {
    async fn handle(
        &self,
        task: &refold::replay::ShardTask,
        deadline: std::time::Instant,
    ) -> refold::error::Result<refold::replay::ShardReport> {
        if task.shard == 0 && task.attempt < self.fail_below {
            return Err(refold::error::Error::new(
                self.kind,
                format!("injected fault, attempt {}", task.attempt),
            ));
        }
        self.worker.run(task, deadline).await
    }
}

fn flaky_fixture(
    dir: &std::path::Path,
    kind: refold::error::ErrorKind,
    fail_below: u32,
) -> Fixture {
    fixture_with(
        dir,
        topic_of(&sorted_lines(), 2),
        WorkerLimits::default(),
        Duration::from_secs(600),
        |worker| {
            Arc::new(Flaky {
                worker,
                kind,
                fail_below,
            })
        },
    )
}

async fn start_and_wait(
    f: &Fixture,
    group: &str,
) -> (
    refold::replay::ReplayStatus,
    Vec<(
        refold::replay::ShardTask,
        Result<refold::replay::ShardReport, String>,
    )>,
) {
    let started = f
        .service
        .start(
            "order-events-pipeline",
            &body(serde_json::json!({"from_offset": "earliest",
                "target_consumer_group": group, "parallel_consumers": 2})),
        )
        .await
        .unwrap();
    let results = f.invoker.wait_idle().await;
    let st = f
        .service
        .status("order-events-pipeline", started.replay_id.as_str())
        .await
        .unwrap();
    (st, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_and_the_replay_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let f = flaky_fixture(dir.path(), refold::error::ErrorKind::Io, 2);
    let (st, results) = start_and_wait(&f, "flaky").await;
    assert_eq!(st.state, ReplayState::Done, "{st:?}");
    assert_eq!(st.events_done, st.events_total);
    let retried: Vec<u32> = results
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.outcome == ShardOutcome::Retried))
        .map(|(t, _)| t.attempt)
        .collect();
    assert_eq!(
        retried,
        vec![0, 1],
        "shard 0's first two attempts retried: {results:?}"
    );
    let plan = f
        .store
        .get("order-events-pipeline", &st.replay_id)
        .await
        .unwrap()
        .plan;
    let lines = sorted_lines();
    let all: Vec<&String> = lines.iter().collect();
    oracle::assert_rows_eq(
        &comparable(&rows_of(&f, &plan).await),
        &oracle_rows(dir.path(), &all),
        "retried",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasting_or_permanent_failure_marks_the_replay_failed() {
    use refold::replay::invoker::MAX_ATTEMPTS_PER_INVOCATION;
    let dir = tempfile::tempdir().unwrap();
    // Transient, but on every attempt: failed after the last one, with its reason.
    let f = flaky_fixture(dir.path(), refold::error::ErrorKind::Io, u32::MAX);
    let (st, results) = start_and_wait(&f, "lasting").await;
    assert_eq!(st.state, ReplayState::Failed, "{st:?}");
    let attempts = results.iter().filter(|(t, _)| t.shard == 0).count();
    assert_eq!(attempts as u32, MAX_ATTEMPTS_PER_INVOCATION, "{results:?}");
    let reason = st.failure.clone().unwrap_or_default();
    assert!(
        reason.contains("injected fault")
            && reason.contains(&format!("attempt {MAX_ATTEMPTS_PER_INVOCATION}")),
        "{reason}"
    );
    // Not transient (a bad configuration): failed at the first attempt, no retry.
    let dir = tempfile::tempdir().unwrap();
    let f = flaky_fixture(dir.path(), refold::error::ErrorKind::Config, u32::MAX);
    let (st, results) = start_and_wait(&f, "config").await;
    assert_eq!(st.state, ReplayState::Failed, "{st:?}");
    let attempts = results.iter().filter(|(t, _)| t.shard == 0).count();
    assert_eq!(attempts, 1, "{results:?}");
}

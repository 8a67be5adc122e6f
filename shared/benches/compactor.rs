//! Snapshot-compactor benchmark: a state table that took 1,000 fold-batch commits of 100
//! events (4 source partitions, 2,500 keys each: nearly every event updates a row, so each
//! commit adds a data file, a position-delete file, two manifests and a snapshot), before and
//! after one maintenance pass (`refold::compactor::run_pass`, the pipeline defaults, run "a
//! day later" so the expiry window and the orphans' grace period have passed):
//! - the next merge of a 100-event batch: p50 of warm merges (one open table, a warm Lambda)
//!   and of cold ones (open + merge);
//! - a full scan (`current_rows`);
//! - snapshots, manifests, data and delete files, the metadata file's size;
//! - the pass's own time and peak RSS (VmHWM reset just before it);
//! - the same merge on a fresh table holding the same rows in one commit: the target is
//!   after-pass p50 <= 1.2 x fresh p50.
//!
//! `cargo bench --workspace --bench compactor` (release). Environment: REFOLD_BENCH_COMMITS
//! (default 1000), REFOLD_BENCH_EVENTS (events per commit, 100), REFOLD_BENCH_ITERS (merges
//! per measurement, 9), REFOLD_BENCH_DIR (default a temp dir).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use refold::compactor::{self, MaintenancePolicy, PassOptions};
use refold::table::stats::TableStats;
use refold::table::{
    CatalogConfig, FoldedBatch, StateColumns, StateRow, StateTable, TableConfig, TableIdentity,
};

const PARTITIONS: i32 = 4;
const KEYS_PER_PARTITION: u64 = 2_500;
const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const DAY_MS: i64 = 86_400_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn config(dir: &Path) -> TableConfig {
    TableConfig {
        catalog: CatalogConfig::embedded(dir).unwrap(),
        table: TableIdentity {
            namespace: vec!["bench".into()],
            name: "state".into(),
        },
        key_field: "order_id".into(),
        columns: StateColumns::Json,
        topic: "bench.events".into(),
        consumer_group: "bench".into(),
        properties: BTreeMap::new(),
    }
}

/// The batch source: per partition, the next offset; events on uniform keys.
struct Source {
    rng: Rng,
    next: BTreeMap<i32, i64>,
}

type Id = (String, String);

impl Source {
    /// One batch of `n` events of partition `p`: (identity, value) in offset order, and the
    /// offset after it.
    fn batch(&mut self, p: i32, n: usize) -> (Vec<(Id, i64)>, i64) {
        let start = *self.next.entry(p).or_insert(0);
        let evs = (0..n)
            .map(|_| {
                let k = self.rng.next() % KEYS_PER_PARTITION;
                let id = (
                    TENANTS[(k % 4) as usize].to_string(),
                    format!("p{p}-order-{k:06}"),
                );
                (id, (self.rng.next() % 10_000) as i64)
            })
            .collect();
        self.next.insert(p, start + n as i64);
        (evs, start + n as i64)
    }
}

fn fold_row(prior: Option<&StateRow>, id: &Id, p: i32, offset: i64, v: i64) -> StateRow {
    let n = prior.map_or(0, |r| r.events_folded) + 1;
    let sum = prior
        .and_then(|r| r.state.to_value().get("sum").and_then(|s| s.as_i64()))
        .unwrap_or(0)
        + v;
    let serde_json::Value::Object(state) =
        serde_json::json!({"sum": sum, "last": v, "status": "placed"})
    else {
        unreachable!()
    };
    StateRow {
        tenant_id: id.0.clone(),
        key: id.1.clone(),
        state: refold::fold::State::from_map(&state),
        source_partition: p,
        last_offset: offset,
        last_event_id: format!("e-{p}-{offset}"),
        last_event_time_us: 1_700_000_000_000_000 + offset,
        events_folded: n,
    }
}

/// Merges one batch (the fold counts events and keeps a sum); returns milliseconds.
async fn merge(t: &StateTable, p: i32, evs: &[(Id, i64)], next: i64) -> f64 {
    let mut keys: Vec<Id> = evs.iter().map(|(id, _)| id.clone()).collect();
    keys.sort();
    keys.dedup();
    let first = next - evs.len() as i64;
    let started = Instant::now();
    t.merge_batch(
        p,
        &keys,
        async |committed: i64, priors: &refold::batch::Rows| {
            let mut cur: HashMap<Id, StateRow> = HashMap::new();
            for (i, (id, v)) in evs.iter().enumerate() {
                let o = first + i as i64;
                if o < committed {
                    continue;
                }
                let prior = cur.get(id).or_else(|| priors.get(id)).cloned();
                cur.insert(id.clone(), fold_row(prior.as_ref(), id, p, o, *v));
            }
            Ok(FoldedBatch {
                rows: cur.into_values().collect(),
                next_offset: next.max(committed),
                extra_summary: BTreeMap::new(),
            })
        },
    )
    .await
    .unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Measured {
    warm_ms: f64,
    cold_ms: f64,
    scan_ms: f64,
    stats: TableStats,
}

/// Next-merge latency (warm and cold), scan time and counts of the table in `dir`.
async fn measure(dir: &Path, t: &StateTable, src: &mut Source, iters: usize) -> Measured {
    let stats = t.table_stats().await.unwrap();
    let started = Instant::now();
    let rows = t.current_rows(None, None).await.unwrap();
    let scan_ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(!rows.is_empty());
    let mut warm = vec![];
    for i in 0..iters {
        let p = (i as i32) % PARTITIONS;
        let (evs, next) = src.batch(p, env_or("REFOLD_BENCH_EVENTS", 100));
        warm.push(merge(t, p, &evs, next).await);
    }
    let mut cold = vec![];
    for i in 0..iters.div_ceil(3) {
        let p = (i as i32) % PARTITIONS;
        let (evs, next) = src.batch(p, env_or("REFOLD_BENCH_EVENTS", 100));
        let started = Instant::now();
        let fresh = StateTable::open_or_create(config(dir)).await.unwrap();
        merge(&fresh, p, &evs, next).await;
        cold.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Measured {
        warm_ms: p50(warm),
        cold_ms: p50(cold),
        scan_ms,
        stats,
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A table holding `rows` (of the aged table) in one commit per partition.
async fn fresh_copy(dir: &Path, rows: Vec<StateRow>, offsets: &BTreeMap<i32, i64>) -> StateTable {
    let t = StateTable::open_or_create(config(dir)).await.unwrap();
    let mut by_p: BTreeMap<i32, Vec<StateRow>> = BTreeMap::new();
    for r in rows {
        by_p.entry(r.source_partition).or_default().push(r);
    }
    for (p, rows) in by_p {
        let keys: Vec<Id> = rows.iter().map(|r| r.identity()).collect();
        let next = offsets[&p];
        t.merge_batch(p, &keys, async |_, _| {
            Ok(FoldedBatch {
                rows: rows.clone(),
                next_offset: next,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
        .unwrap();
    }
    t
}

fn row(name: &str, m: &Measured) {
    let s = &m.stats;
    println!(
        "{name:<22} {:>9.1} {:>9.1} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>11}",
        m.warm_ms,
        m.cold_ms,
        m.scan_ms,
        s.snapshots,
        s.manifests(),
        s.data_files,
        s.delete_files,
        s.metadata_bytes
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let commits = env_or("REFOLD_BENCH_COMMITS", 1_000);
    let events = env_or("REFOLD_BENCH_EVENTS", 100);
    let iters = env_or("REFOLD_BENCH_ITERS", 9).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let base = std::env::var("REFOLD_BENCH_DIR").map_or(tmp.path().to_path_buf(), Into::into);
    let (aged_dir, fresh_dir) = (base.join("aged"), base.join("fresh"));
    let t = StateTable::open_or_create(config(&aged_dir)).await.unwrap();
    let mut src = Source {
        rng: Rng(0x9E37_79B9_7F4A_7C15),
        next: BTreeMap::new(),
    };
    let started = Instant::now();
    for i in 0..commits {
        let p = (i as i32) % PARTITIONS;
        let (evs, next) = src.batch(p, events);
        merge(&t, p, &evs, next).await;
    }
    println!(
        "built: {commits} commits of {events} events into {PARTITIONS} partitions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "table",
        "merge ms",
        "cold ms",
        "scan ms",
        "snapshots",
        "manifests",
        "data",
        "deletes",
        "metadata B"
    );
    let before = measure(&aged_dir, &t, &mut src, iters).await;
    row("before the pass", &before);

    let pipeline = "bench".to_string();
    let opts = PassOptions {
        // A day and an hour later: the window and the grace period have passed.
        now_ms: refold::emf::now_ms() + DAY_MS + 3_600_000,
        force_checkpoint: false,
        deadline: None,
        pipeline,
    };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before_kb = vm_rss_kb();
    let pass_started = Instant::now();
    let report = compactor::run_pass(&t, None, &MaintenancePolicy::default(), &opts).await;
    let pass_ms = pass_started.elapsed().as_secs_f64() * 1e3;
    let peak_kb = vm_hwm_kb();
    assert!(report.failed_steps().is_empty(), "{report:#?}");
    let after = measure(&aged_dir, &t, &mut src, iters).await;
    row("after the pass", &after);

    let rows = t.current_rows(None, None).await.unwrap();
    let fresh = fresh_copy(&fresh_dir, rows, &src.next).await;
    let fresh_m = measure(&fresh_dir, &fresh, &mut src, iters).await;
    row("fresh, same rows", &fresh_m);

    let c = report.compaction.detail.clone().unwrap_or_default();
    let o = report.orphans.detail.clone().unwrap_or_default();
    let e = report.expiry.detail.clone().unwrap_or_default();
    println!(
        "pass: {pass_ms:.0} ms (compaction {:.0}, manifests {:.0}, checkpoint {:.0}, expiry {:.0}, orphans {:.0}); \
         {} partitions compacted, {} snapshots expired, {} orphan files deleted ({} MB)",
        report.compaction.ms,
        report.manifests.ms,
        report.checkpoint.ms,
        report.expiry.ms,
        report.orphans.ms,
        c.partitions.len(),
        e.outcome.expired,
        o.deleted,
        o.deleted_bytes / 1_000_000
    );
    println!(
        "pass peak RSS: {} MB (RSS before it {} MB, so {} MB for the pass)",
        peak_kb / 1024,
        rss_before_kb / 1024,
        peak_kb.saturating_sub(rss_before_kb) / 1024
    );
    let ratio = after.warm_ms / fresh_m.warm_ms;
    println!(
        "next merge after the pass / on a fresh table: {ratio:.2}x warm, {:.2}x cold (target <= 1.2x); \
         before the pass: {:.2}x warm",
        after.cold_ms / fresh_m.cold_ms,
        before.warm_ms / fresh_m.warm_ms
    );
}

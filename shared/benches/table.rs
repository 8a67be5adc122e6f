//! State table benchmark: one 10,000-event batch merged into tables of 10 k and 1 M keys on
//! the local filesystem (embedded SQLite catalog). Prints p50 latency and peak RSS per size
//! and the ratio of the p50s. Targets: warm p50 <= 100 ms at 1 M keys, ratio <= 2, RSS <= 128 MB.
//!
//! `cargo bench --workspace --bench table` (release). Each measurement runs in a child process
//! of its own so its peak RSS (VmHWM) is the merge's, not the table setup's.
//! Environment: REFOLD_BENCH_ITERS (merges per mode, default 7), REFOLD_BENCH_SIZES
//! (comma-separated key counts, default 10000,1000000), REFOLD_BENCH_DIR (default a temp dir),
//! REFOLD_BENCH_TRACE (print each merge's phase timings).
//!
//! A table of N keys is built as the compactor leaves it: N rows over REFOLD_BENCH_PARTITIONS
//! source partitions (default 1, the worst case: one Kafka partition holds every key; the
//! lookup reads only the batch's partition), loaded in batches, then compacted into sorted
//! files. A batch: 10,000 events of partition 0, 90% on its existing keys drawn uniformly,
//! 10% on new keys, 4 tenants;
//! the fold counts events and keeps the last value. Every merge of a run lands on the table
//! the previous one left (deletes accumulate, as between two compactions).
//! warm = one open table reused (a warm Lambda), its data files' key indexes kept between
//! merges (`table::file_index`); scan = the same without key indexes (the lookup reads the
//! key columns of the partition: the baseline the index is measured against); cold = open +
//! merge per batch (a fresh container: it builds the indexes it needs).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use refold::table::{
    CatalogConfig, FoldedBatch, StateColumns, StateRow, StateTable, TableConfig, TableIdentity,
    TableLimits,
};

const BATCH_EVENTS: usize = 10_000;
const LOAD_BATCH_ROWS: usize = 100_000;
const TENANTS: [&str; 4] = ["acme", "globex", "initech", "umbrella"];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ident(i: u64) -> (String, String) {
    (
        TENANTS[(i % 4) as usize].to_string(),
        format!("order-{i:09}"),
    )
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

fn row(id: &(String, String), prior: Option<&StateRow>, offset: i64, value: i64) -> StateRow {
    // A state of three fields, read and written as its JSON text (as the Starlark fold does).
    let count = prior
        .and_then(|p| p.state.to_json().ok())
        .and_then(
            |s| match refold::json::get(&s, "count").map(refold::json::Json::of) {
                Some(refold::json::Json::Int(n)) => Some(n),
                _ => None,
            },
        )
        .unwrap_or(0);
    let text = format!(
        r#"{{"count":{},"last":{value},"status":"placed"}}"#,
        count + 1
    );
    StateRow {
        tenant_id: id.0.clone(),
        key: id.1.clone(),
        state: refold::fold::State::parse(&text).expect("the bench writes a JSON object"),
        source_partition: 0,
        last_offset: offset,
        last_event_id: format!("evt-{offset}"),
        last_event_time_us: 1_700_000_000_000_000 + offset,
        events_folded: prior.map(|p| p.events_folded).unwrap_or(0) + 1,
    }
}

/// Merges events (identity, value) at offsets `first..`: the fold of the real handler in
/// miniature (skip below the committed offset, fold per key in order).
async fn merge_events(
    t: &StateTable,
    partition: i32,
    first: i64,
    events: &[((String, String), i64)],
) -> refold::table::MergeOutcome {
    let mut keys: Vec<(String, String)> = events.iter().map(|e| e.0.clone()).collect();
    keys.sort();
    keys.dedup();
    t.merge_batch(partition, &keys, async |committed, priors| {
        let mut cur: HashMap<(String, String), StateRow> = HashMap::new();
        for (i, (id, v)) in events.iter().enumerate() {
            let off = first + i as i64;
            if off < committed {
                continue;
            }
            let mut r = row(id, cur.get(id).or_else(|| priors.get(id)), off, *v);
            r.source_partition = partition;
            cur.insert(id.clone(), r);
        }
        Ok(FoldedBatch {
            rows: cur.into_values().collect(),
            next_offset: (first + events.len() as i64).max(committed),
            extra_summary: BTreeMap::new(),
        })
    })
    .await
    .unwrap()
}

/// CPU time (user + system) of this process so far, in ms: the cost independent of how
/// busy the machine is (wall time is not, on a shared 2-core box).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0 // USER_HZ = 100 on Linux
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn partitions() -> u64 {
    std::env::var("REFOLD_BENCH_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

async fn setup(dir: &Path, n: u64) {
    let parts = partitions();
    let t = StateTable::open_or_create(config(dir)).await.unwrap();
    let limits = TableLimits {
        max_rows_per_batch: LOAD_BATCH_ROWS,
        max_keys_per_batch: LOAD_BATCH_ROWS,
        ..TableLimits::default()
    };
    let t = t.with_limits(limits);
    let started = Instant::now();
    let mut offset;
    for p in 0..parts {
        // Key k lives in partition k % parts (as Kafka's key hashing would spread them).
        let keys: Vec<u64> = (0..n).filter(|k| k % parts == p).collect();
        offset = 0;
        for chunk in keys.chunks(LOAD_BATCH_ROWS) {
            let events: Vec<((String, String), i64)> =
                chunk.iter().map(|&k| (ident(k), k as i64)).collect();
            merge_events(&t, p as i32, offset, &events).await;
            offset += chunk.len() as i64;
        }
        t.compact(Some(p as i32)).await.unwrap();
    }
    // Runs merge into partition 0: its next offset is the number of events loaded into it.
    offset = (0..n).filter(|k| k % parts == 0).count() as i64;
    eprintln!("setup {n} keys: {:.1} s", started.elapsed().as_secs_f64());
    std::fs::write(dir.join("offset"), offset.to_string()).unwrap();
}

async fn run(dir: &Path, n: u64, iters: usize, mode: &str) {
    let cold = mode == "cold";
    let open = async || {
        let t = StateTable::open_or_create(config(dir)).await.unwrap();
        if mode == "scan" {
            t.with_limits(TableLimits {
                max_indexed_rows: 0,
                ..TableLimits::default()
            })
        } else {
            t
        }
    };
    let mut offset: i64 = std::fs::read_to_string(dir.join("offset"))
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n ^ mode.len() as u64);
    let mut warm_table = None;
    let mut ms = vec![];
    let mut cpu = vec![];
    let parts = partitions();
    let per_part = n.div_ceil(parts);
    let mut next_new = n.div_ceil(parts) * parts;
    for _ in 0..iters {
        let events: Vec<((String, String), i64)> = (0..BATCH_EVENTS)
            .map(|j| {
                // keys of partition 0: multiples of `parts`
                let k = if j % 10 == 9 {
                    next_new += parts;
                    next_new
                } else {
                    (rng.next() % per_part) * parts
                };
                (ident(k), (rng.next() % 1000) as i64)
            })
            .collect();
        let started = Instant::now();
        let cpu0 = cpu_ms();
        let out = if cold {
            let t = open().await;
            merge_events(&t, 0, offset, &events).await
        } else {
            if warm_table.is_none() {
                warm_table = Some(open().await);
            }
            merge_events(warm_table.as_ref().unwrap(), 0, offset, &events).await
        };
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        cpu.push(cpu_ms() - cpu0);
        assert!(out.snapshot_id.is_some() && out.rows_deleted > 0);
        offset += BATCH_EVENTS as i64;
    }
    std::fs::write(dir.join("offset"), offset.to_string()).unwrap();
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    // one line for the parent: p50 min max rss_kb cpu_p50
    println!(
        "RESULT {:.1} {:.1} {:.1} {} {:.1}",
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
        peak_rss_kb(),
        cpu[cpu.len() / 2]
    );
}

fn child(args: &[&str]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("REFOLD_BENCH_CHILD", args.join(" "))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "bench child {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("REFOLD_BENCH_TRACE").is_ok() {
        // Per-merge phase timings (load, lookup, fold, write, commit) from refold's debug logs.
        tracing_subscriber::fmt()
            .with_env_filter("refold=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    if let Ok(cmd) = std::env::var("REFOLD_BENCH_CHILD") {
        let a: Vec<&str> = cmd.split(' ').collect();
        let dir = PathBuf::from(a[1]);
        let n: u64 = a[2].parse().unwrap();
        match a[0] {
            "setup" => rt.block_on(setup(&dir, n)),
            "run" => rt.block_on(run(&dir, n, a[3].parse().unwrap(), a[4])),
            other => panic!("unknown child {other}"),
        }
        return;
    }
    let iters: usize = std::env::var("REFOLD_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let sizes: Vec<u64> = std::env::var("REFOLD_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let base = match std::env::var("REFOLD_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => std::env::temp_dir().join(format!("refold-bench-{}", std::process::id())),
    };
    println!(
        "state table merge: one {BATCH_EVENTS}-event batch of source partition 0, keys spread over {} source partition(s), {iters} merges per mode, local filesystem",
        partitions()
    );
    println!(
        "{:>10} {:>6} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "keys", "mode", "p50 ms", "min ms", "max ms", "peak MB", "cpu p50 ms"
    );
    let mut p50 = BTreeMap::new();
    let mut rss = BTreeMap::new();
    for &n in &sizes {
        let dir = base.join(n.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        child(&["setup", dir.to_str().unwrap(), &n.to_string()]);
        for mode in ["warm", "scan", "cold"] {
            let out = child(&[
                "run",
                dir.to_str().unwrap(),
                &n.to_string(),
                &iters.to_string(),
                mode,
            ]);
            let line = out.lines().find(|l| l.starts_with("RESULT ")).unwrap();
            let v: Vec<f64> = line[7..].split(' ').map(|x| x.parse().unwrap()).collect();
            println!(
                "{n:>10} {mode:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>11.1}",
                v[0],
                v[1],
                v[2],
                v[3] / 1024.0,
                v[4]
            );
            p50.insert((n, mode), v[0]);
            rss.insert((n, mode), v[3] / 1024.0);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average during the run: {}",
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
    }
    if let (Some(&small), Some(&large)) = (sizes.first(), sizes.last())
        && small != large
    {
        for mode in ["warm", "cold"] {
            let ratio = p50[&(large, mode)] / p50[&(small, mode)];
            let peak = rss[&(large, mode)].max(rss[&(small, mode)]);
            println!(
                "{mode}: p50 {large} keys {:.1} ms (target <= 100: {}), ratio {large}/{small} = {ratio:.2} (target <= 2: {}), peak RSS {peak:.1} MB (target <= 128: {})",
                p50[&(large, mode)],
                if p50[&(large, mode)] <= 100.0 {
                    "met"
                } else {
                    "MISSED"
                },
                if ratio <= 2.0 { "met" } else { "MISSED" },
                if peak <= 128.0 { "met" } else { "MISSED" },
            );
        }
    }
    for &n in &sizes {
        println!(
            "key index at {n} keys: warm p50 {:.1} ms against {:.1} ms without (scan): {:.2}x",
            p50[&(n, "warm")],
            p50[&(n, "scan")],
            p50[&(n, "scan")] / p50[&(n, "warm")]
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

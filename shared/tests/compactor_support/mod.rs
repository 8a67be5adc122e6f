//! Helpers of the snapshot-compactor tests: streams of synthetic events, policies, and the
//! readers independent of refold the tests compare with (iceberg-rust's scan, PyIceberg and
//! DuckDB through `tests/py/`). Python tools fail loudly when missing, never skip.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use refold::compactor::MaintenancePolicy;
use refold::pipeline::{CompactionPolicy, SnapshotPolicy};
use refold::table::{StateRow, StateTable};
use serde_json::Value;

use crate::table_support::*;

pub const TABLE: &str = "domain.orders.current_state";
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

pub fn now_ms() -> i64 {
    refold::emf::now_ms()
}

/// A policy with every threshold low (small test tables get compacted).
pub fn policy() -> MaintenancePolicy {
    MaintenancePolicy {
        snapshots: SnapshotPolicy {
            interval_ms: HOUR_MS as u64,
            max_snapshots: 24,
            keep_recent_ms: HOUR_MS as u64,
            orphan_grace_ms: DAY_MS as u64,
            ..SnapshotPolicy::default()
        },
        compaction: CompactionPolicy {
            delete_files: 2,
            small_files: 2,
            small_file_bytes: 64 * 1024 * 1024,
            deleted_rows_percent: 10,
            target_file_bytes: 128 * 1024 * 1024,
            manifests: 3,
        },
    }
}

/// Event stream builder: `n` events of partition `p` starting at its next offset, keys drawn
/// from `keys` per partition (so batches update existing rows), 3 tenants.
pub struct Stream {
    pub events: Vec<Ev>,
    next: BTreeMap<i32, i64>,
    seed: u64,
}

impl Stream {
    pub fn new(seed: u64) -> Self {
        Self {
            events: vec![],
            next: BTreeMap::new(),
            seed: seed | 1,
        }
    }

    fn rand(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    pub fn batch(&mut self, p: i32, n: usize, keys: u64) -> Vec<Ev> {
        let tenants = ["acme", "globex", "initech"];
        let mut out = vec![];
        for _ in 0..n {
            let o = *self.next.entry(p).or_insert(0);
            self.next.insert(p, o + 1);
            let k = self.rand() % keys;
            let v = (self.rand() % 1000) as i64;
            out.push(ev(
                tenants[(k % 3) as usize],
                &format!("order-{p}-{k:04}"),
                p,
                o,
                v,
            ));
        }
        self.events.extend(out.iter().cloned());
        out
    }

    /// The next offset per partition (what the table's offsets must say).
    pub fn offsets(&self) -> BTreeMap<i32, i64> {
        self.next.clone()
    }
}

/// The events below `offsets` (per partition): the stream up to a checkpoint.
pub fn prefix(events: &[Ev], offsets: &BTreeMap<i32, i64>) -> Vec<Ev> {
    events
        .iter()
        .filter(|e| offsets.get(&e.partition).is_some_and(|o| e.offset < *o))
        .cloned()
        .collect()
}

fn run_py(script: &str, args: &[String]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/py")
        .join(script);
    let out = std::process::Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} {args:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn catalog_args(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    vec![
        "--uri".into(),
        format!("sqlite:///{d}/catalog.db"),
        "--warehouse".into(),
        format!("file://{d}"),
        "--table".into(),
        TABLE.into(),
    ]
}

/// PyIceberg scans the table (now, or at `reference`: a tag name) and finds exactly `want`.
pub fn pyiceberg_rows(
    dir: &Path,
    reference: Option<&str>,
    want: &BTreeMap<(String, String), StateRow>,
) {
    let expect = dir.join(format!("expect-{}.jsonl", uuid::Uuid::new_v4()));
    write_expected(&expect, want);
    let mut args = catalog_args(dir);
    args.push("rows".into());
    if let Some(r) = reference {
        args.extend(["--ref".into(), r.into()]);
    }
    args.extend(["--expect".into(), expect.display().to_string()]);
    let out = run_py("maintenance_check.py", &args);
    assert!(out.contains("PYICEBERG OK"), "{out}");
    let _ = std::fs::remove_file(expect);
}

/// PyIceberg scans every kept snapshot in full (fails if a referenced file is missing).
pub fn pyiceberg_scan_all(dir: &Path) {
    let mut args = catalog_args(dir);
    args.push("scan-all".into());
    let out = run_py("maintenance_check.py", &args);
    assert!(out.contains("PYICEBERG OK"), "{out}");
}

/// Every file PyIceberg says the metadata references (canonical `file:///` paths).
pub fn pyiceberg_referenced(dir: &Path) -> BTreeSet<String> {
    let mut args = catalog_args(dir);
    args.push("files".into());
    let out = run_py("maintenance_check.py", &args);
    let line = out.lines().next().expect("a JSON line");
    let v: Value = serde_json::from_str(line).unwrap();
    v["referenced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// DuckDB's Iceberg extension reads the current table: (tenant, key) -> (state, events_folded).
pub fn duckdb_rows(dir: &Path) -> BTreeMap<(String, String), (Value, i64)> {
    let args = vec![
        "--catalog".to_string(),
        dir.join("catalog.db").display().to_string(),
        "--table".into(),
        TABLE.into(),
    ];
    let out = run_py("duckdb_read.py", &args);
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["tenant_id"].as_str().unwrap().to_string(),
                    v["key"].as_str().unwrap().to_string(),
                ),
                (v["state"].clone(), v["events_folded"].as_i64().unwrap()),
            )
        })
        .collect()
}

/// The table holds exactly `want`, read by refold, iceberg-rust, PyIceberg and DuckDB.
pub async fn every_engine_reads(
    t: &StateTable,
    dir: &Path,
    want: &BTreeMap<(String, String), StateRow>,
    what: &str,
) {
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        *want,
        "refold, {what}"
    );
    assert_eq!(
        iceberg_scan(t).await,
        summarize(want),
        "iceberg-rust, {what}"
    );
    pyiceberg_rows(dir, None, want);
    let duck: BTreeMap<_, _> = want
        .iter()
        .map(|(k, r)| (k.clone(), (r.state.to_value(), r.events_folded)))
        .collect();
    assert_eq!(duckdb_rows(dir), duck, "DuckDB, {what}");
}

/// Every file under the table's folders (canonical `file:///` paths).
pub fn files_on_disk(dir: &Path) -> BTreeSet<String> {
    fn walk(p: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.insert(format!("file://{}", e.path().display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    let root = dir.join("domain/orders/current_state");
    for sub in ["data", "metadata"] {
        if root.join(sub).exists() {
            walk(&root.join(sub), &mut out);
        }
    }
    out
}

/// Sets a file's last-modified time to `age_ms` before now.
pub fn age_file(path: &str, age_ms: i64) {
    let p = path.strip_prefix("file://").unwrap();
    let when = std::time::SystemTime::now() - std::time::Duration::from_millis(age_ms as u64);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// `merge` as a `Send` future (what a hook must return): a merge's fold closure makes its
/// future not `Send`, so it runs to completion on a blocking thread of the same runtime.
pub async fn merge_sendable(t: std::sync::Arc<StateTable>, evs: Vec<Ev>) {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(async { merge(&t, &evs).await.unwrap() }))
        .await
        .unwrap();
}

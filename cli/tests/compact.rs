//! `refold compact`, `refold checkpoints` and `refold state --as-of`, end to end on the demo's
//! warehouse: the first half of the order stream, a forced checkpoint, then the whole stream;
//! the state as of the checkpoint is the CPython oracle's fold of the first half
//! (`tests/py/seed_fold.py`, no refold code), the state now the oracle's fold of the whole;
//! DuckDB reads the compacted table the same.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

const SEED: &str = "pipelines/order-events-pipeline.yaml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn refold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refold"))
        .args(args)
        .current_dir(root())
        .env_remove("KAFKA_CONNECTION")
        .output()
        .expect("runs refold")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(args: &[&str]) -> String {
    let out = refold(args);
    assert!(
        out.status.success(),
        "refold {args:?}:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `refold state` lines as the oracle's rows.
fn rows(stdout: &str) -> oracle::Rows {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            let s = |k: &str| v[k].as_str().expect("a string").to_owned();
            (
                (s("tenant_id"), s("order_id")),
                (
                    oracle::normalize(&v["state"]),
                    v["events_folded"].as_i64().expect("n"),
                    s("last_event_id"),
                ),
            )
        })
        .collect()
}

fn duckdb_rows(warehouse: &Path) -> oracle::Rows {
    let out = Command::new(oracle::python())
        .arg(root().join("tests/py/duckdb_read.py"))
        .arg("--catalog")
        .arg(warehouse.join("catalog.db"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "duckdb_read.py: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            let s = |k: &str| v[k].as_str().expect("a string").to_owned();
            (
                (s("tenant_id"), s("key")),
                (
                    oracle::normalize(&v["state"]),
                    v["events_folded"].as_i64().expect("n"),
                    s("last_event_id"),
                ),
            )
        })
        .collect()
}

#[test]
fn state_as_of_a_checkpoint_is_the_fold_of_the_stream_up_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = std::fs::read_to_string(root().join("events/orders.jsonl")).expect("events");
    let half: String = all.lines().take(2_400).map(|l| format!("{l}\n")).collect();
    let half_path = dir.path().join("first-half.jsonl");
    std::fs::write(&half_path, half).expect("write");
    let wh_path = dir.path().join("warehouse");
    let wh = wh_path.to_str().expect("utf-8");
    let half = half_path.to_str().expect("utf-8");

    ok(&["demo", "--events", half, "--warehouse", wh]);
    let report = ok(&["compact", SEED, "--warehouse", wh, "--now", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("the report is JSON");
    assert_eq!(
        report["checkpoint"]["detail"]["decision"], "take",
        "{report:#}"
    );
    let name = report["checkpoint"]["detail"]["name"]
        .as_str()
        .expect("a name")
        .to_owned();
    assert!(name.starts_with("checkpoint-"), "{name}");

    ok(&["demo", "--warehouse", wh]);
    let listed = ok(&["checkpoints", SEED, "--warehouse", wh, "--json"]);
    let lines: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{listed}");
    assert_eq!(lines[0]["name"], name.as_str());
    let offsets = lines[0]["offsets"].as_object().expect("offsets");
    assert_eq!(offsets.len(), 3, "three partitions: {listed}");
    let human = ok(&["checkpoints", SEED, "--warehouse", wh]);
    assert!(
        human.starts_with(&name) && human.contains("offsets {"),
        "{human}"
    );

    let r = root();
    let want_half = oracle::run(&r, &r.join(SEED), &half_path);
    let want_all = oracle::run(&r, &r.join(SEED), &r.join("events/orders.jsonl"));
    let as_of = rows(&ok(&["state", SEED, "--warehouse", wh, "--as-of", &name]));
    oracle::assert_rows_eq(&as_of, &want_half.rows, "state --as-of the checkpoint");
    let now = rows(&ok(&["state", SEED, "--warehouse", wh]));
    oracle::assert_rows_eq(&now, &want_all.rows, "state now");

    // A pass without --now: compaction and manifests; no checkpoint within the hour.
    let out = ok(&["compact", SEED, "--warehouse", wh]);
    assert!(
        out.contains("checkpoint  done: {\"decision\":\"not_due\""),
        "{out}"
    );
    assert!(out.contains("compaction  done"), "{out}");
    let now = rows(&ok(&["state", SEED, "--warehouse", wh]));
    oracle::assert_rows_eq(&now, &want_all.rows, "state after the pass");
    oracle::assert_rows_eq(
        &duckdb_rows(&wh_path),
        &want_all.rows,
        "DuckDB after the pass",
    );
    // A time: now is the current state.
    let t = "2999-01-01T00:00:00Z";
    let at = rows(&ok(&["state", SEED, "--warehouse", wh, "--as-of", t]));
    oracle::assert_rows_eq(&at, &want_all.rows, "state --as-of a later time");

    let bad = refold(&[
        "state",
        SEED,
        "--warehouse",
        wh,
        "--as-of",
        "checkpoint-nope",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("no checkpoint or tag `checkpoint-nope`"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn validate_rejects_another_snapshot_store_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = std::fs::read_to_string(root().join(SEED)).expect("seed");
    let lines = seed.lines().count();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, format!("{seed}snapshots:\n  store: s3\n")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_refold"))
        .args(["validate", path.to_str().expect("utf-8")])
        .env("KAFKA_CONNECTION", "localhost:9092")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("p.yaml:{}:", lines + 2))
            && err.contains("snapshots.store: unknown snapshot store `s3` (known: iceberg)"),
        "{err}"
    );
}

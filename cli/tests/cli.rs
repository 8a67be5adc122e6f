//! The `refold` binary, end to end: exit codes, output, and messages.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn refold(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_refold"));
    cmd.args(args).current_dir(root()).env_remove("KAFKA_CONNECTION");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs refold")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SEED: &str = "pipelines/order-events-pipeline.yaml";
const KAFKA: (&str, &str) = ("KAFKA_CONNECTION", "localhost:9092");

#[test]
fn validate_accepts_the_seed_with_its_warnings() {
    let out = refold(&["validate", SEED], &[KAFKA]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("OK"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("flink"), "the flink warning: {}", text(&out.stderr));
}

#[test]
fn validate_names_a_missing_variable() {
    let out = refold(&["validate", SEED], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("KAFKA_CONNECTION"), "{err}");
    assert!(err.contains("sources.order_events.connection"), "{err}");
}

#[test]
fn validate_reports_every_problem_with_path_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = std::fs::read_to_string(root().join(SEED)).expect("seed");
    let broken = seed
        .replace("input: order_events", "input: ordr_events")
        .replace("type: iceberg", "type: iceberg_v9")
        .replace("checkpoint_interval: 30s", "checkpoint_interval: 30x")
        .replace("return {**state, \"status\": \"cancelled\"}", "return {**state, \"status\": \"cancelled\"");
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, broken).expect("write");
    let out = refold(&["validate", path.to_str().expect("utf-8")], &[KAFKA]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for needle in [
        "broken.yaml:24:",
        "transformations[0].input",
        "ordr_events",
        "sinks.order_view.type",
        "iceberg_v9",
        "orchestration.checkpoint_interval",
        "30x",
        "transformations[0].fold_function",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
}

#[test]
fn fold_prints_one_sorted_line_per_key_and_a_summary() {
    let out = refold(&["fold", SEED, "--events", "events/orders.jsonl"], &[KAFKA]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert!(rows.len() > 1000, "{} rows", rows.len());
    let ids: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["tenant_id"].as_str().expect("tenant").to_owned(), r["order_id"].as_str().expect("key").to_owned()))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sorted by (tenant, key)");
    assert!(rows.iter().all(|r| r["state"]["status"].is_string()));
    let err = text(&out.stderr);
    assert!(err.contains("folded") && err.contains("filtered") && err.contains("5 rejected"), "{err}");
    assert!(err.contains("events/orders.jsonl:101: not valid JSON"), "line of the truncated record: {err}");
}

#[test]
fn fold_reports_a_missing_events_file() {
    let out = refold(&["fold", SEED, "--events", "events/nope.jsonl"], &[KAFKA]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("events/nope.jsonl"), "{}", text(&out.stderr));
}

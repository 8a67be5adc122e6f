//! The `refold` binary, end to end: exit codes, output, and messages.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn refold(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_refold"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("KAFKA_CONNECTION");
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
    assert!(
        text(&out.stderr).contains("flink"),
        "the flink warning: {}",
        text(&out.stderr)
    );
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
        .replace(
            "return {**state, \"status\": \"cancelled\"}",
            "return {**state, \"status\": \"cancelled\"",
        );
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
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(rows.len() > 1000, "{} rows", rows.len());
    let ids: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["tenant_id"].as_str().expect("tenant").to_owned(),
                r["order_id"].as_str().expect("key").to_owned(),
            )
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sorted by (tenant, key)");
    assert!(rows.iter().all(|r| r["state"]["status"].is_string()));
    let err = text(&out.stderr);
    assert!(
        err.contains("folded") && err.contains("filtered") && err.contains("5 rejected"),
        "{err}"
    );
    assert!(
        err.contains("events/orders.jsonl:101: not valid JSON"),
        "line of the truncated record: {err}"
    );
}

#[test]
fn fold_reports_a_missing_events_file() {
    let out = refold(&["fold", SEED, "--events", "events/nope.jsonl"], &[KAFKA]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("events/nope.jsonl"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_folds_the_stream_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wh = dir.path().join("warehouse");
    let wh = wh.to_str().expect("utf-8");
    let first = refold(&["demo", "--warehouse", wh], &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(out.contains("4804 folded"), "{out}");
    assert!(out.contains("5 dead-lettered"), "{out}");
    assert!(out.contains("(delivered again)"), "{out}");
    assert!(
        out.contains("the view domain.orders.current_state: 1400 rows"),
        "{out}"
    );
    let second = refold(&["demo", "--warehouse", wh], &[]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let out = text(&second.stdout);
    let total = out
        .lines()
        .find(|l| l.starts_with("total:"))
        .expect("a total line");
    assert!(
        total.contains("delivered: 0 folded") && total.contains(" 0 dead-lettered"),
        "{total}"
    );
    assert!(
        out.contains("the view domain.orders.current_state: 1400 rows"),
        "{out}"
    );
    // The table holds what an in-memory fold of the same stream gives.
    let state = refold(&["state", SEED, "--warehouse", wh], &[]);
    assert!(state.status.success(), "{}", text(&state.stderr));
    let folded = refold(&["fold", SEED, "--events", "events/orders.jsonl"], &[]);
    let pick = |s: &str| -> Vec<(String, String, String, i64)> {
        s.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                (
                    v["tenant_id"].to_string(),
                    v["order_id"].to_string(),
                    v["state"].to_string(),
                    v["events_folded"].as_i64().expect("n"),
                )
            })
            .collect()
    };
    assert_eq!(pick(&text(&state.stdout)), pick(&text(&folded.stdout)));
}

//! The example pipelines of the platform's topics (`pipelines/examples/`), each over its
//! generated stream (`events/examples/`): `refold validate` accepts it, and `refold fold`
//! gives the rows and the dead letters an independent CPython oracle gives: the pipeline's
//! Starlark fold run by CPython (`tests/py/seed_fold.py`), or, for the native Rust fold, its
//! documented rules re-stated in Python (`tests/py/examples_oracle.py`).
//!
//! `cargo test --release --workspace --test examples`

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The CPython oracle (`tests/py/seed_fold.py`), shared with fold-batch's tests.
#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn refold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refold"))
        .args(args)
        .current_dir(root())
        .env("KAFKA_CONNECTION", "localhost:9092")
        .output()
        .expect("runs refold")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One rejected line: (1-based line, kind, reason).
type Rejection = (usize, String, String);

/// Who folds the stream for comparison.
#[derive(Clone, Copy)]
enum Oracle {
    /// `seed_fold.py`: the pipeline's own `fold_function` under CPython.
    Seed,
    /// `examples_oracle.py`: the native fold re-stated in Python.
    Native,
}

struct Example {
    pipeline: &'static str,
    events: &'static str,
    key_field: &'static str,
    oracle: Oracle,
}

const STATE_CHANGES: Example = Example {
    pipeline: "pipelines/examples/state-changes-pipeline.yaml",
    events: "events/examples/state-changes.jsonl",
    key_field: "session_id",
    oracle: Oracle::Seed,
};

const AGENT_TRACES: Example = Example {
    pipeline: "pipelines/examples/agent-traces-pipeline.yaml",
    events: "events/examples/agent-traces.jsonl",
    key_field: "agent_id",
    oracle: Oracle::Seed,
};

const LLM_OPS: Example = Example {
    pipeline: "pipelines/examples/llm-ops-pipeline.yaml",
    events: "events/examples/llm-ops.jsonl",
    key_field: "agent_id",
    oracle: Oracle::Native,
};

/// Rows as `refold fold` or `refold state` print them (the key under `key_field`).
fn parse_rows(stdout: &str, key_field: &str) -> oracle::Rows {
    let mut rows = oracle::Rows::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let id = (
            v["tenant_id"].as_str().expect("tenant_id").to_owned(),
            v[key_field].as_str().expect("key").to_owned(),
        );
        let row = (
            oracle::normalize(&v["state"]),
            v["events_folded"].as_i64().expect("events_folded"),
            v["last_event_id"]
                .as_str()
                .expect("last_event_id")
                .to_owned(),
        );
        assert!(rows.insert(id, row).is_none(), "a row twice: {line}");
    }
    rows
}

/// `refold fold`'s rows and its rejections (stderr: `EVENTS:LINE: reason (kind)`).
fn refold_fold(ex: &Example, batch_size: &str) -> (oracle::Rows, Vec<Rejection>) {
    let out = refold(&[
        "fold",
        ex.pipeline,
        "--events",
        ex.events,
        "--batch-size",
        batch_size,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let prefix = format!("{}:", ex.events);
    let rejected = text(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| {
            let (line, rest) = l.split_once(": ").expect("LINE: reason");
            let (reason, kind) = rest.rsplit_once(" (").expect("reason (kind)");
            (
                line.parse().expect("a line number"),
                kind.trim_end_matches(')').to_owned(),
                reason.to_owned(),
            )
        })
        .collect();
    (parse_rows(&text(&out.stdout), ex.key_field), rejected)
}

/// What the oracle folds: its rows and rejections, in line order.
fn run_oracle(ex: &Example) -> (oracle::Rows, Vec<Rejection>) {
    let root = root();
    let (pipeline, events) = (root.join(ex.pipeline), root.join(ex.events));
    let (rows, rejected) = match ex.oracle {
        Oracle::Seed => {
            let o = oracle::run(&root, &pipeline, &events);
            (o.rows, o.rejected)
        }
        Oracle::Native => examples_oracle(&root, &pipeline, &events),
    };
    let mut rejected: Vec<Rejection> = rejected
        .iter()
        .map(|r| {
            (
                usize::try_from(r["line"].as_u64().expect("line")).expect("usize"),
                r["kind"].as_str().expect("kind").to_owned(),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    rejected.sort();
    (rows, rejected)
}

/// Runs `tests/py/examples_oracle.py` (same output format as seed_fold.py).
fn examples_oracle(
    root: &Path,
    pipeline: &Path,
    events: &Path,
) -> (oracle::Rows, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = dir.path().join("rejected.jsonl");
    let script = root.join("tests/py/examples_oracle.py");
    let out = Command::new(oracle::python())
        .arg(&script)
        .args([pipeline, events])
        .arg("--dead-letters")
        .arg(&dead)
        .arg("--quiet")
        .output()
        .expect("runs examples_oracle.py");
    assert!(
        out.status.success(),
        "examples_oracle.py failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    let rows = parse_rows(&text(&out.stdout), "key");
    let rejected = std::fs::read_to_string(&dead)
        .expect("the oracle's rejections")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (rows, rejected)
}

/// refold's rejections are the oracle's: the same lines, of the same kind, and a fold's own
/// rejection carries the oracle's message (after its exception's name: `Fail: ...`).
fn assert_rejections_eq(got: &[Rejection], want: &[Rejection], what: &str) {
    let lines = |r: &[Rejection]| {
        r.iter()
            .map(|(l, k, _)| (*l, k.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines(got),
        lines(want),
        "{what}: rejected lines and kinds, refold vs the oracle"
    );
    for ((line, kind, reason), (_, _, expected)) in got.iter().zip(want) {
        if kind == "fold_error" {
            let message = expected.split_once(": ").map_or(&**expected, |(_, m)| m);
            assert!(
                reason.ends_with(message),
                "{what}: line {line}: refold's reason `{reason}` does not end with the \
                 oracle's `{message}`"
            );
        }
    }
}

/// Validates, folds (in one batch and in small ones, which stores and reads each key's state
/// back between batches) and compares with the oracle. Returns refold's rows and rejections.
fn check(ex: &Example) -> (oracle::Rows, Vec<Rejection>) {
    let out = refold(&["validate", ex.pipeline]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("OK") && text(&out.stdout).contains("(0 warnings)"),
        "validate {}: {}{}",
        ex.pipeline,
        text(&out.stdout),
        text(&out.stderr)
    );
    let (want_rows, want_rejected) = run_oracle(ex);
    let (rows, rejected) = refold_fold(ex, "100000");
    oracle::assert_rows_eq(&rows, &want_rows, ex.events);
    assert_rejections_eq(&rejected, &want_rejected, ex.events);
    let (small_rows, small_rejected) = refold_fold(ex, "37");
    assert!(
        small_rows == rows && small_rejected == rejected,
        "{}: batches of 37 records fold to other rows or rejections than one batch",
        ex.events
    );
    // The stream is what the generators say: two tenants, five malformed lines.
    let tenants: std::collections::BTreeSet<_> = rows.keys().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tenants.len(), 2, "{}: tenants {tenants:?}", ex.events);
    let malformed = rejected
        .iter()
        .filter(|(_, k, _)| k != "fold_error")
        .count();
    assert_eq!(malformed, 5, "{}: {rejected:#?}", ex.events);
    (rows, rejected)
}

fn fold_errors(rejected: &[Rejection]) -> Vec<&str> {
    rejected
        .iter()
        .filter(|(_, k, _)| k == "fold_error")
        .map(|(_, _, r)| r.as_str())
        .collect()
}

fn count_where(rows: &oracle::Rows, f: impl Fn(&serde_json::Value) -> bool) -> usize {
    rows.values().filter(|(s, _, _)| f(s)).count()
}

#[test]
fn state_changes_fold_session_fsms_and_dead_letter_illegal_transitions() {
    let (rows, rejected) = check(&STATE_CHANGES);
    let errors = fold_errors(&rejected);
    assert!(errors.len() >= 20, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|r| r.contains("fail: illegal transition")),
        "every fold error is a rejected transition: {errors:#?}"
    );
    for needle in [
        "session",
        "closed -> active",
        "agent",
        "idle -> executing",
        "while agent",
    ] {
        assert!(
            errors.iter().any(|r| r.contains(needle)),
            "no rejection with `{needle}`"
        );
    }
    // Sessions end closed or still open; closing one cancelled its busy agents.
    assert!(count_where(&rows, |s| s["status"] == "closed") > 50);
    assert!(count_where(&rows, |s| s["status"] == "active") > 0);
    let agents = |s: &serde_json::Value| {
        s["agents"]
            .as_object()
            .map(|a| a.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert!(
        count_where(&rows, |s| agents(s)
            .iter()
            .any(|a| a["state"] == "cancelled"))
            > 0
    );
    assert!(
        count_where(&rows, |s| s["status"] != "closed"
            && agents(s).iter().any(|a| a["state"] == "cancelled"))
            == 0,
        "agents are cancelled only by a close"
    );
}

/// p50 <= p95 <= p99 <= max, and the histogram counts every sample.
fn assert_percentiles(rows: &oracle::Rows, prefix: &str, samples: &str) {
    for (id, (s, _, _)) in rows {
        let n = |f: &str| {
            s[f].as_i64()
                .unwrap_or_else(|| panic!("{id:?}: `{f}` in {s}"))
        };
        let (p50, p95, p99, max) = (
            n(&format!("{prefix}_p50_ms")),
            n(&format!("{prefix}_p95_ms")),
            n(&format!("{prefix}_p99_ms")),
            n(&format!("{prefix}_max_ms")),
        );
        assert!(p50 <= p95 && p95 <= p99 && p99 <= max, "{id:?}: {s}");
        let hist: i64 = s[&format!("{prefix}_hist")]
            .as_array()
            .expect("hist")
            .iter()
            .map(|c| c.as_i64().expect("count"))
            .sum();
        assert_eq!(hist, n(samples), "{id:?}: {s}");
    }
}

#[test]
fn agent_traces_aggregate_per_agent_in_starlark() {
    let (rows, rejected) = check(&AGENT_TRACES);
    let errors = fold_errors(&rejected);
    assert!(
        !errors.is_empty() && errors.iter().all(|r| r.contains("fail: invalid span")),
        "{errors:#?}"
    );
    assert!(rows.len() >= 30, "{} agents", rows.len());
    assert_percentiles(&rows, "run_latency", "runs");
    assert!(count_where(&rows, |s| s["cost_usd"].as_f64() > Some(0.0)) == rows.len());
}

/// The columns `state_types.llm_agent_stats` declares, with the JSON kind of each.
const LLM_OPS_COLUMNS: &[(&str, &str)] = &[
    ("cache_hits", "long"),
    ("calls", "long"),
    ("cost_usd", "double"),
    ("errors", "long"),
    ("first_call_at", "timestamp"),
    ("last_call_at", "timestamp"),
    ("last_model", "string"),
    ("last_ok", "boolean"),
    ("latency_hist", "json"),
    ("latency_max_ms", "long"),
    ("latency_p50_ms", "long"),
    ("latency_p95_ms", "long"),
    ("latency_p99_ms", "long"),
    ("models", "json"),
    ("rate_limited", "long"),
    ("tokens_in", "long"),
    ("tokens_out", "long"),
];

#[test]
fn llm_ops_native_fold_with_typed_columns() {
    let (rows, rejected) = check(&LLM_OPS);
    let errors = fold_errors(&rejected);
    assert!(
        !errors.is_empty() && errors.iter().all(|r| r.contains("invalid LLM call")),
        "{errors:#?}"
    );
    assert_percentiles(&rows, "latency", "calls");
    let overflow = count_where(&rows, |s| {
        s["latency_hist"].as_array().and_then(|h| h.last()) != Some(&0.into())
    });
    assert!(overflow > 0, "some call past the last bucket");
    // Every state is exactly the declared columns, each of its type.
    for (id, (s, _, _)) in &rows {
        let fields: Vec<&str> = s
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let declared: Vec<&str> = LLM_OPS_COLUMNS.iter().map(|(c, _)| *c).collect();
        assert_eq!(fields, declared, "{id:?}");
        for (column, ty) in LLM_OPS_COLUMNS {
            let v = &s[*column];
            let ok = match *ty {
                "long" => v.is_i64(),
                "double" => v.is_f64(),
                "boolean" => v.is_boolean(),
                "string" => v.is_string(),
                "timestamp" => v.as_str().is_some_and(|t| t.ends_with('Z')),
                _ => v.is_array() || v.is_object(),
            };
            assert!(ok, "{id:?}: `{column}` is {v}, not a {ty}");
        }
    }
}

/// The typed columns through the real table: `refold demo` runs the stream through an
/// in-process Kafka and the batch engine into an Iceberg table (each batch reads the states
/// back from the typed columns); `refold state` reads the table; both equal the oracle.
#[test]
fn llm_ops_typed_table_equals_the_oracle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wh = dir.path().join("warehouse");
    let wh = wh.to_str().expect("utf-8");
    let demo = refold(&[
        "demo",
        "--pipeline",
        LLM_OPS.pipeline,
        "--events",
        LLM_OPS.events,
        "--warehouse",
        wh,
        "--batch-size",
        "300",
    ]);
    assert!(demo.status.success(), "{}", text(&demo.stderr));
    let state = refold(&["state", LLM_OPS.pipeline, "--warehouse", wh]);
    assert!(state.status.success(), "{}", text(&state.stderr));
    let (want, want_rejected) = run_oracle(&LLM_OPS);
    let got = parse_rows(&text(&state.stdout), LLM_OPS.key_field);
    oracle::assert_rows_eq(&got, &want, "the llm-ops state table");
    // Every rejection is a dead letter in the warehouse (once, though the demo delivers a
    // batch twice), of the oracle's kind, a fold's own with the oracle's message.
    let mut got_kinds: Vec<String> = Vec::new();
    let mut got_messages: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("warehouse/dead-letters"))
        .expect("dead letters")
        .flatten()
    {
        let body = std::fs::read_to_string(entry.path()).expect("a JSONL object");
        for line in body.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let kind = v["kind"].as_str().expect("kind").to_owned();
            if kind == "fold_error" {
                let reason = v["reason"].as_str().expect("reason");
                let (_, message) = reason.split_once("fold failed: ").expect("a fold error");
                got_messages.push(message.to_owned());
            }
            got_kinds.push(kind);
        }
    }
    let mut want_kinds: Vec<String> = want_rejected.iter().map(|(_, k, _)| k.clone()).collect();
    let mut want_messages: Vec<String> = want_rejected
        .iter()
        .filter(|(_, k, _)| k == "fold_error")
        .map(|(_, _, r)| r.split_once(": ").map_or(&**r, |(_, m)| m).to_owned())
        .collect();
    for v in [
        &mut got_kinds,
        &mut want_kinds,
        &mut got_messages,
        &mut want_messages,
    ] {
        v.sort();
    }
    assert_eq!(got_kinds, want_kinds, "dead letters by kind");
    assert_eq!(got_messages, want_messages, "the fold's dead letters");
}

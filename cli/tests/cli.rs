//! The `refold` binary, end to end: exit codes, output, and messages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The CPython oracle (`tests/py/seed_fold.py`), shared with fold-batch's tests.
#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

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

/// `refold fold PIPELINE --events EVENTS` (paths relative to the workspace root, or
/// absolute): its rows as the oracle's type (the key under `key_field`) and the line numbers
/// it reported as rejected on stderr (`EVENTS:LINE: reason (kind)`).
fn refold_fold(pipeline: &str, events: &str, key_field: &str) -> (oracle::Rows, BTreeSet<usize>) {
    let out = refold(&["fold", pipeline, "--events", events], &[KAFKA]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            (
                (
                    v["tenant_id"].as_str().expect("tenant_id").to_owned(),
                    v[key_field].as_str().expect("key").to_owned(),
                ),
                (
                    oracle::normalize(&v["state"]),
                    v["events_folded"].as_i64().expect("events_folded"),
                    v["last_event_id"]
                        .as_str()
                        .expect("last_event_id")
                        .to_owned(),
                ),
            )
        })
        .collect();
    let prefix = format!("{events}:");
    let rejected = text(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    (rows, rejected)
}

fn run_oracle(pipeline: &Path, events: &Path) -> oracle::Oracle {
    oracle::run(&root(), pipeline, events)
}

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
fn fold_of_the_order_stream_equals_the_cpython_oracle() {
    let want = run_oracle(&root().join(SEED), &root().join("events/orders.jsonl"));
    let (rows, rejected) = refold_fold(SEED, "events/orders.jsonl", "order_id");
    oracle::assert_rows_eq(&rows, &want.rows, "refold fold events/orders.jsonl");
    assert_eq!(
        rejected, want.rejected_lines,
        "the lines refold rejects are the ones the oracle rejects"
    );
}

/// A pipeline whose fold reads more of the event than the seed's (envelope fields, `data`,
/// `metadata`, missing attributes) and raises or returns a non-dict on purpose.
const EDGE_PIPELINE: &str = r#"metadata:
  name: edge-cases
  version: "1"
sources:
  accounts:
    type: kafka
    connection: localhost:9092
    topic: accounts
    consumer_group: edge
    format: json
    event_types: [Opened, Changed, Closed, Boom]
transformations:
  - name: accounts
    type: event_fold
    input: accounts
    key_field: account_id
    fold_function: |
      def fold(state, event):
          if event.type == "Opened":
              return {"n": 1, "owner": event.owner, "version": event.version,
                      "meta": event.metadata, "tags": [], "pair": (event.entity_type, 2)}
          if event.type == "Boom":
              return {**state, "x": event.no_such_field}
          if event.type == "Closed":
              if event.reason == "bad":
                  return None
              return {**state, "closed": True, "reason": event.reason, "n": state["n"] + 1}
          tags = state.get("tags", []) + [event.tag]
          return {**state, "n": state.get("n", 0) + 1, "tags": tags,
                  "amount": event.data.get("amount", 0) * 2, "entity": event.entity_id,
                  "at": event.timestamp}
sinks:
  out:
    type: iceberg
    table: ns.accounts
    mode: merge_on_key
    merge_keys: [account_id]
"#;

/// One envelope as a JSON line (`data` and extra top-level fields given as JSON text).
fn envelope(id: &str, ty: &str, tenant: &str, entity: &str, data: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"{ty}","entity_type":"Account","entity_id":"{entity}","tenant_id":"{tenant}","timestamp":"2026-02-12T10:30:00Z","version":1,"data":{data}{extra}}}"#
    )
}

#[test]
fn fold_agrees_with_the_cpython_oracle_on_edge_cases() {
    let e = envelope;
    // Arrays nested n deep; with the envelope and `data`, n + 2 arrays and objects.
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let ts = |line: String, t: &str| line.replace("2026-02-12T10:30:00Z", t);
    let version =
        |line: String, v: &str| line.replace(r#""version":1"#, &format!(r#""version":{v}"#));
    let lines: Vec<String> = vec![
        // 1-9 fold: keys from data.account_id, an integer, entity_id; two tenants; a key
        // written twice in data (the last is the attribute); unknown top-level fields; 64
        // arrays and objects nested (the most a record may have).
        e(
            "e1",
            "Opened",
            "t1",
            "x",
            r#"{"account_id":"a","owner":"ann"}"#,
            r#","metadata":{"src":"s"}"#,
        ),
        e(
            "e2",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"first","tag":"second","amount":2.5}"#,
            "",
        ),
        e(
            "e3",
            "Opened",
            "t2",
            "x",
            r#"{"account_id":"a","owner":"bob"}"#,
            r#","metadata":null"#,
        ),
        e(
            "e4",
            "Changed",
            "t1",
            "acct-9",
            r#"{"tag":"from-entity","amount":-0}"#,
            "",
        ),
        e(
            "e5",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":42,"tag":"int-key","amount":1180591620717411303424}"#,
            "",
        ),
        e(
            "e6",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"esc\u00e9\ud83d\ude00","amount":1e16}"#,
            r#","unknown":[1,2]"#,
        ),
        e(
            "e7",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"t","amount":3}"#,
            r#","x-extra":1,"x-extra":2"#,
        ),
        // Timestamps: a space or lower-case separator, a fraction, an offset, a leap second.
        ts(
            e(
                "e8",
                "Changed",
                "t1",
                "x",
                &format!(r#"{{"account_id":"b","tag":"ts","deep":{}}}"#, deep(62)),
                "",
            ),
            "2026-02-12 10:30:00.25+02:00",
        ),
        ts(
            e(
                "e9",
                "Changed",
                "t1",
                "x",
                r#"{"account_id":"b","tag":"ts2"}"#,
                "",
            ),
            "2016-12-31t23:59:60z",
        ),
        // 10: filtered, a type the source does not take.
        e("e10", "Ignored", "t1", "x", r#"{"account_id":"a"}"#, ""),
        // 11, 13, 14: the fold raises (a missing attribute; KeyError on a new key) or returns
        // None; 12 and 16 fold: the key goes on without them. 15: a number beyond f64.
        e("e11", "Boom", "t1", "x", r#"{"account_id":"a"}"#, ""),
        e(
            "e12",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"after","amount":1}"#,
            "",
        ),
        e(
            "e13",
            "Closed",
            "t1",
            "x",
            r#"{"account_id":"new","reason":"ok"}"#,
            "",
        ),
        e(
            "e14",
            "Closed",
            "t1",
            "x",
            r#"{"account_id":"a","reason":"bad"}"#,
            "",
        ),
        e(
            "e15",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"inf","amount":1e400}"#,
            "",
        ),
        e(
            "e16",
            "Closed",
            "t1",
            "x",
            r#"{"account_id":"a","reason":"ok"}"#,
            "",
        ),
        // 17-31: not valid envelopes.
        e(
            "e17",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":true,"tag":"t"}"#,
            "",
        ),
        e(
            "e18",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"","tag":"t"}"#,
            "",
        ),
        version(
            e(
                "e19",
                "Changed",
                "t1",
                "x",
                r#"{"account_id":"a","tag":"t"}"#,
                "",
            ),
            "true",
        ),
        version(
            e(
                "e20",
                "Changed",
                "t1",
                "x",
                r#"{"account_id":"a","tag":"t"}"#,
                "",
            ),
            "1.0",
        ),
        e(
            "e21",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"t"}"#,
            r#","version":2"#,
        ),
        e(
            "e22",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"t"}"#,
            r#","metadata":"m""#,
        ),
        e(
            "e23",
            "Changed",
            "t1",
            "",
            r#"{"account_id":"a","tag":"t"}"#,
            "",
        ),
        e("e24", "Changed", "t1", "x", "[]", ""),
        e(
            "e25",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"\ud800"}"#,
            "",
        ),
        e(
            "e26",
            "Changed",
            "t1",
            "x",
            &format!(r#"{{"account_id":"a","tag":{}}}"#, deep(63)),
            "",
        ),
        e(
            "e27",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":NaN}"#,
            "",
        ),
        ts(
            e(
                "e28",
                "Changed",
                "t1",
                "x",
                r#"{"account_id":"a","tag":"t"}"#,
                "",
            ),
            "2026-02-12T10:30:00+0100",
        ),
        e(
            "e29",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"a","tag":"t"}"#,
            "",
        )
        .replace(r#""event_type":"Changed""#, r#""event_type":7"#),
        r#"{"event_id":"e30","event_type":"Changed"}"#.to_owned(),
        "[1, 2]".to_owned(),
        // 32-35: the last events of `b`, on a CRLF line and after a blank one.
        e(
            "e31",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"b","tag":"crlf"}"#,
            "",
        ) + "\r",
        " \t".to_owned(),
        e(
            "e32",
            "Changed",
            "t1",
            "x",
            r#"{"account_id":"b","tag":"last","amount":0.1}"#,
            "",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let pipeline = dir.path().join("edge.yaml");
    let events = dir.path().join("edge.jsonl");
    std::fs::write(&pipeline, EDGE_PIPELINE).expect("write");
    std::fs::write(&events, lines.join("\n") + "\n").expect("write");

    let want = run_oracle(&pipeline, &events);
    // The cases are what the comments say (as the oracle sees them): rows a@t1, a@t2,
    // acct-9, 42 and b; lines 11, 13-15 and 17-31 rejected.
    let expected: BTreeSet<usize> = [11, 13, 14, 15].into_iter().chain(17..=31).collect();
    assert_eq!(want.rejected_lines, expected, "{:#?}", want.rejected);
    assert_eq!(want.rows.len(), 5, "{:?}", want.rows.keys());

    let (rows, rejected) = refold_fold(
        pipeline.to_str().expect("utf-8"),
        events.to_str().expect("utf-8"),
        "account_id",
    );
    oracle::assert_rows_eq(&rows, &want.rows, "edge cases");
    assert_eq!(
        rejected, want.rejected_lines,
        "rejected lines: refold vs the oracle ({:#?})",
        want.rejected
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
    assert_table_is_the_in_memory_fold(wh, "events/orders.jsonl");
}

/// The rows `refold state` or `refold fold` print: (tenant, key, state, events folded).
fn rows(stdout: &str) -> Vec<(String, String, String, i64)> {
    stdout
        .lines()
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
}

/// The table in `warehouse` holds what an in-memory fold of `events` gives.
fn assert_table_is_the_in_memory_fold(warehouse: &str, events: &str) {
    let state = refold(&["state", SEED, "--warehouse", warehouse], &[]);
    assert!(state.status.success(), "{}", text(&state.stderr));
    let folded = refold(&["fold", SEED, "--events", events], &[]);
    assert!(folded.status.success(), "{}", text(&folded.stderr));
    let (got, want) = (rows(&text(&state.stdout)), rows(&text(&folded.stdout)));
    assert_eq!(
        got.len(),
        want.len(),
        "rows in the table vs the in-memory fold"
    );
    assert!(
        got == want,
        "the table equals the in-memory fold of {events}"
    );
}

/// The number just before `label` in `line` ("... 42 folded, ...").
fn number_before(line: &str, label: &str) -> usize {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("`{label}` missing from: {line}"));
    let n = line[..at].trim_end().rsplit(' ').next().unwrap_or_default();
    n.parse()
        .unwrap_or_else(|_| panic!("no number before `{label}` in: {line}"))
}

/// Writes a generated order stream of exactly `lines` lines (events/gen_orders.py).
fn generate_orders(path: &std::path::Path, orders: usize, lines: usize) {
    let file = std::fs::File::create(path).expect("create the events file");
    let out = Command::new("python3")
        .arg(root().join("events/gen_orders.py"))
        .args([
            "--orders",
            &orders.to_string(),
            "--lines",
            &lines.to_string(),
        ])
        .stdout(file)
        .output()
        .expect("python3 runs events/gen_orders.py (python3 must be installed)");
    assert!(out.status.success(), "gen_orders.py: {}", text(&out.stderr));
}

/// A stream far longer than the in-process Kafka keeps per partition (100,000 lines, about
/// 32 MB, 5 MiB kept per partition): the demo still folds every line, and the table is the
/// in-memory fold of the whole stream.
#[test]
fn demo_folds_every_line_of_a_100000_line_stream() {
    const LINES: usize = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("orders-100k.jsonl");
    generate_orders(&events, 29_000, LINES);
    let events = events.to_str().expect("utf-8");
    let wh = dir.path().join("warehouse");
    let wh = wh.to_str().expect("utf-8");
    let run = refold(&["demo", "--events", events, "--warehouse", wh], &[]);
    let out = text(&run.stdout);
    assert!(
        run.status.success(),
        "{}\n{}",
        text(&run.stderr),
        out.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.contains(&format!(
            "produced {LINES}, read back {LINES}, received by the engine {LINES}"
        )),
        "{out}"
    );
    // Each batch's first delivery: every line folded, filtered or dead-lettered once.
    let first_deliveries: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("batch") && !l.contains("(delivered again)"))
        .collect();
    let accounted: usize = first_deliveries
        .iter()
        .map(|l| {
            assert_eq!(number_before(l, " already applied"), 0, "{l}");
            number_before(l, " folded")
                + number_before(l, " filtered")
                + number_before(l, " dead-lettered")
        })
        .sum();
    assert_eq!(
        accounted, LINES,
        "every line folded, filtered or dead-lettered"
    );
    let total = out
        .lines()
        .find(|l| l.starts_with("total:"))
        .expect("a total line");
    assert_eq!(number_before(total, " dead-lettered"), 5, "{total}");
    assert_table_is_the_in_memory_fold(wh, events);
}

//! Upcasters: an event type's v1 shape turned into v2 before the fold. A stream written in
//! v1 and the same stream in v2 fold to the same rows, which are the CPython fold of the v2
//! stream (`tests/py/seed_fold.py`, no refold code). A failing upcaster sets its event
//! aside with the reason; a broken one is a `refold validate` error at its line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use refold::batch::{CompiledPipeline, KeyCheck, fold_in_memory};
use refold::record::from_jsonl;

#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// The seed pipeline with an upcaster of OrderPlaced v1 (`total`) to v2 (`amount`).
fn pipeline_text(upcast_body: &str) -> String {
    let seed =
        std::fs::read_to_string(root().join("pipelines/order-events-pipeline.yaml")).unwrap();
    let upcasters = format!(
        "    upcasters:\n      - event_type: OrderPlaced\n        from_version: 1\n        function: |\n          def upcast(event):\n{upcast_body}"
    );
    seed.replace(
        "    key_field: order_id\n",
        &format!("    key_field: order_id\n{upcasters}"),
    )
}

/// v1 called the amount `total`; v2 renamed it (the same JSON number, int or float).
const TO_V2: &str = "              data = {k: v for k, v in event.data.items() if k != \"total\"}\n              return {**data, \"amount\": event.total}\n";

fn compile(text: &str) -> CompiledPipeline {
    let loaded = refold::pipeline::parse(text, "upcast.yaml", &|_| Some("localhost:9092".into()));
    CompiledPipeline::compile(loaded.into_pipeline().unwrap())
        .unwrap()
        .with_key_check(KeyCheck::Off)
}

/// The order stream with every OrderPlaced at `version`: v1 carries `total`, v2
/// `amount` (as produced today). Lines that are not JSON objects stay as they are.
fn stream(version: i64) -> String {
    let text = std::fs::read_to_string(root().join("events/orders.jsonl")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut v = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v["event_type"] == "OrderPlaced" && v["data"]["amount"].is_number() => v,
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        v["version"] = serde_json::json!(version);
        if version == 1 {
            let data = v["data"].as_object_mut().unwrap();
            let amount = data.remove("amount").unwrap();
            data.insert("total".into(), amount);
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

fn rows(cp: &CompiledPipeline, text: &str) -> oracle::Rows {
    let view = fold_in_memory(cp, &from_jsonl(text.as_bytes(), "t"), 500).unwrap();
    view.rows
        .into_values()
        .map(|r| {
            let state = oracle::normalize(&r.state.to_value());
            (
                (r.tenant_id, r.key),
                (state, r.events_folded, r.last_event_id),
            )
        })
        .collect()
}

#[test]
fn v1_and_v2_events_fold_to_the_same_state_as_cpython_folds_v2() {
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text(TO_V2);
    let cp = compile(&text);
    let (v1, v2) = (stream(1), stream(2));
    assert_ne!(v1, v2);
    let (from_v1, from_v2) = (rows(&cp, &v1), rows(&cp, &v2));
    let pipeline = dir.path().join("p.yaml");
    std::fs::write(&pipeline, &text).unwrap();
    let events = dir.path().join("v2.jsonl");
    std::fs::write(&events, &v2).unwrap();
    let want = oracle::run(&root(), &pipeline, &events).rows;
    oracle::assert_rows_eq(&from_v2, &want, "v2 stream");
    oracle::assert_rows_eq(&from_v1, &want, "v1 stream, upcast");
}

#[test]
fn a_failing_upcaster_sets_its_event_aside_with_the_reason() {
    let body = "              if event.total > 500:\n                  fail(\"too large\")\n              return {\"amount\": event.total}\n";
    let cp = compile(&pipeline_text(body));
    let view = fold_in_memory(&cp, &from_jsonl(stream(1).as_bytes(), "t"), 500).unwrap();
    let upcast: Vec<_> = view
        .dead_letters
        .iter()
        .filter(|d| d.reason.contains("upcaster of `OrderPlaced` version 1"))
        .collect();
    assert!(!upcast.is_empty(), "{:?}", view.dead_letters.first());
    assert!(
        upcast.iter().all(|d| d.reason.contains("too large")),
        "{:?}",
        upcast[0]
    );
    assert!(view.counts.folded > 0, "the rest of the stream goes on");
}

#[test]
fn a_broken_upcaster_is_a_validate_error_at_its_line() {
    let text = pipeline_text("              return {\"amount\": event.total / }\n");
    let loaded = refold::pipeline::parse(&text, "upcast.yaml", &|_| Some("x".into()));
    let errors: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
    let line = text.lines().position(|l| l.contains("total / }")).unwrap() + 1;
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("upcast.yaml:{line}:")) && e.contains("upcaster")),
        "want an error at line {line}: {errors:#?}"
    );
}

#[test]
fn a_runaway_upcaster_stops_at_the_step_limit() {
    let body = "              n = 0\n              for i in range(100000000):\n                  n += i\n              return {\"amount\": n}\n";
    let cp = compile(&pipeline_text(body));
    let one: String = stream(1)
        .lines()
        .take(20)
        .map(|l| format!("{l}\n"))
        .collect();
    let view = fold_in_memory(&cp, &from_jsonl(one.as_bytes(), "t"), 500).unwrap();
    let stopped: Vec<_> = view
        .dead_letters
        .iter()
        .filter(|d| d.reason.contains("upcaster of `OrderPlaced` version 1"))
        .collect();
    assert!(!stopped.is_empty(), "{:?}", view.dead_letters.first());
    assert!(
        stopped
            .iter()
            .all(|d| d.reason.contains("step limit exceeded")),
        "{:?}",
        stopped[0]
    );
}

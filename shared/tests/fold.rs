//! The fold engine: the seed's Starlark fold against the native reference, limits, and
//! determinism.

use std::collections::HashMap;
use std::path::PathBuf;

use proptest::prelude::*;
use refold::batch::{self, CompiledPipeline, KeyCheck, fold_in_memory};
use refold::envelope::Envelope;
use refold::fold::{FoldErrorKind, FoldProgram, KeyEvents, KeyFolded, State};
use refold::pipeline::{self, ErrorPolicy, FoldLimits, FoldSource, Pipeline};
use refold::record::from_jsonl;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn seed_pipeline() -> Pipeline {
    let path = root().join("pipelines/order-events-pipeline.yaml");
    let text = std::fs::read_to_string(&path).expect("seed pipeline file");
    let env = |name: &str| (name == "KAFKA_CONNECTION").then(|| "localhost:9092".to_owned());
    let loaded = pipeline::parse(&text, "order-events-pipeline.yaml", &env);
    loaded.into_pipeline().expect("the seed pipeline is valid")
}

fn native_pipeline() -> Pipeline {
    let mut p = seed_pipeline();
    p.transformations[0].fold = FoldSource::Native {
        name: "order".to_owned(),
    };
    p
}

fn starlark(source: &str, limits: FoldLimits) -> FoldProgram {
    FoldProgram::compile(
        &FoldSource::Starlark {
            source: source.to_owned(),
            line: 1,
        },
        &limits,
    )
    .expect("compiles")
}

fn envelope_json(i: usize, event_type: &str, data: serde_json::Value) -> String {
    serde_json::json!({
        "event_id": format!("evt-{i}"), "event_type": event_type, "entity_type": "Order",
        "entity_id": "order-1", "tenant_id": "t1", "timestamp": "2026-02-12T10:30:00Z",
        "version": 1, "data": data,
    })
    .to_string()
}

fn fold_one_key(program: &FoldProgram, prior: Option<&State>, texts: &[String]) -> KeyFolded {
    let envelopes: Vec<Envelope> = texts
        .iter()
        .map(|t| Envelope::decode(t.as_bytes()).expect("valid"))
        .collect();
    let refs: Vec<&Envelope> = envelopes.iter().collect();
    program
        .fold_keys(&[KeyEvents {
            prior,
            events: &refs,
        }])
        .remove(0)
}

#[test]
fn seed_fold_matches_native_fold_on_the_orders_stream() {
    let text = std::fs::read(root().join("events/orders.jsonl")).expect("events/orders.jsonl");
    let records = from_jsonl(&text, "orders");
    let star = fold_in_memory(
        &CompiledPipeline::compile(seed_pipeline())
            .expect("compiles")
            .with_key_check(KeyCheck::Off),
        &records,
        1000,
    )
    .expect("folds");
    let native = fold_in_memory(
        &CompiledPipeline::compile(native_pipeline())
            .expect("compiles")
            .with_key_check(KeyCheck::Off),
        &records,
        1000,
    )
    .expect("folds");
    assert_eq!(star.counts, native.counts);
    assert!(star.counts.balanced());
    assert_eq!(
        star.counts.dead_lettered, 5,
        "the five malformed lines: {:?}",
        star.dead_letters
    );
    assert!(
        star.counts.filtered > 0 && star.counts.folded > 4000,
        "{:?}",
        star.counts
    );
    assert_eq!(star.rows.len(), native.rows.len());
    for (id, row) in &star.rows {
        let other = &native.rows[id];
        assert_eq!(
            serde_json::to_string(&row.state).expect("json"),
            serde_json::to_string(&other.state).expect("json"),
            "state of {id:?}"
        );
        assert_eq!(row.events_folded, other.events_folded);
    }
    let tenants: std::collections::BTreeSet<_> = star.rows.keys().map(|(t, _)| t.clone()).collect();
    assert_eq!(tenants.len(), 2);
    let statuses: std::collections::BTreeSet<String> = star
        .rows
        .values()
        .filter_map(|r| r.state.to_value()["status"].as_str().map(str::to_owned))
        .collect();
    let want = ["cancelled", "confirmed", "delivered", "placed", "shipped"];
    assert_eq!(statuses, want.iter().map(|s| (*s).to_owned()).collect());
}

/// Numbers and duplicate keys of `data` reach a fold as Python's json reads them (and so the
/// CPython oracle, `tests/py/seed_fold.py`): `-0` is the integer 0, `-0.0` the float -0.0,
/// a key written twice has its last value; the Starlark and the native fold store the same
/// bytes.
#[test]
fn event_numbers_and_duplicate_keys_read_as_in_python() {
    let pipeline = seed_pipeline();
    let t = pipeline.transformation();
    let star = FoldProgram::compile(&t.fold, &t.limits).expect("compiles");
    let native = FoldProgram::compile(
        &FoldSource::Native {
            name: "order".to_owned(),
        },
        &t.limits,
    )
    .expect("native");
    for (data, amount) in [
        (r#"{"amount": -0}"#, "0"),
        (r#"{"amount": -0.0}"#, "-0.0"),
        (r#"{"amount": -0e3}"#, "-0.0"),
        (r#"{"amount": 0.0}"#, "0.0"),
        (r#"{"amount": 2.50}"#, "2.5"),
        (r#"{"amount": 1e2}"#, "100.0"),
        (r#"{"amount": 1, "amount": -0}"#, "0"),
        (r#"{"amount": "-0", "note": "a-0.0 -0"}"#, r#""-0""#),
        (r#"{"amount": 9223372036854775807}"#, "9223372036854775807"),
        (r#"{"amount": [-0, {"x": -0.0}]}"#, r#"[0,{"x":-0.0}]"#),
    ] {
        let line = format!(
            r#"{{"event_id": "e", "event_type": "OrderPlaced", "entity_type": "Order",
                "entity_id": "o", "tenant_id": "t", "timestamp": "2026-02-12T10:30:00Z",
                "version": 1, "data": {data}}}"#
        );
        let want = format!(r#"{{"amount":{amount},"status":"placed"}}"#);
        for (name, program) in [("starlark", &star), ("native", &native)] {
            let r = fold_one_key(program, None, std::slice::from_ref(&line));
            let state = serde_json::to_string(&r.state.expect("state")).expect("json");
            assert_eq!(state, want, "{name}: {data}");
        }
    }
}

/// `decode` reads each envelope's row key in the same pass: the key a record folds under
/// and the archive records, as the seed's `key_field: order_id` defines it.
#[test]
fn decode_reads_the_row_key_the_fold_groups_by() {
    let cp = CompiledPipeline::compile(seed_pipeline()).expect("compiles");
    let cases: [(serde_json::Value, Option<&str>); 6] = [
        (
            serde_json::json!({"order_id": "o-7", "amount": 1}),
            Some("o-7"),
        ),
        (serde_json::json!({"order_id": 42, "amount": 1}), Some("42")),
        (serde_json::json!({"amount": 1}), Some("order-1")),
        (
            serde_json::json!({"order_id": null, "amount": 1}),
            Some("order-1"),
        ),
        (serde_json::json!({"order_id": "", "amount": 1}), None),
        (serde_json::json!({"order_id": {"a": 1}, "amount": 1}), None),
    ];
    let lines: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (data, _))| envelope_json(i, "OrderPlaced", data.clone()))
        .collect();
    let records = from_jsonl(lines.join("\n").as_bytes(), "t");
    let decoded = batch::decode(&cp, &records);
    for ((data, expected), d) in cases.iter().zip(&decoded) {
        assert_eq!(d.row_key(&cp).as_deref(), *expected, "data {data}");
        let envelope = d.envelope.as_ref().expect("valid envelope");
        assert_eq!(
            d.row_key(&cp).map(|k| k.into_owned()),
            cp.row_key(envelope),
            "data {data}"
        );
    }
    // The two without a key are set aside, naming the field; the rest fold under their key.
    let cp = cp.with_key_check(KeyCheck::Off);
    let view = fold_in_memory(&cp, &records, 10).expect("folds");
    let keys: Vec<&str> = view.rows.keys().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["42", "o-7", "order-1"]);
    assert_eq!(view.dead_letters.len(), 2);
    for dl in &view.dead_letters {
        assert!(dl.reason.contains("data.order_id"), "{}", dl.reason);
    }
}

#[test]
fn seed_fold_semantics_follow_python() {
    let program = CompiledPipeline::compile(seed_pipeline())
        .expect("compiles")
        .with_key_check(KeyCheck::Off);
    let _ = program;
    let fold = starlark(
        "def fold(state, event):\n    if event.type == \"OrderPlaced\":\n        return {\"status\": \"placed\", \"amount\": event.amount}\n    elif event.type == \"OrderCancelled\":\n        return {**state, \"status\": \"cancelled\"}\n    return {**state, \"status\": event.type.lower().replace(\"order\", \"\")}\n",
        FoldLimits::default(),
    );
    let events = [
        envelope_json(
            1,
            "OrderPlaced",
            serde_json::json!({"amount": 99.99, "currency": "USD"}),
        ),
        envelope_json(2, "OrderShipped", serde_json::json!({})),
    ];
    let r = fold_one_key(&fold, None, &events);
    assert_eq!(
        serde_json::to_string(&r.state).expect("json"),
        r#"{"amount":99.99,"status":"shipped"}"#
    );
    // `{**state}` keeps fields the fold did not set.
    let prior: State = serde_json::from_str(r#"{"note":"x","status":"placed"}"#).expect("json");
    let r = fold_one_key(
        &fold,
        Some(&prior),
        &[envelope_json(3, "OrderCancelled", serde_json::json!({}))],
    );
    assert_eq!(
        serde_json::to_string(&r.state).expect("json"),
        r#"{"note":"x","status":"cancelled"}"#
    );
    // A missing attribute is a per-event error; the state stays as it was.
    let r = fold_one_key(
        &fold,
        Some(&prior),
        &[envelope_json(4, "OrderPlaced", serde_json::json!({}))],
    );
    assert_eq!(r.applied, 0);
    assert_eq!(r.errors[0].1.kind, FoldErrorKind::Raised);
    assert!(
        r.errors[0].1.message.contains("amount"),
        "{}",
        r.errors[0].1
    );
    assert_eq!(r.state.as_ref(), Some(&prior));
}

#[test]
fn unpacking_none_fails_like_python() {
    let fold = starlark(
        "def fold(state, event):\n    return {**None, \"a\": 1}\n",
        FoldLimits::default(),
    );
    let r = fold_one_key(&fold, None, &[envelope_json(1, "X", serde_json::json!({}))]);
    assert!(
        r.errors[0]
            .1
            .message
            .contains("'NoneType' object is not a mapping"),
        "{}",
        r.errors[0].1
    );
    assert!(
        r.errors[0].1.message.starts_with("line 2: "),
        "{}",
        r.errors[0].1
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_step_limit_and_the_key_goes_on() {
    let limits = FoldLimits {
        max_steps_per_event: 50_000,
        ..FoldLimits::default()
    };
    let src = "def fold(state, event):\n    if event.type == \"Spin\":\n        for i in range(2147483647):\n            for j in range(2147483647):\n                pass\n    return {**state, \"n\": state.get(\"n\", 0) + 1}\n";
    let fold = starlark(src, limits);
    let events = [
        envelope_json(1, "A", serde_json::json!({})),
        envelope_json(2, "Spin", serde_json::json!({})),
        envelope_json(3, "B", serde_json::json!({})),
    ];
    let started = std::time::Instant::now();
    let r = fold_one_key(&fold, None, &events);
    assert!(
        started.elapsed().as_secs() < 30,
        "stopped, not run to the end"
    );
    assert_eq!(r.applied, 2);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].0, 1);
    assert_eq!(r.errors[0].1.kind, FoldErrorKind::LimitExceeded);
    assert!(
        r.errors[0].1.message.contains("step limit"),
        "{}",
        r.errors[0].1
    );
    assert_eq!(r.state.expect("state").to_value()["n"], 2);
}

#[test]
fn a_huge_allocation_is_stopped_by_the_heap_limit() {
    let limits = FoldLimits {
        max_heap_bytes: 8 * 1024 * 1024,
        max_steps_per_event: 100_000_000,
        ..FoldLimits::default()
    };
    let src = "def fold(state, event):\n    if event.type == \"Hog\":\n        xs = []\n        for i in range(100000000):\n            xs.append(\"item %d\" % i)\n    return {\"ok\": True}\n";
    let fold = starlark(src, limits);
    let events = [
        envelope_json(1, "Hog", serde_json::json!({})),
        envelope_json(2, "Fine", serde_json::json!({})),
    ];
    let r = fold_one_key(&fold, None, &events);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(r.errors[0].1.kind, FoldErrorKind::LimitExceeded);
    assert!(
        r.errors[0].1.message.contains("heap limit"),
        "{}",
        r.errors[0].1
    );
    assert_eq!(r.applied, 1, "the next event folds on a fresh heap");
    assert_eq!(r.state.expect("state").to_value()["ok"], true);
}

#[test]
fn deep_calls_hit_the_call_depth_limit() {
    let mut src = String::from("def f0():\n    return 0\n");
    for i in 1..40 {
        src.push_str(&format!("def f{i}():\n    return f{}() + 1\n", i - 1));
    }
    src.push_str("def fold(state, event):\n    return {\"d\": f39()}\n");
    let fold = starlark(
        &src,
        FoldLimits {
            max_call_depth: 16,
            ..FoldLimits::default()
        },
    );
    let r = fold_one_key(&fold, None, &[envelope_json(1, "A", serde_json::json!({}))]);
    assert_eq!(
        r.errors[0].1.kind,
        FoldErrorKind::LimitExceeded,
        "{}",
        r.errors[0].1
    );
    let fold = starlark(
        &src,
        FoldLimits {
            max_call_depth: 64,
            ..FoldLimits::default()
        },
    );
    let r = fold_one_key(&fold, None, &[envelope_json(1, "A", serde_json::json!({}))]);
    assert_eq!(r.state.expect("state").to_value()["d"], 39);
}

#[test]
fn bad_returns_and_raises_are_per_event_errors() {
    let src = "def fold(state, event):\n    if event.type == \"None\":\n        return None\n    if event.type == \"Fail\":\n        fail(\"boom\")\n    if event.type == \"Func\":\n        return {\"f\": fold}\n    if event.type == \"NaN\":\n        return {\"x\": float(\"nan\")}\n    return {\"ok\": event.type}\n";
    let fold = starlark(src, FoldLimits::default());
    for (ty, kind, text) in [
        (
            "None",
            FoldErrorKind::BadReturn,
            "must return a dict, got NoneType",
        ),
        ("Fail", FoldErrorKind::Raised, "boom"),
        ("Func", FoldErrorKind::BadReturn, "not a JSON value"),
        ("NaN", FoldErrorKind::BadReturn, "JSON cannot represent"),
    ] {
        let events = [
            envelope_json(1, "A", serde_json::json!({})),
            envelope_json(2, ty, serde_json::json!({})),
            envelope_json(3, "B", serde_json::json!({})),
        ];
        let r = fold_one_key(&fold, None, &events);
        assert_eq!(r.errors.len(), 1, "{ty}: {:?}", r.errors);
        assert_eq!(r.errors[0].0, 1, "{ty}: blames the right event");
        assert_eq!(r.errors[0].1.kind, kind, "{ty}");
        assert!(
            r.errors[0].1.message.contains(text),
            "{ty}: {}",
            r.errors[0].1
        );
        assert_eq!(r.state.expect("state").to_value()["ok"], "B", "{ty}");
    }
}

#[test]
fn compile_errors_name_the_line() {
    let err = FoldProgram::compile(
        &FoldSource::Starlark {
            source: "def fold(state, event):\n    return {\n".into(),
            line: 1,
        },
        &FoldLimits::default(),
    );
    assert!(err.is_err());
    let err = FoldProgram::compile(
        &FoldSource::Starlark {
            source: "x = 1\n".into(),
            line: 1,
        },
        &FoldLimits::default(),
    )
    .err()
    .expect("no fold");
    assert!(err.contains("def fold(state, event)"), "{err}");
    let err =
        refold::fold::check_starlark_source("def fold(state, event):\n    return undefined_name\n")
            .expect_err("unbound");
    assert!(err.starts_with("line 2: "), "{err}");
}

// ---------------------------------------------------------------------------- properties

fn arb_event() -> impl Strategy<Value = (usize, String, Option<serde_json::Value>)> {
    let types = prop::sample::select(vec![
        "OrderPlaced",
        "OrderConfirmed",
        "OrderShipped",
        "OrderDelivered",
        "OrderCancelled",
        "OrderReturned",
        "Placed",
    ]);
    let amount = prop_oneof![
        Just(None),
        (0i64..100_000).prop_map(|i| Some(serde_json::json!(i))),
        (0.0f64..10_000.0).prop_map(|f| Some(serde_json::json!(f))),
        "[a-z0-9.]{0,6}".prop_map(|s| Some(serde_json::json!(s))),
        Just(Some(serde_json::Value::Null)),
    ];
    (0usize..6, types.prop_map(str::to_owned), amount)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Starlark and native folds agree event by event: same states (byte for byte), same
    /// applied counts, same failing events.
    #[test]
    fn starlark_and_native_folds_agree(events in prop::collection::vec(arb_event(), 1..60)) {
        let star = CompiledPipeline::compile(seed_pipeline()).expect("compiles").with_key_check(KeyCheck::Off);
        let native = CompiledPipeline::compile(native_pipeline()).expect("compiles").with_key_check(KeyCheck::Off);
        let lines: Vec<String> = events.iter().enumerate().map(|(i, (key, ty, amount))| {
            let mut data = serde_json::json!({"order_id": format!("o{key}")});
            if let Some(a) = amount { data["amount"] = a.clone(); }
            envelope_json(i, ty, data)
        }).collect();
        let text = lines.join("\n");
        let records = from_jsonl(text.as_bytes(), "p");
        let a = fold_in_memory(&star, &records, 7).expect("folds");
        let b = fold_in_memory(&native, &records, 7).expect("folds");
        prop_assert_eq!(a.counts, b.counts);
        let sa: HashMap<_, _> = a.rows.iter().map(|(k, r)| (k.clone(), serde_json::to_string(&r.state).expect("json"))).collect();
        let sb: HashMap<_, _> = b.rows.iter().map(|(k, r)| (k.clone(), serde_json::to_string(&r.state).expect("json"))).collect();
        prop_assert_eq!(sa, sb);
        let da: Vec<i64> = a.dead_letters.iter().map(|d| d.offset).collect();
        let db: Vec<i64> = b.dead_letters.iter().map(|d| d.offset).collect();
        prop_assert_eq!(da, db);
        // Deterministic: folding again gives the same bytes.
        let again = fold_in_memory(&star, &records, 3).expect("folds");
        let s1: Vec<String> = a.rows.values().map(|r| serde_json::to_string(&r.state).expect("json")).collect();
        let s2: Vec<String> = again.rows.values().map(|r| serde_json::to_string(&r.state).expect("json")).collect();
        prop_assert_eq!(s1, s2);
    }
}

#[test]
fn a_returned_state_is_stored_as_canonical_json_text() {
    // Keys sorted by their bytes at every depth, tuples as arrays, numbers and strings as
    // serde_json 1.0.154 writes them, `1e+300` included (hand-written, not computed by refold).
    let src = r#"def fold(state, event):
    return {"b": 1.5, "a": [1, (2, "x")], "c": {"z": None, "y": True}, "é": "q\"\n",
            "big": 9007199254740993, "f": 1e300, "neg": -0.0, "n": state.get("n", 0) + 1,
            "B": state.get("B", "kept")}
"#;
    let fold = starlark(src, FoldLimits::default());
    // A prior stored by another writer: not canonical, and kept as such until folded.
    let prior = State::parse(r#"{ "n": 41,  "B": "from prior" }"#).expect("an object");
    let r = fold_one_key(
        &fold,
        Some(&prior),
        &[envelope_json(1, "A", serde_json::json!({}))],
    );
    assert_eq!(r.errors, vec![]);
    assert_eq!(
        r.state.expect("state").as_str(),
        r#"{"B":"from prior","a":[1,[2,"x"]],"b":1.5,"big":9007199254740993,"c":{"y":true,"z":null},"f":1e+300,"n":42,"neg":-0.0,"é":"q\"\n"}"#
    );
}

#[test]
fn a_state_of_many_fields_keeps_every_field_sorted() {
    // More fields than the writer sorts on the stack (16), at the top and nested.
    let src = "def fold(state, event):\n    d = {('k' + str(29 - i)): i for i in range(20)}\n    return dict(d, nested = dict(d))\n";
    let fold = starlark(src, FoldLimits::default());
    let r = fold_one_key(&fold, None, &[envelope_json(1, "A", serde_json::json!({}))]);
    assert_eq!(r.errors, vec![]);
    let fields: String = (10..30)
        .map(|k| format!(r#""k{k}":{}"#, 29 - k))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        r.state.expect("state").as_str(),
        format!(r#"{{{fields},"nested":{{{fields}}}}}"#)
    );
}

/// Events of one key that fail, first, last and between, are set aside; the row counts
/// only the events that folded and names the last of them (its offset and event id), in a
/// batch holding them all and in batches of one event each.
#[test]
fn a_row_names_its_last_folded_event_when_others_fail() {
    let mut p = seed_pipeline();
    p.transformations[0].fold = FoldSource::Starlark {
        source: "def fold(state, event):\n    if event.type == \"OrderShipped\":\n        fail(\"no shipping\")\n    return {\"n\": state.get(\"n\", 0) + 1}\n".to_owned(),
        line: 1,
    };
    let cp = CompiledPipeline::compile(p)
        .expect("compiles")
        .with_key_check(KeyCheck::Off);
    let types = [
        "OrderShipped",
        "OrderPlaced",
        "OrderShipped",
        "OrderConfirmed",
        "OrderShipped",
    ];
    let lines: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| envelope_json(i, t, serde_json::json!({})))
        .collect();
    let records = from_jsonl(lines.join("\n").as_bytes(), "t");
    for batch_size in [5, 1] {
        let view = fold_in_memory(&cp, &records, batch_size).expect("folds");
        let row = view.rows.values().next().expect("one row");
        assert_eq!(view.rows.len(), 1);
        assert_eq!(row.events_folded, 2, "batches of {batch_size}");
        assert_eq!(row.last_offset, 3, "batches of {batch_size}");
        assert_eq!(row.last_event_id, "evt-3", "batches of {batch_size}");
        assert_eq!(row.state.as_str(), r#"{"n":2}"#, "batches of {batch_size}");
        let set_aside: Vec<i64> = view.dead_letters.iter().map(|d| d.offset).collect();
        assert_eq!(set_aside, [0, 2, 4], "batches of {batch_size}");
        assert_eq!(view.counts.folded, 2);
    }
}

/// A batch large enough to be decoded and folded on several threads (`refold::parallel`)
/// gives exactly what one thread gives: the same rows, dead letters and counts, under each
/// error policy, with failing events and malformed records spread over the chunks.
#[test]
fn a_batch_split_over_threads_folds_as_on_one() {
    let lines: Vec<String> = (0..9_000)
        .map(|i| {
            let key = i % 3_000;
            if i % 997 == 0 {
                return format!("{{\"event_id\": \"evt-{i}\", \"not json");
            }
            let (event_type, data) = match i / 3_000 {
                // Every 7th order is placed without an amount: `event.amount` fails.
                0 if key % 7 == 0 => ("OrderPlaced", serde_json::json!({"order_id": key})),
                0 => (
                    "OrderPlaced",
                    serde_json::json!({"order_id": key, "amount": key}),
                ),
                1 => ("OrderShipped", serde_json::json!({"order_id": key})),
                _ => ("OrderCancelled", serde_json::json!({"order_id": key})),
            };
            serde_json::json!({
                "event_id": format!("evt-{i}"), "event_type": event_type,
                "entity_type": "Order", "entity_id": format!("order-{key}"),
                "tenant_id": format!("t{}", key % 2), "timestamp": "2026-02-12T10:30:00Z",
                "version": 1, "data": data,
            })
            .to_string()
        })
        .collect();
    let records = from_jsonl(lines.join("\n").as_bytes(), "t");
    for policy in [
        ErrorPolicy::DeadLetter,
        ErrorPolicy::Skip,
        ErrorPolicy::Fail,
    ] {
        let mut p = seed_pipeline();
        p.transformations[0].on_error = policy;
        let on = |threads| {
            let cp = CompiledPipeline::compile(p.clone())
                .expect("compiles")
                .with_key_check(KeyCheck::Off)
                .with_threads(threads);
            fold_in_memory(&cp, &records, 9_000).expect("folds")
        };
        let (one, many) = (on(1), on(4));
        assert_eq!(one.counts, many.counts, "{policy:?}");
        assert_eq!(one.rows, many.rows, "{policy:?}");
        assert_eq!(one.dead_letters, many.dead_letters, "{policy:?}");
        assert!(one.counts.balanced(), "{policy:?}: {:?}", one.counts);
        if policy != ErrorPolicy::Fail {
            // 3,000 keys; the malformed records and the orders placed without an amount
            // fail, the rest fold.
            assert!(
                one.rows.len() > 2_500,
                "{policy:?}: {} rows",
                one.rows.len()
            );
            assert!(one.counts.folded > 7_000, "{policy:?}: {:?}", one.counts);
        }
        if policy == ErrorPolicy::DeadLetter {
            // Worked out by hand: records 0, 997, ..., 8973 are malformed (10), and the 429
            // orders k % 7 == 0 are placed without an amount, but for order 0, whose
            // placing is record 0 (428).
            assert_eq!(many.counts.dead_lettered, 438, "{:?}", many.counts);
            assert_eq!(many.dead_letters.len(), 438);
            let row = |tenant: &str, key: &str| &many.rows[&(tenant.to_owned(), key.to_owned())];
            // Placed (amount 1), shipped, cancelled.
            assert_eq!(
                row("t1", "1").state.as_str(),
                r#"{"amount":1,"status":"cancelled"}"#
            );
            assert_eq!(row("t1", "1").events_folded, 3);
            // The placing fails; shipped and cancelled fold onto the empty state.
            assert_eq!(row("t1", "7").state.as_str(), r#"{"status":"cancelled"}"#);
            assert_eq!(row("t1", "7").events_folded, 2);
            // Order 2,999 is in the last fold chunk: placed, shipped, cancelled.
            assert_eq!(
                row("t1", "2999").state.as_str(),
                r#"{"amount":2999,"status":"cancelled"}"#
            );
        }
    }
}

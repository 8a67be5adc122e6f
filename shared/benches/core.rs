//! Core throughput, one thread: envelope decode, the seed's Starlark fold (one heap per
//! batch) and the native fold, in events per second per core, each also as a ratio to a
//! baseline measured in the same process (serde_json into an owned `Value`), because
//! these machines are noisy and absolute figures drift.
//!
//! Envelope decoding (`Envelope::decode`: refold's nesting pre-check, sonic-rs's `Value`,
//! the field checks) is measured against maintained parsers on the same corpus in the same
//! run: whole-document trees (sonic-rs's `Value` alone, `simd-json`'s `BorrowedValue`) and
//! typed borrowed envelopes (serde_json, sonic-rs and simd-json into a
//! `#[derive(Deserialize)]` struct of `Cow<str>` fields, `data` left raw or parsed), each
//! with the checks `Envelope::decode` makes. serde_json is built here with
//! `arbitrary_precision` (starlark turns it on), which slows its `Value`, not typed
//! deserialization. sonic-rs uses its SIMD paths on x86_64 only when built with AVX2 and
//! PCLMULQDQ (`-C target-cpu=...`); NEON is always on for aarch64 (the Lambda target).
//!
//! `cargo bench --workspace --bench core` (REFOLD_BENCH_SECONDS to change the run length).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use refold::envelope::{Envelope, MAX_ID_BYTES, parse_rfc3339_us};
use refold::fold::native::OrderFold;
use refold::fold::{Fold, FoldProgram, KeyEvents};
use refold::json;
use refold::pipeline::{self, FoldSource};
use serde::Deserialize;
use sonic_rs::JsonValueTrait;

/// Runs `f` (which processes `per_call` events) repeatedly for about `budget`; the median of
/// the per-call rates, in events/s.
fn rate(budget: Duration, per_call: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut rates = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || rates.len() < 5 {
        let t = Instant::now();
        f();
        rates.push(per_call as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// An envelope decoded by serde into borrowed fields; `D` is how `data` and `metadata`
/// come out (raw text, a lazy value, or a parsed tree). Duplicate fields are an error and
/// unknown ones are ignored, as in `Envelope::decode`.
#[derive(Deserialize)]
struct Typed<'a, D> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    entity_type: Cow<'a, str>,
    #[serde(borrow)]
    entity_id: Cow<'a, str>,
    #[serde(borrow)]
    tenant_id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    version: i64,
    data: D,
    /// Parsed (and so checked), never read.
    #[allow(dead_code)]
    metadata: Option<D>,
}

impl<D> Typed<'_, D> {
    /// The checks `Envelope::decode` makes; `data_is_object` is checked by the caller,
    /// the way its crate allows. Returns the timestamp in microseconds.
    fn validate(&self, data_is_object: bool) -> Option<i64> {
        let ids = [
            &self.event_id,
            &self.event_type,
            &self.entity_type,
            &self.entity_id,
            &self.tenant_id,
            &self.timestamp,
        ];
        let ids_ok = ids.iter().all(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES);
        (ids_ok && self.version >= 1 && data_is_object)
            .then(|| parse_rfc3339_us(&self.timestamp).ok())
            .flatten()
    }
}

fn main() {
    let seconds: f64 = std::env::var("REFOLD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text =
        std::fs::read_to_string(root.join("events/orders.jsonl")).expect("events/orders.jsonl");
    let lines: Vec<&[u8]> = text
        .lines()
        .map(str::as_bytes)
        .filter(|l| Envelope::decode(l).is_ok())
        .collect();
    let n = lines.len();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "input: {n} envelopes from events/orders.jsonl, {} bytes each on average",
        bytes / n
    );

    let baseline = rate(budget, n, || {
        for l in &lines {
            black_box(serde_json::from_slice::<serde_json::Value>(l).expect("json"));
        }
    });
    let decode = rate(budget, n, || {
        for l in &lines {
            black_box(Envelope::decode(l).expect("valid"));
        }
    });
    let parsers = json_parsers(budget, &lines);
    // What a batch reads of each envelope (filter, key, group, last event).
    let decoded: Vec<Envelope> = lines
        .iter()
        .map(|l| Envelope::decode(l).expect("valid"))
        .collect();
    let reads = rate(budget, n, || {
        for e in &decoded {
            black_box((
                e.event_type(),
                e.key("order_id").expect("key"),
                e.tenant_id(),
                e.event_id(),
                e.timestamp_us(),
            ));
        }
    });

    // Fold inputs: the stream grouped by (tenant, key) as a batch would be.
    let envelopes: Vec<Envelope> = lines
        .iter()
        .map(|l| Envelope::decode(l).expect("valid"))
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&Envelope>> = BTreeMap::new();
    for e in &envelopes {
        groups
            .entry((e.tenant_id().to_owned(), e.entity_id().to_owned()))
            .or_default()
            .push(e);
    }
    let keys: Vec<KeyEvents> = groups
        .values()
        .map(|events| KeyEvents {
            prior: None,
            events,
        })
        .collect();

    let env = |name: &str| (name == "KAFKA_CONNECTION").then(|| "bench:9092".to_owned());
    let seed = std::fs::read_to_string(root.join("pipelines/order-events-pipeline.yaml"))
        .expect("seed pipeline");
    let pipeline = pipeline::parse(&seed, "order-events-pipeline.yaml", &env)
        .into_pipeline()
        .expect("valid");
    let t = pipeline.transformation();
    let star = FoldProgram::compile(&t.fold, &t.limits).expect("compiles");
    let native = FoldProgram::compile(
        &FoldSource::Native {
            name: "order".into(),
        },
        &t.limits,
    )
    .expect("native");

    let star_rate = rate(budget, n, || {
        black_box(star.fold_keys(&keys));
    });
    let native_engine = rate(budget, n, || {
        black_box(native.fold_keys(&keys));
    });
    let native_apply = rate(budget, n, || {
        for events in groups.values() {
            let mut s = <OrderFold as Fold>::State::default();
            for e in events {
                OrderFold.apply(&mut s, e).expect("folds");
            }
            black_box(&s);
        }
    });

    let row = |name: &str, r: f64, target: f64| {
        let verdict = if r >= target { "meets" } else { "BELOW" };
        println!(
            "{name:<44} {:>8.2} M events/s  {:>6.2}x baseline  ({verdict} target {:.1} M/s)",
            r / 1e6,
            r / baseline,
            target / 1e6
        );
    };
    println!(
        "{:<44} {:>8.2} M events/s  {:>6.2}x baseline",
        "baseline: serde_json -> owned Value",
        baseline / 1e6,
        1.0
    );
    row("envelope decode + validate", decode, 1.0e6);
    println!(
        "{:<44} {:>8.2} M events/s  {:>6.2}x baseline",
        "envelope reads (type, key, tenant, id, time)",
        reads / 1e6,
        reads / baseline
    );
    println!("JSON parsers on the same envelopes (whole document, then typed + validated):");
    // Each group's first row is refold's own.
    let mut refold_rate = 0.0;
    for (name, r) in &parsers {
        if name
            .split_once(": ")
            .is_some_and(|(_, who)| who.starts_with("refold"))
        {
            refold_rate = *r;
        }
        println!(
            "  {name:<66} {:>7.2} M events/s  {:>5.2}x baseline  {:>5.2}x refold",
            r / 1e6,
            r / baseline,
            r / refold_rate
        );
    }
    row("Starlark seed fold (one heap per batch)", star_rate, 1.5e6);
    // Includes reading and writing each key's state as JSON (once per key), so no target.
    println!(
        "{:<44} {:>8.2} M events/s  {:>6.2}x baseline",
        "native fold (engine: JSON state per key)",
        native_engine / 1e6,
        native_engine / baseline
    );
    row(
        "native fold (OrderFold::apply, typed state)",
        native_apply,
        10.0e6,
    );
}

/// The JSON parser comparison: each row's events/s. `lines` are valid envelopes.
fn json_parsers(budget: Duration, lines: &[&[u8]]) -> Vec<(&'static str, f64)> {
    let n = lines.len();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let is_object = |t: &str| t.starts_with('{');

    // Whole documents into a tree a fold can read.
    out.push((
        "tree: refold json::parse (bound, sonic-rs Value, -0 check)",
        rate(budget, n, || {
            for l in lines {
                black_box(json::parse(l).expect("json"));
            }
        }),
    ));
    out.push((
        "tree: sonic-rs from_slice -> sonic_rs::Value",
        rate(budget, n, || {
            for l in lines {
                black_box(sonic_rs::from_slice::<sonic_rs::Value>(l).expect("json"));
            }
        }),
    ));
    out.push((
        "tree: sonic-rs depth pre-scan + sonic_rs::Value",
        rate(budget, n, || {
            for l in lines {
                assert!(json::nesting_within(l, json::MAX_DEPTH));
                black_box(sonic_rs::from_slice::<sonic_rs::Value>(l).expect("json"));
            }
        }),
    ));
    out.push((
        "tree: simd-json to_borrowed_value (copy + parse)",
        rate(budget, n, || {
            for l in lines {
                buf.clear();
                buf.extend_from_slice(l);
                black_box(simd_json::to_borrowed_value(&mut buf).expect("json"));
            }
        }),
    ));
    let mut buffers = simd_json::Buffers::default();
    out.push((
        "tree: simd-json to_borrowed_value_with_buffers (copy + parse)",
        rate(budget, n, || {
            for l in lines {
                buf.clear();
                buf.extend_from_slice(l);
                black_box(
                    simd_json::to_borrowed_value_with_buffers(&mut buf, &mut buffers)
                        .expect("json"),
                );
            }
        }),
    ));

    // Envelopes, validated like Envelope::decode.
    out.push((
        "envelope: refold Envelope::decode (sonic-rs Value, data parsed)",
        rate(budget, n, || {
            for l in lines {
                black_box(Envelope::decode(l).expect("valid"));
            }
        }),
    ));
    out.push((
        "envelope: sonic-rs pre-scan + Value, fields found + validated",
        rate(budget, n, || {
            for l in lines {
                assert!(json::nesting_within(l, json::MAX_DEPTH));
                let v: sonic_rs::Value = sonic_rs::from_slice(l).expect("json");
                black_box(sonic_envelope(&v).expect("valid"));
                black_box(&v);
            }
        }),
    ));
    out.push((
        "envelope: serde_json typed borrowed, data &RawValue (unparsed)",
        rate(budget, n, || {
            for l in lines {
                let e: Typed<&serde_json::value::RawValue> =
                    serde_json::from_slice(l).expect("json");
                black_box(e.validate(is_object(e.data.get())).expect("valid"));
                black_box(&e);
            }
        }),
    ));
    out.push((
        "envelope: sonic-rs typed borrowed, data LazyValue (unparsed)",
        rate(budget, n, || {
            for l in lines {
                let e: Typed<sonic_rs::LazyValue> = sonic_rs::from_slice(l).expect("json");
                black_box(e.validate(is_object(e.data.as_raw_str())).expect("valid"));
                black_box(&e);
            }
        }),
    ));
    out.push((
        "envelope: sonic-rs pre-scan + typed borrowed, data sonic Value",
        rate(budget, n, || {
            for l in lines {
                assert!(json::nesting_within(l, json::MAX_DEPTH));
                let e: Typed<sonic_rs::Value> = sonic_rs::from_slice(l).expect("json");
                black_box(e.validate(e.data.is_object()).expect("valid"));
                black_box(&e);
            }
        }),
    ));
    out.push((
        "envelope: simd-json typed borrowed, data BorrowedValue (copy)",
        rate(budget, n, || {
            for l in lines {
                buf.clear();
                buf.extend_from_slice(l);
                let e: Typed<simd_json::BorrowedValue> =
                    simd_json::serde::from_slice(&mut buf).expect("json");
                let data_is_object = matches!(e.data, simd_json::BorrowedValue::Object(_));
                black_box(e.validate(data_is_object).expect("valid"));
                black_box(&e);
            }
        }),
    ));
    out
}

/// The envelope's fields out of a sonic-rs object, checked as `Envelope::decode` checks
/// them (a field twice is an error, unknown fields are ignored); the timestamp in
/// microseconds.
fn sonic_envelope(v: &sonic_rs::Value) -> Option<i64> {
    use sonic_rs::JsonContainerTrait;
    let mut found: [Option<&sonic_rs::Value>; 9] = [None; 9];
    for (k, v) in v.as_object()?.iter() {
        if let Some(i) = refold::envelope::FIELDS.iter().position(|f| *f == k)
            && found[i].replace(v).is_some()
        {
            return None;
        }
    }
    let [
        event_id,
        event_type,
        entity_type,
        entity_id,
        tenant_id,
        timestamp,
        version,
        data,
        metadata,
    ] = found;
    for id in [
        event_id,
        event_type,
        entity_type,
        entity_id,
        tenant_id,
        timestamp,
    ] {
        let s = id?.as_str()?;
        if s.is_empty() || s.len() > MAX_ID_BYTES {
            return None;
        }
    }
    let version_ok = version?.as_i64().is_some_and(|v| v >= 1);
    let metadata_ok = metadata.is_none_or(|m| m.is_object() || m.is_null());
    (version_ok && data?.is_object() && metadata_ok)
        .then(|| parse_rfc3339_us(timestamp?.as_str()?).ok())
        .flatten()
}

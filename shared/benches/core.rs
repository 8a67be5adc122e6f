//! Core throughput, one thread: envelope decode, the seed's Starlark fold (one heap per
//! batch) and the native fold, in events per second per core, each also as a ratio to a
//! baseline measured in the same process (serde_json into an owned `Value`), because
//! these machines are noisy and absolute figures drift.
//!
//! `cargo bench -p refold --bench core` (REFOLD_BENCH_SECONDS to change the run length).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use refold::envelope::Envelope;
use refold::fold::native::OrderFold;
use refold::fold::{Fold, FoldProgram, KeyEvents};
use refold::pipeline::{self, FoldSource};

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

    // Fold inputs: the stream grouped by (tenant, key) as a batch would be.
    let envelopes: Vec<Envelope> = lines
        .iter()
        .map(|l| Envelope::decode(l).expect("valid"))
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&Envelope>> = BTreeMap::new();
    for e in &envelopes {
        groups
            .entry((e.tenant_id.to_string(), e.entity_id.to_string()))
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
    row("envelope decode + validate (borrowed)", decode, 1.0e6);
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

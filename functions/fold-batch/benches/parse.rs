//! The ESM event's parse: fold-batch's `parse_layer` against lambda_runtime 1.5's own
//! (serde_json under serde_path_to_error, which `parse_layer` runs ahead of), on the
//! repository's 10,000-record payload, alternated in one process.
//!
//! `cargo bench -p fold-batch --bench parse`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use fold_batch::esm::EsmEvent;
use fold_batch::parse_layer::parse_body;

const ROUNDS: usize = 21;

fn runtime_parse(body: &[u8]) -> EsmEvent {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).unwrap()
}

fn ms(f: impl FnOnce() -> EsmEvent) -> f64 {
    let t = Instant::now();
    let event = std::hint::black_box(f());
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(event);
    ms
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/esm/orders-batch.json"
    );
    let body = std::fs::read(path).expect("events/esm/orders-batch.json");
    let records: usize = parse_body(&body)
        .unwrap()
        .records
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(
        parse_body(&body).unwrap(),
        runtime_parse(&body),
        "the same event"
    );
    let (mut ours, mut runtime) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        runtime.push(ms(|| runtime_parse(&body)));
        ours.push(ms(|| parse_body(&body).unwrap()));
    }
    let (ours, runtime) = (median(ours), median(runtime));
    println!(
        "ESM event of {records} records, {} bytes, median of {ROUNDS} alternated rounds",
        body.len()
    );
    println!("lambda_runtime's parse (baseline): {runtime:.2} ms");
    println!(
        "parse_layer's parse: {ours:.2} ms, {:.2}x faster",
        runtime / ours
    );
    // The line `make bench` records (scripts/bench.sh).
    println!(
        "{{\"what\":\"parse\",\"records\":{records},\"bytes\":{},\"rounds\":{ROUNDS},\"ours_ms\":{ours:.3},\"runtime_ms\":{runtime:.3}}}",
        body.len()
    );
}

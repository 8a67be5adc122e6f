//! Property: random event streams cut into random batches, delivered with duplicates,
//! redeliveries, overlapping redeliveries, concurrent writers on several partitions, crashes
//! between file write and commit, and concurrent compactions, end as the sequential fold of
//! the stream; no committed offset ever goes backwards (checked after every step and over the
//! whole snapshot history).
//!
//! Cases: `PROPTEST_CASES` (default 16 here; each case is a fresh table).
#![allow(clippy::unwrap_used)]

mod table_support;

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;
use refold::table::{FaultPoint, StateTable, TableLimits};
use table_support::*;

#[derive(Debug, Clone)]
struct Scenario {
    /// Per partition: (tenant index, key index, value) in offset order.
    partitions: Vec<Vec<(u8, u8, i64)>>,
    /// Batch sizes used to cut each partition's stream (cycled).
    cuts: Vec<usize>,
    /// Drives the delivery schedule.
    choices: Vec<u8>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(
            prop::collection::vec((0u8..2, 0u8..5, -50i64..50), 0..30),
            1..4,
        ),
        prop::collection::vec(1usize..9, 1..6),
        prop::collection::vec(any::<u8>(), 16..64),
    )
        .prop_map(|(partitions, cuts, choices)| Scenario {
            partitions,
            cuts,
            choices,
        })
}

#[derive(Debug, Clone)]
enum Call {
    Merge(Vec<Ev>),
    Crash(Vec<Ev>),
    Compact,
}

async fn run(s: Scenario) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "prop");
    // The third writer keeps no key index, so lookups through the index (warm across
    // merges, other writers' files included) and by key columns both meet the model.
    let no_index = TableLimits {
        max_indexed_rows: 0,
        ..TableLimits::default()
    };
    let writers = [
        StateTable::open_or_create(cfg.clone()).await.unwrap(),
        StateTable::open_or_create(cfg.clone()).await.unwrap(),
        StateTable::open_or_create(cfg.clone())
            .await
            .unwrap()
            .with_limits(no_index),
    ];
    let crasher = StateTable::open_or_create(cfg.clone()).await.unwrap();

    let mut stream = vec![];
    let mut queues: Vec<VecDeque<Vec<Ev>>> = vec![];
    for (p, evs) in s.partitions.iter().enumerate() {
        let evs: Vec<Ev> = evs
            .iter()
            .enumerate()
            .map(|(o, (t, k, v))| {
                ev(
                    &format!("t{t}"),
                    &format!("p{p}-k{k}"),
                    p as i32,
                    o as i64,
                    *v,
                )
            })
            .collect();
        stream.extend(evs.clone());
        let mut q = VecDeque::new();
        let mut rest = &evs[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = s.cuts[i % s.cuts.len()].min(rest.len());
            q.push_back(rest[..n].to_vec());
            rest = &rest[n..];
            i += 1;
        }
        queues.push(q);
    }
    let mut delivered: Vec<Vec<Ev>> = vec![];
    let mut choice = s.choices.iter().copied().cycle();
    let mut last_offsets: BTreeMap<i32, i64> = BTreeMap::new();

    let mut steps = 0;
    while queues.iter().any(|q| !q.is_empty()) {
        steps += 1;
        let mut calls: Vec<Call> = vec![];
        let mut crashed = false; // one crash per step: the crashing handle has one fault slot
        for q in queues.iter_mut() {
            if q.is_empty() || choice.next().unwrap() % 3 == 0 {
                continue;
            }
            let b = q.front().cloned().unwrap();
            match choice.next().unwrap() % 10 {
                0 if steps < 40 && !crashed => {
                    crashed = true;
                    calls.push(Call::Crash(b)); // stays queued: delivered again later
                }
                1 => {
                    q.pop_front();
                    calls.push(Call::Merge(b.clone()));
                    calls.push(Call::Merge(b.clone()));
                    delivered.push(b);
                }
                2 => {
                    q.pop_front();
                    let prev = delivered
                        .iter()
                        .rev()
                        .find(|d| d[0].partition == b[0].partition)
                        .cloned();
                    let mut joined = prev.unwrap_or_default();
                    joined.extend(b.clone());
                    calls.push(Call::Merge(joined));
                    delivered.push(b);
                }
                _ => {
                    q.pop_front();
                    calls.push(Call::Merge(b.clone()));
                    delivered.push(b);
                }
            }
        }
        let c = choice.next().unwrap();
        if c % 5 == 0 && !delivered.is_empty() {
            calls.push(Call::Merge(delivered[c as usize % delivered.len()].clone()));
        }
        if c % 7 == 0 {
            calls.push(Call::Compact);
        }
        if calls.is_empty() {
            let q = queues.iter_mut().find(|q| !q.is_empty()).unwrap();
            let b = q.pop_front().unwrap();
            calls.push(Call::Merge(b.clone()));
            delivered.push(b);
        }
        let futs = calls.iter().enumerate().map(|(i, call)| {
            let w = &writers[i % writers.len()];
            let crasher = &crasher;
            async move {
                match call {
                    Call::Merge(b) => merge(w, b)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("merge failed: {e}")),
                    Call::Crash(b) => {
                        crasher.inject_fault(FaultPoint::AfterFilesWritten);
                        match merge(crasher, b).await {
                            Err(e) if e.to_string().contains("injected fault") => Ok(()),
                            other => Err(format!("crash injection did not crash: {other:?}")),
                        }
                    }
                    Call::Compact => w
                        .compact(None)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("compact failed: {e}")),
                }
            }
        });
        for r in futures::future::join_all(futs).await {
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
        let now = writers[0].committed_offsets().await.unwrap();
        for (p, o) in &last_offsets {
            prop_assert!(
                now.get(p).is_some_and(|n| n >= o),
                "offset of {p} went from {o} to {:?}",
                now.get(p)
            );
        }
        last_offsets = now;
    }
    // Everything once more: all no-ops.
    for b in &delivered {
        let out = merge(&writers[1], b).await.unwrap();
        prop_assert!(out.already_applied, "redelivery applied again: {out:?}");
    }

    let want = reference(&stream);
    let got = by_id(writers[2].current_rows(None, None).await.unwrap());
    prop_assert_eq!(&got, &want);
    prop_assert_eq!(iceberg_scan(&writers[0]).await, summarize(&want));
    let ends: BTreeMap<i32, i64> = s
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_empty())
        .map(|(p, e)| (p as i32, e.len() as i64))
        .collect();
    prop_assert_eq!(writers[0].committed_offsets().await.unwrap(), ends);

    // The whole history, oldest first along main: offsets never go backwards.
    let table = writers[0].iceberg_table().await.unwrap();
    let md = table.metadata();
    let key = OFFSETS_KEY;
    let mut chain = vec![];
    let mut cur = md.current_snapshot().cloned();
    while let Some(snap) = cur {
        chain.push(snap.clone());
        cur = snap
            .parent_snapshot_id()
            .and_then(|id| md.snapshot_by_id(id).cloned());
    }
    chain.reverse();
    let mut prev: BTreeMap<i32, i64> = BTreeMap::new();
    for snap in chain {
        let Some(v) = snap.summary().additional_properties.get(key) else {
            continue;
        };
        let m: BTreeMap<String, i64> = serde_json::from_str(v).unwrap();
        let m: BTreeMap<i32, i64> = m
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v))
            .collect();
        for (p, o) in &prev {
            prop_assert!(
                m.get(p).is_some_and(|n| n >= o),
                "snapshot {}: offset {p} {o} -> {:?}",
                snap.snapshot_id(),
                m.get(p)
            );
        }
        prev = m;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn merges_equal_the_sequential_fold(s in scenario()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(s))?;
    }
}

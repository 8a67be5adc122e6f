//! PyIceberg (0.12, `SqlCatalog`, the pyarrow reader) reads refold's tables back and gets
//! exactly the rows refold wrote: after upserts (position deletes), after compaction, and
//! after upserts into compacted files. Needs `REFOLD_PYTHON` (see `tests/py/venv.sh`); fails,
//! never skips, without it.
#![allow(clippy::unwrap_used)]

mod table_support;

use refold::table::StateTable;
use table_support::*;

fn check(dir: &std::path::Path, stream: &[Ev], offsets: &str) {
    let expect = dir.join("expect.jsonl");
    write_expected(&expect, &reference(stream));
    let d = dir.display().to_string();
    py_check(&[
        "--uri",
        &format!("sqlite:///{d}/catalog.db"),
        "--warehouse",
        &format!("file://{d}"),
        "--table",
        "domain.orders.current_state",
        "--expect",
        expect.to_str().unwrap(),
        "--offsets",
        offsets,
        "--offsets-key",
        OFFSETS_KEY,
    ]);
}

#[tokio::test]
async fn pyiceberg_reads_exactly_what_refold_wrote() {
    let _ = python(); // fail first and clearly if the venv is missing
    let dir = tempfile::tempdir().unwrap();
    let t = StateTable::open_or_create(config(dir.path(), "current_state"))
        .await
        .unwrap();
    let tenants = ["acme", "globex", "initech"];
    let mut stream = vec![];
    let mut next = [0i64; 2];
    for round in 0..5i64 {
        for p in 0..2i32 {
            let batch: Vec<Ev> = (0..40i64)
                .map(|i| {
                    let o = next[p as usize];
                    next[p as usize] += 1;
                    let k = (i * 7 + round * 3) % 25;
                    ev(
                        tenants[(i % 3) as usize],
                        &format!("order-{p}-{k:03}"),
                        p,
                        o,
                        round * 100 + i,
                    )
                })
                .collect();
            merge(&t, &batch).await.unwrap();
            stream.extend(batch);
        }
    }
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    check(dir.path(), &stream, r#"{"0": 200, "1": 200}"#);

    let out = t.compact(None).await.unwrap();
    assert_eq!(out.partitions_compacted, vec![0, 1]);
    check(dir.path(), &stream, r#"{"0": 200, "1": 200}"#);

    let batch: Vec<Ev> = (0..10i64)
        .map(|i| ev("acme", &format!("order-0-{:03}", i * 2), 0, 200 + i, -i))
        .collect();
    merge(&t, &batch).await.unwrap();
    stream.extend(batch);
    check(dir.path(), &stream, r#"{"0": 210, "1": 200}"#);
}

//! Commit conflicts on the SQL catalog, on SQLite and on PostgreSQL (`REFOLD_PG_URL`, e.g.
//! from `eval "$(scripts/pg.sh start)"`; the test fails, never skips, without it).
//!
//! Deterministic interleavings: the fold closure runs inside `merge_batch` between its lookup
//! and its commit, so a closure that commits through another handle makes the merge lose its
//! compare-and-set exactly there.
#![allow(clippy::unwrap_used)]

mod table_support;

use std::cell::Cell;
use std::collections::BTreeMap;

use refold::error::ErrorKind;
use refold::table::{CatalogConfig, StateTable, StorageConfig, TableConfig, TableLimits};
use table_support::*;

async fn conflicts(cfg: TableConfig) {
    let open = || StateTable::open_or_create(cfg.clone());
    let a = open().await.unwrap();
    let b = open().await.unwrap();
    let mut stream = vec![];

    // 1. Writers on different partitions, all at once: every batch lands.
    let writers = futures::future::join_all((0..4).map(|_| open())).await;
    let writers: Vec<StateTable> = writers.into_iter().map(Result::unwrap).collect();
    let per_partition: Vec<Vec<Vec<Ev>>> = (0..4)
        .map(|p| {
            (0..6)
                .map(|i| {
                    (0..3)
                        .map(|j| {
                            ev(
                                "acme",
                                &format!("p{p}-k{j}"),
                                p,
                                i * 3 + j as i64,
                                i * 10 + j as i64,
                            )
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let runs = writers
        .iter()
        .zip(&per_partition)
        .map(|(w, batches)| async move {
            let mut attempts = 0;
            for b in batches {
                attempts += merge(w, b).await.unwrap().attempts;
            }
            attempts
        });
    let attempts: u32 = futures::future::join_all(runs).await.into_iter().sum();
    println!("concurrent partitions: 24 merges took {attempts} attempts");
    for batches in &per_partition {
        stream.extend(batches.iter().flatten().cloned());
    }
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    assert_eq!(
        a.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 18), (1, 18), (2, 18), (3, 18)])
    );

    // 2. The same batch by two invocations at once: folded once.
    let dup = vec![
        ev("acme", "p0-k0", 0, 18, 1),
        ev("globex", "p0-k9", 0, 19, 2),
    ];
    let (r1, r2) = tokio::join!(merge(&a, &dup), merge(&b, &dup));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(
        u8::from(r1.already_applied) + u8::from(r2.already_applied),
        1,
        "{r1:?} {r2:?}"
    );
    stream.extend(dup.clone());
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );

    // 3. Another partition commits between lookup and commit: re-based, not re-folded.
    let other = vec![ev("acme", "p1-k0", 1, 18, 5)];
    let mine = vec![ev("acme", "p2-k0", 2, 18, 6)];
    let calls = Cell::new(0);
    let out = a
        .merge_batch(2, &keys_of(&mine), async |c, priors| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                merge(&b, &other).await.unwrap();
            }
            folder(&mine)(c, priors).await
        })
        .await
        .unwrap();
    assert_eq!(
        (calls.get(), out.attempts, out.rows_deleted),
        (1, 2, 1),
        "{out:?}"
    );
    stream.extend(other);
    stream.extend(mine);
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );

    // 4. The same batch commits in between (a redelivery racing): re-folded, already applied.
    let batch = vec![ev("acme", "p3-k1", 3, 18, 7), ev("acme", "p3-k2", 3, 19, 8)];
    let calls = Cell::new(0);
    let out = a
        .merge_batch(3, &keys_of(&batch), async |c, priors| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                merge(&b, &batch).await.unwrap();
            }
            folder(&batch)(c, priors).await
        })
        .await
        .unwrap();
    assert!(
        out.already_applied && calls.get() == 2 && out.attempts == 2,
        "{out:?}"
    );
    stream.extend(batch);
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );

    // 5. A compaction in between moves the rows the deletes point at: re-folded on the new files.
    let batch = vec![
        ev("acme", "p0-k1", 0, 20, 9),
        ev("acme", "p0-k2", 0, 21, 10),
    ];
    let calls = Cell::new(0);
    let out = a
        .merge_batch(0, &keys_of(&batch), async |c, priors| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                let done = b.compact(Some(0)).await.unwrap();
                assert_eq!(done.partitions_compacted, vec![0]);
            }
            folder(&batch)(c, priors).await
        })
        .await
        .unwrap();
    assert_eq!(
        (calls.get(), out.attempts, out.rows_deleted),
        (2, 2, 2),
        "{out:?}"
    );
    stream.extend(batch);
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    assert_eq!(iceberg_scan(&a).await, summarize(&reference(&stream)));

    // 6. Out of attempts: a CommitConflict error, nothing committed.
    let tight = open().await.unwrap().with_limits(TableLimits {
        max_commit_attempts: 1,
        ..TableLimits::default()
    });
    let batch = vec![ev("acme", "p1-k1", 1, 19, 11)];
    let before = a.committed_offsets().await.unwrap();
    let err = tight
        .merge_batch(1, &keys_of(&batch), async |c, priors| {
            merge(&b, &[ev("acme", "p2-k1", 2, 19, 12)]).await.unwrap();
            folder(&batch)(c, priors).await
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CommitConflict, "{err}");
    assert!(err.to_string().contains("max_commit_attempts=1"), "{err}");
    let after = a.committed_offsets().await.unwrap();
    assert_eq!(
        after.get(&1),
        before.get(&1),
        "the lost merge committed nothing"
    );
    assert_eq!(after.get(&2), Some(&20));

    // 7. A compaction that loses to a merge of its partition starts over on the new files.
    let batch = vec![ev("acme", "p3-k0", 3, 20, 13)];
    let (m, c) = tokio::join!(merge(&b, &batch), a.compact(Some(3)));
    m.unwrap();
    c.unwrap();
    stream.extend(batch);
    stream.push(ev("acme", "p2-k1", 2, 19, 12));
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    assert_eq!(iceberg_scan(&a).await, summarize(&reference(&stream)));

    // 8. The next merge starts from the base `prefetch` read: with no writer in between, one
    // attempt; when another writer moved the pointer past it, the swap on that base is lost
    // and the retry reads the pointer again (two attempts, the rows of both writers).
    let batch = vec![ev("acme", "p3-k4", 3, 21, 14)];
    a.prefetch(3).await;
    assert_eq!(merge(&a, &batch).await.unwrap().attempts, 1);
    stream.extend(batch);
    let batch = vec![ev("acme", "p3-k5", 3, 22, 15)];
    let other = vec![ev("acme", "p1-k6", 1, 19, 16)];
    a.prefetch(3).await;
    merge(&b, &other).await.unwrap();
    assert_eq!(merge(&a, &batch).await.unwrap().attempts, 2);
    stream.extend(other);
    stream.extend(batch);
    assert_eq!(
        by_id(a.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    // A prefetch of another partition is not a base for this one.
    let batch = vec![ev("acme", "p3-k6", 3, 23, 17)];
    a.prefetch(1).await;
    merge(&b, &[ev("acme", "p1-k7", 1, 20, 18)]).await.unwrap();
    assert_eq!(merge(&a, &batch).await.unwrap().attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_catalog() {
    let dir = tempfile::tempdir().unwrap();
    conflicts(config(dir.path(), "conflicts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalog() {
    let url = std::env::var("REFOLD_PG_URL").unwrap_or_else(|_| {
        panic!("REFOLD_PG_URL is not set: start the private PostgreSQL with `eval \"$(scripts/pg.sh start)\"`")
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        &format!("conflicts_{}", uuid::Uuid::new_v4().simple()),
    );
    cfg.catalog = CatalogConfig::Sql {
        uri: url,
        warehouse: format!("file://{}", dir.path().display()),
        catalog_name: "refold".into(),
        storage: StorageConfig::default(),
    };
    conflicts(cfg).await;
}

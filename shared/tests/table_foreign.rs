//! Other engines and other writers on refold's tables: a foreign rewrite plus snapshot expiry
//! (PyIceberg standing in for OPTIMIZE + VACUUM) must not lose the committed offsets; an
//! unambiguous offsets key per (topic, group); failing closed where nothing says where a group
//! stands; a second writer's row in the merged partition between plan and commit; the table's
//! owner. Needs PyIceberg (`REFOLD_PYTHON` or `$HOME/.cache/refold/venv`); fails, never skips,
//! without it.
#![allow(clippy::unwrap_used)]

mod table_support;

use std::cell::Cell;
use std::collections::BTreeMap;

use refold::error::ErrorKind;
use refold::table::{FoldedBatch, OWNER_PROPERTY, StateTable, TableConfig, offsets};
use table_support::*;

const TABLE: &str = "domain.orders.current_state";

async fn open(cfg: &TableConfig) -> StateTable {
    StateTable::open_or_create(cfg.clone()).await.unwrap()
}

/// Two partitions, a few batches each; returns the events merged.
async fn fill(t: &StateTable) -> Vec<Ev> {
    let mut stream = vec![];
    for round in 0..3i64 {
        for p in 0..2i32 {
            let batch: Vec<Ev> = (0..4i64)
                .map(|i| {
                    ev(
                        "acme",
                        &format!("p{p}-k{}", (i + round) % 5),
                        p,
                        round * 4 + i,
                        i,
                    )
                })
                .collect();
            merge(t, &batch).await.unwrap();
            stream.extend(batch);
        }
    }
    stream
}

fn snapshot_keys(table: &iceberg::table::Table) -> Vec<bool> {
    table
        .metadata()
        .snapshots()
        .map(|s| s.summary().additional_properties.contains_key(OFFSETS_KEY))
        .collect()
}

#[tokio::test]
async fn offsets_survive_a_foreign_rewrite_and_snapshot_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&config(dir.path(), "current_state")).await;
    let mut stream = fill(&t).await;
    let want_offsets = BTreeMap::from([(0, 12), (1, 12)]);
    assert_eq!(t.committed_offsets().await.unwrap(), want_offsets);
    assert_eq!(
        t.properties()
            .await
            .unwrap()
            .get(OFFSETS_KEY)
            .map(String::as_str),
        Some(r#"{"0":12,"1":12}"#),
        "the offsets are a table property too"
    );

    foreign(dir.path(), &["rewrite", "--table", TABLE]).await;
    let table = t.iceberg_table().await.unwrap();
    assert_eq!(
        snapshot_keys(&table),
        vec![false],
        "no snapshot left carries refold's offsets"
    );
    assert_eq!(t.committed_offsets().await.unwrap(), want_offsets);

    // A redelivery of the last batches is already applied; an overlapping one folds only
    // its new records.
    let again: Vec<Ev> = stream
        .iter()
        .filter(|e| e.partition == 0)
        .cloned()
        .collect();
    let out = merge(&t, &again[8..]).await.unwrap();
    assert!(out.already_applied, "{out:?}");
    let more = vec![
        ev("acme", "p0-k1", 0, 12, 50),
        ev("acme", "p0-k9", 0, 13, 51),
    ];
    let overlap: Vec<Ev> = again[10..].iter().chain(&more).cloned().collect();
    let out = merge(&t, &overlap).await.unwrap();
    assert!(!out.already_applied && out.rows_written == 2, "{out:?}");
    stream.extend(more);
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    assert_eq!(iceberg_scan(&t).await, summarize(&reference(&stream)));
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 14), (1, 12)])
    );
}

#[tokio::test]
async fn compaction_carries_every_offsets_entry() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&config(dir.path(), "current_state")).await;
    let mut stream = fill(&t).await;
    // Another group's map in the current snapshot (e.g. a table migrated between groups).
    let other = offsets::key("domain.orders.events", "old-projection");
    let b = vec![ev("acme", "p1-k0", 1, 12, 7)];
    let extra = BTreeMap::from([(other.clone(), r#"{"1":99}"#.to_string())]);
    t.merge_batch(1, &keys_of(&b), async |c, priors| {
        let mut f = folder(&b)(c, priors).await?;
        f.extra_summary = extra.clone();
        Ok(f)
    })
    .await
    .unwrap();
    stream.extend(b);

    let out = t.compact(None).await.unwrap();
    assert_eq!(out.partitions_compacted, vec![0, 1]);
    let table = t.iceberg_table().await.unwrap();
    let summary = &table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(
        summary.get(OFFSETS_KEY).map(String::as_str),
        Some(r#"{"0":12,"1":13}"#)
    );
    assert_eq!(summary.get(&other).map(String::as_str), Some(r#"{"1":99}"#));

    // When the current snapshot is another writer's (no refold keys), refold's compaction
    // writes this group's map back into the summary from the table property.
    merge(&t, &[ev("acme", "p0-k0", 0, 12, 8)]).await.unwrap();
    stream.push(ev("acme", "p0-k0", 0, 12, 8));
    let foreign_row = apply(None, &ev("acme", "p5-x", 5, 0, 1));
    foreign(
        dir.path(),
        &[
            "append-row",
            "--table",
            TABLE,
            "--row",
            &row_json(&foreign_row),
        ],
    )
    .await;
    t.compact(Some(0)).await.unwrap();
    let table = t.iceberg_table().await.unwrap();
    let s = table.metadata().current_snapshot().unwrap().summary();
    assert_eq!(s.operation, iceberg::spec::Operation::Replace);
    assert_eq!(
        s.additional_properties.get(OFFSETS_KEY).map(String::as_str),
        Some(r#"{"0":13,"1":13}"#)
    );
    let mut want = reference(&stream);
    want.insert(foreign_row.identity(), foreign_row);
    assert_eq!(by_id(t.current_rows(None, None).await.unwrap()), want);
}

#[tokio::test]
async fn offsets_keys_of_dotted_topics_and_groups_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let mut ab_c = config(dir.path(), "dotted");
    (ab_c.topic, ab_c.consumer_group) = ("a.b".into(), "c".into());
    let mut a_bc = ab_c.clone();
    (a_bc.topic, a_bc.consumer_group) = ("a".into(), "b.c".into());
    assert_ne!(offsets::key("a.b", "c"), offsets::key("a", "b.c"));

    let t = open(&ab_c).await;
    merge(&t, &[ev("acme", "k", 0, 4, 1)]).await.unwrap();
    let table = t.iceberg_table().await.unwrap();
    let md = table.metadata();
    let summary = &md
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(
        summary.get("refold.offsets.a.b/c").map(String::as_str),
        Some(r#"{"0":5}"#)
    );
    assert_eq!(
        offsets::read(md, "a.b", "c", 10).unwrap(),
        BTreeMap::from([(0, 5)])
    );
    // The other pair finds nothing of its own in this table: it fails closed.
    let err = offsets::read(md, "a", "b.c", 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // And it cannot write the table: the owner is the first pair.
    let err = StateTable::open_or_create(a_bc).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("`a.b/c`") && msg.contains("`a/b.c`"), "{msg}");
}

#[tokio::test]
async fn a_table_with_rows_but_no_offsets_anywhere_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "current_state");
    let t = open(&cfg).await;
    assert_eq!(t.committed_offsets().await.unwrap(), BTreeMap::new());
    let stream = fill(&t).await;
    foreign(
        dir.path(),
        &["rewrite", "--table", TABLE, "--drop-property", OFFSETS_KEY],
    )
    .await;
    let err = t.committed_offsets().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let err = merge(&t, &stream[..4]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    for part in [
        "domain.orders.current_state",
        "`domain.orders.events`",
        "`order-projection-v1`",
        OFFSETS_KEY,
        "Replay into a new table",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    // Nothing was folded again.
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writers_row_between_plan_and_commit_is_replaced_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(&config(dir.path(), "current_state")).await;
    let b1 = vec![ev("acme", "o1", 0, 0, 10), ev("acme", "o2", 0, 1, 20)];
    merge(&t, &b1).await.unwrap();

    // Another writer appends its own row for acme/o1 into partition 0 while the merge of the
    // next batch is between its lookup and its commit.
    let mut theirs = apply(None, &ev("acme", "o1", 0, 1, 500));
    theirs.events_folded = 40;
    let b2 = vec![ev("acme", "o1", 0, 2, 11)];
    let calls = Cell::new(0);
    let out = t
        .merge_batch(0, &keys_of(&b2), async |c, priors| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                foreign(
                    dir.path(),
                    &["append-row", "--table", TABLE, "--row", &row_json(&theirs)],
                )
                .await;
            }
            folder(&b2)(c, priors).await
        })
        .await
        .unwrap();
    assert_eq!((calls.get(), out.attempts), (2, 2), "{out:?}");
    assert_eq!(out.rows_deleted, 2, "ours and theirs replaced: {out:?}");
    // One live row per key (`by_id` and `iceberg_scan` panic on a second one); the newest
    // write (theirs) was the prior.
    let rows = by_id(t.current_rows(None, None).await.unwrap());
    let o1 = &rows[&("acme".to_string(), "o1".to_string())];
    assert_eq!((o1.events_folded, o1.last_offset), (41, 2));
    assert_eq!(rows.len(), 2);
    assert_eq!(iceberg_scan(&t).await.len(), 2);
}

#[tokio::test]
async fn the_owner_is_recorded_checked_and_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "current_state");
    cfg.properties = BTreeMap::from([("refold.keying".into(), "tenant+key".into())]);
    let t = open(&cfg).await;
    let props = t.properties().await.unwrap();
    assert_eq!(
        props.get(OWNER_PROPERTY).map(String::as_str),
        Some("domain.orders.events/order-projection-v1")
    );
    assert_eq!(
        props.get("refold.keying").map(String::as_str),
        Some("tenant+key")
    );
    merge(&t, &[ev("acme", "o1", 0, 0, 1)]).await.unwrap();

    let mut other = cfg.clone();
    other.consumer_group = "order-projection-v2".into();
    let err = StateTable::open_or_create(other.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("domain.orders.events/order-projection-v1")
            && msg.contains("domain.orders.events/order-projection-v2"),
        "{msg}"
    );

    // A table without an owner (made before owners, or by another tool) is adopted with a
    // properties-only commit: no new snapshot.
    foreign(
        dir.path(),
        &[
            "remove-properties",
            "--table",
            TABLE,
            OWNER_PROPERTY,
            "refold.keying",
        ],
    )
    .await;
    let snapshots = t
        .iceberg_table()
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .len();
    other.properties = BTreeMap::from([("refold.keying".into(), "key".into())]);
    let adopted = open(&other).await;
    let props = adopted.properties().await.unwrap();
    assert_eq!(
        props.get(OWNER_PROPERTY).map(String::as_str),
        Some("domain.orders.events/order-projection-v2")
    );
    assert_eq!(props.get("refold.keying").map(String::as_str), Some("key"));
    assert_eq!(
        adopted
            .iceberg_table()
            .await
            .unwrap()
            .metadata()
            .snapshots()
            .len(),
        snapshots
    );
    assert_eq!(
        StateTable::open_or_create(cfg).await.unwrap_err().kind(),
        ErrorKind::Config
    );
}

/// The merge future is `Send` (spawnable) with an async fold that owns its captures (an
/// `Arc` for state it shares with the caller). A fold capturing references is not provably
/// `Send` with rustc 1.95 (rust-lang/rust#139475, #138207): such a merge can be awaited, not
/// spawned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_with_an_async_fold_is_send() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::sync::Arc::new(open(&config(dir.path(), "send")).await);
    let dead_letters = std::sync::Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let (t2, dl) = (t.clone(), dead_letters.clone());
    let out = tokio::spawn(async move {
        let batch = vec![ev("acme", "o1", 0, 0, 1)];
        let keys = keys_of(&batch);
        t2.merge_batch(0, &keys, async move |c, priors| {
            tokio::task::yield_now().await; // e.g. writing dead letters before the commit
            dl.lock().unwrap().push(c);
            let id = ("acme".to_string(), "o1".to_string());
            Ok(FoldedBatch {
                rows: vec![apply(priors.get(&id), &batch[0])],
                next_offset: 1,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
    })
    .await
    .unwrap();
    assert_eq!(*dead_letters.lock().unwrap(), vec![-1]);
    assert_eq!(out.unwrap().rows_written, 1);
}

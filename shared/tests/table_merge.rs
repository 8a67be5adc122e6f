//! The state table on the embedded default (SQLite catalog, local files): upserts,
//! multi-tenant rows, redelivery, compaction, checkpoint tags, typed columns. Every check
//! compares with the sequential fold of the same events, read back both by refold and by
//! iceberg-rust's own scan (its position-delete handling, not ours).
#![allow(clippy::unwrap_used)]

mod table_support;

use std::collections::BTreeMap;

use refold::error::ErrorKind;
use refold::pipeline::ColumnType;
use refold::table::{StateColumns, StateTable};
use table_support::*;

async fn open(dir: &std::path::Path, name: &str) -> StateTable {
    StateTable::open_or_create(config(dir, name)).await.unwrap()
}

async fn assert_table(t: &StateTable, stream: &[Ev]) {
    let want = reference(stream);
    let got = by_id(t.current_rows(None, None).await.unwrap());
    assert_eq!(got, want, "refold's reader");
    assert_eq!(
        iceberg_scan(t).await,
        summarize(&want),
        "iceberg-rust's scan"
    );
}

#[tokio::test]
async fn upserts_keep_one_row_per_tenant_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "upserts").await;
    let b1 = vec![
        ev("acme", "o1", 0, 0, 10),
        ev("acme", "o2", 0, 1, 20),
        ev("globex", "o1", 0, 2, 30),
    ];
    let r1 = merge(&t, &b1).await.unwrap();
    assert_eq!(
        (r1.rows_written, r1.rows_deleted, r1.already_applied),
        (3, 0, false)
    );
    assert_table(&t, &b1).await;

    // o1 of acme twice in one batch, o1 of globex untouched, a new key.
    let b2 = vec![
        ev("acme", "o1", 0, 3, 11),
        ev("acme", "o3", 0, 4, 40),
        ev("acme", "o1", 0, 5, 12),
    ];
    let r2 = merge(&t, &b2).await.unwrap();
    assert_eq!((r2.rows_written, r2.rows_deleted), (2, 1));
    let stream: Vec<Ev> = b1.iter().chain(&b2).cloned().collect();
    assert_table(&t, &stream).await;

    let rows = by_id(t.current_rows(None, None).await.unwrap());
    let acme_o1 = &rows[&("acme".to_string(), "o1".to_string())];
    assert_eq!(
        (
            acme_o1.state.to_value()["count"].as_i64(),
            acme_o1.state.to_value()["last"].as_i64()
        ),
        (Some(3), Some(12))
    );
    let globex_o1 = &rows[&("globex".to_string(), "o1".to_string())];
    assert_eq!(
        (
            globex_o1.state.to_value()["count"].as_i64(),
            globex_o1.state.to_value()["last"].as_i64()
        ),
        (Some(1), Some(30))
    );

    // Filters of `refold state`.
    let acme = t.current_rows(Some("acme"), None).await.unwrap();
    assert_eq!(
        acme.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["o1", "o2", "o3"]
    );
    let o1 = t.current_rows(None, Some("o1")).await.unwrap();
    assert_eq!(
        o1.iter().map(|r| r.tenant_id.as_str()).collect::<Vec<_>>(),
        ["acme", "globex"]
    );
    assert_eq!(
        t.current_rows(Some("globex"), Some("o2")).await.unwrap(),
        vec![]
    );

    // Upserting again: the live version is now in the second batch's file.
    let b3 = vec![ev("acme", "o1", 0, 6, 13), ev("globex", "o1", 0, 7, 31)];
    assert_eq!(merge(&t, &b3).await.unwrap().rows_deleted, 2);
    let stream: Vec<Ev> = stream.iter().chain(&b3).cloned().collect();
    assert_table(&t, &stream).await;
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 8)])
    );
}

#[tokio::test]
async fn redelivery_is_a_no_op_and_overlap_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "redelivery").await;
    let stream: Vec<Ev> = (0..15)
        .map(|i| ev("acme", &format!("k{}", i % 4), 3, i, i * 7))
        .collect();
    merge(&t, &stream[..10]).await.unwrap();
    let snapshots = t
        .iceberg_table()
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .len();

    let again = merge(&t, &stream[..10]).await.unwrap();
    assert!(
        again.already_applied && again.snapshot_id.is_none(),
        "{again:?}"
    );
    assert_eq!(
        t.iceberg_table()
            .await
            .unwrap()
            .metadata()
            .snapshots()
            .len(),
        snapshots,
        "no new snapshot"
    );
    assert_table(&t, &stream[..10]).await;

    // Redelivered with 5 new records: only offsets 10..15 are folded.
    let overlap = merge(&t, &stream[5..]).await.unwrap();
    assert!(!overlap.already_applied);
    assert_table(&t, &stream).await;
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(3, 15)])
    );
}

#[tokio::test]
async fn every_snapshot_carries_the_whole_groups_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "offsets").await;
    assert_eq!(t.committed_offsets().await.unwrap(), BTreeMap::new());
    merge(&t, &[ev("a", "x", 0, 4, 1)]).await.unwrap();
    merge(&t, &[ev("a", "y", 2, 9, 1)]).await.unwrap();
    merge(&t, &[ev("a", "z", 1, 0, 1)]).await.unwrap();
    let table = t.iceberg_table().await.unwrap();
    let summary = &table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    let key = OFFSETS_KEY;
    assert_eq!(
        summary.get(key).map(String::as_str),
        Some(r#"{"0":5,"1":1,"2":10}"#)
    );
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 5), (1, 1), (2, 10)])
    );

    // An offsets-only batch (every event filtered out by the fold) still advances.
    let out = t
        .merge_batch(1, &[], async |_, _| {
            Ok(refold::table::FoldedBatch {
                rows: vec![],
                next_offset: 7,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
        .unwrap();
    assert!(out.snapshot_id.is_some() && out.rows_written == 0);
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 5), (1, 7), (2, 10)])
    );

    // A fold that would move the offset backwards with rows is refused.
    let err = t
        .merge_batch(2, &[("a".into(), "y".into())], async |_, p| {
            let mut r = p.values().next().unwrap().clone();
            r.events_folded += 1;
            Ok(refold::table::FoldedBatch {
                rows: vec![r],
                next_offset: 3,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    // And rows for keys the batch does not have.
    let err = t
        .merge_batch(2, &[], async |_, _| {
            let mut r = apply(None, &ev("a", "zz", 2, 10, 1));
            r.source_partition = 2;
            Ok(refold::table::FoldedBatch {
                rows: vec![r],
                next_offset: 11,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    // And two rows for one key, with another key's row between them.
    let keys = [
        ("a".to_string(), "k1".to_string()),
        ("a".to_string(), "k2".to_string()),
    ];
    let err = t
        .merge_batch(2, &keys, async |_, _| {
            let row = |key: &str, offset: i64| {
                let mut r = apply(None, &ev("a", key, 2, offset, 1));
                r.source_partition = 2;
                r
            };
            Ok(refold::table::FoldedBatch {
                rows: vec![row("k1", 10), row("k2", 11), row("k1", 12)],
                next_offset: 13,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    assert!(err.to_string().contains("two rows"), "{err}");
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 5), (1, 7), (2, 10)])
    );
}

#[tokio::test]
async fn compaction_keeps_rows_drops_deletes_and_merges_continue() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "compaction").await;
    let mut stream = vec![];
    let mut off = [0i64; 2];
    for round in 0..6 {
        for p in 0..2 {
            let batch: Vec<Ev> = (0..5)
                .map(|i| {
                    let o = off[p as usize];
                    off[p as usize] += 1;
                    let key = format!("p{p}-k{}", (i + round) % 7);
                    ev(
                        if i % 2 == 0 { "acme" } else { "globex" },
                        &key,
                        p,
                        o,
                        round * 10 + i,
                    )
                })
                .collect();
            merge(&t, &batch).await.unwrap();
            stream.extend(batch);
        }
    }
    assert_table(&t, &stream).await;
    let before = t.committed_offsets().await.unwrap();
    let summary = |t: &iceberg::table::Table, k: &str| -> i64 {
        t.metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties[k]
            .parse()
            .unwrap()
    };
    assert!(summary(&t.iceberg_table().await.unwrap(), "total-delete-files") > 0);

    let out = t.compact(None).await.unwrap();
    assert_eq!(out.partitions_compacted, vec![0, 1]);
    assert_eq!(out.rows_kept, reference(&stream).len());
    assert_eq!((out.data_files_removed, out.data_files_added), (12, 2));
    let table = t.iceberg_table().await.unwrap();
    assert_eq!(summary(&table, "total-delete-files"), 0);
    assert_eq!(summary(&table, "total-data-files"), 2);
    assert_eq!(
        summary(&table, "total-records") as usize,
        reference(&stream).len()
    );
    assert_eq!(
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .operation,
        iceberg::spec::Operation::Replace
    );
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        before,
        "compaction carries the offsets"
    );
    assert_table(&t, &stream).await;
    // Nothing left to compact.
    assert_eq!(t.compact(None).await.unwrap().snapshot_ids.len(), 0);

    // Upserts now target the compacted file.
    let b = vec![
        ev("acme", "p0-k0", 0, off[0], 99),
        ev("globex", "p0-k1", 0, off[0] + 1, 98),
    ];
    assert_eq!(merge(&t, &b).await.unwrap().rows_deleted, 2);
    stream.extend(b);
    assert_table(&t, &stream).await;
}

#[tokio::test]
async fn checkpoint_tags_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "tags").await;
    assert_eq!(
        t.tag_checkpoint("checkpoint-0", 2)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    let mut stream = vec![];
    let mut tagged = vec![];
    for i in 0..4 {
        let b = vec![ev("acme", "k", 0, i, i)];
        merge(&t, &b).await.unwrap();
        stream.extend(b);
        let name = format!("checkpoint-{i}");
        t.tag_checkpoint(&name, 2).await.unwrap();
        t.tag_checkpoint(&name, 2).await.unwrap(); // a retry is a no-op
        let sid = t
            .iceberg_table()
            .await
            .unwrap()
            .metadata()
            .current_snapshot_id()
            .unwrap();
        tagged.push((name, sid, stream.clone()));
    }
    let tags = t.checkpoint_tags().await.unwrap();
    assert_eq!(
        tags.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["checkpoint-2", "checkpoint-3"]
    );
    let table = t.iceberg_table().await.unwrap();
    for (name, sid, upto) in &tagged[2..] {
        assert_eq!(
            table
                .metadata()
                .snapshot_for_ref(name)
                .unwrap()
                .snapshot_id(),
            *sid
        );
        // Reading the table as of the tag gives the state then.
        let batches: Vec<arrow_array::RecordBatch> = futures::TryStreamExt::try_collect(
            table
                .scan()
                .snapshot_id(*sid)
                .select_all()
                .build()
                .unwrap()
                .to_arrow()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n, 1);
        let ef = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
            batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .unwrap()
                .column_by_name("events_folded")
                .unwrap(),
        )
        .value(0);
        assert_eq!(ef, upto.len() as i64);
    }
    assert!(table.metadata().snapshot_for_ref("checkpoint-0").is_none());
    assert_eq!(
        t.tag_checkpoint("mine", 2).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // Expiry keeps main's newest snapshot and the tagged ones; reads and merges go on.
    let removed = t.expire_snapshots(1).await.unwrap();
    let table = t.iceberg_table().await.unwrap();
    let left: std::collections::BTreeSet<i64> = table
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .collect();
    let want: std::collections::BTreeSet<i64> = [
        tagged[2].1,
        tagged[3].1,
        table.metadata().current_snapshot_id().unwrap(),
    ]
    .into_iter()
    .collect();
    assert_eq!((removed, left), (2, want));
    assert_eq!(
        t.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 4)])
    );
    let b = vec![ev("acme", "k", 0, 4, 4)];
    merge(&t, &b).await.unwrap();
    stream.extend(b);
    assert_table(&t, &stream).await;
}

#[tokio::test]
async fn typed_state_columns_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "typed");
    cfg.columns = StateColumns::Typed(vec![
        ("status".into(), ColumnType::String),
        ("amount".into(), ColumnType::Double),
        ("items".into(), ColumnType::Long),
        ("paid".into(), ColumnType::Boolean),
        ("placed_at".into(), ColumnType::Timestamp),
        ("extra".into(), ColumnType::Json),
    ]);
    let t = StateTable::open_or_create(cfg.clone()).await.unwrap();
    let serde_json::Value::Object(state) = serde_json::json!({
        "status": "placed", "amount": 12.5, "items": 3, "paid": true,
        "placed_at": "2024-05-01T10:00:00.123456Z", "extra": {"b": [1, 2], "a": null}
    }) else {
        unreachable!()
    };
    let mut row = apply(None, &ev("acme", "o1", 0, 0, 1));
    row.state = refold::fold::State::from_map(&state);
    let mut partial = apply(None, &ev("acme", "o2", 0, 0, 1));
    partial.state = refold::fold::State::from_map(&serde_json::Map::from_iter([(
        "status".to_string(),
        serde_json::json!("new"),
    )]));
    let rows = vec![row.clone(), partial.clone()];
    t.merge_batch(
        0,
        &[("acme".into(), "o1".into()), ("acme".into(), "o2".into())],
        async |_, _| {
            Ok(refold::table::FoldedBatch {
                rows: rows.clone(),
                next_offset: 1,
                extra_summary: BTreeMap::new(),
            })
        },
    )
    .await
    .unwrap();
    assert_eq!(
        t.current_rows(None, None).await.unwrap(),
        vec![row, partial]
    );

    // Reopening with the same columns works; with other columns it is refused.
    StateTable::open_or_create(cfg.clone()).await.unwrap();
    let mut other = cfg.clone();
    other.columns = StateColumns::Json;
    assert_eq!(
        StateTable::open_or_create(other).await.unwrap_err().kind(),
        ErrorKind::Config
    );

    // A state field the type does not declare is an error, not a silent drop.
    let mut bad = apply(None, &ev("acme", "o3", 0, 1, 1));
    bad.state = refold::fold::State::from_map(&serde_json::Map::from_iter([(
        "nope".to_string(),
        serde_json::json!(1),
    )]));
    let err = t
        .merge_batch(0, &[("acme".into(), "o3".into())], async |_, _| {
            Ok(refold::table::FoldedBatch {
                rows: vec![bad.clone()],
                next_offset: 2,
                extra_summary: BTreeMap::new(),
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn lookup_prunes_to_the_batch_partition() {
    // Rows in other partitions are never priors, even with the same identity: partitions of
    // a topic never share keys, and the merge only reads its own partition's files.
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "pruning").await;
    merge(&t, &[ev("acme", "a", 0, 0, 1), ev("acme", "b", 0, 1, 1)])
        .await
        .unwrap();
    merge(&t, &[ev("acme", "c", 1, 0, 1)]).await.unwrap();
    let out = t
        .merge_batch(
            1,
            &[("acme".into(), "a".into()), ("acme".into(), "c".into())],
            async |_, priors| {
                let mut keys: Vec<_> = priors.keys().cloned().collect();
                keys.sort();
                assert_eq!(keys, vec![("acme".to_string(), "c".to_string())]);
                Ok(refold::table::FoldedBatch {
                    rows: vec![],
                    next_offset: 1,
                    extra_summary: BTreeMap::new(),
                })
            },
        )
        .await
        .unwrap();
    assert!(out.already_applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_table_looks_keys_up_through_its_file_index() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "indexed").await;
    let mut stream = vec![];
    let mut offset = 0;
    let mut batch = |keys: &[(&str, &str)], stream: &mut Vec<Ev>| {
        let b: Vec<Ev> = keys
            .iter()
            .map(|(tenant, key)| {
                offset += 1;
                ev(tenant, key, 0, offset - 1, offset * 10)
            })
            .collect();
        stream.extend(b.clone());
        b
    };
    let b1 = batch(
        &[
            ("acme", "o1"),
            ("acme", "o2"),
            ("acme", "o3"),
            ("globex", "o1"),
        ],
        &mut stream,
    );
    merge(&t, &b1).await.unwrap();
    // A data file this handle wrote is indexed as it commits; one it did not write is read
    // through Parquet on its first lookup and indexed on its second. Every update deletes exactly the one row it replaces: an index that brought back a
    // deleted row would show as a second live row (and a second delete).
    for (keys, deleted) in [
        (vec![("acme", "o1"), ("acme", "o2")], 2),
        (vec![("acme", "o1"), ("acme", "o3")], 2),
        (vec![("acme", "o1"), ("globex", "o1"), ("acme", "o4")], 2),
        (vec![("acme", "o1"), ("acme", "o2"), ("globex", "o2")], 2),
    ] {
        let b = batch(&keys, &mut stream);
        let r = merge(&t, &b).await.unwrap();
        assert_eq!((r.rows_written, r.rows_deleted), (keys.len(), deleted));
    }
    let (rows, bytes) = t.index_usage();
    assert!(
        rows >= 4 && bytes > 0,
        "the lookups went through the index: {rows} rows"
    );
    assert_table(&t, &stream).await;
    let got = by_id(t.current_rows(None, None).await.unwrap());
    let acme_o1 = &got[&("acme".to_string(), "o1".to_string())];
    // Hand-written: acme/o1 is at offsets 0, 4, 6, 8 and 11 (values 10, 50, 70, 90, 120).
    assert_eq!(
        (
            acme_o1.state.to_value()["count"].as_i64(),
            acme_o1.state.to_value()["last"].as_i64()
        ),
        (Some(5), Some(120))
    );
    assert_eq!(acme_o1.events_folded, 5);
}

#[tokio::test]
async fn a_merge_indexes_its_own_file_and_keeps_delete_files_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), "own_index").await;
    let keys = [
        ("acme", "o1"),
        ("acme", "o2"),
        ("acme", "o3"),
        ("globex", "o1"),
    ];
    let mut stream = vec![];
    let b1: Vec<Ev> = keys
        .iter()
        .enumerate()
        .map(|(i, (tenant, key))| ev(tenant, key, 0, i as i64, 1))
        .collect();
    stream.extend(b1.clone());
    merge(&t, &b1).await.unwrap();
    // Indexed at commit, before any lookup read it.
    assert_eq!(t.index_usage().0, 4, "the merge's own file is indexed");
    assert_eq!(t.delete_cache_usage(), (0, 0));
    // Each round updates two keys: one written by the round before, one older, so every
    // lookup needs positions from several delete files, cached and new. A missing or stale
    // cached position would leave a replaced row live: a second delete, a wrong row.
    let mut offset = 4;
    for round in 0..6i64 {
        let pair = [keys[(round % 4) as usize], keys[((round + 1) % 4) as usize]];
        let b: Vec<Ev> = pair
            .iter()
            .map(|(tenant, key)| {
                offset += 1;
                ev(tenant, key, 0, offset - 1, offset)
            })
            .collect();
        stream.extend(b.clone());
        let r = merge(&t, &b).await.unwrap();
        assert_eq!((r.rows_written, r.rows_deleted), (2, 2), "round {round}");
    }
    let (files, positions) = t.delete_cache_usage();
    assert!(
        files >= 4 && positions >= 8,
        "delete files were kept parsed: {files} files, {positions} positions"
    );
    assert_table(&t, &stream).await;
    // Hand-written: after its first event acme/o2 was updated in rounds 0, 1, 4 and 5
    // (offsets 5, 6, 13 and 14; values 6, 7, 14 and 15).
    let got = by_id(t.current_rows(None, None).await.unwrap());
    let acme_o2 = &got[&("acme".to_string(), "o2".to_string())];
    assert_eq!(
        (
            acme_o2.state.to_value()["count"].as_i64(),
            acme_o2.state.to_value()["last"].as_i64()
        ),
        (Some(5), Some(15))
    );
}

//! State tables on the Glue catalog (`refold_aws::glue::GlueCatalogSwap`) against moto's Glue
//! and S3 (started by `scripts/stack.sh up DIR s3`; one endpoint serves both): tables as
//! Athena reads them, commits through Glue's compare-and-set, a lost compare-and-set forced
//! deterministically, and the result read by PyIceberg's Glue catalog against the same moto.
//!
//!   scripts/stack.sh up /tmp/refold-stack s3 && set -a && . /tmp/refold-stack/stack.env && set +a
//!   cargo test --release --workspace --test glue
//!
//! moto 5.2.5 ignores `UpdateTable`'s `VersionId`; the stack runs it with Glue's check added
//! (`tests/py/moto_server.py`, asserted in `a_stale_version_id_is_refused_as_glue_does`), so
//! here, as on Glue, both the adapter's read-then-update check of `metadata_location` and the
//! `VersionId` guard a commit.

#![allow(clippy::unwrap_used)]

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_glue::error::ProvideErrorMetadata;
use iceberg::{NamespaceIdent, TableIdent};
use refold::batch::Rows;
use refold::error::Result;
use refold::table::{
    CatalogConfig, CatalogSwap, FoldedBatch, SharedCatalogSwap, StateColumns, StateRow, StateTable,
    StorageConfig, SwapRequest, TableConfig, TableIdentity,
};
use refold_aws::glue::{GlueCatalogSwap, GlueConfig, GlueName};
use refold_aws::s3_client;
use serde_json::{Value, json};

fn endpoint() -> String {
    common::moto_endpoint("a local Glue and S3")
}

fn python() -> String {
    if let Ok(p) = std::env::var("REFOLD_PYTHON") {
        return p;
    }
    let p = format!(
        "{}/.cache/refold/venv/bin/python",
        std::env::var("HOME").unwrap()
    );
    assert!(
        std::path::Path::new(&p).exists(),
        "REFOLD_PYTHON is not set and {p} does not exist: run scripts/install-test-tools.sh"
    );
    p
}

fn storage(endpoint: &str) -> StorageConfig {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    StorageConfig {
        s3_endpoint: Some(endpoint.to_owned()),
        s3_region: var("AWS_REGION").or_else(|| Some("us-east-1".into())),
        s3_path_style: true,
        s3_access_key_id: var("AWS_ACCESS_KEY_ID").or_else(|| Some("test".into())),
        s3_secret_access_key: var("AWS_SECRET_ACCESS_KEY").or_else(|| Some("test".into())),
        s3_session_token: None,
    }
}

/// A fresh bucket, a Glue adapter on it, and the config of a table in a fresh database.
async fn setup() -> (Arc<GlueCatalogSwap>, TableConfig, GlueName) {
    let ep = endpoint();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let bucket = format!("refold-glue-{id}");
    s3_client(Some(&ep))
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let glue = GlueCatalogSwap::connect(&GlueConfig {
        warehouse: format!("s3://{bucket}/warehouse"),
        catalog_id: None,
        endpoint: Some(ep.clone()),
        storage: storage(&ep),
    })
    .await
    .unwrap();
    let glue = Arc::new(glue);
    let ns = format!("t{id}");
    let cfg = TableConfig {
        catalog: catalog(&glue, &ep),
        table: TableIdentity {
            namespace: vec![ns.clone(), "orders".into()],
            name: "current_state".into(),
        },
        key_field: "order_id".into(),
        columns: StateColumns::Json,
        topic: "domain.orders.events".into(),
        consumer_group: "order-projection-v1".into(),
        properties: BTreeMap::new(),
    };
    let name = GlueName {
        database: format!("{ns}_orders"),
        table: "current_state".into(),
    };
    (glue, cfg, name)
}

fn catalog(glue: &Arc<GlueCatalogSwap>, ep: &str) -> CatalogConfig {
    CatalogConfig::Adapter {
        swap: SharedCatalogSwap(glue.clone()),
        storage: storage(ep),
    }
}

fn row(key: &str, offset: i64, prior: Option<&StateRow>) -> StateRow {
    let n = prior.map(|p| p.events_folded).unwrap_or(0) + 1;
    let Value::Object(state) = json!({"count": n, "last": offset}) else {
        unreachable!()
    };
    StateRow {
        tenant_id: "acme".into(),
        key: key.into(),
        state: refold::fold::State::from_map(&state),
        source_partition: 0,
        last_offset: offset,
        last_event_id: format!("evt-{offset}"),
        last_event_time_us: 1_700_000_000_000_000 + offset,
        events_folded: n,
    }
}

/// Merges events `(key, offset)` of partition 0 (offset order), skipping applied ones.
async fn merge(t: &StateTable, events: &[(&str, i64)]) -> refold::table::MergeOutcome {
    let keys = keys(events);
    t.merge_batch(0, &keys, folder(events)).await.unwrap()
}

fn keys(events: &[(&str, i64)]) -> Vec<(String, String)> {
    let mut k: Vec<_> = events
        .iter()
        .map(|(k, _)| ("acme".to_owned(), (*k).to_owned()))
        .collect();
    k.sort();
    k.dedup();
    k
}

fn folder<'a>(
    events: &'a [(&'a str, i64)],
) -> impl AsyncFnMut(i64, &Rows) -> Result<FoldedBatch> + 'a {
    async move |committed, priors| {
        let mut cur: BTreeMap<(String, String), StateRow> = BTreeMap::new();
        let mut next = committed;
        for (k, o) in events.iter().filter(|(_, o)| *o >= committed) {
            let id = ("acme".to_owned(), (*k).to_owned());
            let prior = cur.get(&id).or_else(|| priors.get(&id)).cloned();
            cur.insert(id, row(k, *o, prior.as_ref()));
            next = next.max(o + 1);
        }
        Ok(FoldedBatch {
            rows: cur.into_values().collect(),
            next_offset: next,
            extra_summary: BTreeMap::new(),
        })
    }
}

fn params(t: &aws_sdk_glue::types::Table) -> HashMap<String, String> {
    t.parameters().cloned().unwrap_or_default()
}

#[tokio::test]
async fn glue_tables_commit_lose_races_and_read_in_pyiceberg() {
    let (glue, cfg, name) = setup().await;
    let a = StateTable::open_or_create(cfg.clone()).await.unwrap();

    // Created as Athena and the Iceberg Glue catalogs have it.
    let t = glue.get_table(&name).await.unwrap().expect("Glue table");
    assert_eq!(t.table_type(), Some("EXTERNAL_TABLE"));
    let p = params(&t);
    assert_eq!(p["table_type"], "ICEBERG");
    let created = p["metadata_location"].clone();
    assert!(!p.contains_key("previous_metadata_location"), "{p:?}");
    let sd = t.storage_descriptor().unwrap();
    assert!(
        sd.location()
            .unwrap()
            .ends_with(&format!("/warehouse/{}.db/current_state", name.database)),
        "{:?}",
        sd.location()
    );
    let cols: Vec<&str> = sd.columns().iter().map(|c| c.name()).collect();
    assert!(
        cols.contains(&"order_id") && cols.contains(&"state"),
        "{cols:?}"
    );

    // A commit moves the pointer and keeps the previous one.
    let out = merge(&a, &[("o-1", 0), ("o-2", 1), ("o-1", 2)]).await;
    assert_eq!(out.attempts, 1);
    let p = params(&glue.get_table(&name).await.unwrap().unwrap());
    assert_eq!(p["previous_metadata_location"], created);
    let base = p["metadata_location"].clone();
    assert_ne!(base, created);

    // Two writers on the same base: B has read the table when A commits; B's compare-and-set
    // is lost, B reloads and folds again on A's rows.
    let b = StateTable::open_or_create(cfg.clone()).await.unwrap();
    let a_batch = [("o-3", 3)];
    let b_batch = [("o-1", 3), ("o-3", 3), ("o-4", 4)];
    let first = Cell::new(true);
    let mut b_fold = folder(&b_batch);
    let out = b
        .merge_batch(0, &keys(&b_batch), async |committed, priors| {
            if first.replace(false) {
                let won = merge(&a, &a_batch).await;
                assert_eq!(won.attempts, 1);
            }
            b_fold(committed, priors).await
        })
        .await
        .unwrap();
    assert_eq!(out.attempts, 2, "B lost one compare-and-set: {out:?}");
    let rows: BTreeMap<String, (i64, i64)> = a
        .current_rows(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, (r.last_offset, r.events_folded)))
        .collect();
    assert_eq!(
        rows,
        BTreeMap::from([
            ("o-1".into(), (2, 2)),
            ("o-2".into(), (1, 1)),
            ("o-3".into(), (3, 1)),
            ("o-4".into(), (4, 1)),
        ]),
        "offset 3 applied once (by A); B folded only offset 4"
    );
    assert_eq!(
        a.committed_offsets().await.unwrap(),
        BTreeMap::from([(0, 5)])
    );

    // The port itself: a swap from a stale base is lost and changes nothing.
    let ident = TableIdent::new(
        NamespaceIdent::from_vec(cfg.table.namespace.clone()).unwrap(),
        cfg.table.name.clone(),
    );
    let current = glue.current_location(&ident).await.unwrap().unwrap();
    let md = a.iceberg_table().await.unwrap().metadata().clone();
    let lost = glue
        .swap(SwapRequest {
            ident: &ident,
            base_location: &base,
            new_location: "s3://nowhere/never.metadata.json",
            new_metadata: &md,
            requirements: vec![],
            updates: vec![],
        })
        .await
        .unwrap();
    assert!(!lost, "a swap from a stale base must lose");
    assert_eq!(
        glue.current_location(&ident).await.unwrap(),
        Some(current.clone())
    );

    // PyIceberg's Glue catalog (boto3) reads what refold committed, from the same moto.
    let out = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/py/glue_read.py"
        ))
        .args(["--endpoint", &endpoint(), "--table", &name.to_string()])
        .output()
        .expect("run tests/py/glue_read.py");
    assert!(
        out.status.success(),
        "glue_read.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["metadata_location"], json!(current));
    let mut want: Vec<Value> = a
        .current_rows(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            json!({"tenant_id": r.tenant_id, "order_id": r.key, "state": r.state,
                   "last_offset": r.last_offset, "events_folded": r.events_folded,
                   "last_event_id": r.last_event_id})
        })
        .collect();
    want.sort_by_key(|v| v["order_id"].as_str().unwrap().to_owned());
    assert_eq!(read["rows"], json!(want));
}

/// A table registered concurrently: the second `open_or_create` adopts the first's table.
#[tokio::test]
async fn concurrent_creators_share_one_table() {
    let (glue, cfg, name) = setup().await;
    let (x, y) = tokio::join!(
        StateTable::open_or_create(cfg.clone()),
        StateTable::open_or_create(cfg.clone())
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let loc = params(&glue.get_table(&name).await.unwrap().unwrap())["metadata_location"].clone();
    let (lx, ly) = (
        x.iceberg_table().await.unwrap(),
        y.iceberg_table().await.unwrap(),
    );
    assert_eq!(lx.metadata_location(), Some(loc.as_str()));
    assert_eq!(ly.metadata_location(), Some(loc.as_str()));
}

/// The stack's Glue refuses an update with a stale `VersionId` as Glue does: the tests
/// with several writers on one table through Glue rely on it (plain moto 5.2.5 accepts it and
/// the later writer silently replaces the earlier one's commit).
#[tokio::test]
async fn a_stale_version_id_is_refused_as_glue_does() {
    let (glue, cfg, name) = setup().await;
    let _t = StateTable::open_or_create(cfg).await.unwrap();
    let t = glue.get_table(&name).await.unwrap().unwrap();
    let stale = t.version_id().unwrap().to_owned();
    let input = |v: &str| {
        let mut p = params(&t);
        p.insert("note".into(), v.into());
        aws_sdk_glue::types::TableInput::builder()
            .name(&name.table)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(p))
            .set_storage_descriptor(t.storage_descriptor().cloned())
            .build()
            .unwrap()
    };
    let update = |v: &'static str| {
        glue.client()
            .update_table()
            .database_name(&name.database)
            .table_input(input(v))
            .version_id(&stale)
            .send()
    };
    update("first").await.unwrap();
    let second = update("second").await.unwrap_err();
    let code = second.as_service_error().and_then(|e| e.code());
    assert_eq!(
        code,
        Some("ConcurrentModificationException"),
        "a stale VersionId: {second:?} (is moto started through tests/py/moto_server.py?)"
    );
}

//! Catalogs and tables made or changed by other Iceberg clients, on SQLite:
//! - a catalog database PyIceberg 0.12's `SqlCatalog` created (V1 schema, `iceberg_type`);
//! - a catalog database with Java JdbcCatalog's older V0 schema (no `iceberg_type`);
//! - a schema change by another engine between a merge's attempts;
//! - a table another engine upgraded to format v3.
//!
//! Needs PyIceberg (`REFOLD_PYTHON` or `$HOME/.cache/refold/venv`); fails, never skips,
//! without it.
#![allow(clippy::unwrap_used)]

mod table_support;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use iceberg::spec::{FormatVersion, PrimitiveType, Type};
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, TableIdent};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE,
    SqlCatalogBuilder,
};
use refold::error::ErrorKind;
use refold::table::StateTable;
use sqlx::sqlite::SqlitePoolOptions;
use table_support::*;

const TABLE: &str = "domain.orders.current_state";

/// A few merges over two partitions, a compaction, and one merge after it.
async fn write_some(t: &StateTable) -> Vec<Ev> {
    let mut stream = vec![];
    for round in 0..3i64 {
        for p in 0..2i32 {
            let batch: Vec<Ev> = (0..5i64)
                .map(|i| {
                    let tenant = if i % 2 == 0 { "acme" } else { "globex" };
                    ev(
                        tenant,
                        &format!("p{p}-k{}", (i + round) % 4),
                        p,
                        round * 5 + i,
                        i,
                    )
                })
                .collect();
            merge(t, &batch).await.unwrap();
            stream.extend(batch);
        }
    }
    t.compact(None).await.unwrap();
    let b = vec![ev("acme", "p0-k0", 0, 15, 99)];
    merge(t, &b).await.unwrap();
    stream.extend(b);
    assert_eq!(
        by_id(t.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    stream
}

/// PyIceberg reads exactly the reference rows and offsets from the catalog in `dir`.
fn pyiceberg_reads(dir: &Path, stream: &[Ev], offsets: &str) {
    let expect = dir.join("expect.jsonl");
    write_expected(&expect, &reference(stream));
    let d = dir.display().to_string();
    py_check(&[
        "--uri",
        &format!("sqlite:///{d}/catalog.db"),
        "--warehouse",
        &format!("file://{d}"),
        "--table",
        TABLE,
        "--expect",
        expect.to_str().unwrap(),
        "--offsets",
        offsets,
        "--offsets-key",
        OFFSETS_KEY,
    ]);
}

async fn columns_of_iceberg_tables(dir: &Path) -> Vec<String> {
    let pool = SqlitePoolOptions::new()
        .connect(&format!("sqlite:{}/catalog.db", dir.display()))
        .await
        .unwrap();
    let cols: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM pragma_table_info('iceberg_tables')")
            .fetch_all(&pool)
            .await
            .unwrap();
    cols.into_iter().map(|c| c.0).collect()
}

#[tokio::test]
async fn a_catalog_pyiceberg_created_opens_and_pyiceberg_reads_refolds_commits() {
    let dir = tempfile::tempdir().unwrap();
    foreign(
        dir.path(),
        &[
            "create-catalog",
            "--namespace",
            "domain.orders",
            "--table",
            "domain.orders.theirs",
        ],
    )
    .await;
    assert!(
        columns_of_iceberg_tables(dir.path())
            .await
            .contains(&"iceberg_type".to_string())
    );
    let t = StateTable::open_or_create(config(dir.path(), "current_state"))
        .await
        .unwrap();
    let stream = write_some(&t).await;
    pyiceberg_reads(dir.path(), &stream, r#"{"0": 16, "1": 15}"#);
}

/// Java JdbcCatalog's V0 schema (JdbcUtil's V0 DDL): no `iceberg_type` column.
async fn create_v0_catalog(dir: &Path) {
    let pool = SqlitePoolOptions::new()
        .connect(&format!("sqlite:{}/catalog.db?mode=rwc", dir.display()))
        .await
        .unwrap();
    for ddl in [
        "CREATE TABLE iceberg_tables (catalog_name VARCHAR(255) NOT NULL, \
         table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL, \
         metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000), \
         PRIMARY KEY (catalog_name, table_namespace, table_name))",
        "CREATE TABLE iceberg_namespace_properties (catalog_name VARCHAR(255) NOT NULL, \
         namespace VARCHAR(255) NOT NULL, property_key VARCHAR(255), property_value VARCHAR(1000), \
         PRIMARY KEY (catalog_name, namespace, property_key))",
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_v0_catalog_opens_and_commits_conflict_safely() {
    let dir = tempfile::tempdir().unwrap();
    create_v0_catalog(dir.path()).await;
    let cfg = config(dir.path(), "current_state");
    let t = StateTable::open_or_create(cfg.clone()).await.unwrap();
    let mut stream = write_some(&t).await;

    // Two handles on the same partition at once: one wins, the other retries on the V0 rows.
    let u = StateTable::open_or_create(cfg.clone()).await.unwrap();
    let (b1, b2) = (
        vec![ev("acme", "p1-k0", 1, 15, 1)],
        vec![ev("acme", "p0-k1", 0, 16, 2)],
    );
    let (r1, r2) = tokio::join!(merge(&t, &b1), merge(&u, &b2));
    r1.unwrap();
    r2.unwrap();
    stream.extend(b1);
    stream.extend(b2);
    assert_eq!(
        by_id(u.current_rows(None, None).await.unwrap()),
        reference(&stream)
    );
    assert_eq!(
        columns_of_iceberg_tables(dir.path()).await,
        [
            "catalog_name",
            "table_namespace",
            "table_name",
            "metadata_location",
            "previous_metadata_location"
        ],
        "refold left the V0 schema as it was"
    );
    pyiceberg_reads(dir.path(), &stream, r#"{"0": 17, "1": 16}"#);
}

/// iceberg-rust's own SQL catalog on the embedded database: another engine.
async fn other_engine(dir: &Path) -> (iceberg_catalog_sql::SqlCatalog, iceberg::table::Table) {
    let d = dir.display().to_string();
    let props = HashMap::from([
        (
            SQL_CATALOG_PROP_URI.to_string(),
            format!("sqlite:{d}/catalog.db"),
        ),
        (
            SQL_CATALOG_PROP_WAREHOUSE.to_string(),
            format!("file://{d}"),
        ),
        (SQL_CATALOG_PROP_BIND_STYLE.to_string(), "QMark".to_string()),
    ]);
    let cat = SqlCatalogBuilder::default()
        .with_storage_factory(Arc::new(
            iceberg_storage_opendal::OpenDalResolvingStorageFactory::new(),
        ))
        .load("refold", props)
        .await
        .unwrap();
    let ident = TableIdent::from_strs(["domain", "orders", "current_state"]).unwrap();
    let table = cat.load_table(&ident).await.unwrap();
    (cat, table)
}

#[tokio::test]
async fn a_schema_change_between_attempts_is_a_clear_error_not_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "current_state");
    let t = StateTable::open_or_create(cfg.clone()).await.unwrap();
    let b1 = vec![ev("acme", "o1", 0, 0, 1)];
    merge(&t, &b1).await.unwrap();
    let before = t
        .iceberg_table()
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .len();

    let b2 = vec![ev("acme", "o1", 0, 1, 2)];
    let calls = Cell::new(0);
    let err = t
        .merge_batch(0, &keys_of(&b2), async |c, priors| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                let (cat, table) = other_engine(dir.path()).await;
                let tx = Transaction::new(&table);
                let add = tx.update_schema().add_column(AddColumn::optional(
                    "note",
                    Type::Primitive(PrimitiveType::String),
                ));
                add.apply(tx).unwrap().commit(&cat).await.unwrap();
            }
            folder(&b2)(c, priors).await
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("schema id 0 -> 1"), "{msg}");
    let table = t.iceberg_table().await.unwrap();
    assert_eq!(
        table.metadata().snapshots().len(),
        before,
        "nothing committed"
    );
    assert_eq!(
        StateTable::open_or_create(cfg).await.unwrap_err().kind(),
        ErrorKind::Config
    );
}

#[tokio::test]
async fn a_table_upgraded_to_format_v3_is_a_clear_error_not_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "current_state");
    let t = StateTable::open_or_create(cfg.clone()).await.unwrap();
    merge(&t, &[ev("acme", "o1", 0, 0, 1)]).await.unwrap();
    let before = t
        .iceberg_table()
        .await
        .unwrap()
        .metadata()
        .snapshots()
        .len();

    let b2 = vec![ev("acme", "o1", 0, 1, 2)];
    let calls = Cell::new(0);
    let err = t
        .merge_batch(0, &keys_of(&b2), async |c, priors| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                let (cat, table) = other_engine(dir.path()).await;
                let tx = Transaction::new(&table);
                let up = tx
                    .upgrade_table_version()
                    .set_format_version(FormatVersion::V3);
                up.apply(tx).unwrap().commit(&cat).await.unwrap();
            }
            folder(&b2)(c, priors).await
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("format v3"), "{err}");
    let table = t.iceberg_table().await.unwrap();
    assert_eq!(table.metadata().format_version(), FormatVersion::V3);
    assert_eq!(
        table.metadata().snapshots().len(),
        before,
        "nothing committed"
    );
    let err = StateTable::open_or_create(cfg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("format v3"), "{err}");
}

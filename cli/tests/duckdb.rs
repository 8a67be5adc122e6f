//! DuckDB reads a table refold wrote, offline: `refold demo` folds the order stream through
//! the fold-batch handler into a local warehouse, `tests/py/duckdb_read.py` scans it with
//! DuckDB's Iceberg extension (from PyPI, loaded by path, no download), and the rows are
//! the CPython oracle's fold of the same events (`tests/py/seed_fold.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../functions/fold-batch/tests/common/oracle.rs"]
mod oracle;

fn root() -> PathBuf {
    oracle::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `duckdb_read.py --catalog WAREHOUSE/catalog.db EXTRA...`: its stdout; fails the test
/// (with DuckDB's message) when the script does.
fn duckdb_read(warehouse: &Path, extra: &[&str]) -> String {
    let out = Command::new(oracle::python())
        .arg(root().join("tests/py/duckdb_read.py"))
        .arg("--catalog")
        .arg(warehouse.join("catalog.db"))
        .args([
            "--table",
            "domain.orders.current_state",
            "--key-field",
            "order_id",
        ])
        .args(extra)
        .output()
        .expect("runs duckdb_read.py");
    assert!(
        out.status.success(),
        "duckdb_read.py failed ({}): {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn duckdb_reads_the_demo_table_as_the_cpython_oracle_folds_it() {
    let root = root();
    let dir = tempfile::tempdir().expect("tempdir");
    let warehouse = dir.path().join("warehouse");
    let demo = Command::new(env!("CARGO_BIN_EXE_refold"))
        .arg("demo")
        .arg("--warehouse")
        .arg(&warehouse)
        .current_dir(&root)
        .env_remove("KAFKA_CONNECTION")
        .output()
        .expect("runs refold demo");
    assert!(demo.status.success(), "refold demo: {}", text(&demo.stderr));

    let want = oracle::run(
        &root,
        &root.join("pipelines/order-events-pipeline.yaml"),
        &root.join("events/orders.jsonl"),
    );

    // Every row, with its JSON state, as DuckDB's iceberg_scan sees the table.
    let rows: oracle::Rows = duckdb_read(&warehouse, &[])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            (
                (
                    v["tenant_id"].as_str().expect("tenant_id").to_owned(),
                    v["key"].as_str().expect("key").to_owned(),
                ),
                (
                    oracle::normalize(&v["state"]),
                    v["events_folded"].as_i64().expect("events_folded"),
                    v["last_event_id"]
                        .as_str()
                        .expect("last_event_id")
                        .to_owned(),
                ),
            )
        })
        .collect();
    oracle::assert_rows_eq(&rows, &want.rows, "DuckDB's scan of the demo's table");

    // The table has position deletes (keys updated in later batches), so the equality above
    // shows DuckDB applies them; and SQL over the JSON state agrees with the oracle.
    let deletes = duckdb_read(
        &warehouse,
        &[
            "--sql",
            "SELECT count(*) FROM iceberg_metadata('{metadata}') WHERE manifest_content = 'DELETE'",
        ],
    );
    let deletes: Vec<i64> = serde_json::from_str(deletes.trim()).expect("one row");
    assert!(deletes[0] > 0, "the demo's table has position delete files");
    let by_status = duckdb_read(
        &warehouse,
        &[
            "--sql",
            "SELECT tenant_id, json_extract_string(state, '$.status') AS status, count(*) \
             FROM state GROUP BY ALL ORDER BY ALL",
        ],
    );
    let mut want_by_status = std::collections::BTreeMap::<(String, String), i64>::new();
    for ((tenant, _), (state, _, _)) in &want.rows {
        let status = state["status"].as_str().expect("status").to_owned();
        *want_by_status.entry((tenant.clone(), status)).or_default() += 1;
    }
    let got_by_status: std::collections::BTreeMap<(String, String), i64> = by_status
        .lines()
        .map(|l| {
            let v: (String, String, i64) = serde_json::from_str(l).expect("a row");
            ((v.0, v.1), v.2)
        })
        .collect();
    assert_eq!(got_by_status, want_by_status, "rows per tenant and status");
}

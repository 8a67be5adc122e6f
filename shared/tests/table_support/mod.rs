//! Helpers shared by the state table tests: a trivial fold (count, sum, last value) over
//! synthetic events, the sequential reference fold, and an independent reader.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use futures::TryStreamExt;
use refold::batch::Rows;
use refold::error::{Error, ErrorKind, Result};
use refold::table::{
    CatalogConfig, FoldedBatch, MergeOutcome, StateColumns, StateRow, StateTable, TableConfig,
    TableIdentity,
};
use serde_json::{Value, json};

pub const T0_US: i64 = 1_700_000_000_000_000;

/// One synthetic event of the source topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub tenant: String,
    pub key: String,
    pub partition: i32,
    pub offset: i64,
    pub value: i64,
}

pub fn ev(tenant: &str, key: &str, partition: i32, offset: i64, value: i64) -> Ev {
    Ev {
        tenant: tenant.into(),
        key: key.into(),
        partition,
        offset,
        value,
    }
}

pub fn config(dir: &Path, name: &str) -> TableConfig {
    TableConfig {
        catalog: CatalogConfig::embedded(dir).unwrap(),
        table: TableIdentity {
            namespace: vec!["domain".into(), "orders".into()],
            name: name.into(),
        },
        key_field: "order_id".into(),
        columns: StateColumns::Json,
        topic: "domain.orders.events".into(),
        consumer_group: "order-projection-v1".into(),
        properties: BTreeMap::new(),
    }
}

/// The offsets key of [`config`]'s topic and group.
pub const OFFSETS_KEY: &str = "refold.offsets.domain.orders.events/order-projection-v1";

/// Folds one event onto a prior row: count, sum, last value.
pub fn apply(prior: Option<&StateRow>, e: &Ev) -> StateRow {
    let (count, sum) = prior
        .map(|p| {
            (
                p.state.to_value()["count"].as_i64().unwrap(),
                p.state.to_value()["sum"].as_i64().unwrap(),
            )
        })
        .unwrap_or((0, 0));
    let state = json!({"count": count + 1, "sum": sum + e.value, "last": e.value, "tag": format!("v{}", e.value)});
    let Value::Object(state) = state else {
        unreachable!()
    };
    StateRow {
        tenant_id: e.tenant.clone(),
        key: e.key.clone(),
        state: refold::fold::State::from_map(&state),
        source_partition: e.partition,
        last_offset: e.offset,
        last_event_id: format!("evt-{}-{}", e.partition, e.offset),
        last_event_time_us: T0_US + e.offset * 1_000,
        events_folded: prior.map(|p| p.events_folded).unwrap_or(0) + 1,
    }
}

/// The fold closure `merge_batch` gets for a batch (events of one partition, offset order):
/// skips events below the committed offset, as the real fold-batch handler does.
pub fn folder(batch: &[Ev]) -> impl AsyncFnMut(i64, &Rows) -> Result<FoldedBatch> + '_ {
    async move |committed, priors| {
        let mut cur: BTreeMap<(String, String), StateRow> = BTreeMap::new();
        let mut next = committed;
        for e in batch.iter().filter(|e| e.offset >= committed) {
            let id = (e.tenant.clone(), e.key.clone());
            let prior = cur.get(&id).or_else(|| priors.get(&id)).cloned();
            cur.insert(id, apply(prior.as_ref(), e));
            next = next.max(e.offset + 1);
        }
        if let Some(last) = batch.last() {
            next = next.max(last.offset + 1).max(committed);
        }
        Ok(FoldedBatch {
            rows: cur.into_values().collect(),
            next_offset: next,
            extra_summary: BTreeMap::new(),
        })
    }
}

pub fn keys_of(batch: &[Ev]) -> Vec<(String, String)> {
    let mut k: Vec<_> = batch
        .iter()
        .map(|e| (e.tenant.clone(), e.key.clone()))
        .collect();
    k.sort();
    k.dedup();
    k
}

pub async fn merge(t: &StateTable, batch: &[Ev]) -> Result<MergeOutcome> {
    let p = batch
        .first()
        .map(|e| e.partition)
        .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "empty batch"))?;
    t.merge_batch(p, &keys_of(batch), folder(batch)).await
}

/// The sequential fold of a whole stream (each event once, in offset order per partition).
pub fn reference(stream: &[Ev]) -> BTreeMap<(String, String), StateRow> {
    let mut out: BTreeMap<(String, String), StateRow> = BTreeMap::new();
    let mut evs: Vec<&Ev> = stream.iter().collect();
    evs.sort_by_key(|e| (e.partition, e.offset));
    for e in evs {
        let id = (e.tenant.clone(), e.key.clone());
        let r = apply(out.get(&id), e);
        out.insert(id, r);
    }
    out
}

pub fn by_id(rows: Vec<StateRow>) -> BTreeMap<(String, String), StateRow> {
    let mut m = BTreeMap::new();
    for r in rows {
        let id = r.identity();
        assert!(m.insert(id.clone(), r).is_none(), "duplicate row {id:?}");
    }
    m
}

/// (tenant, key) -> (state JSON, last_offset, events_folded) as iceberg-rust's own scan reads
/// the table (its delete handling, not ours).
pub async fn iceberg_scan(t: &StateTable) -> BTreeMap<(String, String), (Value, i64, i64)> {
    let table = t.iceberg_table().await.unwrap();
    let mut out = BTreeMap::new();
    if table.metadata().current_snapshot().is_none() {
        return out;
    }
    let batches: Vec<arrow_array::RecordBatch> = table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for b in batches {
        let tn = b
            .column_by_name("tenant_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let k = b
            .column_by_name("order_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let s = b
            .column_by_name("state")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let lo = b
            .column_by_name("last_offset")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let ef = b
            .column_by_name("events_folded")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..b.num_rows() {
            let id = (tn.value(i).to_string(), k.value(i).to_string());
            let v = (
                serde_json::from_str(s.value(i)).unwrap(),
                lo.value(i),
                ef.value(i),
            );
            assert!(
                out.insert(id.clone(), v).is_none(),
                "iceberg-rust scan: duplicate row {id:?}"
            );
        }
    }
    out
}

pub fn summarize(
    m: &BTreeMap<(String, String), StateRow>,
) -> BTreeMap<(String, String), (Value, i64, i64)> {
    m.iter()
        .map(|(k, r)| {
            (
                k.clone(),
                (r.state.to_value(), r.last_offset, r.events_folded),
            )
        })
        .collect()
}

/// Rows as JSON lines, the form `tests/py/check_table.py` compares with.
pub fn write_expected(path: &Path, rows: &BTreeMap<(String, String), StateRow>) {
    let mut s = String::new();
    for r in rows.values() {
        s.push_str(
            &json!({
                "tenant_id": r.tenant_id, "order_id": r.key, "state": r.state.to_value(),
                "source_partition": r.source_partition, "last_offset": r.last_offset,
                "last_event_id": r.last_event_id, "last_event_time_us": r.last_event_time_us,
                "events_folded": r.events_folded,
            })
            .to_string(),
        );
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// The interpreter of the venv with PyIceberg: `REFOLD_PYTHON`, else
/// `$HOME/.cache/refold/venv/bin/python`; fails clearly when neither exists (never skips).
pub fn python() -> String {
    if let Ok(p) = std::env::var("REFOLD_PYTHON") {
        return p;
    }
    let fallback = std::env::var("HOME")
        .map(|h| Path::new(&h).join(".cache/refold/venv/bin/python"))
        .ok()
        .filter(|p| p.exists());
    match fallback {
        Some(p) => p.display().to_string(),
        None => panic!(
            "REFOLD_PYTHON is not set and $HOME/.cache/refold/venv/bin/python does not exist. \
             The PyIceberg checks need it: run `bash tests/py/venv.sh` (creates \
             $HOME/.cache/refold/venv from tests/py/requirements.txt) and \
             export REFOLD_PYTHON=$HOME/.cache/refold/venv/bin/python"
        ),
    }
}

/// Runs `tests/py/check_table.py` with `args`; panics with its output unless it passes.
pub fn py_check(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/check_table.py");
    let out = std::process::Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "check_table.py failed:\n{text}");
    assert!(
        text.contains("PYICEBERG OK"),
        "check_table.py did not confirm:\n{text}"
    );
}

/// Runs `tests/py/foreign_engine.py` (PyIceberg as another engine) on the embedded catalog
/// in `dir`; panics with its output unless it succeeds.
pub async fn foreign(dir: &Path, args: &[&str]) -> String {
    let d = dir.display().to_string();
    foreign_on(
        &format!("sqlite:///{d}/catalog.db"),
        &format!("file://{d}"),
        args,
    )
    .await
}

/// [`foreign`] on any SQL catalog URI and warehouse.
pub async fn foreign_on(uri: &str, warehouse: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/foreign_engine.py");
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .args(["--uri", uri, "--warehouse", warehouse])
        .args(args)
        .output()
        .await
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("FOREIGN OK"),
        "foreign_engine.py {args:?} failed:\n{text}"
    );
    text
}

/// One row as `foreign_engine.py append-row` takes it.
pub fn row_json(r: &StateRow) -> String {
    json!({
        "tenant_id": r.tenant_id, "order_id": r.key, "state": r.state.to_value(),
        "source_partition": r.source_partition, "last_offset": r.last_offset,
        "last_event_id": r.last_event_id, "last_event_time_us": r.last_event_time_us,
        "events_folded": r.events_folded,
    })
    .to_string()
}

//! The independent oracle for end-to-end tests: `tests/py/seed_fold.py`, the pipeline's
//! `fold_function` run by CPython (no refold code), over a JSON Lines file of envelopes.
//!
//! Shared by fold-batch's, replay-api's and the CLI's tests (they include this file with
//! `#[path]`), so it depends on `std` and `serde_json` only. At the end: readers of what a
//! function wrote in the deployed configuration (PyIceberg through Glue, boto3), in the
//! oracle's shape.
//!
//! The interpreter is `REFOLD_PYTHON`, else `$HOME/.cache/refold/venv/bin/python` (what
//! `scripts/install-test-tools.sh` makes); a missing interpreter, script or module fails
//! the test: an oracle that did not run proves nothing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Rows by (tenant_id, key): (state, events_folded, last_event_id).
pub type Rows = BTreeMap<(String, String), (serde_json::Value, i64, String)>;

/// What the oracle folded: its rows, and the 1-based line numbers it rejected (not valid
/// envelopes, or events whose fold raised).
#[derive(Debug)]
pub struct Oracle {
    pub rows: Rows,
    pub rejected_lines: BTreeSet<usize>,
    /// The rejections as the oracle wrote them (JSON objects: line, kind, reason).
    pub rejected: Vec<serde_json::Value>,
}

/// The workspace root, found from this file's crate (`CARGO_MANIFEST_DIR` is fold-batch's
/// or the CLI's, both one or two levels below the root).
pub fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|d| d.join("tests/py/seed_fold.py").is_file())
        .unwrap_or_else(|| {
            panic!(
                "tests/py/seed_fold.py not found above {}",
                manifest_dir.display()
            )
        })
        .to_path_buf()
}

/// The Python the tests use: `REFOLD_PYTHON`, else the venv of `install-test-tools.sh`.
pub fn python() -> PathBuf {
    let path = match std::env::var_os("REFOLD_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/refold/venv/bin/python")
        }
    };
    assert!(
        path.is_file(),
        "no Python at {} for the CPython oracle: run scripts/install-test-tools.sh or set \
         REFOLD_PYTHON to a Python with PyYAML (tests/py/requirements.txt)",
        path.display()
    );
    path
}

/// Runs `tests/py/<script>` with `args` under [`python`]; its stdout. A missing script, or
/// one that fails, fails the test with its stderr.
fn python_script<S: AsRef<std::ffi::OsStr>>(root: &Path, script: &str, args: &[S]) -> Vec<u8> {
    let path = root.join("tests/py").join(script);
    assert!(path.is_file(), "{} is missing", path.display());
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `seed_fold.py PIPELINE EVENTS` and reads its rows and rejections. Panics, with the
/// oracle's stderr, when it fails.
pub fn run(root: &Path, pipeline: &Path, events: &Path) -> Oracle {
    let dir = std::env::temp_dir().join(format!(
        "refold-oracle-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("rejected.jsonl");
    let args = [
        pipeline.as_os_str(),
        events.as_os_str(),
        "--dead-letters".as_ref(),
        dead.as_os_str(),
        "--quiet".as_ref(),
    ];
    let stdout = python_script(root, "seed_fold.py", &args);
    let mut rows = Rows::new();
    for line in String::from_utf8(stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("oracle line `{line}` is not JSON: {e}"));
        let id = (
            v["tenant_id"].as_str().expect("tenant_id").to_owned(),
            v["key"].as_str().expect("key").to_owned(),
        );
        let row = (
            normalize(&v["state"]),
            v["events_folded"].as_i64().expect("events_folded"),
            v["last_event_id"]
                .as_str()
                .expect("last_event_id")
                .to_owned(),
        );
        assert!(rows.insert(id, row).is_none(), "oracle: a row twice");
    }
    let rejected: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rejected_lines = rejected
        .iter()
        .map(|r| usize::try_from(r["line"].as_u64().expect("line")).unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Oracle {
        rows,
        rejected_lines,
        rejected,
    }
}

impl Oracle {
    /// The bytes of each rejected line of `events` (the file given to [`run`]), sorted: what
    /// refold's dead letters must hold as their raw values (a trailing `\r` is not part of a
    /// line).
    pub fn rejected_values(&self, events: &Path) -> Vec<Vec<u8>> {
        let text = std::fs::read(events).unwrap();
        let mut values: Vec<Vec<u8>> = text
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(i, _)| self.rejected_lines.contains(&(i + 1)))
            .map(|(_, l)| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .collect();
        assert_eq!(
            values.len(),
            self.rejected_lines.len(),
            "oracle: rejected line numbers beyond {}",
            events.display()
        );
        values.sort();
        values
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A JSON value with every number in one canonical form (an integer when it is one of 64
/// bits, else its f64), so that `1e+16` (Python) and `1e16` (Rust) compare equal while an
/// integer and a float do not. serde_json is built with `arbitrary_precision` here, which
/// compares numbers as written.
pub fn normalize(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            let text = n.to_string();
            let integral = !text.contains(['.', 'e', 'E']);
            match (integral, n.as_i64()) {
                (true, Some(i)) => Value::from(i),
                _ => n
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), normalize(x))).collect())
        }
        other => other.clone(),
    }
}

/// Asserts that `got` (what refold wrote) equals the oracle's rows: the same keys, and per
/// key the same state, events_folded and last_event_id. The message lists the first
/// differences rather than two maps of thousands of rows.
pub fn assert_rows_eq(got: &Rows, want: &Rows, what: &str) {
    assert!(!want.is_empty(), "{what}: the oracle folded no rows");
    let got_keys: BTreeSet<_> = got.keys().collect();
    let want_keys: BTreeSet<_> = want.keys().collect();
    let missing: Vec<_> = want_keys.difference(&got_keys).take(5).collect();
    let extra: Vec<_> = got_keys.difference(&want_keys).take(5).collect();
    let differ: Vec<String> = want
        .iter()
        .filter_map(|(id, w)| {
            let g = got.get(id)?;
            let g = (normalize(&g.0), g.1, g.2.clone());
            (g != *w).then(|| format!("{id:?}: refold {g:?}, oracle {w:?}"))
        })
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty() && got.len() == want.len(),
        "{what}: refold's rows differ from the CPython oracle's ({} vs {} rows)\n\
         missing: {missing:?}\nextra: {extra:?}\ndiffering:\n{}",
        got.len(),
        want.len(),
        differ.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// What a function wrote in the deployed configuration (Glue and S3 on moto), read by
// PyIceberg and boto3, not by refold.

/// A state table as PyIceberg reads it through the Glue catalog at `moto`
/// (`tests/py/glue_read.py`), in the oracle's shape. `table` is refold's identifier
/// (`domain.orders.current_state`); Glue's name joins the namespace with `_`.
pub fn glue_rows(root: &Path, moto: &str, table: &str) -> Rows {
    let (namespace, name) = table.rsplit_once('.').expect("namespace.table");
    let glue_table = format!("{}.{name}", namespace.replace('.', "_"));
    let args = [
        "--endpoint",
        moto,
        "--table",
        &glue_table,
        "--key-field",
        "order_id",
    ];
    let stdout = python_script(root, "glue_read.py", &args);
    let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let text = |r: &serde_json::Value, f: &str| r[f].as_str().unwrap().to_owned();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let id = (text(r, "tenant_id"), text(r, "order_id"));
            let row = (
                normalize(&r["state"]),
                r["events_folded"].as_i64().unwrap(),
                text(r, "last_event_id"),
            );
            (id, row)
        })
        .collect()
}

/// The bytes of every object directly under `url` (`s3://bucket/prefix`) at `moto`, in key
/// order, concatenated (`tests/py/s3_cat.py`, boto3); sub-folders are left out.
pub fn s3_cat(root: &Path, moto: &str, url: &str) -> Vec<u8> {
    python_script(root, "s3_cat.py", &["--endpoint", moto, url])
}

"""Reads a refold state table with DuckDB's Iceberg extension, offline.

Usage:
  duckdb_read.py METADATA.json [--key-field order_id]
  duckdb_read.py --catalog WAREHOUSE/catalog.db --table domain.orders.current_state [--key-field order_id]
  duckdb_read.py ... --sql "SELECT ... FROM state"     # any query over the view `state`
                                                     # ({metadata}: the metadata file's path)

`INSTALL iceberg` downloads from the internet; this does not. The extensions come from PyPI
(`duckdb-ext-iceberg`, `duckdb-ext-avro`, pinned in requirements.txt for duckdb 1.4.4): the
connection allows unsigned extensions, never autoinstalls, and LOADs avro then iceberg by
path. With `--catalog`, the table's current metadata file is read from the SQL catalog
(`iceberg_tables`, as refold and PyIceberg write it).

Without --sql, prints one JSON object per row, sorted by (tenant_id, key), in the CPython
oracle's shape (tests/py/seed_fold.py):
  {"tenant_id": ..., "key": ..., "state": {...}, "events_folded": n, "last_event_id": ...}
`state` is the parsed `state` JSON column, or (for declared state types) the state columns.
With --sql, prints the query's rows as JSON arrays (timestamps need pytz, pinned too).
"""
import argparse
import glob
import importlib.util
import json
import os
import sqlite3
import sys
from urllib.parse import unquote, urlparse

import duckdb

BOOKKEEPING = {"tenant_id", "source_partition", "last_offset", "last_event_id",
               "last_event_time", "events_folded"}


def extension_dir():
    """Where the duckdb-ext-* wheels put the extensions for this duckdb and platform."""
    spec = importlib.util.find_spec("duckdb_ext")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("duckdb_read: duckdb-ext-iceberg/-avro are not installed "
                         "(pip install -r tests/py/requirements.txt)")
    roots = list(spec.submodule_search_locations)
    version = "v" + duckdb.__version__
    platform = duckdb.connect().execute("PRAGMA platform").fetchone()[0]
    for root in roots:
        d = os.path.join(root, "extensions", version, platform)
        if os.path.isfile(os.path.join(d, "iceberg.duckdb_extension")):
            return d
    found = [p for r in roots for p in glob.glob(os.path.join(r, "extensions", "*", "*"))]
    raise SystemExit(f"duckdb_read: no extensions for duckdb {version} on {platform} "
                     f"(found: {found})")


def connect():
    con = duckdb.connect(config={
        "allow_unsigned_extensions": "true",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    })
    d = extension_dir()
    for name in ("avro", "iceberg"):  # iceberg needs avro for manifests
        path = os.path.join(d, f"{name}.duckdb_extension")
        con.execute(f"LOAD '{path}'")
    return con


def local_path(location):
    """A `file://` URI as a path; other locations (s3://...) as they are."""
    u = urlparse(location)
    if u.scheme == "file":
        return unquote(u.path)
    return location


def metadata_from_catalog(db, table, catalog_name):
    namespace, _, name = table.rpartition(".")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute(
            "SELECT metadata_location FROM iceberg_tables "
            "WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
            (catalog_name, namespace, name)).fetchone()
    finally:
        con.close()
    if row is None or row[0] is None:
        raise SystemExit(f"duckdb_read: table {table} is not in catalog "
                         f"{catalog_name} of {db}")
    return local_path(row[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("metadata", nargs="?", help="the table's metadata JSON file")
    ap.add_argument("--catalog", help="SQLite catalog database (WAREHOUSE/catalog.db)")
    ap.add_argument("--catalog-name", default="refold")
    ap.add_argument("--table", default="domain.orders.current_state")
    ap.add_argument("--key-field", default="order_id")
    ap.add_argument("--sql", help="a query over the view `state` (the table's rows)")
    a = ap.parse_args()
    if a.catalog:
        metadata = metadata_from_catalog(a.catalog, a.table, a.catalog_name)
    elif a.metadata:
        metadata = local_path(a.metadata)
    else:
        ap.error("give METADATA.json or --catalog")

    con = connect()
    escaped = metadata.replace("'", "''")
    con.execute(f"CREATE VIEW state AS SELECT * FROM iceberg_scan('{escaped}')")
    if a.sql:
        for row in con.execute(a.sql.replace("{metadata}", escaped)).fetchall():
            print(json.dumps(list(row), default=str, ensure_ascii=False))
        return 0

    columns = [r[0] for r in con.execute("DESCRIBE state").fetchall()]
    if a.key_field not in columns:
        raise SystemExit(f"duckdb_read: no key column `{a.key_field}` in {columns}")
    state_cols = ["state"] if "state" in columns else [
        c for c in columns if c not in BOOKKEEPING and c != a.key_field]
    quoted = ", ".join(f'"{c}"' for c in state_cols)
    rows = con.execute(
        f'SELECT tenant_id, "{a.key_field}", events_folded, last_event_id, {quoted} '
        'FROM state').fetchall()
    rows.sort(key=lambda r: (r[0], r[1]))  # by code point, as the oracle sorts
    for tenant, key, n, last, *values in rows:
        if state_cols == ["state"]:
            state = json.loads(values[0])
        else:
            state = {c: v for c, v in zip(state_cols, values) if v is not None}
        print(json.dumps({"tenant_id": tenant, "key": key, "state": state,
                          "events_folded": n, "last_event_id": last},
                         sort_keys=True, ensure_ascii=False, default=str))
    print(f"duckdb_read: {len(rows)} rows from {metadata}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

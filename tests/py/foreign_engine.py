"""Another engine on refold's tables: what PyIceberg 0.12 (standing in for Athena, Trino,
Spark) does to a table behind refold's back, for the table tests.

Usage: foreign_engine.py --uri sqlite:////abs/catalog.db --warehouse file:///abs/wh
                         [--catalog refold] COMMAND [args]

Commands:
  create-catalog --namespace NS [--table NS.NAME]
      create the catalog tables the way PyIceberg's SqlCatalog does (V1 schema, with
      iceberg_type), a namespace, and optionally a table of PyIceberg's own
  rewrite --table T [--drop-property KEY]...
      read every live row and overwrite the table with them (a rewrite committing
      snapshots without refold's summary keys, like OPTIMIZE or rewrite_data_files), then
      expire every snapshot but the current one; optionally remove table properties
  append-row --table T --row JSON
      append one row (a second writer); JSON has the table's columns, `state` as an object,
      `last_event_time_us` in microseconds
  remove-properties --table T KEY...
      remove table properties (a table refold did not create, or an operator's edit)
Prints "FOREIGN OK" at the end of a successful command.
"""
import argparse
import datetime
import json
import sys

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType


def catalog(a):
    return SqlCatalog(a.catalog, uri=a.uri, warehouse=a.warehouse)


def create_catalog(a):
    cat = catalog(a)
    cat.create_namespace_if_not_exists(a.namespace)
    if a.table:
        cat.create_table(a.table, Schema(
            NestedField(1, "id", LongType(), required=True),
            NestedField(2, "name", StringType(), required=False),
        ))
    print("namespaces", cat.list_namespaces())


def rewrite(a):
    cat = catalog(a)
    t = cat.load_table(a.table)
    rows = t.scan().to_arrow()
    t.overwrite(rows)
    t = cat.load_table(a.table)
    current = t.current_snapshot().snapshot_id
    old = [s.snapshot_id for s in t.metadata.snapshots if s.snapshot_id != current]
    if old:
        t.maintenance.expire_snapshots().by_ids(old).commit()
    t = cat.load_table(a.table)
    if a.drop_property:
        with t.transaction() as tx:
            tx.remove_properties(*a.drop_property)
        t = cat.load_table(a.table)
    snap = t.current_snapshot()
    print("rewrote", rows.num_rows, "rows; snapshots left", len(t.metadata.snapshots),
          "current", snap.snapshot_id, snap.summary.operation.value)


def append_row(a):
    cat = catalog(a)
    t = cat.load_table(a.table)
    r = json.loads(a.row)
    r["state"] = json.dumps(r["state"], separators=(",", ":"), sort_keys=True)
    us = r.pop("last_event_time_us")
    r["last_event_time"] = datetime.datetime.fromtimestamp(us / 1e6, tz=datetime.timezone.utc)
    schema = t.schema().as_arrow()
    t.append(pa.Table.from_pylist([r], schema=schema))
    print("appended 1 row; current", t.current_snapshot().snapshot_id)


def remove_properties(a):
    t = catalog(a).load_table(a.table)
    with t.transaction() as tx:
        tx.remove_properties(*a.keys)
    print("removed", a.keys)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--catalog", default="refold")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-catalog")
    c.add_argument("--namespace", required=True)
    c.add_argument("--table")
    c = sub.add_parser("rewrite")
    c.add_argument("--table", required=True)
    c.add_argument("--drop-property", action="append", default=[])
    c = sub.add_parser("append-row")
    c.add_argument("--table", required=True)
    c.add_argument("--row", required=True)
    c = sub.add_parser("remove-properties")
    c.add_argument("--table", required=True)
    c.add_argument("keys", nargs="+")
    a = ap.parse_args()
    {
        "create-catalog": create_catalog,
        "rewrite": rewrite,
        "append-row": append_row,
        "remove-properties": remove_properties,
    }[a.cmd](a)
    print("FOREIGN OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

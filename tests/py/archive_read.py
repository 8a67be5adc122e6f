"""Reads a refold event archive with PyIceberg: one JSON object per archived event,
sorted by (kafka_partition, kafka_offset), with the columns a test checks.

Usage:
  archive_read.py --catalog WAREHOUSE/catalog.db --table domain.orders.order_events_archive

Prints {"partition", "offset", "event_id", "event_type", "entity_key", "tenant_id",
"version", "data"} per row (data parsed from its JSON text). Every row is printed, duplicates
included: the caller counts them.
"""
import argparse
import json
import os

from pyiceberg.catalog.sql import SqlCatalog


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", required=True, help="path of the warehouse's catalog.db")
    ap.add_argument("--table", required=True)
    a = ap.parse_args()
    db = os.path.abspath(a.catalog)
    warehouse = os.path.dirname(db)
    catalog = SqlCatalog("refold", uri=f"sqlite:///{db}", warehouse=f"file://{warehouse}")
    rows = catalog.load_table(a.table).scan().to_arrow().to_pylist()
    rows.sort(key=lambda r: (r["kafka_partition"], r["kafka_offset"]))
    for r in rows:
        print(json.dumps({
            "partition": r["kafka_partition"],
            "offset": r["kafka_offset"],
            "event_id": r["event_id"],
            "event_type": r["event_type"],
            "entity_key": r["entity_key"],
            "tenant_id": r["tenant_id"],
            "version": r["version"],
            "data": json.loads(r["data"]),
        }, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

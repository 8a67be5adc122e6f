"""Reads a refold state table through PyIceberg's Glue catalog (boto3) on a local Glue (moto).

Usage:
  glue_read.py --endpoint http://127.0.0.1:PORT --table domain_orders.current_state \
               [--key-field order_id]

Prints one JSON object: {"metadata_location": ..., "rows": [...]}, each row with tenant_id,
the key field, state (parsed), last_offset, events_folded, last_event_id, sorted by (tenant_id, key).
Credentials and region come from the AWS_* variables (dummies for moto).
"""
import argparse
import json
import os
import sys

from pyiceberg.catalog.glue import GlueCatalog


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--key-field", default="order_id")
    a = ap.parse_args()

    key = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
    region = os.environ.get("AWS_REGION", "us-east-1")
    cat = GlueCatalog(
        "glue",
        **{
            "glue.endpoint": a.endpoint,
            "glue.region": region,
            "glue.access-key-id": key,
            "glue.secret-access-key": secret,
            "s3.endpoint": a.endpoint,
            "s3.region": region,
            "s3.access-key-id": key,
            "s3.secret-access-key": secret,
            "s3.force-virtual-addressing": "false",
        },
    )
    t = cat.load_table(a.table)
    rows = []
    for r in t.scan().to_arrow().to_pylist():
        rows.append({
            "tenant_id": r["tenant_id"],
            a.key_field: r[a.key_field],
            "state": json.loads(r["state"]),
            "last_offset": r["last_offset"],
            "events_folded": r["events_folded"],
            "last_event_id": r["last_event_id"],
        })
    rows.sort(key=lambda r: (r["tenant_id"], r[a.key_field]))
    json.dump({"metadata_location": t.metadata_location, "rows": rows}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

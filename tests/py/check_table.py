"""Reads a refold state table back with PyIceberg and compares it with the rows refold wrote.

Usage:
  check_table.py --uri sqlite:////abs/wh/catalog.db --warehouse file:///abs/wh \
                 --table domain.orders.current_state --expect rows.jsonl [--key-field order_id]
                 [--offsets '{"0": 12}'] [--offsets-key refold.offsets.<topic>.<group>]
                 [--s3-endpoint http://127.0.0.1:PORT]

`rows.jsonl`: one JSON object per expected row with tenant_id, <key field>, state (object),
source_partition, last_offset, last_event_id, last_event_time_us, events_folded.
Exit 0 and "PYICEBERG OK" when PyIceberg's scan gives exactly those rows; 1 with a diff if not.
"""
import argparse
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--catalog", default="refold")
    ap.add_argument("--table", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--key-field", default="order_id")
    ap.add_argument("--offsets")
    ap.add_argument("--offsets-key")
    ap.add_argument("--s3-endpoint")
    a = ap.parse_args()

    props = {"uri": a.uri, "warehouse": a.warehouse}
    if a.s3_endpoint:
        props.update({
            "s3.endpoint": a.s3_endpoint,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing",
            "s3.region": "us-east-1",
            "s3.force-virtual-addressing": "false",
        })
    cat = SqlCatalog(a.catalog, **props)
    t = cat.load_table(a.table)
    snap = t.current_snapshot()
    print("format-version", t.metadata.format_version, "snapshots", len(t.metadata.snapshots),
          "current", snap.snapshot_id if snap else None, snap.summary.operation.value if snap else None)

    ok = True
    # Refold writes position deletes only (PyIceberg refuses equality deletes).
    for task in t.scan().plan_files():
        for d in task.delete_files:
            if d.content.value != 1:
                print("FAIL: non-position delete file", d.file_path)
                ok = False

    arrow = t.scan().to_arrow()
    got = {}
    for r in arrow.to_pylist():
        ident = (r["tenant_id"], r[a.key_field])
        if ident in got:
            print("FAIL: two live rows for", ident)
            ok = False
        ts = r["last_event_time"]
        got[ident] = {
            "tenant_id": r["tenant_id"],
            a.key_field: r[a.key_field],
            "state": json.loads(r["state"]),
            "source_partition": r["source_partition"],
            "last_offset": r["last_offset"],
            "last_event_id": r["last_event_id"],
            "last_event_time_us": (int(ts.timestamp()) * 1_000_000 + ts.microsecond) if ts is not None else None,
            "events_folded": r["events_folded"],
        }
    want = {}
    with open(a.expect) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                want[(r["tenant_id"], r[a.key_field])] = r

    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    for k in missing[:10]:
        print("FAIL missing", k, want[k])
    for k in extra[:10]:
        print("FAIL extra", k, got[k])
    for k in differ[:10]:
        print("FAIL differs", k, "\n  want", want[k], "\n  got ", got[k])
    ok &= not (missing or extra or differ)

    # A filtered scan must apply the deletes too.
    if want:
        k = sorted(want)[len(want) // 2]
        rows = t.scan(row_filter=f"{a.key_field} = '{k[1]}' and tenant_id = '{k[0]}'").to_arrow().to_pylist()
        if len(rows) != 1 or rows[0]["events_folded"] != want[k]["events_folded"]:
            print("FAIL filtered scan for", k, rows)
            ok = False

    if a.offsets:
        props = snap.summary.additional_properties if snap else {}
        have = json.loads(props.get(a.offsets_key, "{}"))
        if have != json.loads(a.offsets):
            print("FAIL offsets", have, "want", a.offsets)
            ok = False

    print("rows", len(got), "expected", len(want))
    print("PYICEBERG", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

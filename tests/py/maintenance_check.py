"""PyIceberg's view of a refold table under maintenance: an oracle independent of refold for
the snapshot-compactor's tests.

Usage: maintenance_check.py --uri sqlite:////abs/wh/catalog.db --warehouse file:///abs/wh \
                            --table domain.orders.current_state COMMAND [args]

Commands:
  files
      print one JSON object: "referenced" (every file PyIceberg says the table's metadata
      references: metadata files of the log, manifest lists, manifests, data and delete files
      of every kept snapshot), "snapshots" (ids), "refs" ({name: snapshot id})
  rows [--ref NAME | --snapshot-id N] --expect ROWS.jsonl [--key-field order_id]
      scan the table (now, at a tag/branch, or at a snapshot) and compare with the expected
      rows (check_table.py's shape)
  scan-all
      scan every kept snapshot in full (every data and delete file it references is read):
      fails if any referenced file is missing
Prints "PYICEBERG OK" at the end of a successful command.
"""
import argparse
import json
import sys
from urllib.parse import urlparse, unquote

from pyiceberg.catalog.sql import SqlCatalog


def load(a):
    cat = SqlCatalog(a.catalog, uri=a.uri, warehouse=a.warehouse)
    return cat.load_table(a.table)


def canonical(p):
    """file:///x, file:/x and /x as one form (refold's canonical_path does the same)."""
    u = urlparse(p)
    if u.scheme in ("", "file"):
        path = unquote(u.path)
        while "//" in path:
            path = path.replace("//", "/")
        return "file://" + path
    if u.scheme in ("s3", "s3a", "s3n"):
        return f"s3://{u.netloc}{u.path}"
    return p


def files(a):
    t = load(a)
    md = t.metadata
    ref = set()
    ref.add(canonical(t.metadata_location))
    for e in md.metadata_log:
        ref.add(canonical(e.metadata_file))
    for s in md.snapshots:
        ref.add(canonical(s.manifest_list))
    if md.snapshots:
        for r in t.inspect.all_manifests().to_pylist():
            ref.add(canonical(r["path"]))
        for r in t.inspect.all_files().to_pylist():
            ref.add(canonical(r["file_path"]))
    out = {
        "referenced": sorted(ref),
        "snapshots": sorted(s.snapshot_id for s in md.snapshots),
        "refs": {name: r.snapshot_id for name, r in md.refs.items()},
    }
    print(json.dumps(out))


def row_of(r, key_field):
    ts = r["last_event_time"]
    return {
        "tenant_id": r["tenant_id"],
        key_field: r[key_field],
        "state": json.loads(r["state"]),
        "source_partition": r["source_partition"],
        "last_offset": r["last_offset"],
        "last_event_id": r["last_event_id"],
        "last_event_time_us": (int(ts.timestamp()) * 1_000_000 + ts.microsecond) if ts is not None else None,
        "events_folded": r["events_folded"],
    }


def rows(a):
    t = load(a)
    snapshot_id = a.snapshot_id
    if a.ref:
        r = t.metadata.refs.get(a.ref)
        if r is None:
            print("FAIL: no ref", a.ref, "in", sorted(t.metadata.refs))
            return 1
        snapshot_id = r.snapshot_id
    scan = t.scan(snapshot_id=snapshot_id) if snapshot_id is not None else t.scan()
    got = {}
    ok = True
    for r in scan.to_arrow().to_pylist():
        k = (r["tenant_id"], r[a.key_field])
        if k in got:
            print("FAIL: two live rows for", k)
            ok = False
        got[k] = row_of(r, a.key_field)
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
    print("snapshot", snapshot_id, "rows", len(got), "expected", len(want))
    return 0 if ok else 1


def scan_all(a):
    t = load(a)
    n = 0
    for s in t.metadata.snapshots:
        tbl = t.scan(snapshot_id=s.snapshot_id).to_arrow()
        n += 1
        print("snapshot", s.snapshot_id, "rows", tbl.num_rows)
    print("scanned", n, "snapshots")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--catalog", default="refold")
    ap.add_argument("--table", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("files")
    r = sub.add_parser("rows")
    r.add_argument("--ref")
    r.add_argument("--snapshot-id", type=int)
    r.add_argument("--expect", required=True)
    r.add_argument("--key-field", default="order_id")
    sub.add_parser("scan-all")
    a = ap.parse_args()
    rc = {"files": files, "rows": rows, "scan-all": scan_all}[a.cmd](a) or 0
    print("PYICEBERG", "OK" if rc == 0 else "FAILED")
    return rc


if __name__ == "__main__":
    sys.exit(main())

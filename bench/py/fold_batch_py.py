#!/usr/bin/env python3
"""fold-batch the way a Python team would write it: the baseline of `make bench`.

    fold_batch_py.py WORKDIR --keys N [--warehouse s3://B/P --s3-endpoint URL] PAYLOAD.json...

A Lambda-style handler per ESM payload: decode the records (base64, the envelope validated
by the seed oracle's own rules, tests/py/seed_fold.py), group by (tenant_id, order_id) in
offset order, read the keys' prior states from the table (a PyIceberg scan filtered on the
batch's keys), fold with the seed pipeline's own Python fold (CPython `exec`, as
seed_fold.py runs it), and merge with PyIceberg's `Table.upsert` into an Iceberg table of
the same layout as refold's (identifier fields tenant_id + order_id, state as a JSON string,
partitioned by source_partition), in a SQL (SQLite) catalog in WORKDIR; the table's files
in WORKDIR/warehouse, or with --warehouse on S3 (--s3-endpoint: moto, path-style; the
credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION).

The table is first loaded with N keys (one append). Prints one JSON line per payload:
{"events": E, "ms": wall, "cpu_ms": process CPU time, "peak_rss_kb": k}.
"""
import argparse
import base64
import datetime
import json
import os
import resource
import sys
import time

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (IntegerType, LongType, NestedField, StringType,
                             TimestamptzType)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "py"))
import seed_fold  # noqa: E402  (the oracle's envelope rules and fold runner)

PIPELINE = os.path.join(HERE, "..", "..", "pipelines", "order-events-pipeline.yaml")
TENANTS = ["acme", "globex", "initech", "umbrella"]
UTC = datetime.timezone.utc

SCHEMA = Schema(
    NestedField(1, "tenant_id", StringType(), required=True),
    NestedField(2, "order_id", StringType(), required=True),
    NestedField(3, "state", StringType(), required=True),
    NestedField(4, "source_partition", IntegerType(), required=True),
    NestedField(5, "last_offset", LongType(), required=True),
    NestedField(6, "last_event_id", StringType(), required=True),
    NestedField(7, "last_event_time", TimestamptzType(), required=True),
    NestedField(8, "events_folded", LongType(), required=True),
    identifier_field_ids=[1, 2],
)
ARROW = pa.schema([
    pa.field("tenant_id", pa.string(), nullable=False),
    pa.field("order_id", pa.string(), nullable=False),
    pa.field("state", pa.string(), nullable=False),
    pa.field("source_partition", pa.int32(), nullable=False),
    pa.field("last_offset", pa.int64(), nullable=False),
    pa.field("last_event_id", pa.string(), nullable=False),
    pa.field("last_event_time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("events_folded", pa.int64(), nullable=False),
])


def open_table(workdir, warehouse, s3_endpoint):
    props = {}
    if s3_endpoint:
        props = {"s3.endpoint": s3_endpoint,
                 "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                 "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                 "s3.region": os.environ.get("AWS_REGION", "us-east-1")}
    catalog = SqlCatalog("bench", uri=f"sqlite:///{workdir}/catalog.db",
                         warehouse=warehouse or f"file://{workdir}/warehouse", **props)
    catalog.create_namespace_if_not_exists("bench")
    spec = PartitionSpec(PartitionField(4, 1000, IdentityTransform(), "source_partition"))
    return catalog.create_table("bench.orders", SCHEMA, partition_spec=spec)


def load(table, keys):
    """N keys, each as one OrderPlaced left it (the payload generator's rule)."""
    t0 = datetime.datetime(2026, 2, 1, 8, tzinfo=UTC)
    ids = [f"order-{i:09d}" for i in range(keys)]
    cols = {
        "tenant_id": [TENANTS[i % 4] for i in range(keys)],
        "order_id": ids,
        "state": [json.dumps({"amount": round(5 + (i % 89500) / 100, 2), "status": "placed"},
                             sort_keys=True) for i in range(keys)],
        "source_partition": [0] * keys,
        "last_offset": list(range(keys)),
        "last_event_id": [f"evt-{i}-{i}" for i in range(keys)],
        "last_event_time": [t0] * keys,
        "events_folded": [1] * keys,
    }
    table.append(pa.table(cols, schema=ARROW))


def decode(payload, key_field, event_types):
    """(tenant, key) -> [(offset, partition, envelope)] in offset order; rejected count."""
    groups, rejected = {}, 0
    for tp in sorted(payload["records"]):
        for r in sorted(payload["records"][tp], key=lambda r: r["offset"]):
            try:
                env = seed_fold.validate_envelope(base64.b64decode(r["value"]))
                if event_types and env["event_type"] not in event_types:
                    continue
                rid = (env["tenant_id"], seed_fold.entity_key(env, key_field))
            except seed_fold.Rejected:
                rejected += 1
                continue
            groups.setdefault(rid, []).append((r["offset"], r["partition"], env))
    return groups, rejected


def priors(table, groups):
    keys = sorted({k for _, k in groups})
    if not keys:
        return {}
    rows = table.scan(row_filter=In("order_id", keys)).to_arrow().to_pylist()
    return {(r["tenant_id"], r["order_id"]): r for r in rows}


def handle(table, fold, key_field, event_types, payload):
    groups, _ = decode(payload, key_field, event_types)
    before = priors(table, groups)
    out = []
    for rid, events in groups.items():
        prior = before.get(rid)
        state = json.loads(prior["state"]) if prior else {}
        n, last = 0, None
        for offset, partition, env in events:
            try:
                new = fold(state, seed_fold.Event(env))
                if not isinstance(new, dict):
                    raise ValueError("fold must return a dict")
                seed_fold.check_state(new)
            except Exception:  # noqa: BLE001  the event is set aside, the key goes on
                continue
            state, n, last = new, n + 1, (offset, partition, env)
        if last is None:
            continue
        offset, partition, env = last
        out.append({
            "tenant_id": rid[0], "order_id": rid[1],
            "state": json.dumps(state, sort_keys=True, separators=(",", ":")),
            "source_partition": partition, "last_offset": offset,
            "last_event_id": env["event_id"],
            "last_event_time": datetime.datetime.fromisoformat(
                env["timestamp"].replace("Z", "+00:00")),
            "events_folded": (prior["events_folded"] if prior else 0) + n,
        })
    table.upsert(pa.Table.from_pylist(out, schema=ARROW), join_cols=["tenant_id", "order_id"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--warehouse", help="s3://bucket/prefix (default: WORKDIR/warehouse)")
    ap.add_argument("--s3-endpoint", help="S3 endpoint URL (moto)")
    ap.add_argument("payloads", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    source, key_field, event_types = seed_fold.load_pipeline(PIPELINE)
    fold = seed_fold.compile_fold(source)
    table = open_table(a.workdir, a.warehouse, a.s3_endpoint)
    load(table, a.keys)
    for path in a.payloads:
        with open(path, "rb") as fh:
            raw = fh.read()
        t0, c0 = time.perf_counter(), time.process_time()
        payload = json.loads(raw)
        events = sum(len(v) for v in payload["records"].values())
        handle(table, fold, key_field, event_types, payload)
        table = table.refresh()
        ms = (time.perf_counter() - t0) * 1e3
        cpu_ms = (time.process_time() - c0) * 1e3
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"events": events, "ms": round(ms, 1), "cpu_ms": round(cpu_ms, 1),
                          "peak_rss_kb": rss}), flush=True)


if __name__ == "__main__":
    main()

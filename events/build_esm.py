#!/usr/bin/env python3
"""Builds a real Kafka event source mapping (ESM) payload from a JSONL file of envelopes.

    python3 events/build_esm.py [--events events/orders.jsonl] [--out events/esm/orders-batch.json]
                                [--topic domain.orders.events] [--partitions 3]
                                [--key-field order_id] [--self-managed]

What Lambda delivers for MSK (`"eventSource": "aws:kafka"`) or self-managed Kafka
(`"eventSource": "SelfManagedKafka"`): `records` keyed "<topic>-<partition>", each record with
topic, partition, offset, timestamp (ms), timestampType, key and value as standard base64,
headers. Each line is one record, in file order; its key is `data.<key-field>` when present,
else `entity_id` (malformed lines go unkeyed); its partition is crc32(key) mod `--partitions`
(unkeyed: partition 0); offsets count up from 0 per partition. One extra record whose value is
not base64 is appended to the last partition (a poison record the handler must dead-letter).
The result must stay under Lambda's 6 MB synchronous payload limit; the script fails if not.

Use it with: cargo lambda invoke fold-batch --data-file events/esm/orders-batch.json
"""

import argparse
import base64
import datetime
import json
import os
import sys
import zlib

LIMIT = 6 * 1024 * 1024
BASE_TS_MS = 1_769_904_000_000  # 2026-02-01T00:00:00Z, for lines without a timestamp


def key_of(line, key_field):
    try:
        v = json.loads(line)
    except ValueError:
        return None
    if not isinstance(v, dict):
        return None
    data = v.get("data")
    for candidate in ((data or {}).get(key_field) if isinstance(data, dict) else None, v.get("entity_id")):
        if isinstance(candidate, (str, int, float)) and not isinstance(candidate, bool):
            return str(candidate)
    return None


def timestamp_ms(line, index):
    try:
        ts = json.loads(line).get("timestamp")
        dt = datetime.datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        return int(dt.timestamp() * 1000)
    except Exception:  # noqa: BLE001 - malformed lines get a synthetic time
        return BASE_TS_MS + index


def b64(b):
    return base64.b64encode(b).decode("ascii")


def build(lines, topic, partitions, key_field, self_managed):
    records = {}
    next_offset = [0] * partitions
    for i, line in enumerate(lines):
        key = key_of(line, key_field)
        p = zlib.crc32(key.encode()) % partitions if key is not None else 0
        rec = {
            "topic": topic,
            "partition": p,
            "offset": next_offset[p],
            "timestamp": timestamp_ms(line, i),
            "timestampType": "CREATE_TIME",
            "key": b64(key.encode()) if key is not None else None,
            "value": b64(line),
            "headers": [{"source": list(b"refold-events")}],
        }
        next_offset[p] += 1
        records.setdefault(f"{topic}-{p}", []).append(rec)
    # The poison record: a value that is not base64.
    p = partitions - 1
    records.setdefault(f"{topic}-{p}", []).append({
        "topic": topic,
        "partition": p,
        "offset": next_offset[p],
        "timestamp": BASE_TS_MS + len(lines),
        "timestampType": "CREATE_TIME",
        "key": b64(b"poison"),
        "value": "this is *not* base64!",
        "headers": [],
    })
    event = {"eventSource": "SelfManagedKafka" if self_managed else "aws:kafka"}
    if not self_managed:
        event["eventSourceArn"] = (
            "arn:aws:kafka:us-east-1:000000000000:cluster/refold-local/"
            "00000000-0000-0000-0000-000000000000-1"
        )
    event["bootstrapServers"] = "b-1.refold-local.kafka.us-east-1.amazonaws.com:9092"
    event["records"] = records
    return event


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", default=os.path.join(here, "orders.jsonl"))
    ap.add_argument("--out", default=os.path.join(here, "esm", "orders-batch.json"))
    ap.add_argument("--topic", default="domain.orders.events")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--key-field", default="order_id")
    ap.add_argument("--self-managed", action="store_true")
    a = ap.parse_args()

    with open(a.events, "rb") as f:
        lines = [l.rstrip(b"\r\n") for l in f]
    lines = [l for l in lines if l.strip()]
    event = build(lines, a.topic, a.partitions, a.key_field, a.self_managed)
    body = json.dumps(event, separators=(",", ":")).encode()
    if len(body) >= LIMIT:
        sys.exit(f"build_esm: payload is {len(body)} bytes, over Lambda's 6 MB limit; use fewer events")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(body)
        f.write(b"\n")
    os.replace(tmp, a.out)
    counts = {k: len(v) for k, v in sorted(event["records"].items())}
    print(f"wrote {a.out}: {len(body)} bytes, {sum(counts.values())} records "
          f"({len(lines)} lines + 1 bad-base64), partitions {counts}")


if __name__ == "__main__":
    main()

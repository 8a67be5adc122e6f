#!/usr/bin/env python3
"""Writes events/orders.jsonl: a realistic, deterministic order event stream.

Two tenants, ~1,400 orders (`--orders N` for more), each a lifecycle of the seed's five event types
(placed -> confirmed -> shipped -> delivered, or cancelled at some step), interleaved in
time order; a few events of a type the pipeline does not fold (filtered), and a few
malformed lines (rejected), at fixed places so tests can count them.

    python3 events/gen_orders.py > events/orders.jsonl
    python3 events/gen_orders.py --orders 29000 --lines 100000 > /tmp/orders-100k.jsonl

`--lines N` keeps the first N lines in time order (malformed ones included); it fails when
the orders give fewer lines. The defaults write events/orders.jsonl byte for byte.
"""
import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

ap = argparse.ArgumentParser(description="Writes an order event stream (JSONL) to stdout.")
ap.add_argument("--orders", type=int, default=1400, help="orders (default 1400)")
ap.add_argument("--lines", type=int, default=None, help="exactly this many lines (default: all)")
args = ap.parse_args()

rng = random.Random(20260212)
START = datetime(2026, 2, 1, 8, 0, 0, tzinfo=timezone.utc)
TENANTS = ["tenant-acme", "tenant-globex"]
CURRENCIES = ["USD", "EUR", "GBP"]

events = []
for n in range(args.orders):
    tenant = TENANTS[n % 3 == 0]  # about a third for the second tenant
    order = f"order-{n:05d}"
    t = START + timedelta(seconds=rng.randint(0, 9 * 24 * 3600))
    customer = f"cust-{rng.randint(1, 400):04d}"
    amount = round(rng.uniform(5, 900), 2) if n % 50 else rng.randint(10, 500)  # some integer amounts
    steps = ["OrderPlaced", "OrderConfirmed", "OrderShipped", "OrderDelivered"]
    stop = rng.choices([1, 2, 3, 4], weights=[10, 15, 25, 50])[0]
    lifecycle = steps[:stop]
    if stop < 4 and rng.random() < 0.6:
        lifecycle.append("OrderCancelled")
    if rng.random() < 0.03:
        lifecycle.insert(1, "OrderNoteAdded")  # not in event_types: filtered
    for version, kind in enumerate(lifecycle, start=1):
        t += timedelta(minutes=rng.randint(1, 600), seconds=rng.randint(0, 59))
        data = {"customer_id": customer, "amount": amount, "currency": rng.choice(CURRENCIES)}
        if kind == "OrderShipped":
            data["carrier"] = rng.choice(["dhl", "ups", "fedex"])
        if kind == "OrderCancelled":
            data["reason"] = rng.choice(["customer_request", "payment_failed", "out_of_stock"])
        events.append({
            "event_id": f"evt-{n:05d}-{version}",
            "event_type": kind,
            "entity_type": "Order",
            "entity_id": order,
            "tenant_id": tenant,
            "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "version": 1,
            "data": data,
            "metadata": {"source": "order-service", "correlation_id": f"req-{rng.getrandbits(40):010x}"},
        })

events.sort(key=lambda e: (e["timestamp"], e["event_id"]))

# Malformed lines, each a different reason, at fixed positions.
bad_version = dict(events[10], event_id="evt-bad-version", version=0)
bad_time = dict(events[20], event_id="evt-bad-time", timestamp="2026-02-30 25:00")
no_tenant = {k: v for k, v in events[30].items() if k != "tenant_id"}
no_tenant["event_id"] = "evt-no-tenant"
malformed = [
    (100, '{"event_id": "evt-truncated", "event_type": "OrderPlaced", "entity'),
    (900, json.dumps(bad_version, separators=(",", ":"))),
    (1800, json.dumps(bad_time, separators=(",", ":"))),
    (2700, json.dumps(no_tenant, separators=(",", ":"))),
    (3600, "not json at all"),
]
if args.lines is not None:
    keep = args.lines - len(malformed)
    if args.lines <= max(pos for pos, _ in malformed) or keep > len(events):
        sys.exit(f"gen_orders: {args.orders} orders give {len(events) + len(malformed)} lines, "
                 f"and --lines must exceed {max(pos for pos, _ in malformed)}; asked for {args.lines}")
    events = events[:keep]
lines = [json.dumps(e, separators=(",", ":")) for e in events]
for pos, line in sorted(malformed, reverse=True):
    lines.insert(pos, line)

sys.stdout.write("\n".join(lines) + "\n")
print(f"{len(lines)} lines, {len(malformed)} malformed", file=sys.stderr)

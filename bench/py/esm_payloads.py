#!/usr/bin/env python3
"""Writes the ESM payloads both benches of fold-batch read (refold's and the Python way's).

    esm_payloads.py OUT_DIR --keys N --events E --batches B [--start-offset O]

A table of N keys holds `order-000000000` .. `order-{N-1}` (tenant `TENANTS[i % 4]`, one
`OrderPlaced` each; each bench loads them its own way). Batch b is a self-managed Kafka ESM
event (`aws_lambda_events` KafkaEvent JSON) of E records, all of partition 0 of topic
`domain.orders.events`, offsets O + b*E onwards, each keyed (Kafka key) by its order id:
90% on existing keys drawn uniformly (a lifecycle step, the seed fold's `{**state, ...}`
path), 10% `OrderPlaced` on keys new to the table. Deterministic (seeded).
"""
import argparse
import base64
import json
import os
import random

TENANTS = ["acme", "globex", "initech", "umbrella"]
STEPS = ["OrderConfirmed", "OrderShipped", "OrderDelivered", "OrderCancelled"]
TOPIC = "domain.orders.events"


def order_id(i):
    return f"order-{i:09d}"


def envelope(i, kind, n):
    return {
        "event_id": f"evt-{i}-{n}",
        "event_type": kind,
        "entity_type": "Order",
        "entity_id": order_id(i),
        "tenant_id": TENANTS[i % 4],
        "timestamp": "2026-02-01T08:00:00Z",
        "version": 1,
        "data": {"order_id": order_id(i), "customer_id": f"cust-{i % 400:04d}",
                 "amount": round(5 + (i % 89500) / 100, 2), "currency": "EUR"},
        "metadata": {"source": "order-service", "correlation_id": f"req-{n:010x}"},
    }


def batch(rng, keys, events, first_offset, next_new):
    recs = []
    for j in range(events):
        if keys == 0 or rng.random() < 0.1:
            i, kind = next_new, "OrderPlaced"
            next_new += 1
        else:
            i, kind = rng.randrange(keys), rng.choice(STEPS)
        off = first_offset + j
        value = json.dumps(envelope(i, kind, off), separators=(",", ":")).encode()
        recs.append({
            "topic": TOPIC, "partition": 0, "offset": off,
            "timestamp": 1769932800000 + off, "timestampType": "CREATE_TIME",
            "key": base64.b64encode(order_id(i).encode()).decode(),
            "value": base64.b64encode(value).decode(),
            "headers": [],
        })
    event = {"eventSource": "SelfManagedKafka", "bootstrapServers": "localhost:9092",
             "records": {f"{TOPIC}-0": recs}}
    return event, next_new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=1)
    ap.add_argument("--start-offset", type=int, default=None,
                    help="first offset (default: N, after the N loading events)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(20261202)
    offset = a.keys if a.start_offset is None else a.start_offset
    next_new = a.keys
    for b in range(a.batches):
        event, next_new = batch(rng, a.keys, a.events, offset, next_new)
        offset += a.events
        with open(os.path.join(a.out, f"batch-{b:03d}.json"), "w") as fh:
            json.dump(event, fh)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes events/examples/llm-ops.jsonl: the `matih.ai.llm-ops` topic, a deterministic
stream of LLM calls made by AI agents (seeded), one `LlmCallCompleted` event per call.

Two tenants, 48 agents, 3,400 calls (`--calls N`) over four models of three providers,
with latencies by model (log-normal, a long tail past the histogram's last bound now and
then), errors and rate limits, prompt cache hits, and costs from each model's prices. A few
calls are invalid (a negative latency, tokens as a string, an unknown status): the fold
rejects them. A few `LlmCallStarted` events (a type the pipeline does not fold) and five
malformed lines sit at fixed places. Event times carry milliseconds, some with a `+02:00`
offset (the fold keeps times in UTC).

    python3 events/examples/gen_llm_ops.py > events/examples/llm-ops.jsonl
"""
import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

ap = argparse.ArgumentParser(description="Writes an LLM call stream (JSONL).")
ap.add_argument("--calls", type=int, default=3400, help="LLM calls (default 3400)")
args = ap.parse_args()

rng = random.Random(20261212)
START = datetime(2026, 12, 1, 0, 0, 0, tzinfo=timezone.utc)
TENANTS = ["tenant-acme", "tenant-globex"]
# model -> (provider, USD per 1k input tokens, per 1k output tokens, median latency ms)
MODELS = {
    "gpt-4o": ("openai", 0.0025, 0.01, 1800),
    "gpt-4o-mini": ("openai", 0.00015, 0.0006, 700),
    "claude-sonnet": ("anthropic", 0.003, 0.015, 2200),
    "llama-3-70b": ("self-hosted", 0.0009, 0.0009, 1200),
}
AGENT_TYPES = ["planner", "sql-analyst", "retriever", "code-runner"]
TOPIC = "matih.ai.llm-ops"
CEST = timezone(timedelta(hours=2))

agents = []
for i in range(48):
    kind = rng.choice(AGENT_TYPES)
    models = rng.sample(sorted(MODELS), rng.randint(1, 3))
    agents.append((f"agent-{kind}-{i:03d}", kind, TENANTS[i % 3 == 0], models))


def stamp(t):
    if rng.random() < 0.1:  # some producers write local time with an offset
        t = t.astimezone(CEST)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+02:00"
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


events = []
for n in range(args.calls):
    agent_id, kind, tenant, models = rng.choice(agents)
    model = rng.choice(models)
    provider, pin, pout, median = MODELS[model]
    t = START + timedelta(seconds=rng.randint(0, 7 * 24 * 3600), milliseconds=rng.randint(0, 999))
    r = rng.random()
    status = "ok" if r > 0.06 else ("rate_limited" if r < 0.02 else "error")
    tin = rng.randint(150, 8000)
    tout = rng.randint(10, 1500) if status == "ok" else 0
    latency = int(rng.lognormvariate(0, 0.6) * median) if status != "rate_limited" else rng.randint(5, 60)
    if rng.random() < 0.004:
        latency = rng.randint(60_001, 120_000)  # a stuck call past the last bucket
    cache_hit = status == "ok" and rng.random() < 0.2
    cost = round((tin * (0.5 if cache_hit else 1.0)) / 1000 * pin + tout / 1000 * pout, 6)
    data = {
        "call_id": f"call-{n:05d}", "agent_id": agent_id, "agent_type": kind,
        "provider": provider, "model": model, "status": status, "tokens_in": tin,
        "tokens_out": tout, "cost_usd": cost if status == "ok" else 0.0,
        "latency_ms": latency, "cache_hit": cache_hit,
    }
    r = rng.random()
    if r < 0.002:
        data["latency_ms"] = -latency  # a broken clock
    elif r < 0.004:
        data["tokens_in"] = str(tin)  # a producer that writes numbers as strings
    elif r < 0.005:
        data["status"] = "timeout"  # not a status this topic defines
    events.append({
        "event_id": f"llm-{n:05d}", "event_type": "LlmCallCompleted",
        "entity_type": "LlmCall", "entity_id": data["call_id"], "tenant_id": tenant,
        "timestamp": stamp(t), "version": 1, "data": data,
        "metadata": {"source": "matih-ai-gateway", "topic": TOPIC, "region": "eu-west-1"},
    })
    if rng.random() < 0.003:
        events.append(dict(events[-1], event_id=f"llm-{n:05d}-start", event_type="LlmCallStarted",
                           data={"call_id": data["call_id"], "agent_id": agent_id, "model": model}))

# In time order (UTC), as a gateway appends them.
def utc(e):
    return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))


events.sort(key=lambda e: (utc(e), e["event_id"]))

# Malformed lines, each a different reason, at fixed positions.
bad_version = dict(events[10], event_id="llm-bad-version", version="1")
bad_time = dict(events[20], event_id="llm-bad-time", timestamp="2026-12-32T10:00:00Z")
no_entity = {k: v for k, v in events[30].items() if k != "entity_id"}
no_entity["event_id"] = "llm-no-entity"
bad_meta = dict(events[40], event_id="llm-bad-meta", metadata=["gateway"])
malformed = [
    (90, '{"event_id": "llm-truncated", "event_type": "LlmCallCompleted", "tenant_id": "tenant-a'),
    (600, json.dumps(bad_version, separators=(",", ":"))),
    (1400, json.dumps(bad_time, separators=(",", ":"))),
    (2200, json.dumps(no_entity, separators=(",", ":"))),
    (3000, json.dumps(bad_meta, separators=(",", ":"))),
]
lines = [json.dumps(e, separators=(",", ":")) for e in events]
if len(lines) <= max(pos for pos, _ in malformed):
    sys.exit(f"gen_llm_ops: {len(lines)} events are too few for the malformed lines")
for pos, line in sorted(malformed):
    lines.insert(pos, line)

sys.stdout.write("\n".join(lines) + "\n")
print(f"{len(lines)} lines, {len(malformed)} malformed", file=sys.stderr)

#!/usr/bin/env python3
"""Writes events/examples/agent-traces.jsonl: the `matih.ai.agent-traces` topic, a
deterministic stream of finished trace spans of AI agents (seeded).

Two tenants, 36 agents, 560 runs (`--runs N`). A run is one trace: LLM call spans and tool
call spans, then the agent's own span (the run, end to end), each event sent when its span
ends. Some calls and runs fail (status `error`). A few spans have no valid duration (a null
or a negative one, from a broken clock): the pipeline's fold rejects them. A few
`TraceStarted` events (a type the pipeline does not fold) and five malformed lines sit at
fixed places.

    python3 events/examples/gen_agent_traces.py > events/examples/agent-traces.jsonl
"""
import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

ap = argparse.ArgumentParser(description="Writes an agent trace span stream (JSONL).")
ap.add_argument("--runs", type=int, default=560, help="agent runs (default 560)")
args = ap.parse_args()

rng = random.Random(20261211)
START = datetime(2026, 12, 1, 0, 0, 0, tzinfo=timezone.utc)
TENANTS = ["tenant-acme", "tenant-globex"]
AGENT_TYPES = {"planner": 1.0, "sql-analyst": 0.8, "retriever": 0.5, "code-runner": 1.4}
# model -> (USD per 1k input tokens, per 1k output tokens)
MODELS = {"gpt-4o": (0.0025, 0.01), "gpt-4o-mini": (0.00015, 0.0006),
          "claude-sonnet": (0.003, 0.015), "llama-3-70b": (0.0009, 0.0009)}
TOOLS = ["sql.query", "vector.search", "http.get", "python.exec", "catalog.lookup",
         "chart.render", "s3.read"]
TOPIC = "matih.ai.agent-traces"

agents = []
for i in range(36):
    kind = rng.choice(sorted(AGENT_TYPES))
    agents.append((f"agent-{kind}-{i:03d}", kind, TENANTS[i % 3 == 0]))

events = []
seq = 0


def emit(kind, agent, t, data):
    global seq
    seq += 1
    agent_id, agent_type, tenant = agent
    events.append({
        "event_id": f"tr-{seq:06d}",
        "event_type": kind,
        "entity_type": "Span" if kind == "SpanEnded" else "Trace",
        "entity_id": data.get("span_id", data["trace_id"]),
        "tenant_id": tenant,
        "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
        "version": 1,
        "data": {"agent_id": agent_id, "agent_type": agent_type, **data},
        "metadata": {"source": "matih-ai-tracing", "topic": TOPIC},
    })


def duration(ms):
    """A span's duration; now and then none or a negative one (a broken clock)."""
    r = rng.random()
    if r < 0.003:
        return None
    if r < 0.006:
        return -rng.randint(1, 500)
    return ms


for run in range(args.runs):
    agent = rng.choice(agents)
    trace = f"{rng.getrandbits(64):016x}"
    root = f"{trace}-0"
    t = START + timedelta(seconds=rng.randint(0, 7 * 24 * 3600), milliseconds=rng.randint(0, 999))
    begin = t
    if rng.random() < 0.02:
        emit("TraceStarted", agent, t, {"trace_id": trace})
    ok_run = True
    n_spans = 0
    for step in range(rng.randint(1, 4)):
        n_spans += 1
        model = rng.choice(sorted(MODELS))
        tin = rng.randint(200, 6000)
        tout = rng.randint(20, 1200)
        ms = int(rng.lognormvariate(7.0, 0.7) * AGENT_TYPES[agent[1]])
        t += timedelta(milliseconds=ms)
        status = "ok" if rng.random() > 0.03 else "error"
        pin, pout = MODELS[model]
        cost = round(tin / 1000 * pin + tout / 1000 * pout, 6) if status == "ok" else 0.0
        emit("SpanEnded", agent, t, {
            "trace_id": trace, "span_id": f"{trace}-{n_spans}", "parent_span_id": root,
            "span_kind": "llm", "name": f"llm.{model}", "status": status,
            "duration_ms": duration(ms), "model": model, "tokens_in": tin,
            "tokens_out": tout if status == "ok" else 0, "cost_usd": cost})
        for _ in range(rng.choice([0, 1, 1, 2])):
            n_spans += 1
            tool = rng.choice(TOOLS)
            ms = int(rng.lognormvariate(5.0, 1.1))
            t += timedelta(milliseconds=ms)
            status = "ok" if rng.random() > 0.05 else "error"
            emit("SpanEnded", agent, t, {
                "trace_id": trace, "span_id": f"{trace}-{n_spans}", "parent_span_id": root,
                "span_kind": "tool", "name": f"tool.{tool}", "tool": tool, "status": status,
                "duration_ms": duration(ms)})
            ok_run = ok_run and (status == "ok" or rng.random() < 0.7)
    t += timedelta(milliseconds=rng.randint(5, 400))
    total = int((t - begin).total_seconds() * 1000)
    emit("SpanEnded", agent, t, {
        "trace_id": trace, "span_id": root, "parent_span_id": None, "span_kind": "agent",
        "name": f"agent.{agent[1]}.run", "status": "ok" if ok_run else "error",
        "duration_ms": duration(total)})

events.sort(key=lambda e: (e["timestamp"], e["event_id"]))

# Malformed lines, each a different reason, at fixed positions.
bad_version = dict(events[10], event_id="tr-bad-version", version=-1)
bad_time = dict(events[20], event_id="tr-bad-time", timestamp="2026-12-01 09:00")
no_type = {k: v for k, v in events[30].items() if k != "event_type"}
no_type["event_id"] = "tr-no-type"
bad_key = dict(events[40], event_id="tr-bad-key", data={**events[40]["data"], "agent_id": ""})
malformed = [
    (120, '{"event_id": "tr-truncated", "event_type": "SpanEnded", "data": {"agent_id"'),
    (700, json.dumps(bad_version, separators=(",", ":"))),
    (1500, json.dumps(bad_time, separators=(",", ":"))),
    (2300, json.dumps(no_type, separators=(",", ":"))),
    (3100, json.dumps(bad_key, separators=(",", ":"))),
]
lines = [json.dumps(e, separators=(",", ":")) for e in events]
if len(lines) <= max(pos for pos, _ in malformed):
    sys.exit(f"gen_agent_traces: {len(lines)} events are too few for the malformed lines")
for pos, line in sorted(malformed):
    lines.insert(pos, line)

sys.stdout.write("\n".join(lines) + "\n")
print(f"{len(lines)} lines, {len(malformed)} malformed", file=sys.stderr)

"""An independent oracle for the example pipeline with a native Rust fold
(pipelines/examples/llm-ops-pipeline.yaml, `fold_native: llm_ops`).

Usage:
  examples_oracle.py PIPELINE.yaml EVENTS.jsonl [--dead-letters FILE] [--quiet]

seed_fold.py runs a pipeline's `fold_function`; a native fold has none. This script
re-states the `llm_ops` fold in Python from its documentation (the header of
shared/src/fold/native/llm_ops.rs and the pipeline's comments), without reading or running
refold's code, and folds EVENTS.jsonl with seed_fold.py's rules for envelopes, filtering,
keys and rejections (imported from it: it is the other oracle, not refold). Its output and
--dead-letters file have seed_fold.py's format, so the tests read both the same way.
"""
import argparse
import datetime
import json
import math
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed_fold  # noqa: E402  (the sibling oracle, for the envelope rules)

BOUNDS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]
MAX_MODELS = 16
STATUSES = ("ok", "error", "rate_limited")
I64_MAX = 2 ** 63 - 1
EPOCH = datetime.date(1970, 1, 1)


class Invalid(Exception):
    """The fold rejects the event."""


MISSING = object()


def attr(event, name):
    """`event.<name>` as a fold sees it, or MISSING."""
    try:
        return getattr(event, name)
    except AttributeError:
        return MISSING


def kind(v):
    """The JSON kind, as refold names it in messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def micros(ts):
    """An RFC 3339 time in microseconds since the epoch, UTC (a fraction beyond microseconds
    truncated; second 60 is the next minute's first second)."""
    m = seed_fold.RFC3339.fullmatch(ts)
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    frac = int((m.group(7) or ".")[1:7].ljust(6, "0"))
    offset = 0
    if m.group(9):
        offset = int(m.group(9)) * 3600 + int(m.group(10)) * 60
        if m.group(8)[0] != "+":
            offset = -offset
    days = (datetime.date(y, mo, d) - EPOCH).days
    return (days * 86400 + h * 3600 + mi * 60 + s - offset) * 1_000_000 + frac


def rfc3339(us):
    """UTC, `Z`, and 0, 3 or 6 fraction digits: the fewest that keep the value."""
    secs, frac = divmod(us, 1_000_000)
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return text + "Z"
    if frac % 1000 == 0:
        return f"{text}.{frac // 1000:03d}Z"
    return f"{text}.{frac:06d}Z"


def bucket(ms):
    for i, bound in enumerate(BOUNDS_MS):
        if ms <= bound:
            return i
    return len(BOUNDS_MS)


def percentile(hist, n, p, max_ms):
    rank = (p * n + 99) // 100  # ceil(p * n / 100), nearest rank
    seen = 0
    for i, c in enumerate(hist):
        seen += c
        if seen >= rank:
            return min(BOUNDS_MS[i], max_ms) if i < len(BOUNDS_MS) else max_ms
    return max_ms


def count(event, call, name):
    v = attr(event, name)
    if v is MISSING:
        raise Invalid(f"invalid LLM call {call}: `{name}` is missing")
    if seed_fold._is_int(v) and v >= 0:
        return v
    if seed_fold._is_int(v):
        raise Invalid(f"invalid LLM call {call}: `{name}` must be a non-negative integer, got {v}")
    raise Invalid(f"invalid LLM call {call}: `{name}` must be a non-negative integer, "
                  f"got {kind(v)}")


def llm_ops(state, event):
    """One call folded onto an agent's aggregate (a new dict; `state` is not changed)."""
    call = attr(event, "call_id")
    if not isinstance(call, str):
        call = event.event_id
    status = attr(event, "status")
    if isinstance(status, str) and status not in STATUSES:
        raise Invalid(f"invalid LLM call {call}: unknown status `{status}`")
    if status not in STATUSES:
        raise Invalid(f"invalid LLM call {call}: `status` must be a string")
    model = attr(event, "model")
    if not isinstance(model, str):
        raise Invalid(f"invalid LLM call {call}: `model` must be a string")
    tokens_in = count(event, call, "tokens_in")
    tokens_out = count(event, call, "tokens_out")
    latency = count(event, call, "latency_ms")
    cost = attr(event, "cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
        raise Invalid(f"invalid LLM call {call}: `cost_usd` must be a non-negative number")
    cache_hit = attr(event, "cache_hit") is True
    s = state or {"calls": 0, "errors": 0, "rate_limited": 0, "cache_hits": 0,
                  "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0,
                  "hist": [0] * (len(BOUNDS_MS) + 1), "max_ms": 0, "models": {}}
    if s["tokens_in"] + tokens_in > I64_MAX:
        raise Invalid(f"invalid LLM call {call}: `tokens_in` total past 64 bits")
    if s["tokens_out"] + tokens_out > I64_MAX:
        raise Invalid(f"invalid LLM call {call}: `tokens_out` total past 64 bits")
    cost_usd = s["cost_usd"] + float(cost)
    if not math.isfinite(cost_usd):
        raise Invalid(f"invalid LLM call {call}: `cost_usd` total past a double")
    at = micros(event.timestamp)
    hist = list(s["hist"])
    hist[bucket(latency)] += 1
    models = dict(s["models"])
    name = model if model in models or len(models) < MAX_MODELS else "other"
    models[name] = models.get(name, 0) + 1
    first = s["calls"] == 0
    return {
        "calls": s["calls"] + 1,
        "errors": s["errors"] + (status != "ok"),
        "rate_limited": s["rate_limited"] + (status == "rate_limited"),
        "cache_hits": s["cache_hits"] + cache_hit,
        "tokens_in": s["tokens_in"] + tokens_in,
        "tokens_out": s["tokens_out"] + tokens_out,
        "cost_usd": cost_usd,
        "hist": hist,
        "max_ms": max(s["max_ms"], latency),
        "models": models,
        "last_model": model,
        "last_ok": status == "ok",
        "first_us": at if first else min(s["first_us"], at),
        "last_us": at if first else max(s["last_us"], at),
    }


def columns(s):
    """The aggregate as the pipeline's typed columns."""
    n, mx = s["calls"], s["max_ms"]
    return {
        "calls": n, "errors": s["errors"], "rate_limited": s["rate_limited"],
        "cache_hits": s["cache_hits"], "tokens_in": s["tokens_in"],
        "tokens_out": s["tokens_out"], "cost_usd": s["cost_usd"],
        "latency_hist": s["hist"], "latency_max_ms": mx,
        "latency_p50_ms": percentile(s["hist"], n, 50, mx),
        "latency_p95_ms": percentile(s["hist"], n, 95, mx),
        "latency_p99_ms": percentile(s["hist"], n, 99, mx),
        "models": s["models"], "last_model": s["last_model"], "last_ok": s["last_ok"],
        "first_call_at": rfc3339(s["first_us"]), "last_call_at": rfc3339(s["last_us"]),
    }


FOLDS = {"llm_ops": (llm_ops, columns)}


def load_pipeline(path):
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    t = doc["transformations"][0]
    name = t.get("fold_native")
    if name not in FOLDS:
        raise SystemExit(f"examples_oracle: no Python fold for `fold_native: {name}` "
                         f"(known: {', '.join(FOLDS)})")
    if t.get("on_error", "dead_letter") != "dead_letter":
        raise SystemExit("examples_oracle: only on_error: dead_letter is modelled")
    source = doc["sources"][t["input"]]
    event_types = {seed_fold.substitute(str(x)) for x in (source.get("event_types") or [])}
    return FOLDS[name], seed_fold.substitute(str(t["key_field"])), event_types


def run(pipeline, events):
    (fold, encode), key_field, event_types = load_pipeline(pipeline)
    rows = {}  # (tenant_id, key) -> [state, events_folded, last_event_id]
    rejected = []
    filtered = folded = 0
    for lineno, raw in seed_fold.read_lines(events):
        try:
            env = seed_fold.validate_envelope(raw)
            if event_types and env["event_type"] not in event_types:
                filtered += 1
                continue
            rid = (env["tenant_id"], seed_fold.entity_key(env, key_field))
        except seed_fold.Rejected as r:
            rejected.append({"line": lineno, "kind": r.kind, "reason": r.reason})
            continue
        row = rows.get(rid)
        try:
            new = fold(row[0] if row else None, seed_fold.Event(env))
        except Invalid as e:
            rejected.append({"line": lineno, "kind": "fold_error", "event_id": env["event_id"],
                             "reason": f"{type(e).__name__}: {e}"})
            continue
        folded += 1
        if row:
            row[0], row[1], row[2] = new, row[1] + 1, env["event_id"]
        else:
            rows[rid] = [new, 1, env["event_id"]]
    return {k: [encode(s), n, last] for k, (s, n, last) in rows.items()}, rejected, filtered, folded


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("events")
    ap.add_argument("--dead-letters", help="write rejected lines here (JSON Lines)")
    ap.add_argument("--quiet", action="store_true", help="no per-line rejections on stderr")
    a = ap.parse_args()
    rows, rejected, filtered, folded = run(a.pipeline, a.events)
    for (tenant, key) in sorted(rows):
        state, n, last = rows[(tenant, key)]
        seed_fold.check_state(state)
        sys.stdout.write(json.dumps({"tenant_id": tenant, "key": key, "state": state,
                                     "events_folded": n, "last_event_id": last},
                                    sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
    if a.dead_letters:
        with open(a.dead_letters, "w", encoding="utf-8") as fh:
            for r in rejected:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    if not a.quiet:
        for r in rejected:
            print(f"{a.events}:{r['line']}: {r['kind']}: {r['reason']}", file=sys.stderr)
    print(f"examples_oracle: {folded} folded, {filtered} filtered, {len(rejected)} rejected, "
          f"{len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An independent oracle for refold's fold: the pipeline's fold function run by CPython.

Usage:
  seed_fold.py PIPELINE.yaml EVENTS.jsonl [--dead-letters FILE] [--quiet]

Reads the pipeline with PyYAML, takes the first transformation's `fold_function` exactly as
written and runs it with CPython's own `exec` (so `{**state, ...}` is native Python), then
folds EVENTS.jsonl the way refold's documentation says a fold sees events:

- each non-blank line is one envelope; a line that is not a valid envelope (not JSON, a
  required field missing or of the wrong type, a bad timestamp, ...) is rejected;
- events whose `event_type` is not in the source's `event_types` are filtered out;
- the key is `data.<key_field>` when present (a non-empty string, or an integer), else
  `entity_id`; rows are per (tenant_id, key), events folded in file order;
- `event.type` is `event_type`, then the envelope's fields, then `data`'s fields are
  attributes of `event`; `state` is `{}` for a new key;
- an event whose fold raises, or returns anything but a dict of JSON values, is rejected and
  its key goes on without it; Starlark's builtin `fail(*args)` is there, and raises.

Prints one JSON object per row, sorted by (tenant_id, key):
  {"tenant_id": ..., "key": ..., "state": {...}, "events_folded": n, "last_event_id": ...}
Rejected lines go to --dead-letters FILE (JSON Lines: line, kind, reason), never folded; a
summary goes to stderr. Exit 0 on success, 2 when the pipeline cannot be run.

It imports nothing of refold: the rules above are re-stated here from the envelope's and the
fold's documentation (README, shared/src/envelope.rs, shared/src/fold/starlark.rs).
"""
import argparse
import builtins
import copy
import datetime
import json
import math
import os
import re
import sys

import yaml

ENVELOPE_FIELDS = (
    "event_id", "event_type", "entity_type", "entity_id", "tenant_id",
    "timestamp", "version", "data", "metadata",
)
REQUIRED = ENVELOPE_FIELDS[:-1]
ID_FIELDS = ("event_id", "event_type", "entity_type", "entity_id", "tenant_id", "timestamp")
MAX_ENVELOPE_BYTES = 1024 * 1024
MAX_ID_BYTES = 1024
MAX_JSON_DEPTH = 64
MAX_STATE_DEPTH = 64
I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1
# What Rust's `u8::is_ascii_whitespace` calls whitespace: a line of only these is skipped.
BLANK = b" \t\n\r\x0c"

RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+\-\u2212](\d{2}):(\d{2}))"
)


class Rejected(Exception):
    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class JObj(dict):
    """A JSON object: a dict (a key written twice has its last value, as in Python's json
    and serde_json, and for `event.<field>`), plus `duplicate`, the first key written more
    than once (None when none is): an envelope field may appear only once."""


def _object(pairs):
    obj = JObj(pairs)
    obj.duplicate = None
    if len(obj) < len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                obj.duplicate = k
                break
            seen.add(k)
    return obj


def _float(text):
    v = float(text)
    if not math.isfinite(v):  # 1e400: no f64 holds it; refold rejects the record
        raise ValueError(f"number out of range: {text[:40]}")
    return v


def _int(text):
    v = int(text)
    # refold keeps integers that fit 64 bits as integers, the rest as floats.
    return v if I64_MIN <= v <= I64_MAX else _float(text)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _nesting(v):
    """How many arrays and objects nest at the deepest point of `v` (a scalar: 0)."""
    if isinstance(v, dict):
        return 1 + max((_nesting(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_nesting(x) for x in v), default=0)
    return 0


def _no_lone_surrogate(v):
    if isinstance(v, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in v)
    if isinstance(v, dict):
        return all(_no_lone_surrogate(k) and _no_lone_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_no_lone_surrogate(x) for x in v)
    return True


def parse_json(raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected("bad_json", f"not valid JSON: not valid UTF-8 ({e})")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_int=_int,
                           parse_float=_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise Rejected("bad_json", f"not valid JSON: {e}")
    if _nesting(value) > MAX_JSON_DEPTH:
        raise Rejected("bad_json",
                       f"not valid JSON: more than {MAX_JSON_DEPTH} arrays and objects nested")
    if not _no_lone_surrogate(value):
        raise Rejected("bad_json", "not valid JSON: unpaired surrogate in a \\u escape")
    return value


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_timestamp(s):
    m = RFC3339.fullmatch(s)
    if not m:
        raise Rejected("invalid_envelope", f"field `timestamp`: `{s}` is not an RFC 3339 timestamp")
    year, month, day, hour, minute, sec = (int(m.group(i)) for i in range(1, 7))
    try:
        datetime.date(year, month, day)
    except ValueError:
        raise Rejected("invalid_envelope", f"field `timestamp`: `{s}` is out of range")
    oh = int(m.group(9)) if m.group(9) else 0
    om = int(m.group(10)) if m.group(10) else 0
    if hour > 23 or minute > 59 or sec > 60 or oh > 23 or om > 59:
        raise Rejected("invalid_envelope", f"field `timestamp`: `{s}` is out of range")


def validate_envelope(raw):
    """The envelope as a dict of its fields (`data` a JSON object), or Rejected."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise Rejected("invalid_envelope", f"envelope is {len(raw)} bytes, over the limit")
    v = parse_json(raw)
    if not isinstance(v, dict):
        raise Rejected("invalid_envelope", "not an event envelope: expected a JSON object")
    dup = v.duplicate
    if dup is not None and dup in ENVELOPE_FIELDS:
        raise Rejected("invalid_envelope", f"field `{dup}`: appears more than once")
    # A non-envelope key written twice at the top level does not matter.
    f = v
    missing = [k for k in REQUIRED if k not in f]
    if missing:
        raise Rejected("invalid_envelope", f"required fields missing: {', '.join(missing)}")
    for k in ID_FIELDS:
        s = f[k]
        if not isinstance(s, str):
            raise Rejected("invalid_envelope", f"field `{k}`: must be a string")
        if s == "":
            raise Rejected("invalid_envelope", f"field `{k}`: must be a non-empty string")
        if len(s.encode("utf-8")) > MAX_ID_BYTES:
            raise Rejected("invalid_envelope", f"field `{k}`: longer than {MAX_ID_BYTES} bytes")
    check_timestamp(f["timestamp"])
    if not (_is_int(f["version"]) and f["version"] >= 1):
        raise Rejected("invalid_envelope", "field `version`: must be a positive integer")
    if not isinstance(f["data"], dict):
        raise Rejected("invalid_envelope", "field `data`: must be an object")
    meta = f.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise Rejected("invalid_envelope", "field `metadata`: must be an object when present")
    return {k: f.get(k) for k in ENVELOPE_FIELDS}


def entity_key(env, key_field):
    k = env["data"].get(key_field)
    if k is None:
        return env["entity_id"]
    if isinstance(k, str) and k != "":
        return k
    if _is_int(k):
        return str(k)
    raise Rejected("invalid_envelope",
                   f"field `data.{key_field}`: the key must be a non-empty string or an integer")


def plain(v):
    """A JSON value as plain dicts and lists (a fresh copy: every access to an attribute of
    an event in refold gives a new value)."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


class Event:
    """`event` as the fold sees it: `type` is `event_type`, then the envelope's fields, then
    the fields of `data`. A missing attribute raises AttributeError."""

    __slots__ = ("_env",)

    def __init__(self, env):
        object.__setattr__(self, "_env", env)

    def __getattr__(self, name):
        env = object.__getattribute__(self, "_env")
        if name == "type":
            return env["event_type"]
        if name in ENVELOPE_FIELDS:
            return plain(env[name])
        data = env["data"]
        if name in data:
            return plain(data[name])
        raise AttributeError(f"event has no attribute `{name}`")

    def __setattr__(self, name, value):
        raise AttributeError("event is read-only")

    def __repr__(self):
        env = object.__getattribute__(self, "_env")
        return f"event({env['event_type']}, {env['event_id']})"


def check_state(v, depth=0):
    """Raises ValueError unless `v` is a JSON value refold can store."""
    if depth > MAX_STATE_DEPTH:
        raise ValueError(f"state nested deeper than {MAX_STATE_DEPTH} levels")
    if v is None or isinstance(v, (bool, str)):
        return
    if _is_int(v):
        if not I64_MIN <= v <= I64_MAX:
            raise ValueError(f"state holds the integer {v}, beyond 64 bits")
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"state holds the float {v}, which JSON cannot represent")
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise ValueError(f"state keys must be strings, got {type(k).__name__}")
            check_state(x, depth + 1)
        return
    if isinstance(v, (list, tuple)):
        for x in v:
            check_state(x, depth + 1)
        return
    raise ValueError(f"state holds a {type(v).__name__}, which is not a JSON value")


def substitute(text):
    """`${VAR}`, `${VAR:-default}` and `$${` in pipeline values (not in fold code)."""
    def one(m):
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(3)
        value = os.environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise SystemExit(f"seed_fold: environment variable {name} is not set")
        return value
    return re.sub(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", one, text)


def load_pipeline(path):
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    t = doc["transformations"][0]
    if "fold_function" not in t:
        raise SystemExit("seed_fold: the first transformation has no `fold_function`")
    on_error = t.get("on_error", "dead_letter")
    if on_error not in ("dead_letter", "skip"):
        raise SystemExit(f"seed_fold: on_error `{on_error}` is not modelled (dead_letter, skip)")
    source = doc["sources"][t["input"]]
    event_types = [substitute(str(x)) for x in (source.get("event_types") or [])]
    return t["fold_function"], substitute(str(t["key_field"])), set(event_types)


class Fail(Exception):
    """Raised by `fail(...)`: the fold rejects the event with this message."""


def starlark_fail(*args, sep=" "):
    """Starlark's builtin `fail(*args, sep=" ")`: stops the fold with the arguments as the
    message, so the event is rejected (a dead letter) with that reason."""
    raise Fail(sep.join(str(a) for a in args))


def compile_fold(source):
    namespace = {"__builtins__": builtins, "__name__": "fold_function", "fail": starlark_fail}
    exec(compile(source, "fold_function", "exec"), namespace)
    fold = namespace.get("fold")
    if not callable(fold):
        raise SystemExit("seed_fold: the fold function must define `def fold(state, event):`")
    return fold


def read_lines(path):
    with open(path, "rb") as fh:
        text = fh.read()
    for i, line in enumerate(text.split(b"\n")):
        if all(b in BLANK for b in line):
            continue
        yield i + 1, line[:-1] if line.endswith(b"\r") else line


def run(pipeline, events):
    source, key_field, event_types = load_pipeline(pipeline)
    fold = compile_fold(source)
    rows = {}  # (tenant_id, key) -> [state, events_folded, last_event_id]
    rejected = []
    filtered = folded = 0
    for lineno, raw in read_lines(events):
        try:
            env = validate_envelope(raw)
            if event_types and env["event_type"] not in event_types:
                filtered += 1
                continue
            rid = (env["tenant_id"], entity_key(env, key_field))
        except Rejected as r:
            rejected.append({"line": lineno, "kind": r.kind, "reason": r.reason})
            continue
        row = rows.get(rid)
        state = row[0] if row else {}
        try:
            new = fold(state, Event(env))
            if not isinstance(new, dict):
                raise ValueError(f"fold must return a dict, got {type(new).__name__}")
            check_state(new)
        except Exception as e:  # the fold's own error: the event is set aside
            rejected.append({"line": lineno, "kind": "fold_error", "event_id": env["event_id"],
                             "reason": f"{type(e).__name__}: {e}"})
            continue
        folded += 1
        if row:
            row[0], row[1], row[2] = new, row[1] + 1, env["event_id"]
        else:
            rows[rid] = [new, 1, env["event_id"]]
    return rows, rejected, filtered, folded


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("events")
    ap.add_argument("--dead-letters", help="write rejected lines here (JSON Lines)")
    ap.add_argument("--quiet", action="store_true", help="no per-line rejections on stderr")
    a = ap.parse_args()
    rows, rejected, filtered, folded = run(a.pipeline, a.events)
    out = sys.stdout
    for (tenant, key) in sorted(rows):
        state, n, last = rows[(tenant, key)]
        out.write(json.dumps({"tenant_id": tenant, "key": key, "state": state,
                              "events_folded": n, "last_event_id": last},
                             sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
    if a.dead_letters:
        with open(a.dead_letters, "w", encoding="utf-8") as fh:
            for r in rejected:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    if not a.quiet:
        for r in rejected:
            print(f"{a.events}:{r['line']}: {r['kind']}: {r['reason']}", file=sys.stderr)
    print(f"seed_fold: {folded} folded, {filtered} filtered, {len(rejected)} rejected, "
          f"{len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

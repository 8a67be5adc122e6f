"""The lean Python way to fold an event stream: what a Python team would write.

Usage: fold_lean.py PIPELINE.yaml EVENTS.jsonl

`json.loads` per line, the source's `event_types` filter, the key (`data.<key_field>`, else
`entity_id`) per tenant, and the pipeline's own `fold_function` run by CPython's `exec`; the
event is a `SimpleNamespace` with `type`, the envelope's fields and `data`'s fields. No
validation beyond what `json.loads` does (tests/py/seed_fold.py is the strict oracle; this
is the fast baseline `make bench` compares `refold fold` with). Prints one JSON line per
row, like `refold fold`, and the counts on stderr.
"""
import json
import sys
from types import SimpleNamespace

import yaml


def main():
    pipeline_path, events_path = sys.argv[1], sys.argv[2]
    with open(pipeline_path) as f:
        pipeline = yaml.safe_load(f)
    (source,) = pipeline["sources"].values()
    transformation = pipeline["transformations"][0]
    namespace = {}
    exec(transformation["fold_function"], namespace)
    fold = namespace["fold"]
    key_field = transformation["key_field"]
    wanted = set(source.get("event_types") or ())

    rows, rejected, filtered = {}, 0, 0
    with open(events_path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                env = json.loads(line)
                if wanted and env["event_type"] not in wanted:
                    filtered += 1
                    continue
                data = env["data"]
                key = (env["tenant_id"], str(data.get(key_field) or env["entity_id"]))
                event = SimpleNamespace(**env)
                event.__dict__.update(data)
                event.type = env["event_type"]
                state = rows.get(key)
                rows[key] = fold(state[0] if state else {}, event), env["event_id"]
            except Exception:
                rejected += 1

    out = sys.stdout
    for (tenant, key), (state, last) in rows.items():
        out.write(json.dumps({"tenant_id": tenant, "key": key, "state": state,
                              "last_event_id": last}) + "\n")
    print(f"{len(rows)} keys, {filtered} filtered, {rejected} rejected", file=sys.stderr)


if __name__ == "__main__":
    main()

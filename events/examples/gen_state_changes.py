#!/usr/bin/env python3
"""Writes events/examples/state-changes.jsonl: the `matih.ai.state-changes` topic, a
deterministic stream of session and agent state machine transitions (seeded).

Two tenants, 140 sessions (`--sessions N`). Each session is created, activated, runs agent
tasks (idle -> planning -> executing <-> waiting_tool -> done|failed), goes idle and active
again, and is usually closed. About 4% of the events are illegal transitions a buggy or
racing producer would send (a closed session reactivated, an agent skipping planning, an
agent moving in an idle session, a session going idle while an agent works, ...): the
pipeline's fold rejects them and the session goes on without them, so the generator never
applies them to the state it tracks. A few heartbeats (a type the pipeline does not fold)
and five malformed lines sit at fixed places.

    python3 events/examples/gen_state_changes.py > events/examples/state-changes.jsonl
"""
import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone

ap = argparse.ArgumentParser(description="Writes a session/agent state-change stream (JSONL).")
ap.add_argument("--sessions", type=int, default=140, help="sessions (default 140)")
args = ap.parse_args()

rng = random.Random(20261210)
START = datetime(2026, 12, 1, 8, 0, 0, tzinfo=timezone.utc)
TENANTS = ["tenant-acme", "tenant-globex"]
AGENT_TYPES = ["planner", "sql-analyst", "retriever", "code-runner"]
TOPIC = "matih.ai.state-changes"

events = []


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Session:
    def __init__(self, n):
        self.n = n
        self.id = f"sess-{n:05d}"
        self.tenant = TENANTS[n % 3 == 0]
        self.user = f"user-{rng.randint(1, 120):04d}"
        self.t = START + timedelta(seconds=rng.randint(0, 6 * 24 * 3600))
        self.seq = 0
        self.status = ""
        self.agents = {}  # agent id -> (type, state)

    def emit(self, kind, entity_type, entity_id, data):
        self.seq += 1
        self.t += timedelta(seconds=rng.randint(1, 240))
        events.append({
            "event_id": f"sc-{self.n:05d}-{self.seq:03d}",
            "event_type": kind,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "tenant_id": self.tenant,
            "timestamp": ts(self.t),
            "version": 1,
            "data": data,
            "metadata": {"source": "matih-ai-orchestrator", "topic": TOPIC,
                         "trace_id": f"{rng.getrandbits(64):016x}"},
        })

    def session(self, to, legal=True, **extra):
        data = {"session_id": self.id, "user_id": self.user, "from_state": self.status,
                "to_state": to, **extra}
        self.emit("SessionStateChanged", "Session", self.id, data)
        if legal:
            self.status = to

    def agent(self, agent_id, to, legal=True):
        kind, cur = self.agents.get(agent_id, (rng.choice(AGENT_TYPES), ""))
        data = {"session_id": self.id, "agent_id": agent_id, "agent_type": kind,
                "from_state": cur, "to_state": to}
        self.emit("AgentStateChanged", "Agent", agent_id, data)
        if legal:
            self.agents[agent_id] = (kind, to)

    def illegal(self):
        """One illegal transition that fits where the session is (the tracked state is kept)."""
        busy = [a for a, (_, s) in sorted(self.agents.items())
                if s in ("planning", "executing", "waiting_tool")]
        options = []
        if self.status == "active":
            if rng.random() < 0.2:  # a duplicate create (a retried request)
                options.append(lambda: self.session("created", legal=False))
            if busy:
                options.append(lambda: self.session("idle", legal=False))
        if self.status == "idle":
            options.append(lambda: self.session("idle", legal=False))
            if self.agents:
                a = sorted(self.agents)[0]
                options.append(lambda: self.agent(a, "planning", legal=False))
        for a, (_, s) in sorted(self.agents.items()):
            if self.status != "active":
                break
            if s == "idle":
                options.append(lambda a=a: self.agent(a, "executing", legal=False))
            if s == "executing":
                options.append(lambda a=a: self.agent(a, "planning", legal=False))
            if s == "done" and rng.random() < 0.4:
                options.append(lambda a=a: self.agent(a, "waiting_tool", legal=False))
            if s == "failed":
                options.append(lambda a=a: self.agent(a, "planning", legal=False))
        if options:
            rng.choice(options)()

    def maybe_illegal(self):
        if rng.random() < 0.045:
            self.illegal()

    def task(self, agent_id):
        self.agent(agent_id, "planning")
        self.maybe_illegal()
        if rng.random() < 0.06:
            self.agent(agent_id, "failed")
            return
        self.agent(agent_id, "executing")
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            self.agent(agent_id, "waiting_tool")
            self.maybe_illegal()
            if rng.random() < 0.04:
                self.agent(agent_id, "failed")
                return
            self.agent(agent_id, "executing")
        self.agent(agent_id, "failed" if rng.random() < 0.08 else "done")

    def run(self):
        self.session("created")
        if rng.random() < 0.01:
            self.session("idle", legal=False)  # created -> idle: never activated
        if rng.random() < 0.05:
            self.session("closed", reason="abandoned")
            return
        self.session("active")
        agents = [f"agent-{self.n:05d}-{i}" for i in range(rng.randint(1, 3))]
        for a in agents:
            if rng.random() < 0.02:
                self.agent(a, "planning", legal=False)  # a new agent must start idle
            self.agent(a, "idle")
        for _ in range(rng.randint(1, 4)):
            for a in agents:
                if self.agents[a][1] in ("idle", "done"):
                    self.task(a)
                    self.maybe_illegal()
            if rng.random() < 0.03:
                self.emit("SessionHeartbeat", "Session", self.id, {"session_id": self.id})
            if rng.random() < 0.5:
                self.session("idle")
                self.maybe_illegal()
                self.session("active")
        end = rng.random()
        if end < 0.08:
            # Closed while an agent works: the fold marks it cancelled.
            a = agents[0]
            if self.agents[a][1] in ("idle", "done"):
                self.agent(a, "planning")
            self.session("closed", reason="user_closed")
        elif end < 0.85:
            self.session("closed", reason=rng.choice(["user_closed", "timeout", "completed"]))
        else:
            return  # still open at the end of the stream
        if rng.random() < 0.1:
            self.session("active", legal=False)  # closed -> active: sessions do not reopen
        if rng.random() < 0.05:
            self.agent(agents[-1], "planning", legal=False)  # an agent after the close


for n in range(args.sessions):
    Session(n).run()

events.sort(key=lambda e: (e["timestamp"], e["event_id"]))

# Malformed lines, each a different reason, at fixed positions.
bad_version = dict(events[10], event_id="sc-bad-version", version=0)
bad_time = dict(events[20], event_id="sc-bad-time", timestamp="2026-12-01T08:61:00Z")
no_tenant = {k: v for k, v in events[30].items() if k != "tenant_id"}
no_tenant["event_id"] = "sc-no-tenant"
bad_data = dict(events[40], event_id="sc-bad-data", data="to_state=active")
malformed = [
    (150, '{"event_id": "sc-truncated", "event_type": "SessionStateChanged", "enti'),
    (800, json.dumps(bad_version, separators=(",", ":"))),
    (1600, json.dumps(bad_time, separators=(",", ":"))),
    (2400, json.dumps(no_tenant, separators=(",", ":"))),
    (3200, json.dumps(bad_data, separators=(",", ":"))),
]
lines = [json.dumps(e, separators=(",", ":")) for e in events]
if len(lines) <= max(pos for pos, _ in malformed):
    sys.exit(f"gen_state_changes: {len(lines)} events are too few for the malformed lines")
for pos, line in sorted(malformed):
    lines.insert(pos, line)

sys.stdout.write("\n".join(lines) + "\n")
print(f"{len(lines)} lines, {len(malformed)} malformed", file=sys.stderr)

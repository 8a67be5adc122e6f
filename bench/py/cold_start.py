#!/usr/bin/env python3
"""Cold start of a Lambda function binary: process start -> first handled invocation.

    cold_start.py BINARY EVENT.json --runs N [--env K=V ...] [--error-ends-run]

A stand-in for the Lambda Runtime API (the endpoints a custom runtime calls,
`GET /2018-06-01/runtime/invocation/next` and `POST .../invocation/{id}/response` or
`/error`) serves EVENT.json once per process. Two times per run, from spawning BINARY:
  init: to its first `GET .../invocation/next` (what Lambda reports as Init Duration: the
        process, its configuration, its clients, its catalog and table opened);
  first: to the arrival of its response (init plus the first invocation's own work).
Each run is a new process (the table and catalog it opens stay as the first run left them).
A run ends with a `/response`; with --error-ends-run an `/error` ends it too (an event the
function answers with an error, for a function whose real work needs more than this
stand-in serves). Prints one JSON line: {"runs", "errors", "p50_ms", "min_ms", "max_ms"
(first), "init_p50_ms", "init_min_ms", "init_max_ms"}.
"""
import argparse
import http.server
import json
import os
import statistics
import subprocess
import threading
import time

RUNTIME = "/2018-06-01/runtime"


class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, code, body=b"{}", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        if self.path != f"{RUNTIME}/invocation/next" or st["served"]:
            # Second call for work: the run is over; hold it until the process is killed.
            st["done"].wait(30)
            return self._reply(500)
        st["served"] = True
        st["t_next"] = time.perf_counter()
        deadline = int(time.time() * 1000) + 900_000
        self._reply(200, st["event"], [
            ("Lambda-Runtime-Aws-Request-Id", "bench-request"),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn",
             "arn:aws:lambda:us-east-1:000000000000:function:bench"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
            ("Content-Type", "application/json"),
        ])

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.endswith("/response") or self.path.endswith("/error"):
            st["t_done"] = time.perf_counter()
            st["ok"] = self.path.endswith("/response") or st["error_ends_run"]
            st["body"] = body
            self._reply(202)
            st["done"].set()
        else:
            self._reply(202)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the function's connections are cut when it is killed: not an error


def one_run(binary, event, env, error_ends_run):
    server = Server(("127.0.0.1", 0), Api)
    state = {"event": event, "served": False, "done": threading.Event(), "ok": False,
             "error_ends_run": error_ends_run}
    server.state = state
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    full = dict(os.environ, **env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
                AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512", AWS_LAMBDA_LOG_STREAM_NAME="bench",
                AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/bench", AWS_REGION="us-east-1",
                AWS_LAMBDA_LOG_LEVEL="warn")
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    finished = state["done"].wait(120)
    proc.kill()
    _, err = proc.communicate()
    server.shutdown()
    server.server_close()
    if not finished or not state["ok"]:
        return None, (err.decode(errors="replace")[-800:] + state.get("body", b"").decode())
    return ((state["t_next"] - t0) * 1000, (state["t_done"] - t0) * 1000), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("event")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--error-ends-run", action="store_true")
    a = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in a.env)
    with open(a.event, "rb") as fh:
        event = fh.read()
    inits, times, errors = [], [], []
    for _ in range(a.runs):
        ms, err = one_run(a.binary, event, env, a.error_ends_run)
        if ms is None:
            errors.append(err)
        else:
            inits.append(ms[0])
            times.append(ms[1])
    out = {"runs": len(times), "errors": len(errors)}
    if times:
        out.update(p50_ms=round(statistics.median(times), 1), min_ms=round(min(times), 1),
                   max_ms=round(max(times), 1), init_p50_ms=round(statistics.median(inits), 1),
                   init_min_ms=round(min(inits), 1), init_max_ms=round(max(inits), 1))
    print(json.dumps(out))
    for e in errors[:1]:
        print(e, file=__import__("sys").stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Prints `make bench`'s table from scripts/bench.sh's results (JSON lines).

    report.py RESULTS.jsonl [TABLE_BENCH_OUTPUT.txt]

Every row puts refold's figure beside its baseline from the same run, with the ratio.
Cost model (Lambda arm64): $0.0000133334 per GB-s; a function of M MB gets M/1769 of a
vCPU below 1,769 MB, so CPU-bound work of c CPU-seconds lasts c * 1769 / M s there and
costs c * 1769/1024 GB-s whatever M is (M must hold the peak RSS; at least 128 MB).
Requests ($0.20 per million invocations) are left out: one invocation is one batch.
"""
import json
import math
import statistics
import sys

PRICE_GB_S = 0.0000133334  # Lambda arm64, per GB-second (AWS price list, Dec 2026)
FULL_VCPU_MB = 1769


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1)]


def lambda_cost_per_m(cpu_ms_per_event, peak_rss_kb):
    mem_mb = max(128, math.ceil(peak_rss_kb / 1024 / 64) * 64)
    cpu_s = cpu_ms_per_event / 1e3 * 1e6
    duration_s = cpu_s * max(1.0, FULL_VCPU_MB / mem_mb)
    return duration_s * mem_mb / 1024 * PRICE_GB_S, mem_mb


def ratio(a, b):
    return f"{a / b:,.1f}x" if a and b else "-"


def verdict(value, target):
    if not value:
        return "FAILED"
    return "met" if value <= target else ratio(value, target) + " over"


def warm_batches(rs):
    """A container's batches: (the first, the warm ones after it, their p50 and p99 ms, their
    CPU ms sorted)."""
    first, warm = rs[0], rs[1:] or rs
    ms = [r["ms"] for r in warm]
    return first, warm, statistics.median(ms), pct(ms, 99), sorted(r["cpu_ms"] for r in warm)


def e2e_rows(add, k, rs, ps):
    """fold-batch e2e rows for one store and size: refold's warm batches against the Python
    way's, the ratio of events/s, the cost per million events."""
    rf_eps = rf_cost = py_eps = py_cost = None
    if rs:
        first, warm, p50, p99, cpu = warm_batches(rs)
        ev = warm[0]["events"]
        rf_eps = ev / (p50 / 1e3)
        cpu_ev = statistics.median(cpu) / ev
        rss = max(r["peak_rss_kb"] for r in rs)
        rf_cost, rf_mem = lambda_cost_per_m(cpu_ev, rss)
        add(f"| fold-batch e2e, {k}: {ev:,}-event batch, warm p50 / p99 (of {len(warm)}) "
            f"| {p50:.0f} / {p99:.0f} ms (CPU {cpu[0]:.0f}-{cpu[-1]:.0f}) | target p50 <= 100 ms "
            f"| {verdict(p50, 100)} |")
        add(f"| fold-batch e2e, {k}: first batch of a container | {first['ms']:.0f} ms | "
            f"warm p50 {p50:.0f} ms | {ratio(first['ms'], p50)} |")
        add(f"| fold-batch e2e, {k}: peak RSS | {rss / 1024:.0f} MB | target <= 128 MB | "
            f"{verdict(rss, 128 * 1024)} |")
    if ps:
        pms = [r["ms"] for r in ps]
        pev = ps[0]["events"]
        py_eps = pev / (statistics.median(pms) / 1e3)
        pcpu_ev = statistics.median(r["cpu_ms"] for r in ps) / pev
        py_cost, py_mem = lambda_cost_per_m(pcpu_ev, max(r["peak_rss_kb"] for r in ps))
    if rf_eps or py_eps:
        py_note = (f"Python way {py_eps:,.0f} ev/s ({pev:,}-event batches, "
                   f"p50 {statistics.median(pms):,.0f} ms, of {len(ps)})" if py_eps else "-")
        add(f"| fold-batch e2e, {k}: events/s | {rf_eps or 0:,.0f} | {py_note} | "
            f"**{ratio(rf_eps, py_eps)}** (target 1,000x) |")
    if rf_cost or py_cost:
        rc = f"${rf_cost:.3g} ({rf_mem} MB)" if rf_cost else "-"
        pc = f"${py_cost:.3g} ({py_mem} MB)" if py_cost else "-"
        add(f"| Lambda arm64 cost per 1 M events, {k} | {rc} | Python way {pc} | "
            f"{ratio(py_cost, rf_cost)} cheaper |")


def shipped_row(add, k, shipped, rs):
    """The shipped build's warm batches (the functions' profile) against the release build's
    of the same run, which the other e2e rows report."""
    if not shipped or not rs:
        return
    _, warm, p50, p99, cpu = warm_batches([r["r"] for r in shipped])
    base = warm_batches(rs)[2]
    add(f"| fold-batch e2e, {k}: the shipped build (`{shipped[0]['profile']}` profile), warm "
        f"p50 / p99 (of {len(warm)}) | {p50:.0f} / {p99:.0f} ms (CPU {cpu[0]:.0f}-{cpu[-1]:.0f}) "
        f"| release build warm p50 {base:.0f} ms (the rows above) | "
        f"{ratio(max(p50, base), min(p50, base))} {'slower' if p50 > base else 'faster'} |")


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    out = []
    add = out.append
    m = next(r for r in rows if r["what"] == "machine")
    print(f"machine: {m['cpus']} x {m['model']}, load {m['load']} at start (shared); "
          f"{m['date']}, commit {m['commit']}\n")
    add("| measure | refold | baseline (same run) | refold vs baseline |")
    add("|---|---|---|---|")

    fold = [r for r in rows if r["what"] == "fold"]
    rf = [r for r in fold if r["who"] == "refold"]
    py = [r for r in fold if r["who"] == "cpython"]
    if rf and py:
        s = statistics.median(r["t"]["s"] for r in rf)
        cpu = statistics.median(r["t"]["user_s"] + r["t"]["sys_s"] for r in rf)
        rss = statistics.median(r["t"]["rss_kb"] for r in rf)
        p = py[0]["t"]
        lines = rf[0]["lines"]
        add(f"| `refold fold`, {lines:,} lines: wall (median of {len(rf)}) | {s:.2f} s "
            f"({lines / s:,.0f} ev/s) | CPython seed fold {p['s']:.2f} s | "
            f"**{ratio(p['s'], s)} faster** |")
        add(f"| `refold fold`: CPU (user+sys) | {cpu:.2f} s | {p['user_s'] + p['sys_s']:.2f} s | "
            f"{ratio(p['user_s'] + p['sys_s'], cpu)} less |")
        add(f"| `refold fold`: peak RSS | {rss / 1024:.0f} MB | {p['rss_kb'] / 1024:.0f} MB | "
            f"{ratio(rss, p['rss_kb'])} of it |")
        add(f"| `refold fold`: rows out | {rf[0]['rows']:,} | {py[0]['rows']:,} | "
            f"{'same' if rf[0]['rows'] == py[0]['rows'] else 'DIFFER'} |")
        for lean in (r for r in fold if r["who"] == "cpython-lean"):
            t = lean["t"]
            add(f"| `refold fold` vs the lean Python way (json.loads + fold, no checks): wall | "
                f"{s:.2f} s | {t['s']:.2f} s | **{ratio(t['s'], s)} faster** |")
            add(f"| `refold fold` vs the lean Python way: CPU / peak RSS | {cpu:.2f} s / "
                f"{rss / 1024:.0f} MB | {t['user_s'] + t['sys_s']:.2f} s / "
                f"{t['rss_kb'] / 1024:.0f} MB | {ratio(t['user_s'] + t['sys_s'], cpu)} less CPU |")

    e2e = [r for r in rows if r["what"] == "e2e"]
    stores = {"fs": "local filesystem", "s3": "local S3 (moto)"}
    for store, keys in sorted({(r.get("store", "fs"), r["keys"]) for r in e2e},
                              key=lambda sk: (sk[0] != "fs", sk[0], sk[1])):
        mine = [r for r in e2e if r.get("store", "fs") == store and r["keys"] == keys]
        e2e_rows(add, f"{keys:,} keys, {stores.get(store, store)}",
                 [r["r"] for r in mine if r["who"] == "refold"],
                 [r["r"] for r in mine if r["who"] == "python"])
        shipped_row(add, f"{keys:,} keys, {stores.get(store, store)}",
                    [r for r in mine if r["who"] == "refold-shipped"],
                    [r["r"] for r in mine if r["who"] == "refold"])

    for r in (r for r in rows if r["what"] == "parse"):
        add(f"| ESM event parse, {r['records']:,} records ({r['bytes'] / 1e6:.1f} MB), "
            f"fold-batch's `parse_layer` (median of {r['rounds']}) | {r['ours_ms']:.2f} ms | "
            f"lambda_runtime's own parse {r['runtime_ms']:.2f} ms | "
            f"**{ratio(r['runtime_ms'], r['ours_ms'])} faster** |")

    for r in (r for r in rows if r["what"] == "cold"):
        c = r["r"]
        p50, init = c.get("p50_ms"), c.get("init_p50_ms")
        add(f"| cold start `{r['fn']}`: init (process start -> first `next`, p50 of "
            f"{c['runs']}) | {init} ms (min {c.get('init_min_ms')}, max "
            f"{c.get('init_max_ms')}) | target <= 50 ms | {verdict(init, 50)} |")
        add(f"| cold start `{r['fn']}`: init + first invocation (-> its answer) | {p50} ms "
            f"(min {c.get('min_ms')}, max {c.get('max_ms')}) | target <= 50 ms | "
            f"{verdict(p50, 50)} |")
        add(f"| zip `{r['fn']}` ({r.get('profile', 'lambda')} profile, host arch, stripped) | "
            f"{r['zip_bytes'] / 2**20:.1f} MiB (binary {r['binary_bytes'] / 2**20:.1f} MiB) | "
            f"target <= 10 MiB | {'met' if r['zip_bytes'] <= 10 * 2**20 else 'over'} |")
    print("\n".join(out))
    if len(sys.argv) > 2:
        try:
            text = open(sys.argv[2]).read().strip()
        except OSError:
            text = ""
        if text:
            print("\nState table merge alone (`cargo bench -p refold --bench table`):\n")
            print("```\n" + text + "\n```")


if __name__ == "__main__":
    main()

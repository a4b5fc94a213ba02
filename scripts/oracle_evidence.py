#!/usr/bin/env python3
"""oracle_evidence.py - how much evidence a labelled fault leaves in its spans.

For each scenario directory of ../shared/eval's generator (labels.json and
traces.jsonl), it reads the server spans of the fault's target service and
compares the calls made during the fault with those made before it, per
operation, as a test told the fault's target, start and end would:

  - latency: a z test on the mean log duration against the calls before the
    fault (their mean and spread), reported in nats (z^2 / 2);
  - errors: the log-likelihood ratio of the failed calls at their own rate
    against the rate before the fault (with half a failure of prior), in nats.

The detector's sequential check alarms at 12 nats without knowing any of
this (docs/baselines.md), so a fault whose oracle evidence is near or under
that is beyond any test at the same false-alarm rate; docs/incidents.md
quotes the figures for the development suite's misses.

usage: scripts/oracle_evidence.py SCENARIO_DIR...
"""
import json
import math
import os
import sys


def service_of(rs):
    for a in rs.get("resource", {}).get("attributes", []):
        if a["key"] == "service.name":
            return a["value"].get("stringValue")
    return None


def calls(path, target, start, end):
    """Server spans of target by operation: (before the fault, during it), each a list of (ms, failed)."""
    before, during = {}, {}
    with open(os.path.join(path, "traces.jsonl")) as f:
        for line in f:
            for rs in json.loads(line)["resourceSpans"]:
                if service_of(rs) != target:
                    continue
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        if s.get("kind") not in (2, 5):  # server, consumer
                            continue
                        t0 = int(s["startTimeUnixNano"])
                        ms = (int(s["endTimeUnixNano"]) - t0) / 1e6
                        failed = s.get("status", {}).get("code", 0) == 2
                        side = before if t0 < start else during if t0 < end else None
                        if side is not None:
                            side.setdefault(s["name"], []).append((ms, failed))
    return before, during


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def latency_nats(ref, cur):
    lr = [math.log(max(ms, 1e-6)) for ms, _ in ref]
    m = sum(lr) / len(lr)
    sd = math.sqrt(sum((x - m) ** 2 for x in lr) / len(lr)) or 1e-9
    lc = [math.log(max(ms, 1e-6)) for ms, _ in cur]
    z = (sum(lc) / len(lc) - m) / (sd / math.sqrt(len(lc)))
    return z, z * z / 2 if z > 0 else 0.0


def error_nats(ref, cur):
    n0, k0 = len(ref), sum(1 for _, e in ref if e)
    n, k = len(cur), sum(1 for _, e in cur if e)
    p0 = (k0 + 0.5) / (n0 + 1)
    p = k / n
    if p <= p0:
        return 0.0
    llr = k * math.log(p / p0)
    if k < n:
        llr += (n - k) * math.log((1 - p) / (1 - p0))
    return llr


def main(dirs):
    for d in dirs:
        lab = json.load(open(os.path.join(d, "labels.json")))
        f = lab.get("fault")
        if not f:
            print("%s: no fault" % lab["scenario"])
            continue
        target = f["targets"][0]["service"]
        before, during = calls(d, target, f["start_unix_nano"], f["end_unix_nano"])
        print("%s: %s on %s, %.0f s" % (lab["scenario"], f["type"], target,
                                        (f["end_unix_nano"] - f["start_unix_nano"]) / 1e9))
        for op in sorted(set(before) | set(during)):
            ref, cur = before.get(op, []), during.get(op, [])
            if not ref or not cur:
                print("  %s: %d calls before, %d during" % (op, len(ref), len(cur)))
                continue
            ms = [x for x, _ in ref]
            z, lat = latency_nats(ref, cur)
            print("  %s\n    before: %d calls, %d failed, p50 %.1f p90 %.1f p99 %.1f ms"
                  % (op, len(ref), sum(1 for _, e in ref if e), quantile(ms, .5), quantile(ms, .9), quantile(ms, .99)))
            print("    during: %d calls, %d failed, p50 %.1f ms; latency z %.2f (%.1f nats), errors %.1f nats"
                  % (len(cur), sum(1 for _, e in cur if e), quantile([x for x, _ in cur], .5), z, lat, error_nats(ref, cur)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

#!/usr/bin/env python3
"""Accuracy on the Nezha Online Boutique fault cases.

For every labelled case: build the replay stream with the dataset's own
make_case.py (the fault-free minute replayed --repeat times, then the fault
file), run `detector replay` on it, and score the first incident opened
after the fault's injection: is the labelled root-cause service its first
suspect (AC@1), among the first three (AC@3), Avg@5 (mean of AC@1..AC@5)?
Also the detection rate, the median delay from the start of the fault file
(the data begins one minute after injection) to the incident, and incidents
opened before the fault (false incidents) per hour of normal event time.
The table is followed by two summary lines in the format of
../shared/eval/score.py (AC@1=.. AC@3=.. Avg@5=.. detected=n/m
median_delay_s=.. false_per_hour=..): the latency faults (cpu_contention,
cpu_consumed, network_delay), then all cases.

usage: eval_nezha.py --detector bin/detector --dataset ../shared/datasets/nezha-ob [--cache DIR] [--repeat 10]
           [--out-dir DIR] [--summary FILE] [--latency-summary FILE]
"""
import argparse, gzip, json, os, statistics, subprocess, sys, time
from collections import defaultdict
from datetime import datetime

LATENCY = ("cpu_contention", "cpu_consumed", "network_delay")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def first_span_time(path):
    t = None
    with gzip.open(path, "rt") as fh:
        for line in fh:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        v = int(s["startTimeUnixNano"]) / 1e9
                        t = v if t is None else min(t, v)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--detector", default="bin/detector")
    ap.add_argument("--dataset", default="../shared/datasets/nezha-ob")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/causeway/nezha-cases"))
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bin", "eval-nezha"),
                    help="the detector's output per case (not in --cache: runs from other checkouts share it)")
    ap.add_argument("--json", help="also write per-case results here")
    ap.add_argument("--summary", help='also write "LABEL<TAB>SUMMARY LINE" of all cases here')
    ap.add_argument("--latency-summary", help="the same for the latency faults")
    a = ap.parse_args()
    labels = json.load(open(os.path.join(a.dataset, "labels.json")))
    os.makedirs(a.cache, exist_ok=True)
    os.makedirs(a.out_dir, exist_ok=True)
    rows = []
    began = time.monotonic()
    for i, c in enumerate(labels):
        name, truth = c["case"], c["fault"]["targets"][0]["service"]
        ftype = c["fault"]["type"]
        case = os.path.join(a.cache, f"{name}-r{a.repeat}.jsonl.gz")
        fault_file = os.path.join(a.dataset, c["fault_file"])
        if not os.path.exists(case):
            # Written aside and renamed, so an interrupted run leaves no half case.
            part = f"{case}.{os.getpid()}.part.gz"
            subprocess.run([sys.executable, os.path.join(a.dataset, "make_case.py"), "--normal",
                            os.path.join(a.dataset, c["normal"]), "--fault", fault_file,
                            "--out", part, "--repeat", str(a.repeat)], check=True)
            os.replace(part, case)
        out = os.path.join(a.out_dir, f"{name}-r{a.repeat}.out.json")
        subprocess.run([a.detector, "replay", "--input", case, "--out", out], check=True,
                       stderr=subprocess.DEVNULL)
        res = json.load(open(out))
        inject = c["fault"]["start_unix_nano"] / 1e9
        data_start = first_span_time(fault_file)
        normal_start = ts(res["stats"]["first_window_start"])
        # False: opened and resolved before the fault data. The incident
        # judged: the first one still open or updated once the fault data
        # starts (an incident already open absorbs connected anomalies).
        before = [x for x in res["incidents"] if x["resolved_at"] and ts(x["resolved_at"]) < data_start]
        after = [x for x in res["incidents"] if ts(x["updated_at"]) >= data_start]
        rank, delay, top = None, None, []
        if after:
            inc = after[0]
            delay = max(0.0, ts(inc["opened_at"]) - data_start)
            seen = []
            for s in inc["suspects"] or []:
                if s["service"] not in seen:
                    seen.append(s["service"])
            top = seen[:5]
            rank = seen.index(truth) + 1 if truth in seen else None
        rows.append(dict(case=name, type=ftype, truth=truth, rank=rank, detected=bool(after),
                         delay=delay, false_incidents=len(before),
                         normal_hours=(data_start - normal_start) / 3600, top=top))
        print(f"[{i + 1}/{len(labels)}] {name}: truth {truth}, rank {rank}, top {top[:3]}", file=sys.stderr)
    print(f"eval_nezha: {len(rows)} cases in {time.monotonic() - began:.0f}s", file=sys.stderr)

    def report(title, rs):
        n = len(rs)
        if n == 0:
            return
        ac = lambda k: sum(1 for r in rs if r["rank"] and r["rank"] <= k) / n
        avg5 = sum(ac(k) for k in range(1, 6)) / 5
        det = sum(1 for r in rs if r["detected"]) / n
        delays = [r["delay"] for r in rs if r["delay"] is not None]
        hours = sum(r["normal_hours"] for r in rs)
        fph = sum(r["false_incidents"] for r in rs) / hours if hours else 0
        med = f"{statistics.median(delays):.0f}" if delays else "-"
        print(f"| {title:<16} | {n:>3} | {ac(1):.2f} | {ac(3):.2f} | {avg5:.2f} | {det:.2f} | {med:>5} | {fph:.2f} |")

    print("\nNezha Online Boutique (traces only), first incident after the fault data starts")
    print("| fault type       |   n | AC@1 | AC@3 | Avg@5 | detected | median delay s | false incidents/h |")
    print("|---|---|---|---|---|---|---|---|")
    by = defaultdict(list)
    for r in rows:
        by[r["type"]].append(r)
    for t in sorted(by):
        report(t, by[t])
    latency = [r for r in rows if r["type"] in LATENCY]
    report("latency faults", latency)
    report("all", rows)
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)

    ds = os.path.basename(os.path.normpath(a.dataset))
    lat_label = f"{ds} latency faults only ({len(latency)} of {len(rows)})"
    all_label = f"{ds} ({len(rows)} real faults)"
    print()
    for label, rs, path in ((lat_label, latency, a.latency_summary), (all_label, rows, a.summary)):
        line = summary_line(rs)
        print(f"{label + ':':<49} {line}")
        if path:
            with open(path, "w") as fh:
                fh.write(f"{label}\t{line}\n")


def summary_line(rs):
    """The summary line of ../shared/eval/score.py over the cases rs, judged as in the table."""
    n = len(rs)
    ac = [sum(1 for r in rs if r["rank"] and r["rank"] <= k) / n if n else 0.0 for k in range(1, 6)]
    det = sum(1 for r in rs if r["detected"])
    delays = [r["delay"] for r in rs if r["delay"] is not None]
    hours = sum(r["normal_hours"] for r in rs)
    fph = sum(r["false_incidents"] for r in rs) / hours if hours else 0.0
    med = "%.0f" % statistics.median(delays) if delays else "n/a"
    return "AC@1=%.2f AC@3=%.2f Avg@5=%.2f detected=%d/%d median_delay_s=%s false_per_hour=%.2f" % (
        ac[0], ac[2], sum(ac) / 5, det, n, med, fph)


if __name__ == "__main__":
    main()

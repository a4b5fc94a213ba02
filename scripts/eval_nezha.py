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

usage: eval_nezha.py --detector bin/detector --dataset ../shared/datasets/nezha-ob [--cache DIR] [--repeat 10]
"""
import argparse, gzip, json, os, statistics, subprocess, sys
from collections import defaultdict
from datetime import datetime


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
    ap.add_argument("--json", help="also write per-case results here")
    a = ap.parse_args()
    labels = json.load(open(os.path.join(a.dataset, "labels.json")))
    os.makedirs(a.cache, exist_ok=True)
    rows = []
    for i, c in enumerate(labels):
        name, truth = c["case"], c["fault"]["targets"][0]["service"]
        ftype = c["fault"]["type"]
        case = os.path.join(a.cache, f"{name}-r{a.repeat}.jsonl.gz")
        fault_file = os.path.join(a.dataset, c["fault_file"])
        if not os.path.exists(case):
            subprocess.run([sys.executable, os.path.join(a.dataset, "make_case.py"), "--normal",
                            os.path.join(a.dataset, c["normal"]), "--fault", fault_file,
                            "--out", case, "--repeat", str(a.repeat)], check=True)
        out = os.path.join(a.cache, f"{name}-r{a.repeat}.out.json")
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
    latency = [r for r in rows if r["type"] in ("cpu_contention", "cpu_consumed", "network_delay")]
    report("latency faults", latency)
    report("all", rows)
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bench_summary.py: read `go test -bench` output on stdin, pass it through,
then print a table of medians per benchmark, the end-to-end rate from a real
Kafka broker when it was measured, and last the pipeline's headline: decode
+ pair + aggregate spans per second on one core, and how many times the
generated-struct path that is.

    go test -run '^$' -bench . -count 5 -cpu 1 ./bench | scripts/bench_summary.py
"""
import re
import statistics
import sys

LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$")
runs = {}  # name -> unit -> [values]
for line in sys.stdin:
    sys.stdout.write(line)
    m = LINE.match(line)
    if not m:
        continue
    fields = m.group(2).split()
    vals = runs.setdefault(m.group(1), {})
    for value, unit in zip(fields[0::2], fields[1::2]):
        try:
            vals.setdefault(unit, []).append(float(value))
        except ValueError:
            pass

if not runs:
    sys.exit("bench_summary: no benchmark results on stdin")


def med(name, unit):
    v = runs.get(name, {}).get(unit)
    return statistics.median(v) if v else None


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "ns/op":
        return f"{v / 1e6:,.2f} ms" if v >= 1e6 else f"{v:,.0f} ns"
    if unit == "spans/s":
        return f"{v:,.0f}"
    if unit == "B/op":
        return f"{v / 1024:,.1f} KiB"
    return f"{v:,.0f}"


print()
print(f"{'benchmark (median of ' + str(max(len(u.get('ns/op', [])) for u in runs.values())) + ')':<40} {'time/op':>12} {'spans/s':>12} {'mem/op':>14} {'allocs/op':>12}")
for name in sorted(runs):
    print(f"{name:<40} {fmt(med(name, 'ns/op'), 'ns/op'):>12} {fmt(med(name, 'spans/s'), 'spans/s'):>12} "
          f"{fmt(med(name, 'B/op'), 'B/op'):>14} {fmt(med(name, 'allocs/op'), 'allocs/op'):>12}")

for name, what in (("BenchmarkScale", "100k edges, 6 windows"), ("BenchmarkScaleSteady", "10k edges, 5k operations, 110 windows: baselines full")):
    per = med(name, "bytes/edge")
    if per:
        verdict = "within" if per <= 8192 else "over"
        print(f"memory per tracked edge ({what}): {per:,.0f} bytes, {verdict} the 8 KiB target")
# Edges with half an operation each, and with one: what each costs apart,
# against the figures the memory budget divides by (graph/budget.go).
half, one = med("BenchmarkScaleSteady", "bytes/edge"), med("BenchmarkScaleSteadyOneOp", "bytes/edge")
if half and one:
    op = 2 * (one - half)
    edge = one - op
    print(f"memory per edge {edge:,.0f} bytes (budget counts 5,632), per operation {op:,.0f} bytes (budget counts 6,144)")
for mode in ("serial", "parallel"):
    e2e = med(f"BenchmarkKafkaEndToEnd/{mode}", "spans/s")
    if e2e:
        print(f"kafka end to end ({mode}): {e2e:,.0f} spans/s sustained, broker on this host")
fast, slow = med("BenchmarkDecodeAggregate", "spans/s"), med("BenchmarkGeneratedAggregate", "spans/s")
if fast and slow:
    print(f"pipeline: {fast:,.0f} spans/s/core (decode+pair+aggregate), {fast / slow:.1f}x the generated-struct path")

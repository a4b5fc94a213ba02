#!/usr/bin/env python3
"""holdout_suite.py - a second suite from ../shared/eval's generator, kept out of development.

The development suite (gen.py --suite dev) is what detection was built
against; scores on it flatter the detector. This suite uses the same
generator and fault kinds with other targets, magnitudes, seeds and rates,
so a change that only fits the development suite shows here as no gain (or
a loss). It is a check on generalization, not a target: nothing in the
detector may be tuned to its scenarios either.

    python3 scripts/holdout_suite.py --out DIR [--jobs 2] [--eval-dir ../shared/eval]

writes DIR/<scenario>/{traces.jsonl,labels.json} and DIR/index.json exactly
as gen.py --suite does (it runs gen.py's own suite writer), so score.py
reads it the same way. scripts/eval_dev.sh takes it with SUITE_KIND=holdout.
"""
import argparse
import os
import sys


def holdout():
    """The scenarios: every fault kind on each topology, on targets the
    development suite does not use where the topology allows."""
    S = []

    def add(topo, faults, event=None, tag=None, rate=None):
        i = len(S) + 1
        if faults:
            f0 = faults[0]
            kind = "two_faults" if len(faults) > 1 else f0["type"]
            tgt = f0.get("service") or f0.get("db") or f0.get("callee")
            if f0["type"] == "network_delay":
                tgt = "%s--%s" % (f0["caller"], f0["callee"])
        else:
            kind = event["type"] if event else "batch_only"
            tgt = tag or "none"
        name = "ho%02d-%s-%s-%s%s" % (i, topo, kind.replace("_", "-"), tgt, "-sparse" if rate else "")
        S.append({"name": name, "topology": topo, "faults": faults, "event": event,
                  "seed": 7000 + 61 * i, "rate": rate})

    F = dict
    # Online Boutique
    add("ob", [F(type="latency_service", service="currencyservice", mult=2.0)])
    add("ob", [F(type="latency_service", service="adservice", add_ms=40, mode="netem")])
    add("ob", [F(type="latency_operation", service="productcatalogservice", op="ListProducts", mult=3.0)])
    add("ob", [F(type="latency_operation", service="shippingservice", op="GetQuote", add_ms=15)])
    add("ob", [F(type="cpu_saturation", service="currencyservice", rho=0.55)])
    add("ob", [F(type="errors", service="paymentservice", p=0.3)])
    add("ob", [F(type="errors", service="productcatalogservice", p=0.1)])
    add("ob", [F(type="network_delay", caller="frontend", callee="cartservice", add_ms=50)])
    add("ob", [F(type="pod_crash", service="cartservice")])
    add("ob", [F(type="pod_crash", service="productcatalogservice")])
    add("ob", [F(type="latency_service", service="cartservice", add_ms=40),
               F(type="errors", service="currencyservice", p=0.15)])
    add("ob", [F(type="latency_service", service="shippingservice", mult=2.0)], rate=0.6)
    add("ob", [F(type="errors", service="checkoutservice", p=0.3)], rate=0.6)
    add("ob", [], F(type="surge", mult=2.0))
    add("ob", [], None, tag="none")
    # Train-Ticket-like
    add("tt", [F(type="latency_service", service="ts-route-service", mult=2.0)])
    add("tt", [F(type="latency_service", service="ts-order-service", add_ms=50, mode="netem")])
    add("tt", [F(type="latency_operation", service="ts-travel-service",
                 op="POST /api/v1/travelservice/trip_detail", add_ms=60)])
    add("tt", [F(type="cpu_saturation", service="ts-station-service", rho=0.55)])
    add("tt", [F(type="errors", service="ts-station-service", p=0.2)])
    add("tt", [F(type="errors", service="ts-assurance-service", p=0.4)])
    add("tt", [F(type="slow_db", db="ts-order-mysql", mult=4.0)])
    add("tt", [F(type="slow_db", db="ts-station-mysql", add_ms=15)])
    add("tt", [F(type="network_delay", caller="ts-preserve-service", callee="ts-security-service", add_ms=80)])
    add("tt", [F(type="pod_crash", service="ts-price-service")])
    add("tt", [F(type="latency_service", service="ts-basic-service", add_ms=80),
               F(type="errors", service="ts-food-service", p=0.3)])
    add("tt", [F(type="latency_service", service="ts-contacts-service", mult=3.0)], rate=0.4)
    add("tt", [F(type="errors", service="ts-config-service", p=0.3)], rate=0.4)
    add("tt", [], F(type="deploy", mult=1.1))
    add("tt", [], None, tag="none")
    # async / Kafka
    add("async", [F(type="latency_service", service="catalog-service", mult=2.0)])
    add("async", [F(type="latency_service", service="shipping-service", add_ms=40, mode="netem")])
    add("async", [F(type="latency_operation", service="order-service", op="GET /api/orders/{id}", add_ms=50)])
    add("async", [F(type="cpu_saturation", service="order-service", rho=0.55)])
    add("async", [F(type="errors", service="inventory-service", p=0.2)])
    add("async", [F(type="slow_db", db="order-postgres", add_ms=25)])
    add("async", [F(type="network_delay", caller="api-gateway", callee="catalog-service", add_ms=40)])
    add("async", [F(type="pod_crash", service="catalog-service")])
    add("async", [F(type="errors", service="shipping-service", p=0.3)], rate=1.5)
    add("async", [], F(type="surge", mult=2.0))
    return S


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="suite directory to write")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--eval-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "eval"))
    ap.add_argument("--list", action="store_true", help="print the scenario names and exit")
    a = ap.parse_args()
    if a.list:
        for s in holdout():
            print(s["name"])
        return 0
    if not a.out:
        ap.error("--out DIR is required (or --list)")
    sys.path.insert(0, os.path.abspath(a.eval_dir))
    try:
        import gen
    except ImportError as e:
        sys.exit("holdout_suite: cannot import gen.py from %s: %s (set --eval-dir)" % (a.eval_dir, e))
    gen.SUITES["holdout"] = holdout
    return gen.main(["--suite", "holdout", "--out", a.out, "--jobs", str(a.jobs), "--quiet"])


if __name__ == "__main__":
    sys.exit(main())

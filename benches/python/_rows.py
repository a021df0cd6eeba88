"""Shared helpers of the Python comparison scripts run by `cargo xtask bench`.

Each script is one benchmark group (its file name) and prints one JSON object per line on
stdout, in the row schema of benches/README.md; progress goes to stderr. Every script takes
--quick (fewer iterations, about a fifth of a second per row).
"""

import argparse
import json
import math
import sys
import time

perf_ns = time.perf_counter_ns


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer iterations")
    args = p.parse_args()
    args.budget = 0.15 if args.quick else 1.0
    return args


def pick(args, full, quick):
    return quick if args.quick else full


def stats(values):
    """(p50, p99 or None, mean) of a list of numbers; p99 needs 20 values or more."""
    v = sorted(values)
    n = len(v)
    p50 = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    p99 = v[max(1, math.ceil(0.99 * n)) - 1] if n >= 20 else None
    return p50, p99, sum(v) / n


def sample(args, fn, min_n=20, max_n=1_000_000, budget=None):
    """Calls fn() (which returns the nanoseconds it measured) until the budget is spent,
    at least min_n and at most max_n times; returns the list of results."""
    budget = args.budget if budget is None else budget
    out = []
    end = time.perf_counter() + budget
    while len(out) < max_n and (len(out) < min_n or time.perf_counter() < end):
        out.append(fn())
    return out


def timed(fn, *a):
    """Nanoseconds one call of fn(*a) takes."""
    t = perf_ns()
    fn(*a)
    return perf_ns() - t


def emit(group, key, name, impl, unit, values, *, per=1, size=None, note="",
         baseline=(), round_trip=False, rate=False):
    """Prints one row. values are nanoseconds per sample covering `per` operations, converted
    to `unit` (ns, us, ms); with rate=True they are already rates in `unit` (msg/s, GB/s)
    and no p99 is reported."""
    if rate:
        conv = list(values)
    else:
        scale = {"ns": 1.0, "us": 1e-3, "ms": 1e-6}[unit]
        conv = [v * scale / per for v in values]
    p50, p99, mean = stats(conv)
    if rate:
        p99 = None
    row = {
        "group": group, "key": key, "name": name, "impl": impl, "size": size,
        "unit": unit, "p50": p50, "p99": p99, "mean": mean, "n": len(conv),
        "round_trip": round_trip, "baseline": list(baseline), "note": note,
    }
    print(json.dumps(row), flush=True)
    print(f"  {name} / {impl}: {p50:.4g} {unit} (n={len(conv)})", file=sys.stderr, flush=True)


def size_name(b):
    for shift, suffix in ((20, "MiB"), (10, "KiB")):
        if b >= 1 << shift and b % (1 << shift) == 0:
            return f"{b >> shift} {suffix}"
    return f"{b} B"

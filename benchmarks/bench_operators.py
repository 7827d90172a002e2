"""Speed and memory of every linear operator: construction, H, H_pinv, V, Vt (median ms) and peak RSS.

    python benchmarks/bench_operators.py                 # every operator at 3x256x256 and 3x1024x1024
    python benchmarks/bench_operators.py --ops sr4 deblur --sizes 256 --repeats 9

Each (operator, size) runs in its own subprocess so that the peak resident memory it reports
(``ru_maxrss`` minus the RSS after importing torch and allocating the input batch) belongs to
that operator alone. Times are medians over ``--repeats`` calls after one warm-up call, batch 1,
float32, on the CPU with ``--threads`` torch threads (default 1: on a shared, loaded CPU a second
intra-op thread waits for a descheduled peer and makes small calls 10-100x slower).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

MOTION_KERNEL = [[0.0] * 9 for _ in range(9)]
for i in range(9):
    MOTION_KERNEL[i][i] = 1.0 / 9  # 9-tap diagonal motion blur for the generic `deblur`


def _params(name: str, size: int) -> dict:
    import torch

    if name == "deblur":
        return {"kernel": torch.tensor(MOTION_KERNEL)}
    if name == "inp_mask":
        return {"mask": torch.rand(size, size, generator=torch.Generator().manual_seed(0)) > 0.5}
    return {}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_one(name: str, size: int, repeats: int, threads: int) -> dict:
    """Time one operator at ``3 x size x size`` (runs in the current process)."""
    import torch

    import operators

    torch.set_num_threads(threads)

    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    params = _params(name, size)
    base = _rss_mb()
    t0 = time.perf_counter()
    op = operators.get_operator(name, (3, size, size), **params).to(torch.float32)
    build = time.perf_counter() - t0
    y = op.H(x)
    z = op.Vt(x)
    calls = {"H": lambda: op.H(x), "H_pinv": lambda: op.H_pinv(y), "V": lambda: op.V(z), "Vt": lambda: op.Vt(x)}
    out = {"op": name, "size": size, "build_ms": 1000 * build}
    with torch.inference_mode():
        for key, fn in calls.items():
            fn()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            out[f"{key}_ms"] = 1000 * statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    out["peak_mb"] = max(peak - base, 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="*", help="operator names (default: every linear operator)")
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--one", nargs=2, metavar=("NAME", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.repeats, args.threads)))
        return

    import operators

    names = args.ops or [n for n in operators.available() if operators.get_spec(n).kind == "linear"]
    cols = ["build_ms", "H_ms", "H_pinv_ms", "V_ms", "Vt_ms", "peak_mb"]
    print("| operator | size | construct ms | H ms | H_pinv ms | V ms | Vt ms | peak MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        for name in names:
            cmd = [sys.executable, __file__, "--one", name, str(size), "--repeats", str(args.repeats)]
            cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                reason = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                print(f"| {name} | {size}² | n/a: {reason[:90]} |||||||")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {name} | {size}² | " + " | ".join(f"{row[c]:.1f}" for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()

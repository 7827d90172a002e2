"""End-to-end `ddrm solve` on the CPU with the built-in prior: wall time, CPU time and peak memory per image size.

    python benchmarks/bench_solve_e2e.py                          # sr4, deno, inp_mask at 256, 512, 1024; 20 steps
    python benchmarks/bench_solve_e2e.py --sizes 2048 --steps 2   # large photos: does it fit in memory?
    python benchmarks/bench_solve_e2e.py --ops sr4 --sizes 256 --repeats 3 --model /path/to/prior
    python benchmarks/bench_solve_e2e.py --ops sr4 --variant= --variant=--no-channels-last   # after / before

Each case is one fresh `ddrm solve` process (``--device cpu --no-progress``), timed from spawn to
exit, so the time includes start-up, image IO, operator construction and prior loading; the child
also stamps its first UNet call, which splits the time into start-up and seconds per step (and
gives a 20-step estimate when fewer steps were run for the big sizes). The
observations are made here with Pillow/numpy from examples/parrot_256.png resized to the size:
sr4 gets the 1/4-size image, deno the image with N(0, 0.05²) noise (``--sigma-y 0.05``), inp_mask
the image with a random half of its pixels blanked and the mask as a .npy file. The peak
resident memory is reported by the child itself (``ru_maxrss``) just before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import first_forward_probe, load_average, median, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "parrot_256.png"

# `ddrm solve ARGS` in this interpreter: stamps its first UNet call, then reports its own peak RSS
# (KiB on Linux) and the end time on stderr.
CHILD = first_forward_probe(exit_at_first=False) + """
import resource
from ddrm_kit.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr, flush=True)
    print("END", repr(time.time()), file=sys.stderr, flush=True)
"""


def _clean(size: int) -> np.ndarray:
    img = Image.open(SOURCE).convert("RGB")
    return np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8)


def make_case(op: str, size: int, folder: Path) -> list[str]:
    """Write the observation (and mask) for ``op`` at ``size`` x ``size``; return the solve arguments."""
    rng = np.random.default_rng(size)
    obs = folder / f"{op}_{size}.png"
    if op == "sr4":
        Image.fromarray(_clean(size // 4)).save(obs)
        return ["--op", "sr4", str(obs)]
    x = _clean(size).astype(np.float64)
    if op == "deno":
        noisy = np.clip(x + rng.normal(0.0, 0.05 * 255, x.shape), 0, 255)
        Image.fromarray(noisy.round().astype(np.uint8)).save(obs)
        return ["--op", "deno", "--sigma-y", "0.05", str(obs)]
    if op == "inp_mask":
        keep = rng.random((size, size)) < 0.5
        mask = folder / f"mask_{size}.npy"
        np.save(mask, keep)
        Image.fromarray((x * keep[..., None]).astype(np.uint8)).save(obs)
        return ["--op", "inp_mask", "--mask", str(mask), str(obs)]
    raise SystemExit(f"unknown case {op}: use sr4, deno or inp_mask")


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_solve(args: list[str], steps: int) -> dict:
    """One `ddrm solve` process: wall and CPU time, time to its first UNet call, seconds per step, peak RSS."""
    c0, t0, start = _child_cpu(), time.perf_counter(), time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, "solve", *args], capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"ddrm solve {' '.join(args)} failed:\n{proc.stderr.strip()[-1500:]}")
    stamps = {line.split()[0]: float(line.split()[1]) for line in proc.stderr.splitlines()
              if line.startswith(("PEAK_RSS_KB", "FIRST_FORWARD", "END"))}
    # From the first network call to the end: the steps, plus writing the PNG (small).
    return {"wall_s": wall, "cpu_s": cpu, "startup_s": stamps["FIRST_FORWARD"] - start,
            "per_step_s": (stamps["END"] - stamps["FIRST_FORWARD"]) / steps, "peak_rss_mb": stamps["PEAK_RSS_KB"] / 1024.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", nargs="+", default=["sr4", "deno", "inp_mask"], choices=["sr4", "deno", "inp_mask"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="runs per case (median reported)")
    ap.add_argument("--model", default=None, help="prior folder (default: the built-in prior)")
    ap.add_argument("--variant", action="append", dest="variants", metavar="OPTIONS",
                    help="`ddrm solve` options to compare (repeatable; run interleaved per case), e.g. "
                         "--variant= --variant=--no-channels-last; default: one variant, the defaults")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    args.variants = args.variants or [""]

    folder = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    common = ["--device", "cpu", "--no-progress", "--steps", str(args.steps), "-o", str(folder / "out")]
    if args.model:
        common += ["--model", args.model]
    records, rows = [], []
    for size in args.sizes:
        for op in args.ops:
            case = make_case(op, size, folder)
            runs: dict[str, list[dict]] = {v: [] for v in args.variants}
            for _ in range(args.repeats):  # variants interleaved: a change of load hits them alike
                for v in args.variants:
                    runs[v].append(run_solve(common + shlex.split(v) + case, args.steps))
            for v in args.variants:
                rec = {"op": op, "size": size, "steps": args.steps, "variant": v, "load": load_average(),
                       "runs": runs[v], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[v])}
                for key in ("wall_s", "cpu_s", "startup_s", "per_step_s"):
                    rec[key] = median([r[key] for r in runs[v]])
                rec["est_20_steps_s"] = rec["startup_s"] + 20 * rec["per_step_s"]
                records.append(rec)
                rows.append([op, f"{size}x{size}", v or "(defaults)", args.steps, f"{rec['wall_s']:.1f}",
                             f"{rec['cpu_s']:.1f}", f"{rec['startup_s']:.1f}", f"{rec['per_step_s']:.2f}",
                             f"{rec['est_20_steps_s']:.0f}", f"{rec['peak_rss_mb'] / 1024:.2f}", rec["load"]])
                print(f"# {op} {size} {v}: {rec['wall_s']:.1f} s, {rec['peak_rss_mb']:.0f} MiB", file=sys.stderr,
                      flush=True)
    print(f"ddrm solve {' '.join(common)} [variant] <case>; {args.repeats} run(s) per case and variant "
          f"(median wall/CPU, max peak RSS)")
    print(table(["op", "output size", "variant", "steps", "wall s", "CPU s", "to 1st UNet call s", "s/step",
                 "20-step est. s", "peak RSS GiB", "load (1 min)"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()

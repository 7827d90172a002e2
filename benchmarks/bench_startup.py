"""Start-up latency of the CLI: `ddrm --help`, `ddrm ops`, and `ddrm solve` up to its first network call.

    python benchmarks/bench_startup.py                 # 5 runs each, medians
    python benchmarks/bench_startup.py --repeats 9 --model /path/to/save_pretrained_folder

Goals (issue 7): `ddrm --help` and `ddrm ops` under 1 s; `ddrm solve` under 3 s from the process
start to its first UNet evaluation, on the CPU with the built-in prior (sr4, 64x64 -> 256x256).

Each run is a fresh interpreter, timed from just before it is spawned. For `solve`, the child
replaces ``UNet2DModel.forward`` -- the moment the sampler first calls the network -- with a
function that reports the wall clock and exits, so the time covers interpreter start, imports,
image loading, operator construction and prior loading, and nothing of the sampling itself.
The CPU time of each child is shown too: on a shared, busy CPU it is the better guide to what an
idle machine would take. To time another checkout (a "before"), run this from outside the repo
with ``PYTHONPATH=/path/to/that/tree``: the children import ddrm_kit from there.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import first_forward_probe, load_average, median, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# `ddrm solve ARGS` in this interpreter, exiting at its first UNet call.
SOLVE_PROBE = first_forward_probe(exit_at_first=True) + """
from ddrm_kit.cli import main
main(sys.argv[1:])
"""


def ddrm_exe() -> list[str]:
    exe = shutil.which("ddrm", path=os.path.dirname(sys.executable)) or shutil.which("ddrm")
    return [exe] if exe else [sys.executable, "-m", "ddrm_kit.cli"]


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_command(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``cmd``."""
    c0, t0 = _child_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    return dt, cpu


def time_first_forward(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds from spawning `ddrm solve ARGS` to its first UNet call."""
    c0, t0 = _child_cpu(), time.time()
    proc = subprocess.run([sys.executable, "-c", SOLVE_PROBE, *args], capture_output=True, text=True)
    cpu = _child_cpu() - c0  # the probe exits at the first call: all of its CPU time came before it
    for line in proc.stderr.splitlines():
        if line.startswith("FIRST_FORWARD"):
            return float(line.split()[1]) - t0, cpu
    raise SystemExit(f"ddrm solve {' '.join(args)} never called the network: {proc.stderr.strip()[-800:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default=None, help="prior for `solve` (default: the built-in prior)")
    ap.add_argument("--image", default=str(ROOT / "examples" / "parrot_lr64.png"), help="sr4 observation")
    args = ap.parse_args()

    exe = ddrm_exe()
    out = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    solve = ["solve", "--op", "sr4", "--no-progress", "--device", "cpu", "-o", str(out / "sr4.png"), args.image]
    if args.model:
        solve[1:1] = ["--model", args.model]
    cases = [("ddrm --help", 1.0, lambda: time_command(exe + ["--help"])),
             ("ddrm ops", 1.0, lambda: time_command(exe + ["ops"])),
             ("ddrm solve -> first UNet call", 3.0, lambda: time_first_forward(solve))]
    walls: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    cpus: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    loads = []
    for _ in range(args.repeats):  # interleaved, so load changes hit every case alike
        for name, _, fn in cases:
            wall, cpu = fn()
            walls[name].append(wall)
            cpus[name].append(cpu)
        loads.append(load_average())
    shutil.rmtree(out, ignore_errors=True)
    rows = [[name, f"{median(walls[name]):.2f}", f"{min(walls[name]):.2f}", f"{median(cpus[name]):.2f}",
             f"< {goal:g}", "yes" if median(walls[name]) < goal else "NO"] for name, goal, _ in cases]
    print(f"{args.repeats} runs each (interleaved), {' '.join(exe)}; 1-min load average: {' '.join(loads)}")
    print(f"solve: ddrm {' '.join(solve)}")
    # On a busy machine the wall time is the CPU time stretched by the other processes' share.
    print(table(["command", "median wall s", "min wall s", "median CPU s", "goal (wall)", "met"], rows))


if __name__ == "__main__":
    main()

"""One command that proves and measures the CUDA path, for the few minutes a GPU is lent.

    bash benchmarks/gpu_wheels.sh                        # here, beforehand: wheels the GPU machine lacks -> .whl/
    python3 benchmarks/gpu_suite.py                      # there (carry .whl): everything below, results in $OUT
    python3 benchmarks/gpu_suite.py --dry-run --out DIR  # here: the same steps on the CPU, tiny sizes

Steps, each in its own process so that a crash or a time-out costs only that step:
1. install: the carried wheels (``.whl/``) and this checkout into a private folder (``pip --no-index``);
2. tests: ``pytest -m cuda`` (tests/test_cuda.py: operators, JPEG, sampler, generators, host syncs, solve);
3. measure: the google/ddpm-celebahq-256 UNet (random weights) at 256x256: forward and 20-step DDRM at
   batch 1/8/32 in fp32/fp16/bf16 with and without channels_last; the sampler + operator overhead per
   step against the bare forward (sr4, deblur_gauss, inp_random50, color, jpeg10; batch 1, fp16);
   the largest image each operator restores; torch.compile variants last, as the budget allows;
4. report: ``results.json`` and ``results.md`` (+ one log per step) under ``--out`` (default ``$OUT``).
Every step gets what is left of ``--budget-s``; the measure step saves after each record, so a
step stopped at its deadline still reports what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _common import CELEBAHQ_256_CONFIG, median, table  # noqa: E402

OPS = ("sr4", "deblur_gauss", "inp_random50", "color", "jpeg10")
FULL = {"size": 256, "batches": (1, 8, 32), "precisions": ("fp32", "fp16", "bf16"), "largest": (512, 1024, 2048, 4096, 8192),
        "warmup": 3, "iters": 10, "compile_backend": "inductor"}
# The dry run: the same code on the CPU, with a small UNet and sizes that take seconds.
DRY = {"size": 32, "batches": (1, 2), "precisions": ("fp32", "bf16"), "largest": (32, 64), "warmup": 1, "iters": 2,
       "compile_backend": "eager"}
TINY_UNET = {"sample_size": 32, "block_out_channels": (16, 32), "layers_per_block": 1, "norm_num_groups": 8,
             "down_block_types": ("DownBlock2D", "AttnDownBlock2D"), "up_block_types": ("AttnUpBlock2D", "UpBlock2D")}


# ---------------------------------------------------------------------------------------------
# The orchestrator (no torch here: it only runs the steps and writes the report)


def _run_step(name: str, cmd: list[str], out: Path, deadline: float, env: dict[str, str]) -> dict:
    """Run one step with its output in ``out/<name>.log``; killed at the deadline."""
    left = deadline - time.time()
    if left < 5:
        return {"step": name, "status": "skipped: no time left"}
    t0 = time.time()
    with open(out / f"{name}.log", "w") as log:
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=left).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = "stopped at the time budget"
    return {"step": name, "status": status, "seconds": round(time.time() - t0, 1)}


def _install(out: Path, deadline: float, env: dict[str, str], site: Path) -> dict:
    wheels = sorted(str(p) for p in (REPO / ".whl").glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(site)]
    script = [f"{' '.join(pip + wheels)}"] if wheels else []
    script.append(" ".join(pip + ["--no-build-isolation", str(REPO)]))
    step = _run_step("install", ["bash", "-c", " && ".join(script)], out, deadline, env)
    step["wheels"] = [Path(w).name for w in wheels]
    return step


def _pytest_summary(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    return next((ln.strip("= ") for ln in reversed(lines) if " in " in ln and ("passed" in ln or "skipped" in ln
                                                                                or "failed" in ln or "error" in ln)), "")


def orchestrate(args: argparse.Namespace) -> int:
    start = time.time()
    deadline = start + args.budget_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    site = Path(args.site)
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    steps = [_install(out, deadline - 0.9 * (deadline - time.time()), env, site)]
    if steps[0]["status"] == "ok":
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Tests before measurements: whether the path is right matters more than how fast it is.
    tests = _run_step("tests", [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
                                "tests/test_cuda.py"], out, deadline - 0.6 * (deadline - time.time()), env)
    tests["summary"] = _pytest_summary(out / "tests.log")
    steps.append(tests)
    measure = [sys.executable, str(Path(__file__).resolve()), "--measure", "--out", str(out),
               "--deadline", str(deadline - 15)] + (["--dry-run"] if args.dry_run else [])
    steps.append(_run_step("measure", measure, out, deadline - 10, env))
    records = json.loads((out / "measure.json").read_text()) if (out / "measure.json").exists() else {}
    report = {"dry_run": args.dry_run, "budget_s": args.budget_s, "wall_s": round(time.time() - start, 1),
              "steps": steps, **records}
    (out / "results.json").write_text(json.dumps(report, indent=1))
    (out / "results.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(s["status"] == "ok" for s in steps) else 1


def markdown(report: dict) -> str:
    env = report.get("environment", {})
    lines = [f"# GPU suite{' (dry run on the CPU: checks the script, measures nothing)' if report['dry_run'] else ''}",
             "", f"{env.get('device', '?')}; driver {env.get('driver', '?')}; torch {env.get('torch', '?')} "
             f"(CUDA {env.get('cuda', '-')}); diffusers {env.get('diffusers', '?')}; wall {report['wall_s']} s of "
             f"{report['budget_s']} s", "",
             table(["step", "status", "s", "notes"], [[s["step"], s["status"], s.get("seconds", ""),
                                                        s.get("summary", "") or ", ".join(s.get("wheels", []))]
                                                       for s in report["steps"]])]
    sections = (("forward", "UNet forward", ["batch", "precision", "channels_last", "compile", "ms", "images/s", "peak GiB"],
                 lambda r: [r["batch"], r["precision"], r["channels_last"], r["compile"], f"{r['ms']:.2f}",
                            f"{r['images_per_s']:.1f}", f"{r['peak_gib']:.2f}"]),
                ("ddrm", "DDRM sr4, 20 steps", ["batch", "precision", "channels_last", "s / run", "images/s", "peak GiB"],
                 lambda r: [r["batch"], r["precision"], r["channels_last"], f"{r['seconds']:.3f}",
                            f"{r['images_per_s']:.1f}", f"{r['peak_gib']:.2f}"]),
                ("overhead", "Sampler + operator overhead per step (batch 1, fp16 on CUDA; goal < 5%)",
                 ["op", "DDRM 20 steps s", "20 bare forwards s", "overhead %"],
                 lambda r: [r["op"], f"{r['ddrm_s']:.4f}", f"{r['bare_s']:.4f}", f"{r['overhead_pct']:.2f}"]),
                ("largest", "Largest image restored (batch 1, fp16 on CUDA, 2 steps)", ["op", "largest side", "s / step", "peak GiB",
                                                                       "next size"],
                 lambda r: [r["op"], r["largest"], f"{r['s_per_step']:.2f}", f"{r['peak_gib']:.1f}", r["next"]]))
    for key, title, headers, row in sections:
        if report.get(key):
            lines += ["", f"## {title}", "", table(headers, [row(r) for r in report[key]])]
    if report.get("skipped"):
        lines += ["", "Not measured (time budget): " + "; ".join(report["skipped"])]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The measure step (its own process: torch, diffusers and ddrm_kit from the installed folder)


class Recorder:
    """Collects records and rewrites ``measure.json`` after each one, so a killed step keeps them."""

    def __init__(self, path: Path, deadline: float) -> None:
        self.path, self.deadline = path, deadline
        self.data: dict[str, list] = {"skipped": []}

    def has_time(self, seconds: float, what: str) -> bool:
        if time.time() + seconds < self.deadline:
            return True
        self.data["skipped"].append(what)
        self.save()
        return False

    def add(self, key: str, record: dict) -> None:
        self.data.setdefault(key, []).append(record)
        print(f"{key}: {record}", flush=True)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def _environment(dev) -> dict:
    import diffusers
    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "diffusers": diffusers.__version__,
           "device": "CPU (dry run)", "driver": "-"}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env["device"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = "unknown (nvidia-smi not found)"
    return env


def _timed(fn, dev, warmup: int, iters: int) -> float:
    """Median seconds per call after ``warmup`` untimed calls (synchronised on CUDA)."""
    import torch

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        fn()
    sync()
    runs = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append(time.perf_counter() - t0)
    return median(runs)


def _peak_reset(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_gib(dev) -> float:
    import torch

    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")


def measure(args: argparse.Namespace) -> None:
    import tempfile

    import torch
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    import operators
    from ddrm_kit import ddrm, load_prior
    from ddrm_kit.restore import observe

    diffusers_logging.set_verbosity_error()
    cfg = DRY if args.dry_run else FULL
    dev = torch.device("cpu" if args.dry_run else "cuda")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks its fastest kernels once
    rec = Recorder(Path(args.out) / "measure.json", args.deadline)
    rec.data["environment"] = _environment(dev)
    rec.save()
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    size = cfg["size"]
    torch.manual_seed(0)  # random weights: their values do not matter for speed
    unet = UNet2DModel(**(dict(CELEBAHQ_256_CONFIG, **TINY_UNET) if args.dry_run else CELEBAHQ_256_CONFIG)).eval()
    folder = tempfile.mkdtemp(prefix="gpu_suite_")
    unet.save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder)

    def forward_row(batch: int, precision: str, channels_last: bool, compiled: bool) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net = UNet2DModel.from_pretrained(folder).eval().to(device=dev, dtype=dtypes[precision], memory_format=fmt)
        fn = torch.compile(net, backend=cfg["compile_backend"]) if compiled else net
        x = torch.randn(batch, 3, size, size, device=dev, dtype=dtypes[precision]).contiguous(memory_format=fmt)
        t = torch.full((batch,), 500, device=dev, dtype=torch.long)
        _peak_reset(dev)
        with torch.inference_mode():
            sec = _timed(lambda: fn(x, t), dev, cfg["warmup"] + (2 if compiled else 0), cfg["iters"])
        rec.add("forward", {"batch": batch, "precision": precision, "channels_last": channels_last, "compile": compiled,
                            "ms": 1000 * sec, "images_per_s": batch / sec, "peak_gib": _peak_gib(dev)})

    def prior_for(precision: str, channels_last: bool = True):
        return load_prior(folder, device=dev, dtype=dtypes[precision], channels_last=channels_last)

    def ddrm_seconds(prior, op_name: str, batch: int, side: int, steps: int = 20, iters: int | None = None) -> float:
        op = operators.get_operator(op_name, (3, side, side)).to(dev)
        x = torch.rand(batch, 3, side, side, device=dev) * 2 - 1
        y = observe(op, x)
        gens = [torch.Generator(device=dev).manual_seed(i) for i in range(batch)]
        return _timed(lambda: ddrm(prior, op, y, steps=steps, generator=gens, progress=False), dev, 1,
                      iters or max(1, cfg["iters"] // 3))

    for batch in cfg["batches"]:
        for precision in cfg["precisions"]:
            for channels_last in (True, False):
                if rec.has_time(30, f"forward b{batch} {precision} cl={channels_last}"):
                    forward_row(batch, precision, channels_last, False)
    for op_name in OPS:
        if not rec.has_time(30, f"overhead {op_name}"):
            continue
        prior = prior_for("fp16" if dev.type == "cuda" else "fp32")
        x = torch.randn(1, 3, size, size, device=dev)
        t = torch.full((1,), 500, device=dev, dtype=torch.long)

        def bare() -> None:
            with torch.no_grad():
                for _ in range(20):
                    prior(x, t)

        bare_s = _timed(bare, dev, 1, 3)
        ddrm_s = ddrm_seconds(prior, op_name, 1, size, iters=3)
        rec.add("overhead", {"op": op_name, "ddrm_s": ddrm_s, "bare_s": bare_s, "overhead_pct": 100 * (ddrm_s / bare_s - 1)})
    for batch in cfg["batches"]:
        for precision in cfg["precisions"]:
            for channels_last in (True, False):
                if not rec.has_time(60, f"ddrm b{batch} {precision} cl={channels_last}"):
                    continue
                _peak_reset(dev)
                sec = ddrm_seconds(prior_for(precision, channels_last), "sr4", batch, size)
                rec.add("ddrm", {"batch": batch, "precision": precision, "channels_last": channels_last, "seconds": sec,
                                 "images_per_s": batch / sec, "peak_gib": _peak_gib(dev)})
    largest(rec, cfg, dev, prior_for("fp16" if dev.type == "cuda" else "fp32"), ddrm_seconds)
    for batch in cfg["batches"]:
        for precision in cfg["precisions"][::-1]:
            if rec.has_time(120, f"compiled forward b{batch} {precision}"):
                forward_row(batch, precision, True, True)


def largest(rec: Recorder, cfg: dict, dev, prior, ddrm_seconds) -> None:
    """Per operator, the largest square side (doubling) that a 2-step restoration completes."""
    import torch

    for op_name in OPS:
        best = None
        reason = "not tried"
        for side in cfg["largest"]:
            if not rec.has_time(60, f"largest {op_name} {side}"):
                reason = "time budget"
                break
            _peak_reset(dev)
            try:
                sec = ddrm_seconds(prior, op_name, 1, side, steps=2, iters=1) / 2
            except torch.cuda.OutOfMemoryError:
                reason = f"{side}: out of memory"
                break
            best = {"op": op_name, "largest": side, "s_per_step": sec, "peak_gib": _peak_gib(dev)}
            if sec > 20:
                reason = f"{side * 2}: not tried (over 20 s a step)"
                break
            reason = "end of the list"
        if best is not None:
            rec.add("largest", dict(best, next=reason))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="results folder (default: $OUT)")
    ap.add_argument("--budget-s", type=float, default=500.0, help="stop every step by then, writing what it has")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU with tiny sizes")
    ap.add_argument("--site", default="/tmp/ddrm-gpu-site", help="where the install step puts the packages")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.out:
        ap.error("give --out DIR (or set $OUT)")
    if args.measure:
        measure(args)
        return 0
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            ap.error("no CUDA device here: use --dry-run to check the suite on the CPU")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())

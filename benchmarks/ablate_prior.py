"""Ablation of the built-in prior's recipe: train variants for the same number of steps, then score each.

    D=/work/shared/data/BSDS500
    OMP_NUM_THREADS=1 python benchmarks/ablate_prior.py --runs runs/ablate --steps 3000 --threads 1 \\
        --data $D/train --data $D/test --variants v1,vpred --train-only &      # two trainings at once,
    OMP_NUM_THREADS=1 python benchmarks/ablate_prior.py --runs runs/ablate --steps 3000 --threads 1 \\
        --data $D/train --data $D/test --variants vpred+minsnr --train-only &  # one thread each
    OMP_NUM_THREADS=2 python benchmarks/ablate_prior.py --runs runs/ablate --steps 3000 --threads 2 \\
        --eval-only --table runs/ablate/table.md                               # when they are done

The ``ft-`` variants fine-tune the prior ``--base`` (``ddrm train --init BASE``; default: the shipped
built-in prior) for ``--steps`` more steps, and ``v1-shipped`` is that prior as loaded (0 steps): the
changes that keep its architecture (prediction, weighting, crop size) compared at the same budget
from the same start. The model card's table started from v1, the built-in prior at commit 405b246;
once ``builtin`` is another prior, restore v1 with ``mkdir v1 && git archive 405b246 ddrm_kit/builtin |
tar -x -C v1`` and pass ``--base v1/ddrm_kit/builtin``.

Each variant trains in its own run folder ``RUNS/<variant>`` with ``ddrm_kit.train`` (resumable:
re-running continues a run, and skips one that has reached ``--steps``; a run keeps the recipe it
was created with, so ``latecrops`` switches to 128² crops at 3/4 of the first ``--steps`` given).
Steps, not minutes, so that variants compare on a shared, noisy CPU. Evaluation uses the run's own held-out photos (the
trainer's split: 16 of the 400 BSDS500 train + test photos, never BSDS500/val or a test set),
centre ``--crop`` crops: the held-out loss in ε units (holdout.csv's last row), and DDRM's PSNR (one
sample, the prior's settings: its ``ddrm_settings.json``, else the papers'; ``--eval-steps`` fixes the
step count) on ``sr4`` (noiseless and with noise
of sigma 0.05), ``deno`` sigma 0.1, ``inp_random50``, ``inp_box`` (a large hole), ``color`` and
``jpeg10``, next to the cheap baselines of builtin_quality.py.
After the evaluations, each variant's UNet forward at 256x256 (batch 1) is timed in one go,
interleaved with today's v1 architecture, and reported as a ratio to it. Results are kept in
``RUNS/<variant>/ablation.json`` (an evaluation is redone only when its step or settings change)
and ``RUNS/baselines.json``; the Markdown table is printed and written to ``--table``.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
from pathlib import Path

import click
import torch

from _common import pick_names
from builtin_quality import baseline
from ddrm_kit.atomic import write_text
from ddrm_kit.bench import preprocess
from ddrm_kit.imageio import load_image
from ddrm_kit.restore import NOISE, SAMPLER, Settings, generators, observe, restore, score
from ddrm_kit.train import CONFIG_JSON, HOLDOUT_CSV, TrainConfig, train, unet_config
from ddrm_kit.train.data import find_images, holdout_files

# task -> (operator, sigma in [0, 1] pixel units, the baseline of builtin_quality.py)
TASKS = {
    "sr4": ("sr4", 0.0, "bicubic"),
    "sr4_s0.05": ("sr4", 0.05, "bicubic"),
    "deno_s0.1": ("deno", 0.1, "observation"),
    "inp_random50": ("inp_random50", 0.0, "normconv"),
    "inp_box": ("inp_box", 0.0, "biharmonic"),
    "color": ("color", 0.0, "observation"),
    "jpeg10": ("jpeg10", 0.0, "observation"),
}
VPRED_MINSNR = {"prediction": "v_prediction", "loss_weighting": "min_snr"}
BASE = "builtin"  # the fine-tunes' starting prior unless --base names another
# variant -> its changes to today's recipe (ε, uniform weighting, conv-only 32,64,128,128, 64² crops)
VARIANTS = {
    "v1": {},
    "vpred": {"prediction": "v_prediction"},
    "vpred+minsnr": VPRED_MINSNR,
    "vpred+minsnr+attn": {**VPRED_MINSNR, "attention_levels": 1},
    "vpred+minsnr+5levels": {**VPRED_MINSNR, "channels": (32, 64, 96, 128, 128)},
    "vpred+minsnr+latecrops": {**VPRED_MINSNR, "late_size": 128},
    # two ResNet layers per block at 7/8 of the width: 1.1x v1's forward at 256² (0.87x at 3/4 width)
    "vpred+minsnr+deep": {**VPRED_MINSNR, "channels": (28, 56, 112, 112), "layers_per_block": 2},
    # fine-tunes of --base (ddrm train --init BASE), for the changes its architecture allows
    "v1-shipped": {"init": BASE, "steps": 0},
    "ft-eps": {"init": BASE},
    "ft-vpred": {"init": BASE, "prediction": "v_prediction"},
    "ft-vpred+minsnr": {"init": BASE, **VPRED_MINSNR},
    "ft-vpred+minsnr+crops128": {"init": BASE, **VPRED_MINSNR, "late_size": 128, "late_from": 0},
}
LATE_FRACTION = 0.75  # latecrops: 128² crops for the last quarter of the steps
FORWARD_SIZE = 256


def recipe(name: str, steps: int, batch: int, base: str = BASE) -> dict:
    """``ddrm_kit.train.train`` keywords of a variant: today's recipe with the variant's changes (a fine-tune from ``base``)."""
    changes = dict(VARIANTS[name])
    changes.pop("steps", None)
    if "init" in changes:
        changes["init"] = base
    if "late_size" in changes and "late_from" not in changes:
        changes["late_from"] = round(LATE_FRACTION * steps)
    return {"size": 64, "channels": (32, 64, 128, 128), "layers_per_block": 1, "attention_levels": 0,
            "batch": batch, "lr": 5e-4, "ema": 0.999, "seed": 0, **changes}


def last_row(run: Path) -> dict | None:
    """The last line of a run's holdout.csv as {step, holdout, train_seconds}, or None before its first checkpoint."""
    path = run / HOLDOUT_CSV
    if not path.exists():
        return None
    rows = list(csv.reader(path.read_text().splitlines()))
    if len(rows) < 2:
        return None
    # column 4 is the held-out ε error under either header (holdout_eps_mse_ema, or holdout_loss_ema before)
    step, _, seconds, _, holdout, _ = rows[-1]
    return {"step": int(step), "holdout": float(holdout), "train_seconds": float(seconds)}


def train_variant(name: str, runs: Path, data: list[str], steps: int, batch: int, threads: int,
                  precision: str, checkpoint_every: float, base: str) -> None:
    run = runs / name
    steps = VARIANTS[name].get("steps", steps)  # a variant may fix its own count: v1-shipped is v1 as loaded
    done = last_row(run)
    if done is not None and done["step"] >= steps:
        click.echo(f"{name}: trained ({done['step']} steps)")
        return
    click.echo(f"{name}: training to step {steps} in {run}")
    train(data, run, steps=steps, resume=True, threads=threads, precision=precision,
          checkpoint_every=checkpoint_every, progress=sys.stderr.isatty(), **recipe(name, steps, batch, base))


def eval_images(run: Path, crop: int, limit: int | None) -> tuple[torch.Tensor, list[str]]:
    """The run's held-out photos (all its images when it has no held-out split), centre-cropped, and their names."""
    cfg = TrainConfig.from_dict(json.loads((run / CONFIG_JSON).read_text()))
    files = holdout_files(cfg)
    if not files:
        click.echo(f"{run.name}: under 50 training images, so no held-out split; evaluating on training images")
        files = find_images(cfg.data)
    files = files[:limit] if limit else files
    return torch.cat([preprocess(load_image(p), crop=crop, channels=3) for p in files]), [p.name for p in files]


def restore_task(prior, task: str, x: torch.Tensor, names: list[str], seed: int, eval_steps: int | None,
                 chunk: int) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(DDRM's restoration, the task's baseline) of images ``x``, ``chunk`` images at a time."""
    from operators import get_operator

    name, sigma, method = TASKS[task]
    op = get_operator(name, tuple(x.shape[1:]))
    outs, bases = [], []
    for i in range(0, len(x), chunk):
        xs, keys = x[i : i + chunk], names[i : i + chunk]
        y = observe(op, xs, 2.0 * sigma, generators(seed, keys, NOISE))
        if prior is not None:
            outs.append(restore(prior, op, y, Settings(steps=eval_steps), 2.0 * sigma,
                                generators(seed, keys, SAMPLER), progress=False))
        bases.append(baseline(method, task, op, y, tuple(x.shape[1:])))
    return (torch.cat(outs) if outs else None), torch.cat(bases), op


def mean_psnr(xh: torch.Tensor, x: torch.Tensor) -> tuple[float, list[float]]:
    scores = score(xh, x)["psnr"]
    return sum(scores) / len(scores), [round(s, 3) for s in scores]


def evaluate_variant(name: str, runs: Path, key: dict, chunk: int) -> None:
    """Score the run's latest checkpoint (skipped when ablation.json already holds that step and ``key``)."""
    from ddrm_kit import load_prior
    from ddrm_kit.prior_settings import sampler_settings

    run = runs / name
    row = last_row(run)
    if row is None:
        click.echo(f"{name}: no checkpoint yet; train it first")
        return
    path = run / "ablation.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("step") == row["step"] and old.get("key") == key:
        click.echo(f"{name}: evaluated at step {row['step']}")
        return
    x, names = eval_images(run, key["crop"], key["images"])
    prior = load_prior(run, device="cpu")
    result = {"step": row["step"], "key": key, "holdout_eps_mse": row["holdout"],
              "seconds_per_step": row["train_seconds"] / max(1, row["step"]), "images": names, "psnr": {},
              "per_image": {}, "settings": {}}
    for task in key["tasks"]:
        t0 = time.time()
        xh, _, op = restore_task(prior, task, x, names, key["seed"], key["eval_steps"], chunk)
        result["psnr"][task], result["per_image"][task] = mean_psnr(xh, x)
        result["settings"][task] = sampler_settings(prior, op, steps=key["eval_steps"])
        click.echo(f"{name:24s} {task:14s} {result['psnr'][task]:6.2f} dB ({time.time() - t0:.0f} s)")
    write_text(path, json.dumps(result, indent=1))


def evaluate_baselines(runs: Path, name: str, key: dict, chunk: int) -> dict:
    """The baselines' PSNR on the same photos (cached in RUNS/baselines.json for ``key``)."""
    path = runs / "baselines.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    if cached.get("key") == key:
        return cached
    x, names = eval_images(runs / name, key["crop"], key["images"])
    psnr = {}
    for task in key["tasks"]:
        _, base, _ = restore_task(None, task, x, names, key["seed"], key["eval_steps"], chunk)
        psnr[task] = mean_psnr(base, x)[0]
    result = {"key": key, "images": names, "psnr": psnr}
    write_text(path, json.dumps(result, indent=1))
    return result


def run_config(runs: Path, name: str) -> TrainConfig:
    """The recipe a variant's run was created with (the variant's definition before it exists)."""
    path = runs / name / CONFIG_JSON
    if path.exists():
        return TrainConfig.from_dict(json.loads(path.read_text()))
    return TrainConfig(data=[], **recipe(name, 1, 32))


def time_forwards(runs: Path, names: list[str], threads: int, repeats: int) -> dict[str, dict]:
    """Each variant's UNet forward at 256² (batch 1, float32, random weights), interleaved with v1's; median seconds."""
    from diffusers import UNet2DModel

    torch.set_num_threads(threads)
    archs = {"v1": unet_config(TrainConfig(data=[], **recipe("v1", 1, 32)))}  # today's architecture
    archs.update({n: unet_config(run_config(runs, n)) for n in names})
    torch.manual_seed(0)  # timing only: the weights' values do not matter
    models = {n: UNet2DModel(**cfg).eval().requires_grad_(False) for n, cfg in archs.items()}
    x, t = torch.randn(1, 3, FORWARD_SIZE, FORWARD_SIZE), torch.tensor([500])
    times: dict[str, list[float]] = {n: [] for n in models}
    with torch.no_grad():
        for model in models.values():
            model(x, t)  # warm-up
        for _ in range(repeats):
            for n, model in models.items():
                t0 = time.perf_counter()
                model(x, t)
                times[n].append(time.perf_counter() - t0)
    v1 = statistics.median(times["v1"])
    return {n: {"forward_s": statistics.median(ts), "forward_ratio": statistics.median(ts) / v1,
                "params_m": sum(p.numel() for p in models[n].parameters()) / 1e6} for n, ts in times.items()}


def describe(cfg: TrainConfig) -> str:
    """A run's recipe as its differences from v1's."""
    v1 = TrainConfig(data=[], **recipe("v1", 1, cfg.batch))
    parts = []
    for key in ("init", "prediction", "loss_weighting", "snr_gamma", "channels", "layers_per_block", "attention_levels",
                "size", "late_size", "late_from", "lr", "ema", "seed"):
        value = getattr(cfg, key)
        # Min-SNR's gamma is named whenever it weights, default or not
        unnamed = cfg.loss_weighting == "uniform" if key == "snr_gamma" else value == getattr(v1, key)
        if unnamed:
            continue
        parts.append(f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}")
    return "; ".join(parts) or "ε, uniform, conv-only 32,64,128,128, 64² crops"


def markdown_table(runs: Path, names: list[str], timing: dict[str, dict], baselines: dict) -> str:
    tasks = list(TASKS)
    heads = ["variant", "recipe", "steps", "held-out loss (ε)", *tasks, "forward 256² (x v1)", "params (M)", "s/step"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    if baselines:
        cells = ["baseline", ", ".join(f"{t}: {TASKS[t][2]}" for t in tasks), "", "",
                 *(f"{baselines['psnr'].get(t, float('nan')):.2f}" for t in tasks), "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    for name in names:
        path = runs / name / "ablation.json"
        res = json.loads(path.read_text()) if path.exists() else None
        if res is None:
            continue
        tm = timing.get(name, {})
        cells = [name, describe(run_config(runs, name)), str(res["step"]), f"{res['holdout_eps_mse']:.4f}",
                 *(f"{res['psnr'][t]:.2f}" if t in res["psnr"] else "–" for t in tasks),
                 f"{tm['forward_ratio']:.2f}" if tm else "–", f"{tm['params_m']:.2f}" if tm else "–",
                 f"{res['seconds_per_step']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    key = baselines.get("key", {})
    steps = f"{key['eval_steps']} steps" if key.get("eval_steps") else "each prior's step counts"
    note = (f"\nPSNR in dB, mean over {len(baselines.get('images', []))} held-out BSDS500 training photos "
            f"(centre {key.get('crop')}² crops), DDRM {steps}, one sample, seed {key.get('seed')}; "
            "held-out loss: mean squared ε error of the EMA weights (v converted to ε); "
            "s/step: the run's own training clock (shared CPU, noisy).")
    return "\n".join(lines) + "\n" + note


@click.command()
@click.option("--runs", required=True, type=click.Path(file_okay=False), help="Folder of the variants' run folders.")
@click.option("--steps", required=True, type=click.IntRange(min=1), help="Training steps of every variant.")
@click.option("--data", multiple=True, type=click.Path(file_okay=False), help="Training image folders (repeat).")
@click.option("--variants", default=",".join(VARIANTS), show_default=True,
              help="Comma-separated variant names (with --eval-only, also run folders under --runs).")
@click.option("--base", default=BASE, show_default=True, help="The prior the ft- variants start from (ddrm train --init).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="torch CPU threads.")
@click.option("--train-only", is_flag=True, help="Only train (run several of these in parallel, one thread each).")
@click.option("--eval-only", is_flag=True, help="Only evaluate, time and tabulate what has been trained.")
@click.option("--batch", default=32, show_default=True, type=click.IntRange(min=1), help="Crops per step (v1's 32).")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "bf16", "fp32"]))
@click.option("--checkpoint-every", default=10.0, show_default=True, help="Minutes between checkpoints.")
@click.option("--crop", default=256, show_default=True, type=click.IntRange(min=8), help="Centre crop of the photos.")
@click.option("--eval-images", default=None, type=click.IntRange(min=1), help="Use only the first N held-out photos.")
@click.option("--eval-steps", default=None, type=click.IntRange(min=1),
              help="DDRM steps for every task (default: each prior's settings file, else the papers' 20).")
@click.option("--tasks", default=",".join(TASKS), show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the observations' noise and of DDRM.")
@click.option("--chunk", default=4, show_default=True, type=click.IntRange(min=1), help="Images per DDRM batch.")
@click.option("--repeats", default=10, show_default=True, type=click.IntRange(min=1), help="Timed forwards per variant.")
@click.option("--table", "table_file", default=None, type=click.Path(dir_okay=False), help="Write the Markdown table here.")
def main(runs, steps, data, variants, base, threads, train_only, eval_only, batch, precision, checkpoint_every, crop,
         eval_images, eval_steps, tasks, seed, chunk, repeats, table_file) -> None:
    """Train the recipe variants for --steps each, then score and time them."""
    names = [v.strip() for v in variants.split(",") if v.strip()]
    runs = Path(runs)
    # a run folder that is no variant (a continued or branched run, a snapshot) can be evaluated
    unknown = [v for v in names if v not in VARIANTS and (not eval_only or not (runs / v / CONFIG_JSON).is_file())]
    if unknown:
        raise click.UsageError(f"unknown variant {unknown[0]!r}: neither one of {', '.join(VARIANTS)} "
                               "nor, with --eval-only, a run folder under --runs")
    task_list = pick_names(tasks, list(TASKS), "task", "--tasks")
    if train_only and eval_only:
        raise click.UsageError("give --train-only or --eval-only, not both")
    torch.set_num_threads(threads)
    if not eval_only:
        if not data:
            raise click.UsageError("training needs --data")
        for name in names:
            train_variant(name, runs, list(data), steps, batch, threads, precision, checkpoint_every, base)
    if train_only:
        return
    key = {"crop": crop, "images": eval_images, "eval_steps": eval_steps, "tasks": task_list, "seed": seed}
    for name in names:
        evaluate_variant(name, runs, key, chunk)
    evaluated = [n for n in names if (runs / n / "ablation.json").exists()]
    baselines = evaluate_baselines(runs, evaluated[0], key, chunk) if evaluated else {}
    timing = time_forwards(runs, names, threads, repeats)
    table = markdown_table(runs, names, timing, baselines)
    click.echo(table)
    if table_file:
        write_text(Path(table_file), table + "\n")


if __name__ == "__main__":
    main()

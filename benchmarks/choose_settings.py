"""Choose a prior's DDRM sampler settings per task family on its held-out training photos: ddrm_settings.json.

    D=/work/shared/data/BSDS500
    OMP_NUM_THREADS=2 python benchmarks/choose_settings.py --model builtin --data $D/train --data $D/test \\
        --tasks sr4,deno_s0.1,inp_random50,color,jpeg10 --crop 128 --images 8 -o runs/settings/builtin
    cp runs/settings/builtin/ddrm_settings.json ddrm_kit/builtin/     # after reading search.md

The photos must be the prior's own held-out training photos (the trainer's split), never a test
set: settings picked on the photos a prior is later scored on would flatter it. ``--data`` (in the
order the prior was trained with), ``--seed`` and ``--size`` rebuild a training run's split the way
``ddrm train`` makes it (``ddrm_kit.train.data.holdout_files``); ``--run RUN`` reads them from the
run's train_config.json (needed for a run trained with --late-size), and a ``--model`` run folder
is its own ``--run``. Folders named like test sets (BSDS500/val, Kodak24, Set14, ...) are refused, as is
data other than what the built-in prior's model card or a run's train_config.json names.

For each task (an operator and a noise level, ``builtin_quality.TASKS``), DDRM restores the
``--images`` photos' centre ``--crop`` crops, one sample, each image's noise and sampler draws
seeded by ``--sample-seed`` and its file name (``ddrm_kit.restore``, as everywhere). The search
changes one setting at a time, starting from the papers' values at the papers' 20 steps (or the
first of ``--steps`` if it does not hold 20):

1. eta over ``--etas``, then eta_b over ``--eta-bs`` at the best eta, then (JPEG) t0 over ``--t0s``.
   A setting keeps its value unless the grid's best beats it by more than ``--threshold`` dB of mean
   PSNR, so noise does not pick settings.
2. The number of steps over ``--steps``, with a cost rule: each step count scores its PSNR minus
   ``--step-cost`` dB per doubling of the steps from the start (a count that takes twice the time
   must pay for it); the best score replaces the start only if it beats the start's by more than
   ``--threshold``.
3. If the steps changed, step 1 again at the new count (the best eta can depend on the steps).

Every evaluated point is kept in OUT/search.json (a re-run evaluates only new points);
OUT/ddrm_settings.json holds, per task family, the settings that differ from the papers' (checked
with ``ddrm_kit.prior_settings.check_settings``), and OUT/search.md tabulates every point with the
chosen ones marked.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from builtin_quality import TASKS, cpu_prior, ddrm_samples, observe_set
from ddrm_kit.atomic import write_text
from ddrm_kit.bench import preprocess
from ddrm_kit.cli.errors import Command
from ddrm_kit.imageio import load_image
from ddrm_kit.prior import BUILTIN_DIR
from ddrm_kit.prior_settings import JPEG_T0_FRACTION, PAPERS, SETTINGS_JSON, check_settings, sampler_settings
from ddrm_kit.restore import is_codec, score
from ddrm_kit.train import CONFIG_JSON, TrainConfig
from ddrm_kit.train.data import holdout_files
from ddrm_kit.train.recipe import min_image_side

# Folder names of test sets: photos a prior is scored on, never chosen on.
TEST_SETS = {"val", "kodak", "kodak24", "bsd68", "bsd100", "cbsd68", "set5", "set12", "set14", "urban100",
             "mcmaster", "manga109"}
# The built-in prior's training data and split (its model card): folders' last two parts, seed, crop size.
BUILTIN_DATA, BUILTIN_SEED, BUILTIN_SIZE = ("BSDS500/train", "BSDS500/test"), 0, 64


@dataclass
class Job:
    """One task on the photos: its operator, the observations and what DDRM runs with."""

    prior: object
    task: str
    op: object
    x: torch.Tensor
    y: torch.Tensor
    names: list[str]
    seed: int
    chunk: int


def measure(job: Job, point: dict) -> list[float]:
    """Per-image PSNR of DDRM with ``point``'s settings, given as the prior's settings for the task's family."""
    variant = copy.copy(job.prior)  # the same network, other settings
    variant.settings = check_settings({job.op.family: point}, job.prior.num_train_timesteps, "search point")
    used = sampler_settings(variant, job.op)
    if any(used[k] != v for k, v in point.items()):
        raise click.ClickException(f"{job.task}: the sampler would run {used}, not the search point {point}")
    out = ddrm_samples(job.task, job.op, job.y, job.names, variant, job.seed, None, chunk=job.chunk)[0]
    return score(out, job.x)["psnr"]


def point_name(task: str, point: dict) -> str:
    return " ".join([task, *(f"{k}={v:g}" for k, v in point.items())])


class Search:
    """Evaluated points, kept in ``path`` (search.json) after each one; only new points are measured."""

    def __init__(self, path: Path, key: dict) -> None:
        self.path, self.key, self.evaluated = path, key, 0
        saved = json.loads(path.read_text()) if path.exists() else {"key": key, "points": {}}
        if saved.get("key") != key:
            diff = ", ".join(k for k in sorted(set(key) | set(saved.get("key", {})))
                             if key.get(k) != saved.get("key", {}).get(k))
            raise click.ClickException(f"{path} holds a search of other inputs ({diff}): use another -o or delete it")
        self.points: dict[str, dict] = saved["points"]

    def psnr(self, job: Job, point: dict) -> float:
        name = point_name(job.task, point)
        if name not in self.points:
            start = time.time()
            scores = measure(job, point)
            self.points[name] = {"task": job.task, **point, "psnr": sum(scores) / len(scores),
                                 "per_image": [round(s, 3) for s in scores], "seconds": round(time.time() - start, 1)}
            self.evaluated += 1
            write_text(self.path, json.dumps({"key": self.key, "points": self.points}, indent=1))
            click.echo(f"{name:40s} {self.points[name]['psnr']:6.2f} dB ({time.time() - start:.0f} s)")
        return self.points[name]["psnr"]


def papers_point(codec: bool, num_train_timesteps: int) -> dict:
    """The papers' steps, eta, eta_b and (codec) t0."""
    point = dict(PAPERS["codec" if codec else "linear"])
    if codec:
        point["t0"] = max(1, round(JPEG_T0_FRACTION * num_train_timesteps))
    return point


def choose(start: dict, grids: dict, threshold: float, psnr) -> dict:
    """Coordinate search from ``start`` over every setting but steps: each in turn over its grid (plus its
    start value) at the best so far; it keeps the start value unless the grid's best gains more than ``threshold`` dB."""
    best = dict(start)
    for key in start:
        if key == "steps":
            continue
        values = sorted(set(grids[key]) | {start[key]})
        scores = {v: psnr({**best, key: v}) for v in values}
        top = max(values, key=scores.__getitem__)
        best[key] = top if scores[top] - scores[start[key]] > threshold else start[key]
    return best


def choose_steps(start: dict, grid: list[int], cost: float, threshold: float, psnr) -> int:
    """The step count of ``grid`` whose PSNR less ``cost`` dB per doubling (from ``start``'s) is best, if it
    beats ``start``'s count by more than ``threshold`` dB; else ``start``'s."""
    base = start["steps"]
    values = sorted(set(grid) | {base})
    scores = {s: psnr({**start, "steps": s}) - cost * math.log2(s / base) for s in values}
    top = max(values, key=scores.__getitem__)
    return top if scores[top] - scores[base] > threshold else base


def search_task(start: dict, grids: dict, step_cost: float, threshold: float, psnr) -> dict:
    """Steps 1-3 of the module's search: the other settings, then the steps, then the others again at new steps."""
    best = choose(start, grids, threshold, psnr)
    steps = choose_steps(best, grids["steps"], step_cost, threshold, psnr)
    return best if steps == best["steps"] else choose({**best, "steps": steps}, grids, threshold, psnr)


def _known_test_set(folder: str) -> bool:
    return any(part.lower() in TEST_SETS for part in Path(folder).resolve().parts)


def _run_config(folder: Path) -> TrainConfig | None:
    path = folder / CONFIG_JSON
    return TrainConfig.from_dict(json.loads(path.read_text())) if path.is_file() else None


def model_label(model: str) -> str:
    """``builtin``, a local prior's absolute path, or the name as given (a hub id)."""
    if model == "builtin" or Path(model).resolve() == BUILTIN_DIR:
        return "builtin"
    return str(Path(model).resolve()) if Path(model).exists() else model


def recipe(model: str, run: str | None, data: tuple[str, ...], seed: int, size: int) -> TrainConfig:
    """The training recipe whose held-out photos to use, checked against the prior's known training data."""
    is_builtin = model_label(model) == "builtin"
    model_cfg = None if is_builtin or not Path(model).is_dir() else _run_config(Path(model))
    if run and data:
        raise click.ClickException("give --run or --data, not both")
    if run:
        cfg = _run_config(Path(run))
        if cfg is None:
            raise click.ClickException(f"{run}: no {CONFIG_JSON}; pass a ddrm train run folder, or --data")
    elif data:
        cfg = TrainConfig(data=list(data), seed=seed, size=size)
    elif model_cfg is not None:
        cfg = model_cfg
    else:
        raise click.ClickException("give --data (the prior's training folders, in training order) or --run RUN")
    for folder in cfg.data:
        if _known_test_set(folder):
            raise click.ClickException(
                f"{folder} is a test set: choose settings on the prior's held-out training photos")
    where = f"--data {' --data '.join(map(str, cfg.data))} --seed {cfg.seed} --size {min_image_side(cfg)}"
    if is_builtin:
        tails = ["/".join(Path(d).resolve().parts[-2:]) for d in cfg.data]
        if (tuple(tails), cfg.seed, min_image_side(cfg)) != (BUILTIN_DATA, BUILTIN_SEED, BUILTIN_SIZE):
            raise click.ClickException(
                f"the built-in prior was trained on {' + '.join(BUILTIN_DATA)} (seed {BUILTIN_SEED}, "
                f"{BUILTIN_SIZE}² crops), not {where}")
    elif model_cfg is not None:
        same = ([Path(d).resolve() for d in cfg.data], cfg.seed, min_image_side(cfg)) == (
            [Path(d).resolve() for d in model_cfg.data], model_cfg.seed, min_image_side(model_cfg))
        if not same:
            raise click.ClickException(f"{model} was trained on other data or another split than {where}")
    return cfg


def photos(cfg: TrainConfig, crop: int, images: int) -> tuple[torch.Tensor, list[str]]:
    """The first ``images`` held-out photos of the recipe, centre-cropped (as ablate_prior.py), and their names."""
    files = holdout_files(cfg)[:images]
    if not files:
        raise click.ClickException(f"{' + '.join(map(str, cfg.data))}: under 50 images, so training held none out; "
                                   "there is nothing unseen to choose settings on")
    return torch.cat([preprocess(load_image(p), crop=crop, channels=3) for p in files]), [p.name for p in files]


def numbers(text: str, option: str, cast, low: float, high: float) -> list:
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(not low <= v <= high for v in values):
        raise click.ClickException(f"{option}: comma-separated {cast.__name__}s in [{low:g}, {high:g}], got {text!r}")
    return values


def markdown(points: dict, chosen: dict[str, dict], starts: dict[str, dict]) -> str:
    """Every point of each task, its PSNR against the start's (the papers' values at the first steps)."""
    lines = ["| task | steps | eta | eta_b | t0 | PSNR (dB) | vs start |", "|---|---|---|---|---|---|---|"]
    for task, best in chosen.items():
        ref = points[point_name(task, starts[task])]["psnr"]
        for name, p in points.items():
            if p["task"] != task:
                continue
            marks = [m for m, q in (("**chosen**", best), ("start", starts[task])) if name == point_name(task, q)]
            lines.append(f"| {task} | {p['steps']} | {p['eta']:g} | {p['eta_b']:g} | {p.get('t0', '–')} | "
                         f"{p['psnr']:.2f} {' '.join(marks)} | {p['psnr'] - ref:+.2f} |")
    return "\n".join(lines)


@click.command(cls=Command)
@click.option("--model", default="builtin", show_default=True, help="The prior (any name load_prior takes).")
@click.option("--data", multiple=True, type=click.Path(file_okay=False), 
              help="The prior's training folders (repeat, in order).")
@click.option("--seed", default=0, show_default=True, help="The training run's --seed (it picks the held-out photos).")
@click.option("--size", default=64, show_default=True, type=click.IntRange(min=1), help="The training run's --size.")
@click.option("--run", default=None, type=click.Path(file_okay=False), 
              help="A ddrm train run folder: its recipe, not --data.")
@click.option("--tasks", default="sr4,deno_s0.1,inp_random50,color,jpeg10", show_default=True,
              help=f"Comma-separated, from {', '.join(TASKS)}; one per task family.")
@click.option("--crop", default=128, show_default=True, type=click.IntRange(min=8), help="Centre crop of the photos.")
@click.option("--images", default=8, show_default=True, type=click.IntRange(min=1), 
              help="Use the first N held-out photos.")
@click.option("--steps", default="10,20,50,100", show_default=True,
              help="Step-count grid; the search starts at 20 if it holds it, else at its first value.")
@click.option("--step-cost", default=0.25, show_default=True, type=click.FloatRange(min=0),
              help="dB a step count must gain per doubling of the steps to be chosen.")
@click.option("--etas", default="0.3,0.5,0.7,0.85,1.0", show_default=True, help="eta grid.")
@click.option("--eta-bs", default="0.4,0.7,1.0", show_default=True, help="eta_b grid.")
@click.option("--t0s", default="200,300,400", show_default=True, help="t0 grid (codec tasks).")
@click.option("--threshold", default=0.1, show_default=True, type=click.FloatRange(min=0),
              help="dB a setting must gain over the papers' value to replace it.")
@click.option("--sample-seed", default=0, show_default=True, help="Seed of the observations' noise and of DDRM.")
@click.option("--chunk", default=4, show_default=True, type=click.IntRange(min=1), help="Images per DDRM batch.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="torch CPU threads.")
@click.option("--bf16", is_flag=True, help="Run the UNet under bfloat16 autocast (builtin_quality.py's --bf16).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder of the results.")
def main(model, data, seed, size, run, tasks, crop, images, steps, step_cost, etas, eta_bs, t0s, threshold, sample_seed,
         chunk, threads, bf16, out) -> None:
    """Choose the prior's steps, eta, eta_b and (JPEG) t0 per task family on its held-out training photos."""
    from operators import get_spec

    if threads:
        torch.set_num_threads(threads)
    task_list = [t.strip() for t in tasks.split(",") if t.strip()]
    bad = [t for t in task_list if t not in TASKS]
    if bad or not task_list:
        raise click.ClickException(f"--tasks: unknown {bad[0] if bad else ''!r}; choose from {', '.join(TASKS)}")
    families = [get_spec(TASKS[t][0]).family for t in task_list]
    if len(set(families)) < len(families):
        pairs = ", ".join(f"{t}: {f}" for t, f in zip(task_list, families))
        raise click.ClickException(f"--tasks: give one task per family ({pairs})")
    cfg = recipe(model, run, data, seed, size)
    prior = cpu_prior(model, bf16)
    T = prior.num_train_timesteps
    codec = any(get_spec(TASKS[t][0]).kind == "codec" for t in task_list)
    top = papers_point(True, T)["t0"] if codec else T
    step_grid = numbers(steps, "--steps", int, 1, top)
    grids = {"steps": step_grid, "eta": numbers(etas, "--etas", float, 0, 1),
             "eta_b": numbers(eta_bs, "--eta-bs", float, 0, 1), "t0": numbers(t0s, "--t0s", int, max(step_grid), T)}
    x, names = photos(cfg, crop, images)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = {"model": model_label(model), "photos": names, "crop": crop, "sample_seed": sample_seed, "bf16": bf16}
    search = Search(out / "search.json", key)
    chosen, starts, settings = {}, {}, {}
    for task, family in zip(task_list, families):
        op, y = observe_set(task, x, names, sample_seed)
        job = Job(prior, task, op, x, y, names, sample_seed, chunk)
        papers = papers_point(is_codec(op), T)
        starts[task] = {**papers, "steps": papers["steps"] if papers["steps"] in step_grid else step_grid[0]}
        chosen[task] = search_task(starts[task], grids, step_cost, threshold, lambda point: search.psnr(job, point))
        diff = {k: v for k, v in chosen[task].items() if v != papers[k]}
        if diff:
            settings[family] = diff
        click.echo(f"{task}: {family} {diff or 'papers values'}")
    settings["_note"] = (
        f"chosen by benchmarks/choose_settings.py for {key['model']}: coordinate search (eta, then eta_b, then t0, "
        f"then steps over {', '.join(map(str, step_grid))} at {step_cost:g} dB per doubling, then eta, eta_b, t0 "
        f"again at new steps), one sample, mean PSNR over {len(names)} held-out training photos ({', '.join(names)}) of "
        f"{' + '.join('/'.join(Path(d).parts[-2:]) for d in cfg.data)} (split seed {cfg.seed}), centre {crop}² crops, sample seed {sample_seed}; "
        f"the papers' values kept unless a gain > {threshold:g} dB")
    path = out / SETTINGS_JSON
    check_settings(settings, T, str(path))
    write_text(path, json.dumps(settings, indent=1) + "\n")
    table = markdown(search.points, chosen, starts)
    write_text(out / "search.md", table + "\n\n" + settings["_note"] + "\n")
    click.echo(table)
    click.echo(f"{search.evaluated} points evaluated, {len(search.points)} cached; wrote {path}")


if __name__ == "__main__":
    main()

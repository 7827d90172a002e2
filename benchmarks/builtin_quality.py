"""Quality of a prior under DDRM (its own settings) next to classical baselines: the built-in prior's model-card table.

    python benchmarks/builtin_quality.py --methods baselines --n 8     # prior-free rows (cached)
    python benchmarks/builtin_quality.py --methods ddrm --n 8          # DDRM rows with --model
    python benchmarks/builtin_quality.py --methods ddrm --average 8    # + the mean of 8 samples per image
    python benchmarks/builtin_quality.py --table                       # markdown table of results.json

Data: the first ``n`` images (sorted names) of Kodak24 and of BSD100 (BSDS500/val, held out from
training), centre crops of 256x256 at native resolution. Tasks (sigma in [0, 1] pixel units):
``sr4`` and ``sr4`` sigma 0.05 vs bicubic upsampling; ``deno`` sigma 0.1 vs the noisy input and BM3D
(``pip install bm3d``); ``inp_random50`` vs biharmonic filling (scikit-image) and normalised
convolution; ``color`` vs the grey image; ``deblur_gauss`` vs the blurred image; ``jpeg10`` vs the
decoded JPEG. DDRM runs with the prior's sampler settings (its ``ddrm_settings.json``, else the
papers' values) unless ``--steps`` is given; ``--average K`` adds the mean of K samples per image
(a posterior-mean estimate) next to the single sample, which is the first of the K (one run of K
samples gives both rows). Scores are the mean per-image PSNR
(``ddrm_kit.restore.score``). Observation noise and DDRM go through
``ddrm_kit.restore`` with each image's generators seeded by ``--seed`` and its file name: each image
gets the noise and sampler draws of ``ddrm bench --crop 256 --seed S``, and reruns give the same
numbers on the same machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

from _common import pick_names
from ddrm_kit.atomic import write_text
from ddrm_kit.bench import preprocess
from ddrm_kit.imageio import list_images, load_image
from ddrm_kit.prior_settings import sampler_settings
from ddrm_kit.restore import NOISE, SAMPLER, Settings, generators, observe, restore_samples, score

DATASETS = {"Kodak24": "/work/shared/data/Kodak24", "BSD100": "/work/shared/data/BSDS500/val"}
# task -> (operator name, sigma_y in [0, 1] pixel units, baselines)
TASKS = {
    "sr4": ("sr4", 0.0, ("bicubic",)),
    "sr4_s0.05": ("sr4", 0.05, ("bicubic",)),
    "deno_s0.1": ("deno", 0.1, ("observation", "bm3d")),
    "inp_random50": ("inp_random50", 0.0, ("biharmonic", "normconv")),
    "color": ("color", 0.0, ("observation",)),
    "deblur_gauss": ("deblur_gauss", 0.0, ("observation",)),
    "jpeg10": ("jpeg10", 0.0, ("observation",)),
}
LABELS = {
    "ddrm": "DDRM",
    "ddrm_clip": "DDRM, x̂0 clipped",
    "bicubic": "bicubic",
    "observation": "input",
    "bm3d": "BM3D",
    "biharmonic": "biharmonic",
    "normconv": "norm. conv.",
}
CROP = 256
NORMCONV_SIGMA = 1.0  # pixels; fixed in advance, not tuned on the test images


def load_set(folder: str, n: int) -> tuple[torch.Tensor, list[str]]:
    """The first n images of a folder (centre CROP x CROP crops, (n, 3, CROP, CROP) in [-1, 1]) and their names."""
    files = list_images(folder)[:n]
    return torch.cat([preprocess(load_image(p), crop=CROP) for p in files]), [p.name for p in files]


def observe_set(task: str, x: torch.Tensor, names: list[str], seed: int):
    """The task's operator and the observation of the images ``x`` (noise per image from its name)."""
    from operators import get_operator

    name, sigma, _ = TASKS[task]
    op = get_operator(name, tuple(x.shape[1:]))
    return op, observe(op, x, 2.0 * sigma, generators(seed, names, NOISE))


def _to_hwc01(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).double().numpy()


def _from_hwc01(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).float().permute(2, 0, 1) * 2 - 1


def baseline(method: str, task: str, op, y: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """A classical restoration of the observation y (batch), in [-1, 1]."""
    c, h, w = shape
    if method == "bicubic":
        return F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
    if method == "observation":
        return y.expand(-1, c, -1, -1) if y.shape[1] == 1 else y
    if method == "bm3d":
        import bm3d

        sigma = TASKS[task][1]
        return torch.stack([_from_hwc01(bm3d.bm3d_rgb(_to_hwc01(yi), sigma)) for yi in y])
    # inpainting: the zero-filled image and the mask of observed pixels
    filled = op.H_pinv(y)
    mask = op.H_pinv(op.H(torch.ones((1, *shape)))).expand_as(filled) > 0.5
    if method == "normconv":
        k = torch.arange(-3 * NORMCONV_SIGMA, 3 * NORMCONV_SIGMA + 1)
        g1 = torch.exp(-(k**2) / (2 * NORMCONV_SIGMA**2))
        g = (g1[:, None] * g1[None, :]) / g1.sum() ** 2
        g = g.expand(c, 1, -1, -1).contiguous()
        pad = g.shape[-1] // 2
        num = F.conv2d(F.pad(filled * mask, (pad,) * 4, mode="reflect"), g, groups=c)
        den = F.conv2d(F.pad(mask.float(), (pad,) * 4, mode="reflect"), g, groups=c)
        return torch.where(mask, filled, num / den.clamp_min(1e-8))
    if method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        out = []
        for fi, mi in zip(filled, mask):
            chans = [inpaint_biharmonic(_to_hwc01(fi[k : k + 1])[..., 0], ~mi[k].numpy()) for k in range(c)]
            out.append(_from_hwc01(np.stack(chans, axis=-1)))
        return torch.stack(out)
    raise ValueError(f"unknown baseline {method}")


def cpu_prior(model: str, bf16: bool):
    """The prior on the CPU; with ``bf16`` its UNet runs under bfloat16 autocast (as it was trained)."""
    from ddrm_kit import Prior, load_prior

    prior = load_prior(model, device="cpu")
    if not bf16:
        return prior

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # only the UNet: the operators' SVD algebra stays float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return prior(x, t)

    return Prior(eps, prior.alphas_cumprod, name=prior.name, channels=prior.channels, settings=prior.settings)


def ddrm_samples(task: str, op, y: torch.Tensor, names: list[str], prior, seed: int, steps: int | None,
             clip: bool = False, average: int = 1, chunk: int | None = None) -> torch.Tensor:
    """``average`` DDRM samples with the prior's settings (``steps`` None) for each image: ``(average, B, ...)``.

    ``chunk`` images (default: all) go through DDRM per call; every image's draws come from its own
    generators, so chunking changes no result.
    """
    sigma = TASKS[task][1]
    settings = Settings(steps=steps, clip_denoised=clip, average=average)
    size = chunk or len(y)
    return torch.cat([restore_samples(prior, op, y[i : i + size], settings, 2.0 * sigma,
                                      generators(seed, names[i : i + size], SAMPLER), progress=False)
                      for i in range(0, len(y), size)], dim=1)


@click.command()
@click.option("--methods", type=click.Choice(["baselines", "ddrm"]), default=None, help="What to compute (omit with --table).")
@click.option("--model", default="ddrm_kit/builtin", show_default=True, help="Prior for the DDRM rows.")
@click.option("--n", default=8, show_default=True, help="Images per data set.")
@click.option("--steps", default=None, type=int, help="DDRM steps (default: the prior's settings, else 20).")
@click.option("--tasks", default=",".join(TASKS), show_default=True)
@click.option("--sets", default=None, help=f"Data sets, comma-separated (default: {','.join(DATASETS)}); to split a run over processes.")
@click.option("--seed", default=0, show_default=True, help="Seed of the noise and of DDRM (per image: with its name).")
@click.option("--results", default="/work/runs/quality/results.json", show_default=True, type=click.Path(dir_okay=False))
@click.option("--threads", default=None, type=int, help="torch CPU threads.")
@click.option("--bf16", is_flag=True, help="Run the UNet under bfloat16 autocast (2x faster on AVX512-BF16 CPUs).")
@click.option("--clip-denoised", is_flag=True, help="DDRM rows with x̂0 clipped to [-1, 1] (stored as ddrm_clip).")
@click.option("--average", default=1, type=click.IntRange(min=1), show_default=True,
              help="Also score the mean of K samples per image (stored as ddrm_meanK), next to one sample.")
@click.option("--chunk", default=None, type=click.IntRange(min=1),
              help="Images per DDRM call (default: all; each image's K samples always run together).")
@click.option("--table", is_flag=True, help="Print the markdown table of the results file.")
def main(methods, model, n, steps, tasks, sets, seed, results, threads, bf16, clip_denoised, average, chunk, table) -> None:
    """Score DDRM with a prior, or the classical baselines, on Kodak24 + BSD100 crops."""
    sets = pick_names(sets, list(DATASETS), "data set", "--sets") if sets else list(DATASETS)
    tasks = pick_names(tasks, list(TASKS), "task", "--tasks")
    if threads:
        torch.set_num_threads(threads)
    path = Path(results)
    store = json.loads(path.read_text()) if path.exists() else {}
    ddrm_key = "ddrm_clip" if clip_denoised else "ddrm"  # results key of this run's single-sample DDRM rows
    prior = cpu_prior(model, bf16) if methods == "ddrm" else None
    if methods:
        for task in tasks:
            for ds in sets:
                x, names = load_set(DATASETS[ds], n)
                op, y = observe_set(task, x, names, seed)
                rows = {}  # results key -> (restoration, seconds, what the row records beside its scores)
                if methods == "ddrm":
                    t0 = time.time()
                    samples = ddrm_samples(task, op, y, names, prior, seed, steps, clip_denoised, average, chunk)
                    seconds = time.time() - t0  # the one run that drew all K samples, in both rows
                    info = {"model": model, "settings": sampler_settings(prior, op, steps=steps), "bf16": bf16, "seed": seed}
                    # one sample is the first of the K, drawn exactly as a run of one sample draws it
                    rows[ddrm_key] = (samples[0], seconds, {**info, "average": 1})
                    if average > 1:
                        rows[f"{ddrm_key}_mean{average}"] = (samples.mean(0), seconds, {**info, "average": average})
                else:
                    for method in TASKS[task][2]:
                        t0 = time.time()
                        rows[method] = (baseline(method, task, op, y, tuple(x.shape[1:])), time.time() - t0, {})
                for method, (xh, seconds, info) in rows.items():
                    scores = score(xh, x)["psnr"]
                    store.setdefault(task, {}).setdefault(ds, {})[method] = {
                        "psnr": sum(scores) / len(scores), "per_image": [round(v, 3) for v in scores], "n": len(x),
                        "seconds": round(seconds, 1), **info}
                    click.echo(f"{task:14s} {ds:8s} {method:12s} {sum(scores) / len(scores):6.2f} dB ({seconds:.0f} s)")
                write_text(path, json.dumps(store, indent=1))
    if table:
        click.echo(markdown_table(store))


def _cell(value: float | None, ref: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if ref is None else f"{value - ref:+.2f}"


def markdown_table(store: dict) -> str:
    """One row per task and data set: DDRM with one sample and with each mean of K found, clipped, baselines, gaps."""
    means = sorted({int(m[len("ddrm_mean"):]) for per_ds in store.values() for rows in per_ds.values()
                    for m in rows if m.startswith("ddrm_mean")})
    heads = ["DDRM, 1 sample", *(f"DDRM, mean of {k}" for k in means), "DDRM, x̂0 clipped", "classical baselines",
             "1 sample - best baseline", *(f"mean of {k} - best baseline" for k in means)]
    lines = ["| task | data (images) | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for task, per_ds in store.items():
        for ds, rows in per_ds.items():
            psnr = {m: r["psnr"] for m, r in rows.items()}
            base = {m: v for m, v in psnr.items() if not m.startswith("ddrm")}
            best = max(base.values()) if base else None
            ddrm = [psnr.get("ddrm"), *(psnr.get(f"ddrm_mean{k}") for k in means)]
            gaps = [_cell(d, best) if d is not None and best is not None else "–" for d in ddrm]
            cells = [*(_cell(d) for d in ddrm), _cell(psnr.get("ddrm_clip")),
                     ", ".join(f"{LABELS[m]} {v:.2f}" for m, v in base.items()), *gaps]
            lines.append(f"| {task} | {ds} ({next(iter(rows.values()))['n']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()

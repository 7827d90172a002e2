"""The bench loop: each image through :mod:`ddrm_kit.restore` (observe, baselines, restore, score).

``--method palette`` changes only the restoration (``palette_sampler.palette_samples`` with the
model's own operator, built from its ``palette.json``): the observations, seeds, baselines and
scores are DDRM's, so the two methods are compared on the same ``y``.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ddrm_kit.errors import BenchError
from ddrm_kit.precision import PRECISIONS

from . import distributed
from .config import BenchConfig, check, settle
from .data import batches, list_data, preprocess
from .observation import as_8bit, rounds, sampler_sigma
from .report import IMAGES_DIR, grid_baseline, one_sample, row_order, write_outputs
from .scores import plan_metrics, score_rows

if TYPE_CHECKING:
    import torch

    from ddrm_kit.palette_model import PaletteTask
    from operators.registry import OperatorSpec


def _prior(cfg: BenchConfig, prior, ranks: distributed.Ranks):
    """The prior to run (``cfg.model`` loaded on this rank's device unless given) and ``cfg`` naming it.

    With ``--method palette`` it is the Palette model (a conditional prior), loaded as ``ddrm solve`` loads it.
    """
    import torch

    palette = cfg.method == "palette"
    if prior is None:
        device = distributed.rank_device(cfg.device, ranks)
        dtype = getattr(torch, PRECISIONS[cfg.precision])
        if palette:
            from ddrm_kit.palette_model import load_palette_prior

            return load_palette_prior(cfg.model, device=device, dtype=dtype), cfg
        from ddrm_kit import load_prior

        return load_prior(cfg.model, device=device, dtype=dtype, config=cfg.model_config,
                          class_label=cfg.class_label), cfg
    if getattr(prior, "conditional", False) != palette:
        raise BenchError("prior is a conditional (Palette) model: bench it with method='palette'" if not palette else
                         "prior is not a Palette model (an unconditional DDRM prior): bench it with method='ddrm'")
    precision = {getattr(torch, v): k for k, v in PRECISIONS.items()}.get(prior.dtype, str(prior.dtype))
    return prior, replace(cfg, model=cfg.model or prior.name or "(a Python Prior)", precision=precision)


def _operators(name: str, shape: tuple[int, ...], device: "torch.device", task: "PaletteTask | None" = None):
    """The operator for images of ``shape``: on the CPU (to observe) and on ``device`` (to restore).

    A Palette model's operator is built with the parameters of its task (``palette.json``).
    """
    from operators import get_operator

    op = get_operator(name, shape) if task is None else task.build(shape)
    return op, (op if device.type == "cpu" else copy.deepcopy(op).to(device))


def _timed(fn, n: int, device: "torch.device") -> tuple[Any, float]:
    """``(fn(), seconds per image)`` for a batch of ``n`` images."""
    distributed.sync(device)  # earlier queued work is not this call's time
    t0 = time.perf_counter()
    out = fn()
    distributed.sync(device)
    return out, (time.perf_counter() - t0) / n


def _baselines(op, spec: "OperatorSpec", scale: int, y: "torch.Tensor",
               image_shape: tuple[int, ...]) -> dict[str, tuple[Any, float]]:
    """``method -> (images, seconds per image)`` for the prior-free answers to this observation."""
    import torch.nn.functional as F

    from ddrm_kit.restore import baseline

    out: dict[str, tuple[Any, float]] = {}
    n = y.shape[0]
    if spec.kind == "linear":
        out["h_pinv"] = _timed(lambda: baseline(op, y), n, y.device)
        if spec.observation_kind == "image" and scale > 1:
            # A low-resolution image of the scene: the classic bicubic-upsampling baseline.
            size = tuple(image_shape[1:])
            out["bicubic"] = _timed(lambda: F.interpolate(y, size=size, mode="bicubic", align_corners=False), n,
                                    y.device)
    if tuple(y.shape[1:]) == tuple(image_shape):
        out["observation"] = (y, 0.0)
    return out


def _observation_picture(op, spec: "OperatorSpec", y: "torch.Tensor", image_shape: tuple[int, ...]) -> "torch.Tensor":
    """The observation as a full-size picture for the grid (nearest upsampling, H_pinv for masks/vectors)."""
    import torch.nn.functional as F

    c, h, w = image_shape
    if tuple(y.shape[1:]) == tuple(image_shape):
        return y
    if spec.kind == "linear" and spec.observation_kind == "image":
        v = F.interpolate(y, size=(h, w), mode="nearest") if y.shape[-2:] != (h, w) else y
        return v.expand(-1, c, -1, -1) if v.shape[1] == 1 else v
    return op.H_pinv(y)


def _palette_steps(cfg: BenchConfig, total: int, notes: list[str]) -> BenchConfig:
    """``cfg`` with Palette's steps settled: all ``total`` timesteps unless given (a note when that is many)."""
    if cfg.steps is None:
        from ddrm_kit.palette_model import all_steps_note

        note = all_steps_note(total)
        if note:
            notes.append(note)
        return replace(cfg, steps=total)
    if cfg.steps > total:
        raise BenchError(f"--steps {cfg.steps} is more than the Palette model's {total} timesteps: "
                         f"use --steps {total} or fewer")
    return cfg


def run_bench(cfg: BenchConfig, prior=None) -> list[dict[str, Any]] | None:
    """Run the bench described by ``cfg``; returns the rows on rank 0 (``None`` on other ranks).

    ``prior`` may be given directly (any ``ddrm_kit.Prior``; a conditional one, a Palette model,
    with ``method="palette"``, whose task is still read from ``cfg.model``'s ``palette.json``);
    otherwise ``cfg.model`` is loaded with ``ddrm_kit.load_prior`` (``load_palette_prior``).
    Outputs are written to ``cfg.output`` by rank 0.
    """
    import torch

    from ddrm_kit.imageio import load_image, save_image, to_uint8
    from ddrm_kit.palette_sampler import palette_samples
    from ddrm_kit.prior_settings import sampler_settings, settings_note
    from ddrm_kit.restore import NOISE, SAMPLER, Settings, generators, observe, restore_samples

    cfg, task, notes = settle(cfg)
    spec = check(cfg)
    scale = spec.scale_of(cfg.op)
    settings = Settings(cfg.steps, cfg.eta, cfg.eta_b, cfg.clip_denoised, cfg.average)  # checks --average
    noise = 2.0 * cfg.sigma_y  # [0, 1] pixel units -> the [-1, 1] API
    rounded = rounds(spec, cfg.observation)
    sigma = sampler_sigma(cfg.sigma_y, rounded)  # what the sampler is told: raised to the 8-bit rounding noise
    files = list_data(cfg.data, cfg.limit)
    metrics = plan_metrics(cfg.metrics, cfg.metric_weights, len(files))  # LPIPS, FID, KID: or a one-line error
    ranks = distributed.join(cfg.device)
    try:
        prior, cfg = _prior(cfg, prior, ranks)
        if task is not None:
            cfg = _palette_steps(cfg, prior.num_train_timesteps, notes)
        if ranks.rank == 0:
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
        device = prior.device
        lpips, sets = metrics.load(device)  # sets: FID/KID features (ddrm_kit.bench.setmetrics), or None
        channels = prior.channels or 3
        ops: dict[tuple[int, ...], Any] = {}
        sampler = None  # DDRM's settings as run and where they come from, from the first operator

        wall0 = time.perf_counter()
        mine = list(range(ranks.rank, len(files), ranks.world))

        def load(i: int) -> torch.Tensor:
            return preprocess(load_image(files[i]), cfg.size, cfg.crop, scale, channels)

        rows: list[dict[str, Any]] = []
        panels: dict[int, list] = {}
        saved: set[str] = set()
        bar = None
        if ranks.rank == 0 and cfg.progress:
            from tqdm.auto import tqdm

            what = cfg.op if task is None else f"palette {cfg.op}"
            bar = tqdm(total=len(files), unit="img", desc=f"bench {what}", file=sys.stderr)
        for batch, imgs in batches(mine, load, cfg.batch_size):
            names = [files[i].name for i in batch]  # the seeds' keys: rows do not depend on sharding or batching
            x = torch.cat(imgs)
            shape = tuple(x.shape[1:])
            if shape not in ops:
                ops[shape] = _operators(cfg.op, shape, device, task)
            op_cpu, op = ops[shape]
            if task is None and sampler is None:
                given = dict(steps=cfg.steps, eta=cfg.eta, eta_b=cfg.eta_b)
                sampler = sampler_settings(prior, op_cpu, **given), settings_note(prior, op_cpu, **given)
            with torch.no_grad():
                # Observed on the CPU, as `ddrm solve --clean` and `ddrm degrade` do: the same y on every device.
                y = observe(op_cpu, x, noise, generators(cfg.seed, names, NOISE))
                y = (as_8bit(y) if rounded else y).to(device)
                x = x.to(device)
                gens = generators(cfg.seed, names, SAMPLER, device)
                if task is None:
                    samples, sec = _timed(lambda: restore_samples(prior, op, y, settings, sigma, gens, progress=False),
                                          len(batch), device)
                else:  # told no noise level: Palette's condition is y itself
                    samples, sec = _timed(lambda: palette_samples(prior, op, y, cfg.steps, cfg.average, gens,
                                                                  progress=False, clip_denoised=cfg.clip_denoised),
                                          len(batch), device)
                xr = samples.mean(0)
                # With --average K, the first sample is scored too: what one sample gives, from the same run.
                single = {one_sample(cfg.method): (samples[0], sec)} if cfg.average > 1 else {}
                methods = {cfg.method: (xr, sec), **single, **_baselines(op, spec, scale, y, shape)}
                if sets is not None:
                    sets.add(batch, x, {method: out for method, (out, _) in methods.items()})
                for method, (out, secs) in methods.items():
                    for i, sc in zip(batch, score_rows(out.float(), x, lpips)):
                        rows.append({"index": i, "name": files[i].name, "method": method, **sc, "seconds": secs})
                if cfg.save_images:
                    for k, i in enumerate(batch):
                        saved.add(save_image(xr[k : k + 1].float().cpu(),
                                             cfg.output / IMAGES_DIR / f"{files[i].stem}.png").name)
                if batch[0] < cfg.grid:
                    obs = _observation_picture(op, spec, y, shape)
                    base = methods[grid_baseline(methods)][0]
                    for k, i in enumerate(batch):
                        if i < cfg.grid:
                            panels[i] = [to_uint8(t[k : k + 1].float().cpu()) for t in (x, obs, base, xr)]
            if bar is not None:
                bar.update(min(ranks.world * len(batch), bar.total - bar.n))
                bar.set_postfix_str(f"{sec:.2f} s/img")
        if bar is not None:
            bar.close()

        gathered = distributed.gather((rows, panels, saved), ranks)
        set_parts = distributed.gather(None if sets is None else sets.features, ranks)
        if ranks.rank != 0:
            return None
        all_rows = sorted((r for part, _, _ in gathered for r in part), key=row_order)
        all_panels = {i: p for _, part, _ in gathered for i, p in part.items()}
        all_saved = set().union(*(part for _, _, part in gathered))
        palette = None if task is None else {
            "task": {"operator": task.operator, "params": dict(task.params), "sigma_y": task.sigma_y / 2.0},
            "timesteps": prior.num_train_timesteps,
        }
        write_outputs(cfg, spec, all_rows, all_panels, all_saved, len(files), scale, time.perf_counter() - wall0,
                      ranks.world, device.type, palette=palette, notes=notes, metrics=metrics.summary(set_parts),
                      sampler=sampler)
        return all_rows
    finally:
        distributed.leave(ranks)

"""The training loop: DDPM (Ho et al. 2020, Algorithm 1) with the recipe's objective, bfloat16 autocast,
the held-out loss at each checkpoint, and stopping cleanly on SIGTERM or Ctrl-C (a checkpoint, then
:class:`Interrupted`); Palette runs (Saharia et al. 2022, Algorithm 1) add the condition of each crop to
the network's input."""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddrm_kit.errors import TrainingError
from ddrm_kit.palette_model import PaletteTask

from . import checkpoint as ckpt
from .data import HOLDOUT_MIN_IMAGES, load_images, random_crops, split_holdout
from .objective import noised, to_epsilon, training_loss
from .pairs import Conditions, describe_task, draw_seeds, holdout_conditions, net_input, resolve_task, run_task
from .recipe import (RECIPE_OPTIONS, TrainConfig, check_recipe, crop_plan, ema_decay, learning_rate, min_image_side,
                     scheduler_config, timestep_range, unet_config)
from .warmstart import check_init, load_init_weights

# Crops per held-out image: enough for a stable loss, cheap on a CPU.
HOLDOUT_CROPS_PER_IMAGE = 4
PRECISIONS = ("auto", "bf16", "fp32")


# A KeyboardInterrupt, so that no caller's `except Exception` takes a stop for a failure.
class Interrupted(KeyboardInterrupt):
    """The run stopped on SIGINT (Ctrl-C) or SIGTERM after writing its checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def loss_name(held_out_images: int) -> str:
    """What the run's fixed-batch loss measures: a held-out loss only when images are held out."""
    return "held-out loss" if held_out_images else "loss on fixed training crops"


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast context for the chosen precision (a no-op context for float32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cpu_has_bf16() -> bool:
    """True when the CPU has native bfloat16 dot products (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' or 'fp32' for the device; 'bf16' and 'fp32' stay as they are."""
    # bf16 autocast pays off on CUDA and on CPUs with native bf16 dot products; elsewhere on CPU
    # it is emulated and slower than float32.
    if precision == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and _cpu_has_bf16()) else "fp32"
    if precision not in PRECISIONS:
        raise TrainingError(f"--precision must be auto, bf16 or fp32, got {precision!r}")
    return precision


def holdout_batch(images: Sequence[np.ndarray], cfg: TrainConfig, n: int):
    """Fixed held-out crops (``--size``, late crops or not), timesteps (spread over those trained on), noise; seeded."""
    rng = np.random.default_rng(cfg.seed + 54321)
    x0 = torch.from_numpy(random_crops(images, n, cfg.size, rng))
    low, high = timestep_range(cfg)
    t = torch.linspace(low, high - 1, n).round().long()
    noise = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32))
    return x0, t, noise


def holdout_loss(model, holdout, alphas_cumprod, device, precision: str, cfg: TrainConfig,
                 conditions: torch.Tensor | None = None) -> float:
    """Mean squared ε error of ``model`` on the fixed held-out batch (and its fixed Palette ``conditions``), unweighted.

    A v-prediction is converted to ε first, so runs of every parameterisation and weighting compare.
    """
    x0, t, noise = holdout
    total = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x0), cfg.batch):
            xb, tb, nb = (a[i : i + cfg.batch].to(device) for a in (x0, t, noise))
            xt = noised(xb, tb, nb, alphas_cumprod)
            cb = None if conditions is None else conditions[i : i + cfg.batch].to(device)
            with autocast(device, precision):
                pred = model(net_input(xt, cb), tb).sample
            eps = to_epsilon(cfg, pred.float(), xt, tb, alphas_cumprod)
            total += torch.nn.functional.mse_loss(eps, nb, reduction="sum").item()
    model.train()
    return total / x0.numel()


def _late_text(cfg: TrainConfig) -> str:
    if cfg.late_size is None:
        return ""
    size, batch = crop_plan(cfg, cfg.late_from)
    return f" ({size}x{size}, batch {batch} from step {cfg.late_from})"


def _option_text(value: Any, sep: str = ",") -> str:
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return sep.join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _note_kept_options(cfg: TrainConfig, recipe: dict[str, Any], explicit: Collection[str], out: Path) -> None:
    """One note naming the options given for a resumed run that its saved recipe overrides, with the values kept."""
    saved = asdict(cfg)
    sep = {"t_range": ":"}  # as the option is spelled; lists are comma-separated

    def text(value: Any, name: str) -> str:
        return _option_text(value, sep.get(name, ","))

    kept = [f"{option} {text(saved[name], name)} (not {text(recipe[name], name)})"
            for name, option in RECIPE_OPTIONS.items() if name in explicit and recipe[name] != saved[name]]
    if kept:
        print(f"note: {out} continues with its own recipe: it keeps {', '.join(kept)}; "
              "train another -o/--output to change them", file=sys.stderr)


def _recipe(state: dict[str, Any] | None, folders: list[str], out: Path, resume: bool, recipe: dict[str, Any],
            explicit: Collection[str]) -> TrainConfig:
    """The run's recipe: the checkpoint's when resuming (noting the ``explicit`` options it overrides), else the one given."""
    if state is not None:
        if not resume:
            raise TrainingError(f"{out} already holds a training run; pass --resume to continue it or choose another -o/--output")
        cfg = TrainConfig.from_dict(state["config"])
        given = recipe["palette"]
        if given is not None and given != cfg.palette:
            # the other options silently keep the run's values, but another task would be another model
            trains = ("an unconditional prior" if cfg.palette is None
                      else f"Palette {describe_task(PaletteTask(**cfg.palette))}")
            raise TrainingError(f"{out} trains {trains}, not --palette {describe_task(PaletteTask(**given))}: "
                                "drop --palette and its options to continue it, or choose another -o/--output")
        _note_kept_options(cfg, recipe, explicit, out)
        if folders:
            cfg.data = folders  # the data may move; the recipe (architecture, optimiser, seed) may not
        return cfg
    if resume:
        print(f"no checkpoint in {out} yet: starting a new run", file=sys.stderr)
    if not folders:
        raise TrainingError("pass --data with a folder of training images")
    return TrainConfig(data=folders, **recipe)


def train(
    data: Sequence[str | os.PathLike] | str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int = 64,
    channels: Sequence[int] = (32, 64, 128, 128),
    layers_per_block: int = 1,
    attention_levels: int = 0,
    batch: int = 32,
    lr: float = 5e-4,
    ema: float = 0.999,
    steps: int | None = None,
    minutes: float | None = None,
    checkpoint_every: float = 10.0,
    resume: bool = False,
    device: str | None = None,
    seed: int = 0,
    precision: str = "auto",
    prediction: str = "epsilon",
    loss_weighting: str = "uniform",
    snr_gamma: float = 5.0,
    late_size: int | None = None,
    late_from: int | None = None,
    loss: str = "l2",
    init: str | None = None,
    t_range: tuple[int, int] | None = None,
    palette: str | None = None,
    palette_params: Mapping[str, Any] | None = None,
    sigma_y: float = 0.0,
    threads: int | None = None,
    progress: bool = True,
    explicit: Collection[str] | None = None,
) -> dict[str, Any]:
    """Train a diffusers UNet2DModel prior with DDPM (Ho et al. 2020, Algorithm 1).

    Repeats: x0 ~ data (random crop + flip), t ~ U{0..T-1} (``t_range`` (from, to): U{from..to-1}, a
    noise-level expert), eps ~ N(0, I); descend
    w(t) || target - net(sqrt(abar_t) x0 + sqrt(1-abar_t) eps, t) ||^2 with target eps or
    v = sqrt(abar_t) eps - sqrt(1-abar_t) x0 (``prediction``) and w = 1 or Min-SNR-gamma
    (``loss_weighting``, see ``objective.min_snr_weights``); AdamW, linear warm-up, EMA of the
    weights. ``late_size``/``late_from`` switch to larger crops (and a smaller batch, see
    ``recipe.crop_plan``) from that step on; ``loss="l1"`` descends the absolute error instead (uniform
    weighting). With ``init`` (``builtin``, a prior folder or a run folder of the same architecture) a new
    run starts from that UNet's weights instead of random ones: a fine-tune, e.g. to another
    ``prediction``. With ``palette`` (an operator name, its ``palette_params`` and the measurement noise
    ``sigma_y`` in the units of [-1, 1] images) it trains a Palette model (Saharia et al. 2022): the
    network sees ``cat([c, x_t])`` with ``c = palette_condition(op, observe(op, x0, sigma_y))`` and the
    run folder gets a ``palette.json``. Stops after ``steps`` total steps or ``minutes`` of this call,
    writing a checkpoint every ``checkpoint_every`` minutes and at the end; on SIGINT (Ctrl-C) or SIGTERM
    it finishes the step, writes the checkpoint and raises :class:`Interrupted` (a second Ctrl-C stops at
    once, the last checkpoint intact). With ``resume=True`` the recipe, weights, optimizer, step and RNG
    states come from ``out/checkpoint.pt`` so the run continues exactly where the last checkpoint left it;
    a note names the recipe options in ``explicit`` (the CLI passes those given on its command line;
    None: those set to other than their default) whose values the run's own recipe overrides.
    Returns a summary dict: step, images_seen, train_seconds, held_out_images and holdout_loss, the last
    loss on the fixed batch (see :func:`loss_name`), and out.
    """
    if steps is None and minutes is None:
        raise TrainingError("give a stopping rule: --steps N or --minutes M")
    if steps is not None and steps < 0 or minutes is not None and minutes < 0:
        raise TrainingError("--steps and --minutes must be non-negative")
    out = Path(out)
    ckpt.check_run_folder(out)
    folders = [str(data)] if isinstance(data, (str, os.PathLike)) else [str(d) for d in data]
    state = ckpt.load_state(out)
    if palette is None and (palette_params or sigma_y):
        raise TrainingError("operator parameters and --sigma-y describe a Palette task: give --palette OP")
    recipe = dict(size=size, channels=tuple(channels), layers_per_block=layers_per_block,
                  attention_levels=attention_levels, batch=batch, lr=lr, ema=ema, seed=seed, precision=precision,
                  prediction=prediction, loss_weighting=loss_weighting, snr_gamma=snr_gamma, late_size=late_size,
                  late_from=late_from, loss=loss, init=None if init is None else str(init),
                  t_range=None if t_range is None else tuple(t_range),
                  palette=None if palette is None else resolve_task(palette, palette_params, sigma_y))
    if explicit is None:
        defaults = inspect.signature(train).parameters
        explicit = {name for name in RECIPE_OPTIONS if recipe[name] != defaults[name].default}
    cfg = _recipe(state, folders, out, resume, recipe, explicit)
    check_recipe(cfg)
    task = run_task(cfg)
    init_dir = check_init(cfg) if state is None and cfg.init is not None else None

    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prec = resolve_precision(cfg.precision, dev)
    images = load_images(cfg.data, min_image_side(cfg))
    train_idx, hold_idx = split_holdout(len(images), cfg.seed)
    train_images = [images[i] for i in train_idx]
    hold_images = [images[i] for i in hold_idx] or train_images
    n_hold = HOLDOUT_CROPS_PER_IMAGE * len(hold_idx) if hold_idx else 2 * cfg.batch
    holdout = holdout_batch(hold_images, cfg, n_hold)
    hold_c = None if task is None else holdout_conditions(task, holdout[0], cfg.seed)

    # imported after the checks and the data, so that a mistake is reported without this wait
    from diffusers import DDPMScheduler, UNet2DModel

    # The order of these random draws is part of the run: a resumed run must restore what a fresh one made.
    torch.manual_seed(cfg.seed)
    model = UNet2DModel(**unet_config(cfg)).to(dev)
    if init_dir is not None:
        load_init_weights(model, init_dir)
    ema_model = UNet2DModel(**unet_config(cfg)).to(dev)
    ema_model.load_state_dict(model.state_dict())
    ema_model.requires_grad_(False)
    scheduler = DDPMScheduler(**scheduler_config(cfg))
    alphas_cumprod = scheduler.alphas_cumprod.to(dev, torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    crop_rng = np.random.default_rng(cfg.seed)
    noise_gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    conditions = None if task is None else Conditions(task, dev)

    step, images_seen, train_seconds = 0, 0, 0.0
    if state is not None:
        step, images_seen, train_seconds = ckpt.restore_state(state, model, ema_model, opt, crop_rng, noise_gen)
        del state  # the loaded weights are a second copy of the model
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_config(out, cfg)

    n_params = sum(p.numel() for p in model.parameters())
    held_out = f"{len(hold_idx)} held out" if hold_idx else f"none held out: under {HOLDOUT_MIN_IMAGES} images"
    print(
        f"ddrm train: {n_params / 1e6:.2f}M-parameter UNet, {len(train_images)} training images"
        f" ({held_out}), {cfg.size}x{cfg.size} crops, batch {cfg.batch}{_late_text(cfg)},"
        f" {cfg.prediction}, {cfg.loss_weighting} weighting, {prec} on {dev}, step {step}"
        + ("" if cfg.init is None else f", fine-tuning {cfg.init}")
        + ("" if cfg.t_range is None else f", timesteps {cfg.t_range[0]} <= t < {cfg.t_range[1]} only")
        + ("" if task is None else f"; Palette {describe_task(task)}, {cfg.loss} loss"),
        file=sys.stderr,
    )

    last_holdout = float("nan")
    run_losses: list[float] = []

    def checkpoint_now() -> None:
        nonlocal last_holdout
        last_holdout = holdout_loss(ema_model, holdout, alphas_cumprod, dev, prec, cfg, hold_c)
        snapshot = ckpt.make_state(cfg, model, ema_model, opt, crop_rng, noise_gen,
                                   step=step, images_seen=images_seen, train_seconds=train_seconds)
        ckpt.save_pretrained(ema_model, scheduler, out, task is not None)
        ckpt.save_state(out, snapshot)
        mean_loss = float(np.mean(run_losses)) if run_losses else float("nan")
        ckpt.append_holdout_row(out, [step, images_seen, f"{train_seconds:.1f}", f"{mean_loss:.6f}",
                                      f"{last_holdout:.6f}", f"{opt.param_groups[0]['lr']:.3g}"], bool(hold_idx))
        run_losses.clear()
        print(f"checkpoint: step {step}, {loss_name(len(hold_idx))} (EMA) {last_holdout:.5f} -> {out}", file=sys.stderr)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=steps,
        initial=step if steps is not None else 0,
        disable=not progress,
        unit="step",
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
    )
    stop: list[int] = []  # the signal that asked the run to stop

    def _request_stop(signum, frame):  # finish the current step, checkpoint, exit
        stop.append(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _request_stop)
        # only Python's own Ctrl-C handler: an ignored SIGINT (a background job's) or the caller's own stays
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, _request_stop)
    start = time.monotonic()
    last_ckpt = start
    smooth_loss = None
    model.train()
    try:
        while not stop:
            if steps is not None and step >= steps:
                break
            if minutes is not None and time.monotonic() - start >= 60.0 * minutes:
                break
            t0 = time.monotonic()
            size, batch = crop_plan(cfg, step)
            x0 = torch.from_numpy(random_crops(train_images, batch, size, crop_rng)).to(dev)
            t = torch.randint(*timestep_range(cfg), (batch,), generator=noise_gen, device=dev)
            noise = torch.randn(x0.shape, generator=noise_gen, device=dev)
            c = None if conditions is None else conditions(x0, draw_seeds(noise_gen, batch))
            for g in opt.param_groups:
                g["lr"] = learning_rate(cfg, step)
            with autocast(dev, prec):
                pred = model(net_input(noised(x0, t, noise, alphas_cumprod), c), t).sample
            batch_loss = training_loss(cfg, pred.float(), x0, t, noise, alphas_cumprod)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            decay = ema_decay(cfg, step)
            with torch.no_grad():
                for pe, pm in zip(ema_model.parameters(), model.parameters()):
                    pe.lerp_(pm.detach(), 1 - decay)
            step += 1
            images_seen += batch
            dt = time.monotonic() - t0
            train_seconds += dt
            value = batch_loss.item()
            run_losses.append(value)
            smooth_loss = value if smooth_loss is None else 0.98 * smooth_loss + 0.02 * value
            bar.update(1)
            bar.set_postfix(loss=f"{smooth_loss:.4f}", img_s=f"{batch / dt:.1f}", refresh=False)
            if time.monotonic() - last_ckpt >= 60.0 * checkpoint_every:
                checkpoint_now()
                last_ckpt = time.monotonic()
    finally:
        bar.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stop:
        print(f"{'interrupted' if stop[0] == signal.SIGINT else 'terminated'}: writing a checkpoint "
              "(continue with --resume)", file=sys.stderr)
    checkpoint_now()
    if stop:
        raise Interrupted(stop[0])
    return {"step": step, "images_seen": images_seen, "train_seconds": train_seconds, "held_out_images": len(hold_idx),
            "holdout_loss": last_holdout, "out": str(out)}

"""The recipe of a run: the UNet's architecture, the noise schedule, the loss and the optimiser settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ddrm_kit.errors import TrainingError

WARMUP_STEPS = 500
PREDICTIONS = ("epsilon", "v_prediction")
LOSS_WEIGHTINGS = ("uniform", "min_snr")
LOSSES = ("l2", "l1")
#: What ``--attention`` (and a train_config.json of the days of that flag) means: the lowest 2 levels.
FLAG_ATTENTION_LEVELS = 2
#: The recipe's fields that ``ddrm train`` options set (but --palette and its task), and those options.
RECIPE_OPTIONS = {"size": "--size", "channels": "--channels", "layers_per_block": "--layers-per-block",
                  "attention_levels": "--attention-levels", "batch": "--batch-size", "lr": "--lr", "ema": "--ema",
                  "seed": "--seed", "precision": "--precision", "prediction": "--prediction",
                  "loss_weighting": "--loss-weighting", "snr_gamma": "--snr-gamma", "late_size": "--late-size",
                  "late_from": "--late-from", "loss": "--loss", "init": "--init", "t_range": "--t-range"}


@dataclass
class TrainConfig:
    """The recipe of a run; saved as train_config.json and in checkpoint.pt, restored by --resume."""

    data: list[str]
    size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    attention_levels: int = 0
    batch: int = 32
    lr: float = 5e-4
    ema: float = 0.999
    seed: int = 0
    precision: str = "auto"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "epsilon"
    loss_weighting: str = "uniform"
    snr_gamma: float = 5.0
    late_size: int | None = None
    late_from: int | None = None
    loss: str = "l2"
    # A Palette run's task, the body of its palette.json (operator, params, sigma_y); None: an unconditional prior.
    palette: dict[str, Any] | None = None
    # The prior whose weights a fine-tuning run started from (--init): builtin or a folder; None: random weights.
    init: str | None = None
    # Train only at timesteps t in [from, to) (a noise-level expert, ddrm_kit.combine_experts); None: all T.
    t_range: tuple[int, int] | None = None

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainConfig:
        """The recipe saved in a checkpoint (a dict from ``dataclasses.asdict``)."""
        saved = dict(saved)
        if "attention" in saved and "attention_levels" not in saved:
            # runs of the --attention/--no-attention days
            saved["attention_levels"] = legacy_attention_levels(saved["attention"], saved.get("channels", cls.channels))
        # keys a newer or older trainer does not know are dropped, and missing ones take the defaults
        # (today's behaviour of the days before them), so old runs stay resumable
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in saved.items() if k in known})
        cfg.channels = tuple(cfg.channels)
        if cfg.t_range is not None:
            cfg.t_range = tuple(cfg.t_range)
        return cfg


def legacy_attention_levels(attention: bool, channels) -> int:
    """The attention levels that ``--attention`` gives: the lowest 2, or all but the first when there are fewer."""
    return min(FLAG_ATTENTION_LEVELS, len(channels) - 1) if attention else 0


def parse_channels(text: str) -> tuple[int, ...]:
    """'32,64,128,128' -> (32, 64, 128, 128)."""
    try:
        channels = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise TrainingError(f"--channels must be comma-separated integers like 32,64,128,128, got {text!r}") from None
    if not channels or min(channels) <= 0:
        raise TrainingError(f"--channels must be positive integers like 32,64,128,128, got {text!r}")
    return channels


def check_recipe(cfg: TrainConfig) -> None:
    """Refuse a recipe the trainer cannot run, before any work is done."""
    levels = len(cfg.channels)
    factor = 2 ** (levels - 1)
    for option, size in (("--size", cfg.size), ("--late-size", cfg.late_size)):
        if size is not None and size % factor:
            raise TrainingError(f"{option} {size} must be a multiple of {factor} for {levels} levels")
    if not 0 <= cfg.attention_levels < levels:
        raise TrainingError(f"--attention-levels must be in [0, {levels - 1}] for {levels} levels "
                            f"(the full-resolution level has none), got {cfg.attention_levels}")
    if cfg.prediction not in PREDICTIONS:
        raise TrainingError(f"--prediction must be one of {', '.join(PREDICTIONS)}, got {cfg.prediction!r}")
    if cfg.loss not in LOSSES:
        raise TrainingError(f"--loss must be one of {', '.join(LOSSES)}, got {cfg.loss!r}")
    if cfg.loss == "l1" and cfg.loss_weighting != "uniform":
        raise TrainingError("Min-SNR weights the squared error: use --loss l2 with --loss-weighting min_snr")
    if cfg.loss_weighting not in LOSS_WEIGHTINGS:
        raise TrainingError(f"--loss-weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, got {cfg.loss_weighting!r}")
    if not cfg.snr_gamma > 0:
        raise TrainingError(f"--snr-gamma must be positive, got {cfg.snr_gamma}")
    if (cfg.late_size is None) != (cfg.late_from is None):
        raise TrainingError("give --late-size and --late-from together")
    if cfg.late_from is not None and cfg.late_from < 0:
        raise TrainingError(f"--late-from must be a step >= 0, got {cfg.late_from}")
    if cfg.t_range is not None:
        low, high = cfg.t_range
        if not 0 <= low < high <= cfg.num_train_timesteps:
            raise TrainingError(f"--t-range {low}:{high} must be FROM:TO with 0 <= FROM < TO <= "
                                f"{cfg.num_train_timesteps} (the timesteps t trained on, FROM <= t < TO)")


def timestep_range(cfg: TrainConfig) -> tuple[int, int]:
    """The timesteps the run trains on, ``[low, high)``: ``t_range``, else all ``[0, T)``."""
    return cfg.t_range if cfg.t_range is not None else (0, cfg.num_train_timesteps)


def unet_config(cfg: TrainConfig) -> dict[str, Any]:
    """UNet2DModel keyword arguments for the recipe.

    Without attention every block is a convolution (ResNet) block, so the model is
    resolution-agnostic: trained on crops, it runs on whole images of any size that is a
    multiple of 2**(levels-1). With ``attention_levels`` N, the N lowest-resolution levels and the
    middle block get self-attention (Ho et al. put it at 16x16; the full-resolution level never has it).
    A Palette run's UNet takes the condition and the noisy image side by side: 6 input channels.
    """
    levels = len(cfg.channels)
    down = ["DownBlock2D"] * levels
    for i in range(levels - cfg.attention_levels, levels):
        down[i] = "AttnDownBlock2D"
    up = [d.replace("Down", "Up") for d in reversed(down)]
    groups = math.gcd(*cfg.channels)
    attention = cfg.attention_levels > 0
    return {
        "sample_size": cfg.size,
        "in_channels": 6 if cfg.palette is not None else 3,
        "out_channels": 3,
        "block_out_channels": tuple(cfg.channels),
        "layers_per_block": cfg.layers_per_block,
        "down_block_types": tuple(down),
        "up_block_types": tuple(up),
        "add_attention": attention,
        # GroupNorm needs a group count dividing every width; 32 as in DDPM when it does.
        "norm_num_groups": min(32, groups),
        # 32-channel heads, or one head on blocks narrower than that (diffusers needs at least one)
        "attention_head_dim": min(32, *cfg.channels[levels - cfg.attention_levels :]) if attention else None,
    }


def scheduler_config(cfg: TrainConfig) -> dict[str, Any]:
    """DDPMScheduler keyword arguments: linear betas (Ho et al. 2020) and the network's output."""
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "beta_schedule": "linear",
        "prediction_type": cfg.prediction,
    }


def crop_plan(cfg: TrainConfig, step: int) -> tuple[int, int]:
    """(crop size, batch) at ``step`` (0-based): ``size`` and ``batch``, then ``late_size`` from ``late_from``.

    Late crops keep the pixels per step about constant: batch ``max(1, round(batch * (size / late_size)²))``.
    """
    if cfg.late_size is None or step < cfg.late_from:
        return cfg.size, cfg.batch
    return cfg.late_size, max(1, round(cfg.batch * (cfg.size / cfg.late_size) ** 2))


def min_image_side(cfg: TrainConfig) -> int:
    """The smallest image side the run trains on: its largest crop (smaller images are skipped)."""
    return max(cfg.size, cfg.late_size or 0)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """AdamW's learning rate at ``step`` (0-based): linear warm-up over WARMUP_STEPS, then constant."""
    return cfg.lr * min(1.0, (step + 1) / WARMUP_STEPS)


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """The EMA decay after ``step`` (0-based), warmed up so that short runs are not dominated by the initial weights."""
    return min(cfg.ema, (1 + step) / (10 + step))

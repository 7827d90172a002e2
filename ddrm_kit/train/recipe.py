"""The recipe of a run: the UNet's architecture, the noise schedule and the optimiser settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ddrm_kit.errors import TrainingError

WARMUP_STEPS = 500


@dataclass
class TrainConfig:
    """The recipe of a run; saved as train_config.json and in checkpoint.pt, restored by --resume."""

    data: list[str]
    size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    attention: bool = False
    batch: int = 32
    lr: float = 5e-4
    ema: float = 0.999
    seed: int = 0
    precision: str = "auto"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> TrainConfig:
        """The recipe saved in a checkpoint (a dict from ``dataclasses.asdict``)."""
        # keys a newer or older trainer does not know are dropped, so old runs stay resumable
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in saved.items() if k in known})
        cfg.channels = tuple(cfg.channels)
        return cfg


def parse_channels(text: str) -> tuple[int, ...]:
    """'32,64,128,128' -> (32, 64, 128, 128)."""
    try:
        channels = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise TrainingError(f"--channels must be comma-separated integers like 32,64,128,128, got {text!r}") from None
    if not channels or min(channels) <= 0:
        raise TrainingError(f"--channels must be positive integers like 32,64,128,128, got {text!r}")
    return channels


def check_size(cfg: TrainConfig) -> None:
    """Refuse a crop size the UNet cannot halve at every level."""
    factor = 2 ** (len(cfg.channels) - 1)
    if cfg.size % factor:
        raise TrainingError(f"--size {cfg.size} must be a multiple of {factor} for {len(cfg.channels)} levels")


def unet_config(cfg: TrainConfig) -> dict[str, Any]:
    """UNet2DModel keyword arguments for the recipe.

    Without attention every block is a convolution (ResNet) block, so the model is
    resolution-agnostic: trained on crops, it runs on whole images of any size that is a
    multiple of 2**(levels-1). With attention, the two lowest-resolution levels and the middle
    block get self-attention (as in Ho et al.'s 16x16 attention).
    """
    levels = len(cfg.channels)
    down = ["DownBlock2D"] * levels
    if cfg.attention:
        for i in range(max(1, levels - 2), levels):
            down[i] = "AttnDownBlock2D"
    up = [d.replace("Down", "Up") for d in reversed(down)]
    groups = math.gcd(*cfg.channels)
    return {
        "sample_size": cfg.size,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": tuple(cfg.channels),
        "layers_per_block": cfg.layers_per_block,
        "down_block_types": tuple(down),
        "up_block_types": tuple(up),
        "add_attention": cfg.attention,
        # GroupNorm needs a group count dividing every width; 32 as in DDPM when it does.
        "norm_num_groups": min(32, groups),
        "attention_head_dim": 32 if cfg.attention else None,
    }


def scheduler_config(cfg: TrainConfig) -> dict[str, Any]:
    """DDPMScheduler keyword arguments: epsilon prediction, linear betas (Ho et al. 2020)."""
    return {
        "num_train_timesteps": cfg.num_train_timesteps,
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "beta_schedule": "linear",
        "prediction_type": "epsilon",
    }


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """AdamW's learning rate at ``step`` (0-based): linear warm-up over WARMUP_STEPS, then constant."""
    return cfg.lr * min(1.0, (step + 1) / WARMUP_STEPS)


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """The EMA decay after ``step`` (0-based), warmed up so that short runs are not dominated by the initial weights."""
    return min(cfg.ema, (1 + step) / (10 + step))

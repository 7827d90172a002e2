"""`ddrm train`: a resumable DDPM trainer (Ho et al. 2020, Algorithm 1) for diffusers UNet2DModel priors.

The run folder holds:

- ``unet/`` + ``scheduler/`` + ``model_index.json``: a ``save_pretrained`` layout (EMA weights as the
  model, safetensors) that ``UNet2DModel.from_pretrained(OUT, subfolder="unet")``,
  ``DDPMScheduler.from_pretrained(OUT, subfolder="scheduler")``, ``ddrm_kit.load_prior(OUT)`` (a
  Palette run: ``load_palette_prior(OUT)``) and ``ddrm solve --model OUT`` load directly;
- ``checkpoint.pt``: everything needed to continue exactly (raw + EMA weights, optimizer, step,
  RNG states) with ``--resume``;
- ``holdout.csv``: the held-out loss at every checkpoint (mean squared ε error whatever the network
  outputs); ``train_config.json``: the recipe;
- ``palette.json`` for a Palette model (``ddrm train --palette OP``): the operator, its parameters
  and sigma_y it was trained for (``ddrm_kit.palette_model``).

Modules: ``recipe`` (model, schedule, crop sizes), ``objective`` (target, weighting, ε), ``data``
(images and crops), ``pairs`` (Palette's conditions), ``checkpoint`` (the run folder on disk) and
``loop`` (the training loop). The command is ``ddrm_kit.cli.train``.
"""

from __future__ import annotations

from ddrm_kit.errors import TrainingDataNotFoundError, TrainingError

from .checkpoint import CHECKPOINT, CONFIG_JSON, HOLDOUT_CSV, export_prior
from .loop import train
from .recipe import TrainConfig, crop_plan, legacy_attention_levels, parse_channels, scheduler_config, unet_config

__all__ = [
    "CHECKPOINT",
    "CONFIG_JSON",
    "HOLDOUT_CSV",
    "TrainConfig",
    "TrainingDataNotFoundError",
    "TrainingError",
    "crop_plan",
    "export_prior",
    "legacy_attention_levels",
    "parse_channels",
    "scheduler_config",
    "train",
    "unet_config",
]

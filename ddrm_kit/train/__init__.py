"""`ddrm train`: a resumable DDPM trainer (Ho et al. 2020, Algorithm 1) for diffusers UNet2DModel priors.

The run folder holds:

- ``unet/`` + ``scheduler/`` + ``model_index.json``: a ``save_pretrained`` layout (EMA weights as the
  model, safetensors) that ``UNet2DModel.from_pretrained(OUT, subfolder="unet")``,
  ``DDPMScheduler.from_pretrained(OUT, subfolder="scheduler")``, ``ddrm_kit.load_prior(OUT)`` and
  ``ddrm solve --model OUT`` load directly; a Palette run has no ``model_index.json`` (no diffusers
  pipeline samples its 6-channel UNet) and loads with ``load_palette_prior(OUT)``;
- ``checkpoint.pt``: everything needed to continue exactly (raw + EMA weights, optimizer, step,
  RNG states) with ``--resume``;
- ``holdout.csv``: the held-out loss at every checkpoint (mean squared ε error whatever the network
  outputs), named ``train_crops_eps_mse_ema`` when the run holds no image out (under 50 images) and
  measures it on fixed training crops; ``train_config.json``: the recipe;
- ``palette.json`` for a Palette model (``ddrm train --palette OP``): the operator, its parameters
  and sigma_y it was trained for (``ddrm_kit.palette_model``).

Modules: ``recipe`` (model, schedule, crop sizes), ``objective`` (target, weighting, ε), ``data``
(images and crops), ``pairs`` (Palette's conditions), ``checkpoint`` (the run folder on disk),
``warmstart`` (a fine-tune's starting weights, ``--init``) and ``loop`` (the training loop). The command is ``ddrm_kit.cli.train``.
"""

from __future__ import annotations

from ddrm_kit.errors import TrainingDataNotFoundError, TrainingError

from .checkpoint import CHECKPOINT, CONFIG_JSON, HOLDOUT_CSV, export_prior
from .loop import Interrupted, loss_name, train
from .recipe import TrainConfig, crop_plan, legacy_attention_levels, parse_channels, scheduler_config, unet_config

__all__ = [
    "CHECKPOINT",
    "CONFIG_JSON",
    "HOLDOUT_CSV",
    "Interrupted",
    "TrainConfig",
    "TrainingDataNotFoundError",
    "TrainingError",
    "crop_plan",
    "export_prior",
    "legacy_attention_levels",
    "loss_name",
    "parse_channels",
    "scheduler_config",
    "train",
    "unet_config",
]

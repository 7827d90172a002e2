"""Fine-tuning: a new run's weights taken from an existing prior (``ddrm train --init MODEL``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ddrm_kit.errors import TrainingError

from .recipe import TrainConfig, unet_config

WEIGHTS = "diffusion_pytorch_model.safetensors"
#: UNet2DModel config keys that fix the weights' shapes and meaning; sample_size is only a default size.
ARCHITECTURE_KEYS = ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types",
                     "up_block_types", "add_attention", "norm_num_groups", "attention_head_dim")
# the recipe's options that set each key, for the message of a mismatch
_OPTIONS = {"in_channels": "--palette", "block_out_channels": "--channels", "layers_per_block": "--layers-per-block",
            "down_block_types": "--attention-levels", "up_block_types": "--attention-levels",
            "add_attention": "--attention-levels", "attention_head_dim": "--attention-levels or --channels",
            "norm_num_groups": "--channels"}


def init_folder(init: str) -> Path:
    """The folder holding the UNet of ``init``: ``builtin``, a prior folder, or a ``ddrm train`` run (its ``unet/``)."""
    from ddrm_kit.prior import BUILTIN_DIR

    folder = BUILTIN_DIR if init == "builtin" else Path(init)
    for candidate in (folder / "unet", folder):
        if (candidate / "config.json").is_file():
            return candidate
    raise TrainingError(f"--init {init}: no UNet there (expected config.json in it or in its unet/); "
                        "give `builtin`, a prior folder or a ddrm train run folder")


def _normal(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def check_architecture(found: dict[str, Any], cfg: TrainConfig, init: str) -> None:
    """Refuse an ``--init`` UNet whose architecture differs from the recipe's, naming the option to change."""
    wanted = unet_config(cfg)
    for key in ARCHITECTURE_KEYS:
        if _normal(found.get(key)) != _normal(wanted.get(key)):
            raise TrainingError(f"--init {init} has {key} {_normal(found.get(key))}, the recipe "
                                f"{_normal(wanted.get(key))}: give the prior's architecture "
                                f"({_OPTIONS.get(key, 'the same options')}) to fine-tune it")


def check_init(cfg: TrainConfig) -> Path:
    """The folder of ``cfg.init``'s UNet, once its architecture is known to be the recipe's (before any work is done)."""
    folder = init_folder(cfg.init)
    try:
        found = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TrainingError(f"--init {cfg.init}: {folder / 'config.json'} is not readable JSON ({err})") from None
    check_architecture(found, cfg, cfg.init)
    return folder


def load_init_weights(model: torch.nn.Module, folder: Path) -> None:
    """Copy the weights of the UNet in ``folder`` (see :func:`check_init`) into ``model``, as float32."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / WEIGHTS
    if not path.is_file():
        raise TrainingError(f"--init: {folder} has no {WEIGHTS} (re-save the model with save_pretrained)")
    try:
        weights = load_file(path)
        model.load_state_dict({k: v.float() for k, v in weights.items()})
    except (OSError, SafetensorError, RuntimeError) as err:
        problem = str(err).strip().splitlines()[0]
        raise TrainingError(f"--init: the weights in {path} do not load into its config's UNet ({problem})") from None

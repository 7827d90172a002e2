"""What the commands need to know about a prior before loading its weights: timesteps and UNet layout.

The built-in prior and local ``save_pretrained`` folders are read from their JSON configs (the same
layout rules as ``ddrm_kit.prior``: the root or ``unet/`` and ``scheduler/``), a checkpoint file
from its config (``--model-config`` or the one its file name picks), so that ``--steps``, the
memory estimate, ``--model-config`` and ``--class-label`` are checked before the weights load; a
hub id, or a checkpoint file whose weights must show its config, is only known once loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddrm_kit.errors import DDRMError

if TYPE_CHECKING:
    from ddrm_kit.prior import Prior

#: DDPMScheduler's default when a config names no num_train_timesteps.
DEFAULT_TIMESTEPS = 1000


@dataclass(frozen=True)
class ModelInfo:
    """A prior's training timesteps and its UNet config (``{}`` when unknown)."""

    timesteps: int
    unet: dict[str, Any]


def read_model_info(model: str | None, model_config: str | None = None,
                    class_label: int | None = None) -> ModelInfo | None:
    """The built-in, local or checkpoint-file prior's info from its configs; None when only loading tells."""
    from ddrm_kit.checkpoints.weights import SUFFIXES
    from ddrm_kit.prior import BUILTIN_DIR
    from ddrm_kit.prior_load import check_class, refuse_model_config

    builtin = model is None or model == "builtin"
    folder = BUILTIN_DIR if builtin else Path(model).expanduser()
    if not builtin and folder.suffix.lower() in SUFFIXES and not folder.is_dir():
        # A missing file is load_prior's to report.
        return _checkpoint_info(folder, model_config, class_label) if folder.is_file() else None
    if model_config is not None:
        refuse_model_config("the built-in prior" if builtin else str(model))
    if not folder.is_dir():
        return None
    unet = _first_json(folder, ("unet/config.json", "config.json"))
    sched = _first_json(folder, ("scheduler/scheduler_config.json", "scheduler_config.json"))
    if unet is None or sched is None:
        return None  # load_prior says what is wrong with the folder
    check_class(unet, class_label, "the built-in prior" if builtin else str(folder))
    betas = sched.get("trained_betas")
    timesteps = len(betas) if isinstance(betas, list) and betas else sched.get("num_train_timesteps")
    return ModelInfo(int(timesteps or DEFAULT_TIMESTEPS), unet)


def _checkpoint_info(path: Path, model_config: str | None, class_label: int | None) -> ModelInfo | None:
    """A checkpoint file's info from its config, given or picked by its file name (None: the weights decide)."""
    from ddrm_kit.checkpoints import load_config
    from ddrm_kit.checkpoints.configs import config_for_file
    from ddrm_kit.checkpoints.unet import check_class_label

    name = model_config if model_config is not None else config_for_file(path)
    if name is None:
        return None
    config = load_config(name)
    check_class_label(getattr(config.arch, "num_classes", None), class_label, f"{path.name} ({config.name})",
                      required=True)
    return ModelInfo(config.schedule.num_diffusion_timesteps, config.module.layout(config.arch).config)


def _first_json(folder: Path, names: tuple[str, ...]) -> dict[str, Any] | None:
    for name in names:
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def loaded_model_info(prior: "Prior") -> ModelInfo:
    """The info of a loaded prior (its UNet config, when it is a diffusers UNet)."""
    config = getattr(getattr(prior.eps, "unet", None), "config", None)
    return ModelInfo(prior.num_train_timesteps, dict(config) if config is not None else {})


def check_steps(steps: int, info: ModelInfo) -> None:
    """Refuse ``--steps`` above the prior's timesteps (a codec's lower start, t0, is the sampler's to check)."""
    if steps > info.timesteps:
        raise DDRMError(f"--steps {steps} is more than the prior's {info.timesteps} timesteps: "
                        f"use --steps {info.timesteps} or fewer")

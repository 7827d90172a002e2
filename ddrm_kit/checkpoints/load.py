"""Loading a papers' checkpoint file as a ``UNet2DModel``: read, pick the config, convert strictly, bind a class.

Everything that can be refused (the config, the class label, a folder that cannot be plain) is
decided by :func:`open_checkpoint` before the conversion, which is the costly part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ddrm_kit.errors import ModelNotFoundError

from .configs import CheckpointConfig, config_for_file, infer, load_config
from .unet import CheckpointUNet, Layout, build, check_class_label
from .weights import SUFFIXES, Weights, read_state_dict


@dataclass(frozen=True)
class CheckpointInfo:
    """What a load found out: the source, the config and how it was chosen, and the schedule."""

    source: Path
    config: str  # a built-in name, a YAML path, or "inferred"
    family: str  # "guided-diffusion" or "DDPM"
    how: str  # "given", "picked from the file name", or what the weights showed
    num_classes: int | None
    class_label: int | None
    alphas_cumprod: torch.Tensor  # float64, length num_diffusion_timesteps
    plain_problem: str | None  # why `ddrm convert` cannot write a plain diffusers folder (None: it can)


class Checkpoint(NamedTuple):
    """A converted network: ``unet(x, t).sample`` is the original's output ([ε, variance] with learned sigma)."""

    unet: CheckpointUNet
    scheduler_config: dict[str, Any]
    info: CheckpointInfo


@dataclass
class OpenedCheckpoint:
    """A checkpoint file read and its config chosen, not yet converted."""

    source: Path
    config: CheckpointConfig
    how: str
    state: dict[str, torch.Tensor] = field(repr=False)

    @property
    def name(self) -> str:
        """The file and its config, for messages."""
        return f"{self.source.name} ({self.config.name})"

    @property
    def num_classes(self) -> int | None:
        return getattr(self.config.arch, "num_classes", None)

    @property
    def layout(self) -> Layout:
        return self.config.module.layout(self.config.arch)

    def convert(self, class_label: int | None = None) -> Checkpoint:
        """The converted network (the state dict is handed over: call once), bound to ``class_label`` if given."""
        check_class_label(self.num_classes, class_label, self.name, required=False)
        state, self.state = self.state, {}
        module, layout = self.config.module, self.layout
        unet = build(layout, module.convert(Weights(state, self.source.name, self.config.name), self.config.arch))
        unet.bound_class = class_label
        info = CheckpointInfo(
            source=self.source, config=self.config.name, family=self.config.family, how=self.how,
            num_classes=self.num_classes, class_label=class_label,
            alphas_cumprod=self.config.schedule.alphas_cumprod(), plain_problem=layout.plain_problem)
        return Checkpoint(unet, self.config.schedule.scheduler_config(self.config.arch.learn_sigma), info)


def is_checkpoint_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file of a checkpoint type (``.pt .pth .ckpt .bin .safetensors``)."""
    p = Path(path).expanduser()
    return p.suffix.lower() in SUFFIXES and p.is_file()


def open_checkpoint(path: str | os.PathLike, config: str | os.PathLike | None = None) -> OpenedCheckpoint:
    """Read a checkpoint file and choose its config.

    ``config`` is a built-in config name or a DDRM YAML file; without it the file name or the
    weights choose (a one-line error naming ``--model-config`` where they cannot).
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise ModelNotFoundError(f"no such checkpoint file: {source}")
    state = read_state_dict(source)
    if config is not None:
        chosen, how = load_config(config), "given"
    elif (name := config_for_file(source)) is not None:
        chosen, how = load_config(name), "picked from the file name"
    else:
        chosen, how = infer(state, source.name)
    return OpenedCheckpoint(source, chosen, how, state)


def load_checkpoint(path: str | os.PathLike, config: str | os.PathLike | None = None,
                    class_label: int | None = None) -> Checkpoint:
    """The network of a checkpoint file, converted in memory; a class-conditional one is bound to ``class_label``.

    Returns ``(unet, scheduler_config, info)``: ``unet(x, t).sample`` is the original network's
    output, ``scheduler_config`` a diffusers ``DDPMScheduler`` config of the training schedule.
    """
    opened = open_checkpoint(path, config)
    check_class_label(opened.num_classes, class_label, opened.name, required=True)
    return opened.convert(class_label)

"""The converted network: a ``UNet2DModel`` built from a :class:`Layout`, loaded strictly, optionally bound to a class.

Two things of the papers' networks have no ``UNet2DModel`` config field, so :func:`build` patches
the modules after building them (the arithmetic stays diffusers' own):

- a timestep encoding wider than the first level (guided-diffusion's 512 model: 256 sinusoids
  for 128 first-level channels), where ``UNet2DModel`` ties the two together;
- attention heads of different widths in different blocks (``num_heads`` given as a count over
  levels of different widths), where ``UNet2DModel`` has one ``attention_head_dim``.

Such a network is exact in memory but cannot be written as a plain diffusers folder
(:attr:`Layout.plain_problem` says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import UNet2DModel
from diffusers.models.embeddings import Timesteps

from ddrm_kit.errors import CheckpointWeightsError, ClassLabelError


@dataclass(frozen=True)
class Layout:
    """How to build a converted network: ``UNet2DModel`` keyword arguments plus the two patches."""

    config: dict[str, Any]
    #: width of the sinusoidal timestep encoding when it differs from ``block_out_channels[0]``
    timestep_channels: int | None = None
    #: heads of each attention module (by module name) when their widths differ
    heads: dict[str, int] = field(default_factory=dict)

    @property
    def plain_problem(self) -> str | None:
        """Why a plain ``UNet2DModel`` config cannot express this network (None when it can)."""
        if self.timestep_channels is not None:
            return (f"its timestep encoding has {self.timestep_channels} channels but its first level "
                    f"{self.config['block_out_channels'][0]}, and UNet2DModel ties the two together")
        if self.heads:
            return "its attention heads differ in width between blocks, and UNet2DModel has one attention_head_dim"
        return None


class CheckpointUNet(UNet2DModel):
    """A ``UNet2DModel`` that a class-conditional network can be bound to one class label.

    ``unet(x, t)`` then conditions on ``bound_class`` for every image, so samplers that call an
    unconditional network work unchanged; an explicit ``class_labels`` still wins.
    """

    bound_class: int | None = None

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int,
                class_labels: torch.Tensor | None = None, return_dict: bool = True) -> Any:
        if class_labels is None and self.class_embedding is not None:
            if self.bound_class is None:
                raise ClassLabelError(
                    f"this network is class-conditional ({self.config.num_class_embeds} classes): "
                    "bind it to a class with --class-label N")
            class_labels = torch.full((sample.shape[0],), self.bound_class, dtype=torch.long, device=sample.device)
        return super().forward(sample, timestep, class_labels=class_labels, return_dict=return_dict)


def build(layout: Layout, weights: dict[str, torch.Tensor]) -> CheckpointUNet:
    """The network of ``layout`` holding ``weights`` (moved in, not copied); every weight must fit, none be left."""
    # Built on the meta device: no memory and no random initialisation for weights about to be replaced.
    with torch.device("meta"):
        unet = CheckpointUNet(**layout.config)
        if layout.timestep_channels is not None:
            cfg = layout.config
            unet.time_proj = Timesteps(layout.timestep_channels, cfg["flip_sin_to_cos"], cfg["freq_shift"])
            linear_1 = unet.time_embedding.linear_1
            unet.time_embedding.linear_1 = torch.nn.Linear(layout.timestep_channels, linear_1.out_features)
    for name, heads in layout.heads.items():
        attn = unet.get_submodule(name)
        attn.heads = heads
        # The SDPA processor derives the scale from the head width; the others read attn.scale.
        attn.scale = (attn.inner_dim // heads) ** -0.5
    try:
        unet.load_state_dict(weights, strict=True, assign=True)
    except RuntimeError as err:
        # The converters check every weight first; this is the last guard against a mapping mistake.
        raise CheckpointWeightsError(
            f"the converted weights do not fit the UNet2DModel: {' '.join(str(err).split())[:300]}") from err
    return unet.eval()


def check_class_label(classes: int | None, label: int | None, name: str, required: bool) -> None:
    """Refuse a label for an unconditional network, a label out of range, and (``required``) a missing one."""
    if classes is None:
        if label is not None:
            raise ClassLabelError(f"{name} is unconditional: drop --class-label")
        return
    if label is None:
        if required:
            raise ClassLabelError(
                f"{name} is class-conditional ({classes} classes): pass --class-label N (0 to {classes - 1})")
        return
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < classes:
        raise ClassLabelError(f"--class-label must be an integer from 0 to {classes - 1} for {name}, got {label!r}")


def bind_class(unet: CheckpointUNet, label: int | None, name: str) -> CheckpointUNet:
    """Bind ``unet`` (e.g. ``CheckpointUNet.from_pretrained`` of a class-conditional folder) to class ``label``."""
    classes = unet.config.num_class_embeds if unet.class_embedding is not None else None
    check_class_label(classes, label, name, required=True)
    unet.bound_class = label
    return unet

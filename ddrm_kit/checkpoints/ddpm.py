"""DDPM networks in the DDIM code base's layout (``type: simple``): their config, layout, weights, and inference.

Facts of that code base this module relies on: the timestep encoding is sin-then-cos with the
frequencies of ``log(10000) / (half - 1)`` (a frequency shift of 1); GroupNorm has 32 groups and
eps 1e-6; strided-conv downsampling pads only right and bottom, by 1; attention has one head;
a level has attention when its resolution (``data.image_size`` halved per level) is in
``attn_resolutions``; and every weight name says where it sits, so the weights show the whole
network (not its noise schedule).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ddrm_kit.errors import CheckpointConfigError, UnsupportedModelError

from .unet import Layout
from .weights import Weights

FAMILY = "DDPM"


@dataclass(frozen=True)
class DDPMArch:
    """The hyper-parameters of the DDIM code base's ``Model``."""

    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: frozenset[int]  # levels l (resolution image_size / 2**l) that have attention
    in_channels: int = 3
    out_ch: int = 3
    dropout: float = 0.0
    image_size: int | None = None

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.ch * m for m in self.ch_mult)

    @property
    def learn_sigma(self) -> bool:
        return self.out_ch == 2 * self.in_channels


def _check(arch: DDPMArch, where: str) -> DDPMArch:
    # UNet2DModel's first level is as wide as its stem; the DDIM Model's stem is always ch wide.
    if arch.ch_mult[0] != 1:
        raise UnsupportedModelError(
            f"{where}: ch_mult starts with {arch.ch_mult[0]}, but UNet2DModel needs the first level as wide as ch")
    return arch


def arch_from_section(model: Mapping[str, Any], data: Mapping[str, Any], where: str) -> DDPMArch:
    """The architecture of a ``type: simple`` model section (and ``data.image_size``)."""
    missing = [k for k in ("ch", "ch_mult", "num_res_blocks") if k not in model]
    if "image_size" not in data:
        missing.append("data.image_size")
    if missing:
        raise CheckpointConfigError(f"{where}: the config lacks {', '.join(missing)} (needed by type: simple)")
    if not model.get("resamp_with_conv", True):
        raise UnsupportedModelError(
            f"{where}: resamp_with_conv false (average-pool resampling) has no UNet2DModel block")
    try:
        size, mult = int(data["image_size"]), tuple(int(m) for m in model["ch_mult"])
        resolutions = {int(r) for r in model.get("attn_resolutions", [])}
        arch = DDPMArch(
            ch=int(model["ch"]), ch_mult=mult, num_res_blocks=int(model["num_res_blocks"]),
            attention_levels=frozenset(lvl for lvl in range(len(mult)) if size // 2**lvl in resolutions),
            in_channels=int(model.get("in_channels", 3)), out_ch=int(model.get("out_ch", 3)),
            dropout=float(model.get("dropout", 0.0)), image_size=size)
    except (TypeError, ValueError) as err:
        raise CheckpointConfigError(f"{where}: a bad value in the config ({err})") from err
    return _check(arch, where)


def infer(state: Mapping[str, torch.Tensor], source: str) -> DDPMArch:
    """The architecture the weight names and shapes show (the image size is not among them)."""
    def count(pattern: str) -> int:
        found = {int(m.group(1)) for name in state if (m := re.match(pattern, name))}
        return max(found) + 1 if found else 0

    levels, blocks = count(r"down\.(\d+)\."), count(r"down\.0\.block\.(\d+)\.")
    names = ["temb.dense.0.weight", "conv_in.weight", "conv_out.weight"] + [
        f"down.{lvl}.block.0.conv1.weight" for lvl in range(levels)]
    if not levels or not blocks or any(n not in state for n in names):
        raise CheckpointConfigError(
            f"{source} looks like a DDPM state dict but lacks {next((n for n in names if n not in state), 'down.0')}: "
            "it fits no DDPM network")
    if levels > 1 and "down.0.downsample.conv.weight" not in state:
        raise UnsupportedModelError(
            f"{source}: a DDPM network with average-pool resampling (resamp_with_conv false) has no UNet2DModel block")
    ch = state["temb.dense.0.weight"].shape[1]
    widths = [state[f"down.{lvl}.block.0.conv1.weight"].shape[0] for lvl in range(levels)]
    if any(w % ch for w in widths):
        raise CheckpointConfigError(
            f"{source}: level widths {widths} are not multiples of ch={ch}: it fits no DDPM network")
    arch = DDPMArch(
        ch=ch, ch_mult=tuple(w // ch for w in widths), num_res_blocks=blocks,
        attention_levels=frozenset(lvl for lvl in range(levels) if f"down.{lvl}.attn.0.q.weight" in state),
        in_channels=state["conv_in.weight"].shape[1], out_ch=state["conv_out.weight"].shape[0])
    return _check(arch, source)


def layout(arch: DDPMArch) -> Layout:
    """The UNet2DModel that computes this network."""
    widths, levels = arch.widths, arch.attention_levels
    return Layout(config=dict(
        sample_size=arch.image_size, in_channels=arch.in_channels, out_channels=arch.out_ch,
        time_embedding_type="positional", time_embedding_dim=4 * arch.ch, flip_sin_to_cos=False, freq_shift=1,
        down_block_types=[("AttnDownBlock2D" if lvl in levels else "DownBlock2D") for lvl in range(len(widths))],
        up_block_types=[("AttnUpBlock2D" if lvl in levels else "UpBlock2D") for lvl in reversed(range(len(widths)))],
        block_out_channels=list(widths), layers_per_block=arch.num_res_blocks, mid_block_scale_factor=1,
        # Padding 0 makes Downsample2D pad right and bottom only, as the DDIM code base does.
        downsample_padding=0, downsample_type="conv", upsample_type="conv", dropout=arch.dropout, act_fn="silu",
        # None: one head as wide as the block (UNet2DModel's default of 8 would split it).
        attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6, attn_norm_num_groups=32,
        resnet_time_scale_shift="default", add_attention=True, class_embed_type=None, num_class_embeds=None))


def convert(weights: Weights, arch: DDPMArch) -> dict[str, torch.Tensor]:
    """The UNet2DModel state dict of an original-layout one; every original weight is taken exactly once."""
    out: dict[str, torch.Tensor] = {}
    temb, widths, r, last = 4 * arch.ch, arch.widths, arch.num_res_blocks, len(arch.widths) - 1

    def put(src: str, dst: str, shape: tuple[int, ...]) -> None:
        out[f"{dst}.weight"] = weights.take(f"{src}.weight", shape)
        out[f"{dst}.bias"] = weights.take(f"{src}.bias", shape[:1])

    def resblock(src: str, dst: str, cin: int, cout: int) -> None:
        put(f"{src}.norm1", f"{dst}.norm1", (cin,))
        put(f"{src}.conv1", f"{dst}.conv1", (cout, cin, 3, 3))
        put(f"{src}.temb_proj", f"{dst}.time_emb_proj", (cout, temb))
        put(f"{src}.norm2", f"{dst}.norm2", (cout,))
        put(f"{src}.conv2", f"{dst}.conv2", (cout, cout, 3, 3))
        if cin != cout:
            put(f"{src}.nin_shortcut", f"{dst}.conv_shortcut", (cout, cin, 1, 1))

    def attention(src: str, dst: str, c: int) -> None:
        put(f"{src}.norm", f"{dst}.group_norm", (c,))
        for conv, linear in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
            out[f"{dst}.{linear}.weight"] = weights.take(f"{src}.{conv}.weight", (c, c, 1, 1))[:, :, 0, 0]
            out[f"{dst}.{linear}.bias"] = weights.take(f"{src}.{conv}.bias", (c,))

    put("temb.dense.0", "time_embedding.linear_1", (temb, arch.ch))
    put("temb.dense.1", "time_embedding.linear_2", (temb, temb))
    put("conv_in", "conv_in", (arch.ch, arch.in_channels, 3, 3))
    skips, ch = [arch.ch], arch.ch
    for lvl, width in enumerate(widths):
        for j in range(r):
            resblock(f"down.{lvl}.block.{j}", f"down_blocks.{lvl}.resnets.{j}", ch, width)
            ch = width
            if lvl in arch.attention_levels:
                attention(f"down.{lvl}.attn.{j}", f"down_blocks.{lvl}.attentions.{j}", ch)
            skips.append(ch)
        if lvl < last:
            put(f"down.{lvl}.downsample.conv", f"down_blocks.{lvl}.downsamplers.0.conv", (ch, ch, 3, 3))
            skips.append(ch)
    resblock("mid.block_1", "mid_block.resnets.0", ch, ch)
    attention("mid.attn_1", "mid_block.attentions.0", ch)
    resblock("mid.block_2", "mid_block.resnets.1", ch, ch)
    for lvl in reversed(range(len(widths))):
        up = f"up_blocks.{last - lvl}"
        for j in range(r + 1):
            resblock(f"up.{lvl}.block.{j}", f"{up}.resnets.{j}", ch + skips.pop(), widths[lvl])
            ch = widths[lvl]
            if lvl in arch.attention_levels:
                attention(f"up.{lvl}.attn.{j}", f"{up}.attentions.{j}", ch)
        if lvl:
            put(f"up.{lvl}.upsample.conv", f"{up}.upsamplers.0.conv", (ch, ch, 3, 3))
    put("norm_out", "conv_norm_out", (ch,))
    put("conv_out", "conv_out", (arch.out_ch, ch, 3, 3))
    weights.finish()
    return out

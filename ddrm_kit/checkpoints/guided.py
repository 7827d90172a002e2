"""guided-diffusion ("ADM", ``type: openai``) networks: their config, their UNet2DModel layout, their weights.

Facts of that code base this module relies on: the timestep encoding is cos-then-sin with no
frequency shift; GroupNorm has 32 groups and eps 1e-5; strided-conv downsampling pads 1 on every
side; the fused qkv weight of the default ("legacy") attention order holds, head by head, a
[q, k, v] block of rows, while ``use_new_attention_order`` holds three whole-width chunks; with
learned sigma the network outputs [ε, variance]; ``channel_mult`` empty means the image size's
default; and create_model always builds 3 input channels (6 outputs with learn_sigma) and 1000
classes when class-conditional, whatever else the config says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ddrm_kit.errors import CheckpointConfigError

from .unet import Layout
from .weights import Weights

FAMILY = "guided-diffusion"
NUM_CLASSES = 1000
DEFAULT_CHANNEL_MULT = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


@dataclass(frozen=True)
class GuidedArch:
    """The hyper-parameters of a guided-diffusion ``UNetModel`` as its ``create_model`` builds it."""

    image_size: int
    model_channels: int
    channel_mult: tuple[float, ...]
    num_res_blocks: int
    attention_levels: frozenset[int]  # levels l (downsampling rate 2**l) that have attention
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    learn_sigma: bool = False
    num_classes: int | None = None
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    dropout: float = 0.0
    in_channels: int = 3

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(int(m * self.model_channels) for m in self.channel_mult)

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    def heads(self, channels: int, upsample: bool = False) -> int:
        """Heads of an attention block of ``channels`` channels (``num_heads_upsample`` in the decoder)."""
        if self.num_head_channels != -1:
            return channels // self.num_head_channels
        if upsample and self.num_heads_upsample != -1:
            return self.num_heads_upsample
        return self.num_heads


def _ints(value: Any) -> list[int]:
    """``"32,16,8"``, ``16`` or ``[32, 16]`` as a list of ints."""
    if isinstance(value, str):
        return [int(v) for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def _mult(value: Any, image_size: int, where: str) -> tuple[float, ...]:
    if value in ("", None):
        if image_size not in DEFAULT_CHANNEL_MULT:
            raise CheckpointConfigError(
                f"{where}: channel_mult is empty and guided-diffusion has no default for image_size {image_size} "
                f"(only {', '.join(map(str, DEFAULT_CHANNEL_MULT))}): give channel_mult in --model-config")
        return DEFAULT_CHANNEL_MULT[image_size]
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(int(float(p)) if float(p).is_integer() else float(p) for p in parts)


def arch_from_section(model: Mapping[str, Any], where: str) -> GuidedArch:
    """The architecture of a ``type: openai`` model section, with create_model's defaults and rules."""
    missing = [k for k in ("image_size", "num_channels", "num_res_blocks") if k not in model]
    if missing:
        raise CheckpointConfigError(f"{where}: the model section lacks {', '.join(missing)} (needed by type: openai)")
    try:
        size = int(model["image_size"])
        mult = _mult(model.get("channel_mult", ""), size, where)
        rates = {size // r for r in _ints(model.get("attention_resolutions", "16"))}
        arch = GuidedArch(
            image_size=size, model_channels=int(model["num_channels"]), channel_mult=mult,
            num_res_blocks=int(model["num_res_blocks"]),
            attention_levels=frozenset(lvl for lvl in range(len(mult)) if 2**lvl in rates),
            num_heads=int(model.get("num_heads", 1)), num_head_channels=int(model.get("num_head_channels", -1)),
            num_heads_upsample=int(model.get("num_heads_upsample", -1)),
            learn_sigma=bool(model.get("learn_sigma", False)),
            num_classes=NUM_CLASSES if model.get("class_cond", False) else None,
            use_scale_shift_norm=bool(model.get("use_scale_shift_norm", False)),
            resblock_updown=bool(model.get("resblock_updown", False)),
            use_new_attention_order=bool(model.get("use_new_attention_order", False)),
            dropout=float(model.get("dropout", 0.0)))
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise CheckpointConfigError(f"{where}: a bad value in the model section ({err})") from err
    _check_heads(arch, where)
    return arch


def _check_heads(arch: GuidedArch, where: str) -> None:
    for name, heads in _attention_modules(arch).items():
        c = _width(name, arch.widths)
        if heads < 1 or c % heads or (arch.num_head_channels != -1 and c % arch.num_head_channels):
            raise CheckpointConfigError(
                f"{where}: {c}-channel attention blocks cannot be split into heads as num_heads="
                f"{arch.num_heads}, num_head_channels={arch.num_head_channels} ask")


def _attention_modules(arch: GuidedArch) -> dict[str, int]:
    """Heads of every attention module, by its UNet2DModel name."""
    widths, levels, last = arch.widths, arch.attention_levels, len(arch.widths) - 1
    heads = {f"down_blocks.{lvl}.attentions.{j}": arch.heads(widths[lvl])
             for lvl in sorted(levels) for j in range(arch.num_res_blocks)}
    heads["mid_block.attentions.0"] = arch.heads(widths[-1])
    heads.update({f"up_blocks.{last - lvl}.attentions.{j}": arch.heads(widths[lvl], upsample=True)
                  for lvl in sorted(levels) for j in range(arch.num_res_blocks + 1)})
    return heads


def layout(arch: GuidedArch) -> Layout:
    """The UNet2DModel that computes this network."""
    widths, levels = arch.widths, arch.attention_levels
    plain_down, plain_up = (("ResnetDownsampleBlock2D", "ResnetUpsampleBlock2D") if arch.resblock_updown
                            else ("DownBlock2D", "UpBlock2D"))
    heads = _attention_modules(arch)
    head_widths = {_width(name, widths) // h for name, h in heads.items()}
    config = dict(
        sample_size=arch.image_size, in_channels=arch.in_channels, out_channels=arch.out_channels,
        time_embedding_type="positional", time_embedding_dim=4 * arch.model_channels,
        flip_sin_to_cos=True, freq_shift=0,
        down_block_types=[("AttnDownBlock2D" if lvl in levels else plain_down) for lvl in range(len(widths))],
        up_block_types=[("AttnUpBlock2D" if lvl in levels else plain_up) for lvl in reversed(range(len(widths)))],
        block_out_channels=list(widths), layers_per_block=arch.num_res_blocks, mid_block_scale_factor=1,
        downsample_padding=1, downsample_type="resnet" if arch.resblock_updown else "conv",
        upsample_type="resnet" if arch.resblock_updown else "conv", dropout=arch.dropout, act_fn="silu",
        attention_head_dim=head_widths.pop() if len(head_widths) == 1 else None,
        norm_num_groups=32, norm_eps=1e-5,
        # Without it UNet2DModel drops the mid-block attention's GroupNorm under scale-shift norm.
        attn_norm_num_groups=32,
        resnet_time_scale_shift="scale_shift" if arch.use_scale_shift_norm else "default",
        add_attention=True, class_embed_type=None, num_class_embeds=arch.num_classes)
    return Layout(config=config,
                  timestep_channels=arch.model_channels if arch.model_channels != widths[0] else None,
                  heads={} if config["attention_head_dim"] is not None else heads)


def _width(name: str, widths: tuple[int, ...]) -> int:
    part, index = name.split(".")[:2]
    if part == "mid_block":
        return widths[-1]
    return widths[int(index)] if part == "down_blocks" else widths[len(widths) - 1 - int(index)]


def split_qkv(fused: torch.Tensor, heads: int, legacy: bool) -> list[torch.Tensor]:
    """q, k and v of a fused qkv weight (3C, C) or bias (3C,), each with its heads in consecutive rows."""
    c = fused.shape[0] // 3
    rest = fused.shape[1:]
    if legacy:
        parts = fused.reshape(heads, 3, c // heads, *rest).unbind(1)
    else:
        parts = fused.reshape(3, c, *rest).unbind(0)
    # Own storage each: the weights file must not hold tensors that share memory.
    return [p.reshape(c, *rest).clone(memory_format=torch.contiguous_format) for p in parts]


def convert(weights: Weights, arch: GuidedArch) -> dict[str, torch.Tensor]:
    """The UNet2DModel state dict of an original-layout one; every original weight is taken exactly once."""
    out: dict[str, torch.Tensor] = {}
    emb, widths, r, last = 4 * arch.model_channels, arch.widths, arch.num_res_blocks, len(arch.widths) - 1

    def put(src: str, dst: str, shape: tuple[int, ...]) -> None:
        out[f"{dst}.weight"] = weights.take(f"{src}.weight", shape)
        out[f"{dst}.bias"] = weights.take(f"{src}.bias", shape[:1])

    def resblock(src: str, dst: str, cin: int, cout: int) -> None:
        put(f"{src}.in_layers.0", f"{dst}.norm1", (cin,))
        put(f"{src}.in_layers.2", f"{dst}.conv1", (cout, cin, 3, 3))
        put(f"{src}.emb_layers.1", f"{dst}.time_emb_proj", ((2 if arch.use_scale_shift_norm else 1) * cout, emb))
        put(f"{src}.out_layers.0", f"{dst}.norm2", (cout,))
        put(f"{src}.out_layers.3", f"{dst}.conv2", (cout, cout, 3, 3))
        if cin != cout:
            put(f"{src}.skip_connection", f"{dst}.conv_shortcut", (cout, cin, 1, 1))

    def attention(src: str, dst: str, c: int, heads: int) -> None:
        put(f"{src}.norm", f"{dst}.group_norm", (c,))
        legacy = not arch.use_new_attention_order
        qkv_w = split_qkv(weights.take(f"{src}.qkv.weight", (3 * c, c, 1))[..., 0], heads, legacy)
        qkv_b = split_qkv(weights.take(f"{src}.qkv.bias", (3 * c,)), heads, legacy)
        for name, w, b in zip(("to_q", "to_k", "to_v"), qkv_w, qkv_b):
            out[f"{dst}.{name}.weight"], out[f"{dst}.{name}.bias"] = w, b
        out[f"{dst}.to_out.0.weight"] = weights.take(f"{src}.proj_out.weight", (c, c, 1))[..., 0]
        out[f"{dst}.to_out.0.bias"] = weights.take(f"{src}.proj_out.bias", (c,))

    def resample(src: str, dst: str, c: int, conv: str) -> None:
        if arch.resblock_updown:
            resblock(src, dst, c, c)
        else:
            put(f"{src}.{conv}", f"{dst}.conv", (c, c, 3, 3))

    put("time_embed.0", "time_embedding.linear_1", (emb, arch.model_channels))
    put("time_embed.2", "time_embedding.linear_2", (emb, emb))
    if arch.num_classes is not None:
        out["class_embedding.weight"] = weights.take("label_emb.weight", (arch.num_classes, emb))
    put("input_blocks.0.0", "conv_in", (widths[0], arch.in_channels, 3, 3))
    skips, ch, k = [widths[0]], widths[0], 1
    for lvl, width in enumerate(widths):
        for j in range(r):
            resblock(f"input_blocks.{k}.0", f"down_blocks.{lvl}.resnets.{j}", ch, width)
            ch = width
            if lvl in arch.attention_levels:
                attention(f"input_blocks.{k}.1", f"down_blocks.{lvl}.attentions.{j}", ch, arch.heads(ch))
            skips.append(ch)
            k += 1
        if lvl < last:
            resample(f"input_blocks.{k}.0", f"down_blocks.{lvl}.downsamplers.0", ch, "op")
            skips.append(ch)
            k += 1
    resblock("middle_block.0", "mid_block.resnets.0", ch, ch)
    attention("middle_block.1", "mid_block.attentions.0", ch, arch.heads(ch))
    resblock("middle_block.2", "mid_block.resnets.1", ch, ch)
    k = 0
    for lvl in reversed(range(len(widths))):
        up = f"up_blocks.{last - lvl}"
        for j in range(r + 1):
            resblock(f"output_blocks.{k}.0", f"{up}.resnets.{j}", ch + skips.pop(), widths[lvl])
            ch, i = widths[lvl], 1
            if lvl in arch.attention_levels:
                attention(f"output_blocks.{k}.1", f"{up}.attentions.{j}", ch, arch.heads(ch, upsample=True))
                i = 2
            if lvl and j == r:
                resample(f"output_blocks.{k}.{i}", f"{up}.upsamplers.0", ch, "conv")
            k += 1
    put("out.0", "conv_norm_out", (ch,))
    put("out.2", "conv_out", (arch.out_channels, ch, 3, 3))
    weights.finish()
    return out

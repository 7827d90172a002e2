"""The papers' original networks, written for the tests from their papers and code bases' descriptions.

Neither original code base can be shipped or imported, so the checkpoint tests compute the
original forward pass here, straight from an original-layout state dict with ``torch.nn.functional``,
and compare it with the converted ``UNet2DModel``. This file knows nothing of diffusers or of
ddrm_kit's converters: it walks the original module names (guided-diffusion's
``input_blocks.K.I``, DDPM's ``down.L.block.J``) and their arithmetic.

- :class:`ADM` / :func:`adm_shapes` / :func:`adm_forward`: guided-diffusion's ``UNetModel``.
- :class:`DDPM` / :func:`ddpm_shapes` / :func:`ddpm_forward`: the DDIM code base's ``Model``.
- :func:`full_size`: the official configs' full-size networks.
- :func:`random_state`: every weight random (norm scales and biases too), scaled to keep activations O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ADM:
    """guided-diffusion hyper-parameters; ``attention_ds`` holds downsampling rates (1, 2, 4, ...)."""

    model_channels: int
    channel_mult: tuple[float, ...]
    num_res_blocks: int
    attention_ds: frozenset[int]
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    learn_sigma: bool = False
    num_classes: int | None = None
    scale_shift: bool = False
    updown: bool = False
    new_order: bool = False
    in_channels: int = 3


def _adm_heads(cfg: ADM, channels: int, decoder: bool) -> int:
    if cfg.num_head_channels != -1:
        return channels // cfg.num_head_channels
    if decoder and cfg.num_heads_upsample != -1:
        return cfg.num_heads_upsample
    return cfg.num_heads


def _adm_plan(cfg: ADM) -> tuple[list[list[tuple]], list[tuple], list[list[tuple]]]:
    """The layers of input_blocks[1:], middle_block and output_blocks, in the original's order.

    Layers: ("res", cin, cout, None|"down"|"up"), ("attn", c, heads), ("down", c), ("up", c).
    """
    mc = cfg.model_channels
    ch = int(cfg.channel_mult[0] * mc)
    inputs: list[list[tuple]] = []
    skip_channels = [ch]
    ds = 1
    for level, mult in enumerate(cfg.channel_mult):
        for _ in range(cfg.num_res_blocks):
            block = [("res", ch, int(mult * mc), None)]
            ch = int(mult * mc)
            if ds in cfg.attention_ds:
                block.append(("attn", ch, _adm_heads(cfg, ch, False)))
            inputs.append(block)
            skip_channels.append(ch)
        if level != len(cfg.channel_mult) - 1:
            inputs.append([("res", ch, ch, "down") if cfg.updown else ("down", ch)])
            skip_channels.append(ch)
            ds *= 2
    middle = [("res", ch, ch, None), ("attn", ch, _adm_heads(cfg, ch, False)), ("res", ch, ch, None)]
    outputs: list[list[tuple]] = []
    for level in reversed(range(len(cfg.channel_mult))):
        width = int(cfg.channel_mult[level] * mc)
        for i in range(cfg.num_res_blocks + 1):
            block = [("res", ch + skip_channels.pop(), width, None)]
            ch = width
            if ds in cfg.attention_ds:
                block.append(("attn", ch, _adm_heads(cfg, ch, True)))
            if level and i == cfg.num_res_blocks:
                block.append(("res", ch, ch, "up") if cfg.updown else ("up", ch))
                ds //= 2
            outputs.append(block)
    return inputs, middle, outputs


def _adm_layer_shapes(prefix: str, layer: tuple, emb: int, scale_shift: bool) -> dict[str, tuple[int, ...]]:
    kind, c = layer[0], layer[1]
    if kind == "res":
        cin, cout = layer[1], layer[2]
        shapes = {
            f"{prefix}.in_layers.0.weight": (cin,), f"{prefix}.in_layers.0.bias": (cin,),
            f"{prefix}.in_layers.2.weight": (cout, cin, 3, 3), f"{prefix}.in_layers.2.bias": (cout,),
            f"{prefix}.emb_layers.1.weight": ((2 if scale_shift else 1) * cout, emb),
            f"{prefix}.emb_layers.1.bias": ((2 if scale_shift else 1) * cout,),
            f"{prefix}.out_layers.0.weight": (cout,), f"{prefix}.out_layers.0.bias": (cout,),
            f"{prefix}.out_layers.3.weight": (cout, cout, 3, 3), f"{prefix}.out_layers.3.bias": (cout,),
        }
        if cin != cout:
            shapes.update({f"{prefix}.skip_connection.weight": (cout, cin, 1, 1),
                           f"{prefix}.skip_connection.bias": (cout,)})
        return shapes
    if kind == "attn":
        return {f"{prefix}.norm.weight": (c,), f"{prefix}.norm.bias": (c,), f"{prefix}.qkv.weight": (3 * c, c, 1),
                f"{prefix}.qkv.bias": (3 * c,), f"{prefix}.proj_out.weight": (c, c, 1), f"{prefix}.proj_out.bias": (c,)}
    name = "op" if kind == "down" else "conv"
    return {f"{prefix}.{name}.weight": (c, c, 3, 3), f"{prefix}.{name}.bias": (c,)}


def adm_shapes(cfg: ADM) -> dict[str, tuple[int, ...]]:
    """Every weight name of the original network and its shape."""
    mc, emb = cfg.model_channels, 4 * cfg.model_channels
    ch0 = int(cfg.channel_mult[0] * mc)
    shapes = {"time_embed.0.weight": (emb, mc), "time_embed.0.bias": (emb,),
              "time_embed.2.weight": (emb, emb), "time_embed.2.bias": (emb,)}
    if cfg.num_classes is not None:
        shapes["label_emb.weight"] = (cfg.num_classes, emb)
    shapes.update({"input_blocks.0.0.weight": (ch0, cfg.in_channels, 3, 3), "input_blocks.0.0.bias": (ch0,)})
    inputs, middle, outputs = _adm_plan(cfg)
    for k, block in enumerate(inputs, start=1):
        for i, layer in enumerate(block):
            shapes.update(_adm_layer_shapes(f"input_blocks.{k}.{i}", layer, emb, cfg.scale_shift))
    for i, layer in enumerate(middle):
        shapes.update(_adm_layer_shapes(f"middle_block.{i}", layer, emb, cfg.scale_shift))
    for k, block in enumerate(outputs):
        for i, layer in enumerate(block):
            shapes.update(_adm_layer_shapes(f"output_blocks.{k}.{i}", layer, emb, cfg.scale_shift))
    out = (2 if cfg.learn_sigma else 1) * cfg.in_channels
    shapes.update({"out.0.weight": (ch0,), "out.0.bias": (ch0,),
                   "out.2.weight": (out, ch0, 3, 3), "out.2.bias": (out,)})
    return shapes


def sinusoids(t: torch.Tensor, dim: int, cos_first: bool, shift: int) -> torch.Tensor:
    """Sinusoidal timestep features, computed in float32 as both code bases do."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - shift))
    args = t.float()[:, None] * freqs[None]
    parts = [torch.cos(args), torch.sin(args)] if cos_first else [torch.sin(args), torch.cos(args)]
    return torch.cat(parts, dim=1)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N, d, T) queries, keys, values -> (N, d, T): softmax over keys of q·k / sqrt(d)."""
    weight = torch.softmax(torch.einsum("nct,ncs->nts", q, k) / math.sqrt(q.shape[1]), dim=-1)
    return torch.einsum("nts,ncs->nct", weight, v)


def _adm_layer(sd: dict, prefix: str, layer: tuple, h: torch.Tensor, emb: torch.Tensor, cfg: ADM) -> torch.Tensor:
    def gn(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.group_norm(x, 32, sd[f"{prefix}.{name}.weight"], sd[f"{prefix}.{name}.bias"], eps=1e-5)

    def p(name: str) -> torch.Tensor:
        return sd[f"{prefix}.{name}"]

    kind = layer[0]
    if kind == "down":
        return F.conv2d(h, p("op.weight"), p("op.bias"), stride=2, padding=1)
    if kind == "up":
        return F.conv2d(F.interpolate(h, scale_factor=2, mode="nearest"), p("conv.weight"), p("conv.bias"), padding=1)
    if kind == "attn":
        b, c, height, width = h.shape
        heads, x = layer[2], h.reshape(b, c, -1)
        qkv = F.conv1d(gn(x, "norm"), p("qkv.weight"), p("qkv.bias"))
        d = c // heads
        if cfg.new_order:  # three whole-width chunks, each split into heads
            q, k, v = (part.reshape(b * heads, d, -1) for part in qkv.chunk(3, dim=1))
        else:  # head by head, a [q, k, v] block each
            q, k, v = qkv.reshape(b * heads, 3 * d, -1).split(d, dim=1)
        a = _attention(q, k, v).reshape(b, c, -1)
        return (x + F.conv1d(a, p("proj_out.weight"), p("proj_out.bias"))).reshape(b, c, height, width)
    mode, x = layer[3], h
    h = F.silu(gn(h, "in_layers.0"))
    if mode == "down":
        h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
    elif mode == "up":
        h, x = F.interpolate(h, scale_factor=2, mode="nearest"), F.interpolate(x, scale_factor=2, mode="nearest")
    h = F.conv2d(h, p("in_layers.2.weight"), p("in_layers.2.bias"), padding=1)
    e = F.linear(F.silu(emb), p("emb_layers.1.weight"), p("emb_layers.1.bias"))[:, :, None, None]
    if cfg.scale_shift:
        scale, shift = e.chunk(2, dim=1)
        h = gn(h, "out_layers.0") * (1 + scale) + shift
    else:
        h = gn(h + e, "out_layers.0")
    h = F.conv2d(F.silu(h), p("out_layers.3.weight"), p("out_layers.3.bias"), padding=1)
    if f"{prefix}.skip_connection.weight" in sd:
        x = F.conv2d(x, p("skip_connection.weight"), p("skip_connection.bias"))
    return x + h


def adm_forward(sd: dict, cfg: ADM, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The original network's output for ``x`` at timesteps ``t`` (and class labels ``y``)."""
    emb = sinusoids(t, cfg.model_channels, cos_first=True, shift=0).to(x.dtype)
    emb = F.linear(F.silu(F.linear(emb, sd["time_embed.0.weight"], sd["time_embed.0.bias"])),
                   sd["time_embed.2.weight"], sd["time_embed.2.bias"])
    if cfg.num_classes is not None:
        emb = emb + sd["label_emb.weight"][y]
    h = F.conv2d(x, sd["input_blocks.0.0.weight"], sd["input_blocks.0.0.bias"], padding=1)
    hs = [h]
    inputs, middle, outputs = _adm_plan(cfg)
    for k, block in enumerate(inputs, start=1):
        for i, layer in enumerate(block):
            h = _adm_layer(sd, f"input_blocks.{k}.{i}", layer, h, emb, cfg)
        hs.append(h)
    for i, layer in enumerate(middle):
        h = _adm_layer(sd, f"middle_block.{i}", layer, h, emb, cfg)
    for k, block in enumerate(outputs):
        h = torch.cat([h, hs.pop()], dim=1)
        for i, layer in enumerate(block):
            h = _adm_layer(sd, f"output_blocks.{k}.{i}", layer, h, emb, cfg)
    h = F.silu(F.group_norm(h, 32, sd["out.0.weight"], sd["out.0.bias"], eps=1e-5))
    return F.conv2d(h, sd["out.2.weight"], sd["out.2.bias"], padding=1)


@dataclass(frozen=True)
class DDPM:
    """DDIM-code-base hyper-parameters; ``attn_resolutions`` are image sizes, halved per level from ``resolution``."""

    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: frozenset[int]
    resolution: int
    in_channels: int = 3
    out_ch: int = 3


def _ddpm_res_shapes(prefix: str, cin: int, cout: int, temb: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.norm1.weight": (cin,), f"{prefix}.norm1.bias": (cin,),
              f"{prefix}.conv1.weight": (cout, cin, 3, 3), f"{prefix}.conv1.bias": (cout,),
              f"{prefix}.temb_proj.weight": (cout, temb), f"{prefix}.temb_proj.bias": (cout,),
              f"{prefix}.norm2.weight": (cout,), f"{prefix}.norm2.bias": (cout,),
              f"{prefix}.conv2.weight": (cout, cout, 3, 3), f"{prefix}.conv2.bias": (cout,)}
    if cin != cout:
        shapes.update({f"{prefix}.nin_shortcut.weight": (cout, cin, 1, 1), f"{prefix}.nin_shortcut.bias": (cout,)})
    return shapes


def _ddpm_attn_shapes(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.norm.weight": (c,), f"{prefix}.norm.bias": (c,)}
    for name in ("q", "k", "v", "proj_out"):
        shapes.update({f"{prefix}.{name}.weight": (c, c, 1, 1), f"{prefix}.{name}.bias": (c,)})
    return shapes


def ddpm_shapes(cfg: DDPM) -> dict[str, tuple[int, ...]]:
    """Every weight name of the original network and its shape."""
    ch, temb, levels = cfg.ch, 4 * cfg.ch, len(cfg.ch_mult)
    shapes = {"temb.dense.0.weight": (temb, ch), "temb.dense.0.bias": (temb,),
              "temb.dense.1.weight": (temb, temb), "temb.dense.1.bias": (temb,),
              "conv_in.weight": (ch, cfg.in_channels, 3, 3), "conv_in.bias": (ch,)}
    in_mult = (1, *cfg.ch_mult)
    res = cfg.resolution
    block_in = ch
    for level in range(levels):
        block_in, block_out = ch * in_mult[level], ch * cfg.ch_mult[level]
        for j in range(cfg.num_res_blocks):
            shapes.update(_ddpm_res_shapes(f"down.{level}.block.{j}", block_in, block_out, temb))
            block_in = block_out
            if res in cfg.attn_resolutions:
                shapes.update(_ddpm_attn_shapes(f"down.{level}.attn.{j}", block_in))
        if level != levels - 1:
            shapes.update({f"down.{level}.downsample.conv.weight": (block_in, block_in, 3, 3),
                           f"down.{level}.downsample.conv.bias": (block_in,)})
            res //= 2
    shapes.update(_ddpm_res_shapes("mid.block_1", block_in, block_in, temb))
    shapes.update(_ddpm_attn_shapes("mid.attn_1", block_in))
    shapes.update(_ddpm_res_shapes("mid.block_2", block_in, block_in, temb))
    for level in reversed(range(levels)):
        block_out = ch * cfg.ch_mult[level]
        for j in range(cfg.num_res_blocks + 1):
            skip = ch * (cfg.ch_mult[level] if j < cfg.num_res_blocks else in_mult[level])
            shapes.update(_ddpm_res_shapes(f"up.{level}.block.{j}", block_in + skip, block_out, temb))
            block_in = block_out
            if res in cfg.attn_resolutions:
                shapes.update(_ddpm_attn_shapes(f"up.{level}.attn.{j}", block_in))
        if level:
            shapes.update({f"up.{level}.upsample.conv.weight": (block_in, block_in, 3, 3),
                           f"up.{level}.upsample.conv.bias": (block_in,)})
            res *= 2
    shapes.update({"norm_out.weight": (block_in,), "norm_out.bias": (block_in,),
                   "conv_out.weight": (cfg.out_ch, block_in, 3, 3), "conv_out.bias": (cfg.out_ch,)})
    return shapes


def _ddpm_gn(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.group_norm(x, 32, sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], eps=1e-6)


def _ddpm_res(sd: dict, prefix: str, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    h = F.conv2d(F.silu(_ddpm_gn(sd, f"{prefix}.norm1", x)), sd[f"{prefix}.conv1.weight"], sd[f"{prefix}.conv1.bias"],
                 padding=1)
    h = h + F.linear(F.silu(temb), sd[f"{prefix}.temb_proj.weight"], sd[f"{prefix}.temb_proj.bias"])[:, :, None, None]
    h = F.conv2d(F.silu(_ddpm_gn(sd, f"{prefix}.norm2", h)), sd[f"{prefix}.conv2.weight"], sd[f"{prefix}.conv2.bias"],
                 padding=1)
    if f"{prefix}.nin_shortcut.weight" in sd:
        x = F.conv2d(x, sd[f"{prefix}.nin_shortcut.weight"], sd[f"{prefix}.nin_shortcut.bias"])
    return x + h


def _ddpm_attn(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    b, c, height, width = x.shape
    h = _ddpm_gn(sd, f"{prefix}.norm", x)
    q, k, v = (F.conv2d(h, sd[f"{prefix}.{n}.weight"], sd[f"{prefix}.{n}.bias"]).reshape(b, c, -1) for n in "qkv")
    a = _attention(q, k, v).reshape(b, c, height, width)
    return x + F.conv2d(a, sd[f"{prefix}.proj_out.weight"], sd[f"{prefix}.proj_out.bias"])


def ddpm_forward(sd: dict, cfg: DDPM, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The original network's output for ``x`` at timesteps ``t``."""
    temb = sinusoids(t, cfg.ch, cos_first=False, shift=1).to(x.dtype)
    temb = F.linear(F.silu(F.linear(temb, sd["temb.dense.0.weight"], sd["temb.dense.0.bias"])),
                    sd["temb.dense.1.weight"], sd["temb.dense.1.bias"])
    hs = [F.conv2d(x, sd["conv_in.weight"], sd["conv_in.bias"], padding=1)]
    levels = len(cfg.ch_mult)
    for level in range(levels):
        for j in range(cfg.num_res_blocks):
            h = _ddpm_res(sd, f"down.{level}.block.{j}", hs[-1], temb)
            if f"down.{level}.attn.{j}.q.weight" in sd:
                h = _ddpm_attn(sd, f"down.{level}.attn.{j}", h)
            hs.append(h)
        if level != levels - 1:
            # Zero padding on the right and bottom only, then a stride-2 valid convolution.
            padded = F.pad(hs[-1], (0, 1, 0, 1))
            hs.append(F.conv2d(padded, sd[f"down.{level}.downsample.conv.weight"],
                               sd[f"down.{level}.downsample.conv.bias"], stride=2))
    h = _ddpm_res(sd, "mid.block_1", hs[-1], temb)
    h = _ddpm_attn(sd, "mid.attn_1", h)
    h = _ddpm_res(sd, "mid.block_2", h, temb)
    for level in reversed(range(levels)):
        for j in range(cfg.num_res_blocks + 1):
            h = _ddpm_res(sd, f"up.{level}.block.{j}", torch.cat([h, hs.pop()], dim=1), temb)
            if f"up.{level}.attn.{j}.q.weight" in sd:
                h = _ddpm_attn(sd, f"up.{level}.attn.{j}", h)
        if level:
            h = F.conv2d(F.interpolate(h, scale_factor=2, mode="nearest"), sd[f"up.{level}.upsample.conv.weight"],
                         sd[f"up.{level}.upsample.conv.bias"], padding=1)
    h = F.silu(_ddpm_gn(sd, "norm_out", h))
    return F.conv2d(h, sd["conv_out.weight"], sd["conv_out.bias"], padding=1)


def full_size(name: str) -> ADM | DDPM:
    """The full-size network of an official DDRM config (configs/<name>.yml), written down from its values."""
    if name.startswith("imagenet"):
        size = 512 if "512" in name else 256
        return ADM(256, (0.5, 1, 1, 2, 2, 4, 4) if size == 512 else (1, 1, 2, 2, 4, 4), 2,
                   frozenset(size // r for r in (32, 16, 8)), num_heads=4, num_head_channels=64, learn_sigma=True,
                   num_classes=1000 if name.endswith("_cc") else None, scale_shift=True, updown=True)
    if name in ("celeba_hq", "bedroom", "cat", "church"):
        return DDPM(128, (1, 1, 2, 2, 4, 4), 2, frozenset({16}), 256)
    raise KeyError(name)


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Random weights of these shapes: matrices ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.09), biases ~ N(0, 0.09)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        values = torch.randn(shape, generator=gen, dtype=torch.float64)
        if len(shape) > 1:
            fan_in = math.prod(shape[1:]) if not name.endswith("label_emb.weight") else 1
            values = values / math.sqrt(fan_in)
        elif name.endswith(".weight"):  # GroupNorm scales
            values = 1 + 0.3 * values
        else:
            values = 0.3 * values
        state[name] = values.to(dtype)
    return state

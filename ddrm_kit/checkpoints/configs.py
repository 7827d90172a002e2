"""Configs of the papers' checkpoints: the seven built-in ones, YAML files in their format, the choice for a file.

A config has the official DDRM code's layout: a ``model:`` section (``type: openai`` for
guided-diffusion, ``type: simple`` for DDPM networks), a ``diffusion:`` section with the noise
schedule, and for ``simple`` networks ``data.image_size``. Without a config, a known file name
picks one; otherwise the weights decide what they can show.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from ddrm_kit.errors import CheckpointConfigError, CheckpointWeightsError

from . import ddpm, guided
from .weights import Weights

_LINEAR_1000 = {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_diffusion_timesteps": 1000}
_IMAGENET = {
    "type": "openai", "in_channels": 3, "out_channels": 3, "num_channels": 256, "num_heads": 4, "num_res_blocks": 2,
    "attention_resolutions": "32,16,8", "dropout": 0.0, "resamp_with_conv": True, "learn_sigma": True,
    "use_scale_shift_norm": True, "use_fp16": True, "resblock_updown": True, "num_heads_upsample": -1,
    "var_type": "fixedsmall", "num_head_channels": 64, "image_size": 256, "class_cond": False,
    "use_new_attention_order": False,
}
_DDPM_256 = {
    "type": "simple", "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 1, 2, 2, 4, 4], "num_res_blocks": 2,
    "attn_resolutions": [16], "dropout": 0.0, "var_type": "fixedsmall", "ema_rate": 0.999, "ema": True,
    "resamp_with_conv": True,
}
#: The official DDRM configs (configs/*.yml of the DDRM code), their model, diffusion and data.image_size.
PRESETS: dict[str, dict[str, Any]] = {
    "imagenet_256": {"model": _IMAGENET, "diffusion": _LINEAR_1000},
    "imagenet_256_cc": {"model": {**_IMAGENET, "class_cond": True}, "diffusion": _LINEAR_1000},
    "imagenet_512_cc": {"model": {**_IMAGENET, "image_size": 512, "class_cond": True, "use_fp16": False},
                        "diffusion": _LINEAR_1000},
    **{name: {"model": _DDPM_256, "diffusion": _LINEAR_1000, "data": {"image_size": 256}}
       for name in ("celeba_hq", "bedroom", "cat", "church")},
}
#: The released files: guided-diffusion's, SDEdit's CelebA-HQ, and the LSUN ones as the DDIM code base caches them.
FILE_NAMES = {
    "256x256_diffusion_uncond.pt": "imagenet_256", "256x256_diffusion.pt": "imagenet_256_cc",
    "512x512_diffusion.pt": "imagenet_512_cc", "celeba_hq.ckpt": "celeba_hq",
    "model-2388000.ckpt": "bedroom", "model-1761000.ckpt": "cat", "model-4432000.ckpt": "church",
}
SCHEDULES = ("linear", "quad", "const", "jsd", "sigmoid", "cosine")


@dataclass(frozen=True)
class Schedule:
    """A ``diffusion:`` section: the training noise schedule."""

    beta_schedule: str
    beta_start: float
    beta_end: float
    num_diffusion_timesteps: int

    def betas(self) -> torch.Tensor:
        """β_1..β_T in float64, as the DDRM code (and guided-diffusion's cosine) computes them."""
        n, start, end = self.num_diffusion_timesteps, self.beta_start, self.beta_end
        kind = self.beta_schedule
        if kind == "linear":
            return torch.linspace(start, end, n, dtype=torch.float64)
        if kind == "quad":
            return torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
        if kind == "const":
            return torch.full((n,), end, dtype=torch.float64)
        if kind == "jsd":
            return 1.0 / torch.linspace(n, 1, n, dtype=torch.float64)
        if kind == "sigmoid":
            return torch.sigmoid(torch.linspace(-6, 6, n, dtype=torch.float64)) * (end - start) + start
        # cosine (Nichol & Dhariwal): β_t = 1 - ᾱ(t/T) / ᾱ((t-1)/T), capped at 0.999.
        s = torch.arange(n + 1, dtype=torch.float64) / n
        alpha_bar = torch.cos((s + 0.008) / 1.008 * torch.pi / 2) ** 2
        return torch.clamp(1 - alpha_bar[1:] / alpha_bar[:-1], max=0.999)

    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas(), dim=0)

    def scheduler_config(self, learn_sigma: bool) -> dict[str, Any]:
        """A diffusers ``DDPMScheduler`` config with these betas (named when diffusers has the schedule)."""
        names = {"linear": "linear", "quad": "scaled_linear", "sigmoid": "sigmoid", "cosine": "squaredcos_cap_v2"}
        config: dict[str, Any] = {
            "_class_name": "DDPMScheduler", "num_train_timesteps": self.num_diffusion_timesteps,
            "beta_start": self.beta_start, "beta_end": self.beta_end,
            "variance_type": "learned_range" if learn_sigma else "fixed_small", "prediction_type": "epsilon"}
        if self.beta_schedule in names:
            config["beta_schedule"] = names[self.beta_schedule]
        else:
            config["trained_betas"] = self.betas().tolist()
        return config


@dataclass(frozen=True)
class CheckpointConfig:
    """A parsed config: its name (preset name or file path), family, network and schedule."""

    name: str
    family: str  # guided.FAMILY or ddpm.FAMILY
    arch: guided.GuidedArch | ddpm.DDPMArch
    schedule: Schedule

    @property
    def module(self) -> Any:
        return guided if self.family == guided.FAMILY else ddpm


def parse(raw: Any, name: str) -> CheckpointConfig:
    """A config from its mapping (``model``, ``diffusion`` and for DDPM networks ``data`` sections)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("model"), Mapping):
        raise CheckpointConfigError(f"{name}: not a DDRM model config (no model: section)")
    model, kind = raw["model"], raw["model"].get("type")
    if kind == "openai":
        arch: Any = guided.arch_from_section(model, name)
    elif kind == "simple":
        data = raw.get("data") if isinstance(raw.get("data"), Mapping) else {}
        arch = ddpm.arch_from_section(model, data, name)
    else:
        raise CheckpointConfigError(f"{name}: model.type is {kind!r}; ddrm reads type: openai and type: simple")
    return CheckpointConfig(name, guided.FAMILY if kind == "openai" else ddpm.FAMILY, arch,
                            _schedule(raw.get("diffusion"), name))


def _schedule(section: Any, name: str) -> Schedule:
    if not isinstance(section, Mapping):
        raise CheckpointConfigError(f"{name}: no diffusion: section (beta_schedule, beta_start, beta_end, ...)")
    missing = [k for k in ("beta_schedule", "beta_start", "beta_end", "num_diffusion_timesteps") if k not in section]
    if missing:
        raise CheckpointConfigError(f"{name}: the diffusion section lacks {', '.join(missing)}")
    if section["beta_schedule"] not in SCHEDULES:
        raise CheckpointConfigError(
            f"{name}: unknown beta_schedule {section['beta_schedule']!r}; known: {', '.join(SCHEDULES)}")
    try:
        schedule = Schedule(str(section["beta_schedule"]), float(section["beta_start"]), float(section["beta_end"]),
                            int(section["num_diffusion_timesteps"]))
    except (TypeError, ValueError) as err:
        raise CheckpointConfigError(f"{name}: a bad value in the diffusion section ({err})") from err
    betas = schedule.betas() if schedule.num_diffusion_timesteps > 0 else torch.zeros(0)
    if not betas.numel() or not bool(((betas > 0) & (betas <= 1)).all()):
        raise CheckpointConfigError(f"{name}: the diffusion section gives betas outside (0, 1]")
    return schedule


def load_config(value: str | os.PathLike) -> CheckpointConfig:
    """A built-in config by name, or a YAML file in the DDRM configs' format."""
    text = str(value)
    if text in PRESETS:
        return parse(PRESETS[text], text)
    path = Path(value).expanduser()
    if not path.is_file():
        raise CheckpointConfigError(
            f"unknown --model-config {text!r}: use one of {', '.join(PRESETS)} or the path of a DDRM YAML config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CheckpointConfigError(f"{path}: not a readable YAML file ({' '.join(str(err).split())})") from err
    return parse(raw, str(path))


def config_for_file(path: Path) -> str | None:
    """The built-in config a released file's name (or the LSUN cache folder's) stands for."""
    if path.name in FILE_NAMES:
        return FILE_NAMES[path.name]
    parent = path.parent.name
    return next((n for n in ("bedroom", "cat", "church") if f"lsun_{n}" in parent), None)


def infer(state: Mapping[str, torch.Tensor], source: str) -> tuple[CheckpointConfig, str]:
    """The config the weights show, and how it was found; a one-line error where they cannot tell."""
    if "time_embed.0.weight" in state and "input_blocks.0.0.weight" in state:
        fitting = [n for n, raw in PRESETS.items() if raw["model"]["type"] == "openai" and _fits(state, n)]
        if fitting:
            return load_config(fitting[0]), f"inferred: the weights have the shapes of the {fitting[0]} network"
        raise CheckpointConfigError(
            f"{source} is a guided-diffusion network that fits none of the built-in configs and its attention "
            "heads and order are not in the weights: pass --model-config with a YAML file of its config")
    if "temb.dense.0.weight" in state and "conv_in.weight" in state:
        arch = ddpm.infer(state, source)
        same = [n for n, raw in PRESETS.items() if raw["model"]["type"] == "simple"
                and replace(load_config(n).arch, image_size=None) == arch]
        if same:
            config = replace(load_config(same[0]), name="inferred")
            return config, f"inferred: the network of the {', '.join(same)} configs"
        return (CheckpointConfig("inferred", ddpm.FAMILY, arch, Schedule(**_LINEAR_1000)),
                "inferred from the weights; the noise schedule is not in them, so the DDPM one is assumed "
                "(linear 1e-4 to 0.02 over 1000 steps): pass --model-config if it differs")
    raise CheckpointConfigError(
        f"{source} is neither a guided-diffusion nor a DDPM (DDIM code base) state dict "
        "(no time_embed.0.weight nor temb.dense.0.weight), so no --model-config fits it")


def _fits(state: Mapping[str, torch.Tensor], name: str) -> bool:
    """Whether the weights fit a built-in config exactly (names and shapes only; no data is read)."""
    meta = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state.items()}
    config = load_config(name)
    try:
        config.module.convert(Weights(meta, "", name), config.arch)
    except CheckpointWeightsError:
        return False
    return True

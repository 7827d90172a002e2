"""Diffusion priors: an epsilon-predictor ``eps(x_t, t)`` plus its ``alphas_cumprod``.

``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``; a prior returns its estimate of ``ε`` in float32.
:class:`Prior` wraps any callable (analytic priors in tests); :func:`load_prior` builds one
from a ``diffusers`` ``UNet2DModel`` (hub id, local folder, the built-in prior) or from one of the
papers' checkpoint files (:mod:`ddrm_kit.checkpoints`); :mod:`ddrm_kit.prior_load` reads the sources.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .errors import DDRMError, ModelNotFoundError, UnsupportedModelError
from .prior_settings import check_settings

__all__ = ["Prior", "load_prior", "BUILTIN_DIR"]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

# A diffusers repo id: "owner/name" (letters, digits, '-', '_', '.').
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_GLOBS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin")
# diffusers' fast loading needs accelerate; without it, asking for it only prints a warning.
_HAS_ACCELERATE = importlib.util.find_spec("accelerate") is not None


class Prior:
    """An epsilon-predictor ``eps(x_t, t) -> ε̂`` with its training schedule ``alphas_cumprod``.

    ``eps`` takes ``x_t`` of shape (B, C, H, W) (float32, on ``device``) and ``t`` a long tensor of
    shape (B,); calling the prior returns ``ε̂`` as float32. ``alphas_cumprod`` (length T) is kept
    in float64 on the CPU, so the sampler reads its noise levels without touching the device.
    ``settings`` are the sampler settings that suit the prior per task family (the format of
    ``ddrm_settings.json``, :mod:`ddrm_kit.prior_settings`); ``{}``: the papers' values.
    A ``conditional`` prior (a Palette model, :mod:`ddrm_kit.palette_model`) is called as
    ``eps(x_t, t, c)`` with the condition image ``c`` of ``x_t``'s shape; an unconditional one never sees ``c``.
    """

    def __init__(
        self,
        eps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        alphas_cumprod: torch.Tensor | Sequence[float],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        channels: int | None = None,
        name: str | None = None,
        settings: Mapping[str, Mapping[str, float | int]] | None = None,
        conditional: bool = False,
    ) -> None:
        if not callable(eps):
            raise DDRMError("Prior(eps, alphas_cumprod): eps must be a callable eps(x_t, t) -> noise estimate")
        ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu().reshape(-1).clone()
        if ac.numel() == 0 or not bool(((ac > 0) & (ac <= 1)).all()):
            raise DDRMError("Prior: alphas_cumprod must be a non-empty sequence of values in (0, 1]")
        params = next(eps.parameters(), None) if isinstance(eps, torch.nn.Module) else None
        self.eps = eps
        self.alphas_cumprod = ac
        self.device = torch.device(device) if device is not None else (params.device if params is not None else torch.device("cpu"))
        self.dtype = dtype if dtype is not None else (params.dtype if params is not None else torch.float32)
        self.channels = channels
        self.name = name
        self.settings = {} if settings is None else check_settings(settings, int(ac.numel()), "Prior(settings=...)")
        self.conditional = bool(conditional)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    def __call__(self, x: torch.Tensor, t: torch.Tensor | int, c: torch.Tensor | None = None) -> torch.Tensor:
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        if (c is not None) != self.conditional:
            raise DDRMError("this prior is a conditional (Palette) model: sample it with ddrm_kit.palette, not ddrm"
                            if self.conditional else
                            "this prior is unconditional and takes no condition: restore with ddrm_kit.ddrm")
        return (self.eps(x, t) if c is None else self.eps(x, t, c)).float()

    def __repr__(self) -> str:
        return (f"Prior(name={self.name!r}, T={self.num_train_timesteps}, channels={self.channels}, "
                f"device={self.device}, dtype={self.dtype})")


class _UNetEps(torch.nn.Module):
    """A UNet2DModel as an epsilon-predictor: pads to the UNet's multiple, converts its output to ε."""

    def __init__(self, unet: torch.nn.Module, alphas_cumprod: torch.Tensor, prediction_type: str,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.unet = unet
        self.prediction_type = prediction_type
        self.channels_last = channels_last
        self.channels = int(unet.config.in_channels)
        # Each down block but the last halves the resolution.
        self.multiple = 2 ** (len(unet.config.block_out_channels) - 1)
        ac = alphas_cumprod.to(torch.float32)
        self.register_buffer("sqrt_a", ac.sqrt(), persistent=False)
        self.register_buffer("sqrt_1ma", (1 - ac).sqrt(), persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor | None = None) -> torch.Tensor:
        """ε at ``x_t`` (default ``x``, the network's input; a conditional network's input holds more)."""
        h, w = x.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        xin = x.to(self.unet.dtype)
        if ph or pw:
            top, left = ph // 2, pw // 2
            pad = (left, pw - left, top, ph - top)
            # Reflection needs each pad smaller than the side; tiny images fall back to replication.
            mode = "reflect" if max(pad[:2]) < w and max(pad[2:]) < h else "replicate"
            xin = F.pad(xin, pad, mode=mode)
        if self.channels_last:
            xin = xin.contiguous(memory_format=torch.channels_last)
        out = self.unet(xin, t).sample
        # Learned-variance (OpenAI-style) UNets output [ε, variance]: keep ε.
        out = out[:, : self.channels]
        if ph or pw:
            out = out[..., top : top + h, left : left + w]
        # float32, contiguous NCHW for the sampler and operators (channels_last outputs, channel slices,
        # crops), in one copy at most.
        out = out.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.prediction_type == "epsilon":
            return out
        sa = self.sqrt_a[t].view(-1, 1, 1, 1)
        s1 = self.sqrt_1ma[t].view(-1, 1, 1, 1)
        xf = (x if x_t is None else x_t).float()
        if self.prediction_type == "v_prediction":
            # v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0 and x_t = sqrt(ᾱ) x0 + sqrt(1-ᾱ) ε  =>  ε = sqrt(ᾱ) v + sqrt(1-ᾱ) x_t
            return sa * out + s1 * xf
        # "sample": the network predicts x0, so ε = (x_t - sqrt(ᾱ) x0) / sqrt(1-ᾱ)
        return (xf - sa * out) / s1


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DDRMError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DDRMError("device 'cuda' was asked for but CUDA is not available: use device='cpu'")
    return dev


def _resolve_dtype(dtype: torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise DDRMError(f"unsupported prior dtype {dtype}: use torch.float32, torch.float16 (CUDA) or torch.bfloat16")
    if dtype == torch.float16 and device.type != "cuda":
        raise DDRMError("float16 priors need a CUDA device: drop dtype=torch.float16 (--fp16) on CPU")
    return dtype


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UnsupportedModelError(f"cannot read {path}: {err}; re-save the model with save_pretrained") from err


def _check_scheduler_config(cfg: dict[str, Any], label: str) -> None:
    cls = str(cfg.get("_class_name", ""))
    if cls.startswith("CM") or "Consistency" in cls:
        raise UnsupportedModelError(
            f"{label} is a consistency model ({cls}); ddrm needs a DDPM-style prior "
            "(e.g. google/ddpm-celebahq-256 or the built-in prior)")
    if not any(k in cfg for k in ("beta_schedule", "trained_betas", "beta_start")):
        raise UnsupportedModelError(
            f"{label} has a {cls or 'scheduler'} without a DDPM beta schedule; ddrm needs a "
            "DDPM-style prior (e.g. google/ddpm-celebahq-256 or the built-in prior)")
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction", "sample"):
        raise UnsupportedModelError(
            f"{label} has prediction_type={pred!r}; supported: epsilon, v_prediction, sample")


def _alphas_cumprod(sched_cfg: dict[str, Any], label: str) -> tuple[torch.Tensor, str]:
    from diffusers import DDPMScheduler

    try:
        scheduler = DDPMScheduler.from_config(sched_cfg)
    except (NotImplementedError, ValueError, TypeError) as err:
        raise UnsupportedModelError(
            f"{label}: unsupported beta schedule {sched_cfg.get('beta_schedule')!r} ({err}); "
            "supported: linear, scaled_linear, squaredcos_cap_v2") from err
    # The cumulative product in float64: the late ᾱ_t are tiny and float32 loses their digits.
    betas = scheduler.betas.to(torch.float64)
    ac = torch.cumprod(1 - betas, dim=0)
    if bool(ac[-1] <= 0):
        # Zero-terminal-SNR rescaling: keep the last level finite as diffusers does.
        ac[-1] = 2.0**-24
    return ac, str(scheduler.config.prediction_type)


def _has_weights(folder: Path) -> bool:
    return any(any(folder.glob(g)) for g in _WEIGHT_GLOBS)


def load_prior(name_or_path: str | os.PathLike | None = None, device: torch.device | str | None = None,
               dtype: torch.dtype | None = None, *, config: str | os.PathLike | None = None,
               class_label: int | None = None, channels_last: bool = True, compile: bool = False) -> Prior:
    """Load a prior: ``None``/"builtin", a local save_pretrained folder, a hub id, or a papers' checkpoint file.

    A checkpoint file (``.pt .pth .ckpt .bin .safetensors``: guided-diffusion or DDPM state dicts)
    is converted in memory, with ``config`` (a built-in config name or a DDRM YAML file; default:
    from the file name, else from the weights) and its noise schedule; nothing is written or cached.
    A class-conditional network (such a file, or a folder that ``ddrm convert`` wrote without a
    class) needs ``class_label``, the class every image is restored as.
    Otherwise betas come from the scheduler config (``DDPMScheduler``); ``prediction_type``
    epsilon, v_prediction and sample are converted to ε; learned-variance outputs keep their first
    channels. Every source is loaded strictly: weights that the network does not use, or lacks, are refused.
    The folder's ``ddrm_settings.json``, if any, becomes :attr:`Prior.settings` (the sampler's
    settings per task family; :mod:`ddrm_kit.prior_settings`).
    ``device`` defaults to CUDA when available, else CPU; ``dtype`` float32 unless asked
    (``torch.float16`` needs CUDA). ``channels_last`` runs the UNet on NHWC tensors (faster, same
    results up to float rounding: benchmarks/bench_unet_cpu.py); ``compile`` applies
    ``torch.compile`` (a slow first call; pays off only for long runs).
    """
    # The sources import Prior from this module.
    from . import prior_load
    from .checkpoints.weights import SUFFIXES

    dev = _resolve_device(device)
    dt = _resolve_dtype(dtype, dev)
    build = {"channels_last": bool(channels_last), "compile": bool(compile)}
    if name_or_path is None or str(name_or_path) == "builtin":
        if config is not None:
            prior_load.refuse_model_config("the built-in prior")
        if not _has_weights(BUILTIN_DIR) and not _has_weights(BUILTIN_DIR / "unet"):
            raise ModelNotFoundError(
                f"the built-in prior is not installed (no weights in {BUILTIN_DIR}): pass a hub id "
                "(e.g. google/ddpm-celebahq-256) or a local save_pretrained folder instead")
        return prior_load.load_folder(BUILTIN_DIR, "the built-in prior", class_label, dev, dt, **build)
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() in SUFFIXES and not path.is_dir():
        if not path.is_file():
            raise ModelNotFoundError(f"no such checkpoint file: {path}")
        return prior_load.load_file(path, None if config is None else str(config), class_label, dev, dt, **build)
    if config is not None:
        prior_load.refuse_model_config(str(name_or_path))
    if path.is_dir():
        return prior_load.load_folder(path, str(path), class_label, dev, dt, **build)
    if path.exists():
        raise ModelNotFoundError(
            f"{path} is a file but not a checkpoint ({' '.join(SUFFIXES)}): pass a checkpoint file or the "
            "folder written by save_pretrained")
    name = str(name_or_path)
    if _HUB_ID.match(name) and not name.startswith((".", "~")):
        return prior_load.load_hub(name, class_label, dev, dt, **build)
    raise ModelNotFoundError(
        f"no such model folder: {name} (and not a hub id like google/ddpm-celebahq-256); "
        "check the path, or omit --model for the built-in prior")

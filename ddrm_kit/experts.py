"""Expert denoisers by noise level: one network for the noisiest timesteps, another for the rest.

eDiff-I (Balaji et al. 2022) trains separate denoisers for separate noise ranges. Here two priors
on the same noise schedule become one: ``high`` predicts at timesteps ``t >= from_t`` and ``low``
below, so each step still runs one network. The two may differ in prediction type (each is
converted to ε on its own), which is the point for a small prior: a v-predictor keeps the x̂0 error
small at the top of the schedule, where an ε-predictor's error is multiplied by sqrt((1-ᾱ)/ᾱ)
(about 6 at t = 600 and 157 at t = 999 of a linear schedule), and an ε-predictor is hard to beat
near the data.

A prior folder opts in with ``experts.json``, ``{"high_noise": "high_noise", "from_t": 600}``: the
subfolder (of that folder) holding the high-noise expert, a prior folder of its own (UNet config,
weights, scheduler config), and the first timestep it predicts for. The folder's own UNet is the
low-noise expert; its ``ddrm_settings.json`` holds the settings of the pair. Keys starting with
``_`` are notes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .errors import DDRMError, UnsupportedModelError
from .prior import Prior

__all__ = ["EXPERTS_JSON", "NoiseLevelExperts", "combine_experts", "read_experts", "same_schedule"]

EXPERTS_JSON = "experts.json"
_FIX = "see docs/design.md (Noise-level experts)"


class NoiseLevelExperts(torch.nn.Module):
    """``ε(x_t, t)`` from ``high`` where ``t >= from_t`` and from ``low`` elsewhere (eDiff-I's expert denoisers)."""

    def __init__(self, low: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 high: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], from_t: int) -> None:
        super().__init__()
        self.low = low
        self.high = high
        self.from_t = int(from_t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        high = t >= self.from_t
        # A sampler step shares one t over the batch: one network, no copies.
        if bool(high.all()):
            return self.high(x, t).float()
        if not bool(high.any()):
            return self.low(x, t).float()
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        out[high] = self.high(x[high], t[high]).float()
        out[~high] = self.low(x[~high], t[~high]).float()
        return out


def same_schedule(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two ``alphas_cumprod`` are one noise schedule (to float rounding): what experts must share."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-6, atol=0.0)


def _is_inner_timestep(from_t: Any, num_train_timesteps: int) -> bool:
    """``from_t`` leaves each expert some timesteps: an integer in [1, T - 1]."""
    return not isinstance(from_t, bool) and isinstance(from_t, int) and 1 <= from_t < num_train_timesteps


def combine_experts(low: Prior, high: Prior, from_t: int, *, name: str | None = None,
                    settings: dict[str, Any] | None = None) -> Prior:
    """One prior that runs ``high`` at timesteps ``t >= from_t`` and ``low`` below.

    Both must be unconditional, on the same device, with the same channels and the same noise
    schedule (``alphas_cumprod``); ``1 <= from_t < T``. The result keeps ``low``'s name, dtype and
    settings unless ``name`` or ``settings`` are given.

    Example::

        >>> import torch
        >>> from ddrm_kit import Prior
        >>> from ddrm_kit.experts import combine_experts
        >>> ac = torch.linspace(0.999, 0.01, 1000)
        >>> low, high = Prior(lambda x, t: 0 * x, ac), Prior(lambda x, t: 1 + 0 * x, ac)
        >>> both = combine_experts(low, high, 600)
        >>> float(both(torch.zeros(1, 3, 4, 4), 599).mean()), float(both(torch.zeros(1, 3, 4, 4), 600).mean())
        (0.0, 1.0)
    """
    T = low.num_train_timesteps
    if low.conditional or high.conditional:
        raise DDRMError("combine_experts: noise-level experts must be unconditional priors, not Palette models")
    if not same_schedule(high.alphas_cumprod, low.alphas_cumprod):
        raise DDRMError("combine_experts: the two priors have different noise schedules (alphas_cumprod); "
                        "experts must share one")
    if low.channels is not None and high.channels is not None and low.channels != high.channels:
        raise DDRMError(f"combine_experts: the experts take {low.channels} and {high.channels} channels; they must match")
    if low.device != high.device:
        raise DDRMError(f"combine_experts: the experts are on {low.device} and {high.device}; load both on one device")
    if not _is_inner_timestep(from_t, T):
        raise DDRMError(f"combine_experts: from_t must be an integer timestep in [1, {T - 1}], got {from_t!r}")
    return Prior(NoiseLevelExperts(low.eps, high.eps, from_t), low.alphas_cumprod, device=low.device, dtype=low.dtype,
                 channels=low.channels if low.channels is not None else high.channels,
                 name=low.name if name is None else name, settings=low.settings if settings is None else settings)


def read_experts(folder: Path, num_train_timesteps: int) -> tuple[Path, int] | None:
    """The folder's ``experts.json`` as (the high-noise expert's folder, from_t), checked; None without one."""
    path = Path(folder) / EXPERTS_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnsupportedModelError(f"{path}: not readable JSON ({err}); {_FIX}") from err
    if not isinstance(data, dict):
        raise UnsupportedModelError(f"{path}: expected an object like {{\"high_noise\": \"high_noise\", \"from_t\": 600}}; {_FIX}")
    keys = {k for k in data if not str(k).startswith("_")}
    if keys != {"high_noise", "from_t"}:
        raise UnsupportedModelError(f"{path}: needs exactly the keys high_noise and from_t, got {', '.join(sorted(keys)) or 'none'}; {_FIX}")
    sub, from_t = data["high_noise"], data["from_t"]
    T = num_train_timesteps
    if not _is_inner_timestep(from_t, T):
        raise UnsupportedModelError(f"{path}: from_t must be an integer timestep in [1, {T - 1}], got {from_t!r}; {_FIX}")
    if not isinstance(sub, str) or not sub or Path(sub).is_absolute() or ".." in Path(sub).parts or sub in (".", "./"):
        raise UnsupportedModelError(f"{path}: high_noise must name a subfolder of {folder}, got {sub!r}; {_FIX}")
    expert = Path(folder) / sub
    if not expert.is_dir():
        raise UnsupportedModelError(f"{path} names the high-noise expert {sub!r}, but {expert} is not a folder; {_FIX}")
    return expert, from_t

"""ddrm-kit: training-free image restoration with DDRM, and Palette, its supervised counterpart.

The public names are loaded lazily (PEP 562) so that ``import ddrm_kit`` (and the CLI's start-up)
does not import torch or diffusers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ddrm": "ddrm_kit.sampler",
    "timesteps": "ddrm_kit.sampler",
    "load_prior": "ddrm_kit.prior",
    "Prior": "ddrm_kit.prior",
    "combine_experts": "ddrm_kit.experts",
    "palette": "ddrm_kit.palette_sampler",
    "palette_condition": "ddrm_kit.palette_sampler",
    "load_palette_prior": "ddrm_kit.palette_model",
}

__all__ = ["ddrm", "timesteps", "load_prior", "Prior", "combine_experts", "palette", "palette_condition", "load_palette_prior",
           "__version__"]

if TYPE_CHECKING:
    from .experts import combine_experts
    from .palette_model import load_palette_prior
    from .palette_sampler import palette, palette_condition
    from .prior import Prior, load_prior
    from .sampler import ddrm, timesteps


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ddrm_kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

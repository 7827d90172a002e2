"""ddrm-kit: training-free image restoration with DDRM.

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
}

__all__ = ["ddrm", "timesteps", "load_prior", "Prior", "__version__"]

if TYPE_CHECKING:
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

"""Degradation operators for DDRM: the SVD protocol, the registry and every concrete operator.

``operators`` never imports ``ddrm_kit``. The registry and its catalogue are torch-free and load
with the package; the operator classes are imported on first use (PEP 562), so listing the
operators (``ddrm ops``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import catalog as _catalog  # noqa: F401  (declares the built-in entries)
from .errors import OperatorError
from .registry import REQUIRED, OperatorSpec, Param, available, get_operator, get_spec, register, specs

_LAZY = {
    "DEFAULT_ZERO_TOL": "base",
    "SVDOperator": "base",
    "CodecOperator": "codec",
    "GreyCodec": "codec",
    "DenseSVD": "dense",
    "Identity": "identity",
    "NoMeasurement": "identity",
    "BlockAverage": "superres",
    "Inpainting": "inpaint",
    "Uncropping": "inpaint",
    "Colorization": "color",
    "SeparableSVD": "separable",
    "SeparableBlur": "blur",
    "BicubicDownsample": "bicubic",
    "CircularBlur": "fourier",
    "WalshHadamardCS": "cs",
    "JPEG": "jpeg",
    "Quantize": "quantize",
}

__all__ = [
    "OperatorError",
    "OperatorSpec",
    "Param",
    "REQUIRED",
    "available",
    "get_operator",
    "get_spec",
    "register",
    "specs",
    *_LAZY,
]

if TYPE_CHECKING:
    from .base import DEFAULT_ZERO_TOL, SVDOperator
    from .bicubic import BicubicDownsample
    from .blur import SeparableBlur
    from .codec import CodecOperator, GreyCodec
    from .color import Colorization
    from .cs import WalshHadamardCS
    from .dense import DenseSVD
    from .fourier import CircularBlur
    from .identity import Identity, NoMeasurement
    from .inpaint import Inpainting, Uncropping
    from .jpeg import JPEG
    from .quantize import Quantize
    from .separable import SeparableSVD
    from .superres import BlockAverage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'operators' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

"""Degradation operators for DDRM: the SVD protocol, the registry and every concrete operator.

``operators`` never imports ``ddrm_kit``. Each module below registers its names with
:func:`operators.registry.register` when imported.
"""

from .base import DEFAULT_ZERO_TOL, OperatorError, SVDOperator
from .registry import OperatorSpec, available, get_operator, get_spec, register, specs
from .dense import DenseSVD
from .identity import Identity
from .superres import BlockAverage
from .inpaint import Inpainting
from .color import Colorization
from .separable import SeparableSVD
from .blur import SeparableBlur
from .bicubic import BicubicDownsample
from .fourier import CircularBlur
from .cs import WalshHadamardCS
from .jpeg import JPEG
from .quantize import Quantize

__all__ = [
    "DEFAULT_ZERO_TOL",
    "OperatorError",
    "SVDOperator",
    "OperatorSpec",
    "available",
    "get_operator",
    "get_spec",
    "register",
    "specs",
    "DenseSVD",
    "Identity",
    "BlockAverage",
    "Inpainting",
    "Colorization",
    "SeparableSVD",
    "SeparableBlur",
    "BicubicDownsample",
    "CircularBlur",
    "WalshHadamardCS",
    "JPEG",
    "Quantize",
]

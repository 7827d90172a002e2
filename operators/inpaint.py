"""Inpainting: keep a subset of pixels (random, centre box, DDRM's text masks, a user mask, or one side: uncropping)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import torch

from .base import OperatorError, SVDOperator, inverse_permutation
from .errors import check_image_shape


class Inpainting(SVDOperator):
    r"""Pixel selection :math:`y = x_{\mathcal K}` for the kept set :math:`\mathcal K` of a mask.

    :math:`H` is a row selection of the identity: :math:`V^\top` is the permutation that lists
    the kept entries (in ``(c, h, w)`` order) first and the missing ones after, ``U = I`` and
    every singular value is 1. ``y`` is the vector of kept values, shape ``(m,)``, with
    ``m = C * (kept pixels)``; apply ``H`` to a full-size damaged image to get it
    (``observation_kind = "full_image"``).

    ``mask`` is ``(H, W)`` (shared by all channels) or ``(C, H, W)``, boolean or 0/1: nonzero = kept.
    """

    observation_kind = "full_image"

    def __init__(self, image_shape: Sequence[int], mask: Any) -> None:
        c, h, w = image_shape
        keep = _as_mask(mask, (c, h, w))
        flat = keep.reshape(-1)
        kept = torch.nonzero(flat).flatten()
        missing = torch.nonzero(~flat).flatten()
        super().__init__(image_shape, (kept.numel(),))
        perm = torch.cat([kept, missing])
        self.register_buffer("_perm", perm)
        self.register_buffer("_inv_perm", inverse_permutation(perm))
        self.register_buffer("mask", keep[0] if bool((keep == keep[0:1]).all()) else keep)
        self._set_singulars(torch.ones(kept.numel(), dtype=torch.float64))

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).index_select(1, self._buf("_perm", x))

    def V(self, z: torch.Tensor) -> torch.Tensor:
        return z.index_select(1, self._buf("_inv_perm", z)).reshape(z.shape[0], *self.image_shape)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _H(self, x: torch.Tensor) -> torch.Tensor:
        """The kept values (a gather of the first ``m`` permuted entries; same maths as the base)."""
        return x.reshape(x.shape[0], -1).index_select(1, self._buf("_perm", x)[: self.m])


def _as_mask(mask: Any, shape: tuple[int, int, int]) -> torch.Tensor:
    """Boolean ``(C, H, W)`` keep-mask from an ``(H, W)``/``(C, H, W)`` bool or 0/1 array/tensor."""
    c, h, w = shape
    bad = OperatorError("mask must be boolean or contain only 0 and 1 (1 = kept pixel)")
    try:
        t = torch.as_tensor(np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask))
    except (TypeError, ValueError):
        raise bad from None
    if t.dtype != torch.bool:
        if t.is_complex() or not bool(((t == 0) | (t == 1)).all()):
            raise bad
        t = t != 0
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or tuple(t.shape[1:]) != (h, w) or t.shape[0] not in (1, c):
        raise OperatorError(
            f"mask of shape {tuple(np.shape(mask))} does not fit a {c}x{h}x{w} image; give an {h}x{w} mask"
        )
    return t.expand(c, h, w).contiguous()


def _packaged_mask(name: str, op: str, shape: tuple[int, int, int]) -> np.ndarray:
    mask = np.load(resources.files("operators").joinpath("masks", name).open("rb"))
    if mask.shape != tuple(shape[1:]):
        raise OperatorError(
            f"{op} is a {mask.shape[0]}x{mask.shape[1]} mask and cannot be rescaled without changing it; "
            f"resize the image to {mask.shape[0]}x{mask.shape[1]} or use inp_mask with your own mask"
        )
    return mask


def random_mask(shape: tuple[int, int, int], missing_pct: float, seed: int = 0) -> torch.Tensor:
    """``(H, W)`` keep-mask with ``round(pct% of H*W)`` pixels missing, drawn with ``torch.Generator(seed)``."""
    _, h, w = shape
    if not 0 <= missing_pct <= 100:
        raise OperatorError(f"inp_random<pct> needs 0 <= pct <= 100, got {missing_pct}")
    gen = torch.Generator().manual_seed(int(seed))
    n_missing = round(h * w * missing_pct / 100.0)
    keep = torch.ones(h * w, dtype=torch.bool)
    keep[torch.randperm(h * w, generator=gen)[:n_missing]] = False
    return keep.reshape(h, w)


def box_mask(shape: tuple[int, int, int], size: int | Sequence[int] | None = None) -> torch.Tensor:
    """``(H, W)`` keep-mask with a centred missing box of ``size`` (int or (h, w)); default half each side."""
    _, h, w = shape
    if size is None:
        bh, bw = round(h / 2), round(w / 2)  # the papers' 128x128 box on 256x256
    elif isinstance(size, (int, np.integer)):
        bh = bw = int(size)
    else:
        bh, bw = (int(s) for s in size)
    if not (0 <= bh <= h and 0 <= bw <= w):
        raise OperatorError(f"inp_box size {bh}x{bw} does not fit a {h}x{w} image; give size <= the image side")
    keep = torch.ones(h, w, dtype=torch.bool)
    top, left = (h - bh) // 2, (w - bw) // 2
    keep[top : top + bh, left : left + bw] = False
    return keep


#: The sides :class:`Uncropping` can remove.
UNCROP_SIDES = ("left", "right", "top", "bottom")


def uncrop_mask(shape: tuple[int, int, int], side: str = "right", fraction: float = 0.5) -> torch.Tensor:
    """``(H, W)`` keep-mask missing ``round(fraction * W)`` columns (left/right) or ``round(fraction * H)`` rows."""
    _, h, w = shape
    if side not in UNCROP_SIDES:
        raise OperatorError(f"uncrop side must be 'left', 'right', 'top' or 'bottom', got {side!r}")
    try:
        frac = float(fraction)
    except (TypeError, ValueError):
        raise OperatorError(f"uncrop fraction must be a number in (0, 1), got {fraction!r}") from None
    if not 0.0 < frac < 1.0:
        raise OperatorError(f"uncrop fraction must be in (0, 1) (the part of the image missing), got {fraction!r}")
    length, what = (w, "columns") if side in ("left", "right") else (h, "rows")
    k = round(frac * length)
    if not 0 < k < length:
        raise OperatorError(
            f"uncrop fraction={frac:g} removes {k} of the {length} {what} of a {h}x{w} image; "
            f"give a fraction that removes at least one and keeps at least one")
    keep = torch.ones(h, w, dtype=torch.bool)
    cut = {"left": (slice(None), slice(0, k)), "right": (slice(None), slice(length - k, None)),
           "top": (slice(0, k), slice(None)), "bottom": (slice(length - k, None), slice(None))}[side]
    keep[cut] = False
    return keep


class Uncropping(Inpainting):
    r"""Uncropping (outpainting): one side of the image is missing, :math:`y = x_{\mathcal K}`.

    Inpainting with a half-plane mask. With :math:`k = \mathrm{round}(f\,W)` for ``side`` left or
    right (:math:`k = \mathrm{round}(f\,H)` for top or bottom), the kept set is

    .. math::

        \mathcal K = \{(c, i, j) : j \ge k\}\ (\text{left}), \quad \{j < W - k\}\ (\text{right}),
        \quad \{i \ge k\}\ (\text{top}), \quad \{i < H - k\}\ (\text{bottom}),

    and :math:`H` selects those entries: every singular value is 1, :math:`H^+ y` puts them back and
    leaves the missing part at 0. ``y`` is the vector of kept values (``observation_kind =
    "full_image"``: apply ``H`` to a full-size image whose missing part is anything).

    Parameters:
        image_shape: ``(C, H, W)`` of the clean image.
        side: the missing side, ``"left"``, ``"right"`` (default), ``"top"`` or ``"bottom"``.
        fraction: the part of the width (left/right) or height (top/bottom) that is missing, in
            ``(0, 1)``; it must remove at least one column/row and keep at least one.

    Example:
        >>> import torch, operators
        >>> op = operators.get_operator("uncrop", (1, 2, 4), side="left", fraction=0.25)
        >>> op.mask.int()
        tensor([[0, 1, 1, 1],
                [0, 1, 1, 1]], dtype=torch.int32)
        >>> x = torch.arange(8.0).reshape(1, 1, 2, 4)
        >>> op.H(x)
        tensor([[1., 2., 3., 5., 6., 7.]])
        >>> op.H_pinv(op.H(x))
        tensor([[[[0., 1., 2., 3.],
                  [0., 5., 6., 7.]]]])
    """

    def __init__(self, image_shape: Sequence[int], side: str = "right", fraction: float = 0.5) -> None:
        shape = check_image_shape(image_shape)
        super().__init__(shape, uncrop_mask(shape, side, fraction))
        self.side = side
        self.fraction = float(fraction)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, side={self.side!r}, fraction={self.fraction:g}"


def _inp_random(image_shape: tuple[int, int, int], pct: str, seed: int = 0) -> Inpainting:
    return Inpainting(image_shape, random_mask(image_shape, float(pct), seed))


def _inp_box(image_shape: tuple[int, int, int], size: int | Sequence[int] | None = None) -> Inpainting:
    return Inpainting(image_shape, box_mask(image_shape, size))


def _inp_lolcat(image_shape: tuple[int, int, int]) -> Inpainting:
    return Inpainting(image_shape, _packaged_mask("lolcat_extra.npy", "inp_lolcat", image_shape))


def _inp_lorem(image_shape: tuple[int, int, int]) -> Inpainting:
    return Inpainting(image_shape, _packaged_mask("lorem3.npy", "inp_lorem", image_shape))


def _inp_mask(image_shape: tuple[int, int, int], mask: Any) -> Inpainting:
    return Inpainting(image_shape, mask)


def _uncrop(image_shape: tuple[int, int, int], side: str = "right", fraction: float = 0.5) -> Uncropping:
    return Uncropping(image_shape, side, fraction)

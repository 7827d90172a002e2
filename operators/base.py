"""The SVD protocol every linear degradation implements: ``H = U diag(s) Vᵀ`` in implicit form."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import OperatorError, check_image_shape

#: Default relative tolerance: singular values ``s <= DEFAULT_ZERO_TOL * max(s)`` become exact zeros.
DEFAULT_ZERO_TOL = 1e-6


def inverse_permutation(perm: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``inv`` with ``inv[perm[i]] = i``, in O(n) (a scatter, not a sort)."""
    if isinstance(perm, torch.Tensor):
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.numel(), dtype=perm.dtype)
        return inv
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inv


def rank_major_index(perm: np.ndarray, channels: int, length: int) -> torch.Tensor:
    """Gather index from a channel-major grid ``(C, length)`` (flattened) to spectral order ``rank * C + c``.

    Entry ``rank * C + c`` reads grid cell ``c * length + perm[rank]``; one 2-D ``index_select``
    then does the reordering and the channel interleave at once (3-D ``index_select`` is very slow).
    """
    p = torch.as_tensor(np.asarray(perm, dtype=np.int64))
    return (p[:, None] + length * torch.arange(channels)[None, :]).reshape(-1)


def channel_major_index(inv_perm: np.ndarray, channels: int) -> torch.Tensor:
    """Inverse of :func:`rank_major_index`: grid cell ``c * length + f`` reads spectral ``inv_perm[f] * C + c``."""
    q = torch.as_tensor(np.asarray(inv_perm, dtype=np.int64))
    return (q[None, :] * channels + torch.arange(channels)[:, None]).reshape(-1)


class SVDOperator(torch.nn.Module):
    r"""Linear operator :math:`H = U \Sigma V^\top` (:math:`m \times n`, :math:`n = CHW`) given by its SVD.

    Subclasses implement the four orthogonal maps and call :meth:`_set_singulars` once:

    * ``Vt(x)``: image ``(B, C, H, W)`` -> spectral ``(B, n)`` (``Vᵀ x``),
    * ``V(z)``: spectral ``(B, n)`` -> image ``(B, C, H, W)`` (``V z``),
    * ``Ut(y)``: measurement ``(B, *measurement_shape)`` -> ``(B, m)`` (``Uᵀ y``),
    * ``U(w)``: ``(B, m)`` -> measurement ``(B, *measurement_shape)`` (``U w``),

    with ``m = singulars().numel()``: the first ``m`` spectral entries are the measured ones,
    scaled by ``singulars()``; the remaining ``n - m`` span the null space of ``H``.
    ``U`` is ``m x m`` orthogonal, except for :class:`~operators.DenseSVD` of a tall matrix.

    The base class derives ``H(x) = U(s ⊙ Vᵀx[:m])``, ``Ht(y) = V([s ⊙ Uᵀy, 0])`` and the
    pseudo-inverse ``H_pinv(y) = V([s⁺ ⊙ Uᵀy, 0])`` without ever forming a matrix (after checking
    the input shape). A subclass may override ``_H``/``_Ht``/``_H_pinv`` with a cheaper closed form of
    the same (truncated) product, e.g. ``avg_pool2d``; ``tests/test_operators.py`` checks every
    registered operator against the SVD form.

    Zero tolerance: a singular value ``s_k <= zero_tol * max(s)`` is stored as an exact ``0``
    (the operator *is* the truncated ``U diag(s) Vᵀ``), and ``s⁺_k = 1/s_k`` for ``s_k > 0``, ``0``
    otherwise, so ``H_pinv`` never produces inf/NaN.

    Buffers are built in float64 and follow ``.to(device/dtype)``. Every method runs on the
    device and floating dtype of its input: a buffer on another device/dtype is converted once
    and cached (the cache is dropped on ``.to()``), never re-allocated per call.
    """

    #: What ``y`` looks like, for the CLI: ``"image"`` (y is an image of ``measurement_shape``),
    #: ``"full_image"`` (y = H(full-size damaged image), e.g. inpainting) or ``"vector"``.
    observation_kind: str = "image"

    def __init__(
        self,
        image_shape: Sequence[int],
        measurement_shape: Sequence[int],
        zero_tol: float = DEFAULT_ZERO_TOL,
    ) -> None:
        super().__init__()
        self.image_shape: tuple[int, int, int] = check_image_shape(image_shape)
        self.measurement_shape: tuple[int, ...] = tuple(int(d) for d in measurement_shape)
        if not zero_tol >= 0:
            raise OperatorError(f"zero_tol must be >= 0, got {zero_tol!r}")
        self.zero_tol = float(zero_tol)
        self._cache: dict[tuple, torch.Tensor] = {}

    # ---- subclass API -------------------------------------------------------------------------
    def V(self, z: torch.Tensor) -> torch.Tensor:
        """Spectral ``(B, n)`` -> image ``(B, C, H, W)``."""
        raise NotImplementedError

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        """Image ``(B, C, H, W)`` -> spectral ``(B, n)``."""
        raise NotImplementedError

    def U(self, w: torch.Tensor) -> torch.Tensor:
        """``(B, m)`` -> measurement ``(B, *measurement_shape)``."""
        raise NotImplementedError

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        """Measurement ``(B, *measurement_shape)`` -> ``(B, m)``."""
        raise NotImplementedError

    def singulars(self) -> torch.Tensor:
        """The ``m`` singular values (exact zeros at or below the tolerance), as stored."""
        return self._singulars

    def _set_singulars(self, s: torch.Tensor) -> None:
        """Store ``s`` (float64 preferred), zeroing values ``<= zero_tol * max(s)``, and ``s⁺``."""
        s = s.detach().to(torch.float64).flatten().clone()
        if s.numel() and bool((s < -1e-12 * s.abs().max()).any()):
            raise ValueError("singular values must be non-negative")
        cutoff = self.zero_tol * float(s.max()) if s.numel() else 0.0
        s[s <= cutoff] = 0.0
        inv = torch.where(s > 0, 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        self.register_buffer("_singulars", s)
        self.register_buffer("_inv_singulars", inv)

    # ---- shapes -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of unknowns ``C*H*W``."""
        c, h, w = self.image_shape
        return c * h * w

    @property
    def m(self) -> int:
        """Number of measured spectral entries ``singulars().numel()``."""
        return self._singulars.numel()

    # ---- derived maps -------------------------------------------------------------------------
    def H(self, x: torch.Tensor) -> torch.Tensor:
        """``y = H x = U diag(s) (Vᵀ x)[:m]``; ``x`` is ``(B, C, H, W)``."""
        self._check(x, self.image_shape, "image")
        return self._H(x)

    def Ht(self, y: torch.Tensor) -> torch.Tensor:
        """``Hᵀ y = V [diag(s) Uᵀ y; 0]``; ``y`` is ``(B, *measurement_shape)``."""
        self._check(y, self.measurement_shape, "measurement")
        return self._Ht(y)

    def H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Pseudo-inverse ``H⁺ y = V [diag(s⁺) Uᵀ y; 0]`` (zero singular values give zero)."""
        self._check(y, self.measurement_shape, "measurement")
        return self._H_pinv(y)

    # The SVD forms; a subclass may override them with a cheaper closed form of the same product.
    def _H(self, x: torch.Tensor) -> torch.Tensor:
        z = self.Vt(x)
        return self.U(z[:, : self.m] * self._buf("_singulars", z))

    def _Ht(self, y: torch.Tensor) -> torch.Tensor:
        w = self.Ut(y)
        return self.V(self._pad(w * self._buf("_singulars", w)))

    def _H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        w = self.Ut(y)
        return self.V(self._pad(w * self._buf("_inv_singulars", w)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`H`."""
        return self.H(x)

    # ---- helpers for subclasses ---------------------------------------------------------------
    def _pad(self, w: torch.Tensor) -> torch.Tensor:
        """Append ``n - m`` zeros: ``(B, m)`` -> ``(B, n)``."""
        extra = self.n - w.shape[1]
        return torch.cat([w, w.new_zeros(w.shape[0], extra)], dim=1) if extra else w

    def _buf(self, name: str, ref: torch.Tensor) -> torch.Tensor:
        """Buffer ``name`` on ``ref``'s device (and floating dtype, if both are floating), converted once."""
        t = getattr(self, name)
        dtype = ref.dtype if t.is_floating_point() and ref.is_floating_point() else t.dtype
        if t.device == ref.device and t.dtype == dtype:
            return t
        key = (name, ref.device, dtype)
        cached = self._cache.get(key)
        if cached is None:
            cached = t.to(device=ref.device, dtype=dtype)
            self._cache[key] = cached
        return cached

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - torch's signature
        self._cache = {}
        return super()._apply(fn, recurse)

    def _check(self, t: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if tuple(t.shape[1:]) != tuple(shape):
            raise OperatorError(
                f"{type(self).__name__} expects a {what} batch of shape (B, {', '.join(map(str, shape))}), "
                f"got {tuple(t.shape)}"
            )

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}, measurement_shape={self.measurement_shape}"

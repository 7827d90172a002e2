"""Check that an operator keeps the SVD protocol that DDRM relies on (for your own operators too).

DDRM never sees ``H`` itself: it works in the spectral coordinates given by ``V``, ``U`` and the
singular values, so an operator whose maps are not orthogonal, or whose ``H`` is not
``U diag(s) Vᵀ``, gives wrong restorations without any error. :func:`check_svd_protocol` tests
every identity the sampler uses, on random vectors and, for small images, on the whole basis.
"""

from __future__ import annotations

import torch

__all__ = ["check_svd_protocol"]


def check_svd_protocol(
    op,
    atol: float = 1e-9,
    rtol: float = 1e-9,
    *,
    dense_max_n: int = 1024,
    batch: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    r"""Check the SVD protocol of ``op``: :math:`H = U \Sigma V^\top` with orthogonal :math:`U, V`.

    On random inputs ``x`` (image), ``z`` (spectral), ``w`` (``m`` coordinates) and ``y``
    (measurement), in ``dtype``:

    * ``V`` is orthogonal: :math:`V^\top V z = z`, :math:`V V^\top x = x`,
      :math:`\langle Vz, x\rangle = \langle z, V^\top x\rangle`;
    * ``U`` has orthonormal columns: :math:`U^\top U w = w`, :math:`U U^\top y = y` on its range
      (``y = U w``), :math:`\langle Uw, y\rangle = \langle w, U^\top y\rangle`;
    * ``singulars()`` has ``m <= n`` entries, all ``>= 0``;
    * :math:`Hx = U(s \odot (V^\top x)_{:m})`, :math:`H^\top y = V[s \odot U^\top y; 0]`,
      :math:`H^+ y = V[s^+ \odot U^\top y; 0]` (the overridable maps agree with the SVD form);
    * adjointness :math:`\langle Hx, y\rangle = \langle x, H^\top y\rangle`;
    * :math:`H H^+ y = y` on the range (``y = H x``), and ``H_pinv`` is finite;
    * when ``n <= dense_max_n``: the matrix of ``H`` built from basis images equals
      ``U diag(s) Vᵀ`` applied to the same basis, ``V`` is orthogonal on the whole basis, and the
      singular values match ``torch.linalg.svdvals`` of that matrix (up to the operator's
      ``zero_tol * max(s)`` for the values it stores as exact zeros).

    An identity holds when ``max |got - want| <= atol + rtol * max |want|``. The default
    tolerances suit float64 operators (``op.double()``); a float32 operator needs about
    ``atol=rtol=1e-5``. ``op`` is not modified (inputs are made in ``dtype`` on its device).

    Parameters:
        op: an :class:`operators.SVDOperator` (or any object with the same maps).
        atol, rtol: absolute and relative tolerance of every identity.
        dense_max_n: build the dense matrix only up to this many unknowns ``C*H*W``.
        batch: batch size of the random inputs.
        seed: seed of the random inputs.
        dtype: floating dtype of the random inputs.

    Returns:
        The error of each identity, ``{name: max |got - want|}``.

    Raises:
        AssertionError: one line naming the first identity that fails and its error.

    Example:
        >>> import torch, operators
        >>> from operators.testing import check_svd_protocol
        >>> op = operators.DenseSVD(torch.randn(5, 12, dtype=torch.float64), (1, 3, 4))
        >>> errors = check_svd_protocol(op)
        >>> max(errors.values()) < 1e-9
        True
        >>> class Broken(operators.Identity):
        ...     def Vt(self, x):  # not the transpose of V
        ...         return 2 * super().Vt(x)
        >>> check_svd_protocol(Broken((1, 2, 2)))
        Traceback (most recent call last):
        ...
        AssertionError: Broken: Vt(V(z)) = z fails: max error 1.1e+00 > tolerance 2.1e-09
    """
    name = type(op).__name__
    errors: dict[str, float] = {}

    def close(identity: str, got: torch.Tensor, want: torch.Tensor, slack: float = 0.0) -> None:
        if tuple(got.shape) != tuple(want.shape):
            raise AssertionError(f"{name}: {identity} fails: shape {tuple(got.shape)} != {tuple(want.shape)}")
        err = float((got - want).abs().max()) if want.numel() else 0.0
        bound = atol + rtol * (float(want.abs().max()) if want.numel() else 0.0) + slack
        errors[identity] = err
        if not err <= bound:  # also catches NaN
            raise AssertionError(f"{name}: {identity} fails: max error {err:.1e} > tolerance {bound:.1e}")

    def holds(identity: str, condition: bool) -> None:
        if not condition:
            raise AssertionError(f"{name}: {identity} fails")

    s = op.singulars()
    n, m = op.n, s.numel()
    holds(f"singulars() has m <= n = {n} entries (shape {tuple(s.shape)})", s.dim() == 1 and m <= n)
    holds("singulars() >= 0", bool((s >= 0).all()))
    device = s.device
    s = s.to(dtype)
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(batch, *shape, generator=gen, dtype=dtype).to(device)

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.reshape(batch, -1) * b.reshape(batch, -1)).sum(1)

    x, z, w, y = randn(*op.image_shape), randn(n), randn(m), randn(*op.measurement_shape)
    close("Vt(V(z)) = z", op.Vt(op.V(z)), z)
    close("V(Vt(x)) = x", op.V(op.Vt(x)), x)
    close("<V z, x> = <z, Vt x>", dot(op.V(z), x), dot(z, op.Vt(x)))
    close("Ut(U(w)) = w", op.Ut(op.U(w)), w)
    uw = op.U(w)
    close("U(Ut(y)) = y on the range of U", op.U(op.Ut(uw)), uw)
    close("<U w, y> = <w, Ut y>", dot(uw, y), dot(w, op.Ut(y)))

    pad = torch.zeros(batch, n - m, dtype=dtype, device=device)
    s_plus = torch.where(s > 0, 1 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
    hx = op.H(x)
    close("H(x) = U(s * Vt(x)[:m])", hx, op.U(s * op.Vt(x)[:, :m]))
    close("Ht(y) = V([s * Ut(y), 0])", op.Ht(y), op.V(torch.cat([s * op.Ut(y), pad], 1)))
    close("H_pinv(y) = V([s+ * Ut(y), 0])", op.H_pinv(y), op.V(torch.cat([s_plus * op.Ut(y), pad], 1)))
    close("<H x, y> = <x, Ht y>", dot(hx, y), dot(x, op.Ht(y)))
    close("H(H_pinv(y)) = y on the range of H", op.H(op.H_pinv(hx)), hx)
    holds("H_pinv(y) is finite", bool(torch.isfinite(op.H_pinv(y)).all()))

    if n <= dense_max_n:
        eye_n, eye_m = (torch.eye(k, dtype=dtype, device=device) for k in (n, m))
        basis = eye_n.reshape(n, *op.image_shape)
        dense = op.H(basis).reshape(n, -1).T  # column j = H e_j
        close("H = U diag(s) Vt on the basis", dense, op.U(s * op.Vt(basis)[:, :m]).reshape(n, -1).T)
        close("Vt(V(I)) = I", op.Vt(op.V(eye_n)), eye_n)
        close("Ut(U(I)) = I", op.Ut(op.U(eye_m)), eye_m)
        svdvals = torch.linalg.svdvals(dense)
        k = svdvals.numel()
        ours = torch.cat([s, s.new_zeros(max(0, k - m))]).sort(descending=True).values[:k]
        # Values at or below zero_tol * max(s) are stored as exact zeros: allow that much.
        cutoff = getattr(op, "zero_tol", 0.0) * float(s.max()) if m else 0.0
        close("singulars() = svdvals(H)", ours, svdvals, slack=cutoff)
    return errors

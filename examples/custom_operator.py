"""Write your own degradation operator and get DDRM on it for free.

DDRM needs the SVD of ``H`` in implicit form: ``V``/``Vt`` (image <-> spectral vector), ``U``/``Ut``
(measurement <-> its coordinates) and the singular values. Three ways, from least to most work:

1. ``operators.DenseSVD(matrix, image_shape)``: any explicit matrix (small images only).
2. ``operators.SeparableSVD(image_shape, A_h, A_w)``: any ``y = A_h X A_wᵀ`` per channel, given the
   two 1-D matrices (here a horizontal motion blur); exact SVD, memory ``O(H² + W²)``.
3. Subclass ``operators.SVDOperator`` (here: drop every other column) and write the four maps.

Then restore with the sampler exactly as for a built-in operator::

    from ddrm_kit import ddrm, load_prior
    x_hat = ddrm(load_prior("builtin"), op, y, sigma_y=0.02)

Check any operator with ``operators.testing.check_svd_protocol(op)`` before restoring with it: it
tests every identity DDRM relies on and names the one that fails. Run
``python examples/custom_operator.py`` to check the three operators here, against direct computations too.
"""

from __future__ import annotations

import numpy as np
import torch

import operators
from operators.blur import conv_matrix
from operators.testing import check_svd_protocol


class DropOddColumns(operators.SVDOperator):
    """Keep the even columns: ``y = x[..., ::2]``; ``Vᵀ`` lists the kept pixels first, ``U = I``, ``s = 1``."""

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        c, h, w = image_shape
        super().__init__(image_shape, (c, h, (w + 1) // 2))
        keep = torch.zeros(c, h, w, dtype=torch.bool)
        keep[..., ::2] = True
        perm = torch.cat([keep.flatten().nonzero().flatten(), (~keep).flatten().nonzero().flatten()])
        self.register_buffer("perm", perm)  # buffers follow .to(device)
        self.register_buffer("inv_perm", torch.argsort(perm))
        self._set_singulars(torch.ones(c * h * ((w + 1) // 2)))

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)[:, self.perm.to(x.device)]

    def V(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, self.inv_perm.to(z.device)].reshape(z.shape[0], *self.image_shape)

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(y.shape[0], -1)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w.reshape(w.shape[0], *self.measurement_shape)


def horizontal_motion_blur(image_shape: tuple[int, int, int], length: int = 5) -> operators.SeparableSVD:
    """A ``length``-pixel horizontal box blur (zero padding): ``A_h = I``, ``A_w`` = the 1-D convolution."""
    _, h, w = image_shape
    return operators.SeparableSVD(image_shape, np.eye(h), conv_matrix(np.full(length, 1.0 / length), w))


def dense_motion_blur(image_shape: tuple[int, int, int], length: int = 5) -> operators.DenseSVD:
    """The same blur as an explicit ``n x n`` matrix (``I_C ⊗ I_H ⊗ A_w``)."""
    c, h, w = image_shape
    a_w = conv_matrix(np.full(length, 1.0 / length), w)
    return operators.DenseSVD(np.kron(np.eye(c * h), a_w), image_shape)


def main() -> dict[str, float]:
    """Build the three operators on a small image; return each one's max error against a direct computation
    and over the SVD protocol's identities."""
    shape = (3, 12, 17)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kernel = torch.full((3, 1, 1, 5), 0.2, dtype=torch.float64)
    blurred = torch.nn.functional.conv2d(x, kernel, padding=(0, 2), groups=3)
    errors = {}
    for name, op, expected in [
        ("DropOddColumns", DropOddColumns(shape).double(), x[..., ::2]),
        ("SeparableSVD motion blur", horizontal_motion_blur(shape), blurred),
        ("DenseSVD motion blur", dense_motion_blur(shape), blurred.reshape(2, -1)),
    ]:
        errors[name] = float((op.H(x) - expected).abs().max())
        # DDRM's ingredients: orthogonal U and V, H = U diag(s) Vᵀ, the pseudo-inverse, true singular values
        errors[name + " SVD protocol"] = max(check_svd_protocol(op).values())
    for key, value in errors.items():
        print(f"{key:45s} max error {value:.2e}")
    return errors


if __name__ == "__main__":
    main()

"""Compressed sensing with a permuted, subsampled Walsh-Hadamard transform (``cs2``, ``cs4``, ...)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .base import OperatorError, SVDOperator, inverse_permutation

_MAX_FACTOR_BITS = 5  # the transform is a product of Hadamard matrices of size <= 32 (Kronecker factors)


def sylvester(d: int) -> np.ndarray:
    """Unnormalised Sylvester Hadamard matrix of size ``d = 2^p`` (same as ``scipy.linalg.hadamard``)."""
    h = np.ones((1, 1))
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h


class WalshHadamardCS(SVDOperator):
    r"""Compressed sensing :math:`y = S\,(I_C \otimes W_L)\,P\,x`, keeping ``1/k`` of the rows.

    ``x`` is flattened (``n = C*H*W``), permuted by a seeded random permutation :math:`P` (which
    mixes channels), split into ``C`` blocks of ``L = H*W`` entries and each block is transformed by
    the orthonormal Sylvester–Walsh–Hadamard matrix :math:`W_L = H_L/\sqrt L`;
    :math:`S` keeps the first ``L/k`` coefficients of every block (``m = n/k``). So
    :math:`V^\top = (I_C\otimes W_L)P` (measured coefficients first), ``U = I``, all ``m`` singular values are 1.
    :math:`W_L` is applied as a Kronecker product of small Hadamard factors: :math:`O(n \log n)`
    time, no ``n x n`` matrix. Needs ``H*W`` a power of two (so ``n`` is one for ``C = 1``) and
    ``k`` a power of two ``<= H*W``. ``y`` is a vector ``(m,)``.
    """

    observation_kind = "vector"

    def __init__(self, image_shape: Sequence[int], ratio: int, seed: int = 0) -> None:
        c, h, w = image_shape
        size, k = h * w, int(ratio)
        if size & (size - 1):
            raise OperatorError(
                f"cs{k} needs H*W to be a power of two (e.g. 256x256), got {h}x{w}; crop or pad the image"
            )
        if k < 1 or k & (k - 1) or k > size:
            raise OperatorError(f"cs<k> needs k a power of two <= H*W = {size}, got {k}")
        super().__init__(image_shape, (c * size // k,))
        self.ratio, self.block, self.kept = k, size, size // k
        bits = size.bit_length() - 1
        chunks = -(-bits // _MAX_FACTOR_BITS) if bits else 0
        self._factors = [1 << (bits // chunks + (i < bits % chunks)) for i in range(chunks)]
        for d in sorted(set(self._factors)):
            self.register_buffer(f"_had{d}", torch.from_numpy(sylvester(d) / np.sqrt(d)))
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(int(seed)))
        self.register_buffer("_perm", perm)
        self.register_buffer("_inv_perm", inverse_permutation(perm))
        self._set_singulars(torch.ones(c * self.kept, dtype=torch.float64))

    def fwht(self, t: torch.Tensor) -> torch.Tensor:
        """Orthonormal Walsh–Hadamard transform (Sylvester order) of the rows of ``t`` ``(R, L)``."""
        rows, before = t.shape[0], 1
        for d in self._factors:  # W_L = W_d1 ⊗ W_d2 ⊗ ...: apply W_d along digit i in place of the index
            after = self.block // (before * d)
            had = self._buf(f"_had{d}", t)  # symmetric
            if after == 1:
                t = torch.matmul(t.reshape(-1, d), had)
            else:
                t = torch.matmul(had, t.reshape(rows * before, d, after))
            before *= d
        return t.reshape(rows, self.block)

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], self.image_shape[0]
        t = self.fwht(x.reshape(b, -1).index_select(1, self._buf("_perm", x)).reshape(b * c, -1))
        t = t.reshape(b, c, -1)
        return torch.cat([t[:, :, : self.kept].reshape(b, -1), t[:, :, self.kept :].reshape(b, -1)], dim=1)

    def V(self, z: torch.Tensor) -> torch.Tensor:
        b, c = z.shape[0], self.image_shape[0]
        m = c * self.kept
        t = torch.cat([z[:, :m].reshape(b, c, -1), z[:, m:].reshape(b, c, -1)], dim=2)
        t = self.fwht(t.reshape(b * c, -1)).reshape(b, -1)
        return t.index_select(1, self._buf("_inv_perm", z)).reshape(b, *self.image_shape)

    def U(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        return y


def _cs(image_shape: tuple[int, int, int], k: str, seed: int = 0) -> WalshHadamardCS:
    return WalshHadamardCS(image_shape, int(k), seed)

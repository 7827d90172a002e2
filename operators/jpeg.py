"""A libjpeg-faithful JPEG codec in torch, as the non-linear operator of DDRM-JPEG.

``encode(x) = round(DCT8x8(S(C(x)) - 128) / Q)`` and ``decode(c) = C⁻¹(U(clamp(round(IDCT8x8(c Q) + 128))))``,
with ``C`` the JFIF RGB -> YCbCr conversion (full range, 128 chroma offset), ``S`` libjpeg's chroma
box downsampling, ``U`` libjpeg's "fancy" triangular upsampling, ``Q`` the quantisation tables and
the orthonormal 8x8 DCT.  Every step reproduces libjpeg's fixed-point arithmetic (the kernels live in
:mod:`operators.jpeg_kernels`), including its edge padding; with ``dct="islow"`` (default) the DCT
is libjpeg's accurate integer transform too, so ``J`` equals Pillow's save + open bit for bit.
``dct="float"`` uses the orthonormal DCT as a matmul instead (rare +-1 rounding differences, ~50 dB
from libjpeg). A file's own parameters are read by :mod:`operators.jpeg_file`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch

from .codec import CodecOperator
from .errors import OperatorError, check_image_shape
from .jpeg_file import read_jpeg_params
from .jpeg_kernels import (
    block_dct,
    block_idct,
    dct_matrix,
    downsample,
    extend_edges,
    islow_fdct,
    islow_idct,
    pad_dummy_blocks,
    quality_tables,
    rgb_to_ycbcr,
    round_half_away,
    upsample,
    ycbcr_to_rgb,
)

__all__ = [
    "JPEG",
    "JPEGCoefficients",
    "quality_tables",
    "islow_fdct",
    "islow_idct",
    "dct_matrix",
    "block_dct",
    "block_idct",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]

# Sampling factors (h, v) of Y, Cb, Cr for each supported chroma subsampling.
_SAMPLING = {
    "4:4:4": ((1, 1), (1, 1), (1, 1)),
    "4:2:2": ((2, 1), (1, 1), (1, 1)),
    "4:2:0": ((2, 2), (1, 1), (1, 1)),
}


@dataclass
class JPEGCoefficients:
    """Quantised DCT coefficients of a batch, as a JPEG file holds them.

    ``components[c]`` is an int32 tensor ``(B, rows, cols, 8, 8)`` of component c (Y, Cb, Cr or grey),
    its block grid padded to whole MCUs; ``image_size`` is the (H, W) the decoder crops back to;
    ``dtype`` the floating dtype the decoder returns.
    """

    components: tuple[torch.Tensor, ...]
    image_size: tuple[int, int]
    dtype: torch.dtype = torch.float32


class JPEG(CodecOperator):
    """Baseline JPEG as libjpeg (and so Pillow) encodes and decodes it.

    ``encode(x)``: x in [-1, 1] ``(B, C, H, W)`` (C = 1 grey or 3 RGB) -> ``255 (x + 1) / 2`` rounded to
    8-bit samples -> YCbCr -> chroma ``S`` -> blocks ``B`` -> ``round(DCT(B - 128) / Q)``.
    ``decode(c)``: ``IDCT(c Q) + 128`` rounded and clamped to [0, 255] -> fancy upsampling -> RGB
    -> ``2 v / 255 - 1``.  Coefficients are padded to whole MCUs exactly as libjpeg pads them.
    ``dct="islow"`` uses libjpeg's integer DCT (bit-exact with Pillow), ``"float"`` the orthonormal one.
    ``J = decode∘encode`` is a projection up to libjpeg's own re-compression drift: like re-saving a
    decoded JPEG with libjpeg, ``J(J(x))`` differs from ``J(x)`` in a small fraction of samples.

    Parameters:
        quality: libjpeg quality factor 1..100 (its scaled Annex K tables); ignored when ``tables`` is given.
        subsampling: chroma subsampling, ``"4:2:0"``, ``"4:2:2"`` or ``"4:4:4"`` (grey images have none).
        image_shape: ``(C, H, W)`` with C = 1 or 3, checked on every input; ``None`` accepts any size
            (:func:`ddrm_kit.ddrm` then takes the size from ``y``).
        tables: integer quantisation tables ``(2, 8, 8)`` (luma, chroma) or ``(3, 8, 8)``, natural order.
        dct: ``"islow"`` (libjpeg's integer DCT) or ``"float"`` (orthonormal matmul).

    Example:
        >>> import torch
        >>> op = JPEG(quality=10)
        >>> x = torch.rand(1, 3, 16, 16) * 2 - 1
        >>> y = op.J(x)  # what Pillow's save(quality=10) + open gives, in [-1, 1]
        >>> y.shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        quality: int | None = 75,
        subsampling: str = "4:2:0",
        image_shape: Sequence[int] | None = None,
        tables: torch.Tensor | Sequence | None = None,
        dct: str = "islow",
    ) -> None:
        super().__init__()
        if dct not in ("float", "islow"):
            raise OperatorError(f"dct must be 'float' (orthonormal matmul) or 'islow' (libjpeg's integer DCT), got {dct!r}")
        self.dct = dct
        if subsampling not in _SAMPLING:
            raise OperatorError(f"subsampling must be one of {', '.join(_SAMPLING)}, got {subsampling!r}")
        if tables is None:
            if quality is None:
                raise OperatorError("give JPEG either a quality (1..100) or quantisation tables")
            component_tables = quality_tables(quality)[[0, 1, 1]]
        else:
            t = torch.as_tensor(tables)
            if t.dtype.is_floating_point and not torch.equal(t, t.round()):
                raise OperatorError("JPEG quantisation tables must hold integers")
            t = t.to(torch.int32)
            if t.dim() != 3 or t.shape[0] not in (1, 2, 3) or t.shape[1:] != (8, 8):
                raise OperatorError(
                    f"JPEG tables must have shape (2, 8, 8) (luma, chroma) or (3, 8, 8), got {tuple(t.shape)}"
                )
            if int(t.min()) < 1 or int(t.max()) > 65535:
                raise OperatorError("JPEG quantisation table entries must be in 1..65535")
            component_tables = t[[0, min(1, len(t) - 1), len(t) - 1]]
            quality = None
        self.quality = quality
        self.subsampling = subsampling
        if image_shape is not None:
            image_shape = check_image_shape(image_shape)
            if image_shape[0] not in (1, 3):
                raise OperatorError(f"JPEG takes grey (C = 1) or RGB (C = 3) images, got image_shape {image_shape}")
        self.image_shape = image_shape  # type: ignore[assignment]
        # Tables of the Y, Cb and Cr components (grey uses the first), natural row-major order.
        self.register_buffer("component_tables", component_tables.contiguous())

    @property
    def quant_tables(self) -> torch.Tensor:
        """``(2, 8, 8)`` int32 quantisation tables, luma then chroma, natural row-major order."""
        return self.component_tables[:2]

    def extra_repr(self) -> str:
        q = f"quality={self.quality}" if self.quality is not None else "tables=custom"
        return f"{q}, subsampling={self.subsampling!r}, image_shape={self.image_shape}"

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "JPEG":
        """The operator that produced a JPEG file (baseline or progressive): its own tables, subsampling and size.

        Its ``family`` is the registry's ``jpeg<QF>`` family, ``"jpeg"``, so a prior's JPEG settings apply to it.
        """
        op = cls(**read_jpeg_params(path))
        op.family = "jpeg"
        return op

    # -- codec -------------------------------------------------------------------------------
    def _factors(self, channels: int) -> tuple[tuple[int, int], ...]:
        return ((1, 1),) if channels == 1 else _SAMPLING[self.subsampling]

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise OperatorError(f"JPEG expects images (B, C, H, W) with C = 1 or 3, got shape {tuple(x.shape)}")
        if self.image_shape is not None and tuple(x.shape[1:]) != self.image_shape:
            raise OperatorError(f"this JPEG operator is for images {self.image_shape}, got {tuple(x.shape[1:])}")

    def encode(self, x: torch.Tensor) -> JPEGCoefficients:
        """Quantised DCT coefficients of ``x`` in [-1, 1], per component, padded to whole MCUs."""
        self._check(x)
        _, channels, height, width = x.shape
        fdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        samples = torch.floor((x.to(fdtype).clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.int32)
        planes = rgb_to_ycbcr(samples) if channels == 3 else samples
        factors = self._factors(channels)
        hmax = max(h for h, _ in factors)
        vmax = max(v for _, v in factors)
        mcu_cols = -(-width // (8 * hmax))
        mcu_rows = -(-height // (8 * vmax))
        tables = self.component_tables.to(x.device)
        comps = []
        for c, (h, v) in enumerate(factors):
            fh, fv = hmax // h, vmax // v
            cols_b = -(-width * h // (8 * hmax))  # libjpeg's width_in_blocks
            rows_b = -(-height * v // (8 * vmax))
            # jcsample.c widens each row to whole blocks of the downsampled component before
            # averaging; jcprepct.c pads rows only to the sampling group, then repeats the last
            # downsampled row down to whole blocks.
            plane = extend_edges(planes[:, c], -(-height // vmax) * vmax, cols_b * 8 * fh)
            plane = extend_edges(downsample(plane, fh, fv), rows_b * 8, cols_b * 8)
            blocks = plane.reshape(-1, rows_b, 8, cols_b, 8).transpose(2, 3) - 128
            if self.dct == "islow":
                # jcdctmgr.c: divide by 8 Q (islow output is scaled by 8), rounding half away from zero.
                w, div = islow_fdct(blocks), tables[min(c, 2)].to(torch.int64) * 8
                coef = (torch.sign(w) * ((w.abs() + (div >> 1)) // div)).to(torch.int32)
            else:
                q = tables[min(c, 2)].to(fdtype)
                coef = round_half_away(block_dct(blocks.to(fdtype)) / q).to(torch.int32)
            comps.append(pad_dummy_blocks(coef, mcu_rows * v, mcu_cols * h, h))
        return JPEGCoefficients(tuple(comps), (height, width), x.dtype if x.dtype.is_floating_point else torch.float32)

    def decode(self, coeffs: JPEGCoefficients) -> torch.Tensor:
        """Image in [-1, 1] ``(B, C, H, W)`` that libjpeg decodes from ``coeffs``."""
        height, width = coeffs.image_size
        channels = len(coeffs.components)
        if channels not in (1, 3):
            raise OperatorError(f"JPEG coefficients must have 1 or 3 components, got {channels}")
        factors = self._factors(channels)
        hmax = max(h for h, _ in factors)
        vmax = max(v for _, v in factors)
        fdtype = torch.float64 if coeffs.dtype == torch.float64 else torch.float32
        planes = []
        for c, ((h, v), coef) in enumerate(zip(factors, coeffs.components)):
            q = self.component_tables[min(c, 2)].to(coef.device)
            if self.dct == "islow":
                pix = (islow_idct(coef.to(torch.int64) * q) + 128).clamp(0, 255).to(torch.int32)
            else:
                spatial = block_idct(coef.to(fdtype) * q.to(fdtype))
                pix = torch.floor(spatial + 128.5).clamp(0, 255).to(torch.int32)
            bsz, rows_b, cols_b = pix.shape[:3]
            plane = pix.transpose(2, 3).reshape(bsz, rows_b * 8, cols_b * 8)
            # The decoder upsamples only the real samples (downsampled_width/height), edges replicated.
            plane = plane[:, : -(-height * v // vmax), : -(-width * h // hmax)]
            planes.append(upsample(plane, hmax // h, vmax // v)[:, :height, :width])
        samples = torch.stack(planes, dim=1)
        if channels == 3:
            samples = ycbcr_to_rgb(samples)
        return (samples.to(fdtype) / 127.5 - 1).to(coeffs.dtype)


def _jpeg(image_shape: tuple[int, int, int], qf: str, subsampling: str = "4:2:0", dct: str = "islow") -> JPEG:
    return JPEG(quality=int(qf), image_shape=image_shape, subsampling=subsampling, dct=dct)

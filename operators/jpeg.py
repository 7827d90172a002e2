"""A libjpeg-faithful JPEG codec in torch, as the non-linear operator of DDRM-JPEG.

``encode(x) = round(DCT8x8(S(C(x)) - 128) / Q)`` and ``decode(c) = C⁻¹(U(clamp(round(IDCT8x8(c Q) + 128))))``,
with ``C`` the JFIF RGB -> YCbCr conversion (full range, 128 chroma offset), ``S`` libjpeg's chroma
box downsampling, ``U`` libjpeg's "fancy" triangular upsampling, ``Q`` the quantisation tables and
the orthonormal 8x8 DCT.  Every step reproduces libjpeg's fixed-point arithmetic (jccolor.c,
jcsample.c, jcprepct.c, jccoefct.c, jcdctmgr.c, jdsample.c, jdcolor.c), including its edge padding;
with ``dct="islow"`` (default) the DCT is libjpeg's accurate integer transform too, so ``J`` equals
Pillow's save + open bit for bit.  ``dct="float"`` uses the orthonormal DCT as a matmul instead
(rare +-1 rounding differences, ~50 dB from libjpeg).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch

from .base import OperatorError, check_image_shape
from .codec import CodecOperator

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

# ITU-T T.81 Annex K tables (libjpeg's std_luminance/chrominance_quant_tbl), natural row-major order.
_STD_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_STD_CHROMA = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)

# Sampling factors (h, v) of Y, Cb, Cr for each supported chroma subsampling.
_SAMPLING = {
    "4:4:4": ((1, 1), (1, 1), (1, 1)),
    "4:2:2": ((2, 1), (1, 1), (1, 1)),
    "4:2:0": ((2, 2), (1, 1), (1, 1)),
}
# Pillow's get_sampling() codes.
_PIL_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}

# libjpeg's fixed-point colour conversion (jccolor.c / jdcolor.c): SCALEBITS = 16.
_SCALEBITS = 16
_ONE_HALF = 1 << (_SCALEBITS - 1)
_CBCR_OFFSET = 128 << _SCALEBITS


def _fix(x: float) -> int:
    return int(x * (1 << _SCALEBITS) + 0.5)


def quality_tables(quality: int) -> torch.Tensor:
    """libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` tables, ``(2, 8, 8)`` int32.

    ``s = 5000 / q`` for ``q < 50`` else ``200 - 2 q``; ``Q = clamp((base * s + 50) // 100, 1, 255)``.
    """
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise OperatorError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    base = torch.tensor([_STD_LUMA, _STD_CHROMA], dtype=torch.int64)
    return ((base * scale + 50) // 100).clamp(1, 255).to(torch.int32)


def dct_matrix(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D[k, n] = c_k cos(pi (2n + 1) k / 16)``, ``c_0 = sqrt(1/8)``, else ``1/2``."""
    return (_scaled_dct_matrix(torch.float64) / math.sqrt(8)).to(dtype=dtype, device=device)


def _scaled_dct_matrix(dtype: torch.dtype, device: torch.device | str | None = None) -> torch.Tensor:
    # sqrt(8) D: rows 0 and 4 are exactly +-1, so the DCT coefficients (0,0), (0,4), (4,0), (4,4) of
    # integer blocks are computed exactly and their rounding ties (flat blocks) break as libjpeg's do.
    k = torch.arange(8, dtype=torch.float64).unsqueeze(1)
    n = torch.arange(8, dtype=torch.float64).unsqueeze(0)
    d = math.sqrt(2) * torch.cos(math.pi * (2 * n + 1) * k / 16)
    d[0] = 1
    d[4] = d[4].round()
    return d.to(dtype=dtype, device=device)


def block_dct(blocks: torch.Tensor) -> torch.Tensor:
    """2-D orthonormal DCT of the trailing 8x8 axes: ``D B Dᵀ`` (one batched matmul pair)."""
    d = _scaled_dct_matrix(blocks.dtype, blocks.device)
    # (X Dᵀ)ᵀ Dᵀ = (D X Dᵀ)ᵀ: a 2-D right operand lets torch fold all blocks into one GEMM.
    return ((blocks @ d.T).transpose(-1, -2) @ d.T).transpose(-1, -2) / 8


def block_idct(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`block_dct`: ``Dᵀ C D``."""
    d = _scaled_dct_matrix(coeffs.dtype, coeffs.device)
    return ((coeffs @ d).transpose(-1, -2) @ d).transpose(-1, -2) / 8


# libjpeg's accurate integer DCT (jfdctint.c / jidctint.c, Loeffler-Ligtenberg-Moschytz with
# 13-bit constants): CONST_BITS = 13, PASS1_BITS = 2.
_CB, _P1 = 13, 2
_F0298, _F0390, _F0541, _F0765 = 2446, 3196, 4433, 6270
_F0899, _F1175, _F1501, _F1847 = 7373, 9633, 12299, 15137
_F1961, _F2053, _F2562, _F3072 = 16069, 16819, 20995, 25172


def _descale(x: torch.Tensor, n: int) -> torch.Tensor:
    return (x + (1 << (n - 1))) >> n


def _islow_odd(t0, t1, t2, t3):
    # Shared odd part of the LLM butterfly on the four odd inputs; returns their rotated outputs.
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _F1175
    z3 = z3 * -_F1961 + z5
    z4 = z4 * -_F0390 + z5
    z1 = z1 * -_F0899
    z2 = z2 * -_F2562
    return t0 * _F0298 + z1 + z3, t1 * _F2053 + z2 + z4, t2 * _F3072 + z2 + z3, t3 * _F1501 + z1 + z4


def _islow_fdct_1d(x: torch.Tensor, first: bool) -> torch.Tensor:
    d = x.unbind(-1)
    t0, t1, t2, t3 = d[0] + d[7], d[1] + d[6], d[2] + d[5], d[3] + d[4]
    t7, t6, t5, t4 = d[0] - d[7], d[1] - d[6], d[2] - d[5], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    shift = _CB - _P1 if first else _CB + _P1
    if first:
        o0, o4 = (t10 + t11) << _P1, (t10 - t11) << _P1
    else:
        o0, o4 = _descale(t10 + t11, _P1), _descale(t10 - t11, _P1)
    z1 = (t12 + t13) * _F0541
    o2 = _descale(z1 + t13 * _F0765, shift)
    o6 = _descale(z1 - t12 * _F1847, shift)
    o7, o5, o3, o1 = (_descale(v, shift) for v in _islow_odd(t4, t5, t6, t7))
    return torch.stack((o0, o1, o2, o3, o4, o5, o6, o7), dim=-1)


def _islow_idct_1d(x: torch.Tensor, first: bool) -> torch.Tensor:
    d = x.unbind(-1)
    z1 = (d[2] + d[6]) * _F0541
    t2 = z1 - d[6] * _F1847
    t3 = z1 + d[2] * _F0765
    t0 = (d[0] + d[4]) << _CB
    t1 = (d[0] - d[4]) << _CB
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _islow_odd(d[7], d[5], d[3], d[1])
    shift = _CB - _P1 if first else _CB + _P1 + 3
    out = (t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3)
    return torch.stack([_descale(v, shift) for v in out], dim=-1)


def islow_fdct(blocks: torch.Tensor) -> torch.Tensor:
    """libjpeg's jpeg_fdct_islow on integer blocks (..., 8, 8): ``8 D B Dᵀ`` in 13-bit fixed point."""
    x = _islow_fdct_1d(blocks.to(torch.int64), True)
    return _islow_fdct_1d(x.transpose(-1, -2), False).transpose(-1, -2)


def islow_idct(coeffs: torch.Tensor) -> torch.Tensor:
    """libjpeg's jpeg_idct_islow on dequantised integer blocks (..., 8, 8): rounded ``Dᵀ C D``."""
    x = _islow_idct_1d(coeffs.to(torch.int64).transpose(-1, -2), True).transpose(-1, -2)
    return _islow_idct_1d(x, False)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """JFIF RGB -> YCbCr on integer samples (..., 3, H, W), libjpeg's rgb_ycc_convert exactly.

    ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = -0.16874 R - 0.33126 G + 0.5 B + 128``,
    ``Cr = 0.5 R - 0.41869 G - 0.08131 B + 128``, in 16-bit fixed point with libjpeg's rounding.
    """
    r, g, b = (c.to(torch.int32) for c in rgb.unbind(-3))
    y = (_fix(0.299) * r + _fix(0.587) * g + _fix(0.114) * b + _ONE_HALF) >> _SCALEBITS
    # libjpeg folds "ONE_HALF - 1" into the chroma offset so that Cb, Cr never reach 256.
    off = _CBCR_OFFSET + _ONE_HALF - 1
    cb = (-_fix(0.16874) * r - _fix(0.33126) * g + _fix(0.5) * b + off) >> _SCALEBITS
    cr = (_fix(0.5) * r - _fix(0.41869) * g - _fix(0.08131) * b + off) >> _SCALEBITS
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """JFIF YCbCr -> RGB on integer samples (..., 3, H, W), libjpeg's ycc_rgb_convert exactly.

    ``R = Y + 1.402 (Cr - 128)``, ``G = Y - 0.34414 (Cb - 128) - 0.71414 (Cr - 128)``,
    ``B = Y + 1.772 (Cb - 128)``, each term rounded as libjpeg's tables do, clamped to [0, 255].
    """
    y, cb, cr = (c.to(torch.int32) for c in ycc.unbind(-3))
    cb = cb - 128
    cr = cr - 128
    r = y + ((_fix(1.40200) * cr + _ONE_HALF) >> _SCALEBITS)
    g = y + ((-_fix(0.34414) * cb - _fix(0.71414) * cr + _ONE_HALF) >> _SCALEBITS)
    b = y + ((_fix(1.77200) * cb + _ONE_HALF) >> _SCALEBITS)
    return torch.stack((r, g, b), dim=-3).clamp(0, 255)


def _extend(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Pad the last two axes to (rows, cols) by replicating the last row/column (libjpeg's edge expansion)."""
    h, w = x.shape[-2:]
    if rows > h:
        x = x.index_select(-2, torch.arange(rows, device=x.device).clamp_(max=h - 1))
    if cols > w:
        x = x.index_select(-1, torch.arange(cols, device=x.device).clamp_(max=w - 1))
    return x


def _downsample(x: torch.Tensor, fh: int, fv: int) -> torch.Tensor:
    """libjpeg's box downsampling of int samples (..., H, W) by (fh, fv), H and W multiples.

    h2v2: ``(a + b + c + d + bias) >> 2`` with bias 1, 2, 1, 2, ... along each row;
    h2v1: ``(a + b + bias) >> 1`` with bias 0, 1, 0, 1, ... (jcsample.c), so ties alternate direction.
    """
    if fh == 1 and fv == 1:
        return x
    *lead, h, w = x.shape
    s = x.reshape(*lead, h // fv, fv, w // fh, fh).sum(dim=(-3, -1))
    cols = torch.arange(w // fh, device=x.device) % 2
    if (fh, fv) == (2, 2):
        return (s + 1 + cols) >> 2
    if (fh, fv) == (2, 1):
        return (s + cols) >> 1
    raise OperatorError(f"unsupported chroma sampling ratio {fh}x{fv}")


def _fancy_h2(x: torch.Tensor, weight_sum: int) -> torch.Tensor:
    """Horizontal half of libjpeg's triangular upsampling of (..., H, W) to (..., H, 2W).

    ``out[2i] = (3 x[i] + x[i-1] + b0) >> s`` and ``out[2i+1] = (3 x[i] + x[i+1] + b1) >> s``, edges
    replicated; h2v1 uses (b0, b1, s) = (1, 2, 2) on samples, h2v2 (8, 7, 4) on its column sums.
    """
    left = torch.cat((x[..., :1], x[..., :-1]), dim=-1)
    right = torch.cat((x[..., 1:], x[..., -1:]), dim=-1)
    if weight_sum == 4:
        even, odd, shift = 3 * x + left + 1, 3 * x + right + 2, 2
    else:
        even, odd, shift = 3 * x + left + 8, 3 * x + right + 7, 4
    return torch.stack((even >> shift, odd >> shift), dim=-1).flatten(-2)


def _upsample(x: torch.Tensor, fh: int, fv: int) -> torch.Tensor:
    """libjpeg's default decoder upsampling (jdsample.c) of int samples (..., h, w) by (fh, fv).

    "Fancy" triangular interpolation: weights 3/4 (nearer) and 1/4 (further) sample, separably for
    h2v2 with the combined rounding of libjpeg; plain replication when w <= 2, as libjpeg does.
    """
    if fh == 1 and fv == 1:
        return x
    if x.shape[-1] <= 2:
        return x.repeat_interleave(fv, dim=-2).repeat_interleave(fh, dim=-1)
    if (fh, fv) == (2, 1):
        return _fancy_h2(x, 4)
    if (fh, fv) == (2, 2):
        up = torch.cat((x[..., :1, :], x[..., :-1, :]), dim=-2)
        down = torch.cat((x[..., 1:, :], x[..., -1:, :]), dim=-2)
        # Column sums 3 * nearer + further row, for the upper and lower output row of each input row.
        sums = torch.stack((3 * x + up, 3 * x + down), dim=-2).flatten(-3, -2)
        return _fancy_h2(sums, 16)
    raise OperatorError(f"unsupported chroma sampling ratio {fh}x{fv}")


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    # libjpeg's quantiser rounds |c| / q half away from zero.
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


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
        """The operator that produced a baseline JPEG file: its own tables, subsampling and size."""
        return cls(**_read_jpeg_params(path))

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
            plane = _extend(planes[:, c], -(-height // vmax) * vmax, cols_b * 8 * fh)
            plane = _extend(_downsample(plane, fh, fv), rows_b * 8, cols_b * 8)
            blocks = plane.reshape(-1, rows_b, 8, cols_b, 8).transpose(2, 3) - 128
            if self.dct == "islow":
                # jcdctmgr.c: divide by 8 Q (islow output is scaled by 8), rounding half away from zero.
                w, div = islow_fdct(blocks), tables[min(c, 2)].to(torch.int64) * 8
                coef = (torch.sign(w) * ((w.abs() + (div >> 1)) // div)).to(torch.int32)
            else:
                q = tables[min(c, 2)].to(fdtype)
                coef = _round_half_away(block_dct(blocks.to(fdtype)) / q).to(torch.int32)
            comps.append(_pad_dummy_blocks(coef, mcu_rows * v, mcu_cols * h, h))
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
            planes.append(_upsample(plane, hmax // h, vmax // v)[:, :height, :width])
        samples = torch.stack(planes, dim=1)
        if channels == 3:
            samples = ycbcr_to_rgb(samples)
        return (samples.to(fdtype) / 127.5 - 1).to(coeffs.dtype)


def _pad_dummy_blocks(coef: torch.Tensor, rows: int, cols: int, mcu_width: int) -> torch.Tensor:
    """Pad a block grid to whole MCUs with libjpeg's dummy blocks (jccoefct.c).

    Dummy blocks are zero but for their DC: at the right edge each copies the DC of the block on its
    left; a dummy block row copies, per MCU, the DC of the last block of the row above in that MCU.
    """
    bsz, rows_b, cols_b = coef.shape[:3]
    if rows == rows_b and cols == cols_b:
        return coef
    out = coef.new_zeros(bsz, rows, cols, 8, 8)
    out[:, :rows_b, :cols_b] = coef
    out[:, :rows_b, cols_b:, 0, 0] = coef[:, :, -1:, 0, 0]
    last_in_mcu = torch.arange(cols, device=coef.device) // mcu_width * mcu_width + mcu_width - 1
    for r in range(rows_b, rows):  # at most v - 1 <= 1 dummy rows
        out[:, r, :, 0, 0] = out[:, r - 1, last_in_mcu, 0, 0]
    return out


def _sof_marker(path: str | os.PathLike) -> int | None:
    """The frame (SOFn) marker of a JPEG file, or None if none is found before the scan data."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return None
        while True:
            byte = f.read(1)
            if not byte:
                return None
            if byte != b"\xff":
                continue
            marker = f.read(1)
            while marker == b"\xff":  # fill bytes
                marker = f.read(1)
            if not marker:
                return None
            m = marker[0]
            if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC):
                return 0xFF00 | m
            if m == 0xDA or m == 0xD9:
                return None
            if 0xD0 <= m <= 0xD7 or m == 0x01:
                continue
            length = f.read(2)
            if len(length) < 2:
                return None
            f.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)


def _read_jpeg_params(path: str | os.PathLike) -> dict:
    """Constructor arguments of :class:`JPEG` for a baseline JPEG file, read through Pillow."""
    from PIL import Image, JpegImagePlugin, UnidentifiedImageError

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"JPEG file not found: {name}")
    try:
        img = Image.open(name)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise OperatorError(f"{name}: not a readable JPEG file ({e}); give a baseline .jpg") from None
    with img:
        if img.format != "JPEG":
            raise OperatorError(f"{name}: is a {img.format} image, not a JPEG; use --op jpeg<QF> to simulate JPEG on it")
        marker = _sof_marker(name)
        if marker in (0xFFC2, 0xFFC6, 0xFFCA, 0xFFCE) or img.info.get("progressive"):
            raise OperatorError(f"{name}: progressive JPEG is not supported; convert it losslessly with `jpegtran -copy all {name} > baseline.jpg`")
        if marker is not None and marker >= 0xFFC9:
            raise OperatorError(f"{name}: arithmetic-coded JPEG is not supported; convert it with `jpegtran -copy all {name} > baseline.jpg`")
        if marker not in (0xFFC0, 0xFFC1):
            raise OperatorError(f"{name}: not a baseline/extended sequential DCT JPEG (lossless or hierarchical); re-save it as a baseline .jpg")
        if img.layers == 3 and img.info.get("adobe") is not None and img.info.get("adobe_transform") == 0:
            raise OperatorError(f"{name}: stores RGB without the YCbCr transform (Adobe), which is not supported; re-save it as a standard .jpg")
        if img.layers not in (1, 3):
            raise OperatorError(f"{name}: {img.mode} JPEG with {img.layers} components is not supported; use a grey or colour (YCbCr) .jpg")
        qt = img.quantization
        try:
            tables = [qt[layer[3]] for layer in img.layer]
        except (KeyError, IndexError):
            raise OperatorError(f"{name}: its quantisation tables cannot be read; re-save it as a baseline .jpg") from None
        if img.layers == 3:
            # Equal factors in every component (e.g. all 2x2) decode exactly as 4:4:4.
            same = len({layer[1:3] for layer in img.layer}) == 1
            sampling = "4:4:4" if same else _PIL_SAMPLING.get(JpegImagePlugin.get_sampling(img))
            if sampling is None:
                factors = ", ".join(f"{h}x{v}" for _, h, v, _ in img.layer)
                raise OperatorError(f"{name}: chroma sampling factors {factors} are not supported; use 4:4:4, 4:2:2 or 4:2:0")
        else:
            sampling = "4:4:4"
        width, height = img.size
        return {
            "quality": None,
            "subsampling": sampling,
            "image_shape": (img.layers, height, width),
            "tables": torch.tensor(tables, dtype=torch.int32).reshape(-1, 8, 8),
        }


def _jpeg(image_shape: tuple[int, int, int], qf: str, subsampling: str = "4:2:0", dct: str = "islow") -> JPEG:
    return JPEG(quality=int(qf), image_shape=image_shape, subsampling=subsampling, dct=dct)

"""libjpeg's arithmetic in torch: quantisation tables, the 8x8 DCTs, colour conversion and chroma resampling.

Every function reproduces the fixed-point code of libjpeg (jcparam.c, jfdctint.c, jidctint.c,
jccolor.c, jdcolor.c, jcsample.c, jdsample.c, jccoefct.c) on integer samples, including its rounding
and edge handling, so that :class:`operators.jpeg.JPEG` built on them matches Pillow bit for bit.
The orthonormal float DCT (:func:`block_dct`) is the exact transform those integer ones approximate.
"""

from __future__ import annotations

import math

import torch

from .errors import OperatorError

__all__ = [
    "quality_tables",
    "islow_fdct",
    "islow_idct",
    "dct_matrix",
    "block_dct",
    "block_idct",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "extend_edges",
    "downsample",
    "upsample",
    "round_half_away",
    "pad_dummy_blocks",
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


def extend_edges(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Pad the last two axes to (rows, cols) by replicating the last row/column (libjpeg's edge expansion)."""
    h, w = x.shape[-2:]
    if rows > h:
        x = x.index_select(-2, torch.arange(rows, device=x.device).clamp_(max=h - 1))
    if cols > w:
        x = x.index_select(-1, torch.arange(cols, device=x.device).clamp_(max=w - 1))
    return x


def downsample(x: torch.Tensor, fh: int, fv: int) -> torch.Tensor:
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


def upsample(x: torch.Tensor, fh: int, fv: int) -> torch.Tensor:
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


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, as libjpeg's quantiser rounds ``|c| / q``."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def pad_dummy_blocks(coef: torch.Tensor, rows: int, cols: int, mcu_width: int) -> torch.Tensor:
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

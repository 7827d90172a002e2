"""A JPEG file's codec parameters: its quantisation tables, chroma sampling and size.

:meth:`operators.jpeg.JPEG.from_file` builds the operator that produced a file from them. They are
read from the file's markers as libjpeg reads them: baseline, extended sequential and progressive
Huffman-coded 8-bit frames, each component quantised with the table that was in force at its first
scan. The entropy coding does not change the quantised coefficients, so a progressive file decodes
to the same pixels as a baseline file with the same tables. Arithmetic-coded, lossless,
hierarchical, 12-bit, RGB (no YCbCr transform) and CMYK files are refused with a one-line error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from .errors import OperatorError

__all__ = ["read_jpeg_params"]

# DCT frames of Huffman-coded JPEG, the ones the codec reproduces (SOF0, SOF1, SOF2).
_FRAMES = {0xC0: "baseline", 0xC1: "extended sequential", 0xC2: "progressive"}
# What the other frame markers are, for the error message (C4, C8 and CC are not frames).
_REFUSED = {
    0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical (lossless)",
    0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded (progressive)", 0xCB: "arithmetic-coded (lossless)",
    0xCD: "arithmetic-coded (hierarchical)", 0xCE: "arithmetic-coded (hierarchical)",
    0xCF: "arithmetic-coded (hierarchical, lossless)",
}
_DQT, _SOS, _EOI, _APP14 = 0xDB, 0xDA, 0xD9, 0xEE
# Markers that stand alone (no length): TEM, RST0-7, and the stuffed 0xFF00 of entropy-coded data.
_STANDALONE = {0x00, 0x01, *range(0xD0, 0xD8)}
# (Y, Cb, Cr) sampling factors -> subsampling name (equal factors everywhere are 4:4:4).
_SAMPLINGS = {((2, 1), (1, 1), (1, 1)): "4:2:2", ((2, 2), (1, 1), (1, 1)): "4:2:0"}
# Position in natural (row-major) order of the k-th zigzag coefficient: diagonals i + j, odd ones
# walked downwards, even ones upwards (DQT stores tables in zigzag order).
_ZIGZAG = sorted(range(64), key=lambda n: (n // 8 + n % 8, n // 8 if (n // 8 + n % 8) % 2 else n % 8))


@dataclass
class _Header:
    """What the markers say: the frame, its components and the tables each component latched."""

    marker: int | None = None
    precision: int = 8
    height: int = 0
    width: int = 0
    components: list[tuple[int, int, int, int]] = field(default_factory=list)  # (id, h, v, table slot)
    tables: dict[int, list[int]] = field(default_factory=dict)  # slot -> natural-order table now in force
    latched: dict[int, list[int]] = field(default_factory=dict)  # component id -> table at its first scan
    adobe_transform: int | None = None
    jfif: bool = False


def _segments(data: bytes):
    """``(marker, payload)`` of each marker segment after SOI, skipping entropy-coded data; stops at EOI."""
    pos = 2
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos + 1] if pos + 1 < len(data) else _EOI
        if marker == _EOI:
            return
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise ValueError("truncated marker segment")
        yield marker, data[pos + 4 : end]
        pos = end


def _read_dqt(payload: bytes, tables: dict[int, list[int]]) -> None:
    """Store every table of a DQT segment (8- or 16-bit entries, zigzag order) in natural order."""
    pos = 0
    while pos < len(payload):
        wide, slot = payload[pos] >> 4, payload[pos] & 15
        size = 128 if wide else 64
        raw = payload[pos + 1 : pos + 1 + size]
        if len(raw) < size:
            raise ValueError("truncated quantisation table")
        values = [int.from_bytes(raw[2 * k : 2 * k + 2], "big") for k in range(64)] if wide else list(raw)
        natural = [0] * 64
        for k, n in enumerate(_ZIGZAG):
            natural[n] = values[k]
        tables[slot] = natural
        pos += 1 + size


def _parse(data: bytes) -> _Header:
    """Walk the markers until every component has had its first scan (libjpeg latches its table then)."""
    head = _Header()
    for marker, payload in _segments(data):
        if marker == _DQT:
            _read_dqt(payload, head.tables)
        elif marker == 0xE0 and payload.startswith(b"JFIF\0"):
            head.jfif = True
        elif marker == _APP14 and payload.startswith(b"Adobe") and len(payload) >= 12:
            head.adobe_transform = payload[11]
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            head.marker = marker
            if marker not in _FRAMES:
                return head  # refused by its kind; nothing else is needed
            head.precision = payload[0]
            head.height, head.width = int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:5], "big")
            n = payload[5]
            head.components = [(payload[6 + 3 * k], payload[7 + 3 * k] >> 4, payload[7 + 3 * k] & 15,
                                payload[8 + 3 * k]) for k in range(n)]
        elif marker == _SOS and head.components:
            slots = {cid: slot for cid, _, _, slot in head.components}
            for k in range(payload[0]):
                cid = payload[1 + 2 * k]
                if cid in slots and cid not in head.latched:
                    if slots[cid] not in head.tables:
                        raise ValueError(f"component {cid} has no quantisation table")
                    head.latched[cid] = head.tables[slots[cid]]
            if len(head.latched) == len(head.components):
                return head
    return head


def _not_a_jpeg(name: str) -> OperatorError:
    """The error for a file that is not a JPEG stream: name its format when Pillow knows it."""
    from PIL import Image

    try:
        with Image.open(name) as img:
            fmt = img.format
    except (OSError, SyntaxError, ValueError):  # Pillow cannot name it either
        fmt = None
    if fmt and fmt != "JPEG":
        return OperatorError(f"{name}: is a {fmt} image, not a JPEG; use --op jpeg<QF> to simulate JPEG on it")
    return OperatorError(f"{name}: not a readable JPEG file; give a .jpg")


def _colour_is_rgb(head: _Header) -> bool:
    """Whether a 3-component file stores RGB instead of YCbCr (libjpeg's rule: JFIF, then Adobe, then ids)."""
    if head.jfif:
        return False
    if head.adobe_transform is not None:
        return head.adobe_transform == 0
    return [cid for cid, *_ in head.components] == [ord("R"), ord("G"), ord("B")]


def _check(name: str, head: _Header) -> None:
    """Refuse frames, precisions and colour spaces the codec does not reproduce."""
    if head.marker is None:
        raise OperatorError(f"{name}: not a readable JPEG file (no frame header before its first scan); give a .jpg")
    kind = _REFUSED.get(head.marker)
    if kind is not None:
        fix = (f"convert it losslessly with `jpegtran -copy all {name} > huffman.jpg`"
               if head.marker in (0xC9, 0xCA) else "re-save it as an ordinary .jpg")
        raise OperatorError(f"{name}: {kind} JPEG (SOF{head.marker - 0xC0}) is not supported; {fix}")
    if head.precision != 8:
        raise OperatorError(f"{name}: {head.precision}-bit JPEG is not supported (8-bit samples only); "
                            "re-save it as an 8-bit .jpg")
    n = len(head.components)
    if n not in (1, 3):
        what = "CMYK/YCCK" if n == 4 else f"{n}-component"
        raise OperatorError(f"{name}: {what} JPEG is not supported; use a grey or colour (YCbCr) .jpg")
    if n == 3 and _colour_is_rgb(head):
        raise OperatorError(f"{name}: stores RGB without the YCbCr transform, which is not supported; "
                            "re-save it as a standard .jpg")
    if head.height == 0 or head.width == 0:
        raise OperatorError(f"{name}: its frame header gives no image size; re-save it as a standard .jpg")
    if len(head.latched) < n:
        raise OperatorError(f"{name}: not a readable JPEG file (a component is never scanned); give a .jpg")


def _sampling(name: str, head: _Header) -> str:
    """The chroma subsampling of the frame's sampling factors."""
    factors = tuple((h, v) for _, h, v, _ in head.components)
    if len(set(factors)) == 1:  # equal factors in every component (e.g. all 2x2) decode exactly as 4:4:4
        return "4:4:4"
    sampling = _SAMPLINGS.get(factors)
    if sampling is None:
        text = ", ".join(f"{h}x{v}" for h, v in factors)
        raise OperatorError(f"{name}: chroma sampling factors {text} are not supported; use 4:4:4, 4:2:2 or 4:2:0")
    return sampling


def read_jpeg_params(path: str | os.PathLike) -> dict:
    """Constructor arguments of :class:`JPEG` for a JPEG file (baseline, extended sequential or progressive)."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"JPEG file not found: {name}")
    with open(name, "rb") as f:
        data = f.read()
    if not data.startswith(b"\xff\xd8"):
        raise _not_a_jpeg(name)
    try:
        head = _parse(data)
    except ValueError as e:
        raise OperatorError(f"{name}: not a readable JPEG file ({e}); give a .jpg") from None
    except IndexError:  # a segment shorter than its fields
        raise OperatorError(f"{name}: not a readable JPEG file (truncated header); give a .jpg") from None
    _check(name, head)
    tables = [head.latched[cid] for cid, *_ in head.components]
    return {
        "quality": None,
        "subsampling": _sampling(name, head),
        "image_shape": (len(head.components), head.height, head.width),
        "tables": torch.tensor(tables, dtype=torch.int32).reshape(-1, 8, 8),
    }

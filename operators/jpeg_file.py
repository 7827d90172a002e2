"""A JPEG file's codec parameters: its quantisation tables, chroma sampling and size.

:meth:`operators.jpeg.JPEG.from_file` builds the operator that produced a file from them. Only
baseline and extended sequential Huffman-coded files are accepted (what the codec reproduces);
progressive, arithmetic-coded, lossless and Adobe-RGB files are refused with a message that says
how to convert them.
"""

from __future__ import annotations

import os

import torch

from .errors import OperatorError

__all__ = ["read_jpeg_params"]

# Pillow's get_sampling() codes.
_PIL_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


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


def read_jpeg_params(path: str | os.PathLike) -> dict:
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

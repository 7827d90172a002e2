"""Image files <-> tensors: the one place where pixels enter and leave the library.

Files are read with Pillow (PNG, JPEG, BMP, TIFF and whatever else it opens), turned upright by
their EXIF orientation, and returned as ``(1, C, H, W)`` float32 tensors in [-1, 1] with C = 1
(grey) or 3 (colour). Results are written as lossless 8-bit PNG.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ddrm_kit.atomic import atomic_write
from ddrm_kit.errors import ImageFileError, ImageNotFoundError

__all__ = [
    "apply_orientation",
    "find_images",
    "IMAGE_SUFFIXES",
    "image_size",
    "ImageFileError",
    "ImageInfo",
    "ImageNotFoundError",
    "list_images",
    "load_image",
    "load_image_with_info",
    "load_kernel",
    "load_mask",
    "quantisation_sigma",
    "save_image",
    "to_uint8",
]

_EXIF_ORIENTATION = 0x0112

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class ImageInfo:
    """What the file held, for messages: original Pillow mode, size, bit depth and conversion notes."""

    path: Path
    mode: str
    width: int
    height: int
    channels: int
    bits: int
    orientation: int = 1
    notes: list[str] = field(default_factory=list)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder, not an image file")


def _to_array(img: Image.Image, notes: list[str]) -> tuple[np.ndarray, int]:
    """Pillow image -> float64 array (H, W, C) in [0, 1] and the source bit depth."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey (PNG, TIFF). Mode "I" is how Pillow may hand out 16-bit PNGs too.
        a = np.asarray(img).astype(np.float64) / 65535.0
        return np.clip(a, 0.0, 1.0)[..., None], 16
    if mode == "F":
        notes.append("floating-point image: values clipped to [0, 1]")
        return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)[..., None], 32
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in img.info):
        notes.append("alpha channel dropped")
    if mode in ("1", "L", "LA", "La") or (mode == "P" and _palette_is_grey(img)):
        return np.asarray(img.convert("L"), dtype=np.float64)[..., None] / 255.0, 8
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0, 8


def _palette_is_grey(img: Image.Image) -> bool:
    pal = np.asarray(img.convert("RGB"))
    return bool((pal[..., 0] == pal[..., 1]).all() and (pal[..., 1] == pal[..., 2]).all())


def quantisation_sigma(info: ImageInfo) -> float:
    """The rounding noise std of the file's pixels in [0, 1] units: 1/((2^bits - 1) sqrt(12)); 0 for float files."""
    return 0.0 if info.mode == "F" else 1.0 / ((2**info.bits - 1) * math.sqrt(12.0))


@contextmanager
def _reading(path: Path, what: str) -> Iterator[Image.Image]:
    """``Image.open(path)`` for one read, Pillow's errors turned into one-line ``ImageFileError``s."""
    try:
        # No DecompressionBombWarning: the CLI estimates the memory a big image needs and says so in one
        # line; Pillow's hard limit (DecompressionBombError) still refuses.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                yield img
    except UnidentifiedImageError:
        raise ImageFileError(f"{path}: not an image file Pillow can read (use PNG, JPEG, BMP or TIFF)") from None
    except Image.DecompressionBombError as e:
        raise ImageFileError(f"{path}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: cannot {what} ({e})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` as stored, read from the file's header without decoding the pixels."""
    path = Path(path)
    _check_readable(path)
    with _reading(path, "read the image header") as img:
        return img.size


def load_image_with_info(path: str | os.PathLike, upright: bool = True) -> tuple[torch.Tensor, ImageInfo]:
    """Read an image file as a ``(1, C, H, W)`` float32 tensor in [-1, 1] plus an :class:`ImageInfo`.

    Grey stays 1 channel, colour becomes 3; alpha is dropped (noted); 16-bit grey keeps its
    precision. With ``upright`` the EXIF orientation tag is applied so the tensor is upright as a
    viewer shows it; without it the pixels stay in stored order (a JPEG's 8x8 block grid), and
    :func:`apply_orientation` with ``info.orientation`` turns a result upright later.
    """
    path = Path(path)
    _check_readable(path)
    notes: list[str] = []
    with _reading(path, "decode image") as img:
        orig_mode = img.mode
        if orig_mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in img.tile):
            notes.append("16-bit colour read with 8-bit precision (Pillow's limit)")
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation not in _ORIENT_OPS:
            orientation = 1
        if upright and orientation != 1:
            notes.append(f"turned upright by its EXIF orientation ({orientation})")
            img = ImageOps.exif_transpose(img)
        arr, bits = _to_array(img, notes)
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)
    x = (x * 2.0 - 1.0).unsqueeze(0)
    info = ImageInfo(path, orig_mode, x.shape[-1], x.shape[-2], x.shape[1], bits, orientation, notes)
    return x, info


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a ``(1, C, H, W)`` float32 tensor in [-1, 1] (see :func:`load_image_with_info`)."""
    return load_image_with_info(path)[0]


# EXIF orientation -> the tensor transform that shows the image upright (PIL's exif_transpose).
_ORIENT_OPS = {
    1: lambda x: x,
    2: lambda x: x.flip(-1),
    3: lambda x: x.flip(-2, -1),
    4: lambda x: x.flip(-2),
    5: lambda x: x.transpose(-2, -1),
    6: lambda x: torch.rot90(x, -1, dims=(-2, -1)),
    7: lambda x: x.transpose(-2, -1).flip(-2, -1),
    8: lambda x: torch.rot90(x, 1, dims=(-2, -1)),
}


def apply_orientation(x: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn images ``(..., H, W)`` stored with EXIF orientation ``orientation`` (1..8) upright."""
    return _ORIENT_OPS[orientation](x)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """One image ``(C, H, W)`` or ``(1, C, H, W)`` in [-1, 1] -> uint8 array ``(H, W)`` or ``(H, W, 3)``."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
    a = ((x.detach().to("cpu", torch.float32) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    a = a.permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def save_image(
    x: torch.Tensor, path: str | os.PathLike, protect: tuple[str | os.PathLike, ...] | list = ()
) -> Path:
    """Write one image in [-1, 1] as a lossless 8-bit PNG (grey or RGB); returns the path written.

    Refuses a path that is not ``.png`` and any path in ``protect`` (the inputs of the run), so
    that an input file is never overwritten. Missing parent folders are created. The file is
    written to a temporary name first and moved into place, so a failed write leaves nothing behind.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageFileError(f"{path}: outputs are written as PNG (lossless); give a .png file name")
    for p in protect:
        p = Path(p)
        if p.exists() and path.exists() and os.path.samefile(p, path):
            raise ImageFileError(f"{path}: is an input file; choose another output path")
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder; give a .png file name")
    a = to_uint8(x)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageFileError(f"{path.parent}: cannot write there ({e.strerror or e})") from None
    atomic_write(path, lambda tmp: Image.fromarray(a).save(tmp, format="PNG"))
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files anywhere under ``folder`` (by suffix, recursively), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageNotFoundError(f"{folder}: not an existing folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_npy_2d(path: Path, what: str) -> np.ndarray:
    if not path.exists():
        raise ImageNotFoundError(f"{path}: no such file")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ImageFileError(f"{path}: cannot read the .npy file ({e})") from None
    if a.ndim != 2:
        raise ImageFileError(f"{path}: a {what} .npy must be a 2-D (H, W) array, got shape {a.shape}")
    return a


#: Largest channel spread (in [-1, 1] units, 10 grey levels) of a mask image that is still grey.
_MASK_GREY_TOL = 20 / 255


def load_mask(path: str | os.PathLike) -> torch.Tensor:
    """A mask file -> bool ``(H, W)``, True = kept pixel: non-zero .npy entries, image pixels brighter than mid-grey."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        keep = torch.from_numpy(_binary(_load_npy_2d(path, "mask"), path))
    else:
        x = load_image(path)[0]
        # A grey mask saved as RGB (or as a JPEG, whose chroma wobbles a little) is fine; a colour picture is not.
        if x.shape[0] == 3 and float((x.amax(0) - x.amin(0)).max()) > _MASK_GREY_TOL:
            raise ImageFileError(f"{path}: a colour image, not a mask: a mask is black (fill) and white (keep); "
                                 "save it in greyscale")
        keep = x.mean(0) > 0
    if not bool(keep.any()):
        raise ImageFileError(f"{path}: the mask keeps no pixel (all black / zero); "
                             "white / non-zero marks the kept pixels")
    return keep


def _binary(a: np.ndarray, path: Path) -> np.ndarray:
    """The kept entries of a .npy mask; refuses arrays that are not numbers or hold several non-zero levels."""
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ImageFileError(f"{path}: a mask .npy must hold numbers or booleans, got {a.dtype}")
    if not np.isfinite(a).all():
        raise ImageFileError(f"{path}: the mask holds NaN or infinite values")
    levels = np.unique(a[a != 0])
    if levels.size > 1:
        # A soft mask (weights in (0, 1)) has no single meaning here: DDRM keeps a pixel or fills it.
        raise ImageFileError(
            f"{path}: a soft mask ({levels.size} different non-zero values, {levels[0]:g} to {levels[-1]:g}); a mask "
            "keeps (non-zero) or fills (0) each pixel: save a 0/1 array, e.g. np.save(path, mask > 0.5)")
    return a != 0


def load_kernel(path: str | os.PathLike) -> torch.Tensor:
    """A blur kernel file (.npy 2-D array, or a grey image) -> float64 ``(kh, kw)`` summing to 1."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        k = torch.from_numpy(_load_npy_2d(path, "kernel")).to(torch.float64)
    else:
        k = ((load_image(path)[0].mean(0) + 1) / 2).to(torch.float64)
    total = float(k.sum())
    if not total > 0:
        raise ImageFileError(f"{path}: the kernel sums to {total:g}; it must have a positive sum")
    return k / total

"""The bench's images: the data folder's files, their preprocessing, and same-shape batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ddrm_kit.errors import BenchDataNotFoundError, BenchError

if TYPE_CHECKING:
    import torch


def list_data(data: Path, limit: int | None = None) -> list[Path]:
    """The image files of the ``--data`` folder, sorted by name, the first ``limit`` of them."""
    from ddrm_kit.imageio import list_images

    if not data.is_dir():
        raise BenchDataNotFoundError(f"--data {data}: no such folder; give a folder of clean images")
    files = list_images(data)
    if not files:
        raise BenchDataNotFoundError(f"--data {data}: no image files (PNG, JPEG, BMP, TIFF) in it")
    return files[:limit] if limit else files


def preprocess(
    x: "torch.Tensor", size: int | None = None, crop: int | None = None, multiple: int = 1, channels: int = 3
) -> "torch.Tensor":
    """Bring one ``(1, C, H, W)`` image in [-1, 1] to the bench's input.

    - ``size``: ImageNet-style, resize the short side to ``size`` (antialiased bicubic) and take
      the centre ``size x size`` square; on square images (faces) this is a plain resize.
    - ``crop``: the centre ``crop x crop`` square at native resolution (top/left offsets
      ``(H - crop) // 2``, ``(W - crop) // 2``; on Kodak's 768x512 this is FFDNet's ``img[6:506, 134:634]``).
    - neither: the native image.
    Then sides are cut at the bottom/right to a multiple of ``multiple`` (the SR scale, the
    benchmarks' "modcrop"), and grey images are repeated to ``channels`` channels.
    """
    import torch.nn.functional as F

    if size is not None and crop is not None:
        raise BenchError("give either --size (resize) or --crop (native resolution), not both")
    _, c, h, w = x.shape
    if crop is not None:
        if crop > h or crop > w:
            raise BenchError(f"image is {w}x{h}, smaller than --crop {crop}; use a smaller --crop or --size")
        top, left = (h - crop) // 2, (w - crop) // 2
        x = x[:, :, top : top + crop, left : left + crop]
    elif size is not None:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, :, top : top + size, left : left + size]
    h, w = x.shape[-2:]
    h, w = h - h % multiple, w - w % multiple
    if h == 0 or w == 0:
        raise BenchError(f"image is smaller than the operator's scale {multiple}; use larger images")
    x = x[:, :, :h, :w]
    if c == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    elif c != channels:
        raise BenchError(f"image has {c} channels but the prior takes {channels}; use a {c}-channel prior")
    return x.contiguous()


def batches(
    indices: list[int], load: Callable[[int], "torch.Tensor"], size: int
) -> Iterator[tuple[list[int], list["torch.Tensor"]]]:
    """Yield ``(indices, images)``: consecutive images of one shape, at most ``size`` at a time.

    Images are loaded as they are needed, so a large data set never sits in memory at once.
    """
    group: list[int] = []
    imgs: list = []
    for i in indices:
        x = load(i)
        if group and (len(group) == size or imgs[0].shape != x.shape):
            yield group, imgs
            group, imgs = [], []
        group.append(i)
        imgs.append(x)
    if group:
        yield group, imgs

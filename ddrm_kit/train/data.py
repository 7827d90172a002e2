"""Training data: the images under the --data folders (read by ``ddrm_kit.imageio``), random crops, the held-out split."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ddrm_kit import imageio
from ddrm_kit.errors import ImageFileError, ImageNotFoundError, TrainingDataNotFoundError

from .recipe import TrainConfig, min_image_side

# A folder of HOLDOUT_MIN_IMAGES+ images holds 1 in 25 out for the held-out loss, at most HOLDOUT_MAX_IMAGES.
HOLDOUT_MIN_IMAGES = 50
HOLDOUT_MAX_IMAGES = 16


def find_images(folders: Sequence[str | os.PathLike]) -> list[Path]:
    """Every image file under the folders, recursively, each folder's in sorted order."""
    paths: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise TrainingDataNotFoundError(f"--data folder {root} does not exist; pass a folder of training images")
        paths += imageio.find_images(root)
    return paths


def load_rgb(path: Path) -> np.ndarray:
    """One image file, upright by its EXIF orientation, as RGB uint8 (H, W, 3); grey is repeated to 3 channels."""
    a = imageio.to_uint8(imageio.load_image(path))
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def load_images(folders: Sequence[str | os.PathLike], size: int) -> list[np.ndarray]:
    """Decode every image under the folders once into RGB uint8 arrays (H, W, 3).

    Unreadable files and images smaller than the crop size are skipped with one note each on stderr
    (training images are never resized: that would change their statistics).
    """
    return [image for _, image in _load_named(folders, size)]


def holdout_files(cfg: TrainConfig) -> list[Path]:
    """The files the run of this recipe holds out (none for a folder of under 50 images)."""
    named = _load_named(cfg.data, min_image_side(cfg))
    _, hold = split_holdout(len(named), cfg.seed)
    return [named[i][0] for i in hold]


def _load_named(folders: Sequence[str | os.PathLike], size: int) -> list[tuple[Path, np.ndarray]]:
    images: list[tuple[Path, np.ndarray]] = []
    for path in find_images(folders):
        try:
            arr = load_rgb(path)
        except (ImageFileError, ImageNotFoundError) as exc:
            _skipped(path, str(exc).removeprefix(f"{path}: "))
            continue
        if min(arr.shape[:2]) < size:
            _skipped(path, f"{arr.shape[1]}x{arr.shape[0]} is smaller than the {size}x{size} training crops")
            continue
        images.append((path, arr))
    if not images:
        names = ", ".join(str(f) for f in folders)
        raise TrainingDataNotFoundError(
            f"no readable image of at least {size}x{size} pixels under {names}; pass a folder of PNG/JPEG images"
        )
    return images


def _skipped(path: Path, reason: str) -> None:
    # A plain line, not a warning: a folder of bad files is the user's to fix, not a fault in the code.
    print(f"note: skipped {path}: {reason}", file=sys.stderr)


def random_crops(images: Sequence[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """n random size x size crops with random horizontal flips, as float32 (n, 3, size, size) in [-1, 1]."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        img = images[rng.integers(len(images))]
        top = rng.integers(img.shape[0] - size + 1)
        left = rng.integers(img.shape[1] - size + 1)
        crop = img[top : top + size, left : left + size]
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0


def split_holdout(n_images: int, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and held-out images: 1 in 25 held out (at most 16) once there are 50+ images.

    Smaller folders keep every image for training and measure the loss on fixed crops of the
    training images instead (still a fixed, comparable number across checkpoints, but no held-out loss).
    """
    order = np.random.default_rng(seed + 12345).permutation(n_images)
    n_hold = min(HOLDOUT_MAX_IMAGES, n_images // 25) if n_images >= HOLDOUT_MIN_IMAGES else 0
    hold = sorted(order[:n_hold].tolist())
    train = sorted(order[n_hold:].tolist())
    return train, hold

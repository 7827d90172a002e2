"""What the image commands share: input files, output paths, the device, the prior.

Every check here runs before the prior is loaded, so that a mistake costs no model load.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ddrm_kit.errors import DDRMError, ImageFileError, ImageNotFoundError

from ddrm_kit.precision import torch_dtype

if TYPE_CHECKING:
    import torch

    from ddrm_kit.imageio import ImageInfo
    from ddrm_kit.prior import Prior


@dataclass
class Inputs:
    """The image files of a run; ``found`` are those found in folders (a bad one there is skipped, not fatal)."""

    files: list[Path]
    several: bool  # a folder or several files: -o is a folder
    found: set[Path] = field(default_factory=set)


def resolve_inputs(inputs: Sequence[str]) -> Inputs:
    """Expand folders to their images; a missing file or an empty folder stops the run."""
    from ddrm_kit.imageio import list_images

    out = Inputs([], len(inputs) > 1)
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise ImageFileError(f"{p}: folder holds no image file (PNG, JPEG, BMP, TIFF)")
            out.files.extend(found)
            out.found.update(found)
            out.several = True
        elif not p.exists():
            raise ImageNotFoundError(f"{p}: no such file")
        else:
            out.files.append(p)
    return out


def read_image(path: Path, upright: bool = True) -> tuple["torch.Tensor", "ImageInfo"]:
    """Load one image (see ``imageio.load_image_with_info``), printing its conversion notes on stderr."""
    from ddrm_kit.imageio import load_image_with_info

    x, info = load_image_with_info(path, upright=upright)
    for note in info.notes:
        click.echo(f"note: {path.name}: {note}", err=True)
    return x, info


def same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def refuse_inputs(out: Path, protect: Iterable[Path]) -> None:
    """Refuse to write ``out`` over any of the run's input files."""
    if any(same_file(out, p) for p in protect):
        raise ImageFileError(f"{out}: is an input file; choose another output path")


def check_writable(folder: Path) -> None:
    """Refuse a folder that cannot be created or written, without creating it (outputs create it when written)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ImageFileError(f"{folder}: output folder is not writable ({e.strerror or e})") from None


def plan_outputs(inputs: Sequence[Path], several: bool, output: str | None, tag: str,
                 protect: Iterable[Path] = ()) -> list[Path]:
    """One ``.png`` path per input; refuse input paths, name clashes and unwritable folders before any work."""
    tag = re.sub(r"[^\w.-]+", "_", tag)  # a file-name-safe operator name
    if several:
        if output is not None and Path(output).suffix.lower() in (".png", ".jpg", ".jpeg"):
            raise ImageFileError(f"{output}: several inputs need an output folder for -o, not a file name")
        folder = Path(output) if output is not None else Path.cwd()
        outs = [folder / f"{p.stem}_{tag}.png" for p in inputs]
    elif output is None:
        outs = [Path.cwd() / f"{inputs[0].stem}_{tag}.png"]
    else:
        out = Path(output)
        if out.is_dir() or not out.suffix:
            outs = [out / f"{inputs[0].stem}_{tag}.png"]
        elif out.suffix.lower() == ".png":
            outs = [out]
        else:
            raise ImageFileError(f"{out}: outputs are written as PNG (lossless); give a .png file name or a folder")
    seen: dict[Path, Path] = {}
    for src, out in zip(inputs, outs, strict=True):
        if out.resolve() in seen:
            raise ImageFileError(f"{seen[out.resolve()]} and {src} would both be written to {out}: rename one input")
        seen[out.resolve()] = src
        refuse_inputs(out, list(inputs) + list(protect))
    for folder in {o.parent for o in outs}:
        check_writable(folder)
    return outs


def describe(x: "torch.Tensor") -> str:
    """``WxH grey`` or ``WxH RGB`` for a message."""
    return f"{x.shape[-1]}x{x.shape[-2]} {'grey' if x.shape[-3] == 1 else 'RGB'}"


def to_device(op, device: "torch.device"):
    """``op`` moved to ``device``; in float32 on MPS and XPU, which lack float64 (operators are built in float64)."""
    import torch

    if device.type in ("mps", "xpu"):
        return op.to(device=device, dtype=torch.float32)
    return op.to(device)


def jpeg_quality_note(path: Path, quality: int) -> str | None:
    """A note when ``path`` is a JPEG file written with other tables than libjpeg's at ``quality`` (else None)."""
    import io

    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format != "JPEG" or not getattr(img, "quantization", None):
                return None
            table = list(img.quantization[0])
    except OSError:
        return None
    # The quality whose luminance table the file uses: Pillow writes libjpeg's scaled standard tables.
    saved = None
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, format="JPEG", quality=q)
        with Image.open(buf) as ref:
            if list(ref.quantization[0]) == table:
                saved = q
                break
    if saved == quality:
        return None
    how = f"saved at JPEG quality {saved}" if saved is not None else "a JPEG file with its own quantisation tables"
    return f"{how}, not {quality}: --op jpeg restores a JPEG file with the tables it was written with"


def memory_problem(shape: Sequence[int], batch: int, unet: dict[str, Any], factory: Any,
                   device: str | None) -> tuple[str, bool] | None:
    """Why ``batch`` images of ``shape`` (C, H, W) would not fit the device's free memory, and whether one would."""
    import torch

    from ddrm_kit import memory

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    need = memory.estimate(shape, batch, unet, factory)
    short = memory.shortfall(need, dev)
    if short is None:
        return None
    one_fits = batch > 1 and memory.shortfall(memory.estimate(shape, 1, unet, factory), dev) is None
    what = f"{shape[2]}x{shape[1]}" + (f" in batches of {batch}" if batch > 1 else "")
    return f"{what} needs {need.describe()} but {short}", one_fits


def check_precision(precision: str, device: str | None) -> None:
    """Refuse --precision fp16 off CUDA (before anything is loaded)."""
    import torch

    if precision == "fp16" and not (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        raise DDRMError("--precision fp16 needs a CUDA device: use fp32 or bf16 on CPU")


def load_prior(model: str | None, device: str | None, precision: str, channels_last: bool, compile_net: bool,
               model_config: str | None = None, class_label: int | None = None) -> "Prior":
    """The prior for ``--model`` with its ``--model-config``/``--class-label``, device, precision and layout."""
    from diffusers.utils import logging as diffusers_logging

    from ddrm_kit.prior import load_prior

    # diffusers' load-time advice (accelerate, dtype casts) is not actionable for CLI users.
    diffusers_logging.set_verbosity_error()
    check_precision(precision, device)
    return load_prior(model, device=device, dtype=torch_dtype(precision), config=model_config,
                      class_label=class_label, channels_last=channels_last, compile=compile_net)

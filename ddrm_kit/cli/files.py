"""What the image commands share: input files, output paths, operator keywords from files, the prior.

Every check here runs before the prior is loaded, so that a mistake costs no model load.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ddrm_kit.errors import DDRMError, ImageFileError, ImageNotFoundError

from .options import DTYPE_NAMES, parse_params

if TYPE_CHECKING:
    import torch

    from ddrm_kit.imageio import ImageInfo
    from ddrm_kit.prior import Prior


def resolve_inputs(inputs: Sequence[str]) -> tuple[list[Path], bool]:
    """Expand folders to their images. Returns the files and whether a folder (or several files) was given."""
    from ddrm_kit.imageio import list_images

    files: list[Path] = []
    several = len(inputs) > 1
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise ImageFileError(f"{p}: folder holds no image file (PNG, JPEG, BMP, TIFF)")
            files.extend(found)
            several = True
        elif not p.exists():
            raise ImageNotFoundError(f"{p}: no such file")
        else:
            files.append(p)
    return files, several


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
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


def op_params(params: Sequence[str], mask: str | None, kernel: str | None) -> dict[str, Any]:
    """Operator keywords from -p KEY=VALUE, --mask and --kernel."""
    from ddrm_kit.imageio import load_kernel, load_mask

    out = parse_params(params)
    if mask is not None:
        out["mask"] = load_mask(mask)
    if kernel is not None:
        out["kernel"] = load_kernel(kernel)
    return out


def check_fits(params: dict[str, Any], image_shape: Sequence[int], src: Path) -> None:
    """Refuse a --mask or --kernel that does not fit images of ``image_shape`` (C, H, W)."""
    _, h, w = image_shape
    m = params.get("mask")
    if m is not None and tuple(m.shape) != (h, w):
        raise DDRMError(f"the mask is {m.shape[1]}x{m.shape[0]} but {src.name} is {w}x{h}: give a mask of the image's size")
    k = params.get("kernel")
    if k is not None and (k.shape[0] > h or k.shape[1] > w):
        raise DDRMError(f"the kernel is {k.shape[1]}x{k.shape[0]}, larger than {src.name} ({w}x{h})")


def load_prior(model: str | None, device: str | None, precision: str, channels_last: bool,
               compile_net: bool) -> "Prior":
    """The prior for ``--model``, ``--device``, ``--precision``, ``--channels-last`` and ``--compile``."""
    import torch
    from diffusers.utils import logging as diffusers_logging

    from ddrm_kit.prior import load_prior

    # diffusers' load-time advice (accelerate, dtype casts) is not actionable for CLI users.
    diffusers_logging.set_verbosity_error()
    if precision == "fp16" and not (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        raise DDRMError("--precision fp16 needs a CUDA device: use fp32 or bf16 on CPU")
    return load_prior(model, device=device, dtype=getattr(torch, DTYPE_NAMES[precision]),
                      channels_last=channels_last, compile=compile_net)

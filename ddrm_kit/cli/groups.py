"""``ddrm solve``'s groups: images of one shape and noise floor, their operator and their observations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddrm_kit.errors import DDRMError

from .files import describe
from .params import check_fits

if TYPE_CHECKING:
    import torch

    from ddrm_kit.imageio import ImageInfo
    from operators import OperatorSpec


@dataclass
class Group:
    """Images of one shape (or one JPEG file) and one noise level, restored with one operator."""

    idx: list[int]  # positions in the input files
    xs: "torch.Tensor"  # the images as given (for colourisation: their grey channel)
    op: Any  # built for ``xs``'s channels
    label: str  # for messages
    sigma_y: float  # in [0, 1] pixel units: --sigma-y, raised to the files' quantisation noise


def same_shape(loaded: list[tuple["torch.Tensor", "ImageInfo"] | None], floors: list[float],
               jpeg_file: bool) -> list[list[int]]:
    """Positions of equal-shape, equal-floor images in first-seen order (None: skipped); every JPEG file alone."""
    if jpeg_file:
        return [[i] for i, item in enumerate(loaded) if item is not None]
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(loaded):
        if item is not None:
            groups.setdefault((*item[0].shape[1:], floors[i]), []).append(i)
    return list(groups.values())


def grey_y(spec: "OperatorSpec | None", clean: bool) -> bool:
    """Whether INPUT is a grey observation of colour images (colourisation), not images of the result's channels."""
    return not clean and spec is not None and spec.image_channels is not None


def as_observed(spec: "OperatorSpec | None", xs: "torch.Tensor", clean: bool, src: Path) -> "torch.Tensor":
    """Colourisation observes a grey image: keep one channel of a grey image stored as RGB, refuse colour."""
    if not grey_y(spec, clean) or xs.shape[1] != 3:
        return xs
    if not bool((xs[:, 0] == xs[:, 1]).all() and (xs[:, 1] == xs[:, 2]).all()):
        raise DDRMError(f"{src.name} is a colour image: --op {spec.display} takes a grey image")
    return xs[:, :1]


def build(op_name: str, spec: "OperatorSpec | None", xs: "torch.Tensor", kwargs: dict[str, Any], clean: bool,
          src: Path):
    """The operator for images ``xs`` (observations, or clean images with --clean); refuses what does not fit."""
    import operators

    if spec is None:
        return operators.JPEG.from_file(src)  # the tables, subsampling and size that wrote the file
    if clean:
        check_fits(op_name, spec, kwargs, xs.shape[1:], src)
        return operators.get_operator(op_name, tuple(xs.shape[1:]), **kwargs)
    image_shape = spec.image_shape_for(op_name, xs.shape[1:])
    check_fits(op_name, spec, kwargs, image_shape, src)
    op = operators.get_operator(op_name, image_shape, **kwargs)
    if spec.observation_kind == "full_image" and tuple(op.image_shape) != tuple(xs.shape[1:]):
        raise DDRMError(f"{op_name} does not fit {src.name} ({describe(xs)})")
    if spec.kind == "linear" and spec.observation_kind == "image" and tuple(xs.shape[1:]) != tuple(op.measurement_shape):
        want = "x".join(str(d) for d in op.measurement_shape[::-1][:2])
        raise DDRMError(f"{src.name} ({describe(xs)}) does not fit {op_name}: it expects observations of {want}")
    return op


def fit(group: Group, op_name: str, spec: "OperatorSpec | None", kwargs: dict[str, Any], clean: bool,
        prior_channels: int | None, src: Path, notes: list[str]):
    """(operator, images) for the prior's channels: grey images for a colour prior are seen as RGB."""
    import operators

    xs, op, label = group.xs, group.op, group.label
    c = xs.shape[1]
    if prior_channels is None or c == prior_channels or grey_y(spec, clean):
        return op, xs
    if c != 1 or prior_channels != 3:
        raise DDRMError(f"{label} has {c} channel(s) but the prior works on {prior_channels}: convert the image")
    rgb = xs.expand(-1, 3, -1, -1)
    if spec is None:
        notes.append(f"{label}: grey JPEG restored with a colour prior (on its grey level), saved grey")
        return operators.GreyCodec(op), rgb
    notes.append(f"{label}: grey image restored with a colour prior, saved grey")
    # The operator for 3 channels: the prior's channels are only known once it is loaded.
    return build(op_name, spec, rgb, kwargs, clean, src), rgb


def observation(op, spec: "OperatorSpec | None", xs: "torch.Tensor", clean: bool, sy: float,
                noise: list["torch.Generator"]) -> "torch.Tensor":
    """``y`` for images ``xs``: simulated from clean images, else what the file holds."""
    from ddrm_kit.restore import observe

    if clean:
        return observe(op, xs, sy, noise)
    if spec is not None and spec.kind == "linear" and spec.observation_kind == "full_image":
        return op.H(xs)  # the file holds the damaged full-size image; y is its observed part
    return xs

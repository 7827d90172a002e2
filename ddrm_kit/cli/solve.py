"""``ddrm solve``: restore image files with DDRM (``ddrm_kit.restore`` does the work)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ddrm_kit.errors import DDRMError

from .errors import Command
from .files import check_fits, describe, load_prior, op_params, plan_outputs, read_image, resolve_inputs
from .options import (batch_size_option, channels_last_option, compile_option, device_option, kernel_option,
                      mask_option, model_option, op_option, output_option, params_option, precision_option,
                      progress_option, sampler_options, seed_option, sigma_y_option)

if TYPE_CHECKING:
    import torch

    from operators import OperatorSpec

#: The operator of a real JPEG file: its own quantisation tables, not a registry entry.
JPEG_FILE = "jpeg"


@dataclass
class _Group:
    """Images of one shape (or one JPEG file), restored with one operator."""

    idx: list[int]  # positions in the input files
    xs: "torch.Tensor"  # the images as given (for colourisation: their grey channel)
    op: Any  # built for ``xs``'s channels
    label: str  # for messages


@click.command("solve", cls=Command)
@op_option(help="Operator name (see `ddrm ops`): sr4, deblur_gauss, inp_mask, color, jpeg, ...")
@model_option
@sampler_options
@sigma_y_option
@seed_option
@mask_option
@kernel_option
@params_option
@click.option("--clean", is_flag=True, help="INPUT is a clean image: degrade it (with --sigma-y noise), restore, "
                                            "and print PSNR/SSIM of H_pinv(y) and of the result.")
@batch_size_option(4, "Images of the same size restored together.")
@device_option
@precision_option()
@click.option("--fp16", is_flag=True, hidden=True)  # the old spelling of --precision fp16
@channels_last_option
@compile_option
@progress_option
@output_option("Output .png (one input) or folder (several inputs / a folder). "
               "Default: INPUTNAME_OP.png in the current folder.", required=False)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
def solve_command(op_name: str, model: str | None, steps: int, eta: float | None, eta_b: float | None,
                  clip_denoised: bool, average: int, sigma_y: float, seed: int, mask: str | None, kernel: str | None,
                  params: tuple[str, ...], clean: bool, batch_size: int, device: str | None, precision: str,
                  fp16: bool, channels_last: bool, compile_net: bool, progress: bool, output: str | None,
                  inputs: tuple[str, ...]) -> None:
    """Restore INPUT images (files or folders) with DDRM.

    \b
    INPUT is the degraded observation, as `ddrm ops` lists per operator:
      srN, sr_bicubicN   the low-resolution image (the result is N times larger)
      deblur*, deno      the blurred / noisy image (--kernel FILE for deblur)
      inp_*              the damaged full-size image (--mask FILE for inp_mask)
      color              a grey image
      jpeg               a .jpg file (its own quantisation tables); jpegQF for decoded JPEGs
    With --clean, INPUT is a clean image that is degraded first (the quickest way to try an
    operator): PSNR/SSIM of the pseudo-inverse H_pinv(y) and of the DDRM result are printed.
    """
    import torch

    import operators
    from ddrm_kit.imageio import apply_orientation, save_image
    from ddrm_kit.restore import NOISE, SAMPLER, Settings, baseline, generators, restore

    jpeg_file = op_name == JPEG_FILE
    if jpeg_file and clean:
        raise click.ClickException("--clean needs a quality to simulate: use --op jpeg10 (jpeg<QF>), not jpeg")
    spec = None if jpeg_file else operators.get_spec(op_name)
    if sigma_y and (jpeg_file or spec.kind == "codec"):
        raise DDRMError(f"--sigma-y does not apply to {op_name}: JPEG/quantisation observations are deterministic; drop it")
    if not clean and spec is not None and spec.observation_kind == "vector":
        raise DDRMError(f"{op_name} observations are vectors, not images: try it on a clean image with --clean")
    files, several = resolve_inputs(inputs)
    kwargs = op_params(params, mask, kernel)
    extra_inputs = [Path(p) for p in (mask, kernel) if p is not None]
    outs = plan_outputs(files, several, output, op_name, protect=extra_inputs)
    # A real JPEG is restored in its stored pixel order (its 8x8 block grid), turned upright at the end.
    loaded = [read_image(f, upright=not jpeg_file) for f in files]

    # Every operator is built here, before the (slow) prior is loaded: a wrong operator, size,
    # mask or kernel fails first.
    groups = []
    for idx in _same_shape(loaded, jpeg_file):
        xs = _as_observed(spec, torch.cat([loaded[i][0] for i in idx]), clean, files[idx[0]])
        label = files[idx[0]].name if len(idx) == 1 else f"{len(idx)} images of {describe(xs)}"
        groups.append(_Group(idx, xs, _build(op_name, spec, xs, kwargs, clean, files[idx[0]]), label))

    prior = load_prior(model, device, "fp16" if fp16 else precision, channels_last, compile_net)
    dev = prior.device
    settings = Settings(steps=steps, eta=eta, eta_b=eta_b, clip_denoised=clip_denoised, average=average)
    sy = 2.0 * sigma_y  # [0, 1] pixel units -> the library's [-1, 1] tensors
    notes: list[str] = []
    rows = []
    for group in groups:
        op, xs = _fit(group, op_name, spec, kwargs, clean, prior.channels, files[group.idx[0]], notes)
        chunks = [slice(j, j + batch_size) for j in range(0, len(group.idx), batch_size)]
        # Each image's generators come from the seed and its file name, never its place in the run.
        keys = [[files[i].name for i in group.idx[chunk]] for chunk in chunks]
        # Observations are simulated on the CPU (the same on every device), before the operator moves.
        ys = [_observation(op, spec, xs[chunk], clean, sy, generators(seed, k, NOISE))
              for chunk, k in zip(chunks, keys, strict=True)]
        op.to(dev)
        for chunk, k, y in zip(chunks, keys, ys, strict=True):
            y = y.to(dev)
            result = restore(prior, op, y, settings, sy, generators(seed, k, SAMPLER, dev), progress).cpu()
            truth = group.xs[chunk]
            grey = truth.shape[1] == 1
            if clean:
                rows.extend(_scores(k, truth, baseline(op, y).cpu(), result, grey))
            if grey and result.shape[1] == 3 and not _grey_y(spec, clean):
                result = result.mean(1, keepdim=True)
            for j, i in enumerate(group.idx[chunk]):
                r = result[j : j + 1]
                if jpeg_file:
                    r = apply_orientation(r, loaded[i][1].orientation)
                written = save_image(r, outs[i], protect=files + extra_inputs)
                click.echo(f"wrote {written} ({describe(r)})")
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if rows:
        _print_scores(rows, "y" if spec.kind == "codec" else "H_pinv(y)")


def _same_shape(loaded: list, jpeg_file: bool) -> list[list[int]]:
    """Positions of equal-shape images, in first-seen order; every JPEG file alone (its own tables)."""
    if jpeg_file:
        return [[i] for i in range(len(loaded))]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (x, _) in enumerate(loaded):
        groups.setdefault(tuple(x.shape[1:]), []).append(i)
    return list(groups.values())


def _grey_y(spec: "OperatorSpec | None", clean: bool) -> bool:
    """Whether INPUT is a grey observation of colour images (colourisation), not images of the result's channels."""
    return not clean and spec is not None and spec.image_channels is not None


def _as_observed(spec: "OperatorSpec | None", xs: "torch.Tensor", clean: bool, src: Path) -> "torch.Tensor":
    """Colourisation observes a grey image: keep one channel of a grey image stored as RGB, refuse colour."""
    if not _grey_y(spec, clean) or xs.shape[1] != 3:
        return xs
    if not bool((xs[:, 0] == xs[:, 1]).all() and (xs[:, 1] == xs[:, 2]).all()):
        raise DDRMError(f"{src.name} is a colour image: --op {spec.display} takes a grey image")
    return xs[:, :1]


def _build(op_name: str, spec: "OperatorSpec | None", xs: "torch.Tensor", kwargs: dict[str, Any], clean: bool,
           src: Path):
    """The operator for images ``xs`` (observations, or clean images with --clean); refuses what does not fit."""
    import operators

    if spec is None:
        return operators.JPEG.from_file(src)  # the tables, subsampling and size that wrote the file
    if clean:
        check_fits(kwargs, xs.shape[1:], src)
        return operators.get_operator(op_name, tuple(xs.shape[1:]), **kwargs)
    image_shape = spec.image_shape_for(op_name, xs.shape[1:])
    check_fits(kwargs, image_shape, src)
    op = operators.get_operator(op_name, image_shape, **kwargs)
    if spec.observation_kind == "full_image" and tuple(op.image_shape) != tuple(xs.shape[1:]):
        raise DDRMError(f"{op_name} does not fit {src.name} ({describe(xs)})")
    if spec.kind == "linear" and spec.observation_kind == "image" and tuple(xs.shape[1:]) != tuple(op.measurement_shape):
        want = "x".join(str(d) for d in op.measurement_shape[::-1][:2])
        raise DDRMError(f"{src.name} ({describe(xs)}) does not fit {op_name}: it expects observations of {want}")
    return op


def _fit(group: _Group, op_name: str, spec: "OperatorSpec | None", kwargs: dict[str, Any], clean: bool,
         prior_channels: int | None, src: Path, notes: list[str]):
    """(operator, images) for the prior's channels: grey images for a colour prior are seen as RGB."""
    import operators

    xs, op, label = group.xs, group.op, group.label
    c = xs.shape[1]
    if prior_channels is None or c == prior_channels or _grey_y(spec, clean):
        return op, xs
    if c != 1 or prior_channels != 3:
        raise DDRMError(f"{label} has {c} channel(s) but the prior works on {prior_channels}: convert the image")
    rgb = xs.expand(-1, 3, -1, -1)
    if spec is None:
        notes.append(f"{label}: grey JPEG restored with a colour prior (on its grey level), saved grey")
        return operators.GreyCodec(op), rgb
    notes.append(f"{label}: grey image restored with a colour prior, saved grey")
    # The operator for 3 channels: the prior's channels are only known once it is loaded.
    return _build(op_name, spec, rgb, kwargs, clean, src), rgb


def _observation(op, spec: "OperatorSpec | None", xs: "torch.Tensor", clean: bool, sy: float,
                 noise: list["torch.Generator"]) -> "torch.Tensor":
    """``y`` for images ``xs``: simulated from clean images, else what the file holds."""
    from ddrm_kit.restore import observe

    if clean:
        return observe(op, xs, sy, noise)
    if spec is not None and spec.kind == "linear" and spec.observation_kind == "full_image":
        return op.H(xs)  # the file holds the damaged full-size image; y is its observed part
    return xs


def _scores(names: list[str], truth: "torch.Tensor", base: "torch.Tensor", result: "torch.Tensor",
            grey: bool) -> list[tuple]:
    """(name, baseline PSNR, SSIM, DDRM PSNR, SSIM) per image, on the grey level for grey inputs."""
    from ddrm_kit.restore import score

    if grey:
        base = base.mean(1, keepdim=True) if base.shape[1] == 3 else base
        result = result.mean(1, keepdim=True) if result.shape[1] == 3 else result
    b, r = score(base, truth), score(result, truth)
    return list(zip(names, b["psnr"], b["ssim"], r["psnr"], r["ssim"], strict=True))


def _print_scores(rows: list[tuple], baseline: str) -> None:
    width = max(len("image"), *(len(r[0]) for r in rows))
    click.echo(f"{'image':<{width}}  {baseline + ' PSNR':>14} {'SSIM':>6}  {'DDRM PSNR':>10} {'SSIM':>6}")
    for name, pb, sb, pr, sr in rows:
        click.echo(f"{name:<{width}}  {pb:14.2f} {sb:6.3f}  {pr:10.2f} {sr:6.3f}")
    if len(rows) > 1:
        def mean(k: int) -> float:
            return sum(r[k] for r in rows) / len(rows)

        click.echo(f"{'mean':<{width}}  {mean(1):14.2f} {mean(2):6.3f}  {mean(3):10.2f} {mean(4):6.3f}")

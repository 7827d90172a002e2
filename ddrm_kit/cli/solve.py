"""``ddrm solve``: restore image files with DDRM (``ddrm_kit.restore`` does the work).

Everything that can be checked is checked before the prior loads: the options, each file's header
and the memory its restoration needs, the images and every operator. An image found in a folder
that fails a check is reported on its own line and skipped, and the run exits non-zero at the end;
a bad file named on the command line stops the run before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ddrm_kit.errors import DDRMError

from .errors import Command, Failures
from .files import (check_precision, describe, jpeg_quality_note, load_prior, memory_problem, plan_outputs,
                    read_image, resolve_inputs, to_device)
from .groups import Group, as_observed, build, fit, grey_y, observation, same_shape
from .model_info import ModelInfo, check_steps, loaded_model_info, read_model_info
from .options import (batch_size_option, class_label_option, kernel_option, mask_option, model_config_option,
                      model_option, network_options, op_option, output_option, params_option, progress_option,
                      sampler_options, seed_option, sigma_y_option)
from .palette import load_palette, missing_op, palette_run
from .params import operator_params

if TYPE_CHECKING:
    import torch

    from ddrm_kit.imageio import ImageInfo
    from operators import OperatorSpec

#: The operator of a real JPEG file: its own quantisation tables, not a registry entry.
JPEG_FILE = "jpeg"


@click.command("solve", cls=Command)
@op_option(help="Operator name (see `ddrm ops`): sr4, deblur_gauss, inp_mask, color, jpeg, ... "
                "(optional for a Palette model: its own)", required=False)
@model_option
@model_config_option()
@class_label_option()
@sampler_options
@sigma_y_option
@seed_option
@mask_option
@kernel_option
@params_option
@click.option("--clean", is_flag=True, help="INPUT is a clean image: degrade it (with --sigma-y noise), restore, "
                                            "and print PSNR/SSIM of H_pinv(y) and of the result.")
@batch_size_option(4, "Images of the same size restored together.")
@network_options
@progress_option
@output_option("Output .png (one input) or folder (several inputs / a folder). "
               "Default: INPUTNAME_OP.png in the current folder.", required=False)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
def solve_command(op_name: str, model: str | None, model_config: str | None, class_label: int | None, steps: int,
                  eta: float | None, eta_b: float | None,
                  clip_denoised: bool | None, average: int, sigma_y: float, seed: int, mask: str | None, kernel: str | None,
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

    \b
    An observation read from an integer image file is never noiseless: rounding to 8 bits is
    noise of std 1/(255*sqrt(12)) = 0.00113 in [0, 1] units (16 bits: 1/(65535*sqrt(12))). A
    --sigma-y below that floor is raised to it, with a note. --clean observations (simulated in
    float) keep --sigma-y as given; jpeg and quant operators take no --sigma-y.

    A folder is restored image by image: a bad image in it is reported on its own line and
    skipped, and the exit code is 1 at the end.

    \b
    A Palette model (a folder with palette.json, from `ddrm train --palette OP`) restores its own
    operator OP with Palette's Algorithm 2 (--op may be omitted): --steps defaults to all T
    timesteps (1000 network evaluations; fewer stride the schedule), x̂0 is clipped unless
    --no-clip-denoised, --eta, --eta-b, -p, --mask and --kernel do not apply, and --sigma-y
    only sets the noise of --clean (default: the model's training noise).
    """
    import operators
    from ddrm_kit.imageio import apply_orientation, save_image
    from ddrm_kit.palette_model import clip_default, palette_task_of
    from ddrm_kit.palette_sampler import restore_palette
    from ddrm_kit.prior_settings import settings_note
    from ddrm_kit.restore import NOISE, SAMPLER, Settings, baseline, generators, restore

    task = palette_task_of(model)
    if task is not None:
        run = palette_run(task, click.get_current_context())
        op_name, sigma_y = run.op_name, run.sigma_y
    elif op_name is None:
        raise missing_op(click.get_current_context())
    jpeg_file = op_name == JPEG_FILE
    if jpeg_file and clean:
        raise click.ClickException("--clean needs a quality to simulate: use --op jpeg10 (jpeg<QF>), not jpeg")
    spec = None if jpeg_file else operators.get_spec(op_name)
    codec = jpeg_file or spec.kind == "codec"
    if sigma_y and codec:
        raise DDRMError(f"--sigma-y does not apply to {op_name}: JPEG/quantisation observations are deterministic; drop it")
    if not clean and spec is not None and spec.observation_kind == "vector":
        raise DDRMError(f"{op_name} observations are vectors, not images: try it on a clean image with --clean")
    precision = "fp16" if fp16 else precision
    check_precision(precision, device)
    kwargs = dict(task.params) if task is not None else operator_params(op_name, spec, params, mask, kernel)
    info = read_model_info(model, model_config, class_label)
    # A Palette model's default is all of its own timesteps: only a --steps given is checked.
    checked_steps = steps if task is None else run.steps
    if info is not None and checked_steps is not None:
        check_steps(checked_steps, info)
    given = resolve_inputs(inputs)
    files = given.files
    extra_inputs = [Path(p) for p in (mask, kernel) if p is not None]
    outs = plan_outputs(files, given.several, output, op_name, protect=extra_inputs)
    failures = Failures(given.found)
    _check_memory(files, failures, op_name, spec, clean, info, batch_size, device)
    # A real JPEG is restored in its stored pixel order (its 8x8 block grid), turned upright at the end.
    loaded = [None if f in failures.bad else failures.attempt([f], read_image, f, not jpeg_file) for f in files]
    # A Palette model is told no noise level, so the files' rounding noise changes nothing.
    floors, pending = _noise_floors(loaded, sigma_y, clean or codec or task is not None)
    if task is not None:
        pending += run.notes
    if not clean and spec is not None and spec.display == "jpeg<QF>":
        quality = int(spec.groups(op_name)[0])
        notes = (jpeg_quality_note(f, quality) if item is not None else None
                 for f, item in zip(files, loaded, strict=True))
        pending += [f"{f.name}: {note}" for f, note in zip(files, notes, strict=True) if note]

    # Every operator is built here, before the (slow) prior is loaded: a wrong operator, size,
    # mask or kernel fails first.
    groups = []
    for idx in same_shape(loaded, floors, jpeg_file):
        group = failures.attempt([files[i] for i in idx], _group, idx, loaded, files, op_name, spec, kwargs, clean,
                                 max(sigma_y, floors[idx[0]]))
        if group is not None:
            groups.append(group)
    if not groups:
        failures.finish(len(files))

    prior = (load_prior(model, device, precision, channels_last, compile_net, model_config, class_label)
             if task is None else load_palette(model, device, precision, channels_last, compile_net))
    if info is None and checked_steps is not None:  # a hub prior: its timesteps are known now, before any work
        check_steps(checked_steps, loaded_model_info(prior))
    # Notes on how the run proceeds, once nothing can stop it before the work.
    for note in pending:
        click.echo(f"note: {note}", err=True)
    dev = prior.device
    settings = Settings(steps=steps, eta=eta, eta_b=eta_b, clip_denoised=clip_default(clip_denoised, palette=False),
                        average=average)
    notes: list[str] = []
    rows = []
    for n, group in enumerate(groups):
        op, xs = fit(group, op_name, spec, kwargs, clean, prior.channels, files[group.idx[0]], notes)
        if task is None and n == 0:  # the settings depend on the operator's kind and family, not on the size
            click.echo(f"DDRM settings: {settings_note(prior, op, steps=steps, eta=eta, eta_b=eta_b)}", err=True)
        sy = 2.0 * group.sigma_y  # [0, 1] pixel units -> the library's [-1, 1] tensors
        chunks = [slice(j, j + batch_size) for j in range(0, len(group.idx), batch_size)]
        # Each image's generators come from the seed and its file name, never its place in the run.
        keys = [[files[i].name for i in group.idx[chunk]] for chunk in chunks]
        # Observations are simulated on the CPU (the same on every device), before the operator moves.
        ys = [observation(op, spec, xs[chunk], clean, sy, generators(seed, k, NOISE))
              for chunk, k in zip(chunks, keys, strict=True)]
        op = to_device(op, dev)
        for chunk, k, y in zip(chunks, keys, ys, strict=True):
            y = y.to(dev)
            gens = generators(seed, k, SAMPLER, dev)
            result = (restore(prior, op, y, settings, sy, gens, progress) if task is None
                      else restore_palette(prior, op, y, run.steps, average, gens, progress, run.clip_denoised)).cpu()
            truth = group.xs[chunk]
            grey = truth.shape[1] == 1
            if clean:
                rows.extend(_scores(k, truth, baseline(op, y).cpu(), result, grey))
            if grey and result.shape[1] == 3 and not grey_y(spec, clean):
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
        _print_scores(rows, "y" if spec.kind == "codec" else "H_pinv(y)", "DDRM" if task is None else "Palette")
    failures.finish(len(files))


def _check_memory(files: list[Path], failures: Failures, op_name: str, spec: "OperatorSpec | None", clean: bool,
                  info: ModelInfo | None, batch_size: int, device: str | None) -> None:
    """Refuse, from the headers alone, images whose restoration needs more memory than the device has free."""
    from ddrm_kit.imageio import image_size

    sizes: dict[tuple[int, int], list[Path]] = {}
    for f in files:
        size = failures.attempt([f], image_size, f)
        if size is not None:
            sizes.setdefault(size, []).append(f)
    unet = info.unet if info is not None else {}
    # the image's channels (a Palette UNet takes the condition too, twice as many)
    channels = int(unet.get("out_channels") or unet.get("in_channels") or 3)
    for (w, h), paths in sizes.items():
        # The restored image's shape: what the network and the operator work on.
        shape = (channels, h, w) if clean or spec is None else spec.image_shape_for(op_name, (channels, h, w))
        problem = memory_problem(shape, min(batch_size, len(paths)), unet, spec and spec.factory, device)
        if problem is not None:
            text, one_fits = problem
            fix = "use --batch-size 1" if one_fits else "crop or downscale it"
            failures.fail(paths, f"the restoration with --op {op_name} at {text}: {fix}")


def _noise_floors(loaded: list[tuple["torch.Tensor", "ImageInfo"] | None], sigma_y: float,
                  simulated: bool) -> tuple[list[float], list[str]]:
    """Each file's quantisation noise in [0, 1] units (0 for --clean and codecs), and a note per raised level."""
    from ddrm_kit.imageio import quantisation_sigma

    floors = [0.0 if simulated or item is None else quantisation_sigma(item[1]) for item in loaded]
    raised = {f: item[1].bits for f, item in zip(floors, loaded, strict=True) if item is not None and f > sigma_y}
    notes = [f"--sigma-y {sigma_y:g} is below the rounding noise of {bits}-bit image files; restoring them with "
             f"--sigma-y {floor:.3g} (1/((2^{bits} - 1) sqrt(12)))"
             for floor, bits in sorted(raised.items(), reverse=True)]
    return floors, notes


def _group(idx: list[int], loaded: list, files: list[Path], op_name: str, spec: "OperatorSpec | None",
           kwargs: dict[str, Any], clean: bool, sigma_y: float) -> Group:
    """The group of images ``idx`` (one shape), with its operator built."""
    import torch

    src = files[idx[0]]
    xs = as_observed(spec, torch.cat([loaded[i][0] for i in idx]), clean, src)
    label = src.name if len(idx) == 1 else f"{len(idx)} images of {describe(xs)}"
    return Group(idx, xs, build(op_name, spec, xs, kwargs, clean, src), label, sigma_y)


def _scores(names: list[str], truth: "torch.Tensor", base: "torch.Tensor", result: "torch.Tensor",
            grey: bool) -> list[tuple]:
    """(name, baseline PSNR, SSIM, result PSNR, SSIM) per image, on the grey level for grey inputs."""
    from ddrm_kit.restore import score

    if grey:
        base = base.mean(1, keepdim=True) if base.shape[1] == 3 else base
        result = result.mean(1, keepdim=True) if result.shape[1] == 3 else result
    b, r = score(base, truth), score(result, truth)
    return list(zip(names, b["psnr"], b["ssim"], r["psnr"], r["ssim"], strict=True))


def _print_scores(rows: list[tuple], baseline: str, method: str) -> None:
    width = max(len("image"), *(len(r[0]) for r in rows))
    col = max(10, len(method) + 5)
    click.echo(f"{'image':<{width}}  {baseline + ' PSNR':>14} {'SSIM':>6}  {method + ' PSNR':>{col}} {'SSIM':>6}")
    for name, pb, sb, pr, sr in rows:
        click.echo(f"{name:<{width}}  {pb:14.2f} {sb:6.3f}  {pr:{col}.2f} {sr:6.3f}")
    if len(rows) > 1:
        def mean(k: int) -> float:
            return sum(r[k] for r in rows) / len(rows)

        click.echo(f"{'mean':<{width}}  {mean(1):14.2f} {mean(2):6.3f}  {mean(3):{col}.2f} {mean(4):6.3f}")

"""``ddrm sample``: unconditional samples from a prior (DDRM with no measurement)."""

from __future__ import annotations

from pathlib import Path

import click

from ddrm_kit.errors import DDRMError

from .errors import Command
from .files import check_precision, check_writable, describe, load_prior, memory_problem, to_device
from .model_info import ModelInfo, check_steps, loaded_model_info, read_model_info
from .options import (at_least, batch_size_option, class_label_option, model_config_option, model_option,
                      network_options, output_option, progress_option, seed_option, unit_interval)


@click.command("sample", cls=Command)
@model_option
@model_config_option()
@class_label_option("Class of a class-conditional --model (e.g. 0-999 for the ImageNet models): the class drawn.")
@click.option("-n", "--num", default=4, show_default=True, type=int, callback=at_least(1), help="Number of samples.")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W",
              help="Sample height and width in pixels, height first: --size 32 48 draws images 32 high and 48 wide, "
                   "reported as 48x32 (width x height, as every ddrm size). Default: the prior's training size.")
@click.option("--steps", default=50, show_default=True, type=int, callback=at_least(1), help="Network evaluations.")
@click.option("--eta", default=1.0, show_default=True, type=float, callback=unit_interval,
              help="DDIM/DDRM eta: 1 = ancestral, 0 = deterministic.")
@seed_option
@batch_size_option(4, "Samples drawn together.")
@network_options
@progress_option
@output_option("Output folder (sample_000.png, ...).")
def sample_command(model: str | None, model_config: str | None, class_label: int | None, num: int,
                   size: tuple[int, int] | None, steps: int, eta: float, seed: int, batch_size: int,
                   device: str | None, precision: str, fp16: bool, channels_last: bool, compile_net: bool,
                   progress: bool, output: str) -> None:
    """Draw unconditional samples from a prior (DDRM with no measurement), to see what it has learned.

    A prior draws what it was trained on, at the scale it was trained at. A patch prior such as the
    built-in one (trained on 64x64 crops of photos) draws textures, edges and colour blobs with no
    global structure: no objects or scenes, at any --size. Sample it at its training size (the
    default; 64x64 for the built-in prior) to see what it learned; larger sizes only give more of
    the same. Such a prior still restores whole photos: there the observation gives the structure.
    """
    import operators
    from ddrm_kit.imageio import save_image
    from ddrm_kit.restore import SAMPLER, Settings, generators, restore

    folder = Path(output)
    if folder.suffix.lower() == ".png":
        raise click.ClickException(f"{folder}: -o is a folder for sample_000.png, ... ; give a folder name")
    if size is not None and min(size) < 1:
        raise click.ClickException(f"--size must be positive, got {size[0]} {size[1]}")
    check_writable(folder)
    precision = "fp16" if fp16 else precision
    check_precision(precision, device)
    info = read_model_info(model, model_config, class_label)
    if info is not None:
        _check_plan(info, steps, size, min(batch_size, num), device)
    prior = load_prior(model, device, precision, channels_last, compile_net, model_config, class_label)
    if info is None:  # a hub prior: checked now that its config is known, before any work
        info = loaded_model_info(prior)
        _check_plan(info, steps, size, min(batch_size, num), device)
    h, w = size or (_config_size(info.unet),) * 2
    op = to_device(operators.NoMeasurement((prior.channels or 3, h, w)), prior.device)
    settings = Settings(steps=steps, eta=eta, eta_b=1.0)
    for start in range(0, num, batch_size):
        names = [f"sample_{i:03d}" for i in range(start, min(start + batch_size, num))]
        y = op.empty_measurement(len(names), prior.device)
        gens = generators(seed, names, SAMPLER, prior.device)
        xs = restore(prior, op, y, settings, generator=gens, progress=progress).cpu()
        for j, name in enumerate(names):
            written = save_image(xs[j : j + 1], folder / f"{name}.png")
            click.echo(f"wrote {written} ({describe(xs[j:j + 1])})")


def _config_size(unet: dict) -> int:
    """The training resolution of a UNet prior (config sample_size), 64 when unknown."""
    size = unet.get("sample_size")
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else 64


def _check_plan(info: ModelInfo, steps: int, size: tuple[int, int] | None, batch: int, device: str | None) -> None:
    """Refuse --steps beyond the prior's timesteps and samples that need more memory than the device has free."""
    check_steps(steps, info)
    h, w = size or (_config_size(info.unet),) * 2
    problem = memory_problem((int(info.unet.get("in_channels") or 3), h, w), batch, info.unet, None, device)
    if problem is not None:
        fix = "use --batch-size 1" if problem[1] else "use a smaller --size"
        raise DDRMError(f"sampling at {problem[0]}: {fix}")

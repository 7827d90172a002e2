"""``ddrm sample``: unconditional samples from a prior (DDRM with no measurement)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .errors import Command
from .files import check_writable, describe, load_prior
from .options import (at_least, batch_size_option, channels_last_option, compile_option, device_option, model_option,
                      output_option, precision_option, progress_option, seed_option, unit_interval)

if TYPE_CHECKING:
    from ddrm_kit.prior import Prior


@click.command("sample", cls=Command)
@model_option
@click.option("-n", "--num", default=4, show_default=True, type=int, callback=at_least(1), help="Number of samples.")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W", help="Sample size (default: the prior's training size).")
@click.option("--steps", default=50, show_default=True, type=int, callback=at_least(1), help="Network evaluations.")
@click.option("--eta", default=1.0, show_default=True, type=float, callback=unit_interval,
              help="DDIM/DDRM eta: 1 = ancestral, 0 = deterministic.")
@seed_option
@batch_size_option(4, "Samples drawn together.")
@device_option
@precision_option()
@click.option("--fp16", is_flag=True, hidden=True)  # the old spelling of --precision fp16
@channels_last_option
@compile_option
@progress_option
@output_option("Output folder (sample_000.png, ...).")
def sample_command(model: str | None, num: int, size: tuple[int, int] | None, steps: int, eta: float, seed: int,
                   batch_size: int, device: str | None, precision: str, fp16: bool, channels_last: bool,
                   compile_net: bool, progress: bool, output: str) -> None:
    """Draw unconditional samples from a prior (DDRM with no measurement), to see what it has learned."""
    import operators
    from ddrm_kit.imageio import save_image
    from ddrm_kit.restore import SAMPLER, Settings, generators, restore

    folder = Path(output)
    if folder.suffix.lower() == ".png":
        raise click.ClickException(f"{folder}: -o is a folder for sample_000.png, ... ; give a folder name")
    if size is not None and min(size) < 1:
        raise click.ClickException(f"--size must be positive, got {size[0]} {size[1]}")
    check_writable(folder)
    prior = load_prior(model, device, "fp16" if fp16 else precision, channels_last, compile_net)
    h, w = size if size is not None else (_prior_size(prior),) * 2
    op = operators.NoMeasurement((prior.channels or 3, h, w)).to(prior.device)
    settings = Settings(steps=steps, eta=eta, eta_b=1.0)
    for start in range(0, num, batch_size):
        names = [f"sample_{i:03d}" for i in range(start, min(start + batch_size, num))]
        y = op.empty_measurement(len(names), prior.device)
        gens = generators(seed, names, SAMPLER, prior.device)
        xs = restore(prior, op, y, settings, generator=gens, progress=progress).cpu()
        for j, name in enumerate(names):
            written = save_image(xs[j : j + 1], folder / f"{name}.png")
            click.echo(f"wrote {written} ({describe(xs[j:j + 1])})")


def _prior_size(prior: "Prior") -> int:
    """The training resolution of a UNet prior (config.sample_size), 64 when unknown."""
    size = getattr(getattr(getattr(prior.eps, "unet", None), "config", None), "sample_size", None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else 64

"""``ddrm train``: train a diffusion prior or a Palette model on a folder of images (the trainer is ``ddrm_kit.train``)."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from .errors import Command
from .options import (batch_size_option, device_option, output_option, params_option, precision_option,
                      progress_option, sigma_y_option)


@click.command("train", cls=Command)
@click.option("--data", "data", multiple=True, type=click.Path(file_okay=False), help="Folder of training images, searched recursively (repeat for several). Optional with --resume.")
@output_option("Run folder: save_pretrained model (EMA), checkpoint.pt, holdout.csv.", type=click.Path(file_okay=False))
@click.option("--size", default=64, type=click.IntRange(min=8), show_default=True, help="Square crop size in pixels.")
@click.option("--channels", default="32,64,128,128", show_default=True, help="UNet block widths, one per resolution level.")
@click.option("--layers-per-block", default=1, type=click.IntRange(min=1), show_default=True, help="ResNet layers per UNet block.")
@click.option("--attention-levels", type=click.IntRange(min=0), default=None, help="Self-attention at the N lowest resolution levels and the middle block (default 0: conv-only, any image size).")
@click.option("--attention/--no-attention", default=None, help="Same as --attention-levels 2 / 0.")
@click.option("--prediction", type=click.Choice(["epsilon", "v_prediction"]), default="epsilon", show_default=True, help="What the network outputs: the noise, or v = sqrt(abar) eps - sqrt(1-abar) x0.")
@click.option("--loss-weighting", type=click.Choice(["uniform", "min_snr"]), default="uniform", show_default=True, help="Weight over noise levels: uniform, or Min-SNR-gamma (Hang et al. 2023).")
@click.option("--snr-gamma", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True, help="Min-SNR's gamma.")
@click.option("--late-size", type=click.IntRange(min=8), default=None, help="Larger crops from --late-from on (batch scaled by (size/late-size)^2, at least 1).")
@click.option("--late-from", type=click.IntRange(min=0), default=None, help="Step at which --late-size crops start.")
@click.option("--loss", type=click.Choice(["l2", "l1"]), default="l2", show_default=True, help="Squared or absolute error (l1: uniform weighting only).")
@click.option("--t-range", default=None, metavar="FROM:TO", callback=lambda ctx, param, value: _t_range(value), help="Train only at timesteps FROM <= t < TO: a noise-level expert (see ddrm_kit.combine_experts). Default: all.")
@click.option("--init", default=None, metavar="MODEL", help="Fine-tune: start a new run from the weights of MODEL (builtin, a prior folder or a run folder) instead of random ones; give its architecture (--channels, ...).")
@click.option("--palette", "palette", default=None, metavar="OP", help="Train a Palette model (Saharia et al. 2022) for operator OP (see `ddrm ops`) on pairs it makes from the crops.")
@params_option
@sigma_y_option
@batch_size_option(32, "Crops per step.")
@click.option("--lr", default=5e-4, show_default=True, help="AdamW learning rate (linear warm-up over 500 steps).")
@click.option("--ema", default=0.999, type=click.FloatRange(0, 1), show_default=True, help="EMA decay of the saved weights.")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Stop at this total step count.")
@click.option("--minutes", type=click.FloatRange(min=0), default=None, help="Stop after this many minutes of this run.")
@click.option("--checkpoint-every", default=10.0, show_default=True, type=click.FloatRange(min=0), help="Minutes between checkpoints.")
@click.option("--resume", is_flag=True, help="Continue the run in the output folder from its last checkpoint (recipe, weights, optimizer, RNG).")
@device_option
# the shared --seed's help speaks of per-image noise, which training does not have
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for weights, crops, timesteps and noise.")
@precision_option(("auto", "fp32", "bf16"), "auto", "auto: bfloat16 autocast on CUDA and on CPUs with native bf16, else float32.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch (1 is fastest on a CPU that other jobs share).")
@progress_option
def train_command(data: tuple[str, ...], output: str, channels: str, batch_size: int, steps: int | None,
                  minutes: float | None, attention_levels: int | None, attention: bool | None, palette: str | None,
                  params: tuple[str, ...], sigma_y: float, **options: Any) -> None:
    """Train a diffusion prior with DDPM (Ho et al. 2020) on a folder of images.

    The output folder loads with `ddrm solve --model OUT` and `ddrm_kit.load_prior(OUT)`.
    Kill it any time and continue with --resume, which keeps the run's recipe (a note names the
    options given that it ignores). Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a
    checkpoint and exits with status 130 or 143 (128 + the signal); a second Ctrl-C stops at once.

    \b
    With --palette OP it trains a Palette model for that operator instead: each crop x0 is
    observed, y = H(x0) (+ --sigma-y noise; -p KEY=VALUE sets the operator's parameters), and the
    UNet learns the noise from the condition H_pinv(y) (missing pixels filled with noise) next to
    the noisy image. palette.json in OUT records the task; `ddrm solve --model OUT` restores it.
    """
    from ddrm_kit.train import Interrupted, legacy_attention_levels, loss_name, parse_channels, train

    if steps is not None and minutes is not None:
        raise click.UsageError("give either --steps or --minutes, not both")
    if steps is None and minutes is None:
        raise click.UsageError("give a stopping rule: --steps N or --minutes M")
    widths = parse_channels(channels)
    if attention_levels is None:
        attention_levels = legacy_attention_levels(bool(attention), widths)
    elif attention is not None and attention != (attention_levels > 0):
        raise click.UsageError(f"--{'' if attention else 'no-'}attention contradicts --attention-levels {attention_levels}")
    if palette is None and (params or sigma_y):
        raise click.UsageError("-p and --sigma-y describe the task of a Palette model: give --palette OP")
    palette_params = _palette_params(palette, params) if palette is not None else None
    ctx = click.get_current_context()
    given = {name for name in ctx.params if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}
    # the recipe's names for the options that are spelled otherwise here
    explicit = {{"batch_size": "batch", "attention": "attention_levels"}.get(name, name) for name in given}
    try:
        # the library's sigma_y is in [-1, 1] units, twice the pixel units of --sigma-y
        summary = train(list(data), output, channels=widths, batch=batch_size, steps=steps, minutes=minutes,
                        attention_levels=attention_levels, palette=palette, palette_params=palette_params,
                        sigma_y=2.0 * sigma_y, explicit=explicit, **options)
    except Interrupted as stop:  # the trainer has said so on stderr and written its checkpoint
        raise click.exceptions.Exit(stop.exit_code) from None
    click.echo(
        f"done: step {summary['step']}, {summary['images_seen']} images, "
        f"{summary['train_seconds'] / 60:.1f} min of training, "
        f"{loss_name(summary['held_out_images'])} {summary['holdout_loss']:.5f}; model in {summary['out']}"
    )


def _palette_params(palette: str, params: tuple[str, ...]) -> dict[str, Any]:
    """The -p values of --palette OP, typed against its registry entry (an operator taking an array is refused)."""
    from ddrm_kit.train.pairs import palette_spec

    from .params import operator_params

    return operator_params(palette, palette_spec(palette), params, None, None)


def _t_range(text: str | None) -> tuple[int, int] | None:
    """'500:1000' -> (500, 1000); its bounds are checked with the recipe."""
    if text is None:
        return None
    try:
        low, high = (int(part) for part in text.split(":"))
    except ValueError:
        raise click.BadParameter(f"give FROM:TO, two integers like 500:1000, not {text!r}",
                                 param_hint="--t-range") from None
    return low, high

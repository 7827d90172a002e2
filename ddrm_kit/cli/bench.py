"""``ddrm bench``: options -> :class:`ddrm_kit.bench.BenchConfig` -> :func:`ddrm_kit.bench.run_bench`."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ddrm_kit.bench.config import METHODS, BenchConfig
from ddrm_kit.bench.observation import OBSERVATIONS
from ddrm_kit.precision import PRECISIONS

from .errors import Command
from .options import (batch_size_option, class_label_option, device_option, model_config_option, model_option,
                      op_option, output_option, precision_option, progress_option, sampler_options, seed_option,
                      sigma_y_option)


def _command_line() -> str:
    """The command as a user would retype it (``ddrm bench ...``, also under torchrun)."""
    args = sys.argv[1:]
    if args and args[0] == "bench":
        args = args[1:]
    prefix = "ddrm bench"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        prefix = f"torchrun --nproc-per-node {world} -m ddrm_kit.bench"
    return " ".join([prefix, *map(shlex.quote, args)])


@click.command("bench", cls=Command)
@op_option(help="Operator name: sr4, sr_bicubic4, deblur_gauss, inp_random50, inp_box, color, cs4, deno, jpeg10, ... "
                "(see `ddrm ops`); optional with --method palette (the model's own).", required=False)
@click.option("--method", type=click.Choice(METHODS), default="ddrm", show_default=True,
              help="ddrm: DDRM with the --model prior. palette: --model is a Palette model folder (`ddrm train "
                   "--palette OP`), restored with Palette's Algorithm 2 on its own operator, on the same "
                   "observations; --steps defaults to all its T timesteps, --sigma-y to its training noise.")
@model_option
@model_config_option()
@class_label_option()
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Folder of clean images.")
@output_option(help="Results folder (created).", type=click.Path(path_type=Path))
@click.option("--limit", type=int, default=None, help="Use only the first N images (sorted by name).")
@click.option("--size", type=int, default=None,
              help="Resize the short side to SIZE and centre-crop SIZExSIZE (faces, ImageNet-style).")
@click.option("--crop", type=int, default=None,
              help="Centre crop CROPxCROP at native resolution (e.g. 500 for Kodak24's FFDNet crops).")
@sampler_options
@sigma_y_option
@click.option("--observation", type=click.Choice(OBSERVATIONS), default="uint8", show_default=True,
              help="How the simulated observation is stored. uint8: an image observation of a linear operator is "
                   "rounded to 8 bits, as `ddrm degrade` writes it, and the sampler's sigma_y is raised to that "
                   "rounding noise, 1/(255*sqrt(12)) = 0.00113, as `ddrm solve` does for 8-bit files (the result "
                   "equals degrade + solve). float: exact, as `ddrm solve --clean`. Codecs and vector observations "
                   "are never rounded.")
@seed_option
@batch_size_option(1, "Images per DDRM call (same-size images).")
@click.option("--grid", type=int, default=4, show_default=True, help="Images shown in grid.png (0: no grid).")
@device_option
@precision_option()
@click.option("--dtype", type=click.Choice(list(PRECISIONS.values())), default=None, hidden=True)  # old --precision
@click.option("--reference", is_flag=True, help="Print the published DDRM numbers next to ours.")
@click.option("--metrics", default="auto", show_default=True,
              help="LPIPS (per image) and FID, KID (per method, over all images against the ground truth), with "
                   "the optional extra ddrm-kit[metrics]: auto (those whose package and weights are found; "
                   "summary.md says why not the others), all, none, or a list like lpips,kid (each one must run, "
                   "else a one-line error before the run).")
@click.option("--metric-weights", type=click.Path(path_type=Path), default=None,
              help="Folder with the metric networks' weights, alexnet-owt-7be5be79.pth (LPIPS) and "
                   "weights-inception-2015-12-05-6726825d.pth (FID/KID), in it or in its checkpoints/; else "
                   "they are taken from torch's hub cache. Nothing is downloaded.")
@click.option("--save-images", is_flag=True,
              help="Also write every restored image (DDRM's or Palette's) to OUT/images/.")
@click.option("--overwrite", is_flag=True,
              help="Replace the bench results already in OUT (per_image.csv, summary.md, summary.json, grid.png, "
                   "images/); without it such a folder is refused.")
@progress_option
def bench_command(op_name: str, dtype: str | None, **opts: Any) -> None:
    """Score DDRM and baselines on a folder of clean images (per_image.csv, summary.md, grid.png).

    Prints the score table of summary.md and every file written.

    Scale out over GPUs or CPU processes with `torchrun --nproc-per-node N -m ddrm_kit.bench ...`
    (same options; a bare --device cuda is cuda:LOCAL_RANK there): images are sharded over ranks
    and the results equal a single-process run.

    With --method palette --model RUN, the Palette model restores the same observations (its
    operator and parameters from RUN/palette.json; --op may be omitted): --steps defaults to all
    its T timesteps, --sigma-y to the noise it was trained with, x̂0 is clipped unless
    --no-clip-denoised; --eta, --eta-b, --model-config, --class-label and --reference do not
    apply. With --observation uint8 (the default) it gets the 8-bit y DDRM gets, whose rounding
    it does not model (it is told no noise level); --observation float gives it the exact y.
    """
    from ddrm_kit.bench import reference_lines, run_bench
    from ddrm_kit.bench.report import existing_results, means, score_table

    from .palette import missing_op

    if dtype is not None:
        opts["precision"] = {v: k for k, v in PRECISIONS.items()}[dtype]
    ctx = click.get_current_context()
    if opts["method"] == "ddrm" and op_name is None:
        raise missing_op(ctx)
    if opts["method"] == "palette":
        # Not given: the Palette model's own (all T timesteps, its training noise), as `ddrm solve` does.
        for name in ("steps", "sigma_y"):
            if ctx.get_parameter_source(name) is ParameterSource.DEFAULT:
                opts[name] = None
    cfg = BenchConfig(op=op_name, command=_command_line(), **opts)
    rows = run_bench(cfg)
    if rows is None:  # not rank 0
        return
    avg = means(rows)
    # FID/KID are set-level: summary.json holds them (per method).
    sets = (json.loads((cfg.output / "summary.json").read_text()).get("metrics") or {}).get("set_scores")
    click.echo("\n".join(score_table(avg, sets)))
    if cfg.reference:
        click.echo("\n" + "\n".join(reference_lines(cfg.op, cfg.sigma_y, avg)))
    # The folder holds exactly this run's results (an --overwrite run removes the rest).
    for entry in existing_results(cfg.output):
        click.echo(f"wrote {cfg.output / entry}")

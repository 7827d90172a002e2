"""What ``ddrm solve`` does differently for a Palette model: its operator, the options that apply, its loader.

A Palette model (a folder with ``palette.json``, e.g. a ``ddrm train --palette`` run) restores the one
task it was trained for with Palette's Algorithm 2. Everything else (inputs, outputs, batching, seeds,
``--average``, ``--clean``) is ``ddrm solve``'s own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from ddrm_kit.errors import DDRMError
from ddrm_kit.precision import torch_dtype

from .files import check_precision
from .model_info import read_model_info

if TYPE_CHECKING:
    from ddrm_kit.palette_model import PaletteTask
    from ddrm_kit.prior import Prior



@dataclass(frozen=True)
class PaletteRun:
    """How ``ddrm solve`` runs a Palette model: its operator, the --clean noise, the steps and the notes to print."""

    op_name: str
    sigma_y: float  # [0, 1] pixel units: the noise of --clean observations
    steps: int | None  # None: all T timesteps (Algorithm 2)
    clip_denoised: bool
    notes: list[str] = field(default_factory=list)


def describe(task: "PaletteTask") -> str:
    """``uncrop side='right' fraction=0.5`` for a message."""
    return " ".join([task.operator, *(f"{k}={v!r}" for k, v in task.params.items())])


def palette_run(task: "PaletteTask", ctx: click.Context) -> PaletteRun:
    """Check ``ddrm solve``'s options against a Palette model; one-line errors for those that do not apply."""
    p = ctx.params
    op_name = p["op_name"]
    if op_name is not None and op_name != task.operator:
        raise DDRMError(f"--op {op_name}: {p['model']} is a Palette model for {task.operator} only (its palette.json); "
                        f"use --op {task.operator} or omit --op")
    given = [f"-p {item.partition('=')[0]}" for item in p["params"]]
    given += [f"--{name}" for name in ("mask", "kernel") if p[name] is not None]
    if given:
        raise DDRMError(f"{', '.join(given)}: a Palette model restores the task it was trained for "
                        f"({describe(task)}); drop {'them' if len(given) > 1 else 'it'}")
    from ddrm_kit.palette_model import all_steps_note, clip_default, refused_option

    refusal = refused_option(p)
    if refusal:
        raise DDRMError(refusal)
    trained = task.sigma_y / 2.0  # palette.json is in [-1, 1] units, --sigma-y in [0, 1] pixel units
    notes = []
    if ctx.get_parameter_source("sigma_y") is ParameterSource.DEFAULT:
        sigma_y = trained
    elif not p["clean"]:
        raise DDRMError(f"--sigma-y: a Palette model is not told the noise level (it was trained with --sigma-y "
                        f"{trained:g}); --sigma-y only sets the simulated noise of --clean")
    else:
        sigma_y = p["sigma_y"]
        if sigma_y != trained:
            notes.append(f"--sigma-y {sigma_y:g} simulates other noise than the model was trained for ({trained:g})")
    clip = clip_default(p["clip_denoised"], palette=True)
    if ctx.get_parameter_source("steps") is not ParameterSource.DEFAULT:
        return PaletteRun(task.operator, sigma_y, p["steps"], clip, notes)
    info = read_model_info(p["model"])
    note = None if info is None else all_steps_note(info.timesteps)
    if note:
        notes.append(note)
    return PaletteRun(task.operator, sigma_y, None, clip, notes)


def missing_op(ctx: click.Context) -> click.ClickException:
    """Click's own "Missing option '--op'." error, for a model that is not a Palette model."""
    param = next(q for q in ctx.command.params if q.name == "op_name")
    return click.ClickException(click.MissingParameter(ctx=ctx, param=param).format_message())


def load_palette(model: str, device: str | None, precision: str, channels_last: bool, compile_net: bool) -> "Prior":
    """The Palette model for ``--model``, ``--device``, ``--precision``, ``--channels-last`` and ``--compile``."""
    from diffusers.utils import logging as diffusers_logging

    from ddrm_kit.palette_model import load_palette_prior

    # diffusers' load-time advice (accelerate, dtype casts) is not actionable for CLI users.
    diffusers_logging.set_verbosity_error()
    check_precision(precision, device)
    return load_palette_prior(model, device=device, dtype=torch_dtype(precision),
                              channels_last=channels_last, compile=compile_net)

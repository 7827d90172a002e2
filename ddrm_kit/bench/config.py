"""What a bench run depends on (:class:`BenchConfig`) and the checks made before anything slow runs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ddrm_kit.errors import BenchError
from ddrm_kit.precision import PRECISIONS

from .observation import OBSERVATIONS
from .report import existing_results
from .scores import parse_metrics

if TYPE_CHECKING:
    from ddrm_kit.palette_model import PaletteTask

#: ``--method`` values: DDRM with an unconditional prior (the default), or a Palette model for its own task.
METHODS = ("ddrm", "palette")


@dataclass
class BenchConfig:
    """Everything a bench run depends on (the CLI options, in Python)."""

    op: str | None  # None: the Palette model's operator (--method palette); DDRM needs one
    data: Path
    output: Path
    model: str | None = None
    method: str = "ddrm"  # "ddrm", or "palette": `model` is a Palette model folder, restored with Algorithm 2
    model_config: str | None = None  # config of a checkpoint file (ddrm_kit.checkpoints)
    class_label: int | None = None  # class of a class-conditional prior
    limit: int | None = None
    size: int | None = None
    crop: int | None = None
    steps: int | None = None  # None: the prior's settings (else the papers' 20) for DDRM, all T timesteps for Palette
    eta: float | None = None
    eta_b: float | None = None
    clip_denoised: bool | None = None  # None: off for DDRM (the papers), on for Palette (DDPM's sampler)
    average: int = 1  # restorations averaged per image
    sigma_y: float | None = None  # [0, 1] pixel units (doubled for the [-1, 1] API); None: 0, Palette: its own
    observation: str = "uint8"  # "uint8": image observations rounded as a file holds them; "float": exact
    seed: int = 0
    batch_size: int = 1
    grid: int = 4
    device: str | None = None
    precision: str = "fp32"  # the prior's network: fp32, bf16, fp16 (CUDA)
    reference: bool = False
    metric_weights: Path | None = None  # LPIPS/Inception weights files (else the libraries' cache)
    metrics: str = "auto"  # auto, none, all, or lpips,fid,kid (ddrm_kit.bench.scores)
    save_images: bool = False
    overwrite: bool = False  # replace the bench results already in `output`
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        self.data, self.output = Path(self.data), Path(self.output)
        if self.metric_weights is not None:
            self.metric_weights = Path(self.metric_weights)


def settle(cfg: BenchConfig) -> tuple[BenchConfig, "PaletteTask | None", list[str]]:
    """``cfg`` with the method's defaults filled in (operator, ``sigma_y``), the Palette task, notes.

    For ``--method palette`` the operator, its parameters and the default ``sigma_y`` come from the
    model's ``palette.json``; the options that do not apply to it are one-line errors. A Palette
    model given to DDRM, or a DDRM prior to Palette, is refused naming the fix. Palette's steps
    (all T) are settled once the model is loaded.
    """
    from ddrm_kit.palette_model import clip_default, palette_task_of, refused_option

    if cfg.method not in METHODS:
        raise BenchError(f"--method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.method == "ddrm":
        task = palette_task_of(cfg.model)
        if task is not None:
            raise BenchError(f"--model {cfg.model} is a Palette model (trained for {task.operator}), not a DDRM prior: "
                             "add --method palette")
        if cfg.op is None:
            raise BenchError("--op is needed with --method ddrm: name the operator (see `ddrm ops`)")
        return replace(cfg, sigma_y=0.0 if cfg.sigma_y is None else cfg.sigma_y,
                       clip_denoised=clip_default(cfg.clip_denoised, palette=False)), None, []
    refusal = refused_option(vars(cfg))
    if refusal:
        raise BenchError(refusal)
    if cfg.reference:
        raise BenchError("--reference lists published DDRM numbers, not Palette's: drop it with --method palette")
    if cfg.model is None:
        raise BenchError("--method palette needs --model RUN, a Palette model folder (from `ddrm train --palette OP`)")
    if cfg.model == "builtin":
        raise BenchError("--model builtin is the built-in DDRM prior, not a Palette model: use --method ddrm, or give "
                         "--model RUN, a folder from `ddrm train --palette OP`")
    if not Path(cfg.model).expanduser().is_dir():
        raise BenchError(f"--model {cfg.model}: no such Palette model folder (from `ddrm train --palette OP`)")
    task = palette_task_of(cfg.model)
    if task is None:
        raise BenchError(f"--model {cfg.model} has no palette.json, so it is not a Palette model (a DDRM prior?): "
                         "use --method ddrm, or give a folder from `ddrm train --palette OP`")
    if cfg.op is not None and cfg.op != task.operator:
        raise BenchError(f"--op {cfg.op}: {cfg.model} is a Palette model for {task.operator} only (its palette.json); "
                         f"use --op {task.operator} or omit --op")
    trained = task.sigma_y / 2.0  # palette.json is in [-1, 1] units, --sigma-y in [0, 1] pixel units
    notes = []
    if cfg.sigma_y is not None and cfg.sigma_y != trained:
        notes.append(f"--sigma-y {cfg.sigma_y:g} simulates other noise than the model was trained for ({trained:g})")
    return replace(cfg, op=task.operator, sigma_y=trained if cfg.sigma_y is None else cfg.sigma_y,
                   clip_denoised=clip_default(cfg.clip_denoised, palette=True)), task, notes


def check(cfg: BenchConfig):
    """Refuse options the run cannot use, before data or prior are loaded; returns the operator's registry entry.

    ``cfg`` is :func:`settle`'s (an operator and a ``sigma_y``).
    """
    from operators.registry import get_spec

    spec = get_spec(cfg.op)
    parse_metrics(cfg.metrics)  # a misspelt --metrics fails here, before anything runs
    if cfg.size is not None and cfg.crop is not None:
        raise BenchError("give either --size (resize) or --crop (native resolution), not both")
    if cfg.limit is not None and cfg.limit < 1:
        raise BenchError("--limit must be at least 1")
    if cfg.batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    if not cfg.sigma_y >= 0:
        raise BenchError("--sigma-y must be >= 0 (a standard deviation in [0, 1] pixel units)")
    if spec.kind == "codec" and cfg.sigma_y > 0:
        raise BenchError(f"--sigma-y is not used by {cfg.op} (quantisation is the noise); drop it")
    if cfg.observation not in OBSERVATIONS:
        raise BenchError(f"--observation must be one of {', '.join(OBSERVATIONS)}, got {cfg.observation!r}")
    if cfg.precision not in PRECISIONS:
        raise BenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.output.exists() and not cfg.output.is_dir():
        raise BenchError(f"--output {cfg.output}: is a file; give a folder for the results")
    held = existing_results(cfg.output)
    if held and not cfg.overwrite:
        raise BenchError(f"--output {cfg.output} already holds bench results ({', '.join(held)}); "
                         "give another folder, or --overwrite to replace them")
    return spec

"""Palette's training pairs (Saharia et al. 2022, Algorithm 1): the run's task, its operator per crop size, conditions.

A crop ``x0`` is observed with the run's operator, ``y = observe(op, x0, σ_y)``, and conditioned,
``c = palette_condition(op, y)``, each crop with its own pair of generators: one for the measurement
noise (on the CPU, as ``ddrm_kit.restore.observe`` draws it) and one for the fill noise of missing
pixels (on the training device). Their seeds come from the trainer's noise generator, so a resumed
run draws exactly the pairs of a straight one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ddrm_kit.errors import TrainingError
from ddrm_kit.palette_model import PaletteTask
from ddrm_kit.palette_sampler import palette_condition
from ddrm_kit.restore import observe

from .recipe import TrainConfig

#: Parameters whose values are arrays (the CLI's --mask and --kernel files).
ARRAY_PARAMS = ("mask", "kernel")
#: Seeds are drawn below this bound: any non-negative int64 seeds a torch.Generator.
SEED_BOUND = 2**62


def palette_spec(operator: str):
    """The registry entry of ``--palette operator``; refuses, in one line, operators that need an array."""
    from operators import REQUIRED, get_spec

    spec = get_spec(operator)  # an unknown name is a one-line OperatorError naming close ones
    arrays = [p.name for p in spec.params if p.name in ARRAY_PARAMS and p.default is REQUIRED]
    if arrays:
        raise TrainingError(
            f"--palette {operator} needs a {arrays[0]} array, which a Palette run can neither record in palette.json "
            "nor fit to every crop: train an operator whose parameters are numbers or strings (inp_box, uncrop, ...)")
    return spec


def resolve_task(operator: str, params: Mapping[str, Any] | None, sigma_y: float) -> dict[str, Any]:
    """The palette.json body of a new run: the operator, all its parameters (registry defaults filled in), σ_y."""
    from operators import REQUIRED

    spec = palette_spec(operator)
    given = dict(params or {})
    if sigma_y and spec.kind == "codec":
        raise TrainingError(f"--sigma-y does not apply to {operator}: a codec's observation is deterministic; drop it")
    unknown = sorted(k for k in given if spec.param(k) is None)
    if unknown:
        accepted = ", ".join(p.name for p in spec.params) or "none"
        raise TrainingError(f"{operator} has no parameter {', '.join(unknown)} (accepted: {accepted})")
    # a missing required parameter is left out, for PaletteTask to name
    resolved = {p.name: given.get(p.name, p.default) for p in spec.params if p.name in given or p.default is not REQUIRED}
    try:
        # through JSON, so that a fresh run and a resumed one hold the same values (tuples become lists)
        resolved = json.loads(json.dumps(resolved))
    except (TypeError, ValueError):
        raise TrainingError(f"the parameters of --palette {operator} must be numbers, strings or lists") from None
    task = PaletteTask(operator, resolved, sigma_y)
    return {"operator": task.operator, "params": dict(task.params), "sigma_y": task.sigma_y}


def run_task(cfg: TrainConfig) -> PaletteTask | None:
    """The run's task, checked against every crop size it trains on; None for an unconditional prior."""
    if cfg.palette is None:
        return None
    task = PaletteTask(**cfg.palette)
    sizes = sorted({cfg.size, cfg.late_size or cfg.size})
    for size in sizes:
        try:
            task.build((3, size, size))
        except ValueError as err:  # OperatorError and DDRMError are ValueErrors
            raise TrainingError(f"--palette {task.operator} cannot be built for {size}x{size} crops: {err}") from None
    return task


def describe_task(task: PaletteTask) -> str:
    """``uncrop (side='right', fraction=0.5), sigma_y 0`` for a message."""
    params = ", ".join(f"{k}={v!r}" for k, v in task.params.items())
    return f"{task.operator}" + (f" ({params})" if params else "") + f", sigma_y {task.sigma_y:g}"


class Conditions:
    """The conditions ``palette_condition(op, observe(op, x0, σ_y))`` of a run's crops, the operator built per crop size."""

    def __init__(self, task: PaletteTask, device: torch.device) -> None:
        self.task = task
        self.device = torch.device(device)
        self._ops: dict[int, Any] = {}

    def operator(self, size: int):
        """The operator for ``size`` x ``size`` RGB crops, on the device (built once)."""
        if size not in self._ops:
            self._ops[size] = self.task.build((3, size, size)).to(self.device)
        return self._ops[size]

    def __call__(self, x0: torch.Tensor, seeds: Sequence[Sequence[int]]) -> torch.Tensor:
        """The conditions of crops ``x0`` (on the device), crop ``i`` observed and filled with ``seeds[i]``."""
        op = self.operator(x0.shape[-1])
        noise = [torch.Generator().manual_seed(int(a)) for a, _ in seeds]
        fill = [torch.Generator(device=self.device).manual_seed(int(b)) for _, b in seeds]
        with torch.no_grad():
            y = observe(op, x0, self.task.sigma_y, noise)
            return palette_condition(op, y, fill)


def draw_seeds(noise_gen: torch.Generator, batch: int) -> list[list[int]]:
    """A (noise, fill) seed pair per crop, from the trainer's noise generator."""
    return torch.randint(0, SEED_BOUND, (batch, 2), generator=noise_gen, device=noise_gen.device).tolist()


def holdout_conditions(task: PaletteTask, x0: torch.Tensor, seed: int) -> torch.Tensor:
    """Fixed conditions of the held-out crops, made on the CPU from ``seed`` (the same on every device)."""
    rng = np.random.default_rng(seed + 54322)
    seeds = rng.integers(0, SEED_BOUND, size=(len(x0), 2)).tolist()
    return Conditions(task, torch.device("cpu"))(x0, seeds)


def net_input(x_t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """The UNet's input: ``x_t``, or ``cat([c, x_t])`` for a Palette run."""
    return x_t if c is None else torch.cat([c.to(x_t.dtype), x_t], dim=1)

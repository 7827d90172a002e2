"""Palette models on disk: the conditional UNet adapter, the ``palette.json`` marker and the loader.

A Palette model folder is a ``save_pretrained`` folder (flat, or the DDPMPipeline layout with
``unet/`` and ``scheduler/``) whose ``diffusers`` ``UNet2DModel`` takes ``2 C`` channels, the
condition and the noisy image concatenated as ``(c, y_t)``, and predicts ε on ``C``. Next to it,
``palette.json`` records the task the model was trained for::

    {"operator": "uncrop", "params": {"side": "right", "fraction": 0.5}, "sigma_y": 0.0}

``operator`` is a registry name, ``params`` its keywords (JSON values) and ``sigma_y`` the
measurement noise of the training pairs in the units of [-1, 1] tensors (the Python ``sigma_y``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import DDRMError, ModelNotFoundError, UnsupportedModelError
from .prior import (_HAS_ACCELERATE, Prior, _alphas_cumprod, _check_scheduler_config, _has_weights, _read_json,
                    _resolve_device, _resolve_dtype, _UNetEps)

__all__ = ["PALETTE_JSON", "ConditionalUNet", "all_steps_note", "clip_default", "PaletteTask", "load_palette_prior",
           "palette_task_of", "read_palette_task", "refused_option", "write_palette_task"]

#: The marker file of a Palette model folder.
PALETTE_JSON = "palette.json"
#: Above this many timesteps, sampling all of them (the default of `ddrm solve` and `ddrm bench`) gets a note.
STEPS_NOTE_ABOVE = 100


def all_steps_note(total: int) -> str | None:
    """The note on the cost of the default, all ``total`` timesteps, or None when that is few."""
    if total <= STEPS_NOTE_ABOVE:
        return None
    return (f"a Palette model samples all {total} timesteps by default (Algorithm 2), one network evaluation each; "
            f"--steps {STEPS_NOTE_ABOVE} is {total // STEPS_NOTE_ABOVE}x faster (a strided schedule)")


_ALGORITHM_2 = "is a DDRM setting; a Palette model samples with Palette's Algorithm 2: drop it"
_NOT_A_FOLDER_OPTION = "does not apply to a Palette model folder: drop it"
#: Options a Palette model has no use for, by parameter name, with their flags and why: DDRM's sampler
#: settings (Algorithm 2 has none), then those of checkpoint files and class-conditional priors.
NOT_FOR_PALETTE = {"eta": ("--eta", _ALGORITHM_2), "eta_b": ("--eta-b", _ALGORITHM_2),
                   "model_config": ("--model-config", _NOT_A_FOLDER_OPTION),
                   "class_label": ("--class-label", _NOT_A_FOLDER_OPTION)}


def refused_option(given: Mapping[str, Any]) -> str | None:
    """Why the first option of ``NOT_FOR_PALETTE`` set (not None) in ``given`` is refused with a Palette model, or None."""
    return next((f"{flag} {why}" for name, (flag, why) in NOT_FOR_PALETTE.items() if given.get(name) is not None),
                None)


def clip_default(clip_denoised: bool | None, palette: bool) -> bool:
    """``--clip-denoised`` as run: the value given, else on for Palette (DDPM's sampler) and off for DDRM (the papers)."""
    return palette if clip_denoised is None else clip_denoised


class ConditionalUNet(torch.nn.Module):
    """Palette's network as a conditional ε-predictor: ``eps(y_t, t, c) = unet(cat([c, y_t], 1), t)``.

    ``unet`` is a ``UNet2DModel`` with ``in_channels = 2 * out_channels`` predicting ε (Palette's
    choice), or v or x0 (``prediction_type`` as diffusers names them; converted to ε at ``y_t`` with
    ``alphas_cumprod``, as for an unconditional prior). Images of any size are padded to the UNet's
    multiple and cropped back; the output is float32.
    """

    def __init__(self, unet: torch.nn.Module, channels_last: bool = False, alphas_cumprod: torch.Tensor | None = None,
                 prediction_type: str = "epsilon") -> None:
        super().__init__()
        cin, cout = int(unet.config.in_channels), int(unet.config.out_channels)
        if cin != 2 * cout:
            raise UnsupportedModelError(
                f"a Palette UNet takes the condition and the noisy image, 2 x {cout} = {2 * cout} input channels "
                f"for {cout} output channels; this one takes {cin}")
        self.channels = cout
        if prediction_type != "epsilon" and alphas_cumprod is None:
            raise UnsupportedModelError(f"a {prediction_type} Palette UNet needs alphas_cumprod to give ε")
        # The unconditional adapter pads, crops and converts to ε (at y_t, not at its 2C-channel input).
        ac = torch.ones(1) if alphas_cumprod is None else alphas_cumprod
        self.adapter = _UNetEps(unet, ac, prediction_type, channels_last)

    @property
    def unet(self) -> torch.nn.Module:
        return self.adapter.unet

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.adapter(torch.cat([c.to(x.dtype), x], dim=1), t, x_t=x)


@dataclass(frozen=True)
class PaletteTask:
    """What a Palette model restores: its operator's registry name and keywords, and the training ``sigma_y``."""

    operator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    sigma_y: float = 0.0

    def __post_init__(self) -> None:
        from operators import REQUIRED, get_spec

        spec = get_spec(self.operator)  # an unknown name is a one-line OperatorError listing close ones
        params = dict(self.params)
        unknown = sorted(k for k in params if spec.param(k) is None)
        if unknown:
            raise DDRMError(f"operator {self.operator!r} has no parameter {', '.join(unknown)}")
        missing = [p.name for p in spec.params if p.default is REQUIRED and p.name not in params]
        if missing:
            raise DDRMError(f"operator {self.operator!r} needs {missing[0]}=...: {spec.param(missing[0]).help}")
        try:
            json.dumps(params)
        except (TypeError, ValueError):
            raise DDRMError(
                f"the parameters of {self.operator} cannot be recorded in {PALETTE_JSON} (an array?): "
                "Palette models take operators whose parameters are numbers, strings or lists") from None
        try:
            sigma_y = float(self.sigma_y)
        except (TypeError, ValueError):
            sigma_y = math.nan
        if not (sigma_y >= 0.0 and math.isfinite(sigma_y)):
            raise DDRMError(f"sigma_y must be a finite value >= 0, got {self.sigma_y!r}")
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "sigma_y", sigma_y)

    def build(self, image_shape: tuple[int, int, int]):
        """The operator for images of ``image_shape`` (``operators.get_operator``)."""
        from operators import get_operator

        return get_operator(self.operator, image_shape, **self.params)


def write_palette_task(folder: str | os.PathLike, task: PaletteTask) -> Path:
    """Write ``task`` as ``folder/palette.json`` (atomically); returns its path."""
    from .atomic import write_text

    body = {"operator": task.operator, "params": dict(task.params), "sigma_y": task.sigma_y}
    return write_text(Path(folder) / PALETTE_JSON, json.dumps(body, indent=2) + "\n")


def read_palette_task(folder: str | os.PathLike) -> PaletteTask | None:
    """The task in ``folder/palette.json``, or None when the folder has none (not a Palette model)."""
    path = Path(folder) / PALETTE_JSON
    if not path.is_file():
        return None
    body = _read_json(path)
    fits = (isinstance(body, dict) and isinstance(body.get("operator"), str) and isinstance(body.get("params", {}), dict)
            and set(body) <= {"operator", "params", "sigma_y"})
    if not fits:
        raise UnsupportedModelError(
            f"{path} is not a Palette marker: expected {{\"operator\": NAME, \"params\": {{...}}, \"sigma_y\": S}}")
    return PaletteTask(body["operator"], body.get("params", {}), body.get("sigma_y", 0.0))


def palette_task_of(model: str | os.PathLike | None) -> PaletteTask | None:
    """The task of ``model`` when it names a local Palette model folder (one with palette.json), else None."""
    if model is None or model == "builtin":
        return None
    folder = Path(model).expanduser()
    return read_palette_task(folder) if folder.is_dir() else None


def _component(folder: Path, sub: str, config: str) -> Path | None:
    """The folder holding ``config``: ``folder/sub`` (DDPMPipeline layout) or ``folder`` itself."""
    return next((d for d in (folder / sub, folder) if (d / config).is_file()), None)


def load_palette_prior(folder: str | os.PathLike, device: torch.device | str | None = None,
                       dtype: torch.dtype | None = None, *, channels_last: bool = True, compile: bool = False) -> Prior:
    """Load a Palette model folder as a conditional :class:`~ddrm_kit.Prior` (options as ``load_prior``)."""
    from diffusers import UNet2DModel

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(f"no such Palette model folder: {path}")
    if read_palette_task(path) is None:
        raise UnsupportedModelError(
            f"{path} has no {PALETTE_JSON}, so it is not a Palette model (a DDRM prior? load it with load_prior "
            "and restore with ddrm)")
    dev = _resolve_device(device)
    dt = _resolve_dtype(dtype, dev)
    unet_dir = _component(path, "unet", "config.json")
    sched_dir = _component(path, "scheduler", "scheduler_config.json")
    if unet_dir is None or not _has_weights(unet_dir):
        raise ModelNotFoundError(f"no UNet config.json and weights in {path} (root or unet/): save the UNet there")
    if sched_dir is None:
        raise UnsupportedModelError(f"no scheduler_config.json in {path} (root or scheduler/): save the DDPMScheduler")
    sched_cfg = _read_json(sched_dir / "scheduler_config.json")
    _check_scheduler_config(sched_cfg, str(path))
    ac, prediction = _alphas_cumprod(sched_cfg, str(path))
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, torch_dtype=dt, low_cpu_mem_usage=_HAS_ACCELERATE)
    except (OSError, ValueError, RuntimeError) as err:
        raise UnsupportedModelError(f"cannot load the UNet in {unet_dir}: {err}".replace("\n", " ")) from err
    unet = unet.to(dev).eval().requires_grad_(False)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    if compile:
        unet.compile()
    eps = ConditionalUNet(unet, channels_last, ac, prediction).to(dev)
    return Prior(eps, ac, device=dev, dtype=dt, channels=eps.channels, name=str(path), conditional=True)

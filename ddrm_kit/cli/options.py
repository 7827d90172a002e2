"""The options that several commands share: one spelling, one help text, one check for each.

Every command that takes a thing takes it under the same flag: ``--op``, ``--model`` (with
``--model-config`` and ``--class-label`` for checkpoint files and class-conditional models), ``-o/--output``,
``--batch-size``, ``--precision``, ``--device``, ``--seed``, ``--progress/--no-progress``, and the
sampler's ``--steps``, ``--eta``, ``--eta-b``, ``--sigma-y``, ``--clip-denoised``, ``--average``.
Older spellings (``--task``, ``--out``, ``--batch``) still work for one release but are not shown.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import click

from ddrm_kit.precision import PRECISIONS

NOISE_HELP = (
    "Measurement noise std in [0, 1] pixel units (0.05 = 5% of the range); "
    "doubled internally because the library works on [-1, 1] tensors."
)


class AliasedOption(click.Option):
    """An option whose first ``visible`` names are shown in ``--help``; later names are old spellings."""

    def __init__(self, *args: Any, visible: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._visible = visible

    def get_help_record(self, ctx: click.Context):
        opts = self.opts
        self.opts = opts[: self._visible]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts

    def get_error_hint(self, ctx: click.Context) -> str:
        return " / ".join(f"'{name}'" for name in self.opts[: self._visible])


def at_least(low: float) -> Callable:
    """A callback refusing values below ``low`` (and NaN), naming the option as typed."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and not (value >= low):
            raise click.BadParameter(f"must be at least {low:g}, got {value:g}")
        return value

    return check


def unit_interval(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise click.BadParameter(f"must be in [0, 1], got {value:g}")
    return value


def pixel_noise(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """``--sigma-y``: a finite value in [0, 1] pixel units."""
    if value is None:
        return value
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"must be a finite value >= 0, got {value:g}")
    if value > 1:
        raise click.BadParameter(
            f"is in [0, 1] pixel units, got {value:g}: for {value:g} grey levels of 255 use {value / 255:.3g}")
    return value


def op_option(help: str = "Operator name (see `ddrm ops`).", required: bool = True):
    return click.option("--op", "--task", "op_name", cls=AliasedOption, required=required, metavar="OP", help=help)


def output_option(help: str, required: bool = True, **kwargs: Any):
    return click.option("-o", "--output", "--out", "output", cls=AliasedOption, visible=2, required=required,
                        metavar="OUT", help=help, **kwargs)


def batch_size_option(default: int, help: str):
    return click.option("--batch-size", "--batch", "batch_size", cls=AliasedOption, default=default, show_default=True,
                        type=int, callback=at_least(1), help=help)


model_option = click.option(
    "--model", default=None, metavar="M",
    help="Prior: a diffusers UNet2DModel hub id (google/ddpm-celebahq-256), a local save_pretrained "
         "folder, one of the papers' checkpoint files (.pt .pth .ckpt .bin .safetensors: guided-diffusion, "
         "DDPM), or 'builtin' (default: the small built-in prior shipped with ddrm-kit).")
#: The built-in configs of ``--model-config`` (ddrm_kit.checkpoints.PRESETS; written out so --help imports no torch).
MODEL_CONFIGS = ("imagenet_256", "imagenet_256_cc", "imagenet_512_cc", "celeba_hq", "bedroom", "cat", "church")


def model_config_option(what: str = "a checkpoint file given as --model"):
    """``--model-config C``: a built-in config name or a YAML file (checked before any weights are read)."""
    return click.option("--model-config", default=None, metavar="C",
                        help=f"Config of {what}: {', '.join(MODEL_CONFIGS)}, or a DDRM YAML file "
                             "(default: from the file name, else from the weights).")


def class_label_option(help: str = "Class of a class-conditional --model (e.g. 0-999 for the ImageNet models): "
                                   "every image is restored as that class."):
    """``--class-label N``: an integer >= 0 (its upper bound is the model's, checked when it is read)."""
    return click.option("--class-label", type=int, default=None, callback=at_least(0), metavar="N", help=help)
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(?::(\d+))?")
_DEVICE_HINT = "use cpu, cuda, cuda:N or mps"


def check_device(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """``--device``: a torch device this machine has (cpu, cuda[:N], mps, xpu[:N]); one line otherwise."""
    if value is None:
        return None
    name = value.strip().lower()
    match = _DEVICE.fullmatch(name)
    if name == "meta":
        raise click.BadParameter(f"'meta' tensors hold no data, so nothing can be computed there: {_DEVICE_HINT}")
    if match is None:
        close = difflib.get_close_matches(name.partition(":")[0], ["cpu", "cuda", "mps", "xpu"], n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise click.BadParameter(f"unknown device {value!r}; {hint}{_DEVICE_HINT}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return name
    count = _device_count(kind)
    if count == 0:
        raise click.BadParameter(f"{kind} is not available on this machine (torch sees no {kind.upper()} device): "
                                 "use cpu, or omit --device")
    if index is not None and int(index) >= count:
        raise click.BadParameter(f"{name} does not exist: this machine has {count} {kind.upper()} device(s), "
                                 f"{kind}:0 to {kind}:{count - 1}")
    return name


def _device_count(kind: str) -> int:
    """How many devices of ``kind`` torch can use here (MPS: 1 or 0)."""
    import torch

    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        return int(torch.backends.mps.is_available())
    xpu = getattr(torch, "xpu", None)
    return xpu.device_count() if xpu is not None and xpu.is_available() else 0


device_option = click.option("--device", default=None, callback=check_device,
                             help="torch device: cpu, cuda, cuda:1, mps (Apple GPU) (default: cuda if available).")
seed_option = click.option("--seed", default=0, show_default=True, type=int,
                           help="Seed of all randomness; each image's noise comes from the seed and its file name.")
progress_option = click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
params_option = click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
                             help="Operator parameter, e.g. -p sigma=3.0 (repeatable; see `ddrm ops`).")
mask_option = click.option("--mask", default=None, metavar="FILE",
                           help="Inpainting mask (image or .npy, the image's size): white/non-zero = kept pixel. For inp_mask.")
kernel_option = click.option("--kernel", default=None, metavar="FILE",
                             help="Blur kernel (.npy 2-D array or grey image; normalised to sum 1). For deblur.")
sigma_y_option = click.option("--sigma-y", default=0.0, show_default=True, type=float, callback=pixel_noise, help=NOISE_HELP)
# Not given: the prior's ddrm_settings.json for the operator's family, else the papers' values.
steps_option = click.option("--steps", default=None, type=int, callback=at_least(1),
                            help="Sampler steps (network evaluations).  [default: the prior's settings, else 20]")
eta_option = click.option("--eta", default=None, type=float, callback=unit_interval,
                          help="DDRM eta in [0, 1]  [default: the prior's settings, else 0.85; 1.0 for jpeg]")
eta_b_option = click.option("--eta-b", default=None, type=float, callback=unit_interval,
                            help="DDRM eta_b in [0, 1]  [default: the prior's settings, else 1.0; 0.4 for jpeg]")
average_option = click.option("--average", default=1, show_default=True, type=int, callback=at_least(1),
                              help="Average K restorations per image (a posterior-mean estimate).")
clip_option = click.option(
    "--clip-denoised/--no-clip-denoised", default=None,
    help="Clamp each clean-image prediction to the pixel range (diffusers' clip_sample). DDRM: off by default "
         "(the papers' sampler), helps weak priors where the operator leaves values free, e.g. color. Palette "
         "models: on by default (DDPM's sampler).")
channels_last_option = click.option(
    "--channels-last/--no-channels-last", default=True, show_default=True,
    help="Run the network on channels_last (NHWC) tensors: faster on CPU and CUDA, same result up to float rounding.")
compile_option = click.option(
    "--compile", "compile_net", is_flag=True,
    help="torch.compile the network: a slow first step (minutes on CPU), then faster steps; for long CUDA runs.")


def precision_option(choices: Sequence[str] = tuple(PRECISIONS), default: str = "fp32", help: str | None = None):
    """``--precision``: the network's number format (fp16 needs CUDA)."""
    return click.option("--precision", type=click.Choice(list(choices)), default=default, show_default=True,
                        help=help or "Network precision: fp32, fp16 (CUDA only) or bf16; DDRM's spectral algebra stays fp32.")


def network_options(fn: Callable) -> Callable:
    """``--device --precision --channels-last --compile`` (and the hidden ``--fp16``), as ``solve`` and ``sample`` take them."""
    fp16 = click.option("--fp16", is_flag=True, hidden=True)  # the old spelling of --precision fp16
    for option in reversed((device_option, precision_option(), fp16, channels_last_option, compile_option)):
        fn = option(fn)
    return fn


def sampler_options(fn: Callable) -> Callable:
    """``--steps --eta --eta-b --clip-denoised --average``, as ``solve`` and ``bench`` take them."""
    for option in reversed((steps_option, eta_option, eta_b_option, clip_option, average_option)):
        fn = option(fn)
    return fn

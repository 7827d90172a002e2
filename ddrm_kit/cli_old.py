"""The ``ddrm`` command: solve, degrade, ops, sample (+ train, bench).

torch, diffusers and the operators are imported inside the commands, so that ``ddrm --help``
and ``ddrm ops`` answer quickly. User mistakes (``ValueError``/``OSError`` and their ddrm_kit
subclasses) are printed as one line on stderr with a non-zero exit code; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ddrm_kit.bench import bench_command
from ddrm_kit.errors import DDRMError
from ddrm_kit.train import train_command

if TYPE_CHECKING:
    import torch

NOISE_HELP = (
    "Measurement noise std in [0, 1] pixel units (0.05 = 5% of the range); "
    "doubled internally because the library works on [-1, 1] tensors."
)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _user_errors(fn: Callable) -> Callable:
    """Turn user errors into click's one-line ``Error: ...`` (exit 1); bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except (ValueError, OSError) as exc:  # DDRMError and FileNotFoundError are among these
            raise click.ClickException(_one_line(exc)) from None

    return wrapper


def _at_least(low: float, what: str) -> Callable:
    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value < low:
            raise click.ClickException(f"{what} must be at least {low:g}, got {value:g}")
        return value

    return check


def _unit_interval(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise click.ClickException(f"--{param.name.replace('_', '-')} must be in [0, 1], got {value:g}")
    return value


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``-p key=value`` pairs; values are Python literals when they parse as one (5, 2.5, True), else strings."""
    import ast

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise click.ClickException(f"--param takes KEY=VALUE (e.g. -p sigma=3.0), got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = raw
    return out


# ---------------------------------------------------------------------------------------------
# Files: inputs, output names


def _resolve_inputs(inputs: Sequence[str]) -> tuple[list[Path], bool]:
    """Expand folders to their images. Returns the files and whether a folder (or several files) was given."""
    from ddrm_kit.imageio import ImageFileError, ImageNotFoundError, list_images

    files: list[Path] = []
    several = len(inputs) > 1
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise ImageFileError(f"{p}: folder holds no image file (PNG, JPEG, BMP, TIFF)")
            files.extend(found)
            several = True
        elif not p.exists():
            raise ImageNotFoundError(f"{p}: no such file")
        else:
            files.append(p)
    return files, several


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _plan_outputs(inputs: Sequence[Path], several: bool, output: str | None, tag: str,
                  protect: Iterable[Path] = ()) -> list[Path]:
    """One ``.png`` path per input; refuse input paths, name clashes and unwritable folders before any work."""
    from ddrm_kit.imageio import ImageFileError

    tag = re.sub(r"[^\w.-]+", "_", tag)
    if several:
        if output is not None and Path(output).suffix.lower() in (".png", ".jpg", ".jpeg"):
            raise ImageFileError(f"{output}: several inputs need an output folder for -o, not a file name")
        folder = Path(output) if output is not None else Path.cwd()
        outs = [folder / f"{p.stem}_{tag}.png" for p in inputs]
    elif output is None:
        outs = [Path.cwd() / f"{inputs[0].stem}_{tag}.png"]
    else:
        out = Path(output)
        if out.is_dir() or not out.suffix:
            outs = [out / f"{inputs[0].stem}_{tag}.png"]
        elif out.suffix.lower() == ".png":
            outs = [out]
        else:
            raise ImageFileError(f"{out}: outputs are written as PNG (lossless); give a .png file name or a folder")
    seen: dict[Path, Path] = {}
    for src, out in zip(inputs, outs, strict=True):
        if out.resolve() in seen:
            raise ImageFileError(f"{seen[out.resolve()]} and {src} would both be written to {out}: rename one input")
        seen[out.resolve()] = src
        for p in list(inputs) + list(protect):
            if _same_file(out, p):
                raise ImageFileError(f"{out}: is an input file; choose another output path")
    for folder in {o.parent for o in outs}:
        _check_writable(folder)
    return outs


def _check_writable(folder: Path) -> None:
    from ddrm_kit.imageio import ImageFileError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ImageFileError(f"{folder}: output folder is not writable ({e.strerror or e})") from None


def _describe(x: "torch.Tensor") -> str:
    return f"{x.shape[-1]}x{x.shape[-2]} {'grey' if x.shape[-3] == 1 else 'RGB'}"


# ---------------------------------------------------------------------------------------------
# Operators


def _load_mask(path: str) -> "torch.Tensor":
    """A mask file -> bool (H, W): True = observed pixel. Images: white/non-zero kept; .npy: non-zero kept."""
    import numpy as np
    import torch

    from ddrm_kit.imageio import ImageFileError, ImageNotFoundError, load_image

    p = Path(path)
    if p.suffix.lower() == ".npy":
        if not p.exists():
            raise ImageNotFoundError(f"{p}: no such file")
        a = np.load(p, allow_pickle=False)
        if a.ndim != 2:
            raise ImageFileError(f"{p}: a mask .npy must be a 2-D (H, W) array, got shape {a.shape}")
        return torch.from_numpy(a != 0)
    m = load_image(p)[0].mean(0)  # grey or colour: observed where bright
    return m > 0


def _load_kernel(path: str) -> "torch.Tensor":
    """A blur kernel file (.npy 2-D array, or a grey image) -> float64 (kh, kw) summing to 1."""
    import numpy as np
    import torch

    from ddrm_kit.imageio import ImageFileError, ImageNotFoundError, load_image

    p = Path(path)
    if p.suffix.lower() == ".npy":
        if not p.exists():
            raise ImageNotFoundError(f"{p}: no such file")
        k = torch.from_numpy(np.load(p, allow_pickle=False)).to(torch.float64)
        if k.dim() != 2:
            raise ImageFileError(f"{p}: a kernel .npy must be a 2-D array, got shape {tuple(k.shape)}")
    else:
        k = ((load_image(p)[0].mean(0) + 1) / 2).to(torch.float64)
    total = float(k.sum())
    if not total > 0:
        raise ImageFileError(f"{p}: the kernel sums to {total:g}; it must have a positive sum")
    return k / total


def _op_params(params: Sequence[str], mask: str | None, kernel: str | None) -> dict[str, Any]:
    """Operator keywords from -p KEY=VALUE, --mask and --kernel."""
    out = _parse_params(params)
    if mask is not None:
        out["mask"] = _load_mask(mask)
    if kernel is not None:
        out["kernel"] = _load_kernel(kernel)
    return out


def _check_fits(params: dict[str, Any], image_shape: tuple[int, int, int], src: Path) -> None:
    _, h, w = image_shape
    m = params.get("mask")
    if m is not None and tuple(m.shape) != (h, w):
        raise DDRMError(f"the mask is {m.shape[1]}x{m.shape[0]} but {src.name} is {w}x{h}: give a mask of the image's size")
    k = params.get("kernel")
    if k is not None and (k.shape[0] > h or k.shape[1] > w):
        raise DDRMError(f"the kernel is {k.shape[1]}x{k.shape[0]}, larger than {src.name} ({w}x{h})")


def _scale_of(op_name: str) -> int:
    """Upscaling factor of a super-resolution name (sr4, sr_bicubic8), 1 otherwise."""
    m = re.fullmatch(r"sr(?:_bicubic)?(\d+)", op_name)
    return int(m.group(1)) if m else 1


def _image_shape_for(op_name: str, obs_shape: tuple[int, int, int], channels: int) -> tuple[int, int, int]:
    """The clean image shape behind an observation image of ``obs_shape`` (C, h, w)."""
    c, h, w = obs_shape
    s = _scale_of(op_name)
    if op_name == "color":
        c = channels
    return (c, h * s, w * s)


def _make_operator(op_name: str, image_shape: tuple[int, int, int], params: dict[str, Any]):
    import operators

    return operators.get_operator(op_name, image_shape, **params)


def _is_codec(op: Any) -> bool:
    from operators.codec import CodecOperator

    return isinstance(op, CodecOperator)


def _grey_codec_for_colour(codec: Any):
    """A grey codec seen from RGB images: ``J(x) = J_grey(mean_c x)`` repeated on the 3 channels."""
    from operators.codec import CodecOperator

    class GreyOfColour(CodecOperator):
        def __init__(self, inner: CodecOperator) -> None:
            super().__init__()
            self.inner = inner
            self.image_shape = (3, *tuple(inner.image_shape)[1:])

        def encode(self, x: "torch.Tensor"):
            return self.inner.encode(x.mean(1, keepdim=True))

        def decode(self, coeffs) -> "torch.Tensor":
            return self.inner.decode(coeffs).expand(-1, 3, -1, -1)

    return GreyOfColour(codec)


def _check_codec_noise(op: Any, sigma_y: float) -> None:
    """JPEG/quantisation observations are deterministic: measurement noise has no meaning there."""
    if sigma_y and _is_codec(op):
        raise DDRMError("--sigma-y does not apply to jpeg/quant operators: drop it")


# ---------------------------------------------------------------------------------------------
# Prior, device, batches


def _load_prior(model: str | None, device: str | None, fp16: bool, channels_last: bool = True,
                compile_net: bool = False):
    import torch

    from diffusers.utils import logging as diffusers_logging

    from ddrm_kit.prior import load_prior

    # diffusers' load-time advice (accelerate, dtype casts) is not actionable for CLI users.
    diffusers_logging.set_verbosity_error()
    if fp16:
        dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if dev.type != "cuda":
            raise DDRMError("--fp16 needs a CUDA device: drop --fp16 on CPU")
    return load_prior(model, device=device, dtype=torch.float16 if fp16 else None, channels_last=channels_last,
                      compile=compile_net)


def _generators(seed: int, indices: Sequence[int], device: "torch.device", stream: int) -> list["torch.Generator"]:
    """One generator per image, seeded by a hash of (seed, image index, stream).

    A result then depends on the seed and the image alone, not on --batch-size or on the other
    inputs; stream 0 drives the sampler, stream 1 the simulated noise of --clean.
    """
    import numpy as np
    import torch

    def one(i: int) -> int:
        return int(np.random.SeedSequence([seed, i, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)

    return [torch.Generator(device=device).manual_seed(one(i)) for i in indices]


def _batches(shapes: Sequence[tuple[int, ...]], size: int) -> list[list[int]]:
    """Group indices of equal shapes (first-seen order), in chunks of at most ``size``."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(shapes):
        groups.setdefault(tuple(s), []).append(i)
    return [idx[j : j + size] for idx in groups.values() for j in range(0, len(idx), size)]


def _run_ddrm(prior, op, y, steps: int, eta: float | None, eta_b: float | None, sigma_y: float,
              gen, average: int, progress: bool, clip_denoised: bool = False):
    from ddrm_kit.sampler import ddrm

    total = None
    for _ in range(average):
        out = ddrm(prior, op, y, steps=steps, eta=eta, eta_b=eta_b, sigma_y=sigma_y, generator=gen, progress=progress,
                   clip_denoised=clip_denoised)
        total = out if total is None else total + out
    return total / average


def _fit_channels(x: "torch.Tensor", prior_channels: int | None, label: str, notes: list[str]) -> "torch.Tensor":
    """Grey input for a colour prior: replicate to 3 channels (the result is turned back to grey)."""
    c = x.shape[1]
    if prior_channels is None or c == prior_channels:
        return x
    if c == 1 and prior_channels == 3:
        notes.append(f"{label}: grey image restored with a colour prior, saved grey")
        return x.expand(-1, 3, -1, -1)
    raise DDRMError(f"{label} has {c} channel(s) but the prior works on {prior_channels}: convert the image")


# ---------------------------------------------------------------------------------------------
# Commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ddrm-kit")
def main() -> None:
    """DDRM image restoration with diffusers priors (Kawar et al. 2022; JPEG: Kawar et al. 2022b).

    Images are read as PNG/JPEG/BMP/TIFF and written as PNG. Noise levels (--sigma-y) are in
    [0, 1] pixel units. Run `ddrm ops` for the list of degradation operators.
    """


_model_option = click.option(
    "--model", default=None, metavar="M",
    help="Prior: a diffusers UNet2DModel hub id (google/ddpm-celebahq-256), a local save_pretrained "
         "folder, or 'builtin' (default: the small built-in prior shipped with ddrm-kit).")
_device_option = click.option("--device", default=None, help="torch device: cpu, cuda, cuda:1 (default: cuda if available).")
_fp16_option = click.option("--fp16", is_flag=True, help="Run the network in float16 (CUDA only).")
_channels_last_option = click.option(
    "--channels-last/--no-channels-last", default=True, show_default=True,
    help="Run the network on channels_last (NHWC) tensors: faster on CPU and CUDA, same result up to float rounding.")
_compile_option = click.option(
    "--compile", "compile_net", is_flag=True,
    help="torch.compile the network: a slow first step (minutes on CPU), then faster steps; for long CUDA runs.")
_clip_option = click.option(
    "--clip-denoised", is_flag=True,
    help="Clamp each clean-image prediction to the pixel range (diffusers' clip_sample; not in the papers). "
         "Helps weak priors where the operator leaves values free, e.g. color.")
_seed_option = click.option("--seed", default=0, show_default=True, type=int, help="Seed of all randomness (torch.Generator).")


@main.command()
@click.option("--op", "op_name", required=True, metavar="OP", help="Operator name (see `ddrm ops`): sr4, deblur_gauss, inp_mask, color, jpeg, ...")
@_model_option
@click.option("--steps", default=20, show_default=True, type=int, callback=_at_least(1, "--steps"), help="Network evaluations.")
@click.option("--eta", default=None, type=float, callback=_unit_interval, help="DDRM eta in [0, 1]  [default: 0.85; 1.0 for jpeg]")
@click.option("--eta-b", default=None, type=float, callback=_unit_interval, help="DDRM eta_b in [0, 1]  [default: 1.0; 0.4 for jpeg]")
@click.option("--sigma-y", default=0.0, show_default=True, type=float, callback=_at_least(0, "--sigma-y"), help=NOISE_HELP)
@_seed_option
@click.option("--mask", default=None, metavar="FILE", help="Inpainting mask (image or .npy, the input's size): white/non-zero = kept pixel, black/0 = to fill. Use with --op inp_mask.")
@click.option("--kernel", default=None, metavar="FILE", help="Blur kernel (.npy 2-D array or grey image; normalised to sum 1). Use with --op deblur.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extra operator parameter, e.g. -p sigma=3.0 (repeatable; see `ddrm ops`).")
@click.option("--clean", is_flag=True, help="INPUT is a clean image: degrade it (with --sigma-y noise), restore, and print PSNR/SSIM of H_pinv(y) and of the result.")
@click.option("--average", default=1, show_default=True, type=int, callback=_at_least(1, "--average"), help="Average K restorations (the JPEG paper averages 8).")
@_clip_option
@click.option("--batch-size", default=4, show_default=True, type=int, callback=_at_least(1, "--batch-size"), help="Images of the same size restored together.")
@_device_option
@_fp16_option
@_channels_last_option
@_compile_option
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("-o", "--output", default=None, metavar="OUT", help="Output .png (one input) or folder (several inputs / a folder). Default: INPUTNAME_OP.png in the current folder.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@_user_errors
def solve(op_name: str, model: str | None, steps: int, eta: float | None, eta_b: float | None, sigma_y: float,
          seed: int, mask: str | None, kernel: str | None, params: tuple[str, ...], clean: bool, average: int,
          clip_denoised: bool, batch_size: int, device: str | None, fp16: bool, channels_last: bool, compile_net: bool, progress: bool,
          output: str | None, inputs: tuple[str, ...]) -> None:
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
    """
    import torch

    from ddrm_kit.imageio import apply_orientation, load_image_with_info, save_image

    if op_name == "jpeg" and clean:
        raise click.ClickException("--clean needs a quality to simulate: use --op jpeg10 (jpeg<QF>), not jpeg")
    jpeg_file_op = op_name == "jpeg"
    files, several = _resolve_inputs(inputs)
    op_params = _op_params(params, mask, kernel)
    extra_inputs = [Path(p) for p in (mask, kernel) if p is not None]
    outs = _plan_outputs(files, several, output, op_name, protect=extra_inputs)
    loaded = []
    for f in files:
        # A real JPEG is restored in its stored pixel order (its 8x8 block grid), turned upright at the end.
        x, info = load_image_with_info(f, upright=not jpeg_file_op)
        for note in info.notes:
            click.echo(f"note: {f.name}: {note}", err=True)
        loaded.append((x, info))

    shapes = [x.shape[1:] for x, _ in loaded] if not jpeg_file_op else [(i,) for i in range(len(loaded))]
    batches = _batches(shapes, batch_size)
    sy = 2.0 * sigma_y

    def prepare(idx: list[int], prior_channels: int | None, noise_gens, notes: list[str]):
        xs = torch.cat([loaded[i][0] for i in idx])
        label = files[idx[0]].name if len(idx) == 1 else f"{len(idx)} images of {_describe(xs)}"
        return xs, _prepare_batch(op_name, xs, op_params, clean, jpeg_file_op, prior_channels, files[idx[0]],
                                  label, sy, noise_gens, notes)

    # Dry run with the input's own channels: a wrong operator, size, mask or kernel fails before
    # the (slow) prior is loaded.
    for idx in batches:
        prepare(idx, None, None, [])

    prior = _load_prior(model, device, fp16, channels_last, compile_net)
    dev = prior.device
    notes: list[str] = []
    rows = []
    for idx in batches:
        # Simulated noise is drawn on the CPU: the observation is the same on every device.
        xs, (op, y) = prepare(idx, prior.channels, _generators(seed, idx, torch.device("cpu"), 1), notes)
        grey = xs.shape[1] == 1
        op = op.to(dev)
        y = y.to(dev)
        gens = _generators(seed, idx, dev, 0)
        result = _run_ddrm(prior, op, y, steps, eta, eta_b, sy, gens, average, progress, clip_denoised).cpu()
        if clean:
            base = y.cpu() if _is_codec(op) else op.H_pinv(y).cpu()
            rows.extend(_score(files, idx, xs, base, result, grey))
        if grey and result.shape[1] == 3 and op_name != "color":
            result = result.mean(1, keepdim=True)
        for j, i in enumerate(idx):
            r = result[j : j + 1]
            if jpeg_file_op:
                r = apply_orientation(r, loaded[i][1].orientation)
            written = save_image(r, outs[i], protect=files + extra_inputs)
            click.echo(f"wrote {written} ({_describe(r)})")
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if rows:
        _print_scores(rows, "y" if op_name.startswith(("jpeg", "quant")) else "H_pinv(y)")


def _prepare_batch(op_name: str, xs: "torch.Tensor", params: dict[str, Any], clean: bool, jpeg_file: bool,
                   prior_channels: int | None, src: Path, label: str, sy: float, noise_gens, notes: list[str]):
    """(operator, y) for a batch of inputs ``xs``; ``noise_gens`` (one per image) None means a dry run."""
    import torch

    if jpeg_file:
        import operators

        op = operators.JPEG.from_file(src)
        if prior_channels is None or xs.shape[1] == prior_channels:
            return op, xs
        if xs.shape[1] == 1 and prior_channels == 3:
            notes.append(f"{label}: grey JPEG restored with a colour prior (on its grey level), saved grey")
            return _grey_codec_for_colour(op), xs.expand(-1, 3, -1, -1)
        raise DDRMError(f"{label} has {xs.shape[1]} channel(s) but the prior works on {prior_channels}: "
                        "use a prior with as many channels")
    if not clean:
        op, y = _observation(op_name, xs, params, prior_channels, src, label, notes)
        _check_codec_noise(op, sy)
        return op, y
    x_true = _fit_channels(xs, prior_channels, label, notes)
    image_shape = tuple(x_true.shape[1:])
    _check_fits(params, image_shape, src)
    op = _make_operator(op_name, image_shape, params)
    _check_codec_noise(op, sy)
    if _is_codec(op):
        return op, op.J(x_true)
    y = op.H(x_true)
    if sy and noise_gens is not None:
        y = y + sy * torch.stack([torch.randn(y.shape[1:], generator=g, dtype=y.dtype) for g in noise_gens])
    return op, y


def _observation(op_name: str, xs: "torch.Tensor", params: dict[str, Any], prior_channels: int | None,
                 src: Path, label: str, notes: list[str]):
    """(operator, y) for observation images ``xs`` given to `solve`."""
    import torch

    obs_shape = tuple(xs.shape[1:])
    c = obs_shape[0]
    if op_name == "color":
        if c == 3:
            if not bool((xs[:, 0] == xs[:, 1]).all() and (xs[:, 1] == xs[:, 2]).all()):
                raise DDRMError(f"{src.name} is a colour image: --op color takes a grey image")
            xs = xs[:, :1]
            obs_shape = tuple(xs.shape[1:])
        image_shape = _image_shape_for(op_name, obs_shape, prior_channels or 3)
        op = _make_operator(op_name, image_shape, params)
        kind = getattr(op, "observation_kind", "image")
    else:
        probe_shape = _image_shape_for(op_name, obs_shape, prior_channels or c)
        xs = _fit_channels(xs, prior_channels, label, notes)
        image_shape = (xs.shape[1],) + tuple(probe_shape[1:])
        _check_fits(params, image_shape, src)
        op = _make_operator(op_name, image_shape, params)
        kind = "codec" if _is_codec(op) else getattr(op, "observation_kind", "image")
    if kind == "vector":
        raise DDRMError(f"{op_name} observations are vectors, not images: try it on a clean image with --clean")
    if kind == "full_image":
        if tuple(op.image_shape) != tuple(xs.shape[1:]):
            raise DDRMError(f"{op_name} does not fit {src.name} ({_describe(xs)})")
        return op, op.H(xs)
    if kind == "codec":
        return op, xs
    y = xs
    if tuple(y.shape[1:]) != tuple(op.measurement_shape):
        want = "x".join(str(d) for d in op.measurement_shape[::-1][:2])
        raise DDRMError(f"{src.name} ({_describe(y)}) does not fit {op_name}: it expects observations of {want}")
    return op, y.to(torch.float32)


def _score(files: Sequence[Path], idx: Sequence[int], truth, base, result, grey: bool) -> list[tuple]:
    from ddrm_kit.metrics import psnr, ssim

    if grey:
        base = base.mean(1, keepdim=True) if base.shape[1] == 3 else base
        result = result.mean(1, keepdim=True) if result.shape[1] == 3 else result
    small = min(truth.shape[-2:]) < 11
    pb, pr = psnr(base, truth), psnr(result, truth)
    sb = [float("nan")] * len(idx) if small else ssim(base, truth).tolist()
    sr = [float("nan")] * len(idx) if small else ssim(result, truth).tolist()
    return [(files[i].name, pb[j].item(), sb[j], pr[j].item(), sr[j]) for j, i in enumerate(idx)]


def _print_scores(rows: Sequence[tuple], baseline: str) -> None:
    width = max(len("image"), *(len(r[0]) for r in rows))
    click.echo(f"{'image':<{width}}  {baseline + ' PSNR':>14} {'SSIM':>6}  {'DDRM PSNR':>10} {'SSIM':>6}")
    for name, pb, sb, pr, sr in rows:
        click.echo(f"{name:<{width}}  {pb:14.2f} {sb:6.3f}  {pr:10.2f} {sr:6.3f}")
    if len(rows) > 1:
        def mean(k: int) -> float:
            return sum(r[k] for r in rows) / len(rows)

        click.echo(f"{'mean':<{width}}  {mean(1):14.2f} {mean(2):6.3f}  {mean(3):10.2f} {mean(4):6.3f}")


@main.command()
@click.option("--op", "op_name", required=True, metavar="OP", help="Operator name (see `ddrm ops`).")
@click.option("--sigma-y", default=0.0, show_default=True, type=float, callback=_at_least(0, "--sigma-y"), help=NOISE_HELP)
@_seed_option
@click.option("--mask", default=None, metavar="FILE", help="Mask for inp_mask (image or .npy): white/non-zero = kept.")
@click.option("--kernel", default=None, metavar="FILE", help="Kernel for deblur (.npy or grey image).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extra operator parameter (repeatable).")
@click.option("-o", "--output", required=True, metavar="OUT", help="Observation file: .png (or .jpg for jpegQF: a real JPEG file).")
@click.argument("clean_image", metavar="CLEAN")
@_user_errors
def degrade(op_name: str, sigma_y: float, seed: int, mask: str | None, kernel: str | None,
            params: tuple[str, ...], output: str, clean_image: str) -> None:
    """Write the observation y = H(CLEAN) + noise, ready for `ddrm solve`.

    Inpainting operators also write OUT_mask.png (white = kept pixel), for `--op inp_mask --mask`.
    A jpegQF operator with a .jpg OUT writes a real JPEG file at that quality.
    """
    import torch

    from ddrm_kit.imageio import ImageFileError, load_image_with_info, save_image

    src = Path(clean_image)
    x, info = load_image_with_info(src)
    for note in info.notes:
        click.echo(f"note: {src.name}: {note}", err=True)
    out = Path(output)
    protect = [src] + [Path(p) for p in (mask, kernel) if p is not None]
    op_params = _op_params(params, mask, kernel)
    image_shape = tuple(x.shape[1:])
    _check_fits(op_params, image_shape, src)
    op = _make_operator(op_name, image_shape, op_params)
    _check_codec_noise(op, sigma_y)
    if _is_codec(op):
        if out.suffix.lower() in (".jpg", ".jpeg"):
            quality = re.fullmatch(r"jpeg(\d+)", op_name)
            if quality is None:
                raise DDRMError(f"a .jpg output needs a jpeg<QF> operator, not {op_name}: write a .png instead")
            _write_jpeg(x, out, int(quality.group(1)), protect)
            click.echo(f"wrote {out} ({_describe(x)}, JPEG quality {quality.group(1)}); "
                       f"restore it with: ddrm solve --op jpeg {out}")
            return
        outs = _plan_outputs([src], False, output, op_name, protect=protect[1:])
        written = save_image(op.J(x), outs[0], protect=protect)
        click.echo(f"wrote {written} ({_describe(x)}); restore it with: ddrm solve --op {op_name} {written}")
        return
    kind = getattr(op, "observation_kind", "image")
    if kind == "vector":
        raise DDRMError(f"{op_name} observations are vectors, not images: try it with `ddrm solve --clean`")
    outs = _plan_outputs([src], False, output, op_name, protect=protect[1:])
    noise = f" --sigma-y {sigma_y:g}" if sigma_y else ""
    y = op.H(x)
    if sigma_y:
        y = y + 2.0 * sigma_y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    if kind == "full_image":
        seen = op.H_pinv(op.H(torch.ones_like(x))).mean(1, keepdim=True) > 0.5
        observed = torch.where(seen, op.H_pinv(y), torch.zeros_like(x))
        mask_path = outs[0].with_name(outs[0].stem + "_mask.png")
        if any(_same_file(mask_path, p) for p in protect):
            raise ImageFileError(f"{mask_path}: is an input file; choose another output path")
        written = save_image(observed, outs[0], protect=protect)
        save_image(seen.float() * 2 - 1, mask_path, protect=protect)
        click.echo(f"wrote {written} ({_describe(observed)}) and its mask {mask_path}; restore it with: "
                   f"ddrm solve --op inp_mask --mask {mask_path}{noise} {written}")
        return
    if len(op.measurement_shape) != 3:
        raise DDRMError(f"{op_name} observations of shape {op.measurement_shape} are not images")
    written = save_image(y, outs[0], protect=protect)
    click.echo(f"wrote {written} ({_describe(y)}); restore it with: ddrm solve --op {op_name}{noise} {written}")


def _write_jpeg(x: "torch.Tensor", out: Path, quality: int, protect: Sequence[Path]) -> None:
    """Save a real baseline JPEG (libjpeg through Pillow, 4:2:0), refusing input paths."""
    from PIL import Image

    from ddrm_kit.imageio import ImageFileError, to_uint8

    if any(_same_file(out, p) for p in protect):
        raise ImageFileError(f"{out}: is an input file; choose another output path")
    _check_writable(out.parent)
    Image.fromarray(to_uint8(x)).save(out, format="JPEG", quality=quality, subsampling="4:2:0")


def _input_text(spec: Any) -> str:
    """What `ddrm solve` takes as INPUT for a registry entry."""
    if spec.observation_kind == "vector":
        return "a vector: only with --clean"
    if spec.observation_kind == "full_image":
        extra = " + --mask FILE" if "mask" in spec.params else ""
        return f"damaged full-size image{extra}"
    name = spec.display
    if name.startswith("sr"):
        return "low-res image (1/k of the size)"
    if name == "color":
        return "grey image"
    if name.startswith("jpeg"):
        return "decoded JPEG image (same size)"
    extra = " + --kernel FILE" if "kernel" in spec.params and name == "deblur" else ""
    return f"degraded image, same size{extra}"


@main.command("ops")
def ops_command() -> None:
    """List the operators: name, what `ddrm solve` takes as INPUT, parameters (-p KEY=VALUE)."""
    # The registry's metadata without importing torch (a checked snapshot; see ddrm_kit/ops_catalog.py).
    from ddrm_kit.ops_catalog import op_infos

    infos = op_infos()
    rows = [(s.display, _input_text(s), s.description,
             "; ".join(f"{k}={v}" for k, v in s.params.items())) for s in infos]
    if any(s.display.startswith("jpeg") for s in infos):
        rows.append(("jpeg", "a .jpg file", "JPEG artifact removal with the file's own quantisation tables", ""))
    rows.sort(key=lambda r: r[0])
    w0 = max(len("name"), *(len(r[0]) for r in rows))
    w1 = max(len("input"), *(len(r[1]) for r in rows))
    click.echo(f"{'name':<{w0}}  {'input':<{w1}}  description")
    for name, inp, desc, params in rows:
        click.echo(f"{name:<{w0}}  {inp:<{w1}}  {desc}")
        if params:
            click.echo(f"{'':<{w0}}  {'':<{w1}}    params: {params}")
    click.echo("\nParameters are passed as -p KEY=VALUE (e.g. -p sigma=3.0); --mask and --kernel read files.")
    click.echo("--sigma-y is in [0, 1] pixel units (doubled internally for [-1, 1] tensors).")


@main.command()
@_model_option
@click.option("-n", "--num", default=4, show_default=True, type=int, callback=_at_least(1, "-n"), help="Number of samples.")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W", help="Sample size (default: the prior's training size).")
@click.option("--steps", default=50, show_default=True, type=int, callback=_at_least(1, "--steps"), help="Network evaluations.")
@click.option("--eta", default=1.0, show_default=True, type=float, callback=_unit_interval, help="DDIM/DDRM eta: 1 = ancestral, 0 = deterministic.")
@_seed_option
@click.option("--batch-size", default=4, show_default=True, type=int, callback=_at_least(1, "--batch-size"), help="Samples drawn together.")
@_device_option
@_fp16_option
@_channels_last_option
@_compile_option
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("-o", "--output", required=True, metavar="DIR", help="Output folder (sample_000.png, ...).")
@_user_errors
def sample(model: str | None, num: int, size: tuple[int, int] | None, steps: int, eta: float, seed: int,
           batch_size: int, device: str | None, fp16: bool, channels_last: bool, compile_net: bool, progress: bool,
           output: str) -> None:
    """Draw unconditional samples from a prior (DDRM with no measurement), to see what it has learned."""
    from ddrm_kit.imageio import save_image

    folder = Path(output)
    if folder.suffix.lower() == ".png":
        raise click.ClickException(f"{folder}: -o is a folder for sample_000.png, ... ; give a folder name")
    if size is not None and min(size) < 1:
        raise click.ClickException(f"--size must be positive, got {size[0]} {size[1]}")
    _check_writable(folder)
    prior = _load_prior(model, device, fp16, channels_last, compile_net)
    h, w = size if size is not None else (_prior_size(prior),) * 2
    channels = prior.channels or 3
    from ddrm_kit.sampler import ddrm

    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        op = _unconditional((channels, h, w)).to(prior.device)
        y = op.empty_measurement(b, prior.device)
        gens = _generators(seed, range(start, start + b), prior.device, 0)
        xs = ddrm(prior, op, y, steps=steps, eta=eta, eta_b=1.0, generator=gens, progress=progress).cpu()
        for j in range(b):
            written = save_image(xs[j : j + 1], folder / f"sample_{start + j:03d}.png")
            click.echo(f"wrote {written} ({_describe(xs[j:j + 1])})")


def _prior_size(prior) -> int:
    """The training resolution of a UNet prior (config.sample_size), 64 when unknown."""
    size = getattr(getattr(getattr(prior.eps, "unet", None), "config", None), "sample_size", None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else 64


def _unconditional(image_shape: tuple[int, int, int]):
    """``H`` with no rows (m = 0): every spectral entry is null space, so DDRM samples the prior."""
    import torch

    from operators.base import SVDOperator

    class NoMeasurement(SVDOperator):
        def __init__(self, shape: tuple[int, int, int]) -> None:
            super().__init__(shape, (0,))
            self._set_singulars(torch.zeros(0, dtype=torch.float64))

        def V(self, z: torch.Tensor) -> torch.Tensor:
            return z.reshape(z.shape[0], *self.image_shape)

        def Vt(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], -1)

        def U(self, w: torch.Tensor) -> torch.Tensor:
            return w.reshape(w.shape[0], 0)

        def Ut(self, y: torch.Tensor) -> torch.Tensor:
            return y.reshape(y.shape[0], 0)

        def empty_measurement(self, batch: int, device: torch.device) -> torch.Tensor:
            return torch.zeros(batch, 0, device=device)

    return NoMeasurement(image_shape)


main.add_command(train_command)
main.add_command(bench_command)

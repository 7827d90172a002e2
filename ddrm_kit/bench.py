"""`ddrm bench`: a folder of clean images + a prior + a task -> the papers' table rows, with baselines.

For every image: preprocess (``--size`` / ``--crop``), degrade with the task's operator (plus
``--sigma-y`` noise), restore with DDRM, and score DDRM and the baselines (``H_pinv(y)``, bicubic
upsampling of the low-resolution image for super-resolution, and the observation itself where it
is an image of the original size) with the papers' per-image PSNR, the PSNR after 8-bit rounding,
and SSIM. Writes ``per_image.csv``, ``summary.md`` (+ ``summary.json``) and ``grid.png``.

Scale-out: run the same command under ``torchrun --nproc-per-node N``; images are sharded over
the ranks (``torch.distributed``, gloo on CPU, nccl on CUDA) and rank 0 gathers the rows and
writes the outputs. Each image's randomness comes from a generator seeded by ``(--seed, image
index)``, so the rows do not depend on the number of ranks or on ``--batch``.

torch and diffusers are imported inside functions so that ``ddrm --help`` starts fast.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from ddrm_kit.errors import DDRMError

if TYPE_CHECKING:
    import torch

__all__ = ["BenchConfig", "BenchError", "bench_command", "image_seed", "preprocess", "run_bench"]

CSV_NAME = "per_image.csv"
CSV_FIELDS = ("index", "name", "method", "psnr", "psnr_uint8", "ssim", "lpips", "seconds")
# Display names and order of the methods in summary.md.
METHOD_LABELS = {
    "ddrm": "DDRM",
    "h_pinv": "H_pinv(y)",
    "bicubic": "bicubic upsampling of y",
    "observation": "observation y",
}
# torchvision's AlexNet weights, the backbone of LPIPS (lpips ships its own linear layers).
LPIPS_BACKBONE = Path("checkpoints") / "alexnet-owt-7be5be79.pth"
METRICS_NOTE_OFF = (
    "LPIPS, FID and KID were not computed: their networks' weights are never downloaded. "
    "For LPIPS install the optional package `lpips` and pass `--metric-weights DIR` with "
    f"torchvision's AlexNet weights at `DIR/{LPIPS_BACKBONE.as_posix()}`. FID/KID are set-level "
    "statistics that need thousands of images; use `--save-images` and an external tool "
    "(e.g. torch-fidelity) on the saved outputs."
)


class BenchError(DDRMError):
    """A bench option, data folder or image the bench cannot use (the message says what to do)."""


class BenchDataNotFoundError(BenchError, FileNotFoundError):
    """The ``--data`` folder or ``--metric-weights`` folder does not exist or holds no images."""


@dataclass
class BenchConfig:
    """Everything a bench run depends on (the CLI options, in Python)."""

    task: str
    data: Path
    out: Path
    model: str | None = None
    limit: int | None = None
    size: int | None = None
    crop: int | None = None
    steps: int = 20
    eta: float | None = None
    eta_b: float | None = None
    clip_denoised: bool = False
    sigma_y: float = 0.0  # [0, 1] pixel units, doubled for the [-1, 1] API
    seed: int = 0
    batch: int = 1
    grid: int = 4
    device: str | None = None
    dtype: str = "float32"  # the prior's network dtype: float32, bfloat16, float16 (CUDA)
    reference: bool = False
    metric_weights: Path | None = None
    save_images: bool = False
    progress: bool = True
    command: str = ""


# --------------------------------------------------------------------------------------------
# Preprocessing and seeds


def image_seed(seed: int, index: int) -> int:
    """The generator seed of image ``index``: a hash of ``(seed, index)`` (numpy SeedSequence).

    It depends on nothing else, so sharding over ranks and batching leave every image's noise,
    and hence every row of ``per_image.csv``, unchanged.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def task_multiple(task: str) -> int:
    """The factor image sides must be a multiple of for ``task`` (the scale of ``sr*``, else 1)."""
    m = re.fullmatch(r"sr(?:_bicubic)?(\d+)", task)
    return int(m.group(1)) if m else 1


def preprocess(
    x: "torch.Tensor", size: int | None = None, crop: int | None = None, multiple: int = 1, channels: int = 3
) -> "torch.Tensor":
    """Bring one ``(1, C, H, W)`` image in [-1, 1] to the bench's input.

    - ``size``: ImageNet-style, resize the short side to ``size`` (antialiased bicubic) and take
      the centre ``size x size`` square; on square images (faces) this is a plain resize.
    - ``crop``: the centre ``crop x crop`` square at native resolution (top/left offsets
      ``(H - crop) // 2``, ``(W - crop) // 2``; on Kodak's 768x512 this is FFDNet's ``img[6:506, 134:634]``).
    - neither: the native image.
    Then sides are cut at the bottom/right to a multiple of ``multiple`` (the SR scale, the
    benchmarks' "modcrop"), and grey images are repeated to ``channels`` channels.
    """
    import torch.nn.functional as F

    if size is not None and crop is not None:
        raise BenchError("give either --size (resize) or --crop (native resolution), not both")
    _, c, h, w = x.shape
    if crop is not None:
        if crop > h or crop > w:
            raise BenchError(f"image is {w}x{h}, smaller than --crop {crop}; use a smaller --crop or --size")
        top, left = (h - crop) // 2, (w - crop) // 2
        x = x[:, :, top : top + crop, left : left + crop]
    elif size is not None:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, :, top : top + size, left : left + size]
    h, w = x.shape[-2:]
    h, w = h - h % multiple, w - w % multiple
    if h == 0 or w == 0:
        raise BenchError(f"image is smaller than the task's scale {multiple}; use larger images")
    x = x[:, :, :h, :w]
    if c == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    elif c != channels:
        raise BenchError(f"image has {c} channels but the prior takes {channels}; use a {c}-channel prior")
    return x.contiguous()


# --------------------------------------------------------------------------------------------
# Distributed helpers


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False


def _dist_init(device: str | None) -> _Dist:
    """Join the torchrun job when ``WORLD_SIZE > 1`` (env:// rendezvous; gloo on CPU, nccl on CUDA)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def _gather(obj: Any, d: _Dist) -> list[Any]:
    if d.world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------
# The run


def _resolve_device(device: str | None, d: _Dist) -> "torch.device":
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank)
    return dev


def _sync(device: "torch.device") -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _lpips_model(weights: Path, device: "torch.device"):
    """LPIPS (Zhang et al. 2018, AlexNet) from local weights only; a clean error otherwise."""
    import importlib.util

    import torch

    if not weights.is_dir():
        raise BenchDataNotFoundError(f"--metric-weights {weights}: no such folder")
    if importlib.util.find_spec("lpips") is None:
        raise BenchError("--metric-weights needs the optional package `lpips` (pip install lpips); or drop the option")
    if not (weights / LPIPS_BACKBONE).is_file():
        raise BenchDataNotFoundError(
            f"--metric-weights {weights}: put torchvision's AlexNet weights at {weights / LPIPS_BACKBONE} "
            "(nothing is downloaded)"
        )
    import lpips

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(weights))  # torchvision finds the backbone there and does not download
    try:
        model = lpips.LPIPS(net="alex", verbose=False)
    finally:
        torch.hub.set_dir(old)
    return model.to(device).eval()


class _Task:
    """The task's operator per image shape, the observation and the baselines."""

    def __init__(self, name: str, device: "torch.device", sigma_y: float):
        self.name = name
        self.device = device
        self.sigma = 2.0 * sigma_y  # [0, 1] pixel units -> the [-1, 1] API
        self._ops: dict[tuple[int, ...], Any] = {}

    def op(self, shape: tuple[int, int, int]):
        if shape not in self._ops:
            from operators import get_operator

            self._ops[shape] = get_operator(self.name, shape).to(self.device)
        return self._ops[shape]

    def is_codec(self, op) -> bool:
        from operators.codec import CodecOperator

        return isinstance(op, CodecOperator)

    def observe(self, op, x: "torch.Tensor", gens: Sequence["torch.Generator"]) -> "torch.Tensor":
        """``y = H(x) + sigma n`` (per-image noise from its own generator); ``J(x)`` for codecs."""
        import torch

        if self.is_codec(op):
            return op.J(x)
        y = op.H(x)
        if self.sigma > 0:
            noise = torch.stack(
                [torch.randn(y.shape[1:], generator=g, device=y.device, dtype=y.dtype) for g in gens]
            )
            y = y + self.sigma * noise
        return y

    def baselines(self, op, y: "torch.Tensor", image_shape: tuple[int, int, int]) -> dict[str, tuple[Any, float]]:
        """``method -> (images, seconds per image)`` for the baselines of this observation."""
        import torch.nn.functional as F

        out: dict[str, tuple[Any, float]] = {}
        n = y.shape[0]
        if not self.is_codec(op):
            t0 = time.perf_counter()
            xp = op.H_pinv(y)
            _sync(self.device)
            out["h_pinv"] = (xp, (time.perf_counter() - t0) / n)
            c, h, w = image_shape
            if y.dim() == 4 and y.shape[1] == c and (y.shape[-2] < h or y.shape[-1] < w):
                # A low-resolution image of the scene: the classic bicubic-upsampling baseline.
                t0 = time.perf_counter()
                xb = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
                _sync(self.device)
                out["bicubic"] = (xb, (time.perf_counter() - t0) / n)
        if tuple(y.shape[1:]) == tuple(image_shape):
            out["observation"] = (y, 0.0)
        return out

    def show_observation(self, op, y: "torch.Tensor", image_shape: tuple[int, int, int]) -> "torch.Tensor":
        """The observation as a full-size picture for the grid (nearest upsampling, H_pinv for masks/vectors)."""
        import torch.nn.functional as F

        c, h, w = image_shape
        if tuple(y.shape[1:]) == tuple(image_shape):
            return y
        if y.dim() == 4 and not self.is_codec(op):
            from operators.registry import get_spec

            if get_spec(self.name).observation_kind == "image":
                v = F.interpolate(y, size=(h, w), mode="nearest") if y.shape[-2:] != (h, w) else y
                return v.expand(-1, c, -1, -1) if v.shape[1] == 1 else v
        return op.H_pinv(y)


def _run_ddrm(prior, op, y, gens, cfg: BenchConfig):
    from ddrm_kit import ddrm

    kwargs: dict[str, Any] = {}
    if cfg.eta is not None:
        kwargs["eta"] = cfg.eta
    if cfg.eta_b is not None:
        kwargs["eta_b"] = cfg.eta_b
    generator = gens[0] if len(gens) == 1 else list(gens)
    return ddrm(
        prior, op, y, steps=cfg.steps, sigma_y=2.0 * cfg.sigma_y, generator=generator, progress=False,
        clip_denoised=cfg.clip_denoised, **kwargs
    )


def _score(x, ref, lpips_model) -> list[dict[str, float]]:
    from ddrm_kit.metrics import psnr, psnr_uint8, ssim

    p, pu, s = psnr(x, ref), psnr_uint8(x, ref), ssim(x, ref)
    lp = None
    if lpips_model is not None:
        import torch

        with torch.no_grad():
            lp = lpips_model(x.clamp(-1, 1).float(), ref.float()).flatten().double().cpu()
    return [
        {
            "psnr": float(p[i]),
            "psnr_uint8": float(pu[i]),
            "ssim": float(s[i]),
            "lpips": float(lp[i]) if lp is not None else "",
        }
        for i in range(x.shape[0])
    ]


def _batches(indices: list[int], load: Callable[[int], "torch.Tensor"], size: int):
    """Yield ``(indices, images)``: consecutive images of one shape, at most ``size`` at a time.

    Images are loaded as they are needed, so a large data set never sits in memory at once.
    """
    group: list[int] = []
    imgs: list = []
    for i in indices:
        x = load(i)
        if group and (len(group) == size or imgs[0].shape != x.shape):
            yield group, imgs
            group, imgs = [], []
        group.append(i)
        imgs.append(x)
    if group:
        yield group, imgs


def _list_data(cfg: BenchConfig) -> list[Path]:
    from ddrm_kit.imageio import list_images

    if not cfg.data.is_dir():
        raise BenchDataNotFoundError(f"--data {cfg.data}: no such folder; give a folder of clean images")
    files = list_images(cfg.data)
    if not files:
        raise BenchDataNotFoundError(f"--data {cfg.data}: no image files (PNG, JPEG, BMP, TIFF) in it")
    return files[: cfg.limit] if cfg.limit else files


def run_bench(cfg: BenchConfig, prior=None) -> list[dict[str, Any]] | None:
    """Run the bench described by ``cfg``; returns the rows on rank 0 (``None`` on other ranks).

    ``prior`` may be given directly (any ``ddrm_kit.Prior``); otherwise ``cfg.model`` is loaded
    with ``ddrm_kit.load_prior``. Outputs are written to ``cfg.out`` by rank 0.
    """
    import torch

    from ddrm_kit.imageio import load_image, save_image, to_uint8

    if cfg.size is not None and cfg.crop is not None:
        raise BenchError("give either --size (resize) or --crop (native resolution), not both")
    if cfg.limit is not None and cfg.limit < 1:
        raise BenchError("--limit must be at least 1")
    if cfg.batch < 1:
        raise BenchError("--batch must be at least 1")
    if cfg.sigma_y < 0:
        raise BenchError("--sigma-y must be >= 0 (a standard deviation in [0, 1] pixel units)")
    files = _list_data(cfg)
    d = _dist_init(cfg.device)
    try:
        if prior is None:
            from ddrm_kit import load_prior

            device = _resolve_device(cfg.device, d)
            prior = load_prior(cfg.model, device=device, dtype=getattr(torch, cfg.dtype))
        else:
            device = prior.device
            cfg = replace(cfg, model=cfg.model or prior.name or "(a Python Prior)",
                          dtype=str(prior.dtype).removeprefix("torch."))
        lpips_model = _lpips_model(cfg.metric_weights, device) if cfg.metric_weights is not None else None
        task = _Task(cfg.task, device, cfg.sigma_y)
        multiple = task_multiple(cfg.task)
        channels = prior.channels or 3

        wall0 = time.perf_counter()
        mine = list(range(d.rank, len(files), d.world))

        def load(i: int) -> torch.Tensor:
            return preprocess(load_image(files[i]), cfg.size, cfg.crop, multiple, channels)

        rows: list[dict[str, Any]] = []
        panels: dict[int, list] = {}
        bar = None
        if d.rank == 0 and cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(files), unit="img", desc=f"bench {cfg.task}", file=sys.stderr)
        for batch, imgs in _batches(mine, load, cfg.batch):
            x = torch.cat(imgs).to(device)
            shape = tuple(x.shape[1:])
            op = task.op(shape)
            if task.is_codec(op) and cfg.sigma_y > 0:
                raise BenchError(f"--sigma-y is not used by {cfg.task} (JPEG quantisation is the noise); drop it")
            gens = [torch.Generator(device=device).manual_seed(image_seed(cfg.seed, i)) for i in batch]
            with torch.no_grad():
                y = task.observe(op, x, gens)
                methods = task.baselines(op, y, shape)
                _sync(device)
                t0 = time.perf_counter()
                xr = _run_ddrm(prior, op, y, gens, cfg)
                _sync(device)
                sec = (time.perf_counter() - t0) / len(batch)
                methods = {"ddrm": (xr, sec), **methods}
                for method, (out, secs) in methods.items():
                    for i, sc in zip(batch, _score(out.float(), x, lpips_model)):
                        rows.append({"index": i, "name": files[i].name, "method": method, **sc, "seconds": secs})
                if cfg.save_images:
                    for k, i in enumerate(batch):
                        save_image(xr[k : k + 1].float().cpu(), cfg.out / "images" / f"{files[i].stem}.png")
                if batch[0] < cfg.grid:
                    obs = task.show_observation(op, y, shape)
                    base = methods.get("bicubic", methods.get("h_pinv", methods.get("observation")))[0]
                    for k, i in enumerate(batch):
                        if i < cfg.grid:
                            panels[i] = [to_uint8(t[k : k + 1].float().cpu()) for t in (x, obs, base, xr)]
            if bar is not None:
                bar.update(min(d.world * len(batch), bar.total - bar.n))
                bar.set_postfix_str(f"{sec:.2f} s/img")
        if bar is not None:
            bar.close()

        gathered = _gather((rows, panels), d)
        if d.rank != 0:
            return None
        all_rows = sorted(
            (r for part, _ in gathered for r in part), key=lambda r: (r["index"], list(METHOD_LABELS).index(r["method"]))
        )
        all_panels = {i: p for _, part in gathered for i, p in part.items()}
        wall = time.perf_counter() - wall0
        _write_outputs(cfg, all_rows, all_panels, len(files), wall, d.world, device)
        return all_rows
    finally:
        if d.owns_group:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# Outputs


def _means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for method in METHOD_LABELS:
        sel = [r for r in rows if r["method"] == method]
        if not sel:
            continue
        m = {k: sum(r[k] for r in sel) / len(sel) for k in ("psnr", "psnr_uint8", "ssim", "seconds")}
        if all(r["lpips"] != "" for r in sel):
            m["lpips"] = sum(r["lpips"] for r in sel) / len(sel)
        m["n"] = len(sel)
        out[method] = m
    return out


def _preprocess_text(cfg: BenchConfig) -> str:
    if cfg.crop is not None:
        how = f"centre {cfg.crop}x{cfg.crop} crop at native resolution"
    elif cfg.size is not None:
        how = f"short side resized to {cfg.size} (antialiased bicubic), centre {cfg.size}x{cfg.size} crop"
    else:
        how = "native resolution"
    m = task_multiple(cfg.task)
    if m > 1:
        how += f", sides cut to a multiple of {m}"
    return how + "; grey images repeated to RGB"


def _write_grid(panels: dict[int, list], path: Path) -> None:
    """Rows = images, columns = ground truth / observation / baseline / DDRM, white gutters."""
    import numpy as np
    import torch

    from ddrm_kit.imageio import save_image

    gap = 4
    rows = []
    width = max(sum(p.shape[1] for p in ps) + gap * (len(ps) - 1) for ps in panels.values())
    for i in sorted(panels):
        ps = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in panels[i]]
        h = max(p.shape[0] for p in ps)
        row = np.full((h, width, 3), 255, np.uint8)
        x0 = 0
        for p in ps:
            row[: p.shape[0], x0 : x0 + p.shape[1]] = p
            x0 += p.shape[1] + gap
        rows.append(row)
        rows.append(np.full((gap, width, 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1])
    t = torch.from_numpy(grid).permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1.0
    save_image(t, path)


def _fmt(v: float, digits: int) -> str:
    return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def reference_lines(task: str, sigma_y: float, ours: dict[str, dict[str, float]]) -> list[str]:
    """Markdown lines: the published DDRM numbers for ``task`` next to this run's DDRM PSNR."""
    from ddrm_kit.reference import published_for

    pubs = published_for(task)
    if not pubs:
        return [f"No verified published numbers for `{task}` (see ddrm_kit/reference.py for what is listed)."]
    lines = [
        "| source | setup | --sigma-y | method | PSNR (dB) | KID x1e3 | ours: DDRM PSNR (same --sigma-y?) |",
        "|---|---|---|---|---|---|---|",
    ]
    mine = ours.get("ddrm", {}).get("psnr")
    for p in pubs:
        same = "yes" if math.isclose(p.sigma_y_pixel, sigma_y, abs_tol=1e-9) else "no"
        kid = "" if p.kid is None else f"{p.kid:.2f}"
        ourtxt = "" if mine is None else f"{_fmt(mine, 2)} ({same})"
        lines.append(
            f"| {p.source} | {p.setup} | {p.sigma_y_pixel:g} | {p.method} | {p.psnr:.2f} | {kid} | {ourtxt} |"
        )
    lines.append("")
    lines.append(
        "The published rows use other data and a much larger prior; compare trends, not digits. "
        "DDRM's sigma_y = 0.05 is on [-1, 1] images, i.e. --sigma-y 0.025 here."
    )
    return lines


def _write_outputs(
    cfg: BenchConfig, rows: list[dict[str, Any]], panels: dict[int, list], n_images: int, wall: float,
    world: int, device: "torch.device",
) -> None:
    cfg.out.mkdir(parents=True, exist_ok=True)
    with open(cfg.out / CSV_NAME, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    means = _means(rows)
    if panels:
        _write_grid(panels, cfg.out / "grid.png")
    codec = re.fullmatch(r"(jpeg|quant)\d+", cfg.task) is not None  # quantisation is the only noise
    noise = f", sigma_y {cfg.sigma_y:g} (pixel units)" if cfg.sigma_y > 0 else ("" if codec else ", noiseless")
    eta = "sampler default" if cfg.eta is None else f"{cfg.eta:g}"
    eta_b = "sampler default" if cfg.eta_b is None else f"{cfg.eta_b:g}"
    has_lpips = all("lpips" in m for m in means.values())
    lines = [
        f"# ddrm bench: `{cfg.task}`{noise} on `{cfg.data}`",
        "",
        f"Command: `{cfg.command}`" if cfg.command else "Command: (Python API, `ddrm_kit.bench.run_bench`)",
        "",
        f"- images: {n_images}" + (f" (--limit {cfg.limit})" if cfg.limit else ""),
        f"- preprocessing: {_preprocess_text(cfg)}",
        f"- prior: `{cfg.model or 'builtin'}` ({cfg.dtype}); steps {cfg.steps}, eta {eta}, eta_b {eta_b}, seed {cfg.seed}"
        + (", x̂0 clipped to [-1, 1]" if cfg.clip_denoised else "")
        + " (per image: hash of seed and image index)",
        f"- device: {device.type}, ranks: {world}, batch {cfg.batch}; wall time {wall:.1f} s",
        "- PSNR: per image on the [0, 1]-clamped float output, then averaged (DDRM's way); "
        "PSNR uint8: after 8-bit rounding of both images; SSIM: Wang et al. 2004, per RGB channel",
        "",
        "| method | PSNR (dB) | PSNR uint8 (dB) | SSIM |" + (" LPIPS |" if has_lpips else "") + " s / image |",
        "|---|---|---|---|" + ("---|" if has_lpips else "") + "---|",
    ]
    for method, m in means.items():
        lp = f" {m['lpips']:.4f} |" if has_lpips else ""
        lines.append(
            f"| {METHOD_LABELS[method]} | {_fmt(m['psnr'], 2)} | {_fmt(m['psnr_uint8'], 2)} | {m['ssim']:.4f} |"
            f"{lp} {m['seconds']:.3f} |"
        )
    lines += ["", METRICS_NOTE_OFF if not has_lpips else "LPIPS: AlexNet v0.1 (Zhang et al. 2018), local weights. "
              "FID/KID not computed (set-level; use --save-images and an external tool).", ""]
    if cfg.reference:
        lines += ["## Published numbers", ""] + reference_lines(cfg.task, cfg.sigma_y, means) + [""]
    if panels:
        lines += [
            "![grid](grid.png)",
            "",
            f"`grid.png`: the first {len(panels)} images; columns: ground truth, observation, "
            "baseline (bicubic for SR, else H_pinv(y) or the observation), DDRM.",
            "",
        ]
    (cfg.out / "summary.md").write_text("\n".join(lines))
    summary = {
        "task": cfg.task,
        "data": str(cfg.data),
        "sigma_y": cfg.sigma_y,
        "n_images": n_images,
        "limit": cfg.limit,
        "preprocessing": _preprocess_text(cfg),
        "model": cfg.model or "builtin",
        "steps": cfg.steps,
        "dtype": cfg.dtype,
        "seed": cfg.seed,
        "ranks": world,
        "device": device.type,
        "wall_s": wall,
        "command": cfg.command,
        "means": means,
    }
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2))
    if cfg.reference:
        click.echo("\n".join(reference_lines(cfg.task, cfg.sigma_y, means)))


# --------------------------------------------------------------------------------------------
# CLI


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


@click.command("bench")
@click.option("--task", required=True, help="Operator name: sr4, sr_bicubic4, deblur_gauss, inp_random50, "
              "inp_box, color, cs4, deno, jpeg10, ... (see `ddrm ops`).")
@click.option("--model", default=None, help="Prior: hub id, local folder, or 'builtin' (default).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Folder of clean images.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Results folder (created).")
@click.option("--limit", type=int, default=None, help="Use only the first N images (sorted by name).")
@click.option("--size", type=int, default=None,
              help="Resize the short side to SIZE and centre-crop SIZExSIZE (faces, ImageNet-style).")
@click.option("--crop", type=int, default=None,
              help="Centre crop CROPxCROP at native resolution (e.g. 500 for Kodak24's FFDNet crops).")
@click.option("--steps", type=int, default=20, show_default=True, help="DDRM steps (network evaluations).")
@click.option("--eta", type=float, default=None, help="DDRM eta (default: the sampler's, 0.85; 1.0 for JPEG).")
@click.option("--eta-b", "eta_b", type=float, default=None,
              help="DDRM eta_b (default: the sampler's, 1.0; 0.4 for JPEG).")
@click.option("--clip-denoised", "clip_denoised", is_flag=True,
              help="Clamp each clean-image prediction to [-1, 1] (diffusers' clip_sample; not in the papers).")
@click.option("--sigma-y", "sigma_y", type=float, default=0.0, show_default=True,
              help="Measurement noise std in [0, 1] pixel units (doubled for the [-1, 1] images inside).")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed; image i uses hash(seed, i).")
@click.option("--batch", type=int, default=1, show_default=True, help="Images per DDRM call (same-size images).")
@click.option("--grid", type=int, default=4, show_default=True, help="Images shown in grid.png (0: no grid).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available; under torchrun "
              "cuda:LOCAL_RANK).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="The prior network's dtype (float16 needs CUDA); DDRM's spectral algebra stays float32.")
@click.option("--reference", is_flag=True, help="Print the published DDRM numbers next to ours.")
@click.option("--metric-weights", "metric_weights", type=click.Path(path_type=Path), default=None,
              help="Folder with local LPIPS weights (needs the optional `lpips` package); nothing is downloaded.")
@click.option("--save-images", "save_images", is_flag=True, help="Also write every DDRM output to OUT/images/.")
@click.option("--no-progress", "no_progress", is_flag=True, help="No progress bar.")
def bench_command(**opts: Any) -> None:
    """Score DDRM and baselines on a folder of clean images (per_image.csv, summary.md, grid.png).

    Scale out over GPUs or CPU processes with `torchrun --nproc-per-node N -m ddrm_kit.bench ...`
    (same options); images are sharded over ranks and the results equal a single-process run.
    """
    cfg = BenchConfig(
        task=opts["task"], data=opts["data"], out=opts["out"], model=opts["model"], limit=opts["limit"],
        size=opts["size"], crop=opts["crop"], steps=opts["steps"], eta=opts["eta"], eta_b=opts["eta_b"],
        clip_denoised=opts["clip_denoised"], sigma_y=opts["sigma_y"], seed=opts["seed"], batch=opts["batch"], grid=opts["grid"],
        device=opts["device"], dtype=opts["dtype"], reference=opts["reference"], metric_weights=opts["metric_weights"],
        save_images=opts["save_images"], progress=not opts["no_progress"], command=_command_line(),
    )
    try:
        rows = run_bench(cfg)
    except (ValueError, OSError) as e:  # user errors (DDRMError, operators' errors, missing files): one line
        raise click.ClickException(" ".join(str(e).split())) from None
    if rows is not None:
        click.echo(f"wrote {cfg.out / CSV_NAME}, {cfg.out / 'summary.md'}")


if __name__ == "__main__":
    bench_command()

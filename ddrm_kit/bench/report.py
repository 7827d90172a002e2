"""The bench's outputs: ``per_image.csv``, ``summary.md``, ``summary.json``, ``grid.png``, written atomically."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from ddrm_kit.atomic import atomic_write, write_text

from .config import BenchConfig
from .scores import LPIPS_BACKBONE

CSV_NAME = "per_image.csv"
CSV_FIELDS = ("index", "name", "method", "psnr", "psnr_uint8", "ssim", "lpips", "seconds")
# Display names and order of the methods in summary.md.
METHOD_LABELS = {
    "ddrm": "DDRM",
    "h_pinv": "H_pinv(y)",
    "bicubic": "bicubic upsampling of y",
    "observation": "observation y",
}
METRICS_NOTE_OFF = (
    "LPIPS, FID and KID were not computed: their networks' weights are never downloaded. "
    "For LPIPS install the optional package `lpips` and pass `--metric-weights DIR` with "
    f"torchvision's AlexNet weights at `DIR/{LPIPS_BACKBONE.as_posix()}`. FID/KID are set-level "
    "statistics that need thousands of images; use `--save-images` and an external tool "
    "(e.g. torch-fidelity) on the saved outputs."
)


def row_order(row: dict[str, Any]) -> tuple[int, int]:
    """Sort key of the rows: by image, then in the order of :data:`METHOD_LABELS`."""
    return row["index"], list(METHOD_LABELS).index(row["method"])


def means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: the mean of each score over the images, and ``n``."""
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


def preprocess_text(cfg: BenchConfig, multiple: int) -> str:
    """How the images were brought to the bench's input, in words."""
    if cfg.crop is not None:
        how = f"centre {cfg.crop}x{cfg.crop} crop at native resolution"
    elif cfg.size is not None:
        how = f"short side resized to {cfg.size} (antialiased bicubic), centre {cfg.size}x{cfg.size} crop"
    else:
        how = "native resolution"
    if multiple > 1:
        how += f", sides cut to a multiple of {multiple}"
    return how + "; grey images repeated to RGB"


def write_grid(panels: dict[int, list], path: Path) -> None:
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


def reference_lines(op: str, sigma_y: float, ours: dict[str, dict[str, float]]) -> list[str]:
    """Markdown lines: the published DDRM numbers for ``op`` next to this run's DDRM PSNR."""
    from ddrm_kit.reference import published_for

    pubs = published_for(op)
    if not pubs:
        return [f"No verified published numbers for `{op}` (see ddrm_kit/reference.py for what is listed)."]
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


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """``per_image.csv``: one row per image and method; floats as ``repr`` (exact round trip)."""

    def fill(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})

    atomic_write(path, fill)


def write_outputs(
    cfg: BenchConfig, rows: list[dict[str, Any]], panels: dict[int, list], n_images: int, multiple: int,
    codec: bool, wall: float, world: int, device: str,
) -> None:
    """Write the csv, the summaries and the grid of a finished run to ``cfg.output``."""
    write_csv(rows, cfg.output / CSV_NAME)
    avg = means(rows)
    if panels:
        write_grid(panels, cfg.output / "grid.png")
    # Codecs take no --sigma-y: their quantisation is the noise.
    noise = f", sigma_y {cfg.sigma_y:g} (pixel units)" if cfg.sigma_y > 0 else ("" if codec else ", noiseless")
    eta = "sampler default" if cfg.eta is None else f"{cfg.eta:g}"
    eta_b = "sampler default" if cfg.eta_b is None else f"{cfg.eta_b:g}"
    averaged = f", mean of {cfg.average} samples" if cfg.average > 1 else ""
    has_lpips = all("lpips" in m for m in avg.values())
    how = preprocess_text(cfg, multiple)
    lines = [
        f"# ddrm bench: `{cfg.op}`{noise} on `{cfg.data}`",
        "",
        f"Command: `{cfg.command}`" if cfg.command else "Command: (Python API, `ddrm_kit.bench.run_bench`)",
        "",
        f"- images: {n_images}" + (f" (--limit {cfg.limit})" if cfg.limit else ""),
        f"- preprocessing: {how}",
        f"- prior: `{cfg.model or 'builtin'}` ({cfg.precision}); steps {cfg.steps}, eta {eta}, eta_b {eta_b}"
        f"{averaged}, seed {cfg.seed}"
        + (", x̂0 clipped to [-1, 1]" if cfg.clip_denoised else "")
        + " (per image: hash of seed and file name)",
        f"- device: {device}, ranks: {world}, batch size {cfg.batch_size}; wall time {wall:.1f} s",
        "- PSNR: per image on the [0, 1]-clamped float output, then averaged (DDRM's way); "
        "PSNR uint8: after 8-bit rounding of both images; SSIM: Wang et al. 2004, per RGB channel",
        "",
        "| method | PSNR (dB) | PSNR uint8 (dB) | SSIM |" + (" LPIPS |" if has_lpips else "") + " s / image |",
        "|---|---|---|---|" + ("---|" if has_lpips else "") + "---|",
    ]
    for method, m in avg.items():
        lp = f" {m['lpips']:.4f} |" if has_lpips else ""
        lines.append(
            f"| {METHOD_LABELS[method]} | {_fmt(m['psnr'], 2)} | {_fmt(m['psnr_uint8'], 2)} | {m['ssim']:.4f} |"
            f"{lp} {m['seconds']:.3f} |"
        )
    lines += ["", METRICS_NOTE_OFF if not has_lpips else "LPIPS: AlexNet v0.1 (Zhang et al. 2018), local weights. "
              "FID/KID not computed (set-level; use --save-images and an external tool).", ""]
    if cfg.reference:
        lines += ["## Published numbers", ""] + reference_lines(cfg.op, cfg.sigma_y, avg) + [""]
    if panels:
        lines += [
            "![grid](grid.png)",
            "",
            f"`grid.png`: the first {len(panels)} images; columns: ground truth, observation, "
            "baseline (bicubic for SR, else H_pinv(y) or the observation), DDRM.",
            "",
        ]
    write_text(cfg.output / "summary.md", "\n".join(lines))
    summary = {
        "op": cfg.op,
        "data": str(cfg.data),
        "sigma_y": cfg.sigma_y,
        "n_images": n_images,
        "limit": cfg.limit,
        "preprocessing": how,
        "model": cfg.model or "builtin",
        "steps": cfg.steps,
        "average": cfg.average,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "ranks": world,
        "device": device,
        "wall_s": wall,
        "command": cfg.command,
        "means": avg,
    }
    write_text(cfg.output / "summary.json", json.dumps(summary, indent=2))

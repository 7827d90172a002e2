"""The bench's outputs: ``per_image.csv``, ``summary.md``, ``summary.json``, ``grid.png``, written atomically."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddrm_kit.atomic import atomic_write, write_text

from .observation import rounds, sampler_sigma

if TYPE_CHECKING:
    from operators.registry import OperatorSpec

    from .config import BenchConfig

CSV_NAME = "per_image.csv"
GRID_NAME = "grid.png"
IMAGES_DIR = "images"  # --save-images: the restored image (DDRM's or Palette's) of each clean one
# The files of a run's results, in the order the command lists them (then IMAGES_DIR).
RESULT_FILES = (CSV_NAME, "summary.md", "summary.json", GRID_NAME)
CSV_FIELDS = ("index", "name", "method", "psnr", "psnr_uint8", "ssim", "lpips", "seconds")
# Display names and order of the methods in summary.md.
METHOD_LABELS = {
    "ddrm": "DDRM",
    "ddrm_1": "DDRM, one sample",
    "palette": "Palette",
    "palette_1": "Palette, one sample",
    "h_pinv": "H_pinv(y)",
    "bicubic": "bicubic upsampling of y",
    "observation": "observation y",
}
# summary.md's line when no metrics report is given (run_bench always gives one: ddrm_kit.bench.scores).
METRICS_NOTE_OFF = ("LPIPS, FID and KID were not computed (`--metrics`, `--metric-weights`; their weights are "
                    "never downloaded).")


def one_sample(method: str) -> str:
    """The row name of ``method``'s first sample alone, scored beside the mean with ``--average K``."""
    return f"{method}_1"


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


# The grid's baseline column: the first of these methods that the run scored, and its label.
GRID_BASELINES = {"bicubic": "bicubic", "h_pinv": "H_pinv(y)", "observation": "observation"}
GAP = 4  # white pixels between the grid's panels


def grid_baseline(methods) -> str:
    """The method shown in the grid's baseline column (bicubic for SR, else H_pinv(y), else y itself)."""
    return next(m for m in GRID_BASELINES if m in methods)


def _label_strip(labels: list[str], spans: list[tuple[int, int]], width: int):
    """A white strip with each label in black, centred over its column (cut at the column's edges when wider)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    # The bitmap font draws the same pixels on every machine; Pillow < 10.1 returns it from load_default().
    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    boxes = [font.getbbox(text) for text in labels]
    strip = Image.new("RGB", (width, max(b[3] for b in boxes) + GAP), "white")
    for text, box, (x0, x1) in zip(labels, boxes, spans):
        cell = Image.new("RGB", (x1 - x0, strip.height), "white")
        ImageDraw.Draw(cell).text((max(0, (x1 - x0 - box[2]) // 2), 0), text, fill="black", font=font)
        strip.paste(cell, (x0, 0))
    return np.asarray(strip)


def write_grid(panels: dict[int, list], path: Path, baseline: str, method: str = "ddrm") -> None:
    """Rows = images, columns = ground truth / observation / baseline / DDRM or Palette under labels, white gutters."""
    import numpy as np
    import torch

    from ddrm_kit.imageio import save_image

    rows = []
    width = max(sum(p.shape[1] for p in ps) + GAP * (len(ps) - 1) for ps in panels.values())
    spans: list[tuple[int, int]] = []
    for i in sorted(panels):
        ps = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in panels[i]]
        h = max(p.shape[0] for p in ps)
        row = np.full((h, width, 3), 255, np.uint8)
        x0 = 0
        for p in ps:
            row[: p.shape[0], x0 : x0 + p.shape[1]] = p
            if not rows:  # the labels sit over the first row's columns
                spans.append((x0, x0 + p.shape[1]))
            x0 += p.shape[1] + GAP
        rows.append(row)
        rows.append(np.full((GAP, width, 3), 255, np.uint8))
    labels = ["ground truth", "observation", f"baseline: {GRID_BASELINES[baseline]}", METHOD_LABELS[method]]
    grid = np.concatenate([_label_strip(labels, spans, width), *rows[:-1]])
    t = torch.from_numpy(grid).permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1.0
    save_image(t, path)


def existing_results(folder: Path) -> list[str]:
    """The bench results in ``folder`` as the command lists them: file names, then ``images/ (N images)``."""
    held = [name for name in RESULT_FILES if (folder / name).is_file()]
    n = len(list((folder / IMAGES_DIR).glob("*.png")))
    if n:
        held.append(f"{IMAGES_DIR}/ ({n} image{'s' if n > 1 else ''})")
    return held


def _remove_stale(folder: Path, wrote_grid: bool, saved: set[str]) -> None:
    """After an ``--overwrite`` run: remove the earlier results that this run did not write again."""
    if not wrote_grid:
        (folder / GRID_NAME).unlink(missing_ok=True)
    images = folder / IMAGES_DIR
    for old in images.glob("*.png"):
        if old.name not in saved:
            old.unlink()
    if images.is_dir() and not any(images.iterdir()):
        images.rmdir()


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
        "DDRM's sigma_y = 0.05 is in [0, 1] pixel units (its code doubles it for [-1, 1] images), as --sigma-y 0.05 here."
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


def score_table(avg: dict[str, dict[str, float]], sets: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The Markdown table of the methods' mean scores (summary.md's, and what ``ddrm bench`` prints).

    ``sets``: per method, the set-level ``fid`` and ``kid_mean``/``kid_std`` (``ddrm_kit.bench.setmetrics``).
    """
    sets = sets or {}
    has_lpips = all("lpips" in m for m in avg.values())
    has_fid = bool(sets) and all("fid" in sets.get(k, {}) for k in avg)
    has_kid = bool(sets) and all("kid_mean" in sets.get(k, {}) for k in avg)
    head = (" LPIPS |" if has_lpips else "") + (" FID |" if has_fid else "") + (" KID x1e3 |" if has_kid else "")
    lines = [
        "| method | PSNR (dB) | PSNR uint8 (dB) | SSIM |" + head + " s / image |",
        "|---|---|---|---|" + "---|" * head.count("|") + "---|",
    ]
    for method, m in avg.items():
        extra = f" {m['lpips']:.4f} |" if has_lpips else ""
        if has_fid:
            extra += f" {sets[method]['fid']:.2f} |"
        if has_kid:
            extra += f" {sets[method]['kid_mean'] * 1e3:.2f} ± {sets[method]['kid_std'] * 1e3:.2f} |"
        lines.append(
            f"| {METHOD_LABELS[method]} | {_fmt(m['psnr'], 2)} | {_fmt(m['psnr_uint8'], 2)} | {m['ssim']:.4f} |"
            f"{extra} {m['seconds']:.3f} |"
        )
    return lines


def observation_text(cfg: BenchConfig, spec: OperatorSpec) -> str:
    """How the observations were stored, in words (``--observation`` and whether it applied)."""
    if rounds(spec, cfg.observation) and cfg.method == "palette":
        return ("rounded to 8 bits as a file holds it (--observation uint8), the y DDRM is benched on; Palette is "
                "told no noise level, so the rounding, std 1/(255 sqrt(12)) = 0.00113 (pixel units), is noise it "
                "does not model (--observation float: the exact y)")
    if rounds(spec, cfg.observation):
        return (f"rounded to 8 bits as a file holds it (--observation uint8); sampler sigma_y "
                f"{sampler_sigma(cfg.sigma_y, True) / 2:.3g} (pixel units, at least the rounding noise "
                "1/(255 sqrt(12)))")
    if cfg.observation == "float":
        return "float, not rounded (--observation float)"
    what = "a codec's output" if spec.kind == "codec" else "a vector"
    return f"{what}, never rounded (--observation {cfg.observation} applies to image observations of linear operators)"


def write_outputs(
    cfg: BenchConfig, spec: OperatorSpec, rows: list[dict[str, Any]], panels: dict[int, list], saved: set[str],
    n_images: int, multiple: int, wall: float, world: int, device: str, *, palette: dict[str, Any] | None = None,
    notes: Sequence[str] = (), metrics: dict[str, Any] | None = None,
    sampler: tuple[dict[str, float | int], str] | None = None,
) -> None:
    """Write the csv, the summaries and the grid of a finished run to ``cfg.output``.

    ``palette`` (``--method palette``): ``{"task": {"operator", "params", "sigma_y"}, "timesteps": T}``, the
    model's task with its training ``sigma_y`` in pixel units; ``notes``: the run's notes, one line each;
    ``metrics``: ``MetricPlan.summary()`` (``ddrm_kit.bench.scores``): summary.md's lines on LPIPS/FID/KID,
    the FID/KID per method (``sets``) and summary.json's ``metrics``; ``sampler``: DDRM's settings as run
    (``prior_settings.sampler_settings``) and their ``settings_note``.

    ``saved`` names the images this run wrote to ``IMAGES_DIR``; with ``cfg.overwrite`` the earlier
    run's results that this one did not replace are removed, so the folder describes one run.
    """
    write_csv(rows, cfg.output / CSV_NAME)
    avg = means(rows)
    if panels:
        write_grid(panels, cfg.output / GRID_NAME, grid_baseline(avg), cfg.method)
    rounded = rounds(spec, cfg.observation)
    # Codecs take no --sigma-y: their quantisation is the noise.
    noise = f", sigma_y {cfg.sigma_y:g} (pixel units)" if cfg.sigma_y > 0 else (
        "" if spec.kind == "codec" else ", no added noise")
    noise += ", 8-bit y" if rounded else ""
    chosen, sampler_text = sampler if sampler is not None else ({}, "no image restored")
    averaged = (f", mean of {cfg.average} samples (the `{METHOD_LABELS[one_sample(cfg.method)]}` row: the first "
                f"of them alone)" if cfg.average > 1 else "")
    how = preprocess_text(cfg, multiple)
    observed = observation_text(cfg, spec)
    label = METHOD_LABELS[cfg.method]
    if palette is None:
        model_line = (f"- prior: `{cfg.model or 'builtin'}` ({cfg.precision}); {sampler_text}{averaged}, seed {cfg.seed}"
                      + (", x̂0 clipped to [-1, 1]" if cfg.clip_denoised else "")
                      + " (per image: hash of seed and file name)")
    else:
        task, total = palette["task"], palette["timesteps"]
        params = "".join(f" {k}={v!r}" for k, v in task["params"].items())
        schedule = (f"all {total} timesteps (Algorithm 2)" if cfg.steps == total
                    else f"{cfg.steps} of {total} timesteps (strided)")
        model_line = (f"- Palette model: `{cfg.model}` ({cfg.precision}), trained for `{task['operator']}{params}` "
                      f"with sigma_y {task['sigma_y']:g} (pixel units); {schedule}{averaged}, seed {cfg.seed}"
                      + (", x̂0 clipped to [-1, 1]" if cfg.clip_denoised else ", x̂0 not clipped")
                      + " (per image: hash of seed and file name)")
    title = "ddrm bench" if cfg.method == "ddrm" else f"ddrm bench --method {cfg.method}"
    lines = [
        f"# {title}: `{cfg.op}`{noise} on `{cfg.data}`",
        "",
        f"Command: `{cfg.command}`" if cfg.command else "Command: (Python API, `ddrm_kit.bench.run_bench`)",
        "",
        f"- images: {n_images}" + (f" (--limit {cfg.limit})" if cfg.limit else ""),
        f"- preprocessing: {how}",
        f"- observation: {observed}",
        model_line,
        f"- device: {device}, ranks: {world}, batch size {cfg.batch_size}; wall time {wall:.1f} s",
        *(f"- note: {note}" for note in notes),
        "- PSNR: per image on the [0, 1]-clamped float output, then averaged (DDRM's way); "
        "PSNR uint8: after 8-bit rounding of both images; SSIM: Wang et al. 2004, per RGB channel",
        "",
        *score_table(avg, (metrics or {}).get("sets")),
    ]
    lines += ["", *((metrics or {}).get("lines") or [METRICS_NOTE_OFF]), ""]
    if cfg.reference:
        lines += ["## Published numbers", ""] + reference_lines(cfg.op, cfg.sigma_y, avg) + [""]
    if panels:
        lines += [
            f"![grid]({GRID_NAME})",
            "",
            f"`{GRID_NAME}`: the first {len(panels)} images; columns: ground truth, observation, "
            f"baseline ({GRID_BASELINES[grid_baseline(avg)]}), {label}.",
            "",
        ]
    write_text(cfg.output / "summary.md", "\n".join(lines))
    summary = {
        "method": cfg.method,
        "op": cfg.op,
        "data": str(cfg.data),
        "sigma_y": cfg.sigma_y,
        "observation": cfg.observation,
        "observation_rounded": rounded,
        # pixel units, like sigma_y; Palette is told no noise level
        "sampler_sigma_y": sampler_sigma(cfg.sigma_y, rounded) / 2 if palette is None else None,
        "n_images": n_images,
        "limit": cfg.limit,
        "preprocessing": how,
        "model": cfg.model or "builtin",
        "palette": palette,  # the Palette model's task and training sigma_y (pixel units), and its T
        "steps": chosen.get("steps", cfg.steps),
        # DDRM's settings as run (the given, else the prior's ddrm_settings.json, else the papers'); t0: codecs
        **({key: chosen.get(key) for key in ("eta", "eta_b", "t0")} if palette is None else {}),
        "clip_denoised": cfg.clip_denoised,
        "average": cfg.average,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "ranks": world,
        "device": device,
        "wall_s": wall,
        "command": cfg.command,
        "notes": list(notes),
        "means": avg,
        "metrics": None if metrics is None else metrics["json"],  # LPIPS/FID/KID: what was computed, FID/KID
    }
    write_text(cfg.output / "summary.json", json.dumps(summary, indent=2))
    if cfg.overwrite:
        _remove_stale(cfg.output, bool(panels), saved)

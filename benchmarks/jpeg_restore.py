"""JPEG artifact correction with DDRM-JPEG (Kawar et al. 2022b): mean PSNR of the JPEG input and of the restoration.

    python benchmarks/jpeg_restore.py                                   # LIVE1 + Classic5, QF 10 and 20
    python benchmarks/jpeg_restore.py --crop 256 --average 4 --dtype bfloat16 --csv out.csv   # CPU-sized

Each clean image x (LIVE1: colour, Classic5: grey; from ``--data``) is compressed by our libjpeg-
faithful codec, ``y = operators.JPEG(QF).J(x)``, which is checked sample for sample against Pillow's
own save + open (``--no-check`` skips that); DDRM-JPEG (20 steps, eta 1.0, eta_b 0.4, t0 = 300) then
restores y with the prior (``ddrm_kit.restore``, generators seeded by ``--seed`` and the file
name); ``--average K`` also scores the mean of K restorations (the paper averages 8).  Grey images
are repeated to the prior's 3 channels; for such images the colour JPEG equals the grey JPEG
exactly (Cb = Cr = 128, luma table), and the restoration is scored on its channel mean.  PSNR is
``ddrm_kit.metrics.psnr_uint8`` (both images rounded to 8 bits, what saved PNGs score), per image,
averaged per set and quality.  ``--crop S`` takes centre crops of S x S (each crop is compressed as
an image of its own); ``--limit N`` uses the first N images of each set (sorted names), for
machines where the full sets take too long.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image

import operators
from ddrm_kit import load_prior
from ddrm_kit.atomic import atomic_write
from ddrm_kit.imageio import list_images, load_image, to_uint8
from ddrm_kit.restore import SAMPLER, Settings, generators, observe, restore_samples, score

SETS = {"LIVE1": 3, "Classic5": 1}  # set name -> channels of its images


def _pillow_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Pillow's save + open of ``x`` (1, C, H, W) in [-1, 1], as a tensor in [-1, 1]."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, "JPEG", quality=quality, subsampling=2)
    out = np.asarray(Image.open(buf), dtype=np.float32).reshape(*x.shape[2:], x.shape[1])
    return torch.from_numpy(out).permute(2, 0, 1)[None] / 127.5 - 1


def _centre_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    s = min(size, h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[..., top : top + s, left : left + s]


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path(__file__).resolve().parents[2] / "shared" / "data", show_default=True,
              help="Folder holding LIVE1/ and Classic5/.")
@click.option("--sets", "set_names", multiple=True, type=click.Choice(sorted(SETS)), default=("LIVE1", "Classic5"),
              show_default=True)
@click.option("--qf", "qualities", multiple=True, type=click.IntRange(1, 100), default=(10, 20), show_default=True)
@click.option("--model", default="builtin", show_default=True, help="Prior: builtin, a local folder or a hub id.")
@click.option("--steps", default=20, show_default=True, type=click.IntRange(1))
@click.option("--limit", type=click.IntRange(1), default=None, help="First N images of each set.")
@click.option("--crop", type=click.IntRange(16), default=None, help="Centre crops of S x S pixels.")
@click.option("--average", default=1, show_default=True, type=click.IntRange(1),
              help="Also score the mean of K restorations (the paper averages 8); costs K times the time.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default=None, help="cuda, cpu, ... (default: CUDA when present).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="Prior network dtype (default: the prior's).")
@click.option("--check/--no-check", default=True, show_default=True, help="Compare our JPEG with Pillow's.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Per-image results.")
def main(data: Path, set_names: tuple[str, ...], qualities: tuple[int, ...], model: str, steps: int,
         limit: int | None, crop: int | None, average: int, seed: int, device: str | None, dtype: str | None, check: bool,
         csv_path: Path | None) -> None:
    """Mean PSNR of JPEG inputs and of their DDRM-JPEG restorations on LIVE1 and Classic5."""
    prior = load_prior(model, device=device, dtype=getattr(torch, dtype) if dtype else None)
    channels = prior.channels or 3
    settings = Settings(steps=steps, average=average)
    rows: list[dict] = []
    summary: list[tuple] = []
    for set_name in set_names:
        files = list_images(data / set_name)[:limit]
        if not files:
            raise click.ClickException(f"no images in {data / set_name}")
        for qf in qualities:
            jpeg_scores, ddrm_scores, avg_scores, seconds = [], [], [], []
            for path in files:
                x = _centre_crop(load_image(path), crop)
                grey = x.shape[1] == 1
                op = operators.JPEG(qf, image_shape=x.shape[1:])
                y = observe(op, x)
                if check and not torch.equal(y, _pillow_jpeg(x, qf)):
                    raise click.ClickException(f"{path.name}: our JPEG differs from Pillow's at QF {qf}")
                y_in = y
                if grey and channels == 3:
                    # An RGB prior sees grey images repeated to 3 channels; their colour JPEG is the grey one.
                    op = operators.JPEG(qf, image_shape=(3, *x.shape[2:]))
                    y_in = y.expand(-1, 3, -1, -1)
                    if check and not torch.equal(op.J(x.expand(-1, 3, -1, -1)), y_in):
                        raise click.ClickException(f"{path.name}: colour JPEG of the grey image is not the grey JPEG")
                gens = generators(seed, [path.name], SAMPLER, prior.device)
                t = time.perf_counter()
                # the K samples of `ddrm solve --average K`: the first is what one sample restores
                outs = restore_samples(prior, op, y_in, settings, generator=gens, progress=False).cpu()
                seconds.append(time.perf_counter() - t)
                first, mean = outs[0], outs.mean(0)
                if grey:
                    first, mean = first.mean(1, keepdim=True), mean.mean(1, keepdim=True)
                pj, pr, pa = (score(img, x)["psnr_uint8"][0] for img in (y, first, mean))
                jpeg_scores.append(pj)
                ddrm_scores.append(pr)
                avg_scores.append(pa)
                rows.append({"set": set_name, "qf": qf, "image": path.name, "size": "x".join(map(str, x.shape[1:])),
                             "psnr_jpeg": round(pj, 3), "psnr_ddrm": round(pr, 3), f"psnr_ddrm_avg{average}": round(pa, 3),
                             "seconds": round(seconds[-1], 1)})
                click.echo(f"{set_name} QF{qf} {path.name}: JPEG {pj:.2f} dB -> DDRM-JPEG {pr:.2f} dB, "
                           f"mean of {average}: {pa:.2f} dB ({seconds[-1]:.0f} s)", err=True)
            summary.append((set_name, qf, len(files), np.mean(jpeg_scores), np.mean(ddrm_scores), np.mean(avg_scores),
                            np.mean(seconds)))
    if csv_path is not None:

        def fill(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(csv_path, fill)
    scope = f"first {limit} images" if limit else "all images"
    scope += f", centre {crop}x{crop} crops" if crop else ", full size"
    click.echo(f"\nDDRM-JPEG, prior {model}, {steps} steps, seed {seed}, {scope}, device {prior.device}\n")
    click.echo(f"| set | QF | images | JPEG PSNR (dB) | DDRM-JPEG PSNR (dB) | mean of {average} (dB) | s / image |")
    click.echo("|---|---|---|---|---|---|---|")
    for set_name, qf, n, pj, pr, pa, s in summary:
        click.echo(f"| {set_name} | {qf} | {n} | {pj:.2f} | {pr:.2f} | {pa:.2f} | {s:.0f} |")


if __name__ == "__main__":
    main()

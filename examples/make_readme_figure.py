"""Rebuild examples/readme_figure.png with the real `ddrm` command (built-in prior by default).

    python examples/make_readme_figure.py [--model M] [--out examples/readme_figure.png]

Rows: 4x super-resolution of the shipped 64x64 crop, inpainting with 70% of the pixels missing,
and a quality-10 JPEG file. Columns: what the tool is given (the 64x64 input shown bicubic-upsampled),
the DDRM result, the original; PSNR against the original in the labels.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
TILE = 256
LABEL = 18


def ddrm(*args: str) -> None:
    print("$ ddrm " + " ".join(args), flush=True)
    subprocess.run(["ddrm", *args], check=True)


def tile(path: Path, resample=Image.Resampling.NEAREST) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB").resize((TILE, TILE), resample)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return 10 * np.log10(255.0**2 / np.mean((x - y) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--out", default=str(HERE / "readme_figure.png"))
    args = parser.parse_args()
    prior_name = "built-in prior" if args.model == "builtin" else Path(args.model).name
    gt_path = HERE / "parrot_256.png"
    lr_path = HERE / "parrot_lr64.png"
    gt = tile(gt_path)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        common = ["--model", args.model, "--seed", "0", "--no-progress"]
        ddrm("solve", "--op", "sr4", *common, str(lr_path), "-o", str(t / "sr4.png"))
        ddrm("degrade", "--op", "inp_random70", str(gt_path), "-o", str(t / "inp.png"))
        ddrm("solve", "--op", "inp_random70", *common, str(t / "inp.png"), "-o", str(t / "inp_ddrm.png"))
        ddrm("degrade", "--op", "jpeg10", str(gt_path), "-o", str(t / "q10.jpg"))
        ddrm("solve", "--op", "jpeg", *common, str(t / "q10.jpg"), "-o", str(t / "jpeg_ddrm.png"))
        rows = [
            ("sr4 input, bicubic x4", tile(lr_path, Image.Resampling.BICUBIC), tile(t / "sr4.png")),
            ("inp_random70 input", tile(t / "inp.png"), tile(t / "inp_ddrm.png")),
            ("jpeg quality 10 file", tile(t / "q10.jpg"), tile(t / "jpeg_ddrm.png")),
        ]
        fig = Image.new("RGB", (3 * TILE, len(rows) * (TILE + LABEL)), "white")
        draw = ImageDraw.Draw(fig)
        for r, (title, given, restored) in enumerate(rows):
            top = r * (TILE + LABEL)
            cells = [(f"{title}: {psnr(given, gt):.1f} dB", given),
                     (f"DDRM, {prior_name}: {psnr(restored, gt):.1f} dB", restored), ("original", gt)]
            for c, (text, im) in enumerate(cells):
                fig.paste(im, (c * TILE, top + LABEL))
                draw.text((c * TILE + 4, top + 3), text, fill="black")
        fig.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

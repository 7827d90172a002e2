"""The README's DDRM-versus-Palette table from the runs of ``benchmarks/palette_vs_ddrm.sh``.

    python benchmarks/palette_table.py results/palette

reads ``OUT/NAME-CROP/{ddrm,ddrm_clip,palette,palette_v}-OP/summary.json`` and prints one Markdown
row per set, crop and task: mean PSNR / SSIM of DDRM (built-in prior), DDRM with x̂0 clipped, the
Palette models (ε, as the paper, and v-prediction; "–" where not run) and the task's baseline (the
grey or damaged image ``H_pinv(y)``, or the decoded JPEG), and the seconds per image of DDRM and of
the ε Palette model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TASKS = ("color", "inp_box", "uncrop", "jpeg10")
#: The run folders' method prefixes, in the table's order.
METHODS = ("ddrm", "ddrm_clip", "palette", "palette_v")
#: The baseline of each task in summary.json's means: the observation seen as an image.
BASELINES = ("h_pinv", "observation")


def _cell(means: dict | None, key: str) -> str:
    if means is None or key not in means:
        return "–"
    m = means[key]
    return f"{m['psnr']:.2f} / {m['ssim']:.3f}"


def _seconds(means: dict | None, key: str) -> str:
    return "–" if means is None or key not in means else f"{means[key]['seconds']:.1f}"


def rows(out: Path) -> list[str]:
    lines = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        name, _, crop = folder.name.rpartition("-")
        for task in TASKS:
            runs = {}
            for method in METHODS:
                path = folder / f"{method}-{task}" / "summary.json"
                runs[method] = json.loads(path.read_text()) if path.is_file() else None
            if runs["ddrm"] is None and runs["palette"] is None:
                continue
            any_run = runs["ddrm"] or runs["palette"]
            base = next((b for b in BASELINES if b in any_run["means"]), None)
            ddrm = runs["ddrm"] and runs["ddrm"]["means"]
            clip = runs["ddrm_clip"] and runs["ddrm_clip"]["means"]
            pal = runs["palette"] and runs["palette"]["means"]
            pal_v = runs["palette_v"] and runs["palette_v"]["means"]
            steps = runs["palette"]["steps"] if runs["palette"] else None
            lines.append(
                f"| {name} ({any_run['n_images']}) | {crop}² | {task} | {_cell(ddrm, 'ddrm')} | {_cell(clip, 'ddrm')} "
                f"| {_cell(pal, 'palette')} | {_cell(pal_v, 'palette')} | {_cell(any_run['means'], base) if base else '–'} "
                f"| {_seconds(ddrm, 'ddrm')} | {_seconds(pal, 'palette')}"
                + (f" ({steps} steps)" if steps else "") + " |")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(f"usage: python {Path(__file__).name} OUT (the folder of benchmarks/palette_vs_ddrm.sh)", file=sys.stderr)
        return 2
    print("| data (images) | crop | task | DDRM PSNR / SSIM | DDRM, x̂0 clipped | Palette (ε) | Palette (v) "
          "| baseline PSNR / SSIM | DDRM s/img | Palette s/img |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

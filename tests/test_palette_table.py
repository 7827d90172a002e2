"""benchmarks/palette_table.py: the README's DDRM-versus-Palette rows from bench summaries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import palette_table  # noqa: E402


def _summary(folder: Path, method: str, means: dict, n: int = 3, steps: int = 20) -> None:
    folder.mkdir(parents=True)
    full = {k: {"psnr": p, "ssim": s, "seconds": sec, "n": n} for k, (p, s, sec) in means.items()}
    (folder / "summary.json").write_text(json.dumps({"method": method, "n_images": n, "steps": steps, "means": full}))


def test_rows_hold_each_methods_means_and_dashes_for_runs_not_made(tmp_path):
    sets = tmp_path / "Kodak24-64"
    _summary(sets / "ddrm-color", "ddrm", {"ddrm": (8.16, 0.4213, 1.13), "h_pinv": (22.43, 0.9281, 0.0)})
    _summary(sets / "palette-color", "palette", {"palette": (15.6, 0.836, 5.94), "h_pinv": (22.43, 0.9281, 0.0)},
             steps=100)
    _summary(sets / "ddrm-jpeg10", "ddrm", {"ddrm": (26.87, 0.76, 1.3), "observation": (26.1, 0.727, 0.0)})
    assert palette_table.rows(tmp_path) == [
        "| Kodak24 (3) | 64² | color | 8.16 / 0.421 | – | 15.60 / 0.836 | – | 22.43 / 0.928 | 1.1 | 5.9 (100 steps) |",
        "| Kodak24 (3) | 64² | jpeg10 | 26.87 / 0.760 | – | – | – | 26.10 / 0.727 | 1.3 | – |",
    ]


def test_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert palette_table.main([str(tmp_path / "missing")]) == 2
    assert "usage: python palette_table.py OUT" in capsys.readouterr().err

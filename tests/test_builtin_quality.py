"""benchmarks/builtin_quality.py: one K-sample run gives the single-sample row and the mean-of-K row."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import builtin_quality as bq  # noqa: E402


def _photos(folder: Path) -> Path:
    folder.mkdir()
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    for i in range(2):
        rgb = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (xx + i / 3)), 0.5 + 0.3 * np.cos(2 * np.pi * yy), 0.5 + 0 * xx], -1)
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_single_sample_row_is_the_first_of_the_k_and_the_mean_row_averages_them(tmp_path, monkeypatch, tiny_unet_dir,
                                                                               one_thread):
    monkeypatch.setattr(bq, "DATASETS", {"A": str(_photos(tmp_path / "A"))})
    monkeypatch.setattr(bq, "CROP", 32)
    common = ["--methods", "ddrm", "--model", str(tiny_unet_dir), "--n", "2", "--steps", "3", "--tasks", "sr4_s0.05"]
    runner = CliRunner()
    for extra, name in ((["--average", "3"], "k3.json"), ([], "k1.json"), (["--average", "3", "--chunk", "1"], "c1.json")):
        result = runner.invoke(bq.main, [*common, *extra, "--results", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    k3 = json.loads((tmp_path / "k3.json").read_text())["sr4_s0.05"]["A"]
    k1 = json.loads((tmp_path / "k1.json").read_text())["sr4_s0.05"]["A"]
    assert set(k3) == {"ddrm", "ddrm_mean3"} and set(k1) == {"ddrm"}
    assert k3["ddrm"]["per_image"] == k1["ddrm"]["per_image"]  # the same draw, whether or not K follow it
    assert (k3["ddrm"]["average"], k3["ddrm_mean3"]["average"]) == (1, 3)
    assert k3["ddrm_mean3"]["per_image"] != k3["ddrm"]["per_image"]
    assert k3["ddrm"]["settings"] == {"steps": 3, "eta": 0.85, "eta_b": 1.0}
    # one image per DDRM call draws what the whole set in one call draws
    c1 = json.loads((tmp_path / "c1.json").read_text())["sr4_s0.05"]["A"]
    assert [c1[m]["per_image"] for m in ("ddrm", "ddrm_mean3")] == [k3[m]["per_image"] for m in ("ddrm", "ddrm_mean3")]
    # the mean row scores what `restore` (ddrm solve --average 3) returns for those images
    from ddrm_kit import load_prior
    from ddrm_kit.restore import SAMPLER, Settings, generators, restore, score

    x, names = bq.load_set(bq.DATASETS["A"], 2)
    op, y = bq.observe_set("sr4_s0.05", x, names, 0)
    mean = restore(load_prior(str(tiny_unet_dir), device="cpu"), op, y, Settings(steps=3, average=3), 0.1,
                   generators(0, names, SAMPLER), progress=False)
    assert [round(v, 3) for v in score(mean, x)["psnr"]] == k3["ddrm_mean3"]["per_image"]


def test_sets_selects_data_sets_and_an_unknown_one_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(bq, "DATASETS", {"A": str(_photos(tmp_path / "A")), "B": str(tmp_path / "missing")})
    monkeypatch.setattr(bq, "CROP", 32)
    results = tmp_path / "r.json"
    common = ["--methods", "baselines", "--n", "2", "--tasks", "color", "--results", str(results)]
    result = CliRunner().invoke(bq.main, [*common, "--sets", "A"])
    assert result.exit_code == 0, result.output
    assert list(json.loads(results.read_text())["color"]) == ["A"]  # B's folder is never read
    result = CliRunner().invoke(bq.main, [*common, "--sets", "A,C"])
    assert result.exit_code == 2 and "unknown data set 'C' (known: A, B)" in result.output
    assert list(json.loads(results.read_text())["color"]) == ["A"]


def test_an_unknown_task_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(bq.main, ["--methods", "baselines", "--tasks", "sr4,sr5", "--results", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and "unknown task 'sr5' (known: sr4, sr4_s0.05," in result.output
    assert not (tmp_path / "r.json").exists()

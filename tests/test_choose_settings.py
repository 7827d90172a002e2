"""benchmarks/choose_settings.py: the coordinate search's points and choices, the resumable cache, the written file."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import one_line_error

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import choose_settings as cs  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def photos(tmp_path) -> Path:
    """50 random 16x16 photos: the trainer holds 2 of them out (1 in 25)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(50):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_choose_searches_eta_then_eta_b_then_t0_and_keeps_small_gains_out():
    papers = {"eta": 1.0, "eta_b": 0.4, "t0": 300}
    grids = {"eta": [0.5, 0.85], "eta_b": [0.4, 0.7], "t0": [200, 400]}
    # eta 0.5 gains 0.3 dB (taken), eta_b 0.7 gains 0.05 dB (kept at the papers'), t0 400 gains 0.2 dB (taken)
    gains = {("eta", 0.5): 0.3, ("eta", 0.85): 0.1, ("eta_b", 0.7): 0.05, ("t0", 400): 0.2, ("t0", 200): -1.0}
    calls = []

    def psnr(point):
        calls.append(dict(point))
        return 20.0 + sum(g for (k, v), g in gains.items() if point[k] == v)

    best = cs.choose(papers, grids, 0.1, psnr)
    assert best == {"eta": 0.5, "eta_b": 0.4, "t0": 400}
    assert calls == [  # every grid value plus the papers', at the best so far
        {"eta": 0.5, "eta_b": 0.4, "t0": 300}, {"eta": 0.85, "eta_b": 0.4, "t0": 300},
        {"eta": 1.0, "eta_b": 0.4, "t0": 300},
        {"eta": 0.5, "eta_b": 0.4, "t0": 300}, {"eta": 0.5, "eta_b": 0.7, "t0": 300},
        {"eta": 0.5, "eta_b": 0.4, "t0": 200}, {"eta": 0.5, "eta_b": 0.4, "t0": 300},
        {"eta": 0.5, "eta_b": 0.4, "t0": 400},
    ]
    # with a threshold above every gain, the papers' values stay
    assert cs.choose(papers, grids, 0.5, psnr) == papers


def test_choose_steps_pays_for_each_doubling_of_the_steps():
    start = {"steps": 20, "eta": 1.0}
    psnr = {10: 24.5, 20: 25.2, 50: 26.0, 100: 26.3}.__getitem__

    def score(point):
        assert point["eta"] == 1.0  # the other settings stay
        return psnr(point["steps"])

    # at 0.25 dB per doubling: 10 scores 24.75, 20 25.2, 50 25.67, 100 25.72, so 100 wins
    assert cs.choose_steps(start, [10, 50, 100], 0.25, 0.1, score) == 100
    # at 0.5 dB per doubling: 10 scores 25.0, 50 25.34, 100 25.14; 50 beats 20 by 0.14 dB
    assert cs.choose_steps(start, [10, 50, 100], 0.5, 0.1, score) == 50
    # at 1 dB per doubling: 10 scores 25.5, 0.3 dB above 20: fewer steps win
    assert cs.choose_steps(start, [10, 50, 100], 1.0, 0.1, score) == 10
    # a gain within the threshold keeps the start's count
    assert cs.choose_steps(start, [10, 50, 100], 0.5, 0.2, score) == 20


def test_search_task_searches_the_other_settings_again_at_new_steps():
    calls = []

    def psnr(point):
        calls.append(dict(point))
        # eta 0.5 is best at 20 steps, eta 1 at 100 steps, and 100 steps gain 2 dB
        return 20.0 + 2.0 * (point["steps"] == 100) + 0.5 * (point["eta"] == (1.0 if point["steps"] == 100 else 0.5))

    start = {"steps": 20, "eta": 0.85}
    grids = {"steps": [100], "eta": [0.5, 1.0]}
    assert cs.search_task(start, grids, 0.25, 0.1, psnr) == {"steps": 100, "eta": 1.0}
    assert calls == [{"steps": 20, "eta": e} for e in (0.5, 0.85, 1.0)] + [{"steps": 20, "eta": 0.5},
                     {"steps": 100, "eta": 0.5}] + [{"steps": 100, "eta": e} for e in (0.5, 1.0)]
    # when the steps stay, nothing is searched twice
    calls.clear()
    assert cs.search_task(start, {"steps": [20], "eta": [0.5, 1.0]}, 0.25, 0.1, psnr) == {"steps": 20, "eta": 0.5}
    assert len(calls) == 4


def _fake_scores(monkeypatch) -> list[str]:
    """Replace DDRM by fixed PSNRs: deno gains 0.3 dB at eta 0.5, jpeg 0.5 dB at t0 200, sr4 only 0.05 dB."""
    measured = []
    table = {("deno_s0.1", "eta", 0.5): 0.3, ("jpeg10", "t0", 200): 0.5, ("sr4", "eta", 0.3): 0.05}

    def fake(job, point):
        measured.append(cs.point_name(job.task, point))
        gain = sum(g for (t, k, v), g in table.items() if t == job.task and point.get(k) == v)
        return [25.0 + gain] * len(job.names)

    monkeypatch.setattr(cs, "measure", fake)
    return measured


def _args(model, photos, out, *extra):
    return ["--model", str(model), "--data", str(photos), "--size", "16", "--crop", "16", "--steps", "2",
            "--tasks", "sr4,deno_s0.1,jpeg10", "-o", str(out), *extra]


def test_cli_writes_the_chosen_settings_and_resumes(tiny_unet_dir, photos, tmp_path, monkeypatch):
    from ddrm_kit import load_prior
    from ddrm_kit.prior_settings import check_settings, read_settings, sampler_settings
    from operators import get_operator

    measured = _fake_scores(monkeypatch)
    out = tmp_path / "out"
    result = CliRunner().invoke(cs.main, _args(tiny_unet_dir, photos, out))
    assert result.exit_code == 0, result.output
    # linear: 5 etas + 2 new eta_bs; jpeg: 5 etas + 2 new eta_bs + 2 new t0s
    assert len(measured) == 7 + 7 + 9 and len(set(measured)) == len(measured)
    assert "deno_s0.1 steps=2 eta=0.7 eta_b=1" in measured and "jpeg10 steps=2 eta=1 eta_b=0.4 t0=400" in measured
    search = json.loads((out / "search.json").read_text())
    assert len(search["points"]) == 23 and all(len(p["per_image"]) == 2 for p in search["points"].values())
    assert search["key"]["photos"] == [p.name for p in cs.holdout_files(cs.TrainConfig(data=[str(photos)], size=16))]

    written = json.loads((out / "ddrm_settings.json").read_text())
    assert "choose_settings.py" in written["_note"] and "2 held-out training photos" in written["_note"]
    # the search ran at 2 steps (its only step count), so every family's steps differ from the papers' 20
    assert check_settings(written, 1000, "test") == {"superres": {"steps": 2}, "deno": {"steps": 2, "eta": 0.5},
                                                     "jpeg": {"steps": 2, "t0": 200}}
    table = (out / "search.md").read_text()
    assert table.count("**chosen**") == 3 and "| deno_s0.1 | 2 | 0.5 | 1 | – | 25.30 **chosen** | +0.30 |" in table

    # the file reads back through the prior folder and reaches the sampler
    folder = tmp_path / "prior"
    shutil.copytree(tiny_unet_dir, folder)
    shutil.copy(out / "ddrm_settings.json", folder)
    assert read_settings(folder, 1000)["deno"] == {"steps": 2, "eta": 0.5}
    prior = load_prior(folder, device="cpu")
    assert sampler_settings(prior, get_operator("deno", (3, 16, 16)))["eta"] == 0.5
    assert sampler_settings(prior, get_operator("jpeg10", (3, 16, 16)))["t0"] == 200
    assert sampler_settings(prior, get_operator("sr4", (3, 16, 16)))["eta"] == 0.85

    # a re-run measures nothing; a wider grid measures only its new points
    measured.clear()
    assert CliRunner().invoke(cs.main, _args(tiny_unet_dir, photos, out)).exit_code == 0
    assert measured == []
    wider = _args(tiny_unet_dir, photos, out, "--etas", "0.3,0.5,0.7,0.85,0.9,1.0")
    assert CliRunner().invoke(cs.main, wider).exit_code == 0
    assert sorted(measured) == ["deno_s0.1 steps=2 eta=0.9 eta_b=1", "jpeg10 steps=2 eta=0.9 eta_b=0.4 t0=300",
                                "sr4 steps=2 eta=0.9 eta_b=1"]
    # other inputs do not reuse the cache
    one_line_error(CliRunner().invoke(cs.main, _args(tiny_unet_dir, photos, out, "--sample-seed", "1")),
                   "search.json", "sample_seed")


def test_cli_runs_ddrm_on_the_held_out_photos(tiny_unet_dir, photos, tmp_path):
    out = tmp_path / "out"
    args = _args(tiny_unet_dir, photos, out, "--etas", "0.5", "--eta-bs", "1.0", "--t0s", "200")
    args[args.index("--tasks") + 1] = "deno_s0.1,jpeg10"
    result = CliRunner().invoke(cs.main, args)
    assert result.exit_code == 0, result.output
    points = json.loads((out / "search.json").read_text())["points"].values()
    # deno: eta 0.5 and the papers' 0.85 (eta_b 1 is the papers'); jpeg: 2 etas, 1 new eta_b, 1 new t0
    assert [p["task"] for p in points].count("deno_s0.1") == 2 and [p["task"] for p in points].count("jpeg10") == 4
    assert {p["t0"] for p in points if "t0" in p} == {200, 300}
    assert all(len(p["per_image"]) == 2 and np.isfinite(p["psnr"]) for p in points)
    assert (out / "search.md").read_text().count("**chosen**") == 2


def test_cli_refuses_bad_input_in_one_line(tiny_unet_dir, photos, tmp_path):
    run = CliRunner().invoke
    val = tmp_path / "BSDS500" / "val"
    shutil.copytree(photos, val)
    one_line_error(run(cs.main, _args(tiny_unet_dir, val, tmp_path / "o")), "test set")
    one_line_error(run(cs.main, _args("builtin", photos, tmp_path / "o")), "built-in prior was trained on")
    one_line_error(run(cs.main, _args(tiny_unet_dir, photos, tmp_path / "o", "--run", str(tmp_path))), "--run or --data")
    one_line_error(run(cs.main, ["--model", str(tiny_unet_dir), "-o", str(tmp_path / "o")]), "--data")
    one_line_error(run(cs.main, _args(tiny_unet_dir, photos, tmp_path / "o", "--tasks", "sr4,sr4_s0.05")),
                   "one task per family")
    one_line_error(run(cs.main, _args(tiny_unet_dir, photos, tmp_path / "o", "--tasks", "sr3")), "unknown 'sr3'")
    one_line_error(run(cs.main, _args(tiny_unet_dir, photos, tmp_path / "o", "--etas", "0.5,2")), "--etas")
    one_line_error(run(cs.main, _args(tiny_unet_dir, photos, tmp_path / "o", "--steps", "0,20")), "--steps")
    # a JPEG run's steps end at the papers' t0 (300 of 1000)
    one_line_error(run(cs.main, _args(tiny_unet_dir, photos, tmp_path / "o", "--steps", "20,500")), "--steps", "300")
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(photos.iterdir())[:10]:
        shutil.copy(p, few)
    one_line_error(run(cs.main, _args(tiny_unet_dir, few, tmp_path / "o")), "held none out")

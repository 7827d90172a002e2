"""`ddrm bench --method palette`: rows equal observe + restore_palette + score computed directly, the
same observations as DDRM, `ddrm solve --clean` (and degrade + solve) = bench, the one-line refusals,
what the summaries record, and the 2-rank gloo run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_bench_equals_degrade_then_solve, isotropic_gaussian_prior, one_line_error, tiny_unet
from PIL import Image
from test_bench import _read_csv, _without_times, _write_images

from ddrm_kit.bench import BenchConfig, run_bench
from ddrm_kit.bench.observation import as_8bit
from ddrm_kit.cli import main
from ddrm_kit.imageio import load_image, to_uint8
from ddrm_kit.palette_model import PaletteTask, load_palette_prior, read_palette_task, write_palette_task
from ddrm_kit.palette_sampler import restore_palette
from ddrm_kit.restore import NOISE, SAMPLER, generators, observe, score

pytestmark = pytest.mark.usefixtures("one_thread")  # shared fixture (conftest.py): one torch thread

#: The tiny models' training timesteps: "all T steps" (Algorithm 2, the default) stays cheap.
T = 8


def _palette_model(folder: Path, task: PaletteTask, timesteps: int = T) -> Path:
    """A seeded, untrained Palette model: a 2-level UNet taking (c, y_t), 6 -> 3 channels, and palette.json."""
    from diffusers import DDPMScheduler

    folder.mkdir(parents=True)
    tiny_unet(in_channels=6, seed=1).save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=timesteps).save_pretrained(folder)
    write_palette_task(folder, task)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Palette models (tests must not modify them): sr2 trained with --sigma-y 0.05 (0.1 in palette.json),
    uncrop of the left 3/8 (not the registry's default), colourisation, and the default uncrop."""
    root = tmp_path_factory.mktemp("palette_models")
    return {
        "sr2": _palette_model(root / "sr2", PaletteTask("sr2", {}, 0.1)),
        "uncrop_left": _palette_model(root / "uncrop_left", PaletteTask("uncrop", {"side": "left", "fraction": 0.375})),
        "color": _palette_model(root / "color", PaletteTask("color", {"weights": [1 / 3] * 3})),
        "uncrop": _palette_model(root / "uncrop", PaletteTask("uncrop", {"side": "right", "fraction": 0.5})),
    }


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _direct(prior, model: Path, name: str, x: torch.Tensor, sigma_y: float, observation: str, seed: int,
            steps: int | None, average: int):
    """(operator, y, Palette result) for one image with the library alone, as bench must compute them."""
    task = read_palette_task(model)
    op = task.build(tuple(x.shape[1:]))
    y = observe(op, x, 2 * sigma_y, generators(seed, [name], NOISE))
    if observation == "uint8":
        y = as_8bit(y)
    xr = restore_palette(prior, op, y, steps, average, generators(seed, [name], SAMPLER), progress=False)
    return op, y, xr


def _assert_row(row: dict, img: torch.Tensor, ref: torch.Tensor) -> None:
    want = score(img, ref)
    for k in ("psnr", "psnr_uint8", "ssim"):
        assert float(row[k]) == want[k][0], (row["method"], k)


# ---------------------------------------------------------------------------------- rows


@pytest.mark.parametrize(("model", "observation", "steps", "average", "batch_size"), [
    ("sr2", "uint8", None, 1, 1),  # the model's T steps and training noise, 8-bit y
    ("sr2", "float", 3, 2, 2),  # strided, averaged, batched
    ("uncrop_left", "uint8", None, 1, 2),  # the task's parameters; the condition's fill noise
    ("color", "uint8", 5, 1, 1),  # a grey observation of colour images
])
def test_rows_equal_observe_restore_palette_and_score_computed_directly(tmp_path, models, model, observation, steps,
                                                                        average, batch_size):
    data = tmp_path / "data"
    paths = _write_images(data, [(16, 16), (20, 12), (16, 16)])
    run = models[model]
    trained = read_palette_task(run).sigma_y / 2  # pixel units
    cfg = BenchConfig(op=None, method="palette", model=str(run), data=data, output=tmp_path / "out", steps=steps,
                      average=average, observation=observation, seed=7, batch_size=batch_size, progress=False)
    rows = run_bench(cfg)
    prior = load_palette_prior(run, device="cpu")  # as bench loads it (and `ddrm solve`)
    by_key = {(r["name"], r["method"]): r for r in rows}
    for path in paths:
        x = load_image(path)
        op, y, xr = _direct(prior, run, path.name, x, trained, observation, 7, steps, average)
        _assert_row(by_key[(path.name, "palette")], xr, x)
        _assert_row(by_key[(path.name, "h_pinv")], op.H_pinv(y), x)
        if average > 1:  # the first sample alone: the run with average 1
            _assert_row(by_key[(path.name, "palette_1")], _direct(prior, run, path.name, x, trained, observation, 7,
                                                                  steps, 1)[2], x)
    assert {r["method"] for r in rows} == ({"palette", "h_pinv"} | ({"bicubic"} if model == "sr2" else set())
                                           | ({"palette_1"} if average > 1 else set()))
    csv_rows = _read_csv(tmp_path / "out" / "per_image.csv")
    assert [(r["name"], r["method"]) for r in csv_rows] == [(r["name"], r["method"]) for r in rows]
    assert csv_rows[0]["method"] == "palette"  # Palette's row first, then the baselines, per image


def test_palette_and_ddrm_are_benched_on_the_same_observations(tmp_path, models):
    """Same operator, --sigma-y, seed and file: the baselines (functions of y alone) score identically."""
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 12)])
    common = dict(data=data, sigma_y=0.05, seed=2, progress=False)
    pal = run_bench(BenchConfig(op="sr2", method="palette", model=str(models["sr2"]), steps=2,
                                output=tmp_path / "p", **common))
    ddrm = run_bench(BenchConfig(op="sr2", output=tmp_path / "d", steps=2, **common), prior=isotropic_gaussian_prior())

    def baselines(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows if r["method"] in ("h_pinv", "bicubic")]

    assert baselines(pal) == baselines(ddrm) and len(baselines(pal)) == 4


def test_a_given_palette_prior_is_used_with_the_models_task(tmp_path, models):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    run = models["uncrop_left"]
    prior = load_palette_prior(run, device="cpu", channels_last=False)
    cfg = BenchConfig(op="uncrop", method="palette", model=str(run), data=data, output=tmp_path / "out", steps=2,
                      progress=False)
    (row, _) = run_bench(cfg, prior=prior)
    x = load_image(data / "img00.png")
    _assert_row(row, _direct(prior, run, "img00.png", x, 0.0, "uint8", 0, 2, 1)[2], x)


# ---------------------------------------------------------------------------------- = ddrm solve


def test_solve_clean_writes_the_image_bench_saves(tmp_path, models):
    """`ddrm solve --clean --model RUN` and `ddrm bench --method palette --observation float` restore identically,
    bench with the model's defaults (all T steps, its training noise), solve with all T steps."""
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)], seed=4)
    run = models["sr2"]
    runner = CliRunner()
    common = ["--model", str(run), "--seed", "3", "--device", "cpu", "--no-progress"]
    _ok(runner.invoke(main, ["bench", "--method", "palette", *common, "--data", str(data), "-o",
                             str(tmp_path / "bench"), "--save-images", "--observation", "float"]))
    # both with their defaults: all T steps of a model whose T (8) is below DDRM's default of 20
    _ok(runner.invoke(main, ["solve", *common, "--clean", str(path), "-o", str(tmp_path / "solve.png")]))
    benched = np.asarray(Image.open(tmp_path / "bench" / "images" / f"{path.stem}.png"))
    solved = np.asarray(Image.open(tmp_path / "solve.png"))
    assert np.array_equal(benched, solved)
    x = load_image(path)
    prior = load_palette_prior(run, device="cpu")
    assert np.array_equal(solved, to_uint8(_direct(prior, run, path.name, x, 0.05, "float", 3, None, 1)[2]))


@pytest.mark.parametrize("model", ["sr2", "uncrop"])
def test_uint8_bench_equals_degrade_then_solve_on_the_8bit_file(tmp_path, models, model):
    data = tmp_path / "data"
    (path,) = _write_images(data, [(16, 16)], seed=9)
    run = models[model]
    task = read_palette_task(run)
    common = ["--model", str(run), "--steps", "3", "--seed", "4", "--device", "cpu", "--no-progress"]
    degrade = ["--op", task.operator, "--sigma-y", f"{task.sigma_y / 2:g}", "--seed", "4"]
    assert_bench_equals_degrade_then_solve(tmp_path, path, ["--method", "palette", *common], degrade, common)


# ---------------------------------------------------------------------------------- what it records


def test_summaries_record_the_method_task_noise_steps_and_time(tmp_path, models):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (16, 16)])
    out = tmp_path / "out"
    res = _ok(CliRunner().invoke(main, ["bench", "--method", "palette", "--model", str(models["uncrop_left"]),
                                        "--data", str(data), "-o", str(out), "--device", "cpu", "--no-progress"]))
    lines = res.output.splitlines()
    assert lines[:2] == ["| method | PSNR (dB) | PSNR uint8 (dB) | SSIM | s / image |", "|---|---|---|---|---|"]
    assert lines[2].startswith("| Palette |") and "note:" not in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "palette" and summary["op"] == "uncrop"
    assert summary["palette"] == {"task": {"operator": "uncrop", "params": {"side": "left", "fraction": 0.375},
                                           "sigma_y": 0.0}, "timesteps": T}
    assert summary["steps"] == T and summary["sigma_y"] == 0.0 and summary["sampler_sigma_y"] is None
    assert summary["clip_denoised"] is True
    assert summary["observation_rounded"] is True and summary["means"]["palette"]["n"] == 2
    assert summary["means"]["palette"]["seconds"] > 0
    md = (out / "summary.md").read_text()
    assert md.startswith("# ddrm bench --method palette: `uncrop`")
    assert (f"- Palette model: `{models['uncrop_left']}` (fp32), trained for `uncrop side='left' fraction=0.375` "
            f"with sigma_y 0 (pixel units); all {T} timesteps (Algorithm 2), seed 0") in md
    assert "Palette is told no noise level, so the rounding" in md
    assert "columns: ground truth, observation, baseline (H_pinv(y)), Palette." in md


def test_sigma_y_defaults_to_the_training_noise_and_another_one_gets_a_note(tmp_path, models):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    common = ["bench", "--method", "palette", "--model", str(models["sr2"]), "--steps", "2", "--data", str(data),
              "--device", "cpu", "--no-progress"]
    runner = CliRunner()
    _ok(runner.invoke(main, [*common, "-o", str(tmp_path / "a")]))
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["sigma_y"] == 0.05
    res = _ok(runner.invoke(main, [*common, "--sigma-y", "0.1", "-o", str(tmp_path / "b")]))
    note = "--sigma-y 0.1 simulates other noise than the model was trained for (0.05)"
    assert f"note: {note}" in res.stderr
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["sigma_y"] == 0.1 and summary["notes"] == [note] and summary["steps"] == 2
    assert f"- note: {note}" in (tmp_path / "b" / "summary.md").read_text()
    assert "(strided)" in (tmp_path / "b" / "summary.md").read_text()


def test_all_timesteps_by_default_with_a_note_when_that_is_many(tmp_path, models, monkeypatch):
    import ddrm_kit.palette_model as palette_model
    import ddrm_kit.palette_sampler as sampler

    calls = []
    real = sampler.palette
    monkeypatch.setattr(sampler, "palette", lambda *a, **k: calls.append((k["steps"], k["clip_denoised"])) or real(*a, **k))
    monkeypatch.setattr(palette_model, "STEPS_NOTE_ABOVE", 4)
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    common = ["bench", "--method", "palette", "--model", str(models["sr2"]), "--data", str(data), "--device", "cpu",
              "--no-progress"]
    res = _ok(CliRunner().invoke(main, [*common, "-o", str(tmp_path / "o")]))
    assert calls == [(T, True)]  # all T timesteps (the same schedule as steps=None), x̂0 clipped
    assert f"note: a Palette model samples all {T} timesteps by default (Algorithm 2)" in res.stderr
    assert "x̂0 clipped to [-1, 1]" in (tmp_path / "o" / "summary.md").read_text()
    _ok(CliRunner().invoke(main, [*common, "--no-clip-denoised", "-o", str(tmp_path / "p")]))
    assert calls[1] == (T, False) and "x̂0 not clipped" in (tmp_path / "p" / "summary.md").read_text()


# ---------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("args", "text"), [
    (["--op", "sr4"], "--op sr4: {sr2} is a Palette model for sr2 only (its palette.json); use --op sr2 or omit --op"),
    (["--eta", "0.5"], "--eta is a DDRM setting; a Palette model samples with Palette's Algorithm 2: drop it"),
    (["--eta-b", "0.5"], "--eta-b is a DDRM setting"),
    (["--model-config", "celeba_hq"], "--model-config does not apply to a Palette model folder: drop it"),
    (["--class-label", "3"], "--class-label does not apply to a Palette model folder: drop it"),
    (["--reference"], "--reference lists published DDRM numbers"),
    (["--steps", str(T + 1)], f"--steps {T + 1} is more than the Palette model's {T} timesteps"),
])
def test_options_that_do_not_apply_to_palette_are_one_line_errors(tmp_path, models, args, text):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    res = CliRunner().invoke(main, ["bench", "--method", "palette", "--model", str(models["sr2"]), *args, "--data",
                                    str(data), "-o", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    one_line_error(res, text.format(sr2=models["sr2"]))
    assert not (tmp_path / "out").exists()


def test_a_model_of_the_other_method_is_refused_naming_the_fix(tmp_path, models, tiny_unet_dir):
    data = tmp_path / "data"
    _write_images(data, [(16, 16)])
    runner = CliRunner()
    common = ["--data", str(data), "-o", str(tmp_path / "out"), "--device", "cpu", "--no-progress"]
    sr2 = models["sr2"]
    one_line_error(runner.invoke(main, ["bench", "--op", "sr2", "--model", str(sr2), *common]),
                    f"--model {sr2} is a Palette model (trained for sr2), not a DDRM prior: add --method palette")
    one_line_error(runner.invoke(main, ["bench", "--method", "palette", "--model", str(tiny_unet_dir), *common]),
                    f"--model {tiny_unet_dir} has no palette.json, so it is not a Palette model (a DDRM prior?): "
                    "use --method ddrm")
    one_line_error(runner.invoke(main, ["bench", "--method", "palette", "--model", "builtin", *common]),
                    "--model builtin is the built-in DDRM prior, not a Palette model: use --method ddrm")
    one_line_error(runner.invoke(main, ["bench", "--method", "palette", *common]),
                    "--method palette needs --model RUN, a Palette model folder")
    one_line_error(runner.invoke(main, ["bench", "--method", "palette", "--model", str(tmp_path / "nope"), *common]),
                    "no such Palette model folder")
    one_line_error(runner.invoke(main, ["bench", *common]), "Missing option '--op'.")
    assert not (tmp_path / "out").exists()
    # The Python API: a given prior of the other kind.
    cfg = BenchConfig(op="sr2", data=data, output=tmp_path / "out", steps=2, progress=False)
    with pytest.raises(ValueError, match="conditional \\(Palette\\) model: bench it with method='palette'"):
        run_bench(cfg, prior=load_palette_prior(sr2, device="cpu"))
    with pytest.raises(ValueError, match="not a Palette model .*: bench it with method='ddrm'"):
        run_bench(BenchConfig(op=None, method="palette", model=str(sr2), data=data, output=tmp_path / "out",
                              progress=False), prior=isotropic_gaussian_prior())
    with pytest.raises(ValueError, match="--method must be one of ddrm, palette"):
        run_bench(BenchConfig(op="sr2", method="dps", data=data, output=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- scale-out


def _gloo_rank(rank: int, world: int, init_file: str, model: str, data: str, out: str) -> None:
    """One rank of a gloo group (file:// rendezvous), as a launcher such as accelerate would set it up."""
    import os

    import torch.distributed as dist

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = BenchConfig(op=None, method="palette", model=model, data=Path(data), output=Path(out), steps=3, seed=5,
                          device="cpu", progress=False)
        run_bench(cfg)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # ~15-30 s of process start-up; the sharding is method-independent (test_bench.py's gloo test)
def test_two_gloo_ranks_equal_the_single_process_run(tmp_path, models):
    data = tmp_path / "data"
    _write_images(data, [(16, 16), (24, 16), (16, 16)])
    model = str(models["uncrop_left"])
    run_bench(BenchConfig(op=None, method="palette", model=model, data=data, output=tmp_path / "one", steps=3, seed=5,
                          device="cpu", progress=False))
    torch.multiprocessing.spawn(
        _gloo_rank, args=(2, str(tmp_path / "rdzv"), model, str(data), str(tmp_path / "two")), nprocs=2, join=True
    )
    one = _read_csv(tmp_path / "one" / "per_image.csv")
    two = _read_csv(tmp_path / "two" / "per_image.csv")
    assert len(one) == 3 * 2  # palette + h_pinv (uncrop's y is not an image)
    assert _without_times(one) == _without_times(two)
    assert all(math.isfinite(float(r["psnr"])) for r in two)
    assert "ranks: 2" in (tmp_path / "two" / "summary.md").read_text()

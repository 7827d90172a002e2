"""`ddrm train --palette` and `ddrm solve` with its run: pairs, palette.json, exact resume, loading, CLI paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import one_line_error
from PIL import Image

from ddrm_kit.cli import main
from ddrm_kit.errors import TrainingError
from ddrm_kit.palette_model import PALETTE_JSON, PaletteTask, load_palette_prior, read_palette_task
from ddrm_kit.palette_sampler import palette_condition
from ddrm_kit.restore import observe
from ddrm_kit.train import CONFIG_JSON, HOLDOUT_CSV, TrainConfig, export_prior, train, unet_config
from ddrm_kit.train.pairs import Conditions, holdout_conditions, resolve_task
from test_train import _assert_same_state, _state

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(size=16, channels=(8, 16), batch=4, precision="fp32", progress=False)
TINY_CLI = ["--size", "16", "--channels", "8,16", "--batch-size", "4", "--precision", "fp32", "--no-progress"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _png(path: Path, h: int, w: int, seed: int) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four 32x32 random RGB images."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        _png(folder / f"{i}.png", 32, 32, seed=i)
    return folder


@pytest.fixture(scope="module")
def sr2_run(photos, tmp_path_factory) -> Path:
    """A 4-step `ddrm train --palette sr2 --sigma-y 0.05` run (tests must not modify it)."""
    out = tmp_path_factory.mktemp("palette") / "run"
    _ok(_run("train", "--data", photos, "-o", out, *TINY_CLI, "--palette", "sr2", "--sigma-y", "0.05", "--steps", "4"))
    return out


# ---- training -----------------------------------------------------------------------------------


def test_task_records_every_parameter_with_its_registry_default() -> None:
    assert resolve_task("uncrop", {"side": "left"}, 0.0) == {
        "operator": "uncrop", "params": {"side": "left", "fraction": 0.5}, "sigma_y": 0.0}
    assert resolve_task("color", None, 0.1)["params"] == {"weights": [1 / 3] * 3}  # JSON: the tuple is a list
    assert resolve_task("jpeg10", None, 0.0)["params"] == {"subsampling": "4:2:0", "dct": "islow"}
    assert resolve_task("inp_box", None, 0.0)["params"] == {"size": None}


def test_run_folder_records_the_task(sr2_run: Path) -> None:
    body = json.loads((sr2_run / PALETTE_JSON).read_text())
    assert body == {"operator": "sr2", "params": {}, "sigma_y": 0.1}  # --sigma-y 0.05 in [0, 1] units
    assert read_palette_task(sr2_run) == PaletteTask("sr2", {}, 0.1)
    recipe = json.loads((sr2_run / CONFIG_JSON).read_text())
    assert recipe["palette"] == body and recipe["loss"] == "l2"
    unet = json.loads((sr2_run / "unet" / "config.json").read_text())
    assert (unet["in_channels"], unet["out_channels"]) == (6, 3)


@pytest.mark.parametrize("name, sigma_y", [("sr2", 0.1), ("uncrop", 0.0)])
def test_resume_is_bit_exact_across_late_crops(photos, tmp_path: Path, name: str, sigma_y: float) -> None:
    """Measurement and fill noise come from the trainer's generator; the operator is rebuilt for the 24x24 crops."""
    recipe = dict(TINY, late_size=24, late_from=2, palette=name, sigma_y=sigma_y)
    straight = train(photos, tmp_path / "straight", steps=4, **recipe)
    train(photos, tmp_path / "resumed", steps=1, **recipe)
    resumed = train([], tmp_path / "resumed", steps=4, resume=True, **TINY)  # the task comes from the run
    _assert_same_state(_state(tmp_path / "resumed"), _state(tmp_path / "straight"))
    assert resumed["holdout_loss"] == straight["holdout_loss"]
    assert read_palette_task(tmp_path / "resumed") == read_palette_task(tmp_path / "straight")
    with pytest.raises(TrainingError, match=f"resumed trains Palette {name}.*, not --palette inp_box"):
        train([], tmp_path / "resumed", steps=5, resume=True, palette="inp_box", **TINY)


def test_conditions_are_the_operators_pairs() -> None:
    task = PaletteTask("inp_box", {"size": 4}, 0.2)
    conditions = Conditions(task, torch.device("cpu"))
    for size in (16, 24):
        x0 = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1
        seeds = [[1, 2], [3, 4]]
        op = task.build((3, size, size))
        y = observe(op, x0, 0.2, [torch.Generator().manual_seed(a) for a, _ in seeds])
        want = palette_condition(op, y, [torch.Generator().manual_seed(b) for _, b in seeds])
        torch.testing.assert_close(conditions(x0, seeds), want, rtol=0, atol=0)
        assert tuple(conditions.operator(size).image_shape) == (3, size, size)
    x0 = torch.zeros(3, 3, 16, 16)
    torch.testing.assert_close(holdout_conditions(task, x0, 0), holdout_conditions(task, x0, 0), rtol=0, atol=0)


def test_l1_loss_trains_and_is_recorded(photos, tmp_path: Path) -> None:
    train(photos, tmp_path / "l1", steps=1, loss="l1", palette="color", **TINY)
    assert json.loads((tmp_path / "l1" / CONFIG_JSON).read_text())["loss"] == "l1"


def test_a_v_prediction_run_records_it_and_solves(photos, tmp_path: Path) -> None:
    from diffusers import UNet2DModel

    run = tmp_path / "vpred"
    train(photos, run, steps=2, palette="sr2", prediction="v_prediction", **TINY)
    assert json.loads((run / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    state = _state(run)
    ema = UNet2DModel(**unet_config(TrainConfig.from_dict(state["config"])))
    ema.load_state_dict(state["ema"])
    prior = load_palette_prior(run, device="cpu", channels_last=False)
    gen = torch.Generator().manual_seed(0)
    x, c, t = torch.randn(1, 3, 16, 16, generator=gen), torch.randn(1, 3, 16, 16, generator=gen), torch.tensor([600])
    a = prior.alphas_cumprod[600].float()
    with torch.no_grad():
        want = a.sqrt() * ema.eval()(torch.cat([c, x], 1), t).sample + (1 - a).sqrt() * x
    torch.testing.assert_close(prior(x, t, c), want, atol=1e-5, rtol=1e-5)
    _ok(_run("solve", "--model", run, "--steps", "2", "--no-progress", _png(tmp_path / "x.png", 8, 8, seed=3),
             "-o", tmp_path / "o.png"))
    assert (tmp_path / "o.png").is_file()


def test_run_loads_as_its_ema_net_and_its_holdout_uses_fixed_conditions(sr2_run: Path) -> None:
    from diffusers import DDPMScheduler, UNet2DModel

    from ddrm_kit.train.data import load_images
    from ddrm_kit.train.loop import holdout_batch, holdout_loss

    state = _state(sr2_run)
    cfg = TrainConfig.from_dict(state["config"])
    ema = UNet2DModel(**unet_config(cfg))
    ema.load_state_dict(state["ema"])
    ema.eval()
    prior = load_palette_prior(sr2_run, device="cpu", channels_last=False)  # NHWC would round differently
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(2, 3, 16, 16, generator=gen), torch.randn(2, 3, 16, 16, generator=gen)
    t = torch.tensor([700, 3])
    with torch.no_grad():
        torch.testing.assert_close(prior(x, t, c), ema(torch.cat([c, x], 1), t).sample, rtol=0, atol=0)

    # The last held-out loss, recomputed from the fixed held-out crops and their fixed conditions.
    images = load_images(cfg.data, cfg.size)  # four images: no held-out files, fixed crops of the training ones
    holdout = holdout_batch(images, cfg, 2 * cfg.batch)
    hold_c = holdout_conditions(PaletteTask(**cfg.palette), holdout[0], cfg.seed)
    ac = DDPMScheduler.from_pretrained(sr2_run, subfolder="scheduler").alphas_cumprod.float()
    loss = holdout_loss(ema, holdout, ac, torch.device("cpu"), "fp32", cfg, hold_c)
    with open(sr2_run / HOLDOUT_CSV, newline="") as f:
        last = list(csv.DictReader(f))[-1]
    assert last["train_crops_eps_mse_ema"] == f"{loss:.6f}"


def test_export_keeps_the_task(sr2_run: Path, tmp_path: Path) -> None:
    dest = export_prior(sr2_run, tmp_path / "exported")
    assert (dest / PALETTE_JSON).read_text() == (sr2_run / PALETTE_JSON).read_text()
    assert load_palette_prior(dest, device="cpu").conditional


@pytest.mark.parametrize("args, text", [
    (["--palette", "inp_mask"], "--palette inp_mask needs a mask array"),
    (["--palette", "deblur"], "--palette deblur needs a kernel array"),
    (["--palette", "jpeg10", "--sigma-y", "0.05"], "--sigma-y does not apply to jpeg10"),
    (["--palette", "inp_lolcat"], "--palette inp_lolcat cannot be built for 16x16 crops"),
    (["--palette", "uncrop", "-p", "sid=left"], "uncrop has no parameter sid"),
    (["--palette", "uncrop", "--loss", "l1", "--loss-weighting", "min_snr"], "Min-SNR weights the squared error"),
])
def test_train_refusals_are_one_line(photos, tmp_path: Path, args: list[str], text: str) -> None:
    result = _run("train", "--data", photos, "-o", tmp_path / "run", *TINY_CLI, "--steps", "1", *args)
    one_line_error(result, text)
    assert not (tmp_path / "run").exists()


def test_operator_parameters_need_palette(photos, tmp_path: Path) -> None:
    result = _run("train", "--data", photos, "-o", tmp_path / "run", *TINY_CLI, "--steps", "1", "-p", "side=left")
    assert result.exit_code == 2 and "give --palette OP" in result.output


# ---- solving ------------------------------------------------------------------------------------


def test_solve_restores_the_runs_task_deterministically(sr2_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    _png(inputs / "a.png", 8, 12, seed=5)
    _png(inputs / "b.png", 8, 12, seed=6)
    common = ["--model", sr2_run, "--steps", "3", "--seed", "1", "--no-progress"]
    r = _ok(_run("solve", *common, inputs / "a.png", "-o", tmp_path / "a1.png"))
    assert "wrote" in r.stdout and "note:" not in r.stderr  # no rounding-noise note: Palette takes no noise level
    assert Image.open(tmp_path / "a1.png").size == (24, 16)  # the low-res 12x8 input, twice the size
    _ok(_run("solve", *common, "--op", "sr2", inputs / "a.png", "-o", tmp_path / "a2.png"))
    assert np.array_equal(_pixels(tmp_path / "a1.png"), _pixels(tmp_path / "a2.png"))
    # per-image generators keyed by file name: the same pixels in a batch of two
    _ok(_run("solve", *common, "--batch-size", "2", inputs, "-o", tmp_path / "both"))
    assert np.array_equal(_pixels(tmp_path / "both" / "a_sr2.png"), _pixels(tmp_path / "a1.png"))
    _ok(_run("solve", *common, "--seed", "2", inputs / "a.png", "-o", tmp_path / "s2.png"))
    assert not np.array_equal(_pixels(tmp_path / "s2.png"), _pixels(tmp_path / "a1.png"))
    _ok(_run("solve", *common, "--average", "2", inputs / "a.png", "-o", tmp_path / "avg.png"))
    assert not np.array_equal(_pixels(tmp_path / "avg.png"), _pixels(tmp_path / "a1.png"))


def test_solve_clean_scores_palette_with_the_trained_noise(sr2_run: Path, tmp_path: Path) -> None:
    clean = _png(tmp_path / "clean.png", 16, 16, seed=7)
    r = _ok(_run("solve", "--model", sr2_run, "--clean", "--steps", "2", "--no-progress", clean,
                 "-o", tmp_path / "o.png"))
    assert "Palette PSNR" in r.stdout and Image.open(tmp_path / "o.png").size == (16, 16)
    r = _ok(_run("solve", "--model", sr2_run, "--clean", "--sigma-y", "0.2", "--steps", "2", "--no-progress", clean,
                 "-o", tmp_path / "o2.png"))
    assert "--sigma-y 0.2 simulates other noise than the model was trained for (0.05)" in r.stderr


def test_solve_runs_all_timesteps_by_default_with_clipping(sr2_run: Path, tmp_path: Path, monkeypatch) -> None:
    import ddrm_kit.palette_sampler as sampler

    calls = []
    real = sampler.palette

    def spy(*a, **k):
        calls.append((k["steps"], k["clip_denoised"]))
        return real(*a, **{**k, "steps": 2})

    monkeypatch.setattr(sampler, "palette", spy)
    x = _png(tmp_path / "x.png", 8, 8, seed=8)
    r = _ok(_run("solve", "--model", sr2_run, "--no-progress", x, "-o", tmp_path / "o.png"))
    assert calls == [(None, True)]  # None: all T steps; x̂0 clipped, as DDPM's sampler
    assert "a Palette model samples all 1000 timesteps by default" in r.stderr
    _ok(_run("solve", "--model", sr2_run, "--no-progress", "--no-clip-denoised", x, "-o", tmp_path / "p.png"))
    assert calls[1] == (None, False)


@pytest.mark.parametrize("args, text", [
    (["--op", "sr4"], "is a Palette model for sr2 only (its palette.json); use --op sr2 or omit --op"),
    (["--eta", "0.5"], "--eta is a DDRM setting"),
    (["-p", "scale=2"], "-p scale: a Palette model restores the task it was trained for (sr2)"),
    (["--sigma-y", "0.1"], "--sigma-y: a Palette model is not told the noise level"),
])
def test_solve_refusals_are_one_line(sr2_run: Path, tmp_path: Path, args: list[str], text: str) -> None:
    result = _run("solve", "--model", sr2_run, *args, _png(tmp_path / "x.png", 8, 8, seed=9), "-o", tmp_path / "o.png")
    one_line_error(result, text)
    assert not (tmp_path / "o.png").exists()


def test_a_ddrm_prior_still_needs_op_and_solves_as_before(tiny_unet_dir, tmp_path: Path) -> None:
    x = _png(tmp_path / "x.png", 16, 16, seed=10)
    one_line_error(_run("solve", "--model", tiny_unet_dir, x), "Missing option '--op'.")
    r = _ok(_run("solve", "--op", "sr2", "--model", tiny_unet_dir, "--clean", "--steps", "2", "--no-progress", x,
                 "-o", tmp_path / "o.png"))
    assert "DDRM PSNR" in r.stdout

"""The trainer's recipe options: v-prediction, Min-SNR-γ weighting, attention levels, late crops, old recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ddrm_kit.cli.train import train_command
from ddrm_kit.errors import TrainingError
from ddrm_kit.train import CHECKPOINT, CONFIG_JSON, HOLDOUT_CSV, TrainConfig, crop_plan, train, unet_config
from ddrm_kit.train.loop import holdout_loss
from ddrm_kit.train.objective import min_snr_weights, noised, target, to_epsilon, training_loss
from test_train import _assert_same_state, _state

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(size=16, channels=(8, 16), batch=4, precision="fp32", progress=False)
TINY_CLI = ["--size", "16", "--channels", "8,16", "--batch-size", "4", "--precision", "fp32", "--no-progress"]


def _abar(t: int) -> float:
    """ᾱ_t of the linear schedule (betas 1e-4 .. 0.02 over 1000 steps), in float64."""
    betas = np.linspace(1e-4, 0.02, 1000)
    return float(np.prod(1 - betas[: t + 1]))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four 32x32 random RGB images."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_min_snr_weights_are_the_closed_form() -> None:
    from diffusers import DDPMScheduler

    ac = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod
    t = torch.tensor([0, 120, 999])
    for prediction in ("epsilon", "v_prediction"):
        cfg = TrainConfig(data=[], prediction=prediction, loss_weighting="min_snr", snr_gamma=5.0)
        got = min_snr_weights(cfg, t, ac).double()
        snr = torch.tensor([_abar(int(k)) / (1 - _abar(int(k))) for k in t], dtype=torch.float64)
        assert snr[0] > 5 > snr[2]  # both sides of the clip
        expected = snr.clamp(max=5) / (snr if prediction == "epsilon" else snr + 1)
        # the trainer's ᾱ is diffusers' float32 schedule: at t = 0, 1 - ᾱ = 1e-4 keeps 3-4 digits
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=0)
    # t = 999: SNR is tiny, so ε's weight is 1 and v's is SNR/(SNR+1), about SNR
    assert got[2] == pytest.approx(snr[2].item(), rel=1e-3)


def test_targets_losses_and_epsilon_conversion() -> None:
    from diffusers import DDPMScheduler

    ac = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(3, 3, 4, 4, generator=gen) * 2 - 1, torch.randn(3, 3, 4, 4, generator=gen)
    t = torch.tensor([5, 400, 990])
    a = ac[t].view(-1, 1, 1, 1)
    eps_cfg = TrainConfig(data=[])
    v_cfg = TrainConfig(data=[], prediction="v_prediction", loss_weighting="min_snr")
    assert target(eps_cfg, x0, t, noise, ac) is noise
    v = target(v_cfg, x0, t, noise, ac)
    torch.testing.assert_close(v, a.sqrt() * noise - (1 - a).sqrt() * x0)
    torch.testing.assert_close(to_epsilon(v_cfg, v, noised(x0, t, noise, ac), t, ac), noise, rtol=0, atol=1e-6)

    pred = torch.randn(3, 3, 4, 4, generator=gen)
    assert torch.equal(training_loss(eps_cfg, pred, x0, t, noise, ac), torch.nn.functional.mse_loss(pred, noise))
    l1_cfg = TrainConfig(data=[], loss="l1")
    torch.testing.assert_close(training_loss(l1_cfg, pred, x0, t, noise, ac), (pred - noise).abs().mean())
    per_image = ((pred - v) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(training_loss(v_cfg, pred, x0, t, noise, ac),
                               (min_snr_weights(v_cfg, t, ac) * per_image).mean())


def test_holdout_loss_is_in_epsilon_units_for_v_prediction() -> None:
    """A network that outputs 0: ε's held-out loss is E[ε²]; v's is that of sqrt(1-ᾱ) x_t, its ε."""
    from diffusers import DDPMScheduler

    class Zero(torch.nn.Module):
        def forward(self, x, t):
            return type("Out", (), {"sample": torch.zeros_like(x)})()

    ac = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.rand(6, 3, 4, 4, generator=gen) * 2 - 1, torch.randn(6, 3, 4, 4, generator=gen)
    t = torch.tensor([0, 200, 400, 600, 800, 999])
    holdout, cpu = (x0, t, noise), torch.device("cpu")
    eps_cfg, v_cfg = TrainConfig(data=[], batch=4), TrainConfig(data=[], batch=4, prediction="v_prediction")
    assert holdout_loss(Zero(), holdout, ac, cpu, "fp32", eps_cfg) == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)
    eps_hat = (1 - ac[t]).sqrt().view(-1, 1, 1, 1) * noised(x0, t, noise, ac)
    expected = (eps_hat - noise).pow(2).mean().item()
    assert holdout_loss(Zero(), holdout, ac, cpu, "fp32", v_cfg) == pytest.approx(expected, rel=1e-6)


def test_attention_levels_in_the_unet_config_and_the_command(photos, tmp_path: Path) -> None:
    widths = (8, 16, 16)
    for levels, down in [(0, ("DownBlock2D",) * 3), (1, ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")),
                         (2, ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"))]:
        cfg = unet_config(TrainConfig(data=[], channels=widths, attention_levels=levels))
        assert cfg["down_block_types"] == down and cfg["up_block_types"] == tuple(d.replace("Down", "Up") for d in down[::-1])
        assert cfg["add_attention"] == (levels > 0)  # the middle block's
    with pytest.raises(TrainingError, match=r"--attention-levels must be in \[0, 2\] for 3 levels"):
        train(photos, tmp_path / "r", steps=1, attention_levels=3, **{**TINY, "channels": widths})

    # the old spelling --attention is the lowest 2 levels (all but the full-resolution one here)
    runner = CliRunner()
    for flags, levels in [(["--attention"], 1), (["--attention-levels", "1"], 1), ([], 0), (["--no-attention"], 0)]:
        out = tmp_path / f"cli{len(flags)}{levels}"
        result = runner.invoke(train_command, ["--data", str(photos), "-o", str(out), *TINY_CLI, "--steps", "1", *flags])
        assert result.exit_code == 0, result.output
        assert json.loads((out / CONFIG_JSON).read_text())["attention_levels"] == levels
        config = json.loads((out / "unet" / "config.json").read_text())
        assert ("AttnDownBlock2D" in config["down_block_types"]) == (levels > 0)
    result = runner.invoke(train_command, ["--data", str(photos), "-o", str(tmp_path / "x"), "--steps", "1",
                                           "--no-attention", "--attention-levels", "1"])
    assert result.exit_code == 2 and result.output.splitlines()[-1] == (
        "Error: --no-attention contradicts --attention-levels 1")


def test_v_prediction_run_loads_as_epsilon(photos, tmp_path: Path) -> None:
    from diffusers import UNet2DModel

    from ddrm_kit.prior import load_prior

    out = tmp_path / "v"
    result = CliRunner().invoke(train_command, ["--data", str(photos), "-o", str(out), *TINY_CLI, "--steps", "3",
                                                "--prediction", "v_prediction", "--loss-weighting", "min_snr",
                                                "--snr-gamma", "4"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / CONFIG_JSON).read_text())
    assert (saved["prediction"], saved["loss_weighting"], saved["snr_gamma"]) == ("v_prediction", "min_snr", 4.0)
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    # four images: none held out, so the ε error is on fixed training crops
    assert (out / HOLDOUT_CSV).read_text().splitlines()[0].split(",")[4] == "train_crops_eps_mse_ema"

    prior = load_prior(out, device="cpu", channels_last=False)
    unet = UNet2DModel.from_pretrained(out, subfolder="unet")
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([30, 700])
    a = torch.tensor([_abar(30), _abar(700)], dtype=torch.float64).view(-1, 1, 1, 1)
    with torch.no_grad():
        v = unet(x, t).sample.double()
    torch.testing.assert_close(prior(x, t).double(), a.sqrt() * v + (1 - a).sqrt() * x.double(), rtol=0, atol=1e-6)


def test_late_crops_switch_at_their_step_and_resume_across_it_exactly(photos, tmp_path: Path) -> None:
    cfg = TrainConfig(data=[], size=16, batch=4, late_size=24, late_from=3)
    # 4 * (16/24)² = 1.78 -> 2 crops of 24x24 per step
    assert [crop_plan(cfg, s) for s in range(5)] == [(16, 4)] * 3 + [(24, 2)] * 2
    assert crop_plan(TrainConfig(data=[], size=64, batch=32, late_size=128, late_from=0), 0) == (128, 8)
    late = dict(TINY, late_size=24, late_from=3)
    straight = train(photos, tmp_path / "straight", steps=6, **late)
    assert straight["images_seen"] == 3 * 4 + 3 * 2
    train(photos, tmp_path / "resumed", steps=2, **late)
    resumed = train([], tmp_path / "resumed", steps=6, resume=True, **TINY)  # the recipe comes from the run
    _assert_same_state(_state(tmp_path / "resumed"), _state(tmp_path / "straight"))
    assert resumed["holdout_loss"] == straight["holdout_loss"]
    with pytest.raises(TrainingError, match="give --late-size and --late-from together"):
        train(photos, tmp_path / "bad", steps=1, late_size=24, **TINY)
    with pytest.raises(TrainingError, match="--late-size 18 must be a multiple of 4 for 3 levels"):
        train(photos, tmp_path / "bad", steps=1, late_size=18, late_from=1, **{**TINY, "channels": (8, 16, 16)})


def test_run_of_an_older_trainer_resumes_with_its_behaviour(photos, tmp_path: Path) -> None:
    """A checkpoint whose recipe predates the options (and says attention: false) resumes as an ε, uniform, l2,
    conv-only, unconditional run."""
    straight = train(photos, tmp_path / "straight", steps=4, **TINY)
    old = tmp_path / "old"
    train(photos, old, steps=2, **TINY)
    state = _state(old)
    recipe = {k: v for k, v in state["config"].items()
              if k not in ("attention_levels", "prediction", "loss_weighting", "snr_gamma", "late_size", "late_from",
                           "loss", "palette")}
    state["config"] = {**recipe, "attention": False}
    torch.save(state, old / CHECKPOINT)
    (old / CONFIG_JSON).write_text(json.dumps(state["config"]))
    resumed = train([], old, steps=4, resume=True, **TINY)
    _assert_same_state(_state(old), _state(tmp_path / "straight"))
    assert resumed["holdout_loss"] == straight["holdout_loss"]
    assert json.loads((old / CONFIG_JSON).read_text()) == json.loads((tmp_path / "straight" / CONFIG_JSON).read_text())

    legacy = TrainConfig.from_dict({"data": ["d"], "channels": [8, 16, 16], "attention": True})
    assert legacy.attention_levels == 2 and legacy.channels == (8, 16, 16)
    assert TrainConfig.from_dict({"data": ["d"], "channels": [8, 16], "attention": True}).attention_levels == 1


def test_resume_notes_the_given_options_its_recipe_overrides(photos, tmp_path: Path, capsys) -> None:
    """--resume keeps the run's recipe: one note names each option given with another value, and the value kept."""
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(train_command, ["--data", str(photos), "-o", str(out), *TINY_CLI, "--steps", "1"])
    assert result.exit_code == 0, result.output
    notes = lambda result: [line for line in result.stderr.splitlines() if line.startswith("note:")]  # noqa: E731

    # the run's own values given again, or no recipe option at all (defaults differ from the run's): no note
    for args, steps in ([*TINY_CLI], "2"), (["--no-progress", "--lr", "5e-4"], "3"):
        result = runner.invoke(train_command, ["-o", str(out), "--resume", *args, "--steps", steps])
        assert result.exit_code == 0, result.output
        assert notes(result) == []

    result = runner.invoke(train_command, ["-o", str(out), "--resume", "--no-progress", "--steps", "4", "--size", "32",
                                           "--lr", "0.001", "--channels", "8,16,16", "--batch-size", "4",
                                           "--late-size", "32", "--late-from", "9"])
    assert result.exit_code == 0, result.output
    assert notes(result) == [
        f"note: {out} continues with its own recipe: it keeps --size 16 (not 32), --channels 8,16 (not 8,16,16), "
        "--lr 0.0005 (not 0.001), --late-size none (not 32), --late-from none (not 9); "
        "train another -o/--output to change them"]
    saved = json.loads((out / CONFIG_JSON).read_text())
    assert (saved["size"], saved["channels"], saved["lr"], saved["late_size"]) == (16, [8, 16], 5e-4, None)
    assert _state(out)["step"] == 4

    # the Python API notes the options set to other than their defaults
    capsys.readouterr()
    train([], out, steps=5, resume=True, **{**TINY, "ema": 0.99})
    assert capsys.readouterr().err.splitlines()[0] == (
        f"note: {out} continues with its own recipe: it keeps --ema 0.999 (not 0.99); "
        "train another -o/--output to change them")


def test_t_range_trains_and_holds_out_only_its_timesteps_and_resumes_with_them(photos, tmp_path: Path,
                                                                               monkeypatch) -> None:
    """--t-range FROM:TO (a noise-level expert): every training and held-out timestep lies in [FROM, TO)."""
    import ddrm_kit.train.loop as loop

    seen: list[torch.Tensor] = []
    real_loss = loop.training_loss

    def recording_loss(cfg, pred, x0, t, noise, alphas_cumprod):
        seen.append(t.clone())
        return real_loss(cfg, pred, x0, t, noise, alphas_cumprod)

    monkeypatch.setattr(loop, "training_loss", recording_loss)
    out = tmp_path / "expert"
    train(photos, out, steps=6, t_range=(990, 1000), **{**TINY, "batch": 8})
    t = torch.cat(seen)
    assert len(t) == 48 and int(t.min()) >= 990 and int(t.max()) <= 999 and len(set(t.tolist())) > 3
    expert = TrainConfig(data=[], size=16, t_range=(990, 1000))
    held = loop.holdout_batch([np.zeros((32, 32, 3), np.float32)] * 2, expert, 5)[1]
    assert held.tolist() == [990, 992, 994, 997, 999]  # spread over the range, both ends included
    assert json.loads((out / CONFIG_JSON).read_text())["t_range"] == [990, 1000]

    seen.clear()
    result = CliRunner().invoke(train_command, ["-o", str(out), "--resume", "--no-progress", "--steps", "7",
                                                "--t-range", "0:500"])
    assert result.exit_code == 0, result.output
    assert "keeps --t-range 990:1000 (not 0:500)" in result.stderr
    assert int(torch.cat(seen).min()) >= 990 and _state(out)["step"] == 7


@pytest.mark.parametrize(("value", "message"), [
    ("500", "give FROM:TO, two integers like 500:1000, not '500'"),
    ("a:b", "give FROM:TO, two integers like 500:1000, not 'a:b'"),
    ("600:500", "--t-range 600:500 must be FROM:TO with 0 <= FROM < TO <= 1000"),
    ("0:1001", "--t-range 0:1001 must be FROM:TO with 0 <= FROM < TO <= 1000"),
])
def test_a_bad_t_range_is_one_line_before_any_work(photos, tmp_path: Path, value: str, message: str) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(train_command, ["--data", str(photos), "-o", str(out), *TINY_CLI, "--steps", "1",
                                                "--t-range", value])
    assert result.exit_code == 1 and result.output.count("\n") == 1  # one line, before any work
    assert message in result.output and not out.exists()

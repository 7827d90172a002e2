"""Tests of the DDPM trainer (ddrm_kit/train.py) on tiny generated images with a tiny UNet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ddrm_kit.errors import DDRMError
from ddrm_kit.train import (
    CHECKPOINT,
    HOLDOUT_CSV,
    TrainConfig,
    TrainingDataNotFoundError,
    TrainingError,
    export_prior,
    train,
    train_command,
    unet_config,
)

# every fixture folder holds a corrupt file on purpose; only the first test checks its warning
pytestmark = pytest.mark.filterwarnings("ignore:skipping unreadable image")

TINY = dict(size=16, channels=(8, 16), batch=4, precision="fp32", progress=False)
TINY_CLI = ["--size", "16", "--channels", "8,16", "--batch", "4", "--precision", "fp32"]


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    """Five small random RGB images (one nested), one grey image and one corrupt file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(folder / "sub" / "nested.jpg")
    Image.fromarray(rng.integers(0, 256, (18, 18), dtype=np.uint8)).save(folder / "grey.png")
    (folder / "corrupt.png").write_bytes(b"not an image")
    return folder


def _weights(path: Path) -> dict[str, dict]:
    ckpt = torch.load(path / CHECKPOINT, map_location="cpu", weights_only=False)
    return ckpt


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(tensor, b[key][name], rtol=0, atol=0, msg=f"{key}.{name}")
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=0, atol=0)


def test_few_steps_write_a_loadable_pretrained_folder(images: Path, tmp_path: Path) -> None:
    from diffusers import DDPMScheduler, UNet2DModel

    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="corrupt.png"):
        summary = train(images, out, steps=4, **TINY)
    assert summary["step"] == 4 and summary["images_seen"] == 16
    assert np.isfinite(summary["holdout_loss"])

    unet = UNet2DModel.from_pretrained(out, subfolder="unet")
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists()
    ckpt = _weights(out)
    # the saved model is the EMA copy, which differs from the raw weights after a few steps
    for name, tensor in unet.state_dict().items():
        torch.testing.assert_close(tensor, ckpt["ema"][name])
    assert any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"])

    sched = DDPMScheduler.from_pretrained(out, subfolder="scheduler")
    assert sched.config.num_train_timesteps == 1000
    assert sched.config.prediction_type == "epsilon"
    assert sched.config.beta_schedule == "linear"
    torch.testing.assert_close(sched.betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    assert json.loads((out / "model_index.json").read_text())["unet"] == ["diffusers", "UNet2DModel"]

    rows = (out / HOLDOUT_CSV).read_text().splitlines()
    assert rows[0].startswith("step,") and rows[1].startswith("4,16,")


def test_conv_only_unet_takes_any_multiple_of_its_downsampling() -> None:
    from diffusers import UNet2DModel

    cfg = TrainConfig(data=[], size=16, channels=(8, 16, 16))
    kwargs = unet_config(cfg)
    assert not any("Attn" in b for b in kwargs["down_block_types"] + kwargs["up_block_types"])
    model = UNet2DModel(**kwargs)
    x = torch.randn(1, 3, 12, 20)  # non-square, not the training size
    assert model(x, torch.tensor([10])).sample.shape == x.shape

    attn = unet_config(TrainConfig(data=[], channels=(8, 16, 16), attention=True))
    assert attn["down_block_types"] == ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
    assert attn["up_block_types"] == ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")


def test_resume_continues_exactly(images: Path, tmp_path: Path) -> None:
    split = tmp_path / "split"
    train(images, split, steps=3, **TINY)
    train([], split, steps=6, resume=True, **TINY)
    straight = tmp_path / "straight"
    train(images, straight, steps=6, **TINY)
    _assert_same_state(_weights(split), _weights(straight))
    assert len((split / HOLDOUT_CSV).read_text().splitlines()) == 3  # header + two checkpoints


def test_resume_after_kill(images: Path, tmp_path: Path) -> None:
    """Kill -9 a running trainer after a checkpoint; --resume continues from that step exactly."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ddrm_kit.train", "--data", str(images), "--out", str(out), *TINY_CLI]
    proc = subprocess.Popen(
        [*cmd, "--steps", "1000000", "--checkpoint-every", "0.002"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / CHECKPOINT).exists() and _weights(out)["step"] >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the trainer wrote no checkpoint within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _weights(out)["step"]

    summary = train([], out, steps=killed_at + 2, resume=True, **TINY)
    assert summary["images_seen"] == 4 * (killed_at + 2)  # it started from the checkpoint, not from 0
    resumed = _weights(out)
    assert resumed["step"] == killed_at + 2

    straight = tmp_path / "straight"
    train(images, straight, steps=killed_at + 2, **TINY)
    _assert_same_state(resumed, _weights(straight))


def test_resumed_run_loads_with_load_prior(images: Path, tmp_path: Path) -> None:
    prior = pytest.importorskip("ddrm_kit.prior")
    out = tmp_path / "run"
    train(images, out, steps=2, **TINY)
    loaded = prior.load_prior(str(out), device="cpu")
    x = torch.zeros(1, 3, 16, 16)
    eps = loaded(x, torch.tensor([500]))
    assert eps.shape == x.shape and eps.dtype == torch.float32


def test_export_prior_writes_a_small_flat_folder(images: Path, tmp_path: Path) -> None:
    from diffusers import UNet2DModel

    out = tmp_path / "run"
    train(images, out, steps=2, **TINY)
    dest = tmp_path / "builtin"
    dest.mkdir()
    (dest / "README.md").write_text("card")
    export_prior(out, dest)
    assert (dest / "README.md").read_text() == "card"
    assert (dest / "scheduler_config.json").exists()
    from safetensors.torch import load_file

    tensors = load_file(dest / "diffusion_pytorch_model.safetensors")
    assert all(t.dtype == torch.float16 for t in tensors.values())
    unet = UNet2DModel.from_pretrained(dest)
    ema = _weights(out)["ema"]
    for name, tensor in unet.state_dict().items():
        torch.testing.assert_close(tensor.float(), ema[name], rtol=1e-3, atol=1e-3)


def test_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(TrainingDataNotFoundError, match="no readable image") as info:
        train(empty, tmp_path / "run", steps=1, **TINY)
    assert isinstance(info.value, DDRMError) and isinstance(info.value, FileNotFoundError)
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 truncated")  # unreadable files are skipped, not counted
    with pytest.raises(TrainingDataNotFoundError, match="no readable image"):
        train(empty, tmp_path / "run", steps=1, **TINY)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(tmp_path / "missing", tmp_path / "run", steps=1, **TINY)

    result = CliRunner().invoke(train_command, ["--data", str(empty), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code != 0
    assert "no readable image" in result.output and "Traceback" not in result.output


def test_existing_run_needs_resume_and_stopping_rule(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(images, out, steps=1, **TINY)
    with pytest.raises(TrainingError, match="--resume"):
        train(images, out, steps=2, **TINY)
    with pytest.raises(TrainingError, match="--steps N or --minutes M"):
        train(images, tmp_path / "other", **TINY)
    runner = CliRunner()
    result = runner.invoke(train_command, ["--data", str(images), "--out", str(tmp_path / "x"), "--steps", "1", "--minutes", "1"])
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(train_command, ["--data", str(images), "--out", str(tmp_path / "x"), "--channels", "8,a", "--steps", "1"])
    assert result.exit_code == 1 and "comma-separated integers" in result.output


def test_shipped_builtin_prior_is_small_conv_only_and_documented() -> None:
    from diffusers import UNet2DModel
    from safetensors.torch import load_file

    import ddrm_kit

    folder = Path(ddrm_kit.__file__).parent / "builtin"
    weights = folder / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size < 20 * 2**20
    assert all(t.dtype == torch.float16 for t in load_file(weights).values())
    config = json.loads((folder / "config.json").read_text())
    assert "_name_or_path" not in config  # no path of the training machine in the package
    assert not any("Attn" in b for b in config["down_block_types"] + config["up_block_types"])
    sched = json.loads((folder / "scheduler_config.json").read_text())
    assert (sched["prediction_type"], sched["beta_schedule"], sched["num_train_timesteps"]) == ("epsilon", "linear", 1000)
    card = (folder / "README.md").read_text()
    assert "BSDS500" in card and "non-commercial" in card and "Arbelaez" in card
    unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32)
    x = torch.zeros(1, 3, 24, 40)
    assert unet(x, torch.tensor([999])).sample.shape == x.shape

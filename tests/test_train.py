"""Tests of the DDPM trainer (ddrm_kit.train, `ddrm train`) on tiny generated images with a tiny UNet.

Most tests read the one run that conftest's ``trained_run`` fixture trains per session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ddrm_kit.cli.train import train_command
from ddrm_kit.errors import DDRMError, TrainingDataNotFoundError, TrainingError
from ddrm_kit.train import CHECKPOINT, CONFIG_JSON, HOLDOUT_CSV, TrainConfig, export_prior, train, unet_config
from ddrm_kit.train.data import load_images

TINY = dict(size=16, channels=(8, 16), batch=4, precision="fp32", progress=False)

# the shared run's folder holds six images, too few to hold any out: its loss is on fixed training crops
HOLDOUT_HEADER = "step,images_seen,train_seconds,train_loss,train_crops_eps_mse_ema,lr"


def _state(run: Path) -> dict:
    return torch.load(run / CHECKPOINT, map_location="cpu", weights_only=False)


def _assert_same_state(a: dict, b: dict) -> None:
    """Bit-identical counters, weights, optimizer moments and the crop/noise RNG streams."""
    assert (a["step"], a["images_seen"]) == (b["step"], b["images_seen"])
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name, tensor in a[key].items():
            torch.testing.assert_close(tensor, b[key][name], rtol=0, atol=0, msg=f"{key}.{name}")
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for moment in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sa[moment], sb[moment], rtol=0, atol=0)
    assert a["rng"]["crop"] == b["rng"]["crop"]
    assert torch.equal(a["rng"]["noise"], b["rng"]["noise"])


def _cli_recipe(recipe: dict) -> list[str]:
    """The command-line options of the shared run's recipe."""
    return ["--size", str(recipe["size"]), "--channels", ",".join(map(str, recipe["channels"])),
            "--batch-size", str(recipe["batch"]), "--precision", recipe["precision"], "--no-progress"]


def _images(folder: Path, n: int, size: int = 16) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def _no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if ".export." in p.name or p.name.endswith(".tmp")]


def test_run_folder_loads_as_pretrained_and_resumable(trained_run) -> None:
    from diffusers import DDPMScheduler, UNet2DModel

    run, summary = trained_run.run, trained_run.summary
    assert (summary["step"], summary["images_seen"], summary["held_out_images"], summary["out"]) == (24, 96, 0, str(run))

    ckpt = _state(run)
    # resuming runs made by earlier versions depends on these keys
    assert ckpt.keys() == {"config", "step", "images_seen", "train_seconds", "model", "ema", "optimizer", "rng"}
    assert {"torch", "numpy", "python", "crop", "noise"} <= ckpt["rng"].keys()
    assert (ckpt["step"], ckpt["images_seen"]) == (24, 96)
    recipe = asdict(TrainConfig(data=[str(trained_run.data)], **{k: v for k, v in trained_run.recipe.items() if k != "progress"}))
    assert ckpt["config"] == recipe
    assert json.loads((run / CONFIG_JSON).read_text()) == json.loads(json.dumps(recipe))

    # the saved model is the EMA copy, which differs from the raw weights after a few steps
    unet = UNet2DModel.from_pretrained(run, subfolder="unet")
    assert (run / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert unet.state_dict().keys() == ckpt["ema"].keys()
    for name, tensor in unet.state_dict().items():
        torch.testing.assert_close(tensor, ckpt["ema"][name], rtol=0, atol=0)
    assert any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"])

    sched = DDPMScheduler.from_pretrained(run, subfolder="scheduler")
    assert sched.config.num_train_timesteps == 1000
    assert sched.config.prediction_type == "epsilon"
    assert sched.config.beta_schedule == "linear"
    torch.testing.assert_close(sched.betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    index = json.loads((run / "model_index.json").read_text())
    assert (index["_class_name"], index["unet"]) == ("DDPMPipeline", ["diffusers", "UNet2DModel"])

    rows = (run / HOLDOUT_CSV).read_text().splitlines()
    assert len(rows) == 2 and rows[0] == HOLDOUT_HEADER
    step, seen, _, _, holdout, lr = rows[1].split(",")
    assert (step, seen, lr) == ("24", "96", "2.4e-05")  # the last step's rate: 5e-4 * 24 / 500 warm-up steps
    assert holdout == f"{summary['holdout_loss']:.6f}"
    assert _no_temporary_files(run)


def test_load_images_reads_rgb_and_skips_what_it_cannot_use(trained_run, capsys) -> None:
    data = trained_run.data
    images = load_images([data], 19)
    # one plain note per skipped file, in the order found: no warning, no source line
    assert capsys.readouterr().err.splitlines() == [
        f"note: skipped {data / 'corrupt.png'}: not an image file Pillow can read (use PNG, JPEG, BMP or TIFF)",
        f"note: skipped {data / 'grey.png'}: 18x18 is smaller than the 19x19 training crops",
    ]

    # sorted by path, nested folders included, every image RGB uint8 as decoded
    names = ["0.png", "1.png", "2.png", "3.png", "sub/nested.jpg"]
    assert len(images) == len(names)
    for name, arr in zip(names, images):
        assert arr.dtype == np.uint8
        np.testing.assert_array_equal(arr, np.asarray(Image.open(data / name).convert("RGB")))

    grey = load_images([data], 16)[4]
    assert grey.shape == (18, 18, 3)
    np.testing.assert_array_equal(grey, np.asarray(Image.open(data / "grey.png").convert("RGB")))


def test_training_image_with_exif_orientation_is_loaded_upright(tmp_path: Path) -> None:
    stored = np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    (image,) = load_images([tmp_path], 16)
    np.testing.assert_array_equal(image, np.rot90(stored, k=-1))


def test_conv_only_unet_takes_any_multiple_of_its_downsampling() -> None:
    from diffusers import UNet2DModel

    cfg = TrainConfig(data=[], size=16, channels=(8, 16, 16))
    kwargs = unet_config(cfg)
    assert not any("Attn" in b for b in kwargs["down_block_types"] + kwargs["up_block_types"])
    model = UNet2DModel(**kwargs)
    x = torch.randn(1, 3, 12, 20)  # non-square, not the training size
    assert model(x, torch.tensor([10])).sample.shape == x.shape

    attn = unet_config(TrainConfig(data=[], channels=(8, 16, 16), attention_levels=2))
    assert attn["down_block_types"] == ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D")
    assert attn["up_block_types"] == ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D")
    assert attn["add_attention"] and attn["attention_head_dim"] == 16  # one head on 16-channel blocks


def test_resume_after_kill(trained_run, tmp_path: Path) -> None:
    """Kill -9 a running trainer after a checkpoint; --resume continues from that step bit-exactly."""
    recipe = trained_run.recipe
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddrm_kit.train", "--data", str(trained_run.data), "-o", str(out), *_cli_recipe(recipe),
         "--steps", "1000000", "--checkpoint-every", "0.002"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / CHECKPOINT).exists() and _state(out)["step"] >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the trainer wrote no checkpoint within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _state(out)["step"]
    rows_before = (out / HOLDOUT_CSV).read_text().splitlines()

    # resume to the shared run's step; a machine slow to kill gets a straight run of its own
    straight, reference = trained_run.run, trained_run.summary
    if killed_at + 2 > reference["step"]:
        straight = tmp_path / "straight"
        reference = train(trained_run.data, straight, steps=killed_at + 2, **recipe)
    target = reference["step"]

    summary = train([], out, steps=target, resume=True, **recipe)
    assert summary["images_seen"] == recipe["batch"] * target  # it started from the checkpoint, not from 0
    _assert_same_state(_state(out), _state(straight))
    assert summary["holdout_loss"] == reference["holdout_loss"]
    rows = (out / HOLDOUT_CSV).read_text().splitlines()
    assert rows[: len(rows_before)] == rows_before and len(rows) == len(rows_before) + 1
    assert rows[-1].startswith(f"{target},{recipe['batch'] * target},")


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_step_checkpoints_and_exits_128_plus_it(trained_run, tmp_path: Path, signum: int, code: int,
                                                                word: str) -> None:
    """Ctrl-C or SIGTERM mid-run: one line, a checkpoint at a step's end that resumes bit-exactly, status 130 / 143."""
    recipe = trained_run.recipe
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddrm_kit.train", "--data", str(trained_run.data), "-o", str(out), *_cli_recipe(recipe),
         "--steps", "1000000", "--checkpoint-every", "0.002"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell's background job ignores SIGINT, and so would the trainer started from it: give it a terminal's
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / CHECKPOINT).exists():  # the first periodic checkpoint: steps are under way
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the trainer wrote no checkpoint: {proc.poll()=}")
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    assert stdout == "" and "Traceback" not in stderr
    stopped = _state(out)
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith(word)] == [f"{word}: writing a checkpoint (continue with --resume)"]
    assert lines[-2].startswith(word) and lines[-1].startswith(f"checkpoint: step {stopped['step']}, ")
    assert (out / HOLDOUT_CSV).read_text().splitlines()[-1].startswith(f"{stopped['step']},")

    target = stopped["step"] + 2
    train(trained_run.data, tmp_path / "straight", steps=target, **recipe)
    train([], out, steps=target, resume=True, **recipe)
    _assert_same_state(_state(out), _state(tmp_path / "straight"))


def test_help_states_the_exit_codes_of_a_stop() -> None:
    text = " ".join(CliRunner().invoke(train_command, ["--help"]).output.split())
    assert "Ctrl-C (SIGINT) or SIGTERM finishes the step, writes a checkpoint and exits with status 130 or 143" in text


def test_bad_files_are_one_plain_note_each(tmp_path: Path) -> None:
    data = _images(tmp_path / "data", 3)
    (data / "corrupt.png").write_bytes(b"not an image")
    (data / "empty.jpg").write_bytes(b"")
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(data / "small.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(train_command, ["--data", str(data), "-o", str(tmp_path / "run"),
                                                    *_cli_recipe(TINY), "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert not caught
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: skipped {data / 'corrupt.png'}: not an image file Pillow can read (use PNG, JPEG, BMP or TIFF)",
        f"note: skipped {data / 'empty.jpg'}: not an image file Pillow can read (use PNG, JPEG, BMP or TIFF)",
        f"note: skipped {data / 'small.png'}: 12x8 is smaller than the 16x16 training crops",
    ]
    assert "Warning" not in result.output and "warn(" not in result.output
    assert "3 training images (none held out: under 50 images)" in result.stderr


def test_the_fixed_batch_loss_is_named_by_what_it_measures(tmp_path: Path) -> None:
    """Under 50 images nothing is held out: the loss is on fixed training crops, and says so everywhere."""
    runner = CliRunner()
    few = tmp_path / "few"
    result = runner.invoke(train_command, ["--data", str(_images(tmp_path / "d4", 4)), "-o", str(few),
                                           *_cli_recipe(TINY), "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert "held-out loss" not in result.output
    assert "(none held out: under 50 images)" in result.stderr
    assert "checkpoint: step 1, loss on fixed training crops (EMA) " in result.stderr
    assert ", loss on fixed training crops " in result.stdout and result.stdout.startswith("done: step 1,")
    assert (few / HOLDOUT_CSV).read_text().splitlines()[0] == HOLDOUT_HEADER

    many = tmp_path / "many"
    result = runner.invoke(train_command, ["--data", str(_images(tmp_path / "d50", 50)), "-o", str(many),
                                           *_cli_recipe(TINY), "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert "training crops" not in result.output
    assert "48 training images (2 held out)" in result.stderr
    assert "checkpoint: step 1, held-out loss (EMA) " in result.stderr and ", held-out loss " in result.stdout
    assert (many / HOLDOUT_CSV).read_text().splitlines()[0] == HOLDOUT_HEADER.replace("train_crops", "holdout")

    # a run begun before the name keeps its file's header, so the column reads the same all the way down
    old_header = HOLDOUT_HEADER.replace("train_crops", "holdout")
    rows = (few / HOLDOUT_CSV).read_text().splitlines()
    (few / HOLDOUT_CSV).write_text("\r\n".join([old_header, *rows[1:]]) + "\r\n")
    result = runner.invoke(train_command, ["-o", str(few), "--resume", "--no-progress", "--steps", "2"])
    assert result.exit_code == 0, result.output
    rows = (few / HOLDOUT_CSV).read_text().splitlines()
    assert rows[0] == old_header and len(rows) == 3 and rows[2].startswith("2,8,")


def test_palette_run_claims_no_diffusers_pipeline(trained_run, tmp_path: Path) -> None:
    """DDPMPipeline cannot sample a 6-channel UNet: a Palette run has no model_index.json, and loads as Palette."""
    from ddrm_kit.palette_model import load_palette_prior

    out = tmp_path / "palette"
    train(trained_run.data, out, steps=1, palette="color", **trained_run.recipe)
    assert not (out / "model_index.json").exists()
    assert load_palette_prior(out, device="cpu").conditional
    # an earlier trainer's Palette run has DDPMPipeline's index: its next checkpoint removes it
    (out / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    train([], out, steps=2, resume=True, **trained_run.recipe)
    assert not (out / "model_index.json").exists()
    assert load_palette_prior(out, device="cpu").conditional


def test_run_loads_with_load_prior(trained_run) -> None:
    from diffusers import UNet2DModel

    from ddrm_kit.prior import load_prior

    prior = load_prior(str(trained_run.run), device="cpu", channels_last=False)  # NHWC would round differently
    unet = UNet2DModel.from_pretrained(trained_run.run, subfolder="unet")
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 20])
    eps = prior(x, t)
    assert eps.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(eps, unet(x, t).sample, rtol=0, atol=0)
    assert prior.num_train_timesteps == 1000


def test_export_prior_writes_a_small_flat_folder(trained_run, tmp_path: Path) -> None:
    from diffusers import UNet2DModel
    from safetensors.torch import load_file

    dest = tmp_path / "builtin"
    dest.mkdir()
    (dest / "README.md").write_text("card")
    assert export_prior(trained_run.run, dest) == dest
    assert (dest / "README.md").read_text() == "card"
    assert sorted(p.name for p in dest.iterdir()) == [
        "README.md", "config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"]
    assert "_name_or_path" not in json.loads((dest / "config.json").read_text())
    umask = os.umask(0)
    os.umask(umask)
    assert (dest / "config.json").stat().st_mode & 0o777 == 0o666 & ~umask

    tensors = load_file(dest / "diffusion_pytorch_model.safetensors")
    ema = _state(trained_run.run)["ema"]
    assert tensors.keys() == ema.keys()
    for name, tensor in tensors.items():
        assert torch.equal(tensor, ema[name].half()), name  # float16, rounded once from the EMA weights
    assert UNet2DModel.from_pretrained(dest).config.block_out_channels == [8, 16]

    with pytest.raises(TrainingDataNotFoundError, match="no unet/ folder"):
        export_prior(tmp_path / "not-a-run", dest)


def test_export_prior_in_shards_loads_the_same_and_replaces_the_other_layout(trained_run, tmp_path: Path) -> None:
    from ddrm_kit.prior import load_prior

    one, shards = tmp_path / "one", tmp_path / "shards"
    export_prior(trained_run.run, one)
    export_prior(trained_run.run, shards, max_shard_size="20KB")
    weights = sorted(p.name for p in shards.glob("diffusion_pytorch_model*"))
    assert "diffusion_pytorch_model.safetensors.index.json" in weights and "diffusion_pytorch_model.safetensors" not in weights
    assert len(weights) > 3 and all((shards / n).stat().st_size <= 20_000 for n in weights)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 20])
    a, b = (load_prior(str(d), device="cpu", channels_last=False)(x, t) for d in (one, shards))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    export_prior(trained_run.run, shards)  # back to one file: no shard or index left behind
    assert sorted(p.name for p in shards.glob("diffusion_pytorch_model*")) == ["diffusion_pytorch_model.safetensors"]


def test_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    tiny = dict(size=16, channels=(8, 16), batch=4, precision="fp32", progress=False)
    with pytest.raises(TrainingDataNotFoundError, match="no readable image") as info:
        train(empty, tmp_path / "run", steps=1, **tiny)
    assert isinstance(info.value, DDRMError) and isinstance(info.value, FileNotFoundError)
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 truncated")  # unreadable files are skipped, not counted
    with pytest.raises(TrainingDataNotFoundError, match="no readable image"):
        train(empty, tmp_path / "run", steps=1, **tiny)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(tmp_path / "missing", tmp_path / "run", steps=1, **tiny)

    result = CliRunner().invoke(train_command, ["--data", str(empty), "-o", str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 1
    assert result.output.endswith(
        f"Error: no readable image of at least 64x64 pixels under {empty}; pass a folder of PNG/JPEG images\n")
    assert "Traceback" not in result.output


def test_existing_run_needs_resume_and_stopping_rule(trained_run, tmp_path: Path) -> None:
    before = (trained_run.run / CHECKPOINT).stat().st_mtime_ns
    with pytest.raises(TrainingError, match="already holds a training run; pass --resume"):
        train(trained_run.data, trained_run.run, steps=30, **trained_run.recipe)
    assert (trained_run.run / CHECKPOINT).stat().st_mtime_ns == before
    with pytest.raises(TrainingError, match="--steps N or --minutes M"):
        train(trained_run.data, tmp_path / "other", **trained_run.recipe)

    runner = CliRunner()
    args = ["--data", str(trained_run.data), "-o", str(tmp_path / "x")]
    result = runner.invoke(train_command, [*args, "--steps", "1", "--minutes", "1"])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == "Error: give either --steps or --minutes, not both"
    # the old spellings --out and --batch still parse (the run stops at the --channels check)
    result = runner.invoke(train_command, ["--data", str(trained_run.data), "--out", str(tmp_path / "x"),
                                           "--batch", "4", "--channels", "8,a", "--steps", "1"])
    assert result.exit_code == 1
    assert result.output == "Error: --channels must be comma-separated integers like 32,64,128,128, got '8,a'\n"
    assert not (tmp_path / "x").exists()


def test_output_under_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    with pytest.raises(TrainingError, match="is a file, not a folder"):
        train(tmp_path, afile / "run", steps=1)

    runner = CliRunner()
    for flag in ("--out", "-o"):
        result = runner.invoke(train_command, ["--data", str(tmp_path), flag, str(afile / "run"), "--steps", "1"])
        assert result.exit_code == 1
        assert result.output == (
            f"Error: -o/--output {afile / 'run'}: {afile} is a file, not a folder; choose another run folder\n")
    result = runner.invoke(train_command, ["--data", str(tmp_path), "-o", str(afile), "--steps", "1"])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert result.output.startswith("Error: Invalid value for '-o'") and result.output.endswith(f"'{afile}' is a file.\n")


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

"""`ddrm train --init MODEL`: a new run that starts from an existing prior's weights (fine-tuning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ddrm_kit.cli.train import train_command
from ddrm_kit.errors import TrainingError
from ddrm_kit.train import CHECKPOINT, CONFIG_JSON, train


def _weights(run: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(run / CHECKPOINT, map_location="cpu", weights_only=False)[key]


def test_a_run_started_from_a_run_holds_its_weights_at_step_0(trained_run, tmp_path: Path) -> None:
    # the source's saved prior is its EMA copy: the new run's raw and EMA weights both start there
    out = tmp_path / "fine"
    summary = train(trained_run.data, out, steps=0, init=str(trained_run.run), prediction="v_prediction",
                    **trained_run.recipe)
    assert summary["step"] == 0
    source = _weights(trained_run.run, "ema")
    for key in ("model", "ema"):
        got = _weights(out, key)
        assert got.keys() == source.keys()
        for name, tensor in source.items():
            torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=f"{key}.{name}")
    assert json.loads((out / CONFIG_JSON).read_text())["init"] == str(trained_run.run)
    # and it trains on from there, and resumes without reading the source again
    train(trained_run.data, out, steps=2, resume=True, init="/nowhere", **trained_run.recipe)
    assert torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)["step"] == 2


def test_a_run_from_random_weights_differs(trained_run, tmp_path: Path) -> None:
    # the check above can fail: without --init the same seed gives other weights at step 0
    train(trained_run.data, tmp_path / "fresh", steps=0, **trained_run.recipe)
    fresh, source = _weights(tmp_path / "fresh", "model"), _weights(trained_run.run, "ema")
    assert any(not torch.equal(fresh[name], source[name]) for name in source)


def test_init_from_the_builtin_prior_with_the_default_architecture(trained_run, tmp_path: Path) -> None:
    from diffusers import UNet2DModel

    from ddrm_kit.prior import BUILTIN_DIR

    out = tmp_path / "from_builtin"
    train(trained_run.data, out, steps=0, init="builtin", size=16, batch=2, precision="fp32", progress=False)
    shipped = UNet2DModel.from_pretrained(BUILTIN_DIR).state_dict()
    got = _weights(out, "ema")
    for name, tensor in shipped.items():
        torch.testing.assert_close(got[name], tensor.float(), rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("change, message", [
    ({"channels": (8, 24)}, r"--init \S+ has block_out_channels \(8, 16\), the recipe \(8, 24\): .*\(--channels\)"),
    ({"layers_per_block": 2}, r"has layers_per_block 1, the recipe 2: .*\(--layers-per-block\)"),
    ({"attention_levels": 1}, r"has down_block_types .*\(--attention-levels\)"),
])
def test_another_architecture_is_refused_before_any_work(trained_run, tmp_path: Path, change, message) -> None:
    recipe = {**trained_run.recipe, **change}
    with pytest.raises(TrainingError, match=message):
        train(trained_run.data, tmp_path / "x", steps=1, init=str(trained_run.run), **recipe)
    assert not (tmp_path / "x").exists()


def test_cli_init_errors_are_one_line(trained_run, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--data", str(trained_run.data), "-o", str(tmp_path / "x"), "--steps", "1", "--size", "16",
            "--channels", "8,16", "--batch-size", "4", "--no-progress"]
    result = runner.invoke(train_command, [*args, "--init", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert result.output == (f"Error: --init {tmp_path / 'missing'}: no UNet there (expected config.json in it or in "
                             "its unet/); give `builtin`, a prior folder or a ddrm train run folder\n")
    result = runner.invoke(train_command, [*args, "--init", "builtin"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: --init builtin has block_out_channels (32, 64, 128, 128), the recipe (8, 16)")
    assert len(result.output.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_unreadable_or_missing_weights_are_one_line_errors(trained_run, tmp_path: Path) -> None:
    import shutil

    source = tmp_path / "prior"
    shutil.copytree(trained_run.run / "unet", source)
    weights = source / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TrainingError, match=r"^--init: the weights in \S+ do not load into its config's UNet \(.+\)$"):
        train(trained_run.data, tmp_path / "x", steps=0, init=str(source), **trained_run.recipe)
    weights.unlink()
    with pytest.raises(TrainingError, match=r"has no diffusion_pytorch_model.safetensors"):
        train(trained_run.data, tmp_path / "y", steps=0, init=str(source), **trained_run.recipe)

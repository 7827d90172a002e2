"""benchmarks/export_builtin.py: a run, or a pair of noise-level experts, exported as a prior folder that loads."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from click.testing import CliRunner

from ddrm_kit import load_prior
from ddrm_kit.experts import EXPERTS_JSON

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import export_builtin  # noqa: E402


def other_run(run_dir: Path, dest: Path) -> Path:
    """A copy of a run with other UNet weights (each parameter moved by noise)."""
    from diffusers import UNet2DModel

    shutil.copytree(run_dir, dest)
    unet = UNet2DModel.from_pretrained(dest / "unet")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in unet.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=gen))
    unet.save_pretrained(dest / "unet")
    return dest


def run(*args: str):
    return CliRunner().invoke(export_builtin.main, list(args))


def test_a_run_and_a_high_noise_expert_export_as_one_pair_that_loads(tmp_path, trained_run, one_thread):
    dest = tmp_path / "prior"
    dest.mkdir()
    (dest / "README.md").write_text("model card")
    high_run = other_run(trained_run.run, tmp_path / "high")
    result = run("--run", str(trained_run.run), "--high-noise", str(high_run), "--from-t", "700", "--dest", str(dest))
    assert result.exit_code == 0, result.output
    assert json.loads((dest / EXPERTS_JSON).read_text()) == {"high_noise": "high_noise", "from_t": 700}
    assert (dest / "README.md").read_text() == "model card"
    pair = load_prior(dest, device="cpu")
    low, high = load_prior(trained_run.run, device="cpu"), load_prior(high_run, device="cpu")
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t, expert, other in ((10, low, high), (699, low, high), (700, high, low), (999, high, low)):
            # the exported weights are float16: the run's network to that rounding, and not the other run's
            assert (pair(x, t) - expert(x, t)).abs().max() < 0.02 < (pair(x, t) - other(x, t)).abs().max()

    # a run alone replaces the pair with a single prior, and says so
    result = run("--run", str(trained_run.run), "--dest", str(dest))
    assert result.exit_code == 0 and "removed the earlier high-noise expert" in result.output
    assert not (dest / EXPERTS_JSON).exists() and not (dest / "high_noise").exists()


def test_a_high_noise_expert_can_join_the_destinations_own_prior(tmp_path, trained_run, one_thread):
    dest = tmp_path / "prior"
    assert run("--run", str(trained_run.run), "--dest", str(dest)).exit_code == 0
    weights = (dest / "diffusion_pytorch_model.safetensors").read_bytes()
    result = run("--high-noise", str(trained_run.run), "--from-t", "500", "--dest", str(dest))
    assert result.exit_code == 0, result.output
    assert (dest / "diffusion_pytorch_model.safetensors").read_bytes() == weights
    assert load_prior(dest, device="cpu").eps.from_t == 500


def test_option_mistakes_are_usage_errors(tmp_path, trained_run):
    for args, words in ((["--high-noise", str(trained_run.run)], "go together"),
                        ([], "give --run"),
                        (["--high-noise", str(trained_run.run), "--from-t", "5", "--dest", str(tmp_path)], "no prior to keep")):
        result = run(*args)
        assert result.exit_code == 2 and words in result.output

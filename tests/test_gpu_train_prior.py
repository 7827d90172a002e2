"""benchmarks/gpu_train_prior.py: the dry run trains, exports in shards and loads; bad calls are one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_train_prior as gtp  # noqa: E402


def _photos(folder: Path, n: int = 6) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_dry_run_exports_a_sharded_prior_that_loads(tmp_path, one_thread):
    from ddrm_kit.prior import load_prior

    out = tmp_path / "prior"
    result = CliRunner().invoke(gtp.main, ["--dry-run", "--data", str(_photos(tmp_path / "photos")),
                                           "--run", str(tmp_path / "run"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert {"config.json", "scheduler_config.json", "holdout.csv", "diffusion_pytorch_model.safetensors.index.json"} <= set(names)
    assert sum(n.endswith(".safetensors") for n in names) > 1
    assert (out / "holdout.csv").read_text().splitlines()[-1].startswith("3,")  # the third step's row
    assert json.loads((out / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    prior = load_prior(str(out), device="cpu")
    x = torch.zeros(1, 3, 16, 16)
    assert prior(x, torch.tensor([10])).shape == x.shape


def test_missing_out_and_missing_data_are_one_line_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(gtp.main, ["--dry-run"])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1] == "Error: give --out (on the GPU machine: $OUT/prior)"
    monkeypatch.setattr(gtp, "DATA", tmp_path / "no-data")
    result = runner.invoke(gtp.main, ["--dry-run", "--out", str(tmp_path / "o"), "--run", str(tmp_path / "r")])
    assert result.exit_code == 1 and result.output == (
        f"Error: {tmp_path / 'no-data' / 'train'} is missing: run --prepare here and carry .gpu_data\n")

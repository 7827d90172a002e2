"""benchmarks/ablate_prior.py: the variants' recipes, fine-tunes of a prior included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import ablate_prior as ap  # noqa: E402

from ddrm_kit.train import TrainConfig, unet_config  # noqa: E402
from ddrm_kit.train.recipe import check_recipe  # noqa: E402


@pytest.mark.parametrize("name", sorted(ap.VARIANTS))
def test_every_variant_is_a_valid_recipe(name):
    cfg = TrainConfig(data=[], **ap.recipe(name, 3000, 32))
    check_recipe(cfg)
    unet_config(cfg)
    changes = {k: v for k, v in ap.VARIANTS[name].items() if k != "steps"}
    for key, value in changes.items():
        assert getattr(cfg, key) == value, key


def test_fine_tunes_keep_the_shipped_architecture_and_late_crops_start_where_asked():
    v1 = unet_config(TrainConfig(data=[], **ap.recipe("v1", 1, 32)))
    for name, changes in ap.VARIANTS.items():
        if changes.get("init") == "builtin":
            assert unet_config(TrainConfig(data=[], **ap.recipe(name, 300, 32))) == v1, name
    assert ap.recipe("ft-vpred+minsnr+crops128", 300, 32)["late_from"] == 0
    assert ap.recipe("vpred+minsnr+latecrops", 300, 32)["late_from"] == 225  # 3/4 of the steps
    assert "steps" not in ap.recipe("v1-shipped", 300, 32)


def test_describe_names_the_changes_from_v1():
    cfg = TrainConfig(data=[], **ap.recipe("ft-vpred+minsnr", 300, 32))
    assert ap.describe(cfg) == "init=builtin; prediction=v_prediction; loss_weighting=min_snr; snr_gamma=5.0"
    assert ap.describe(TrainConfig(data=[], **ap.recipe("v1", 300, 32))) == "ε, uniform, conv-only 32,64,128,128, 64² crops"


def test_fine_tunes_start_from_the_base_given():
    assert ap.recipe("ft-vpred", 300, 32)["init"] == "builtin"
    assert ap.recipe("ft-vpred", 300, 32, base="v1/ddrm_kit/builtin")["init"] == "v1/ddrm_kit/builtin"
    assert "init" not in ap.recipe("vpred", 300, 32, base="v1/ddrm_kit/builtin")


def test_eval_only_takes_a_run_folder_that_is_no_variant(tmp_path, monkeypatch):
    import json
    from dataclasses import asdict

    import torch
    from click.testing import CliRunner

    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the script's --threads must not leak into later tests
    runner = CliRunner()
    result = runner.invoke(ap.main, ["--runs", str(tmp_path), "--steps", "1", "--variants", "branch", "--train-only"])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1] == (
        f"Error: unknown variant 'branch': neither one of {', '.join(ap.VARIANTS)} nor, with --eval-only, "
        "a run folder under --runs")
    (tmp_path / "branch").mkdir()
    cfg = TrainConfig(data=[], **ap.recipe("ft-vpred", 1, 32, base="elsewhere"))
    (tmp_path / "branch" / "train_config.json").write_text(json.dumps(asdict(cfg)))
    result = runner.invoke(ap.main, ["--runs", str(tmp_path), "--steps", "1", "--variants", "branch", "--eval-only",
                                     "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("branch: no checkpoint yet; train it first\n")


def test_an_unknown_task_is_a_usage_error_before_any_work(tmp_path):
    from click.testing import CliRunner

    result = CliRunner().invoke(ap.main, ["--runs", str(tmp_path), "--steps", "1", "--variants", "v1", "--eval-only",
                                          "--tasks", "sr4, sr9"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: Invalid value for --tasks: unknown task 'sr9'")
    assert list(tmp_path.iterdir()) == []

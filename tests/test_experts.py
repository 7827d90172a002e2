"""Noise-level experts: combine_experts routes each timestep to one network; experts.json folders load as one prior."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDPMScheduler

from conftest import tiny_unet
from ddrm_kit import Prior, ddrm, load_prior
from ddrm_kit.errors import DDRMError, UnsupportedModelError
from ddrm_kit.experts import EXPERTS_JSON, NoiseLevelExperts, combine_experts

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest.py)

AC = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 100, dtype=torch.float64), 0)


def constant(value: float):
    return lambda x, t: torch.full_like(x, value, dtype=torch.float64)


def test_each_timestep_goes_to_one_expert_also_within_a_batch():
    both = combine_experts(Prior(constant(-1.0), AC), Prior(constant(2.0), AC), 60)
    x = torch.zeros(4, 3, 2, 2)
    out = both(x, torch.tensor([0, 59, 60, 99]))
    assert out.dtype == torch.float32
    assert out.flatten(1).unique(dim=1).flatten().tolist() == [-1.0, -1.0, 2.0, 2.0]
    assert both(x, 59).unique().tolist() == [-1.0] and both(x, 60).unique().tolist() == [2.0]


def test_only_the_expert_of_the_step_runs():
    calls = {"low": 0, "high": 0}

    def counted(name):
        def eps(x, t):
            calls[name] += 1
            return x
        return eps

    experts = NoiseLevelExperts(counted("low"), counted("high"), 10)
    experts(torch.zeros(2, 3, 2, 2), torch.tensor([10, 50]))
    experts(torch.zeros(2, 3, 2, 2), torch.tensor([3, 9]))
    assert calls == {"low": 1, "high": 1}


def test_combined_prior_keeps_the_low_experts_identity_unless_given():
    low = Prior(constant(0.0), AC, name="low", channels=3, settings={"deno": {"eta": 0.3}})
    both = combine_experts(low, Prior(constant(1.0), AC, channels=3), 50)
    assert (both.name, both.channels, both.settings, both.num_train_timesteps) == ("low", 3, {"deno": {"eta": 0.3}}, 100)
    assert torch.equal(both.alphas_cumprod, AC)
    named = combine_experts(low, Prior(constant(1.0), AC), 50, name="pair", settings={})
    assert (named.name, named.settings) == ("pair", {})


@pytest.mark.parametrize(("high", "from_t", "match"), [
    (Prior(constant(1.0), AC[:50]), 10, "noise schedules"),
    (Prior(constant(1.0), AC.flip(0)), 10, "noise schedules"),
    (Prior(constant(1.0), AC, channels=1), 10, "channels"),
    (Prior(constant(1.0), AC, conditional=True), 10, "unconditional"),
    (Prior(constant(1.0), AC), 0, r"\[1, 99\]"),
    (Prior(constant(1.0), AC), 100, r"\[1, 99\]"),
    (Prior(constant(1.0), AC), True, r"\[1, 99\]"),
    (Prior(constant(1.0), AC), 50.0, r"\[1, 99\]"),
])
def test_experts_that_cannot_pair_are_refused(high, from_t, match):
    with pytest.raises(DDRMError, match=match):
        combine_experts(Prior(constant(0.0), AC, channels=3), high, from_t)


# ---- experts.json folders ------------------------------------------------------------------

def make_pair(folder, from_t=60, *, high_prediction="v_prediction", high_steps=100, expert_channels=3):
    """A root ε-UNet and a high_noise/ v-prediction UNet (other weights), on 100-step linear schedules."""
    tiny_unet(sample_size=8, seed=0).save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=100).save_pretrained(folder)
    high = folder / "high_noise"
    tiny_unet(in_channels=expert_channels, out_channels=expert_channels, sample_size=8, seed=1).save_pretrained(high)
    DDPMScheduler(num_train_timesteps=high_steps, prediction_type=high_prediction).save_pretrained(high)
    (folder / EXPERTS_JSON).write_text(json.dumps({"high_noise": "high_noise", "from_t": from_t, "_note": "a note"}))
    (folder / "ddrm_settings.json").write_text(json.dumps({"color": {"steps": 10}}))
    return folder


def test_a_folder_with_experts_json_loads_both_networks(tmp_path):
    folder = make_pair(tmp_path / "pair")
    pair = load_prior(folder, device="cpu")
    (folder / EXPERTS_JSON).unlink()
    low = load_prior(folder, device="cpu")
    high = load_prior(folder / "high_noise", device="cpu")
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t in (0, 30, 59):
            assert torch.equal(pair(x, t), low(x, t))
        for t in (60, 99):  # the v-predictor's output converted to ε, as load_prior does on its own
            assert torch.equal(pair(x, t), high(x, t))
        assert not torch.allclose(low(x, 60), high(x, 60))
    assert pair.settings == {"color": {"steps": 10}} and pair.name == str(folder)


def test_ddrm_runs_the_high_expert_only_from_its_first_timestep(tmp_path):
    import operators

    folder = make_pair(tmp_path / "pair")
    op = operators.get_operator("sr2", (3, 8, 8))
    y = op.H(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1)

    def restore(from_t: int | None):
        if from_t is None:
            (folder / EXPERTS_JSON).unlink()
        else:
            (folder / EXPERTS_JSON).write_text(json.dumps({"high_noise": "high_noise", "from_t": from_t}))
        prior = load_prior(folder, device="cpu")
        return ddrm(prior, op, y, steps=5, generator=torch.Generator().manual_seed(2), progress=False)

    # 5 steps of T = 100 visit t = 80, 60, 40, 20, 0: from t 81 on, the high expert never runs
    above, at_top = restore(81), restore(80)
    alone = restore(None)
    assert torch.equal(above, alone)
    assert not torch.allclose(at_top, alone)


@pytest.mark.parametrize(("experts", "change", "match"), [
    ("{not json", None, "not readable JSON"),
    ([60], None, "expected an object"),
    ({"high_noise": "high_noise"}, None, "exactly the keys"),
    ({"high_noise": "high_noise", "from_t": 60, "low_noise": "x"}, None, "exactly the keys"),
    ({"high_noise": "high_noise", "from_t": 100}, None, r"\[1, 99\]"),
    ({"high_noise": "high_noise", "from_t": "60"}, None, r"\[1, 99\]"),
    ({"high_noise": "../elsewhere", "from_t": 60}, None, "subfolder"),
    ({"high_noise": ".", "from_t": 60}, None, "subfolder"),
    ({"high_noise": "missing", "from_t": 60}, None, "not a folder"),
    (None, {"high_prediction": "epsilon", "high_steps": 50}, "another noise schedule"),
    (None, {"expert_channels": 1}, "1-channel images"),
    (None, "nested", "belongs in"),
])
def test_bad_experts_are_a_one_line_error_before_any_weights_load(tmp_path, monkeypatch, experts, change, match):
    import ddrm_kit.prior_load as prior_load

    folder = make_pair(tmp_path / "pair", **(change if isinstance(change, dict) else {}))
    if experts is not None:
        (folder / EXPERTS_JSON).write_text(experts if isinstance(experts, str) else json.dumps(experts))
    if change == "nested":
        (folder / "high_noise" / "ddrm_settings.json").write_text("{}")

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were read before the experts were checked")

    monkeypatch.setattr(prior_load, "_from_pretrained", no_weights)
    with pytest.raises(UnsupportedModelError, match=match) as err:
        load_prior(folder, device="cpu")
    assert "\n" not in str(err.value)


def test_a_hub_repo_with_experts_is_refused_with_the_way_out(tmp_path, monkeypatch):
    import huggingface_hub.constants

    repo = tmp_path / "models--ddrm-kit-tests--pair"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    make_pair(repo / "snapshots" / commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnsupportedModelError, match="--local-dir") as err:
        load_prior("ddrm-kit-tests/pair", device="cpu")
    assert "\n" not in str(err.value)

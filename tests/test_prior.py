"""Priors: Prior wrapping, load_prior on tiny save_pretrained UNets, padding, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

import ddrm_kit.prior as prior_mod
from conftest import tiny_unet
from ddrm_kit import Prior, load_prior
from ddrm_kit.errors import DDRMError, HubUnavailableError, ModelNotFoundError, UnsupportedModelError


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest.py)


def small_unet(out_channels: int = 3, blocks: int = 2, seed: int = 0) -> UNet2DModel:
    return tiny_unet(out_channels=out_channels, seed=seed, sample_size=8, levels=blocks)


def save(folder, unet: UNet2DModel, scheduler: DDPMScheduler, layout: str) -> None:
    if layout == "root":
        unet.save_pretrained(folder)
        scheduler.save_pretrained(folder)
    else:  # a DDPMPipeline folder: model_index.json + unet/ + scheduler/
        DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)


def test_prior_wraps_callable():
    ac = torch.linspace(0.99, 0.01, 10, dtype=torch.float32)
    p = Prior(lambda x, t: x.double() * 0 + t.view(-1, 1, 1, 1), ac)
    assert p.alphas_cumprod.dtype == torch.float64 and p.num_train_timesteps == 10
    assert p.device == torch.device("cpu") and p.dtype == torch.float32
    out = p(torch.zeros(2, 3, 4, 4), torch.tensor([3, 5]))
    assert out.dtype == torch.float32 and out[1, 0, 0, 0] == 5
    assert p(torch.zeros(1, 3, 2, 2), 7)[0, 0, 0, 0] == 7  # an int t is broadcast to (B,)
    for bad in ([], [0.5, 0.0], [1.5]):
        with pytest.raises(DDRMError, match="alphas_cumprod"):
            Prior(lambda x, t: x, bad)
    with pytest.raises(DDRMError, match="callable"):
        Prior(None, [0.5])


@pytest.mark.parametrize("layout", ["root", "pipeline"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_load_save_pretrained_converts_to_epsilon(tmp_path, layout, prediction_type):
    unet = small_unet()
    scheduler = DDPMScheduler(num_train_timesteps=100, prediction_type=prediction_type)
    save(tmp_path, unet, scheduler, layout)
    prior = load_prior(tmp_path, device="cpu")
    assert prior.num_train_timesteps == 100 and prior.channels == 3 and prior.device.type == "cpu"
    ac = scheduler.alphas_cumprod.double()
    assert torch.allclose(prior.alphas_cumprod, ac, rtol=1e-5)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 90])
    with torch.no_grad():
        raw = unet(x, t).sample
        eps = prior(x, t)
    a = ac.float()[t].view(-1, 1, 1, 1)
    expected = {
        "epsilon": raw,
        "v_prediction": a.sqrt() * raw + (1 - a).sqrt() * x,
        "sample": (x - a.sqrt() * raw) / (1 - a).sqrt(),
    }[prediction_type]
    assert eps.dtype == torch.float32 and torch.allclose(eps, expected, atol=1e-5)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_beta_schedules(tmp_path, schedule):
    scheduler = DDPMScheduler(num_train_timesteps=50, beta_schedule=schedule)
    save(tmp_path, small_unet(), scheduler, "root")
    prior = load_prior(tmp_path, device="cpu")
    assert torch.allclose(prior.alphas_cumprod, scheduler.alphas_cumprod.double(), rtol=1e-5)


def test_learned_sigma_keeps_epsilon_channels(tmp_path):
    unet = small_unet(out_channels=6)
    save(tmp_path, unet, DDPMScheduler(num_train_timesteps=20, variance_type="learned_range"), "root")
    prior = load_prior(tmp_path, device="cpu")
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(prior(x, torch.tensor([5])), unet(x, torch.tensor([5])).sample[:, :3], atol=1e-6)


def test_odd_sizes_are_reflect_padded_and_cropped(tmp_path):
    unet = small_unet(blocks=3)  # takes multiples of 4
    save(tmp_path, unet, DDPMScheduler(num_train_timesteps=20), "root")
    prior = load_prior(tmp_path, device="cpu")
    x = torch.randn(2, 3, 7, 5)
    t = torch.tensor([3, 4])
    eps = prior(x, t)
    assert eps.shape == x.shape
    # 7 -> 8 rows (0 above, 1 below), 5 -> 8 columns (1 left, 2 right), reflected.
    padded = torch.nn.functional.pad(x, (1, 2, 0, 1), mode="reflect")
    with torch.no_grad():
        assert torch.allclose(eps, unet(padded, t).sample[:, :, 0:7, 1:6], atol=1e-5)
    # Too small to reflect: replicate instead, and still crop back.
    tiny = torch.randn(1, 3, 1, 2)
    assert prior(tiny, torch.tensor([1])).shape == tiny.shape


def test_default_device_dtype_and_fp16_needs_cuda(tiny_unet_dir):
    prior = load_prior(str(tiny_unet_dir))
    assert prior.device.type == ("cuda" if torch.cuda.is_available() else "cpu") and prior.dtype == torch.float32
    assert prior.channels == 3 and prior.num_train_timesteps == 1000
    if not torch.cuda.is_available():
        with pytest.raises(DDRMError, match="CUDA"):
            load_prior(tiny_unet_dir, dtype=torch.float16)
        with pytest.raises(DDRMError, match="CUDA"):
            load_prior(tiny_unet_dir, device="cuda")
    bf16 = load_prior(tiny_unet_dir, device="cpu", dtype=torch.bfloat16)
    assert bf16(torch.randn(1, 3, 8, 8), torch.tensor([3])).dtype == torch.float32


def test_missing_local_path(tmp_path):
    for missing in (tmp_path / "nope", "./no/such/model", "~/no-such-ddrm-model"):
        with pytest.raises(ModelNotFoundError) as err:
            load_prior(missing, device="cpu")
        assert isinstance(err.value, FileNotFoundError) and "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_prior(tmp_path / "empty", device="cpu")


def test_builtin_prior_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(prior_mod, "BUILTIN_DIR", tmp_path)
    for name in (None, "builtin"):
        with pytest.raises(ModelNotFoundError, match="built-in prior is not installed"):
            load_prior(name, device="cpu")


def test_builtin_prior_loads_from_its_folder(tiny_unet_dir, monkeypatch):
    monkeypatch.setattr(prior_mod, "BUILTIN_DIR", tiny_unet_dir)
    prior = load_prior(device="cpu")
    assert prior.name == "the built-in prior"
    x, t = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    unet = UNet2DModel.from_pretrained(tiny_unet_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(prior(x, t), unet(x, t).sample, atol=1e-5, rtol=1e-5)


def test_offline_hub_id_names_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(HubUnavailableError) as err:
        load_prior("ddrm-kit-tests/no-such-model", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE" in msg and "local" in msg and "built-in" in msg
    assert isinstance(err.value, DDRMError)


def test_hub_id_loads_from_the_hub_cache_offline(tmp_path, monkeypatch):
    # The real hub path (snapshot_download + UNet2DModel.from_pretrained(repo_id, subfolder=...)) on a
    # hand-made cache entry, as left by an earlier online download.
    import huggingface_hub.constants

    repo = tmp_path / "models--ddrm-kit-tests--tiny"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    unet = small_unet()
    save(repo / "snapshots" / commit, unet, DDPMScheduler(num_train_timesteps=30), "pipeline")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prior = load_prior("ddrm-kit-tests/tiny", device="cpu")
    assert prior.name == "ddrm-kit-tests/tiny" and prior.num_train_timesteps == 30
    x, t = torch.randn(1, 3, 8, 8), torch.tensor([7])
    with torch.no_grad():
        assert torch.allclose(prior(x, t), unet(x, t).sample, atol=1e-6)


def _write_json(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"model_index.json": {"_class_name": "LDMPipeline", "vqvae": ["diffusers", "VQModel"]}}, "latent"),
        ({"model_index.json": {"_class_name": "ConsistencyModelPipeline"}}, "consistency"),
        ({"config.json": {"_class_name": "UNet2DConditionModel", "in_channels": 4},
          "scheduler_config.json": {"beta_schedule": "linear"}}, "conditional"),
        ({"config.json": {"_class_name": "UNet2DModel", "class_embed_type": "timestep"},
          "scheduler_config.json": {"beta_schedule": "linear"}}, "'timestep' class embedding"),
        ({"config.json": {"_class_name": "UNet2DModel"},
          "scheduler_config.json": {"_class_name": "CMStochasticIterativeScheduler", "sigma_min": 0.002}},
         "consistency"),
        ({"config.json": {"_class_name": "UNet2DModel"}}, "scheduler_config.json"),
        ({"config.json": {"_class_name": "UNet2DModel"},
          "scheduler_config.json": {"beta_schedule": "linear", "prediction_type": "flow"}}, "prediction_type"),
    ],
)
def test_unsupported_checkpoints(tmp_path, files, match):
    for name, data in files.items():
        _write_json(tmp_path / name, data)
    with pytest.raises(UnsupportedModelError, match=match) as err:
        load_prior(tmp_path, device="cpu")
    assert "\n" not in str(err.value)


# ---- the prior's sampler settings (ddrm_settings.json) and the v-prediction conversion -----------

SETTINGS = {
    "_chosen_by": "a note, ignored",
    "linear": {"steps": 5, "eta": 0.5},
    "deno": {"eta": 0.3, "eta_b": 0.9},
    "codec": {"eta": 0.7, "t0": 100},
    "jpeg": {"eta_b": 0.2},
}


def _spy_sampler(monkeypatch) -> list[dict]:
    """Replace both sampler loops by a recorder of the timesteps, eta and eta_b they are given."""
    import ddrm_kit.sampler as sampler_mod

    calls: list[dict] = []

    def record(prior, op, y, ts, eta, eta_b, *rest):
        calls.append({"steps": len(ts), "top": ts[0], "eta": eta, "eta_b": eta_b})
        return torch.zeros(y.shape[0], *getattr(op, "image_shape", None) or y.shape[1:])

    monkeypatch.setattr(sampler_mod, "_run_linear", record)
    monkeypatch.setattr(sampler_mod, "_run_codec", record)
    return calls


def _with_settings(tiny_unet_dir, tmp_path, settings) -> Path:
    import shutil

    folder = tmp_path / "prior"
    shutil.copytree(tiny_unet_dir, folder)
    (folder / "ddrm_settings.json").write_text(settings if isinstance(settings, str) else json.dumps(settings))
    return folder


def _run_each(prior, monkeypatch, **explicit) -> dict[str, dict]:
    import operators
    from ddrm_kit import ddrm

    calls = _spy_sampler(monkeypatch)
    shape = (3, 8, 8)
    ops = {
        "sr2": operators.get_operator("sr2", shape),
        "deno": operators.get_operator("deno", shape),
        "no family": operators.BlockAverage(shape, 2),  # built without the registry
        "jpeg10": operators.get_operator("jpeg10", shape),
        "quant3": operators.get_operator("quant3", shape),
    }
    for op in ops.values():
        y = op.J(torch.zeros(1, *shape)) if hasattr(op, "J") else op.H(torch.zeros(1, *shape))
        ddrm(prior, op, y, progress=False, **explicit)
    return dict(zip(ops, calls))


def test_prior_settings_file_sets_the_samplers_defaults_per_family(tiny_unet_dir, tmp_path, monkeypatch):
    prior = load_prior(_with_settings(tiny_unet_dir, tmp_path, SETTINGS), device="cpu")
    assert prior.settings == {k: v for k, v in SETTINGS.items() if not k.startswith("_")}
    used = _run_each(prior, monkeypatch)
    assert used["sr2"] == {"steps": 5, "top": 800, "eta": 0.5, "eta_b": 1.0}  # linear group over the papers'
    assert used["deno"] == {"steps": 5, "top": 800, "eta": 0.3, "eta_b": 0.9}  # its family's group over linear's
    assert used["no family"] == used["sr2"]
    assert used["jpeg10"] == {"steps": 20, "top": 95, "eta": 0.7, "eta_b": 0.2}  # t0 100: 95, 90, ..., 0
    assert used["quant3"] == {"steps": 20, "top": 95, "eta": 0.7, "eta_b": 0.4}


def test_without_settings_file_the_papers_values(tiny_unet_dir, monkeypatch):
    from ddrm_kit.restore import Settings, restore

    prior = load_prior(tiny_unet_dir, device="cpu")
    assert prior.settings == {}
    used = _run_each(prior, monkeypatch)
    linear = {"steps": 20, "top": 950, "eta": 0.85, "eta_b": 1.0}
    assert used["sr2"] == used["deno"] == used["no family"] == linear
    assert used["jpeg10"] == used["quant3"] == {"steps": 20, "top": 285, "eta": 1.0, "eta_b": 0.4}
    calls = _spy_sampler(monkeypatch)
    import operators

    restore(prior, operators.get_operator("deno", (3, 8, 8)), torch.zeros(1, 3, 8, 8), Settings(), progress=False)
    assert calls == [linear]  # Settings() leaves every choice to the prior


def test_explicit_arguments_win_over_the_settings_file(tiny_unet_dir, tmp_path, monkeypatch):
    prior = load_prior(_with_settings(tiny_unet_dir, tmp_path, SETTINGS), device="cpu")
    used = _run_each(prior, monkeypatch, steps=4, eta=0.1, eta_b=0.6)
    for name in ("sr2", "deno", "no family"):
        assert used[name] == {"steps": 4, "top": 750, "eta": 0.1, "eta_b": 0.6}
    assert used["jpeg10"] == {"steps": 4, "top": 75, "eta": 0.1, "eta_b": 0.6}


def test_settings_note_names_each_settings_source(tiny_unet_dir, tmp_path):
    import operators
    from ddrm_kit.prior_settings import settings_note

    shape = (3, 8, 8)
    prior = load_prior(_with_settings(tiny_unet_dir, tmp_path, SETTINGS), device="cpu")
    deno, jpeg = operators.get_operator("deno", shape), operators.get_operator("jpeg10", shape)
    assert settings_note(prior, deno) == ("steps 5, eta 0.3, eta_b 0.9 (steps: the prior's ddrm_settings.json, "
                                          "linear; eta, eta_b: the prior's ddrm_settings.json, deno)")
    assert settings_note(prior, jpeg, eta=0.2) == ("steps 20, eta 0.2, eta_b 0.2, t0 100 (steps: the papers'; "
                                                   "eta: given; eta_b: the prior's ddrm_settings.json, jpeg; "
                                                   "t0: the prior's ddrm_settings.json, codec)")
    plain = load_prior(tiny_unet_dir, device="cpu")
    assert settings_note(plain, deno, steps=3) == "steps 3, eta 0.85, eta_b 1 (steps: given; eta, eta_b: the papers')"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not readable JSON"),
        ([1, 2], "expected a JSON object"),
        ({"superes": {"eta": 0.5}}, "unknown group 'superes'"),
        ({"linear": 0.5}, "'linear' must be an object"),
        ({"deno": {"temperature": 1}}, "'deno' has no setting 'temperature'"),
        ({"deno": {"t0": 300}}, "'deno' has no setting 't0'"),
        ({"linear": {"eta": 1.5}}, r"linear.eta must be a number in \[0, 1\], got 1.5"),
        ({"codec": {"eta_b": True}}, "codec.eta_b must be a number"),
        ({"linear": {"steps": 0}}, r"linear.steps must be an integer in \[1, 1000\]"),
        ({"codec": {"t0": 1001}}, r"codec.t0 must be an integer in \[1, 1000\]"),
        ({"jpeg": {"steps": 2.5}}, "jpeg.steps must be an integer"),
    ],
)
def test_bad_settings_file_is_a_one_line_error_naming_it(tiny_unet_dir, tmp_path, content, match):
    from ddrm_kit.errors import PriorSettingsError

    folder = _with_settings(tiny_unet_dir, tmp_path, content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(PriorSettingsError, match=match) as err:
        load_prior(folder, device="cpu")
    msg = str(err.value)
    assert msg.startswith(f"{folder / 'ddrm_settings.json'}: ") and "\n" not in msg


def test_prior_from_a_callable_takes_validated_settings():
    from ddrm_kit.errors import PriorSettingsError

    ac = torch.linspace(0.99, 0.01, 10)
    assert Prior(lambda x, t: x, ac).settings == {}
    assert Prior(lambda x, t: x, ac, settings={"color": {"eta": 0.2}}).settings == {"color": {"eta": 0.2}}
    with pytest.raises(PriorSettingsError, match=r"Prior\(settings=...\): linear.steps must be an integer in \[1, 10\]"):
        Prior(lambda x, t: x, ac, settings={"linear": {"steps": 20}})


class _VOracle(torch.nn.Module):
    """A stand-in UNet that outputs the exact v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0 of a known clean image x0 (float64)."""

    def __init__(self, x0: torch.Tensor, ac: torch.Tensor) -> None:
        super().__init__()
        self.x0, self.ac = x0.double(), ac
        self.config = type("Config", (), {"in_channels": 3, "block_out_channels": (8,)})()
        self.dtype = torch.float32

    def forward(self, x, t):
        a = self.ac[t].view(-1, 1, 1, 1)
        eps = (x.double() - a.sqrt() * self.x0) / (1 - a).sqrt()
        return type("Out", (), {"sample": (a.sqrt() * eps - (1 - a).sqrt() * self.x0).float()})()


def test_v_prediction_converts_to_epsilon_by_the_exact_identity():
    """ε = sqrt(ᾱ) v + sqrt(1-ᾱ) x_t recovers the noise from the true v at every noise level, to float32 rounding."""
    ac = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 3, 8, 8, generator=gen, dtype=torch.float64) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    a = ac[t].view(-1, 1, 1, 1)
    xt = (a.sqrt() * x0 + (1 - a).sqrt() * eps).float()
    # the noise in the float32 x_t the network sees (at t = 0, rounding x_t moves ε by 1e-5)
    eps = (xt.double() - a.sqrt() * x0) / (1 - a).sqrt()
    prior_eps = prior_mod._UNetEps(_VOracle(x0, ac), ac, "v_prediction")(xt, t)
    torch.testing.assert_close(prior_eps.double(), eps, rtol=0, atol=2e-6)


# ---- the papers' checkpoint files, class-conditional folders, strict loading, Palette folders ------

def _ckpt(tmp_path, key: str, name: str = "net.pt"):
    """A tiny original-layout network of tests/test_checkpoints.py saved as ``name``, and its YAML config."""
    from original_unets import adm_shapes, ddpm_shapes, random_state
    from test_checkpoints import ADMS, DDPMS, adm_yaml, ddpm_yaml

    cfg = ADMS.get(key) or DDPMS[key]
    adm = key in ADMS
    state = random_state(adm_shapes(cfg) if adm else ddpm_shapes(cfg), seed=len(key))
    path = tmp_path / name
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save(state, path)
    yml = tmp_path / f"{path.stem}.yml"
    import yaml

    yml.write_text(yaml.safe_dump(adm_yaml(cfg) if adm else ddpm_yaml(cfg)))
    return path, yml


def _tree(*roots: Path) -> list[str]:
    return sorted(str(p) for root in roots if root.exists() for p in root.rglob("*"))


@pytest.mark.parametrize(("key", "name"), [("attn_16_8", "ddpm.pt"),
                                           ("legacy_headch_cc_sigma_updown_ss", "adm.safetensors")])
def test_checkpoint_file_is_the_converted_network_and_caches_nothing(tmp_path, monkeypatch, capsys, key, name):
    from ddrm_kit.checkpoints import load_checkpoint

    folder = tmp_path / "ckpt"
    folder.mkdir()
    ckpt, yml = _ckpt(folder, key, name)
    caches = {k: tmp_path / k for k in ("HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME", "TORCH_HOME")}
    for k, v in caches.items():
        monkeypatch.setenv(k, str(v))
    before = _tree(folder)
    label = 7 if "cc" in key else None
    prior = load_prior(ckpt, device="cpu", config=yml, class_label=label)
    again = load_prior(ckpt, device="cpu", config=yml, class_label=label)
    assert _tree(folder) == before and _tree(*caches.values()) == []  # nothing written, nothing cached
    err = capsys.readouterr().err
    assert err.count("ddrm convert") == 1 and f"ddrm convert {ckpt} --model-config {yml} -o DIR" in err
    unet, _, info = load_checkpoint(ckpt, yml, class_label=label)
    assert torch.equal(prior.alphas_cumprod, info.alphas_cumprod) and prior.num_train_timesteps == 1000
    assert prior.channels == 3 and prior.name == str(ckpt)
    x, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 900])
    with torch.no_grad():
        expected = unet(x, t).sample[:, :3]  # learned sigma: the ε half
        torch.testing.assert_close(prior(x, t), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(again(x, t), expected, rtol=1e-5, atol=1e-5)


def test_checkpoint_file_dtype_and_fp16_needs_cuda(tmp_path):
    ckpt, yml = _ckpt(tmp_path, "attn_16_8")
    bf16 = load_prior(ckpt, device="cpu", dtype=torch.bfloat16, config=yml)
    assert bf16.dtype == torch.bfloat16 and bf16.eps.unet.dtype == torch.bfloat16
    assert bf16(torch.randn(1, 3, 32, 32), torch.tensor([5])).dtype == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(DDRMError, match="CUDA"):
            load_prior(ckpt, dtype=torch.float16, config=yml)


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def test_class_labels_for_files_and_converted_folders(tmp_path, tiny_unet_dir, monkeypatch):
    from ddrm_kit.checkpoints import write_folder
    from ddrm_kit.errors import ClassLabelError

    ckpt, yml = _ckpt(tmp_path, "legacy_headch_cc_sigma_updown_ss")
    with pytest.raises(ClassLabelError) as err:
        load_prior(ckpt, device="cpu", config=yml)
    assert "--class-label N (0 to 999)" in _one_line(err)
    conditional = write_folder(ckpt, tmp_path / "cc", yml)  # ddrm convert without --class-label
    with pytest.raises(ClassLabelError) as err:
        load_prior(conditional, device="cpu")
    assert "class-conditional (1000 classes)" in _one_line(err) and "--class-label" in str(err.value)
    with pytest.raises(ClassLabelError, match="from 0 to 999"):
        load_prior(conditional, device="cpu", class_label=1000)
    from_folder = load_prior(conditional, device="cpu", class_label=7)
    from_file = load_prior(ckpt, device="cpu", config=yml, class_label=7)
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([400])
    with torch.no_grad():
        torch.testing.assert_close(from_folder(x, t), from_file(x, t), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(from_file(x, t), load_prior(ckpt, device="cpu", config=yml, class_label=8)(x, t))
    monkeypatch.setattr(prior_mod, "BUILTIN_DIR", tiny_unet_dir)
    for source in (tiny_unet_dir, None):  # a plain folder, the built-in prior: unconditional
        with pytest.raises(ClassLabelError) as err:
            load_prior(source, device="cpu", class_label=3)
        assert "is unconditional: drop --class-label" in _one_line(err)


def test_model_config_is_for_checkpoint_files_only(tmp_path, tiny_unet_dir, monkeypatch):
    from ddrm_kit.errors import CheckpointConfigError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for source in (tiny_unet_dir, "builtin", "ddrm-kit-tests/no-such-model"):
        with pytest.raises(CheckpointConfigError) as err:
            load_prior(source, device="cpu", config="celeba_hq")
        assert "drop --model-config" in _one_line(err)
    with pytest.raises(ModelNotFoundError, match="no such checkpoint file"):
        load_prior(tmp_path / "missing.ckpt", device="cpu", config="celeba_hq")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="not a checkpoint"):
        load_prior(tmp_path / "notes.txt", device="cpu")


def _scale_shift_unet() -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        resnet_time_scale_shift="scale_shift", attn_norm_num_groups=4)


def test_folders_load_strictly(tmp_path):
    from safetensors.torch import load_file, save_file

    from ddrm_kit.errors import CheckpointWeightsError

    save(tmp_path / "ok", _scale_shift_unet(), DDPMScheduler(num_train_timesteps=20), "root")
    assert load_prior(tmp_path / "ok", device="cpu").num_train_timesteps == 20
    # Without attn_norm_num_groups, UNet2DModel builds its mid-block attention without the GroupNorm
    # and diffusers only warns that the saved one goes unused.
    save(tmp_path / "no_groups", _scale_shift_unet(), DDPMScheduler(num_train_timesteps=20), "root")
    config = json.loads((tmp_path / "no_groups" / "config.json").read_text())
    del config["attn_norm_num_groups"]
    (tmp_path / "no_groups" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointWeightsError) as err:
        load_prior(tmp_path / "no_groups", device="cpu")
    assert "unused mid_block.attentions.0.group_norm.bias" in _one_line(err)
    save(tmp_path / "lacks", small_unet(), DDPMScheduler(num_train_timesteps=20), "pipeline")
    weights = tmp_path / "lacks" / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    del state["conv_in.bias"]
    save_file(state, weights)
    with pytest.raises(CheckpointWeightsError) as err:
        load_prior(tmp_path / "lacks", device="cpu")
    assert "missing conv_in.bias" in _one_line(err)


def test_a_palette_model_folder_is_refused_with_its_loader(tmp_path):
    from ddrm_kit.palette_model import PaletteTask, write_palette_task

    unet = tiny_unet(in_channels=6, sample_size=8)
    save(tmp_path, unet, DDPMScheduler(num_train_timesteps=20), "root")
    write_palette_task(tmp_path, PaletteTask("uncrop"))
    with pytest.raises(UnsupportedModelError) as err:
        load_prior(tmp_path, device="cpu")
    msg = _one_line(err)
    assert "is a Palette model (trained for uncrop)" in msg and "load_palette_prior" in msg
    assert f"ddrm solve --model {tmp_path}" in msg and "latent" not in msg

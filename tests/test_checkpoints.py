"""The papers' checkpoints (guided-diffusion .pt, DDPM .ckpt) as UNet2DModel: exact against the originals.

Every network check computes the original forward pass with ``original_unets.py`` (plain
``torch.nn.functional`` on the original-layout state dict, every weight random) and compares the
converted UNet2DModel with it at several timesteps, in float64 (a mapping mistake shows as 1e-1,
float64 rounding as 1e-14) and float32 (the issue's bound: 1e-4).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from diffusers import DDPMScheduler, UNet2DModel
from original_unets import (ADM, DDPM, adm_forward, adm_shapes, ddpm_forward, ddpm_shapes, full_size,
                            random_state, sinusoids)

from ddrm_kit.checkpoints import (PRESETS, CheckpointUNet, bind_class, is_checkpoint_file, load_checkpoint,
                                  load_config, write_folder)
from ddrm_kit.checkpoints.configs import Schedule, config_for_file, infer
from ddrm_kit.checkpoints.unet import Layout, build
from ddrm_kit.checkpoints.weights import Weights
from ddrm_kit.cli.convert import convert_command
from ddrm_kit.errors import (CheckpointConfigError, CheckpointWeightsError, ClassLabelError, DDRMError,
                             PlainFolderError, UnsupportedModelError)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest.py)

SIZE = 32
T = torch.tensor([0, 123, 999])
LINEAR = {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_diffusion_timesteps": 1000}

#: Small guided-diffusion networks covering every option; 32x32 images, attention at 16 and/or 8.
ADMS = {
    "legacy_headch_cc_sigma_updown_ss": ADM(32, (1, 2, 2), 2, frozenset({2, 4}), num_head_channels=16,
                                            learn_sigma=True, num_classes=1000, scale_shift=True, updown=True),
    "new_order_heads_by_count": ADM(32, (1, 2, 2), 1, frozenset({2, 4}), num_heads=2, new_order=True),
    "legacy_heads_by_count_conv_resample": ADM(32, (1, 2), 2, frozenset({2}), num_heads=4),
    "heads_of_two_widths": ADM(32, (1, 1, 2), 1, frozenset({2, 4}), num_heads=2, updown=True, new_order=True),
    "narrow_first_level_like_512": ADM(64, (0.5, 1, 2), 1, frozenset({2}), num_heads=4, num_heads_upsample=2,
                                       learn_sigma=True, num_classes=1000, scale_shift=True),
}
#: Small DDPM networks: ch_mult and attn_resolutions (image sizes) as the DDIM code base takes them.
DDPMS = {
    "attn_16_8": DDPM(32, (1, 2, 2), 2, frozenset({16, 8}), SIZE),
    "attn_16_four_levels_6_out": DDPM(32, (1, 1, 2, 2), 1, frozenset({16}), SIZE, out_ch=6),
}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def adm_yaml(cfg: ADM) -> dict:
    """The DDRM YAML config of a test network (attention_resolutions as image sizes, like the official ones)."""
    model = {
        "type": "openai", "image_size": SIZE, "num_channels": cfg.model_channels,
        "channel_mult": list(cfg.channel_mult), "num_res_blocks": cfg.num_res_blocks,
        "attention_resolutions": ",".join(str(SIZE // ds) for ds in sorted(cfg.attention_ds)),
        "num_heads": cfg.num_heads, "num_head_channels": cfg.num_head_channels,
        "num_heads_upsample": cfg.num_heads_upsample, "learn_sigma": cfg.learn_sigma,
        "class_cond": cfg.num_classes is not None, "use_scale_shift_norm": cfg.scale_shift,
        "resblock_updown": cfg.updown, "use_new_attention_order": cfg.new_order, "dropout": 0.0,
    }
    return {"model": model, "diffusion": LINEAR}


def ddpm_yaml(cfg: DDPM) -> dict:
    model = {"type": "simple", "in_channels": 3, "out_ch": cfg.out_ch, "ch": cfg.ch, "ch_mult": list(cfg.ch_mult),
             "num_res_blocks": cfg.num_res_blocks, "attn_resolutions": sorted(cfg.attn_resolutions),
             "dropout": 0.0, "resamp_with_conv": True}
    return {"data": {"image_size": cfg.resolution}, "model": model, "diffusion": LINEAR}


def write(tmp_path, name: str, state: dict, raw: dict | None = None):
    """Save ``state`` as ``name`` (and ``raw`` as a YAML config next to it); returns (checkpoint, yaml or None)."""
    ckpt = tmp_path / name
    torch.save(state, ckpt)
    if raw is None:
        return ckpt, None
    cfg = tmp_path / f"{ckpt.stem}.yml"
    cfg.write_text(yaml.safe_dump(raw))
    return ckpt, cfg


def assert_exact(unet, reference, state: dict, x: torch.Tensor, **call) -> tuple[float, float]:
    """Converted vs original, float32 then float64; returns both relative errors."""
    with torch.no_grad():
        e32 = rel(unet(x, T, **call).sample, reference(state, x))
        state64 = {k: v.double() for k, v in state.items()}
        e64 = rel(unet.double()(x.double(), T, **call).sample, reference(state64, x.double()))
    unet.float()
    assert e64 < 1e-12, f"float64 relative error {e64:.2e}: a wrong mapping"
    assert e32 < 1e-5, f"float32 relative error {e32:.2e}"
    return e32, e64


@pytest.mark.parametrize("key", list(ADMS))
def test_guided_diffusion_matches_original(tmp_path, key):
    cfg = ADMS[key]
    state = random_state(adm_shapes(cfg), seed=len(key))
    ckpt, yml = write(tmp_path, "net.pt", state, adm_yaml(cfg))
    label = 7 if cfg.num_classes else None
    unet, sched, info = load_checkpoint(ckpt, yml, class_label=label)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    y = torch.full((3,), 7) if label is not None else None
    assert_exact(unet, lambda sd, xx: adm_forward(sd, cfg, xx, T, y), state, x)
    assert unet.config.out_channels == (6 if cfg.learn_sigma else 3)  # [ε, variance]: the sampler keeps ε
    assert sched["variance_type"] == ("learned_range" if cfg.learn_sigma else "fixed_small")
    assert info.how == "given" and info.class_label == label
    expect_plain = key not in ("heads_of_two_widths", "narrow_first_level_like_512")
    assert (info.plain_problem is None) == expect_plain
    if cfg.num_classes:  # an explicit label still wins over the bound one
        with torch.no_grad():
            other = unet(x, T, class_labels=torch.tensor([1, 2, 3])).sample
        assert rel(other, adm_forward(state, cfg, x, T, torch.tensor([1, 2, 3]))) < 1e-5


@pytest.mark.parametrize("key", list(DDPMS))
def test_ddpm_matches_original(tmp_path, key):
    cfg = DDPMS[key]
    state = random_state(ddpm_shapes(cfg), seed=len(key))
    ckpt, yml = write(tmp_path, "net.ckpt", state, ddpm_yaml(cfg))
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    unet, sched, info = load_checkpoint(ckpt, yml)
    assert_exact(unet, lambda sd, xx: ddpm_forward(sd, cfg, xx, T), state, x)
    # Without a config the weights show the whole network; the schedule is assumed and said so.
    unet, sched, info = load_checkpoint(ckpt)
    assert info.config == "inferred" and "assumed" in info.how and sched["beta_schedule"] == "linear"
    with torch.no_grad():
        assert rel(unet(x, T).sample, ddpm_forward(state, cfg, x, T)) < 1e-5


def test_timestep_encodings_differ_as_the_code_bases_do():
    t = torch.tensor([5])
    adm, ddpm = sinusoids(t, 8, cos_first=True, shift=0), sinusoids(t, 8, cos_first=False, shift=1)
    five = torch.tensor(5.0)
    assert torch.allclose(adm[0, 0], torch.cos(five)) and torch.allclose(ddpm[0, 0], torch.sin(five))
    assert torch.allclose(ddpm[0, 3], torch.sin(torch.tensor(5.0 * 10000 ** -1.0)))  # log(1e4) / (half - 1)
    assert torch.allclose(adm[0, 3], torch.cos(torch.tensor(5.0 * 10000 ** -0.75)))  # log(1e4) / half


def _meta_state(name: str) -> dict[str, torch.Tensor]:
    arch = full_size(name)
    shapes = adm_shapes(arch) if isinstance(arch, ADM) else ddpm_shapes(arch)
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


@pytest.mark.parametrize("name", list(PRESETS))
def test_full_size_presets_map_every_weight(name):
    """Each built-in config takes every weight of its full-size original network, strictly (shapes only)."""
    config = load_config(name)
    layout = config.module.layout(config.arch)
    state = _meta_state(name)
    unet = build(layout, config.module.convert(Weights(state, f"{name}.pt", name), config.arch))
    params = sum(p.numel() for p in unet.parameters())
    assert params == sum(t.numel() for t in state.values())
    assert params == {"imagenet_256": 552_814_086, "celeba_hq": 113_673_219}.get(name, params)
    assert (layout.plain_problem is None) == (name != "imagenet_512_cc")


def test_presets_hold_the_official_values():
    assert list(PRESETS) == ["imagenet_256", "imagenet_256_cc", "imagenet_512_cc", "celeba_hq", "bedroom", "cat",
                             "church"]
    i256, i512 = load_config("imagenet_256").arch, load_config("imagenet_512_cc").arch
    assert i256.channel_mult == (1, 1, 2, 2, 4, 4) and i256.attention_levels == {3, 4, 5}
    assert i512.channel_mult == (0.5, 1, 1, 2, 2, 4, 4) and i512.attention_levels == {4, 5, 6}  # from image_size
    assert i256.num_classes is None and load_config("imagenet_256_cc").arch.num_classes == 1000
    assert i256.learn_sigma and i256.num_head_channels == 64 and not i256.use_new_attention_order
    church = load_config("church")
    assert church.arch.widths == (128, 128, 256, 256, 512, 512) and church.arch.attention_levels == {4}
    for name in PRESETS:
        assert load_config(name).schedule == Schedule("linear", 0.0001, 0.02, 1000)


def test_known_file_names_pick_their_config(tmp_path):
    assert config_for_file(Path("256x256_diffusion_uncond.pt")) == "imagenet_256"
    assert config_for_file(Path("x/512x512_diffusion.pt")) == "imagenet_512_cc"
    assert config_for_file(Path("celeba_hq.ckpt")) == "celeba_hq"
    assert config_for_file(Path("ema_diffusion_lsun_church_model/model.ckpt")) == "church"
    assert config_for_file(Path("model-1761000.ckpt")) == "cat" and config_for_file(Path("mine.pt")) is None
    # A known name whose weights do not fit: one line naming the config and --model-config.
    cfg = DDPMS["attn_16_8"]
    ckpt, _ = write(tmp_path, "celeba_hq.ckpt", random_state(ddpm_shapes(cfg)))
    with pytest.raises(CheckpointWeightsError, match=r"celeba_hq.*--model-config") as err:
        load_checkpoint(ckpt)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["imagenet_256", "imagenet_256_cc", "imagenet_512_cc", "church"])
def test_weights_of_a_preset_network_are_recognised(name):
    config, how = infer(_meta_state(name), "renamed.pt")
    if name == "church":  # the four DDPM configs share one network and schedule
        assert config.name == "inferred" and "celeba_hq, bedroom, cat, church" in how and config.arch.image_size == 256
    else:
        assert config.name == name and "shapes" in how


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointConfigError, match="unknown --model-config 'imagenet'.*imagenet_256"):
        load_config("imagenet")
    bad = tmp_path / "bad.yml"
    for text, match in [
        ("model: {type: openai, image_size: 64}\ndiffusion: {}", "lacks num_channels, num_res_blocks"),
        ("model: {type: keras}", "model.type is 'keras'"),
        ("data: {}", "no model: section"),
        ("model: [1, 2", "not a readable YAML file"),
        ("model: {type: simple, ch: 32, ch_mult: [1, 2], num_res_blocks: 1}\ndata: {image_size: 32}",
         "no diffusion: section"),
        ("model: {type: openai, image_size: 48, num_channels: 32, num_res_blocks: 1}\ndiffusion: " + json.dumps(LINEAR),
         "no default for image_size 48"),
        ("model: {type: openai, image_size: 64, num_channels: 96, num_res_blocks: 1, num_heads: 5}\ndiffusion: "
         + json.dumps(LINEAR), "cannot be split into heads"),
        ("model: {type: simple, ch: 32, ch_mult: [1, 2], num_res_blocks: 1}\ndata: {image_size: 32}\n"
         "diffusion: {beta_schedule: warp, beta_start: 0.1, beta_end: 0.2, num_diffusion_timesteps: 10}",
         "unknown beta_schedule 'warp'"),
    ]:
        bad.write_text(text)
        with pytest.raises(CheckpointConfigError, match=match) as err:
            load_config(bad)
        assert "\n" not in str(err.value)
    raw = ddpm_yaml(DDPMS["attn_16_8"])
    bad.write_text(yaml.safe_dump({**raw, "model": {**raw["model"], "resamp_with_conv": False}}))
    with pytest.raises(UnsupportedModelError, match="resamp_with_conv"):
        load_config(bad)


def test_yaml_file_in_the_official_format(tmp_path):
    # The layout of the DDRM code's configs/imagenet_256.yml: extra sections and keys are ignored.
    text = """
data: {dataset: "ImageNet", image_size: 256, channels: 3}
model:
    type: "openai"
    in_channels: 3
    out_channels: 3
    num_channels: 256
    num_heads: 4
    num_res_blocks: 2
    attention_resolutions: "32,16,8"
    dropout: 0.0
    resamp_with_conv: True
    learn_sigma: True
    use_scale_shift_norm: true
    use_fp16: true
    resblock_updown: true
    num_heads_upsample: -1
    var_type: 'fixedsmall'
    num_head_channels: 64
    image_size: 256
    class_cond: false
    use_new_attention_order: false
diffusion: {beta_schedule: linear, beta_start: 0.0001, beta_end: 0.02, num_diffusion_timesteps: 1000}
sampling: {batch_size: 8}
"""
    path = tmp_path / "imagenet_256.yml"
    path.write_text(text)
    parsed = load_config(path)
    assert parsed.arch == load_config("imagenet_256").arch and parsed.schedule == load_config("imagenet_256").schedule
    assert parsed.arch.out_channels == 6  # create_model: learn_sigma doubles the outputs, whatever out_channels says


@pytest.mark.parametrize("kind", ["linear", "quad", "sigmoid", "cosine", "const", "jsd"])
def test_schedules_match_diffusers(kind):
    schedule = Schedule(kind, 0.0001, 0.02, 1000)
    ours = schedule.alphas_cumprod()
    theirs = DDPMScheduler.from_config(schedule.scheduler_config(learn_sigma=False)).alphas_cumprod.double()
    assert ours.shape == (1000,) and ours.dtype == torch.float64
    if kind == "jsd":  # β_T = 1: ᾱ_T = 0 in both
        ours, theirs = ours[:-1], theirs[:-1]
    assert torch.allclose(ours, theirs, rtol=2e-5, atol=1e-9)
    if kind == "linear":
        betas = torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64)
        assert torch.allclose(ours, torch.cumprod(1 - betas, 0), rtol=1e-12)
    if kind == "cosine":  # Nichol & Dhariwal's ᾱ(t) = cos²((t/T + s)/(1 + s) π/2) / cos²(s/(1+s) π/2)
        f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        assert abs(float(ours[499]) - f(500) / f(0)) < 1e-9


def test_strict_loading_refuses_unused_missing_and_misshapen_weights(tmp_path):
    cfg = ADMS["new_order_heads_by_count"]
    state = random_state(adm_shapes(cfg))
    raw = adm_yaml(cfg)
    cases = {
        "does not use .*extra.weight": {**state, "extra.weight": torch.zeros(1)},
        "lacks the weight middle_block.1.qkv.bias": {k: v for k, v in state.items() if k != "middle_block.1.qkv.bias"},
        r"out.2.weight has shape \(3, 32, 3, 3\), the network needs \(6, 32, 3, 3\)": state,
    }
    for i, (match, sd) in enumerate(cases.items()):
        conf = raw if i < 2 else {**raw, "model": {**raw["model"], "learn_sigma": True}}
        ckpt, yml = write(tmp_path, f"n{i}.pt", sd, conf)
        with pytest.raises(CheckpointWeightsError, match=match) as err:
            load_checkpoint(ckpt, yml)
        assert "--model-config" in str(err.value) and "\n" not in str(err.value)


def test_mid_attention_norm_is_kept_under_scale_shift():
    """UNet2DModel drops the mid-block attention GroupNorm under scale-shift unless told its groups; build refuses."""
    config = load_config("imagenet_256")
    layout = config.module.layout(config.arch)
    weights = config.module.convert(Weights(_meta_state("imagenet_256"), "x.pt", "imagenet_256"), config.arch)
    assert "mid_block.attentions.0.group_norm.weight" in weights
    broken = Layout({k: v for k, v in layout.config.items() if k != "attn_norm_num_groups"})
    with pytest.raises(CheckpointWeightsError, match="group_norm"):
        build(broken, weights)


def test_state_dicts_that_fit_no_config(tmp_path):
    ckpt, _ = write(tmp_path, "other.pt", {"encoder.weight": torch.zeros(2, 2)})
    with pytest.raises(CheckpointConfigError, match="neither a guided-diffusion nor a DDPM"):
        load_checkpoint(ckpt)
    cfg = ADMS["new_order_heads_by_count"]
    ckpt, _ = write(tmp_path, "adm.pt", random_state(adm_shapes(cfg)))
    with pytest.raises(CheckpointConfigError, match="heads and order are not in the weights: pass --model-config"):
        load_checkpoint(ckpt)
    ckpt, _ = write(tmp_path, "list.pt", [torch.zeros(1)])
    with pytest.raises(UnsupportedModelError, match="no plain state dict"):
        load_checkpoint(ckpt)
    (tmp_path / "net.npz").write_bytes(b"x")
    with pytest.raises(UnsupportedModelError, match="unknown checkpoint file type .npz"):
        load_checkpoint(tmp_path / "net.npz")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UnsupportedModelError, match="junk.pt: not a readable torch checkpoint file"):
        load_checkpoint(tmp_path / "junk.pt")
    import argparse

    torch.save({"w": torch.zeros(1), "args": argparse.Namespace(lr=1)}, tmp_path / "objects.pt")
    with pytest.raises(UnsupportedModelError, match="holds Python objects besides tensors"):
        load_checkpoint(tmp_path / "objects.pt")  # weights_only: no code from the file runs


def test_class_labels(tmp_path):
    cfg = ADMS["legacy_headch_cc_sigma_updown_ss"]
    ckpt, yml = write(tmp_path, "cc.pt", random_state(adm_shapes(cfg)), adm_yaml(cfg))
    for label, match in [(None, r"class-conditional \(1000 classes\): pass --class-label N \(0 to 999\)"),
                         (1000, "from 0 to 999"), (-1, "from 0 to 999")]:
        with pytest.raises(ClassLabelError, match=match):
            load_checkpoint(ckpt, yml, class_label=label)
    plain = DDPMS["attn_16_8"]
    ckpt, yml = write(tmp_path, "u.ckpt", random_state(ddpm_shapes(plain)), ddpm_yaml(plain))
    with pytest.raises(ClassLabelError, match="unconditional: drop --class-label"):
        load_checkpoint(ckpt, yml, class_label=3)


def test_other_file_formats(tmp_path):
    from safetensors.torch import save_file

    cfg = DDPMS["attn_16_8"]
    state = random_state(ddpm_shapes(cfg), seed=5)
    x = torch.randn(3, 3, SIZE, SIZE)
    expected = ddpm_forward(state, cfg, x, T)
    save_file(state, tmp_path / "a.safetensors")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "b.pth")  # DataParallel names
    torch.save(state, tmp_path / "c.bin", _use_new_zipfile_serialization=False)  # legacy format: no mmap
    half = {k: v.half() for k, v in state.items()}
    torch.save(half, tmp_path / "d.pt")  # float16 weights widen exactly
    for name in ("a.safetensors", "b.pth", "c.bin"):
        assert is_checkpoint_file(tmp_path / name)
        unet = load_checkpoint(tmp_path / name).unet
        with torch.no_grad():
            assert rel(unet(x, T).sample, expected) < 1e-5, name
    unet = load_checkpoint(tmp_path / "d.pt").unet
    assert unet.conv_in.weight.dtype == torch.float32
    with torch.no_grad():
        assert rel(unet(x, T).sample, ddpm_forward({k: v.float() for k, v in half.items()}, cfg, x, T)) < 1e-5


def test_folder_loads_with_plain_diffusers(tmp_path):
    cfg = ADMS["legacy_headch_cc_sigma_updown_ss"]
    state = random_state(adm_shapes(cfg), seed=3)
    ckpt, yml = write(tmp_path, "adm_cc.pt", state, adm_yaml(cfg))
    x = torch.randn(2, 3, SIZE, SIZE)
    t = T[:2]
    # Bound to a class: an unconditional UNet2DModel for that class.
    bound = write_folder(ckpt, tmp_path / "bound", yml, class_label=7)
    assert sorted(p.name for p in bound.iterdir()) == [
        "README.md", "config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"]
    unet = UNet2DModel.from_pretrained(bound).eval()
    assert type(unet) is UNet2DModel and unet.config.num_class_embeds is None
    with torch.no_grad():
        assert rel(unet(x, t).sample, adm_forward(state, cfg, x, t, torch.tensor([7, 7]))) < 1e-5
    assert "adm_cc.pt" in (bound / "README.md").read_text()
    sched = DDPMScheduler.from_pretrained(bound)
    assert torch.allclose(sched.alphas_cumprod.double(), load_config(yml).schedule.alphas_cumprod(), rtol=1e-5)
    # Unbound: the class-conditional network, which takes class_labels.
    cond = UNet2DModel.from_pretrained(write_folder(ckpt, tmp_path / "cond", yml)).eval()
    labels = torch.tensor([3, 999])
    with torch.no_grad():
        assert rel(cond(x, t, class_labels=labels).sample, adm_forward(state, cfg, x, t, labels)) < 1e-5
    # ... which ddrm binds to a class when it loads the folder.
    bound_again = bind_class(CheckpointUNet.from_pretrained(tmp_path / "cond").eval(), 3, "cond")
    with torch.no_grad():
        assert rel(bound_again(x, t).sample, adm_forward(state, cfg, x, t, torch.tensor([3, 3]))) < 1e-5
    # DDPM, config from the weights; and re-converting into the same folder replaces it.
    dcfg = DDPMS["attn_16_8"]
    dstate = random_state(ddpm_shapes(dcfg), seed=4)
    dckpt, _ = write(tmp_path, "ddpm.ckpt", dstate)
    for _ in range(2):
        folder = write_folder(dckpt, tmp_path / "ddpm")
    with torch.no_grad():
        out = UNet2DModel.from_pretrained(folder)(x, t).sample
    assert rel(out, ddpm_forward(dstate, dcfg, x, t)) < 1e-5


def test_folder_refusals_say_why(tmp_path):
    cfg = ADMS["narrow_first_level_like_512"]
    ckpt, yml = write(tmp_path, "wide.pt", random_state(adm_shapes(cfg)), adm_yaml(cfg))
    with pytest.raises(PlainFolderError, match="timestep encoding has 64 channels but its first level 32") as err:
        write_folder(ckpt, tmp_path / "out", yml)
    assert "\n" not in str(err.value) and not (tmp_path / "out" / "config.json").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    dcfg = DDPMS["attn_16_8"]
    dckpt, _ = write(tmp_path, "ddpm.ckpt", random_state(ddpm_shapes(dcfg)))
    with pytest.raises(DDRMError, match="holds other files"):
        write_folder(dckpt, busy)


def test_convert_command(tmp_path):
    cfg = DDPMS["attn_16_8"]
    ckpt, yml = write(tmp_path, "net.ckpt", random_state(ddpm_shapes(cfg)), ddpm_yaml(cfg))
    runner = CliRunner()
    result = runner.invoke(convert_command, [str(ckpt), "--model-config", str(yml), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "out" / "config.json").is_file()
    result = runner.invoke(convert_command, [str(ckpt), "--model-config", "nope", "-o", str(tmp_path / "x")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "Error: unknown --model-config 'nope'" in result.output
    result = runner.invoke(convert_command, [str(ckpt), "--class-label", "-2", "-o", str(tmp_path / "x")])
    assert result.exit_code != 0 and "--class-label" in result.output and result.output.count("\n") == 1
    result = runner.invoke(convert_command, [str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no such checkpoint file" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["imagenet_256", "imagenet_256_cc", "imagenet_512_cc", "celeba_hq"])
def test_full_size_networks_match_original(tmp_path, name):
    """Full-size networks with random weights, loaded by their released file names; ε at 64x64, t = 500."""
    files = {"imagenet_256": "256x256_diffusion_uncond.pt", "imagenet_256_cc": "256x256_diffusion.pt",
             "imagenet_512_cc": "512x512_diffusion.pt", "celeba_hq": "celeba_hq.ckpt"}
    arch = full_size(name)
    shapes = adm_shapes(arch) if isinstance(arch, ADM) else ddpm_shapes(arch)
    state = random_state(shapes, seed=11)
    torch.save(state, tmp_path / files[name])
    label = 7 if name.endswith("_cc") else None
    unet, _, info = load_checkpoint(tmp_path / files[name], class_label=label)
    assert info.config == name and info.how == "picked from the file name"
    x, t = torch.randn(1, 3, 64, 64), torch.tensor([500])
    with torch.no_grad():
        out = unet(x, t).sample[:, :3]
        if isinstance(arch, ADM):
            ref = adm_forward(state, arch, x, t, torch.tensor([7]) if label is not None else None)[:, :3]
        else:
            ref = ddpm_forward(state, arch, x, t)
    assert rel(out, ref) <= 1e-4

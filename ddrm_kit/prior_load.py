"""Where :func:`ddrm_kit.load_prior` gets a network: diffusers folders, hub ids, and the papers' checkpoint files.

Every source is loaded strictly (a weight the network does not use, or one it lacks, is refused)
and becomes the same :class:`~ddrm_kit.prior.Prior`. A class-conditional network, from a
checkpoint file or a folder that ``ddrm convert`` wrote without ``--class-label``, is bound to one
class; ``--model-config`` applies to checkpoint files only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from .checkpoints.unet import bind_class, check_class_label
from .errors import (CheckpointConfigError, CheckpointWeightsError, DDRMError, HubUnavailableError, ModelNotFoundError,
                     UnsupportedModelError)
from .experts import EXPERTS_JSON, combine_experts, read_experts, same_schedule
from .palette_model import read_palette_task
from .prior import (_HAS_ACCELERATE, Prior, _alphas_cumprod, _check_scheduler_config, _has_weights, _read_json,
                    _UNetEps)
from .prior_settings import SETTINGS_JSON, read_settings

_LATENT_COMPONENTS = ("vqvae", "vae", "text_encoder", "tokenizer", "image_encoder")
#: Checkpoint files already told about ``ddrm convert`` in this process.
_CONVERT_NOTED: set[Path] = set()


def refuse_model_config(label: str) -> None:
    """``--model-config`` describes a checkpoint file; a diffusers model has its own config.json."""
    raise CheckpointConfigError(
        f"--model-config is for checkpoint files (.pt .pth .ckpt .bin .safetensors), and {label} is a diffusers "
        "model with its own config.json: drop --model-config")


def check_class(unet_cfg: dict[str, Any], class_label: int | None, label: str) -> None:
    """A class-conditional UNet2DModel config needs ``class_label``; an unconditional one refuses it."""
    classes = unet_cfg.get("num_class_embeds") if unet_cfg.get("class_embed_type") is None else None
    check_class_label(int(classes) if classes else None, class_label, label, required=True)


def _check_unet_config(cfg: dict[str, Any], label: str, class_label: int | None) -> None:
    cls = str(cfg.get("_class_name", "UNet2DModel"))
    if cls != "UNet2DModel":
        kind = "a text/latent-conditional UNet" if "Condition" in cls else f"a {cls}"
        raise UnsupportedModelError(
            f"{label} holds {kind}; ddrm needs an unconditional pixel-space UNet2DModel "
            "(e.g. google/ddpm-celebahq-256 or the built-in prior)")
    if cfg.get("class_embed_type") is not None:
        raise UnsupportedModelError(
            f"{label} is conditioned through a {cfg['class_embed_type']!r} class embedding; ddrm binds only "
            "class-index embeddings (num_class_embeds) to one --class-label")
    if cfg.get("time_embedding_type", "positional") == "fourier":
        raise UnsupportedModelError(
            f"{label} is a score-SDE (variance-exploding) UNet; ddrm needs a DDPM-style UNet2DModel "
            "(e.g. google/ddpm-celebahq-256 or the built-in prior)")
    cin, cout = int(cfg.get("in_channels", 3)), int(cfg.get("out_channels", 3))
    if cin not in (1, 3):
        raise UnsupportedModelError(
            f"{label} takes {cin}-channel inputs (a latent-space UNet?); ddrm needs a pixel-space "
            "UNet2DModel on 1- or 3-channel images")
    if cout not in (cin, 2 * cin):
        raise UnsupportedModelError(
            f"{label} outputs {cout} channels for {cin} input channels; expected {cin} (ε) or {2 * cin} "
            "(ε and learned variance)")
    check_class(cfg, class_label, label)


def inspect_folder(folder: Path, label: str,
                   class_label: int | None) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """Find the UNet and scheduler of a save_pretrained folder and check they are a pixel-space DDPM.

    Returns ``(unet_subfolder, unet_config, scheduler_config)``; the subfolder is None for the root.
    """
    index = folder / "model_index.json"
    if index.is_file():
        components = _read_json(index)
        pipe = str(components.get("_class_name", ""))
        latent = [c for c in _LATENT_COMPONENTS if c in components]
        if latent or "Latent" in pipe or "StableDiffusion" in pipe:
            raise UnsupportedModelError(
                f"{label} is a latent-diffusion pipeline ({pipe or latent[0]}); ddrm needs a pixel-space "
                "UNet2DModel prior such as google/ddpm-celebahq-256 or the built-in prior")
        if "Consistency" in pipe:
            raise UnsupportedModelError(
                f"{label} is a consistency model ({pipe}); ddrm needs a DDPM-style UNet2DModel prior "
                "such as google/ddpm-celebahq-256 or the built-in prior")
    if (folder / "unet" / "config.json").is_file():
        unet_sub: str | None = "unet"
    elif (folder / "config.json").is_file():
        unet_sub = None
    else:
        raise ModelNotFoundError(
            f"no UNet config.json in {label} (looked at the root and unet/): pass a folder written by "
            "UNet2DModel.save_pretrained or a pipeline's save_pretrained")
    sched = next((p for p in (folder / "scheduler", folder) if (p / "scheduler_config.json").is_file()), None)
    if sched is None:
        raise UnsupportedModelError(
            f"no scheduler_config.json in {label} (root or scheduler/): save the model's DDPMScheduler "
            "next to the UNet with scheduler.save_pretrained(folder)")
    unet_cfg = _read_json(folder / (unet_sub or ".") / "config.json")
    sched_cfg = _read_json(sched / "scheduler_config.json")
    _check_unet_config(unet_cfg, label, class_label)
    _check_scheduler_config(sched_cfg, label)
    return unet_sub, unet_cfg, sched_cfg


def _from_pretrained(unet_cfg: dict[str, Any], label: str, source: str | Path, class_label: int | None,
                     **kwargs: Any) -> torch.nn.Module:
    """``from_pretrained`` that refuses weights the config leaves unused or unset, then binds the class."""
    from diffusers import UNet2DModel

    from .checkpoints import CheckpointUNet

    conditional = unet_cfg.get("num_class_embeds") is not None
    cls = CheckpointUNet if conditional else UNet2DModel
    unet, info = cls.from_pretrained(source, low_cpu_mem_usage=_HAS_ACCELERATE, output_loading_info=True, **kwargs)
    # diffusers only warns about these, yet a missing weight is random and an unused one means that
    # the config builds another network (e.g. a scale-shift UNet without attn_norm_num_groups).
    problems = [f"{kind} {', '.join(sorted(map(str, info[key]))[:3])}"
                for key, kind in (("unexpected_keys", "unused"), ("missing_keys", "missing"),
                                  ("mismatched_keys", "misshapen")) if info.get(key)]
    if problems:
        raise CheckpointWeightsError(
            f"the weights of {label} do not fit its config.json ({'; '.join(problems)}): the config builds "
            "another network; re-save the model with save_pretrained")
    return bind_class(unet, class_label, label) if conditional else unet


def _build(unet: torch.nn.Module, schedule: tuple[torch.Tensor, str], settings: dict[str, Any], label: str,
           device: torch.device, dtype: torch.dtype, channels_last: bool, compile: bool) -> Prior:
    ac, pred = schedule
    unet = unet.to(device).eval().requires_grad_(False)
    if unet.dtype != dtype:
        # Checkpoint files convert in float32. nn.Module's casts, since diffusers' to(dtype) warns on every
        # call that from_pretrained(torch_dtype=...) is preferred, which a converted network cannot use.
        unet = {torch.float16: unet.half, torch.bfloat16: unet.bfloat16, torch.float32: unet.float}[dtype]()
    if channels_last:
        # NHWC convolutions (oneDNN on CPU, cuDNN tensor cores on CUDA); same results up to float rounding.
        unet = unet.to(memory_format=torch.channels_last)
    if compile:
        unet.compile()
    eps = _UNetEps(unet, ac, pred, channels_last).to(device)
    return Prior(eps, ac, device=device, dtype=dtype, channels=eps.channels, name=label, settings=settings)


def load_folder(folder: Path, label: str, class_label: int | None, device: torch.device, dtype: torch.dtype,
                **build: bool) -> Prior:
    """A save_pretrained folder (root or unet/ + scheduler/ layout); a Palette model is refused."""
    _refuse_palette(folder, label)
    unet_sub, unet_cfg, sched_cfg = inspect_folder(folder, label, class_label)
    # the schedule, the settings and the experts' files are checked before the weights are read
    schedule = _alphas_cumprod(sched_cfg, label)
    settings = read_settings(folder, len(schedule[0]))
    experts = read_experts(folder, len(schedule[0]))
    if experts is not None:
        high_dir, from_t = experts
        high_label = f"{label}'s high-noise expert ({high_dir.name}/)"
        high_layout = _inspect_expert(high_dir, high_label, label, schedule[0], int(unet_cfg.get("in_channels", 3)),
                                      class_label)
    prior = _load_unet(folder, unet_sub, unet_cfg, schedule, settings, label, class_label, device, dtype, **build)
    if experts is None:
        return prior
    high = _load_unet(high_dir, *high_layout, {}, high_label, class_label, device, dtype, **build)
    return combine_experts(prior, high, from_t)


def _refuse_palette(folder: Path, label: str) -> None:
    task = read_palette_task(folder)
    if task is not None:
        raise UnsupportedModelError(
            f"{label} is a Palette model (trained for {task.operator}), not a DDRM prior: restore with "
            f"`ddrm solve --model {folder}` or load it with ddrm_kit.load_palette_prior")


def _inspect_expert(folder: Path, expert: str, label: str, alphas_cumprod: torch.Tensor, channels: int,
                    class_label: int | None) -> tuple[str | None, dict[str, Any], tuple[torch.Tensor, str]]:
    """A high-noise expert's (unet subfolder, UNet config, schedule): a plain prior folder on its owner's noise
    schedule, taking its owner's images; the pair's own files live in the owner."""
    _refuse_palette(folder, expert)
    for name in (EXPERTS_JSON, SETTINGS_JSON):
        if (folder / name).exists():
            raise UnsupportedModelError(
                f"{expert} holds {name}, which belongs in {label} itself (the folder of the pair): move or remove it")
    unet_sub, unet_cfg, sched_cfg = inspect_folder(folder, expert, class_label)
    if int(unet_cfg.get("in_channels", 3)) != channels:
        raise UnsupportedModelError(
            f"{expert} takes {unet_cfg.get('in_channels', 3)}-channel images and {label} {channels}-channel ones: "
            "experts must take the same images")
    schedule = _alphas_cumprod(sched_cfg, expert)
    if not same_schedule(schedule[0], alphas_cumprod):
        raise UnsupportedModelError(
            f"{expert} has another noise schedule than {label} ({len(schedule[0])} vs {len(alphas_cumprod)} steps "
            "or other betas): experts must share one beta schedule")
    return unet_sub, unet_cfg, schedule


def _load_unet(folder: Path, unet_sub: str | None, unet_cfg: dict[str, Any], schedule: tuple[torch.Tensor, str],
               settings: dict[str, Any], label: str, class_label: int | None, device: torch.device, dtype: torch.dtype,
               **build: bool) -> Prior:
    unet_dir = folder / unet_sub if unet_sub else folder
    if not _has_weights(unet_dir):
        raise ModelNotFoundError(
            f"no UNet weights (diffusion_pytorch_model.safetensors) in {unet_dir}: "
            "save the model with save_pretrained")
    try:
        unet = _from_pretrained(unet_cfg, label, unet_dir, class_label, torch_dtype=dtype)
    except DDRMError:
        raise
    except (OSError, ValueError, RuntimeError) as err:
        raise UnsupportedModelError(f"cannot load the UNet in {unet_dir}: {err}".replace("\n", " ")) from err
    return _build(unet, schedule, settings, label, device, dtype, **build)


def _hub_offline() -> bool:
    import os

    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in ("1", "ON", "YES", "TRUE")


def load_hub(repo_id: str, class_label: int | None, device: torch.device, dtype: torch.dtype, **build: bool) -> Prior:
    """A hub repo: its configs first (a latent or conditional repo is refused before any weights download)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    offline = _hub_offline()
    unreachable = (
        f"'{repo_id}' is not a local folder and cannot be fetched from the Hugging Face Hub "
        f"({'HF_HUB_OFFLINE is set' if offline else 'offline or unreachable'}) nor found in its cache: "
        "download it once online (HF_HUB_OFFLINE=1 then reads the cache), pass a local save_pretrained "
        "folder, or use the built-in prior (--model builtin)")
    try:
        cfg_dir = snapshot_download(
            repo_id,
            allow_patterns=["model_index.json", "config.json", "scheduler_config.json",
                            "unet/config.json", "scheduler/scheduler_config.json", SETTINGS_JSON, EXPERTS_JSON],
            local_files_only=offline)
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ModelNotFoundError(
            f"no accessible model '{repo_id}' on the Hugging Face Hub (nor a local folder of that name): "
            "check the id (e.g. google/ddpm-celebahq-256), pass a local folder, or use --model builtin") from err
    except Exception as err:  # noqa: BLE001 - network stacks raise many types; all mean "unreachable"
        raise HubUnavailableError(unreachable) from err
    if (Path(cfg_dir) / EXPERTS_JSON).is_file():
        raise UnsupportedModelError(
            f"hub model '{repo_id}' pairs noise-level experts ({EXPERTS_JSON}), which load from a local folder only: "
            f"download it (huggingface-cli download {repo_id} --local-dir DIR) and pass --model DIR")
    unet_sub, unet_cfg, sched_cfg = inspect_folder(Path(cfg_dir), f"hub model '{repo_id}'", class_label)
    schedule = _alphas_cumprod(sched_cfg, repo_id)
    settings = read_settings(Path(cfg_dir), len(schedule[0]))
    try:
        unet = _from_pretrained(unet_cfg, repo_id, repo_id, class_label, subfolder=unet_sub, torch_dtype=dtype,
                                local_files_only=offline)
    except DDRMError:
        raise
    except Exception as err:  # noqa: BLE001 - as above
        raise HubUnavailableError(unreachable) from err
    return _build(unet, schedule, settings, repo_id, device, dtype, **build)


def load_file(path: Path, config: str | None, class_label: int | None, device: torch.device, dtype: torch.dtype,
              **build: bool) -> Prior:
    """A papers' checkpoint file, converted in memory (nothing is written) with the schedule of its config."""
    from .checkpoints import load_checkpoint

    unet, _, info = load_checkpoint(path, config, class_label)
    _check_unet_config(dict(unet.config), str(path), class_label)
    prior = _build(unet, (info.alphas_cumprod, "epsilon"), {}, str(path), device, dtype, **build)
    key = path.resolve()
    if key not in _CONVERT_NOTED:
        _CONVERT_NOTED.add(key)
        given = f" --model-config {config}" if config is not None else ""
        # A plain print: warnings filters could hide it, and it is advice, not a fault.
        print(f"note: {path.name} is converted anew on every load; `ddrm convert {path}{given} -o DIR` writes it "
              "once as a diffusers folder that --model DIR loads faster", file=sys.stderr)
    return prior

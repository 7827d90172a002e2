"""What a bench run depends on (:class:`BenchConfig`) and the checks made before anything slow runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ddrm_kit.errors import BenchError

from .observation import OBSERVATIONS
from .report import existing_results

#: ``precision`` -> the torch dtype of the prior's network (``ddrm --precision`` spellings).
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class BenchConfig:
    """Everything a bench run depends on (the CLI options, in Python)."""

    op: str
    data: Path
    output: Path
    model: str | None = None
    model_config: str | None = None  # config of a checkpoint file (ddrm_kit.checkpoints)
    class_label: int | None = None  # class of a class-conditional prior
    limit: int | None = None
    size: int | None = None
    crop: int | None = None
    steps: int = 20
    eta: float | None = None
    eta_b: float | None = None
    clip_denoised: bool = False
    average: int = 1  # restorations averaged per image
    sigma_y: float = 0.0  # [0, 1] pixel units, doubled for the [-1, 1] API
    observation: str = "uint8"  # "uint8": image observations rounded as a file holds them; "float": exact
    seed: int = 0
    batch_size: int = 1
    grid: int = 4
    device: str | None = None
    precision: str = "fp32"  # the prior's network: fp32, bf16, fp16 (CUDA)
    reference: bool = False
    metric_weights: Path | None = None
    save_images: bool = False
    overwrite: bool = False  # replace the bench results already in `output`
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        self.data, self.output = Path(self.data), Path(self.output)
        if self.metric_weights is not None:
            self.metric_weights = Path(self.metric_weights)


def check(cfg: BenchConfig):
    """Refuse options the run cannot use, before data or prior are loaded; returns the operator's registry entry."""
    from operators.registry import get_spec

    spec = get_spec(cfg.op)
    if cfg.size is not None and cfg.crop is not None:
        raise BenchError("give either --size (resize) or --crop (native resolution), not both")
    if cfg.limit is not None and cfg.limit < 1:
        raise BenchError("--limit must be at least 1")
    if cfg.batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    if not cfg.sigma_y >= 0:
        raise BenchError("--sigma-y must be >= 0 (a standard deviation in [0, 1] pixel units)")
    if spec.kind == "codec" and cfg.sigma_y > 0:
        raise BenchError(f"--sigma-y is not used by {cfg.op} (quantisation is the noise); drop it")
    if cfg.observation not in OBSERVATIONS:
        raise BenchError(f"--observation must be one of {', '.join(OBSERVATIONS)}, got {cfg.observation!r}")
    if cfg.precision not in PRECISIONS:
        raise BenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.output.exists() and not cfg.output.is_dir():
        raise BenchError(f"--output {cfg.output}: is a file; give a folder for the results")
    held = existing_results(cfg.output)
    if held and not cfg.overwrite:
        raise BenchError(f"--output {cfg.output} already holds bench results ({', '.join(held)}); "
                         "give another folder, or --overwrite to replace them")
    return spec

"""Shared pieces of the benchmarks: the celebahq-256 UNet architecture, timing, memory, tables, name lists.

Not a benchmark itself. The scripts put ``benchmarks/`` on ``sys.path`` and import this module;
torch and diffusers are imported inside the functions so that the start-up benchmark stays torch-free.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

# google/ddpm-celebahq-256's unet/config.json (113.7M parameters): six resolutions 256..8,
# self-attention at 16x16, two ResNet blocks per level, GroupNorm(32, eps 1e-6).
CELEBAHQ_256_CONFIG: dict[str, Any] = {
    "sample_size": 256,
    "in_channels": 3,
    "out_channels": 3,
    "layers_per_block": 2,
    "block_out_channels": (128, 128, 256, 256, 512, 512),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D",
                         "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    "act_fn": "silu",
    "attention_head_dim": None,
    "center_input_sample": False,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-6,
    "norm_num_groups": 32,
    "time_embedding_type": "positional",
}


def celebahq_unet(seed: int = 0):
    """The celebahq-256 UNet2DModel with random weights (seeded), in eval mode, float32, on the CPU."""
    import torch
    from diffusers import UNet2DModel

    torch.manual_seed(seed)  # benchmark-only: weights are random, their values do not matter
    return UNet2DModel(**CELEBAHQ_256_CONFIG).eval().requires_grad_(False)


def first_forward_probe(exit_at_first: bool) -> str:
    """Python code for a child process: stamps the wall clock at the first ``UNet2DModel.forward`` call.

    The patch goes in through an import hook when diffusers' ``unet_2d`` module is first imported,
    so the child makes no import that the code under test would not make by itself. The stamp is
    printed as ``FIRST_FORWARD <time.time()>``; with ``exit_at_first`` the child exits right there.
    """
    action = "os._exit(0)" if exit_at_first else "pass"
    return f"""
import importlib.abc, importlib.machinery, os, sys, time
class _FirstForward(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "diffusers.models.unets.unet_2d":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            forward = module.UNet2DModel.forward
            def stamped(self, *args, **kwargs):
                if not getattr(stamped, "seen", False):
                    stamped.seen = True
                    print("FIRST_FORWARD", repr(time.time()), file=sys.stderr, flush=True)
                    {action}
                return forward(self, *args, **kwargs)
            module.UNet2DModel.forward = stamped
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, _FirstForward())
"""


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1, sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        out.append(time.perf_counter() - t0)
    return out


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size (MiB) of this process, or of its waited-for children."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def load_average() -> str:
    """The 1-minute load average, to show how busy the shared CPU was during a run."""
    return f"{os.getloadavg()[0]:.1f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])


def pick_names(text: str, known: Sequence[str], what: str, option: str) -> list[str]:
    """The comma-separated names of ``text``, each one of ``known``, else a one-line usage error naming ``option``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise click.BadParameter(f"unknown {what} {unknown[0] if unknown else ''!r} (known: {', '.join(known)})",
                                 param_hint=option)
    return names

"""Scale-out under ``torchrun``: join the process group, pick each rank's device, gather results on rank 0."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # the group was created here, so it is destroyed here


def join(device: str | None) -> Ranks:
    """Join the torchrun job when ``WORLD_SIZE > 1`` (env:// rendezvous; gloo on CPU, nccl on CUDA).

    A process group that a launcher already created (e.g. accelerate, or a test's file:// group) is used as it is.
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def leave(ranks: Ranks) -> None:
    """Wait for every rank, then destroy the group if :func:`join` created it."""
    if ranks.owns_group:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def gather(obj: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if ranks.world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def rank_device(device: str | None, ranks: Ranks) -> "torch.device":
    """``device`` (default: CUDA when available), with a bare ``cuda`` meaning ``cuda:LOCAL_RANK``."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", ranks.local_rank)
    return dev


def sync(device: "torch.device") -> None:
    """Wait for the device's queued work, so that wall-clock timings measure it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)

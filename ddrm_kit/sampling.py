"""What the samplers' loops share: checking ``y``, the operator on the sampler's device, noise from
one or per-image generators, the timestep tensors and the progress bar."""

from __future__ import annotations

import copy
import weakref

import torch

from .errors import DDRMError

__all__ = ["codec_image_shape", "on_device", "randn", "step_range", "timestep_batches", "validate_y"]


def validate_y(y: torch.Tensor, shape: tuple[int, ...]) -> None:
    """One-line DDRMErrors unless ``y`` is a tensor of shape (B, *shape)."""
    if not torch.is_tensor(y):
        raise DDRMError(f"y must be a torch.Tensor of shape (B, {', '.join(map(str, shape))}), got {type(y).__name__}")
    if tuple(y.shape) == shape:
        raise DDRMError(f"y has shape {tuple(y.shape)} without a batch dimension: pass y.unsqueeze(0)")
    if y.dim() != len(shape) + 1 or tuple(y.shape[1:]) != shape or y.shape[0] < 1:
        raise DDRMError(
            f"y has shape {tuple(y.shape)} but this operator measures (B, {', '.join(map(str, shape))}): "
            "build the operator for the image size that produced y")


def codec_image_shape(op, y: torch.Tensor) -> tuple[int, ...]:
    """The codec's ``image_shape``, or that of ``y`` (the decoded batch) when it was built for any size."""
    if getattr(op, "image_shape", None) is not None:
        return tuple(int(d) for d in op.image_shape)
    if torch.is_tensor(y) and y.dim() == 3:
        raise DDRMError(f"y has shape {tuple(y.shape)} without a batch dimension: pass y.unsqueeze(0)")
    if not torch.is_tensor(y) or y.dim() != 4:
        got = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
        raise DDRMError(f"y must be the decoded image batch (B, C, H, W) for {type(op).__name__}, got {got}")
    return tuple(int(d) for d in y.shape[1:])


# Device copies of callers' operators: {operator: {device: (tensor states, copy)}}. Weak keys, so a
# copy lives no longer than its operator; the caller's operator itself is never moved.
_DEVICE_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _resolved(device: torch.device) -> torch.device:
    # "cuda" means the current CUDA device; tensors always report an index.
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _tensor_states(op: torch.nn.Module) -> list[tuple[weakref.ref, int]] | None:
    """Each parameter and buffer of ``op`` with its in-place version counter (None: not trackable)."""
    states = []
    for t in (*op.parameters(), *op.buffers()):
        try:
            states.append((weakref.ref(t), t._version))
        except RuntimeError:  # inference-mode tensors keep no version counter
            return None
    return states


def _unchanged(states: list[tuple[weakref.ref, int]], op: torch.nn.Module) -> bool:
    tensors = (*op.parameters(), *op.buffers())
    return len(states) == len(tensors) and all(
        ref() is t and v == t._version for (ref, v), t in zip(states, tensors))


def on_device(op, device: torch.device):
    """``op`` if its tensors live on ``device``, else a copy there, made once and reused while ``op``'s
    parameters and buffers are the same tensors, unmodified in place; ``op`` itself is never moved."""
    if not isinstance(op, torch.nn.Module):
        return op
    device = _resolved(device)
    if all(t.device == device for t in (*op.parameters(), *op.buffers())):
        _DEVICE_COPIES.get(op, {}).pop(device, None)  # the caller moved it there since: drop our copy
        return op
    per_op = _DEVICE_COPIES.setdefault(op, {})
    cached = per_op.get(device)
    if cached is not None and cached[0] is not None and _unchanged(cached[0], op):
        return cached[1]
    moved = copy.deepcopy(op).to(device)
    per_op[device] = (_tensor_states(op), moved)
    return moved


def randn(out: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """Fill ``out`` with N(0, 1) from one generator, or row by row from one generator per image
    (diffusers' convention), so that an image's noise does not depend on the batch it is in."""
    if isinstance(generator, (list, tuple)):
        for row, g in zip(out, generator):
            torch.randn(row.shape, generator=g, device=out.device, out=row)
        return out
    return torch.randn(out.shape, generator=generator, device=out.device, out=out)


def step_range(steps: int, progress: bool, desc: str):
    """``range(steps)`` with a tqdm bar labelled ``desc`` when ``progress``."""
    from tqdm.auto import tqdm

    return tqdm(range(steps), desc=desc, disable=not progress, leave=False)


def timestep_batches(ts: list[int], batch: int, device: torch.device) -> torch.Tensor:
    """Row ``i`` is ``ts[i]`` for each of ``batch`` images: all made (and copied to the device) once, before the loop."""
    return torch.tensor(ts, dtype=torch.long)[:, None].repeat(1, batch).to(device)

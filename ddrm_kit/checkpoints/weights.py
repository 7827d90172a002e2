"""Reading an original checkpoint file into a state dict, and taking its weights out one by one, strictly.

``.pt``/``.pth``/``.ckpt``/``.bin`` files are read with ``torch.load(weights_only=True, mmap=True)``:
no code in the file runs, and the tensors stay backed by the file until something copies them, so
converting a 2 GB network does not need a second 2 GB. ``.safetensors`` files are read with safetensors.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ddrm_kit.errors import CheckpointWeightsError, UnsupportedModelError

SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's state dict (a flat name -> tensor mapping; a DataParallel ``module.`` prefix is dropped)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UnsupportedModelError(
            f"{path.name}: unknown checkpoint file type {suffix or '(none)'}; expected one of {', '.join(SUFFIXES)}")
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(path)
        except (SafetensorError, OSError) as err:
            raise UnsupportedModelError(f"{path.name}: not a readable safetensors file ({err})") from err
    else:
        state = _torch_load(path)
    if not isinstance(state, Mapping) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UnsupportedModelError(
            f"{path.name} holds no plain state dict (a name -> tensor mapping); save the network's "
            "state_dict() alone, as the papers' released files do")
    names = list(state)
    if all(n.startswith("module.") for n in names):
        return {n[len("module."):]: state[n] for n in names}
    return dict(state)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        # Files written before torch 1.6 (the legacy format) cannot be memory-mapped: read them whole.
        if "mmap" not in str(err) and "zip" not in str(err):
            raise _unreadable(path, err) from err
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise _unreadable(path, err) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: BaseException) -> UnsupportedModelError:
    if "Unsupported global" in str(err):
        return UnsupportedModelError(
            f"{path.name} holds Python objects besides tensors, which ddrm does not unpickle (that could run "
            "code); save the network's state_dict() alone")
    return UnsupportedModelError(f"{path.name}: not a readable torch checkpoint file ({type(err).__name__})")


class Weights:
    """An original state dict from which a converter takes each weight once, by name and expected shape.

    Every problem is one line naming the file, the config and ``--model-config``: a missing weight,
    a weight of another shape, or (``finish``) weights the network does not use.
    """

    def __init__(self, state: dict[str, torch.Tensor], source: str, config: str) -> None:
        self._state = dict(state)
        self._source = source
        self._config = config

    def __contains__(self, name: str) -> bool:
        return name in self._state

    def _fail(self, what: str) -> CheckpointWeightsError:
        return CheckpointWeightsError(
            f"{self._source} does not fit the {self._config} network: {what}; pass the matching --model-config")

    def take(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """The weight ``name`` as float32, checked to have ``shape``."""
        if name not in self._state:
            raise self._fail(f"it lacks the weight {name}")
        tensor = self._state.pop(name)
        if tuple(tensor.shape) != tuple(shape):
            raise self._fail(f"{name} has shape {tuple(tensor.shape)}, the network needs {tuple(shape)}")
        if not tensor.is_floating_point():
            raise self._fail(f"{name} holds {tensor.dtype} values, not floats")
        # float16 files (guided-diffusion's use_fp16) widen exactly; float32 ones are not copied.
        return tensor.float()

    def finish(self) -> None:
        """Refuse any weight that was not taken: the network would silently ignore it."""
        if self._state:
            left = sorted(self._state)
            more = f" and {len(left) - 3} more" if len(left) > 3 else ""
            raise self._fail(f"it has {len(left)} weight(s) the network does not use ({', '.join(left[:3])}{more})")

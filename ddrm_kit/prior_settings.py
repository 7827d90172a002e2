"""A prior's sampler settings: ``ddrm_settings.json`` in its folder, keyed by task family, over the papers' values.

The file maps groups to settings, e.g.
``{"linear": {"steps": 20, "eta": 0.85, "eta_b": 1.0}, "deno": {"eta": 0.3}, "codec": {"t0": 300}}``.
A group is an operator kind (``linear``, ``codec``) or a registry family (``superres``, ``deblur``,
``inpaint``, ``deno``, ``color``, ``cs``, ``jpeg``, ``quant``, ``other``: ``operators.get_spec(name).family``).
An operator's settings are the papers' values for its kind, overridden by the file's kind group,
then by its family's group (the operator's ``family`` attribute, which ``operators.get_operator``
sets). Keys: ``steps`` (int >= 1), ``eta`` and ``eta_b`` (in [0, 1]), and for codec groups ``t0``
(the first timestep of DDRM-JPEG, in [1, T]). Top-level keys starting with ``_`` are notes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import DDRMError, PriorSettingsError

__all__ = ["SETTINGS_JSON", "PAPERS", "JPEG_T0_FRACTION", "check_settings", "read_settings", "sampler_settings",
           "settings_note"]

SETTINGS_JSON = "ddrm_settings.json"
#: The papers' values (Kawar et al. 2022 and 2022b) for priors without a settings file.
PAPERS: dict[str, dict[str, float | int]] = {
    "linear": {"steps": 20, "eta": 0.85, "eta_b": 1.0},
    "codec": {"steps": 20, "eta": 1.0, "eta_b": 0.4},
}
#: DDRM-JPEG's papers' start: t0 = 300 of T = 1000 timesteps.
JPEG_T0_FRACTION = 0.3
_UNIT_KEYS = ("eta", "eta_b")


def _groups() -> tuple[set[str], set[str]]:
    """Every group name the file may use, and those that may hold t0 (codec kinds and families)."""
    from operators.registry import KINDS, specs

    entries = specs()
    return set(KINDS) | {s.family for s in entries}, {"codec"} | {s.family for s in entries if s.kind == "codec"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(key: str, value: Any, num_train_timesteps: int) -> str | None:
    """What is wrong with one setting, or None."""
    if key in _UNIT_KEYS:
        return None if _number(value) and 0 <= value <= 1 else f"must be a number in [0, 1], got {value!r}"
    top = num_train_timesteps
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= top):
        return f"must be an integer in [1, {top}] (the prior's T), got {value!r}"
    return None


def check_settings(settings: Any, num_train_timesteps: int, where: str) -> dict[str, dict[str, float | int]]:
    """The validated settings (notes dropped); a one-line PriorSettingsError naming ``where`` otherwise."""
    fix = "see docs/design.md (Priors' sampler settings)"
    if not isinstance(settings, Mapping):
        raise PriorSettingsError(f"{where}: expected a JSON object of groups, got {type(settings).__name__}; {fix}")
    groups, codec_groups = _groups()
    out: dict[str, dict[str, float | int]] = {}
    for group, values in settings.items():
        if str(group).startswith("_"):
            continue
        if group not in groups:
            raise PriorSettingsError(
                f"{where}: unknown group {group!r}; use one of {', '.join(sorted(groups))}; {fix}")
        if not isinstance(values, Mapping):
            raise PriorSettingsError(f"{where}: {group!r} must be an object like {{\"eta\": 0.85}}; {fix}")
        allowed = ("steps", *_UNIT_KEYS, *(("t0",) if group in codec_groups else ()))
        for key, value in values.items():
            if key not in allowed:
                raise PriorSettingsError(
                    f"{where}: {group!r} has no setting {key!r} (allowed: {', '.join(allowed)}); {fix}")
            problem = _check_value(key, value, num_train_timesteps)
            if problem:
                raise PriorSettingsError(f"{where}: {group}.{key} {problem}; {fix}")
        out[group] = dict(values)
    return out


def read_settings(folder: Path, num_train_timesteps: int) -> dict[str, dict[str, float | int]]:
    """The folder's ``ddrm_settings.json``, validated; ``{}`` when the folder has none."""
    path = Path(folder) / SETTINGS_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PriorSettingsError(f"{path}: not readable JSON ({err}); fix the file or remove it for the papers' values") from err
    return check_settings(data, num_train_timesteps, str(path))


def _resolved(prior, op, given: dict[str, float | int | None]) -> dict[str, tuple[float | int, str]]:
    """Each setting ``ddrm()`` runs ``op`` with, and where it comes from (the one place of the precedence rule)."""
    from operators.codec import CodecOperator

    kind = "codec" if isinstance(op, CodecOperator) else "linear"
    if given["t0"] is not None and kind == "linear":
        raise DDRMError("t0 applies to codec (JPEG, quantisation) operators only: drop it for a linear operator")
    chosen: dict[str, tuple[float | int, str]] = {k: (v, "the papers'") for k, v in PAPERS[kind].items()}
    if kind == "codec":
        chosen["t0"] = (max(1, round(JPEG_T0_FRACTION * prior.num_train_timesteps)), "the papers'")
    for group in (kind, getattr(op, "family", None)):
        # a family shared by both kinds ("other") may hold t0, which only a codec uses
        chosen.update({k: (v, f"the prior's {SETTINGS_JSON}, {group}")
                       for k, v in prior.settings.get(group, {}).items() if k in chosen})
    chosen.update({k: (v, "given") for k, v in given.items() if v is not None})
    return chosen


def sampler_settings(prior, op, *, steps: int | None = None, eta: float | None = None, eta_b: float | None = None,
                     t0: int | None = None) -> dict[str, float | int]:
    """The settings ``ddrm()`` runs ``op`` with: the arguments given, else the prior's for the operator's family, else the papers'.

    Returns ``steps``, ``eta``, ``eta_b`` and, for a codec, ``t0``.
    """
    given = {"steps": steps, "eta": eta, "eta_b": eta_b, "t0": t0}
    return {key: value for key, (value, _) in _resolved(prior, op, given).items()}


def settings_note(prior, op, *, steps: int | None = None, eta: float | None = None, eta_b: float | None = None,
                  t0: int | None = None) -> str:
    """The settings of :func:`sampler_settings` and where each comes from, in one line for a log.

    E.g. ``steps 20, eta 1, eta_b 1 (eta: the prior's ddrm_settings.json, superres; steps, eta_b: the papers')``.
    """
    chosen = _resolved(prior, op, {"steps": steps, "eta": eta, "eta_b": eta_b, "t0": t0})
    sources: dict[str, list[str]] = {}
    for key, (_, source) in chosen.items():
        sources.setdefault(source, []).append(key)
    values = ", ".join(f"{key} {value:g}" for key, (value, _) in chosen.items())
    origins = "; ".join(", ".join(keys) + f": {source}" for source, keys in sources.items())
    return f"{values} ({origins})"

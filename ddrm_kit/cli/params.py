"""Operator keywords from ``-p KEY=VALUE``, ``--mask`` and ``--kernel``, checked against the registry entry.

Each ``-p`` value is read as the type of its parameter's default (the registry's ``Param``), so that a
wrong value names the operator and the parameter; ``--mask`` and ``--kernel`` are refused for an
operator that takes none. All of it runs before any image or model is loaded.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ddrm_kit.errors import DDRMError

if TYPE_CHECKING:
    from operators import OperatorSpec
    from operators.registry import Param

#: The parameters given as files, with their flags.
FILE_PARAMS = {"mask": "--mask", "kernel": "--kernel"}


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``-p KEY=VALUE`` pairs as text (typed later, against the operator's parameters)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise click.BadParameter(f"takes KEY=VALUE (e.g. -p sigma=3.0), got {item!r}", param_hint="'-p'")
        out[key.strip()] = raw.strip()
    return out


def operator_params(op_name: str, spec: "OperatorSpec | None", params: Sequence[str], mask: str | None,
                    kernel: str | None) -> dict[str, Any]:
    """The operator's keywords: typed ``-p`` values, and the --mask/--kernel files read (``spec`` None: a JPEG file)."""
    from ddrm_kit.imageio import load_kernel, load_mask

    raw = parse_params(params)
    files = {"mask": mask, "kernel": kernel}
    if spec is None:
        given = [f"-p {k}" for k in raw] + [FILE_PARAMS[k] for k, v in files.items() if v is not None]
        if given:
            raise DDRMError(f"--op {op_name} reads its tables from the file and takes no {', '.join(given)}")
        return {}
    for name, path in files.items():
        if path is not None and spec.param(name) is None:
            takers = _takers(name)
            raise DDRMError(f"{FILE_PARAMS[name]}: {op_name} takes no {name} ({', '.join(takers)} does)")
    out = {key: _typed(op_name, spec, key, text) for key, text in raw.items()}
    if mask is not None:
        out["mask"] = load_mask(mask)
    if kernel is not None:
        out["kernel"] = load_kernel(kernel)
    return out


def _takers(name: str) -> list[str]:
    import operators

    return [s.display for s in operators.specs() if s.param(name) is not None]


def _typed(op_name: str, spec: "OperatorSpec", key: str, text: str) -> Any:
    """``text`` as the type of parameter ``key``'s default; a one-line error naming both otherwise."""
    param = spec.param(key)
    if param is None:
        accepted = ", ".join(p.name for p in spec.params if p.name not in FILE_PARAMS) or "none"
        raise DDRMError(f"{op_name} has no parameter {key} (accepted: {accepted})")
    if key in FILE_PARAMS:
        raise DDRMError(f"{op_name}: give the {key} as {FILE_PARAMS[key]} FILE, not -p {key}=...")
    value = _literal(text)
    want = _expected(param)
    if want is None:  # no typed default (None or required): the factory checks it
        return value
    ok, converted = want[1](value)
    if not ok:
        raise DDRMError(f"{op_name}: parameter {key} must be {want[0]}, got {text!r}")
    return converted


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _expected(param: "Param") -> tuple[str, Any] | None:
    """(what the value must be, its converter returning (ok, value)) from the default's type."""
    default = param.default
    if isinstance(default, bool):
        return "True or False", lambda v: (isinstance(v, bool), v)
    if isinstance(default, int):
        return "an integer", _as_int
    if isinstance(default, float):
        return "a number", _as_float
    if isinstance(default, str):
        return "a string", lambda v: (True, v if isinstance(v, str) else str(v))
    if isinstance(default, tuple) and all(isinstance(d, (int, float)) for d in default):
        return f"{len(default)} numbers like {default!r}", lambda v: _as_numbers(v, len(default))
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_int(v: Any) -> tuple[bool, Any]:
    if _is_number(v) and float(v).is_integer():
        return True, int(v)
    return False, v


def _as_float(v: Any) -> tuple[bool, Any]:
    return (True, float(v)) if _is_number(v) else (False, v)


def _as_numbers(v: Any, n: int) -> tuple[bool, Any]:
    if isinstance(v, (tuple, list)) and len(v) == n and all(_is_number(e) for e in v):
        return True, tuple(float(e) for e in v)
    return False, v


def check_fits(op_name: str, spec: "OperatorSpec", params: dict[str, Any], image_shape: Sequence[int],
               src: Path) -> None:
    """Refuse a mask, kernel or ``kernel_size`` that does not fit images of ``image_shape`` (C, H, W)."""
    _, h, w = image_shape
    m = params.get("mask")
    if m is not None and tuple(m.shape) != (h, w):
        raise DDRMError(f"the mask is {m.shape[1]}x{m.shape[0]} but {src.name} is {w}x{h}: "
                        "give a mask of the image's size")
    k = params.get("kernel")
    if k is not None and (k.shape[0] > h or k.shape[1] > w):
        raise DDRMError(f"the kernel is {k.shape[1]}x{k.shape[0]}, larger than {src.name} ({w}x{h})")
    taps = spec.param("kernel_size")
    if taps is not None:
        size = params.get("kernel_size", taps.default)
        if size > min(h, w):
            raise DDRMError(f"{op_name}: its kernel ({size} taps) is wider than {src.name} ({w}x{h}): "
                            f"use -p kernel_size={min(h, w)} or less")

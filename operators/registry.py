"""Name -> operator registry (``get_operator``, ``available``, ``specs``), without importing torch.

An entry carries everything a tool needs to know about an operator before building it: what the
observation ``y`` is, the super-resolution scale, whether it is linear (an SVD operator) or a
codec, and each parameter with its default and help. The factory is named as ``"module:function"``
and imported only when the operator is built, so ``ddrm ops`` lists the catalogue without torch.
The built-in entries are declared in :mod:`operators.catalog`; any code can add its own::

    from operators.registry import Param, register

    @register(r"testop(\\d+)", pattern=True, display="testop<k>", examples=("testop3",),
              params=(Param("scale", 1.0, "multiplier"),), description="k * scale * identity")
    def _testop(image_shape, k, scale=1.0):
        ...

The factory is called as ``factory(image_shape, *pattern_groups, **params)``; unknown keywords and
missing required ones are refused before it runs. Exact names win over patterns.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import OperatorError, check_image_shape

#: What ``y`` is: an image of ``measurement_shape`` ("image"), H applied to a full-size damaged image
#: that a file can hold ("full_image", e.g. inpainting), or a plain vector ("vector").
OBSERVATION_KINDS = ("image", "full_image", "vector")
#: "linear": an ``SVDOperator`` (DDRM); "codec": a ``CodecOperator`` (DDRM-JPEG).
KINDS = ("linear", "codec")


class _Required:
    def __repr__(self) -> str:
        return "required"


#: The default of a parameter that has none (the user must give it).
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """One keyword of an operator's factory: its name, default (or ``REQUIRED``) and help."""

    name: str
    default: Any
    help: str

    def describe(self) -> str:
        return f"{self.name}={self.default!r}: {self.help}" if self.default is not REQUIRED else f"{self.name} (required): {self.help}"


@dataclass(frozen=True)
class OperatorSpec:
    """One registry entry: how to build the operator and what to know about it without building it."""

    name: str  # exact name, or the regular expression of a pattern entry
    factory: str | Callable[..., Any]  # "module:function", imported when first built, or a callable
    description: str
    params: tuple[Param, ...] = ()
    kind: str = "linear"
    observation_kind: str = "image"
    input: str = ""  # what `ddrm solve` takes as INPUT
    scale: int | None = 1  # how many times smaller y is than x per side; None: the first pattern group (sr<k>)
    image_channels: int | None = None  # channels of x when they differ from y's (color: 3)
    pattern: re.Pattern[str] | None = None
    display: str = ""  # e.g. "inp_random<pct>" for a pattern; the name otherwise
    examples: tuple[str, ...] = ()  # concrete names listed by available()
    family: str = "other"  # task family (superres, deblur, inpaint, deno, color, ...): keys a prior's sampler settings

    def names(self) -> tuple[str, ...]:
        """The concrete names this entry contributes to :func:`available`."""
        return self.examples if self.pattern is not None else (self.name,)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def groups(self, name: str) -> tuple[str, ...]:
        """The pattern groups of a concrete ``name`` (``()`` for an exact entry)."""
        if self.pattern is None:
            return ()
        match = self.pattern.fullmatch(name)
        if match is None:
            raise OperatorError(f"{name!r} is not a name of the {self.display} operator")
        return match.groups()

    def scale_of(self, name: str) -> int:
        """The factor by which ``y`` is smaller than ``x`` (super-resolution), 1 otherwise."""
        if self.scale is not None:
            return self.scale
        groups = self.groups(name)
        return int(groups[0]) if groups else 1

    def image_shape_for(self, name: str, observation_shape: Sequence[int]) -> tuple[int, int, int]:
        """The clean image's ``(C, H, W)`` behind an observation image of ``observation_shape``."""
        c, h, w = (int(d) for d in observation_shape)
        s = self.scale_of(name)
        return (self.image_channels or c, h * s, w * s)

    def load_factory(self) -> Callable[..., Any]:
        if callable(self.factory):
            return self.factory
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


_EXACT: dict[str, OperatorSpec] = {}
_PATTERNS: list[OperatorSpec] = []


def _as_params(params: Sequence[Param] | Mapping[str, str] | None) -> tuple[Param, ...]:
    if params is None:
        return ()
    if isinstance(params, Mapping):  # {name: help}: the default is whatever the factory says
        return tuple(Param(k, None, v) for k, v in params.items())
    return tuple(params)


def register(
    name: str,
    factory: str | Callable[..., Any] | None = None,
    *,
    description: str,
    params: Sequence[Param] | Mapping[str, str] | None = None,
    kind: str = "linear",
    observation_kind: str = "image",
    input: str = "",
    scale: int | None = 1,
    image_channels: int | None = None,
    pattern: bool = False,
    display: str | None = None,
    examples: Sequence[str] = (),
    family: str = "other",
):
    """Register ``factory`` under ``name`` (or a full-match regex if ``pattern``); usable as a decorator."""
    if observation_kind not in OBSERVATION_KINDS:
        raise ValueError(f"observation_kind must be one of {OBSERVATION_KINDS}, got {observation_kind!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def add(fn: str | Callable[..., Any]) -> str | Callable[..., Any]:
        regex = re.compile(name) if pattern else None
        if regex is not None:
            bad = [e for e in examples if not regex.fullmatch(e)]
            if bad or not examples:
                raise ValueError(f"pattern {name!r} needs examples that match it (bad: {bad})")
        spec = OperatorSpec(
            name=name, factory=fn, description=description, params=_as_params(params), kind=kind,
            observation_kind=observation_kind, input=input, scale=scale, image_channels=image_channels,
            pattern=regex, display=display or name, examples=tuple(examples), family=family,
        )
        if regex is None:
            if name in _EXACT:
                raise ValueError(f"operator name {name!r} is already registered")
            _EXACT[name] = spec
        else:
            if any(p.name == name for p in _PATTERNS):
                raise ValueError(f"operator pattern {name!r} is already registered")
            _PATTERNS.append(spec)
        return fn

    return add(factory) if factory is not None else add


def specs() -> list[OperatorSpec]:
    """Every registry entry, in registration order (exact names, then patterns)."""
    return list(_EXACT.values()) + list(_PATTERNS)


def available() -> list[str]:
    """Concrete operator names (pattern entries contribute their examples), sorted."""
    return sorted({n for spec in specs() for n in spec.names()})


def get_spec(name: str) -> OperatorSpec:
    """The registry entry that ``name`` resolves to (raises OperatorError with close names)."""
    spec = _EXACT.get(name)
    if spec is not None:
        return spec
    for spec in _PATTERNS:
        if spec.pattern.fullmatch(name):  # type: ignore[union-attr]
            return spec
    candidates = available() + [s.display for s in _PATTERNS]
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise OperatorError(f"unknown operator {name!r}; {hint}run `ddrm ops` or operators.available() for the list")


def get_operator(name: str, image_shape: Sequence[int], **params: Any):
    """Build operator ``name`` for images of shape ``(C, H, W)``; ``params`` are its keywords.

    The operator's ``family`` attribute is set to its entry's, so the sampler can pick a prior's
    settings for the task.
    """
    spec = get_spec(name)
    shape = check_image_shape(image_shape)
    accepted = {p.name for p in spec.params}
    unknown = sorted(set(params) - accepted)
    if unknown:
        listed = ", ".join(p.name for p in spec.params) or "none"
        raise OperatorError(f"operator {name!r} has no parameter {', '.join(unknown)} (accepted: {listed})")
    missing = [p for p in spec.params if p.default is REQUIRED and params.get(p.name) is None]
    if missing:
        raise OperatorError(f"operator {name!r} needs {missing[0].name}=...: {missing[0].help}")
    op = spec.load_factory()(shape, *spec.groups(name), **params)
    op.family = spec.family
    return op

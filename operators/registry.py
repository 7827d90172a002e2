"""Name -> operator registry (``get_operator``, ``available``, ``specs``).

Any module adds names here, either with an exact name or with a regular-expression pattern
whose groups are passed to the factory as positional strings::

    from .registry import register

    @register("deno", description="denoising (H = I)")
    def _deno(image_shape, **params):
        return Identity(image_shape, **params)

    @register(r"jpeg(\\d+)", pattern=True, display="jpeg<QF>", examples=("jpeg10", "jpeg75"),
              params={"subsampling": "'4:2:0'"}, observation_kind="image",
              description="JPEG compression at quality QF")
    def _jpeg(image_shape, qf, **params):
        return JPEG(quality=int(qf), image_shape=image_shape, **params)

The factory is called as ``factory(image_shape, *pattern_groups, **params)``; ``params`` maps each
accepted keyword to a short "default / meaning" text (shown by ``ddrm ops``) and unknown keywords
are rejected before the factory runs. Exact names win over patterns.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import OperatorError, check_image_shape

OBSERVATION_KINDS = ("image", "full_image", "vector")


@dataclass(frozen=True)
class OperatorSpec:
    """One registry entry: how to build the operator and what to show about it."""

    name: str  # exact name, or the regular expression of a pattern entry
    factory: Callable[..., Any]
    description: str
    params: dict[str, str] = field(default_factory=dict)
    observation_kind: str = "image"
    pattern: re.Pattern[str] | None = None
    display: str = ""  # e.g. "inp_random<pct>" for a pattern; the name otherwise
    examples: tuple[str, ...] = ()  # concrete names listed by available()

    def names(self) -> tuple[str, ...]:
        """The concrete names this entry contributes to :func:`available`."""
        return self.examples if self.pattern is not None else (self.name,)


_EXACT: dict[str, OperatorSpec] = {}
_PATTERNS: list[OperatorSpec] = []


def register(
    name: str,
    factory: Callable[..., Any] | None = None,
    *,
    description: str,
    params: dict[str, str] | None = None,
    observation_kind: str = "image",
    pattern: bool = False,
    display: str | None = None,
    examples: Sequence[str] = (),
):
    """Register ``factory`` under ``name`` (or a full-match regex if ``pattern``); usable as a decorator."""
    if observation_kind not in OBSERVATION_KINDS:
        raise ValueError(f"observation_kind must be one of {OBSERVATION_KINDS}, got {observation_kind!r}")

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        regex = re.compile(name) if pattern else None
        if regex is not None:
            bad = [e for e in examples if not regex.fullmatch(e)]
            if bad or not examples:
                raise ValueError(f"pattern {name!r} needs examples that match it (bad: {bad})")
        spec = OperatorSpec(
            name=name,
            factory=fn,
            description=description,
            params=dict(params or {}),
            observation_kind=observation_kind,
            pattern=regex,
            display=display or name,
            examples=tuple(examples),
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


def _lookup(name: str) -> tuple[OperatorSpec, tuple[str, ...]]:
    spec = _EXACT.get(name)
    if spec is not None:
        return spec, ()
    for spec in _PATTERNS:
        match = spec.pattern.fullmatch(name)  # type: ignore[union-attr]
        if match is not None:
            return spec, match.groups()
    candidates = available() + [s.display for s in _PATTERNS]
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise OperatorError(f"unknown operator {name!r}; {hint}run `ddrm ops` or operators.available() for the list")


def get_spec(name: str) -> OperatorSpec:
    """The registry entry that ``name`` resolves to (raises OperatorError with close names)."""
    return _lookup(name)[0]


def get_operator(name: str, image_shape: Sequence[int], **params: Any):
    """Build operator ``name`` for images of shape ``(C, H, W)``; ``params`` are its keywords."""
    spec, groups = _lookup(name)
    shape = check_image_shape(image_shape)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        accepted = ", ".join(spec.params) or "none"
        raise OperatorError(f"operator {name!r} has no parameter {', '.join(unknown)} (accepted: {accepted})")
    return spec.factory(shape, *groups, **params)

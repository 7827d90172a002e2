"""The operator registry: each entry's declared metadata against the operator it builds, and the registry API."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

import operators
from operators import REQUIRED, OperatorError, Param, get_operator, get_spec, registry
from operators.codec import CodecOperator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest.py)

SPECS = operators.specs()
SHAPE = (3, 16, 32)  # divisible by every SR factor; H * W a power of two (cs<k>)
SHAPES = {"inp_lolcat": (3, 256, 256), "inp_lorem": (3, 256, 256)}  # the packaged masks' size


def _required(name: str, shape: tuple[int, int, int]) -> dict:
    """Values for the required parameters of ``name``."""
    values = {"mask": np.indices(shape[1:]).sum(0) % 3 != 0, "kernel": np.array([[0.2, 0.5], [0.1, 0.2]])}
    return {p.name: values[p.name] for p in get_spec(name).params if p.default is REQUIRED}


def _build(name: str):
    shape = SHAPES.get(name, SHAPE)
    return get_operator(name, shape, **_required(name, shape)), shape


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.display)
def test_declared_params_match_the_factory_signature(spec) -> None:
    """Names (in any order), defaults and REQUIRED (no default) agree with the factory's keywords."""
    signature = list(inspect.signature(spec.load_factory()).parameters.values())
    groups = spec.pattern.groups if spec.pattern is not None else 0
    assert signature[0].name == "image_shape"
    assert all(p.default is inspect.Parameter.empty for p in signature[: 1 + groups])
    keywords = {p.name: p.default for p in signature[1 + groups :]}
    assert {p.name for p in spec.params} == set(keywords), spec.display
    for p in spec.params:
        if p.default is REQUIRED:
            assert keywords[p.name] is inspect.Parameter.empty, f"{spec.display}: {p.name} has a default"
        else:
            assert keywords[p.name] == p.default, f"{spec.display}: {p.name}"
        assert p.help


@pytest.mark.parametrize("name", operators.available())
def test_every_name_builds_and_matches_its_metadata(name: str) -> None:
    spec = get_spec(name)
    op, shape = _build(name)
    assert tuple(op.image_shape) == shape
    if spec.kind == "codec":
        assert isinstance(op, CodecOperator) and not isinstance(op, operators.SVDOperator)
        # a codec's y is the decoded image, of the image's own size
        assert spec.observation_kind == "image" and spec.scale_of(name) == 1
        assert spec.image_shape_for(name, shape) == shape
        return
    assert spec.kind == "linear" and isinstance(op, operators.SVDOperator)
    assert op.observation_kind == spec.observation_kind
    if spec.observation_kind == "image":
        c, h, w = op.image_shape
        _, mh, mw = op.measurement_shape
        assert (h, w) == (mh * spec.scale_of(name), mw * spec.scale_of(name))
        assert spec.image_shape_for(name, op.measurement_shape) == op.image_shape
        assert (spec.image_channels or op.measurement_shape[0]) == c
    else:
        assert spec.scale_of(name) == 1


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.display)
def test_unknown_and_missing_parameters_are_one_line_errors(spec) -> None:
    name = spec.names()[0]
    shape = SHAPES.get(name, SHAPE)
    with pytest.raises(OperatorError, match=r"has no parameter no_such_param \(accepted: ") as err:
        get_operator(name, shape, no_such_param=1, **_required(name, shape))
    assert "\n" not in str(err.value)
    for p in spec.params:
        if p.default is REQUIRED:
            given = {k: v for k, v in _required(name, shape).items() if k != p.name}
            with pytest.raises(OperatorError, match=rf"needs {p.name}=") as err:
                get_operator(name, shape, **given)
            assert "\n" not in str(err.value)


def test_scale_and_image_shape_for() -> None:
    assert get_spec("sr8").scale_of("sr8") == 8 and get_spec("sr_bicubic4").scale_of("sr_bicubic4") == 4
    assert get_spec("sr4").image_shape_for("sr4", (3, 5, 7)) == (3, 20, 28)
    assert get_spec("color").image_shape_for("color", (1, 5, 7)) == (3, 5, 7)
    assert get_spec("jpeg10").scale_of("jpeg10") == 1 and get_spec("cs4").scale_of("cs4") == 1
    for spec in SPECS:
        assert spec.description and spec.input and spec.kind in registry.KINDS
        assert spec.observation_kind in registry.OBSERVATION_KINDS


def test_listing_the_registry_does_not_import_torch() -> None:
    code = (
        "import sys, operators; names = operators.available(); spec = operators.get_spec('sr4'); "
        "assert 'sr4' in names and spec.scale_of('sr4') == 4; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_lists_close_names() -> None:
    with pytest.raises(OperatorError, match="did you mean sr4") as err:
        get_operator("sr_4x", (3, 8, 8))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="available"):
        get_operator("nothing_like_it", (3, 8, 8))


def test_register_exact_and_pattern_names() -> None:
    """Other modules add names through the same decorator, with params as a dict or as Param entries."""

    @registry.register(r"testop(\d+)", pattern=True, display="testop<k>", examples=("testop3",),
                       params={"scale": "1.0"}, description="test only")
    def _factory(image_shape, k, scale=1.0):
        return operators.DenseSVD(float(k) * scale * torch.eye(int(np.prod(image_shape))), image_shape)

    registry.register("testexact", lambda image_shape, gain: _factory(image_shape, "1", gain),
                      params=(Param("gain", REQUIRED, "multiplier"),), description="test only", input="a test")
    try:
        assert "testop3" in operators.available() and "testexact" in operators.available()
        op = get_operator("testop7", (1, 2, 2), scale=0.5)
        torch.testing.assert_close(op.singulars(), torch.full((4,), 3.5, dtype=torch.float64))
        assert get_spec("testop12").display == "testop<k>" and get_spec("testop12").scale_of("testop12") == 1
        torch.testing.assert_close(get_operator("testexact", (1, 2, 2), gain=2.0).singulars(),
                                   torch.full((4,), 2.0, dtype=torch.float64))
        with pytest.raises(OperatorError, match="testexact.*needs gain=...: multiplier"):
            get_operator("testexact", (1, 2, 2))
        with pytest.raises(ValueError, match="already registered"):
            registry.register(r"testop(\d+)", _factory, pattern=True, examples=("testop1",), description="again")
        with pytest.raises(ValueError, match="already registered"):
            registry.register("testexact", _factory, description="again")
        with pytest.raises(ValueError, match="examples that match"):
            registry.register(r"other(\d+)", _factory, pattern=True, examples=("nomatch",), description="bad")
        with pytest.raises(ValueError, match="kind must be"):
            registry.register("badkind", _factory, kind="nonlinear", description="bad")
    finally:
        registry._PATTERNS[:] = [s for s in registry._PATTERNS if s.name != r"testop(\d+)"]
        registry._EXACT.pop("testexact", None)
    assert "testop3" not in operators.available() and "testexact" not in operators.available()

"""Registry-driven checks of every operator's SVD (operators.testing), plus an explicit reference per family.

The registry itself (names, metadata, parameters) is tested in tests/test_registry.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import operators
from operators import OperatorError, get_operator
from operators.testing import check_svd_protocol

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, loaded CPU


# Small sizes that each family can take; default (3, 9, 7): odd, non-square, RGB.
SHAPES = {
    "sr2": (3, 6, 10),
    "sr4": (1, 8, 12),
    "sr8": (1, 16, 8),
    "sr16": (1, 16, 32),
    "sr_bicubic4": (1, 12, 16),
    "sr_bicubic8": (1, 16, 24),
    "sr_bicubic16": (1, 16, 32),
    "inp_lolcat": (1, 256, 256),
    "inp_lorem": (1, 256, 256),
    "cs2": (3, 4, 8),
    "cs4": (1, 16, 16),
    "cs8": (3, 8, 8),
}
DEFAULT_SHAPE = (3, 9, 7)


def _params(name: str, shape: tuple[int, int, int]) -> dict:
    if name == "inp_mask":
        return {"mask": (torch.arange(shape[1] * shape[2]).reshape(shape[1:]) % 3 != 1).numpy()}
    if name == "deblur":
        return {"kernel": np.array([[0.1, 0.3, 0.05, 0.1], [0.05, 0.0, 0.25, 0.15]])}
    return {}


def _build(name: str, dtype=torch.float64):
    shape = SHAPES.get(name, DEFAULT_SHAPE)
    return get_operator(name, shape, **_params(name, shape)).to(dtype), shape


def _dense(op) -> torch.Tensor:
    """The matrix of ``H`` (rows = measurement entries), built by applying H to basis vectors."""
    eye = torch.eye(op.n, dtype=torch.float64).reshape(op.n, *op.image_shape)
    return op.H(eye).reshape(op.n, -1).T


# Non-linear codec operators (jpeg<QF>, quant<bits>) have no SVD: tests/test_jpeg.py covers them.
NAMES = [n for n in operators.available() if operators.get_spec(n).kind == "linear"]


@pytest.mark.parametrize("name", NAMES)
def test_svd_protocol(name: str) -> None:
    op = _build(name)[0]
    errors = check_svd_protocol(op)
    assert ("singulars() = svdvals(H)" in errors) == (op.n <= 1024)  # dense checks on all but the 256x256 masks


def test_check_svd_protocol_names_the_broken_identity() -> None:
    """The public checker fails on a wrong operator with one line naming the identity and its error."""
    import doctest

    import operators.testing

    assert doctest.testmod(operators.testing, raise_on_error=True).attempted >= 5

    class WrongSingulars(operators.Identity):
        """H is the identity but claims singular values 2: H(x) != U(s Vt(x))."""

        def __init__(self, shape) -> None:
            super().__init__(shape)
            self._set_singulars(torch.full((self.n,), 2.0, dtype=torch.float64))

        def _H(self, x: torch.Tensor) -> torch.Tensor:
            return x

    one_line = r"^WrongSingulars: H\(x\) = U\(s \* Vt\(x\)\[:m\]\) fails: max error [\d.e+-]+ > tolerance [\d.e+-]+$"
    with pytest.raises(AssertionError, match=one_line):
        check_svd_protocol(WrongSingulars((1, 3, 2)))
    # a float32 operator passes at float32 tolerances
    assert max(check_svd_protocol(get_operator("sr2", (3, 4, 6)).float(), atol=1e-5, rtol=1e-5,
                                  dtype=torch.float32).values()) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_float32_batch_and_dtype(name: str) -> None:
    op, shape = _build(name, torch.float32)
    x = torch.randn(3, *shape)
    hx = op.H(x)
    assert hx.dtype == torch.float32
    # float64 inputs run in float64 even on a float32 operator (buffers converted once, cached)
    h64 = op.H(x.double())
    assert h64.dtype == torch.float64
    torch.testing.assert_close(h64.float(), hx, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(op.H(x[1:2]), hx[1:2], atol=1e-5, rtol=1e-4)
    assert op.V(op.Vt(x)).dtype == torch.float32


# ---- explicit references per family ------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_sr_is_avg_pool(k: int) -> None:
    shape = (3, 2 * k, 3 * k)
    x = torch.randn(2, *shape, dtype=torch.float64)
    op = get_operator(f"sr{k}", shape)
    torch.testing.assert_close(op.H(x), F.avg_pool2d(x, k))
    assert op.observation_kind == "image" and op.measurement_shape == (3, 2, 3)


def test_inpainting_gathers_kept_pixels() -> None:
    shape = (3, 9, 7)
    mask = torch.rand(9, 7, generator=torch.Generator().manual_seed(1)) > 0.4
    x = torch.randn(2, *shape, dtype=torch.float64)
    op = get_operator("inp_mask", shape, mask=mask)
    torch.testing.assert_close(op.H(x), x[:, :, mask].reshape(2, -1))
    assert op.observation_kind == "full_image"
    # 0/1 integer masks are the same as boolean ones
    torch.testing.assert_close(get_operator("inp_mask", shape, mask=mask.int().numpy()).H(x), op.H(x))


def test_inpainting_masks() -> None:
    op = get_operator("inp_random90", (3, 20, 10), seed=3)
    assert op.m == 3 * 20  # 10% of 200 pixels kept, per channel
    again = get_operator("inp_random90", (3, 20, 10), seed=3)
    assert torch.equal(op.mask, again.mask)
    assert not torch.equal(op.mask, get_operator("inp_random90", (3, 20, 10), seed=4).mask)
    box = get_operator("inp_box", (1, 256, 256)).mask
    assert (~box).sum() == 128 * 128 and not box[64:192, 64:192].any() and box[63, 63]
    assert (~get_operator("inp_box", (3, 9, 7), size=3).mask).sum() == 9
    for name, kept in (("inp_lolcat", 55752), ("inp_lorem", 56371)):  # pixels the packaged masks keep
        m = get_operator(name, (3, 256, 256)).mask
        assert m.shape == (256, 256) and m.dtype == torch.bool and int(m.sum()) == kept


def test_color_is_grey_mean() -> None:
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    op = get_operator("color", (3, 9, 7))
    torch.testing.assert_close(op.H(x), x.mean(dim=1, keepdim=True))
    torch.testing.assert_close(op.singulars(), torch.full((63,), 3**-0.5, dtype=torch.float64))
    # V's first direction is the normalised [1,1,1]; the other two are chroma (zero-sum) directions
    v = op.V(torch.eye(3 * 63, dtype=torch.float64)[[0, 63, 126]]).reshape(3, 3, 63)[:, :, 0]
    torch.testing.assert_close(v[0], torch.full((3,), 3**-0.5, dtype=torch.float64))
    torch.testing.assert_close(v[1:].sum(dim=1), torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("k", [4, 8, 16])
def test_sr_bicubic_matches_pil_interior(k: int) -> None:
    from PIL import Image

    h, w = 6 * k, 7 * k
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    ref = Image.fromarray(x[0, 0].float().numpy(), mode="F").resize((w // k, h // k), Image.BICUBIC)
    ours = get_operator(f"sr_bicubic{k}", (1, h, w)).H(x)[0, 0]
    # PIL drops out-of-range taps, we reflect them: compare outputs whose taps (±2k) stay inside
    ref = torch.from_numpy(np.array(ref)).double()
    torch.testing.assert_close(ours[2:-2, 2:-2], ref[2:-2, 2:-2], atol=1e-5, rtol=0)


def _shift_invariant_interior(op, shape: tuple[int, int, int]) -> None:
    """A centred bump shifted by (1, 2) gives the shifted blurred bump (support away from the borders)."""
    x = torch.zeros(1, *shape, dtype=torch.float64)
    top, left = shape[1] // 2 - 1, shape[2] // 2 - 2
    x[..., top : top + 2, left : left + 3] = torch.randn(shape[0], 2, 3, dtype=torch.float64)
    shifted = torch.roll(x, (1, 2), dims=(2, 3))
    torch.testing.assert_close(op.H(shifted), torch.roll(op.H(x), (1, 2), dims=(2, 3)))


def _centrosymmetric(a: np.ndarray) -> np.ndarray:
    return a + a[::-1, ::-1]


@pytest.mark.parametrize(
    ("a_h", "a_w"),
    [
        (np.random.default_rng(0).random((4, 6)), np.random.default_rng(1).random((3, 7))),  # no symmetry
        (np.eye(5), np.full((2, 8), 0.125)),  # centrosymmetric, odd/even sizes: folded blocks
        (_centrosymmetric(np.random.default_rng(2).random((3, 7))), np.ones((1, 4)) / 4),
    ],
)
def test_separable_svd_any_factors(a_h, a_w) -> None:
    """Folded (centrosymmetric) and plain 1-D factors, odd and even sizes: y = A_h X A_wᵀ exactly."""
    shape = (2, a_h.shape[1], a_w.shape[1])
    op = operators.SeparableSVD(shape, a_h, a_w)
    check_svd_protocol(op)
    x = torch.randn(3, *shape, dtype=torch.float64)
    torch.testing.assert_close(op.H(x), torch.from_numpy(a_h) @ x @ torch.from_numpy(a_w).T)
    assert op.measurement_shape == (2, a_h.shape[0], a_w.shape[0])


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name", ["deblur_uni", "deblur_gauss", "deblur_aniso"])
def test_separable_blur_is_conv2d(name: str) -> None:
    shape = (3, 21, 19)
    op = get_operator(name, shape)
    k2d = torch.outer(torch.from_numpy(op.kernel_h), torch.from_numpy(op.kernel_w))
    assert len(op.kernel_h) == (5 if name == "deblur_gauss" else 9)  # every tap kept
    x = torch.randn(2, *shape, dtype=torch.float64)
    ref = F.conv2d(x, k2d.expand(3, 1, *k2d.shape), padding="same", groups=3)
    torch.testing.assert_close(op.H(x), ref)
    _shift_invariant_interior(op, shape)
    even = get_operator(name, (1, 10, 9), kernel_size=4)  # even taps: not centrosymmetric, one dense block
    k2d = torch.outer(torch.from_numpy(even.kernel_h), torch.from_numpy(even.kernel_w))
    xe = torch.randn(2, 1, 10, 9, dtype=torch.float64)
    torch.testing.assert_close(even.H(xe), F.conv2d(xe, k2d[None, None], padding="same"))
    s = op.singulars()
    assert bool((s[:-1] >= s[1:]).all()) and op.m == op.n  # sorted: measured entries first


def test_circular_deblur_is_conv2d() -> None:
    shape = (2, 11, 8)
    kernel = torch.rand(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    op = get_operator("deblur", shape, kernel=kernel)
    x = torch.randn(2, *shape, dtype=torch.float64)
    flipped = kernel.flip(0, 1).expand(2, 1, 3, 4)  # conv2d correlates; the operator convolves
    # interior: no wrap-around, equals an unpadded convolution
    torch.testing.assert_close(op.H(x)[:, :, 1:-1, 1:-2], F.conv2d(x, flipped, groups=2))
    # everywhere: circular padding, and exact shift invariance of the circulant
    padded = F.pad(x, (1, 2, 1, 1), mode="circular")
    torch.testing.assert_close(op.H(x), F.conv2d(padded, flipped, groups=2))
    torch.testing.assert_close(op.H(torch.roll(x, (3, -2), (2, 3))), torch.roll(op.H(x), (3, -2), (2, 3)))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 7, 10), (2, 6, 9), (1, 1, 5), (1, 2, 2), (1, 6, 1)])
def test_circular_deblur_any_size(shape) -> None:
    """Even/odd heights and widths exercise every DC/Nyquist case of the real Fourier basis."""
    kernel = torch.rand(3, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    op = get_operator("deblur", shape, kernel=kernel)
    z = torch.randn(2, op.n, dtype=torch.float64)
    torch.testing.assert_close(op.Vt(op.V(z)), z)
    torch.testing.assert_close(op.Ut(op.U(z)), z)
    dense = _dense(op)
    torch.testing.assert_close(op.singulars().sort(descending=True).values, torch.linalg.svdvals(dense))
    basis = torch.eye(op.n, dtype=torch.float64).reshape(op.n, *shape)
    torch.testing.assert_close(op.U(op.singulars() * op.Vt(basis)).reshape(op.n, -1).T, dense)


def test_cs_rows_are_permuted_hadamard() -> None:
    from scipy.linalg import hadamard

    shape, k = (1, 8, 16), 4
    op = get_operator(f"cs{k}", shape, seed=5)
    rows = hadamard(128)[: 128 // k] / np.sqrt(128)
    dense = _dense(op).numpy()
    perm = op._perm.numpy()
    expected = np.zeros_like(dense)
    expected[:, perm] = rows  # H x = W[:m] (x[perm])
    np.testing.assert_allclose(dense, expected, atol=1e-12)
    assert op.observation_kind == "vector" and op.measurement_shape == (32,)
    assert not torch.equal(op._perm, get_operator(f"cs{k}", shape, seed=6)._perm)


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "params", "match"),
    [
        ("sr4", (3, 10, 8), {}, "divisible by 4"),
        ("sr2", (3, 8), {}, r"\(C, H, W\)"),
        ("color", (1, 8, 8), {}, "3-channel"),
        ("inp_lolcat", (3, 128, 128), {}, "256x256"),
        ("inp_mask", (3, 8, 8), {"mask": np.ones((8, 9))}, "8x8 mask"),
        ("inp_mask", (3, 8, 8), {"mask": np.full((8, 8), 0.5)}, "0 and 1"),
        ("inp_mask", (3, 8, 8), {}, "needs mask"),
        ("inp_mask", (3, 2, 2), {"mask": [["a", "b"], ["c", "d"]]}, "0 and 1"),
        ("inp_box", (3, 8, 8), {"size": 9}, "does not fit"),
        ("sr2", (3, 8, 8), {"seed": 1}, "no parameter seed"),
        ("sr_bicubic4", (3, 10, 8), {}, "divisible by 4"),
        ("cs4", (3, 12, 8), {}, "power of two"),
        ("cs3", (3, 8, 8), {}, "power of two"),
        ("deblur", (3, 8, 8), {}, "needs kernel"),
        ("deblur", (3, 8, 8), {"kernel": np.ones(3)}, "2-D"),
        ("deblur_gauss", (3, 8, 8), {"sigma": 0.0}, "sigma > 0"),
    ],
)
def test_clean_errors(name: str, shape, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_operator(name, shape, **params)


def test_wrong_input_shape_is_a_clean_error() -> None:
    op = get_operator("sr2", (3, 8, 8))
    with pytest.raises(OperatorError, match=r"\(B, 3, 8, 8\)"):
        op.H(torch.zeros(1, 3, 8, 6))


def test_buffers_follow_to() -> None:
    op = get_operator("inp_box", (3, 9, 7)).to(torch.float32)
    assert op.singulars().dtype == torch.float32
    assert {b for b, _ in op.named_buffers()} >= {"_singulars", "_perm"}


def test_dense_svd_and_zero_tolerance() -> None:
    a = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1e-12, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    op = operators.DenseSVD(a, (1, 2, 2))
    assert op.singulars().tolist() == [1.0, 0.0, 0.0]  # 1e-12 <= tolerance -> exact zero
    y = torch.ones(1, 3, dtype=torch.float64)
    assert bool(torch.isfinite(op.H_pinv(y)).all())
    torch.testing.assert_close(op.H_pinv(y).flatten(), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    with pytest.raises(OperatorError, match="M x 4"):
        operators.DenseSVD(torch.ones(3, 5), (1, 2, 2))


def test_custom_operator_example() -> None:
    """examples/custom_operator.py runs and its operators satisfy the SVD protocol (no sampler needed)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "custom_operator.py"
    spec = importlib.util.spec_from_file_location("custom_operator_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    errors = module.main()
    assert len(errors) == 6 and max(errors.values()) < 1e-10
    shape = (1, 5, 7)  # odd sizes, one channel
    for op in (module.DropOddColumns(shape).double(), module.horizontal_motion_blur(shape)):
        check_svd_protocol(op)


def test_buffer_cache_follows_to() -> None:
    op = get_operator("sr_bicubic4", (3, 8, 12))
    x = torch.randn(1, 3, 8, 12)
    y32 = op.H(x)  # float64 operator, float32 input: float32 copies made once and cached
    assert y32.dtype == torch.float32 and op._cache
    op.to(torch.float32)
    assert not op._cache and op.singulars().dtype == torch.float32
    torch.testing.assert_close(op.H(x), y32)
    torch.testing.assert_close(op.H(x.double()).float(), y32, atol=1e-5, rtol=1e-5)


def test_operators_never_import_ddrm_kit() -> None:
    """Data flows one way: ``ddrm_kit`` imports ``operators``, never the reverse (static check of the sources)."""
    import ast
    from pathlib import Path

    for path in Path(operators.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not any(n.split(".")[0] == "ddrm_kit" for n in names), f"{path.name} imports ddrm_kit"

"""The built-in operators' registry entries: names, metadata and where each factory lives.

Importing this module imports no torch: an implementing module is imported when its operator is
first built. ``tests/test_registry.py`` checks every declared parameter and default against the
factory's signature.
"""

from __future__ import annotations

from .registry import REQUIRED, Param, register

_ZERO_TOL = Param("zero_tol", 1e-6, "singular values <= zero_tol * max are exact zeros")
_SAME_SIZE = "degraded image, same size"
_DAMAGED = "damaged full-size image"

register("deno", "operators.identity:_deno", input="noisy image, same size",
         description="denoising only (H = identity)", family="deno")

register(r"sr(\d+)", "operators.superres:_sr", pattern=True, display="sr<k>", examples=("sr2", "sr4", "sr8", "sr16"),
         scale=None, input="low-res image (1/k of the size)",
         description="super-resolution x k by k x k block averaging (avg_pool2d); H, W divisible by k",
         family="superres")

register(r"sr_bicubic(\d+)", "operators.bicubic:_sr_bicubic", pattern=True, display="sr_bicubic<k>",
         examples=("sr_bicubic4", "sr_bicubic8", "sr_bicubic16"), params=(_ZERO_TOL,), scale=None,
         input="low-res image (1/k of the size)",
         description="super-resolution x k with PIL-style anti-aliased bicubic reduction; H, W divisible by k",
         family="superres")

register("deblur_uni", "operators.blur:_deblur_uni", input=_SAME_SIZE,
         params=(Param("kernel_size", 9, "taps of the uniform kernel (both axes)"), _ZERO_TOL),
         description="deblurring: uniform 9x9 blur, zero padding", family="deblur")

register("deblur_gauss", "operators.blur:_deblur_gauss", input=_SAME_SIZE,
         params=(Param("kernel_size", 5, "taps (the papers' kernel)"),
                 Param("sigma", 10.0, "Gaussian sigma in pixels (the papers' nearly uniform kernel)"), _ZERO_TOL),
         description="deblurring: separable Gaussian blur (papers: 5 taps, sigma 10), zero padding", family="deblur")

register("deblur_aniso", "operators.blur:_deblur_aniso", input=_SAME_SIZE,
         params=(Param("kernel_size", 9, "taps on both axes"), Param("sigma_h", 1.0, "Gaussian sigma along the height"),
                 Param("sigma_w", 20.0, "Gaussian sigma along the width"), _ZERO_TOL),
         description="deblurring: anisotropic Gaussian (sigma 1 along height, 20 along width), zero padding",
         family="deblur")

register("deblur", "operators.fourier:_deblur", input=_SAME_SIZE + " + --kernel FILE",
         params=(Param("kernel", REQUIRED, "2-D blur kernel (array/tensor; --kernel FILE), e.g. a motion-blur PSF"),
                 _ZERO_TOL),
         description="deblurring with any 2-D kernel, circular boundary (Fourier SVD)", family="deblur")

register(r"inp_random(\d+(?:\.\d+)?)", "operators.inpaint:_inp_random", pattern=True, display="inp_random<pct>",
         examples=("inp_random50", "inp_random70", "inp_random90"), observation_kind="full_image",
         input=_DAMAGED,
         params=(Param("seed", 0, "seed of the random pixel mask"),),
         description="inpainting: pct% of the pixels (all channels) missing at random", family="inpaint")

register("inp_box", "operators.inpaint:_inp_box", observation_kind="full_image", input=_DAMAGED,
         params=(Param("size", None, "side of the missing centre box, int or (h, w); None: H/2 x W/2"),),
         description="inpainting: a centred box is missing", family="inpaint")

register("inp_lolcat", "operators.inpaint:_inp_lolcat", observation_kind="full_image", input=_DAMAGED,
         description="inpainting: DDRM's 'lolcat' text mask (256x256)", family="inpaint")

register("inp_lorem", "operators.inpaint:_inp_lorem", observation_kind="full_image", input=_DAMAGED,
         description="inpainting: DDRM's 'lorem ipsum' text mask (256x256)", family="inpaint")

register("inp_mask", "operators.inpaint:_inp_mask", observation_kind="full_image", input=_DAMAGED + " + --mask FILE",
         params=(Param("mask", REQUIRED, "HxW (or CxHxW) bool or 0/1 array/tensor, 1 = kept pixel (--mask FILE)"),),
         description="inpainting with your own mask", family="inpaint")

register("uncrop", "operators.inpaint:_uncrop", observation_kind="full_image", input=_DAMAGED,
         params=(Param("side", "right", "the missing side: 'left', 'right', 'top' or 'bottom'"),
                 Param("fraction", 0.5, "part of the width (left/right) or height (top/bottom) that is missing")),
         description="uncropping: one side of the image is missing (default the right half)", family="inpaint")

register("color", "operators.color:_color", image_channels=3, input="grey image",
         params=(Param("weights", (1 / 3, 1 / 3, 1 / 3), "RGB weights of the grey level"),),
         description="colourisation: observe the grey level (mean of RGB); needs C = 3", family="color")

register(r"cs(\d+)", "operators.cs:_cs", pattern=True, display="cs<k>", examples=("cs2", "cs4", "cs8"),
         observation_kind="vector", input="a vector: only with --clean",
         params=(Param("seed", 0, "seed of the pixel permutation"),),
         description="compressed sensing: 1/k of permuted Walsh-Hadamard coefficients; H*W a power of two",
         family="cs")

register(r"jpeg(\d+)", "operators.jpeg:_jpeg", pattern=True, display="jpeg<QF>", examples=("jpeg10", "jpeg20", "jpeg75"),
         kind="codec", input="decoded JPEG image (same size)",
         params=(Param("subsampling", "4:2:0", "chroma subsampling: '4:2:0', '4:2:2' or '4:4:4' (ignored for grey)"),
                 Param("dct", "islow", "'islow' (libjpeg's integer DCT) or 'float'")),
         description="JPEG compression at quality QF (libjpeg tables, non-linear: DDRM-JPEG)",
         family="jpeg")

register(r"quant(\d+)", "operators.quantize:_quant", pattern=True, display="quant<bits>", examples=("quant3", "quant5"),
         kind="codec", input="quantised image (same size)",
         description="dequantisation: uniform quantisation of [-1, 1] to 2^bits levels (bin centres)", family="quant")

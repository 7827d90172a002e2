"""``ddrm degrade``: write the observation of a clean image, ready for ``ddrm solve``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ddrm_kit.errors import DDRMError

from .errors import Command
from .files import check_writable, describe, plan_outputs, read_image, refuse_inputs
from .options import kernel_option, mask_option, op_option, output_option, params_option, seed_option, sigma_y_option
from .params import check_fits, operator_params

if TYPE_CHECKING:
    import torch


@click.command("degrade", cls=Command)
@op_option()
@sigma_y_option
@seed_option
@mask_option
@kernel_option
@params_option
@output_option("Observation file: .png (or .jpg for jpegQF: a real JPEG file).")
@click.argument("clean_image", metavar="CLEAN")
def degrade_command(op_name: str, sigma_y: float, seed: int, mask: str | None, kernel: str | None,
                    params: tuple[str, ...], output: str, clean_image: str) -> None:
    """Write the observation y = H(CLEAN) + noise, ready for `ddrm solve`.

    The noise is the one `ddrm solve --clean` draws for CLEAN with the same --seed and --sigma-y.
    Inpainting operators also write OUT_mask.png (white = kept pixel), for `--op inp_mask --mask`.
    A jpegQF operator with a .jpg OUT writes a real JPEG file at that quality.
    """
    import torch

    import operators
    from ddrm_kit.imageio import save_image
    from ddrm_kit.restore import NOISE, generators, observe

    spec = operators.get_spec(op_name)
    if sigma_y and spec.kind == "codec":
        raise DDRMError(f"--sigma-y does not apply to {op_name}: JPEG/quantisation observations are deterministic; drop it")
    if spec.observation_kind == "vector":
        raise DDRMError(f"{op_name} observations are vectors, not images: try it with `ddrm solve --clean`")
    kwargs = operator_params(op_name, spec, params, mask, kernel)
    src = Path(clean_image)
    x, _ = read_image(src)
    out = Path(output)
    protect = [src] + [Path(p) for p in (mask, kernel) if p is not None]
    check_fits(op_name, spec, kwargs, x.shape[1:], src)
    op = operators.get_operator(op_name, tuple(x.shape[1:]), **kwargs)
    if spec.kind == "codec" and out.suffix.lower() in (".jpg", ".jpeg"):
        if not isinstance(op, operators.JPEG):
            raise DDRMError(f"a .jpg output needs a jpeg<QF> operator, not {op_name}: write a .png instead")
        _write_jpeg(x, out, op, protect)
        click.echo(f"wrote {out} ({describe(x)}, JPEG quality {op.quality}); "
                   f"restore it with: ddrm solve --op jpeg {out}")
        return
    outs = plan_outputs([src], False, output, op_name, protect=protect[1:])
    # Keyed by the clean file's name: `ddrm solve --clean` on it draws the same noise.
    y = observe(op, x, 2.0 * sigma_y, generators(seed, [src.name], NOISE))
    noise = f" --sigma-y {sigma_y:g}" if sigma_y else ""
    if spec.kind == "codec":
        written = save_image(y, outs[0], protect=protect)
        click.echo(f"wrote {written} ({describe(x)}); restore it with: ddrm solve --op {op_name} {written}")
        return
    if spec.observation_kind == "full_image":
        seen = op.H_pinv(op.H(torch.ones_like(x))).mean(1, keepdim=True) > 0.5
        observed = torch.where(seen, op.H_pinv(y), torch.zeros_like(x))
        mask_path = outs[0].with_name(outs[0].stem + "_mask.png")
        refuse_inputs(mask_path, protect)
        written = save_image(observed, outs[0], protect=protect)
        save_image(seen.float() * 2 - 1, mask_path, protect=protect)
        click.echo(f"wrote {written} ({describe(observed)}) and its mask {mask_path}; restore it with: "
                   f"ddrm solve --op inp_mask --mask {mask_path}{noise} {written}")
        return
    if len(op.measurement_shape) != 3:
        raise DDRMError(f"{op_name} observations of shape {op.measurement_shape} are not images")
    written = save_image(y, outs[0], protect=protect)
    click.echo(f"wrote {written} ({describe(y)}); restore it with: ddrm solve --op {op_name}{noise} {written}")


def _write_jpeg(x: "torch.Tensor", out: Path, op, protect: Sequence[Path]) -> None:
    """Save a real baseline JPEG (libjpeg through Pillow) at the operator's quality and subsampling."""
    from PIL import Image

    from ddrm_kit.atomic import atomic_write
    from ddrm_kit.imageio import to_uint8

    refuse_inputs(out, protect)
    check_writable(out.parent)
    image = Image.fromarray(to_uint8(x))
    out.parent.mkdir(parents=True, exist_ok=True)  # checked above; created only now that there is a result
    atomic_write(out, lambda tmp: image.save(tmp, format="JPEG", quality=op.quality, subsampling=op.subsampling))

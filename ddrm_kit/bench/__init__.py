"""`ddrm bench`: a folder of clean images + a prior + an operator -> the papers' table rows, with baselines.

For every image: preprocess (``--size`` / ``--crop``), observe it through the operator (plus
``--sigma-y`` noise; with ``--observation uint8``, the default, an image observation is rounded
to 8 bits as a file holds it), restore with DDRM, and score DDRM and the baselines (``H_pinv(y)``,
bicubic upsampling of the low-resolution image for super-resolution, and the observation itself
where it is an image of the original size) with the papers' per-image PSNR, the PSNR after 8-bit
rounding, and SSIM. With ``--average K`` DDRM's row is the mean of K samples (the K go through the
network as one batch) and a "one sample" row scores the first of them alone, so one run gives both
the single-sample and the posterior-mean estimate. Writes ``per_image.csv``, ``summary.md`` (+
``summary.json``) and ``grid.png`` (labelled columns), and refuses a folder that holds earlier
results unless ``overwrite``.

Every step is :mod:`ddrm_kit.restore`'s, with each image's generators seeded by ``(--seed, file
name)``: a row does not depend on the number of ranks, on ``--batch-size`` or on the other images.
With ``--observation uint8`` it equals ``ddrm degrade`` + ``ddrm solve`` on the 8-bit file (named
like the clean one); with ``float``, ``ddrm solve --clean``.

``--method palette --model RUN`` benches a Palette model (``ddrm train --palette OP``) the same way:
its own operator and parameters (``palette.json``), the same observations, seeds, baselines and
scores, restored with ``palette_sampler.palette_samples`` (all T timesteps unless ``--steps``; the
simulated noise is the model's training ``sigma_y`` unless ``--sigma-y``).

Scale-out: run the same command under ``torchrun --nproc-per-node N -m ddrm_kit.bench``; images
are sharded over the ranks (``torch.distributed``, gloo on CPU, nccl on CUDA) and rank 0 gathers
the rows and writes the outputs.

Modules: :mod:`.config` (options and their checks), :mod:`.data` (files, preprocessing, batches),
:mod:`.observation` (8-bit or float observations), :mod:`.run` (the loop), :mod:`.scores`,
:mod:`.report` (the outputs), :mod:`.distributed`; the
command is :mod:`ddrm_kit.cli.bench`. torch is imported inside functions, so that ``ddrm --help``
starts fast.
"""

from __future__ import annotations

from ddrm_kit.errors import BenchDataNotFoundError, BenchError

from .config import BenchConfig
from .data import preprocess
from .report import CSV_NAME, reference_lines
from .run import run_bench

__all__ = ["BenchConfig", "BenchDataNotFoundError", "BenchError", "CSV_NAME", "preprocess", "reference_lines",
           "run_bench"]

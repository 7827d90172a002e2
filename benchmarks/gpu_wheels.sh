#!/usr/bin/env bash
# Run here, before a GPU is lent: download the exact wheels of what the GPU machine lacks into .whl/
# (ignored by git; carried to the GPU machine, where benchmarks/gpu_suite.py installs them with
# pip --no-index). The GPU machine has Python 3.12 with torch, numpy, scipy, pillow, click, tqdm,
# safetensors, huggingface_hub and pytest, but not diffusers nor importlib_metadata.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
diffusers_version="$(python3 -c 'import diffusers; print(diffusers.__version__)')"
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    "diffusers==${diffusers_version}" importlib_metadata
ls -l .whl

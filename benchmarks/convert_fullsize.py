"""Full-size papers' networks with random weights: conversion time, peak RAM, and ε against the original.

    OMP_NUM_THREADS=2 python benchmarks/convert_fullsize.py                 # the four distinct networks
    python benchmarks/convert_fullsize.py --configs imagenet_256 --size 64  # one network, ε at 64x64

For each config, the script writes a random original-layout state dict of the real shapes
(``tests/original_unets.py``: every weight random) under the released file name, so the file name
picks the config. Fresh child processes then (a) load it in memory with ``load_checkpoint`` and
read every weight once, and (b) write the diffusers folder with ``write_folder`` (``ddrm convert``);
each reports its wall time and peak resident memory (VmHWM, which counts the memory-mapped
checkpoint pages it read), next to the float32 size of the network and the RSS of a child that only
imports the same modules. Last, ε of the converted network (the folder through plain
``UNet2DModel.from_pretrained`` where there is one) is compared with the original forward pass of
``tests/original_unets.py`` at one timestep (t = 500) on a ``--size`` image: relative L2 error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

FILES = {"imagenet_256": "256x256_diffusion_uncond.pt", "imagenet_256_cc": "256x256_diffusion.pt",
         "imagenet_512_cc": "512x512_diffusion.pt", "celeba_hq": "celeba_hq.ckpt"}
LABEL = 7  # the class of the class-conditional networks

CHILD = """
import json, sys, time
mode, path, out, label = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
label = None if label == "none" else int(label)
import torch
from ddrm_kit.checkpoints import load_checkpoint, write_folder
start = time.perf_counter()
if mode == "load":
    unet = load_checkpoint(path, class_label=label).unet
    # Read every weight once: a lazily mapped file would otherwise hide its pages from the peak.
    total = sum(float(p.double().sum()) for p in unet.parameters())
elif mode == "write":
    write_folder(path, out, class_label=label)
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the (large) parent at fork.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_mib": int(hwm.split()[1]) / 1024}))
"""


def child(mode: str, path: Path, out: Path, label: int | None) -> dict:
    """Run one step in a fresh process; returns its seconds and peak RSS (MiB)."""
    result = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(out), str(label or "none")],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--size", type=int, default=64, help="image side for the ε comparison (default 64)")
    parser.add_argument("--workdir", default=None, help="where the random checkpoints go (default: a temp folder)")
    args = parser.parse_args()

    import torch
    from diffusers import UNet2DModel
    from original_unets import ADM, adm_forward, adm_shapes, ddpm_forward, ddpm_shapes, full_size, random_state

    from ddrm_kit.checkpoints import load_checkpoint

    work = Path(args.workdir or tempfile.mkdtemp(prefix="convert_fullsize_"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.configs:
        arch = full_size(name)
        adm = isinstance(arch, ADM)
        state = random_state(adm_shapes(arch) if adm else ddpm_shapes(arch), seed=11)
        params = sum(t.numel() for t in state.values())
        ckpt = work / FILES[name]
        torch.save(state, ckpt)
        label = LABEL if name.endswith("_cc") else None
        base = child("none", ckpt, work / "unused", label)
        load = child("load", ckpt, work / "unused", label)
        folder = work / f"{name}_diffusers"
        try:
            write = child("write", ckpt, folder, label)
        except subprocess.CalledProcessError as err:
            write = {"refused": err.stderr.strip().splitlines()[-1]}
        unet = (UNet2DModel.from_pretrained(folder) if "seconds" in write
                else load_checkpoint(ckpt, class_label=label).unet).eval()
        x, t = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
        with torch.no_grad():
            eps = unet(x, t).sample[:, :3]
            ref = (adm_forward(state, arch, x, t, torch.tensor([label]) if label is not None else None)
                   if adm else ddpm_forward(state, arch, x, t))[:, :3]
        err = float((eps - ref).norm() / ref.norm())
        rows.append({"config": name, "params": params, "float32_mib": params * 4 / 2**20,
                     "import_only_peak_mib": base["peak_mib"], "load": load, "write": write, "eps_rel_err": err,
                     "eps_size": args.size})
        print(json.dumps(rows[-1]), flush=True)
        del state, unet
        ckpt.unlink()
    print(f"\n{'config':<17}{'params':>13}{'f32 MiB':>9}{'base MiB':>9}{'load s':>8}{'load MiB':>9}"
          f"{'write s':>8}{'write MiB':>10}{'ε rel err':>11}")
    for r in rows:
        w = r["write"]
        ws, wm = (f"{w['seconds']:.1f}", f"{w['peak_mib']:.0f}") if "seconds" in w else ("refused", "-")
        print(f"{r['config']:<17}{r['params']:>13,}{r['float32_mib']:>9.0f}{r['import_only_peak_mib']:>9.0f}"
              f"{r['load']['seconds']:>8.1f}{r['load']['peak_mib']:>9.0f}{ws:>8}{wm:>10}{r['eps_rel_err']:>11.2e}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")

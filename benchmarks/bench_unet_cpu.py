"""One forward of the celebahq-256 UNet on this CPU: float32 vs channels_last vs torch.compile vs bfloat16.

    python benchmarks/bench_unet_cpu.py                      # 256x256, batch 1, 5 timed calls per variant
    python benchmarks/bench_unet_cpu.py --repeats 3 --variants fp32 channels_last bf16_autocast

The UNet is google/ddpm-celebahq-256's architecture (113.7M parameters) with random weights, so
no download is needed; ``--model FOLDER`` times a saved UNet2DModel instead (e.g. the built-in
prior, ``ddrm_kit/builtin``, at sizes larger than it was trained on). Every variant gets its own copy of the same weights and the same input
``x`` (N(0, 1), t = 500). After one untimed warm-up call per variant (for ``compile*`` that call
compiles; its time is shown), the timed calls are interleaved round-robin across the variants, so
a change in the load of the shared CPU hits every variant alike; the table shows medians.
"match" compares each output with the float32 reference: relative L2 error and max |diff|;
"float noise" means a relative error under 1e-4 (float32 reorderings give ~1e-6, bfloat16 ~1e-2).

Variants:
  fp32            torch.no_grad, contiguous NCHW (what the sampler did before this benchmark)
  inference_mode  torch.inference_mode instead of no_grad
  channels_last   weights and input in channels_last (NHWC) memory format, inference_mode
  compile         torch.compile(unet) (inductor), inference_mode
  compile_cl      torch.compile + channels_last
  bf16_autocast   torch.autocast("cpu", bfloat16), float32 weights
  bf16_weights    weights and input in bfloat16 (load_prior(dtype=torch.bfloat16))
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import celebahq_unet, load_average, median, table  # noqa: E402

VARIANTS = ("fp32", "inference_mode", "channels_last", "compile", "compile_cl", "bf16_autocast", "bf16_weights")


def make_variant(name: str, unet):
    """The callable ``run(x, t) -> float32 output`` of variant ``name`` (its own copy of the weights)."""
    import torch

    model = copy.deepcopy(unet)
    cl = name in ("channels_last", "compile_cl")
    if cl:
        model = model.to(memory_format=torch.channels_last)
    if name == "bf16_weights":
        model = model.to(torch.bfloat16)
    if name.startswith("compile"):
        model = torch.compile(model)

    def run(x, t):
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        if name == "fp32":
            with torch.no_grad():
                return model(x, t).sample.float()
        if name == "bf16_autocast":
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x, t).sample.float()
        if name == "bf16_weights":
            with torch.inference_mode():
                return model(x.to(torch.bfloat16), t).sample.float()
        with torch.inference_mode():
            return model(x, t).sample.float()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=["fp32", "inference_mode", "channels_last", "compile",
                                                      "bf16_autocast", "bf16_weights"], choices=VARIANTS)
    ap.add_argument("--model", default=None, help="a save_pretrained folder (root or unet/) instead of celebahq-256")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()

    import torch

    if args.model:
        from diffusers import UNet2DModel

        sub = "unet" if os.path.isfile(os.path.join(args.model, "unet", "config.json")) else None
        unet = UNet2DModel.from_pretrained(args.model, subfolder=sub).eval().requires_grad_(False)
        label = f"UNet of {args.model}"
    else:
        unet = celebahq_unet()
        label = "celebahq-256 UNet"
    params = sum(p.numel() for p in unet.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    t = torch.full((args.batch,), 500, dtype=torch.long)
    with torch.no_grad():
        ref = unet(x, t).sample.float()

    runs, first, outs = {}, {}, {}
    for name in args.variants:
        runs[name] = make_variant(name, unet)
        t0 = time.perf_counter()
        outs[name] = runs[name](x, t)  # warm-up (compiles for compile*)
        first[name] = time.perf_counter() - t0
        print(f"# {name}: first call {first[name]:.1f} s", file=sys.stderr, flush=True)
    del unet
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    loads = []
    for _ in range(args.repeats):
        for name in args.variants:
            t0 = time.perf_counter()
            runs[name](x, t)
            times[name].append(time.perf_counter() - t0)
        loads.append(load_average())

    base = median(times[args.variants[0]]) if args.variants[0] == "fp32" else None
    rows, records = [], []
    for name in args.variants:
        diff = outs[name] - ref
        rel = float(diff.norm() / ref.norm())
        mx = float(diff.abs().max())
        med = median(times[name])
        rec = {"variant": name, "median_s": med, "min_s": min(times[name]), "times_s": times[name],
               "first_call_s": first[name], "rel_l2": rel, "max_abs": mx, "float_noise": rel < 1e-4}
        records.append(rec)
        rows.append([name, f"{med:.2f}", f"{min(times[name]):.2f}",
                     f"{base / med:.2f}x" if base else "-", f"{first[name]:.1f}",
                     f"{rel:.1e}", f"{mx:.1e}", "yes" if rel < 1e-4 else "NO"])
    print(f"{label} ({params / 1e6:.1f}M params), batch {args.batch}, {args.size}x{args.size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} timed calls per variant "
          f"(interleaved); 1-min load average during the runs: {' '.join(loads)}")
    print(table(["variant", "median s", "min s", "speed-up vs fp32", "first call s", "rel L2 vs fp32",
                 "max |diff|", "float noise"], rows))
    if base:
        print(f"20 steps at the fp32 median: {20 * base:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "batch": args.batch, "threads": torch.get_num_threads(),
                       "loads": loads, "rows": records}, f, indent=1)


if __name__ == "__main__":
    main()

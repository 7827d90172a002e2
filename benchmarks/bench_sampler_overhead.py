"""Per-step cost of the DDRM sampler + operator, relative to one forward of the celebahq-256 UNet.

    python benchmarks/bench_sampler_overhead.py                        # CPU, 256x256, batch 1
    python benchmarks/bench_sampler_overhead.py --ops sr4 deno --repeats 3 --threads 1
    python benchmarks/bench_sampler_overhead.py --device cuda          # on a GPU (synchronised timing)

The sampler runs with a zero-cost prior (it returns a precomputed noise tensor), so everything it
times is the sampler's own work: the operator's V/Vt (or J for codecs), the per-entry DDRM update,
the fresh noise and the x0 algebra. A step's time is the interval between two consecutive
``callback`` calls (one full step: update, noise, V, prior, x0); the table gives the median over
all steps of all repeats, and "setup" the time from the call to the first callback (Ut, ȳ, the
initial state and the first V). The UNet is google/ddpm-celebahq-256's architecture with random
weights (no download), in channels_last like ``load_prior``'s default (``--no-channels-last`` for
NCHW), timed with ``torch.no_grad`` at the same size before and after the sampler runs, so a
change in the shared CPU's load shows up in both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import celebahq_unet, load_average, median, table, time_calls  # noqa: E402

DEFAULT_OPS = ("sr4", "sr_bicubic4", "deblur_gauss", "inp_random50", "inp_box", "color", "deno", "cs4", "jpeg75")


def sampler_step_times(op_name: str, size: int, batch: int, steps: int, repeats: int, device: str):
    """(per-step seconds over all steps and repeats, setup seconds per repeat) for one operator."""
    import torch

    import operators
    from ddrm_kit import Prior, ddrm
    from ddrm_kit.restore import observe

    dev = torch.device(device)
    shape = (3, size, size)
    op = operators.get_operator(op_name, shape).to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand((batch, *shape), generator=gen, device=dev) * 2 - 1
    y = observe(op, x)
    eps_const = torch.randn((batch, *shape), generator=gen, device=dev)
    ac = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    prior = Prior(lambda xt, t: eps_const, ac, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    step_times: list[float] = []
    setups: list[float] = []
    for rep in range(repeats + 1):  # the first run warms up caches and allocator
        stamps: list[float] = []

        def callback(i, t, x0):
            sync()
            stamps.append(time.perf_counter())

        sync()
        t0 = time.perf_counter()
        ddrm(prior, op, y, steps=steps, generator=gen, progress=False, callback=callback)
        if rep:
            setups.append(stamps[0] - t0)
            step_times += [b - a for a, b in zip(stamps, stamps[1:])]
    return step_times, setups


def unet_forward_times(size: int, batch: int, repeats: int, device: str, channels_last: bool) -> list[float]:
    import torch

    dev = torch.device(device)
    unet = celebahq_unet().to(dev)
    x = torch.randn(batch, 3, size, size, device=dev)
    if channels_last:  # what load_prior does by default
        unet = unet.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    t = torch.full((batch,), 500, dtype=torch.long, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None

    def forward():
        with torch.no_grad():
            unet(x, t)

    return time_calls(forward, repeats, warmup=1, sync=sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="+", default=list(DEFAULT_OPS))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="sampler runs per operator (after a warm-up)")
    parser.add_argument("--unet-repeats", type=int, default=2, help="UNet forwards before and after the sampler runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="time the UNet in plain NCHW instead of channels_last (load_prior's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    loads = [load_average()]
    unet_times = unet_forward_times(args.size, args.batch, args.unet_repeats, args.device, args.channels_last)
    rows = []
    results = {}
    for name in args.ops:
        steps, setups = sampler_step_times(name, args.size, args.batch, args.steps, args.repeats, args.device)
        results[name] = (median(steps), median(setups))
        loads.append(load_average())
    unet_times += unet_forward_times(args.size, args.batch, args.unet_repeats, args.device, args.channels_last)
    loads.append(load_average())
    unet_s = median(unet_times)
    for name, (step_s, setup_s) in results.items():
        rows.append([name, f"{step_s * 1e3:.2f}", f"{100 * step_s / unet_s:.3f}%", f"{setup_s * 1e3:.1f}"])
    print(f"device {args.device}, {torch.get_num_threads()} threads, {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} runs per operator; load average {', '.join(loads)}")
    layout = "channels_last" if args.channels_last else "NCHW"
    print(f"UNet (celebahq-256 architecture, {layout}) forward: median {unet_s:.3f} s over {len(unet_times)} calls "
          f"(min {min(unet_times):.3f}, max {max(unet_times):.3f})")
    print(table(["operator", "sampler step (ms)", "step / UNet forward", "setup (ms)"], rows))


if __name__ == "__main__":
    main()

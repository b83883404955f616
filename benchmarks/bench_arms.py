"""Parameters and CPU milliseconds per slice of the arms of the network registry.

Each arm as its default config builds it (``build_net(name)``, random weights: the cost does
not depend on them), on random 2-channel ``--size``² slices, in a fresh process of its own:
parameters; forward ms/slice (eval mode, no grad, a batch of ``--batch`` slices); forward +
backward ms/slice (training mode, cross-entropy, the same batch; no optimiser step); the
process's peak resident memory (torch and the library included). One warm-up pass, then the
median of ``--repeats``. A library arm pads to its multiple (DynUNet: to at least 256²), so its
figure is that of the padded slice.

    python benchmarks/bench_arms.py --size 128 --repeats 5 --threads 2
    python benchmarks/bench_arms.py --arms smp_fpn,monai_segresnet --repeats 1
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def measure(arm: str, size: int, batch: int, repeats: int, threads: int) -> dict:
    """The figures of one arm (run in a child process: its peak memory is its own)."""
    import torch
    import torch.nn.functional as F

    from cac_lightning.models import NETS, build_net, count_parameters

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build_net(arm)
    x = torch.rand(batch, 2, size, size)
    y = torch.randint(0, 5, (batch, size, size))

    def forward() -> None:
        with torch.no_grad():
            net(x)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()

    net.eval()
    fwd = _median_ms(forward, repeats) / batch
    net.train()
    fwd_bwd = _median_ms(step, repeats) / batch
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "arm": arm,
        "family": NETS[arm].family,
        "params": count_parameters(net),
        "fwd_ms": fwd,
        "fwd_bwd_ms": fwd_bwd,
        "peak_rss_mib": peak,
    }


def main() -> None:
    from cac_lightning.models import NETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arms", default=",".join(NETS), help="comma-separated (default: all)")
    p.add_argument("--size", type=int, default=128, help="slice side in pixels (default 128)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in NETS]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; valid: {', '.join(NETS)}")
    if args.child:
        print(json.dumps(measure(arms[0], args.size, args.batch, args.repeats, args.threads)))
        return

    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"torch {torch.__version__}; {args.size}² slices, batch {args.batch}, "
        f"median of {args.repeats}"
    )
    print("| arm | family | params | fwd ms/slice | fwd+bwd ms/slice | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for arm in arms:
        cmd = [sys.executable, __file__, "--child", "--arms", arm]
        cmd += ["--size", str(args.size), "--batch", str(args.batch)]
        cmd += ["--repeats", str(args.repeats), "--threads", str(args.threads)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"| {arm} | failed: {r.stderr.strip().splitlines()[-1]} | | | | |")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(
            f"| {m['arm']} | {m['family']} | {m['params']:,} | {m['fwd_ms']:.1f} "
            f"| {m['fwd_bwd_ms']:.1f} | {m['peak_rss_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

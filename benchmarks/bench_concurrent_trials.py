"""Aggregate training throughput of N concurrent paper-recipe trials on one GPU.

Starts N copies of ``bench_train_step.py`` (paper U-Net++ 512², bf16, channels_last, batch 4,
``--workers`` loader processes each) at once, as ``hydra/launcher=gpu_shared`` runs a sweep's
trials. A start barrier makes their timed steps overlap; the figure is the sum of their
slices/s. Also printed: each trial's peak GPU memory (allocated by PyTorch, without the CUDA
context) and the CPU share of the whole run (all processes' CPU seconds / wall seconds / cores),
most of it the loaders'.

    python benchmarks/bench_concurrent_trials.py --trials 1 2 4 8 --workers 2
    python benchmarks/bench_concurrent_trials.py --dry --trials 1 2     # CPU: checks the script
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"([0-9.]+) slices/s, peak GPU memory ([0-9.na]+) GiB")


def _cpu_seconds() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_trials(n: int, args) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        barrier = Path(tmp)
        cmd = [
            sys.executable, str(HERE / "bench_train_step.py"), "--nets", args.net,
            "--compile", args.compile, "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--workers", str(args.workers), "--barrier", str(barrier), "--barrier-n", str(n),
        ] + (["--dry"] if args.dry else [])  # fmt: skip
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outs = [p.communicate()[0] for p in procs]
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    rates, mems = [], []
    for p, out in zip(procs, outs, strict=True):
        m = LINE.search(out)
        if p.returncode != 0 or m is None:
            return f"concurrent {n} trials: a trial failed (exit {p.returncode}): {out[-300:]}"
        rates.append(float(m.group(1)))
        mems.append(m.group(2))
    return (
        f"concurrent {n} trials {args.net} compile={args.compile} workers {args.workers} each: "
        f"aggregate {sum(rates):.1f} slices/s (per trial {min(rates):.1f}-{max(rates):.1f}), "
        f"peak GPU memory per trial {', '.join(mems)} GiB, CPU share "
        f"{100 * cpu / wall / (os.cpu_count() or 1):.0f}% of {os.cpu_count()} cores, "
        f"run {wall:.0f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--net", default="unetplusplus")
    ap.add_argument("--compile", default="off", choices=["off", "on", "graphs"])
    ap.add_argument("--workers", type=int, default=2, help="loader processes per trial")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--dry", action="store_true", help="CPU, tiny sizes: checks the script")
    args = ap.parse_args()
    for n in args.trials:
        print(run_trials(n, args), flush=True)


if __name__ == "__main__":
    main()

"""Time synthetic cohort generation (``cac-synth``) end to end.

Each case writes a fresh cohort (DICOM series, label maps, manifest with reference scores read
back from the written files) into a temporary folder and removes it afterwards.

Usage::

    .venv/bin/python benchmarks/bench_synth.py                         # 20 @ 128 and 100 @ 512
    .venv/bin/python benchmarks/bench_synth.py --cases 20x128 --workers 2

Prints, per case, the wall time, seconds per scan and the cohort size on disk.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from cac_lightning.sources.synthetic import generate_cohort, make_scan

__all__ = ["main", "time_case"]


def _disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def time_case(n_scans: int, size: int, workers: int | None, seed: int = 0) -> dict:
    """Generate one cohort in a temporary folder; return timings."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        t0 = time.perf_counter()
        generate_cohort(tmp / "cohort", n_scans, seed=seed, size=size, workers=workers)
        wall = time.perf_counter() - t0
        return {"wall_s": wall, "per_scan_s": wall / n_scans, "disk_mb": _disk_mb(tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _phantom_only(size: int, n: int = 3) -> float:
    """Median seconds of :func:`make_scan` alone (no writing) over ``n`` scans."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        make_scan(0, i, size)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["20x128", "100x512"],
                   help="NxSIZE cases (default: 20x128 100x512)")  # fmt: skip
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    args = p.parse_args(argv)
    workers = args.workers or os.cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"workers {workers}, python {platform.python_version()}")  # fmt: skip
    for case in args.cases:
        n, size = (int(v) for v in case.lower().split("x"))
        phantom = _phantom_only(size)
        r = time_case(n, size, workers)
        print(
            f"{n:4d} scans @ {size}x{size}: {r['wall_s']:7.1f} s wall, "
            f"{r['per_scan_s']:.2f} s/scan, phantom alone {phantom:.2f} s/scan, "
            f"{r['disk_mb']:.0f} MiB"
        )


if __name__ == "__main__":
    main()

"""Time :func:`cac_lightning.scoring.score_scan` on a realistic 512x512x60 scan.

The scan: soft tissue around 40 HU with noise, a block of bone (~700 HU, outside
every label, as a model must ignore it), and 30 calcified lesions of radius 1-4 px
spanning 1-4 slices, peak 150-900 HU, each inside a box-shaped vessel label two
pixels larger than the lesion (so labelled voxels below 130 HU are also present).

Usage::

    .venv/bin/python benchmarks/bench_scoring.py [--runs 30] [--lesions 30] [--slices 60]

Prints the median wall time of ``--runs`` calls for each mode.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from cac_lightning.scoring import ScoringConfig, score_scan
from cac_lightning.volume import Geometry

__all__ = ["make_scan", "main"]


def make_scan(n_slices: int = 60, size: int = 512, n_lesions: int = 30, seed: int = 0):
    """A synthetic (hu int16, labels uint8, geometry) with ``n_lesions`` lesions."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(40.0, 20.0, (n_slices, size, size)).astype(np.int16)
    hu[:, size - 80 : size - 40, size // 2 - 30 : size // 2 + 30] = 700  # bone, unlabelled
    labels = np.zeros(hu.shape, np.uint8)
    yy, xx = np.mgrid[-6:7, -6:7]
    for _ in range(n_lesions):
        r = rng.uniform(1.0, 4.0)
        depth = int(rng.integers(1, 5))
        z0 = int(rng.integers(0, n_slices - depth))
        cy, cx = (int(v) for v in rng.integers(150, size - 150, 2))
        peak = rng.uniform(150.0, 900.0)
        disk = (yy**2 + xx**2) <= r * r
        blob = np.where(disk, peak * np.exp(-(yy**2 + xx**2) / (2 * r * r)), 0.0)
        sl = np.s_[z0 : z0 + depth, cy - 6 : cy + 7, cx - 6 : cx + 7]
        hu[sl] = np.maximum(hu[sl], blob.astype(np.int16))
        box = np.zeros_like(disk)
        box[6 - int(r) - 2 : 6 + int(r) + 3, 6 - int(r) - 2 : 6 + int(r) + 3] = True
        labels[sl] = np.where(box, rng.integers(1, 5), labels[sl])
    geometry = Geometry((n_slices, size, size), (0.4, 0.4), 3.0)
    return hu, labels, geometry


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--lesions", type=int, default=30)
    p.add_argument("--slices", type=int, default=60)
    args = p.parse_args(argv)

    hu, labels, geometry = make_scan(args.slices, 512, args.lesions)
    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"scan: {hu.shape} int16, {int((labels > 0).sum())} labelled voxels")
    for mode in ("per-slice", "lesion3d"):
        cfg = ScoringConfig(mode=mode)
        scores = score_scan(hu, labels, geometry, cfg, kvp=120.0)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            score_scan(hu, labels, geometry, cfg, kvp=120.0)
            times.append(time.perf_counter() - t0)
        print(
            f"{mode:9s}: median {1000 * np.median(times):6.1f} ms over {args.runs} runs "
            f"(min {1000 * min(times):.1f} ms); total Agatston {scores.total.agatston:.1f}, "
            f"{scores.total.lesions} lesions, {scores.risk_category}"
        )


if __name__ == "__main__":
    main()

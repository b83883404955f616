"""Scans per second of ``cac-score --ckpt`` over a folder of scans, with and without read-ahead.

Writes ``--scans`` DICOM series (``--slices`` random slices of ``--size``², 0.4 mm pixels, 3 mm
slices, a bone block and small calcium-like blobs) and scores them all in one ``cac-score``
call (the network and the CUDA context start once), once per ``--read-ahead`` value, after one
untimed call on the first scan (imports, CUDA context, allocator). Prints the scans per second
of each whole call (network loading included) and the median per-scan inference and read-wait
seconds from the JSON outputs.

    python benchmarks/bench_folder_inference.py --ckpt outputs/demo/best.ckpt --scans 20 \\
        --slices 60 --size 512 --device cpu --read-ahead 0 1
    python benchmarks/bench_folder_inference.py --ckpt CKPT --scans 100 --device cuda  # GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_scans(folder: Path, n: int, slices: int, size: int) -> list[Path]:
    from cac_lightning.io.dicom_write import write_dicom_series
    from cac_lightning.volume import Geometry

    g = Geometry(
        shape=(slices, size, size),
        pixel_spacing=(0.4, 0.4),
        slice_spacing=3.0,
        origin=(0.0, 0.0, 0.0),
        slice_thickness=3.0,
    )
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        hu = rng.normal(40, 15, size=(slices, size, size)).astype(np.int16)
        hu[:, size // 2 : size // 2 + size // 8, size // 3 : size // 3 + size // 16] = 900
        for z in range(2, slices - 2, 5):
            r, c = rng.integers(size // 4, size // 2, size=2)
            hu[z, r : r + 3, c : c + 3] = 450
        paths.append(write_dicom_series(hu, g, folder / f"scan{i:03d}", patient_id=f"BENCH{i}"))
    return paths


def score(paths: list[Path], args, read_ahead: int, out: Path) -> str:
    from cac_lightning.cli.score import main as cac_score

    argv = [str(p) for p in paths] + [
        "--ckpt", args.ckpt, "--out", str(out), "--device", args.device,
        "--read-ahead", str(read_ahead), "--heart", args.heart,
    ]  # fmt: skip
    t0 = time.perf_counter()
    rc = cac_score(argv)
    wall = time.perf_counter() - t0
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if rc != 0 or len(reports) != len(paths):
        return f"folder --read-ahead {read_ahead}: failed (exit {rc}, {len(reports)} scored)"
    infer = statistics.median(r["timing_s"]["infer"] for r in reports)
    wait = statistics.median(r["timing_s"]["read"] for r in reports)
    return (
        f"folder {len(paths)} scans of {args.slices}x{args.size}² --device {args.device} "
        f"--read-ahead {read_ahead}: {len(paths) / wall:.2f} scans/s ({wall:.1f} s), "
        f"median infer {infer:.3f} s/scan, median read wait {wait:.3f} s/scan"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="a cac-train checkpoint")
    ap.add_argument("--scans", type=int, default=20)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--heart", default="off", help="cac-score --heart (default off)")
    ap.add_argument("--read-ahead", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = write_scans(Path(tmp) / "scans", args.scans, args.slices, args.size)
        print(f"wrote {len(paths)} scans in {time.perf_counter() - t0:.0f} seconds", flush=True)
        score(paths[:1], args, 0, Path(tmp) / "warmup")
        for r in args.read_ahead:
            print(score(paths, args, r, Path(tmp) / f"out{r}"), flush=True)


if __name__ == "__main__":
    main()

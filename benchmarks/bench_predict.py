"""Seconds per scan of ``Predictor.predict`` (the cac-score / cac-eval / validation path).

Runs the demo-size and/or paper-size U-Net++ (untrained weights: the cost does not depend on
them) on real scans (DICOM folders; default: the COCA sample's series when present, else a
synthetic 60 x 512² volume at 0.4 mm) at the scan's native spacing and at a training spacing.

    python benchmarks/bench_predict.py --nets demo --spacings native 0.8
    python benchmarks/bench_predict.py --nets paper --max-slices 8      # extrapolated per scan
    python benchmarks/bench_predict.py --device cuda --nets demo paper   # bf16 on a GPU
    python benchmarks/bench_predict.py --spacings 1.0 --lesion-floor 0.8  # with the floor's pass
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from cac_lightning.inference import Predictor
from cac_lightning.io import read_volume
from cac_lightning.models import build_net
from cac_lightning.volume import Geometry, Volume

NETS = {
    "demo": {"name": "unetplusplus", "channels": [16, 32, 64, 128]},
    "paper": {"name": "unetplusplus", "channels": [32, 64, 128, 256, 512]},
}
COCA = Path(
    os.environ.get("CAC_COCA_ROOT", Path(__file__).resolve().parents[2] / "shared/data/coca-sample")
)


def _scans(paths: list[str]) -> list[Volume]:
    if not paths:
        root = COCA / "Gated_release_final" / "patient"
        paths = sorted(str(p) for p in root.glob("*/*") if p.is_dir()) if root.is_dir() else []
    if paths:
        return [read_volume(p) for p in paths]
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 20, (60, 512, 512)).astype(np.int16)
    g = Geometry(shape=hu.shape, pixel_spacing=(0.4, 0.4), slice_spacing=3.0)
    return [Volume(hu=hu, geometry=g, kvp=120.0, scan_id="synthetic")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scans", nargs="*", help="DICOM folders / volumes (default: COCA sample)")
    p.add_argument("--nets", nargs="+", default=["demo"], choices=sorted(NETS))
    p.add_argument("--spacings", nargs="+", default=["native", "0.8"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-slices", type=int, default=None, help="time only the first N slices")
    p.add_argument(
        "--lesion-floor", type=float, default=None, help="apply this lesion-confidence floor"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    scans = _scans(args.scans)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for name in args.nets:
        cfg = dict(NETS[name])
        net = build_net(cfg.pop("name"), **cfg).to(device).eval()
        for spacing in args.spacings:
            geometry = None if spacing == "native" else {"spacing_mm": float(spacing)}
            pred = Predictor(net, {"data_geometry": geometry}, device, args.batch_size, name)
            if args.lesion_floor is not None:
                pred.set_floor(args.lesion_floor)
            pred.predict(scans[0].hu[:2], pixel_spacing=scans[0].geometry.pixel_spacing)  # warm-up
            for vol in scans:
                hu = vol.hu if args.max_slices is None else vol.hu[: args.max_slices]
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                pred.predict(hu, pixel_spacing=vol.geometry.pixel_spacing, kvp=vol.kvp)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                n, total = len(hu), vol.hu.shape[0]
                per_scan = dt * total / n
                print(
                    f"{name:5s} spacing {spacing:>6s} {vol.scan_id:>24s} "
                    f"{total} x {vol.hu.shape[1]}² @ {vol.geometry.pixel_spacing[0]:.3f} mm: "
                    f"{dt / n:.3f} s/slice, {per_scan:.1f} s/scan"
                    + ("" if n == total else f" (extrapolated from {n} slices)")
                )


if __name__ == "__main__":
    main()

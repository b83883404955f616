"""CPU seconds per real COCA scan: a checkpoint at its own training spacing vs native 512².

For each COCA sample scan (46–57 slices of 512², 0.32–0.47 mm) the script times
:meth:`cac_lightning.inference.Predictor.predict` twice with the same weights:

- on the checkpoint's training grid (``data_geometry``: slices resampled to ``spacing_mm``, cut
  to its ``fov_mm`` window when it records one, logits mapped back to 512²), as
  ``cac-score --ckpt`` runs it;
- at the native 512² grid (the spacing record removed), as a model without one runs.

``--paper`` adds the paper-size U-Net++ (channels 32–512, random weights: the time does not
depend on them) on ``--paper-scans`` scans, at ``--paper-spacing`` mm and natively. Prints wall
seconds and process CPU seconds (all threads) per scan; ``--threads`` sets torch's threads.

    python benchmarks/bench_coca_inference.py --ckpt outputs/demo/best.ckpt --paper
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DEFAULT_COCA = "/work/shared/data/coca-sample"


def _series(root: Path) -> list[Path]:
    from cac_lightning.sources.coca import find_release

    release = find_release(root)
    folders = sorted(p for p in (release / "patient").glob("*/*") if p.is_dir())
    if not folders:
        raise SystemExit(f"no DICOM series folders under {release / 'patient'}")
    return folders


def _time(predictor, vol) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    predictor.predict(vol)
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", help="a cac-train checkpoint (e.g. the demo's)")
    p.add_argument("--coca-root", default=os.environ.get("CAC_COCA_ROOT", DEFAULT_COCA))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--paper", action="store_true", help="also time the paper-size U-Net++")
    p.add_argument("--paper-scans", type=int, default=1)
    p.add_argument("--paper-spacing", type=float, default=0.8)
    args = p.parse_args(argv)

    import torch

    from cac_lightning.inference import Predictor
    from cac_lightning.io import read_volume
    from cac_lightning.models import build_net
    from cac_lightning.models.checkpoint import DataGeometry

    torch.set_num_threads(args.threads)
    scans = [read_volume(s) for s in _series(Path(args.coca_root))]
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, CPU")
    print(f"{'model':<34}{'scan':<8}{'grid':<40}{'wall s':>8}{'CPU s':>8}")

    def run(name: str, predictor, own: dict | None, vols) -> None:
        grids = [("native", None)]
        if own:
            window = f", {own['fov_mm']:g} mm window" if own.get("fov_mm") else ""
            grids.insert(0, (f"{own['spacing_mm']:g} mm{window}", own))
        for i, vol in enumerate(vols):
            for label, geom in grids:
                predictor.data_geometry = DataGeometry.from_dict(geom)
                wall, cpu = _time(predictor, vol)
                shape = "x".join(str(n) for n in vol.hu.shape)
                print(f"{name:<34}{i:<8}{label + ' (' + shape + ')':<40}{wall:8.1f}{cpu:8.1f}",
                      flush=True)  # fmt: skip

    if args.ckpt:
        pred = Predictor.from_checkpoint(args.ckpt, device="cpu", batch_size=args.batch_size)
        own = pred.data_geometry.to_dict() if pred.spacing_mm else None  # spacing and window
        run(f"{Path(args.ckpt).name} ({pred.describe()['net']})", pred, own, scans)
    if args.paper:
        net = build_net("unetplusplus", in_channels=2, channels=[32, 64, 128, 256, 512]).eval()
        pred = Predictor(net, {}, "cpu", args.batch_size, name="paper U-Net++ 32-512")
        own = {"spacing_mm": args.paper_spacing}
        run("paper U-Net++ 32-512 (random)", pred, own, scans[: args.paper_scans])
    return 0


if __name__ == "__main__":
    sys.exit(main())

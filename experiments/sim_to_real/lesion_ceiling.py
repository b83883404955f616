"""How many COCA expert lesions any model could find on a training grid.

A model trained at ``spacing_mm`` with a ``fov_mm`` window can only call calcium where the
Predictor lets it: inside the window, where the native HU reach the threshold, and within one
training-grid pixel of that grid's own >= threshold candidates
(:data:`cac_lightning.inference.predictor.JUDGED_MARGIN_PX`). A small lesion whose HU, averaged
onto a coarse grid, fall below the threshold is out of reach. This script runs the Predictor with
a network that calls every pixel calcium, so ``found`` is the ceiling of ``evaluate_coca.py``'s
lesions found for any network at that grid (its vessel assignment is not measured).

Usage::

    python experiments/sim_to_real/lesion_ceiling.py --coca ../shared/data/coca-sample \
        --spacings 1.0 0.7 0.5 native [--fov 128]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from evaluate_coca import evaluate_patient  # the script beside this one

from cac_lightning.inference.predictor import Predictor


class EverythingCalcium(torch.nn.Module):
    """Logits that make every pixel LAD."""

    multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 5, *x.shape[2:], device=x.device)
        logits[:, 2] = 10.0
        return logits


def main(argv: list[str] | None = None) -> dict[str, tuple[int, int]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coca", type=Path, required=True, help="COCA root (Gated_release_final)")
    ap.add_argument("--spacings", nargs="+", default=["1.0", "0.7", "0.5", "native"])
    ap.add_argument("--fov", type=float, default=128.0, help="training window (mm; 0: none)")
    args = ap.parse_args(argv)
    base = args.coca / "Gated_release_final"
    patients = sorted(p.name for p in (base / "patient").iterdir())
    out = {}
    for spacing in args.spacings:
        geometry = {
            "spacing_mm": None if spacing == "native" else float(spacing),
            "fov_mm": args.fov or None,
        }
        predictor = Predictor(EverythingCalcium(), {"data_geometry": geometry}, name="ceiling")
        rows = [evaluate_patient(predictor, base, p) for p in patients]
        found, total = sum(r["found"] for r in rows), sum(r["lesions"] for r in rows)
        per = ", ".join(f"patient {r['patient']} {r['found']}/{r['lesions']}" for r in rows)
        print(f"grid {spacing} mm, window {args.fov or 'none'}: {found}/{total} ({per})")
        out[spacing] = (found, total)
    return out


if __name__ == "__main__":
    main()

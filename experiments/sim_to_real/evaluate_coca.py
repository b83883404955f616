"""Score the COCA sample scans with a checkpoint and compare with the expert ROIs.

Per scan: per-vessel and total Agatston (prediction vs expert, both scored with
:func:`~cac_lightning.scoring.score_scan` on the native voxels), risk category, and expert
lesions found. An expert lesion is a 3D connected component (26-connectivity) of one vessel's
rasterised ROI voxels; it is *found* when predicted calcium (any vessel) overlaps it, and found
*in its vessel* when predicted calcium of the same vessel does.

Usage::

    python experiments/sim_to_real/evaluate_coca.py --ckpt CKPT --coca COCA_ROOT [--patients 2]
        [--lesion-floor P]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.inference.predictor import Predictor
from cac_lightning.io import read_volume
from cac_lightning.scoring.agatston import score_scan
from cac_lightning.sources.coca import parse_coca_xml
from cac_lightning.sources.coca_labels import rasterise_rois
from cac_lightning.vessels import LABELS, VESSELS

__all__ = ["evaluate_patient", "main"]

_26 = np.ones((3, 3, 3), dtype=bool)


def evaluate_patient(predictor: Predictor, base: Path, patient: str) -> dict:
    """Prediction vs expert for one COCA patient folder."""
    series = sorted(d for d in (base / "patient" / patient).iterdir() if d.is_dir())
    vol = read_volume(series[0])
    ref_labels, _ = rasterise_rois(
        parse_coca_xml(base / "calcium_xml" / f"{patient}.xml"), vol.hu, vol.geometry
    )
    floor = predictor.floor_for(vol)
    pred_labels = predictor.predict(vol, floor=floor)
    ref = score_scan(vol.hu, ref_labels, vol.geometry, kvp=vol.kvp)
    pred = score_scan(vol.hu, pred_labels, vol.geometry, kvp=vol.kvp)
    pred_cal = pred.calcium_labels(vol.hu.shape)
    found = found_vessel = total = 0
    for v in VESSELS:
        comp, n = ndi.label(ref_labels == LABELS[v], structure=_26)
        for k in range(1, n + 1):
            m = comp == k
            total += 1
            found += bool((pred_cal[m] > 0).any())
            found_vessel += bool((pred_cal[m] == LABELS[v]).any())
    keys = [*VESSELS, "total"]
    return {
        "patient": patient,
        "expert_agatston": {k: round(ref.vessels[k].agatston, 1) for k in keys},
        "pred_agatston": {k: round(pred.vessels[k].agatston, 1) for k in keys},
        "expert_risk": ref.risk_category,
        "pred_risk": pred.risk_category,
        "lesions": total,
        "found": found,
        "found_in_vessel": found_vessel,
        "lesion_floor": floor,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, action="append", help="repeat to ensemble")
    ap.add_argument("--coca", type=Path, required=True, help="COCA root (Gated_release_final)")
    ap.add_argument("--patients", nargs="*", default=None, help="patient folders (default all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--lesion-floor", type=float, default=None, help="replace the checkpoint's (0: none)"
    )
    args = ap.parse_args(argv)
    base = args.coca / "Gated_release_final"
    patients = args.patients or sorted(p.name for p in (base / "patient").iterdir())
    predictor = Predictor.from_checkpoints(args.ckpt, device="cpu")
    if args.lesion_floor is not None:
        predictor.set_floor(args.lesion_floor)
    rows = [evaluate_patient(predictor, base, p) for p in patients]
    for r in rows:
        per = ", ".join(
            f"{k} {r['pred_agatston'][k]:g}/{r['expert_agatston'][k]:g}" for k in r["pred_agatston"]
        )
        print(
            f"patient {r['patient']}: Agatston pred/expert {per}; risk {r['pred_risk']}/"
            f"{r['expert_risk']}; lesions found {r['found']}/{r['lesions']} "
            f"({r['found_in_vessel']} in the right vessel); lesion-confidence floor "
            f"{r['lesion_floor']:g}"
        )
    right = sum(r["pred_risk"] == r["expert_risk"] for r in rows)
    found = sum(r["found"] for r in rows)
    total = sum(r["lesions"] for r in rows)
    print(f"risk category right: {right}/{len(rows)}; expert lesions found: {found}/{total}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()

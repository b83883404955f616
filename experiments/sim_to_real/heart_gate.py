"""The heart region on the three COCA sample scans: what it holds, and what it removes.

    .venv/bin/python experiments/sim_to_real/heart_gate.py --ckpt outputs/demo/best.ckpt \
        [--coca ../shared/data/coca-sample] [--methods off geometry locator] [--margin 10]

For each scan and each heart method (``off``: no region, calcium anywhere), the checkpoint
predicts through the Predictor exactly as ``cac-score --ckpt --heart METHOD`` does, and the
figures use the definitions of ``../shared/tools/real_scan_check.py`` (imported from there, so
they are the judged ones): per-vessel and total Agatston against the expert, risk category,
expert 2D lesions found, false-positive Agatston (predicted 2D components touching no expert
lesion). For the region itself: its volume (mL) and the expert 2D lesions lying wholly inside.
Without ``--ckpt`` only the region figures are printed. Nothing is tuned here: the region's
constants are anatomical (cac_lightning/heart/geometry.py) and were not fitted to these scans.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO.parent / "shared" / "tools"
EIGHT = np.ones((3, 3))


def _judge():
    sys.path.insert(0, str(TOOLS))
    import real_scan_check  # noqa: PLC0415 - the judged definitions, from ../shared/tools

    return real_scan_check


def lesions(lab: np.ndarray):
    """Expert 2D lesions: (slice, mask) of each 8-connected component per slice."""
    for z in range(lab.shape[0]):
        comp, n = ndi.label(lab[z] > 0, structure=EIGHT)
        for i in range(1, n + 1):
            yield z, comp == i


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", action="append", default=[])
    ap.add_argument("--coca", type=Path, default=REPO.parent / "shared" / "data" / "coca-sample")
    ap.add_argument("--methods", nargs="+", default=["off", "geometry", "locator"])
    ap.add_argument("--margin", type=float, default=None)
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)

    from cac_lightning.heart.region import DEFAULT_MARGIN_MM, find_heart
    from cac_lightning.io import read_volume

    judge = _judge()
    margin = DEFAULT_MARGIN_MM if args.margin is None else args.margin
    predictor = None
    if args.ckpt:
        from cac_lightning.inference import Predictor

        predictor = Predictor.from_checkpoints(args.ckpt, device="cpu")
    pids = sorted(Path(p).stem for p in glob.glob(f"{args.coca}/Gated_release_final/calcium_xml/*"))
    results: dict = {}
    for method in args.methods:
        tot = {"right": 0, "found": 0, "lesions": 0, "fp": 0.0, "ref": 0.0, "inside": 0}
        for pid in pids:
            hu, lab, ps, st = judge.load(str(args.coca), pid)
            series = glob.glob(f"{args.coca}/Gated_release_final/patient/{pid}/*")[0]
            vol = read_volume(series)
            t0 = time.perf_counter()
            region = find_heart(vol.hu, vol.geometry.spacing_zyx, method=method, margin_mm=margin)
            t_region = time.perf_counter() - t0
            inside = n = 0
            for z, m in lesions(lab):
                n += 1
                inside += region is None or bool(region.mask[z][m].all())
            rec = {
                "region_ml": None if region is None else round(region.volume_ml, 1),
                "heart_ml": None
                if region is None or region.heart_ml is None
                else round(region.heart_ml, 1),
                "lesions_inside": f"{inside}/{n}",
                "region_s": round(t_region, 2),
            }
            tot["inside"] += inside
            tot["lesions"] += n
            if predictor is not None:
                pred = predictor.predict(vol, region=region)
                got, ref = judge.agatston(hu, pred, ps, st), judge.agatston(hu, lab, ps, st)
                fp = np.zeros_like(pred)
                found = 0
                for z, m in lesions(lab):
                    found += bool((pred[z][m] > 0).any())
                for z in range(pred.shape[0]):
                    comp, k = ndi.label(pred[z] > 0, structure=EIGHT)
                    for i in range(1, k + 1):
                        c = comp == i
                        if not (lab[z][c] > 0).any():
                            fp[z][c] = pred[z][c]
                fpa = judge.agatston(hu, fp, ps, st)["total"]
                right = judge.category(got["total"]) == judge.category(ref["total"])
                rec.update(
                    {
                        "agatston": {k: round(v, 1) for k, v in got.items()},
                        "expert": {k: round(v, 1) for k, v in ref.items()},
                        "category": f"{judge.category(got['total'])} vs "
                        f"{judge.category(ref['total'])}",
                        "found": f"{found}/{n}",
                        "false_positive_agatston": round(fpa, 1),
                    }
                )
                tot["right"] += right
                tot["found"] += found
                tot["fp"] += fpa
                tot["ref"] += ref["total"]
            results.setdefault(method, {})[pid] = rec
            print(f"{method:9s} patient {pid}: {json.dumps(rec)}")
        line = f"{method:9s} all: expert lesions inside the region {tot['inside']}/{tot['lesions']}"
        if predictor is not None:
            share = tot["fp"] / max(tot["ref"], 1e-9)
            line += (
                f"; categories right {tot['right']}/{len(pids)}, lesions found "
                f"{tot['found']}/{tot['lesions']}, false-positive Agatston {tot['fp']:.1f} "
                f"against expert {tot['ref']:.1f} ({share:.1%})"
            )
        results.setdefault(method, {})["all"] = tot
        print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

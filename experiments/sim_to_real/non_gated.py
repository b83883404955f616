"""Synthetic non-gated chest CT with no coronary calcium: what does a checkpoint score?

    .venv/bin/python experiments/sim_to_real/non_gated.py --ckpt CKPT [--n 10] [--size 256]
        [--methods off geometry locator] [--seed 11]

Issue 22's bar: scans with bone, cartilage and aortic calcium but no coronary calcium score
below 11 Agatston (the C1/C2 side of the C3 bound) in at least 9 of 10. The scans are the
generator's non-gated variant (``NON_GATED``: 5 mm slices, 300-460 mm field of view, 3x motion
blur) with every scan calcium-free (``zero_fraction=1``) and every other finding at its usual
rate; they go through the Predictor and the scorer exactly as ``cac-score --ckpt --heart METHOD``
(clinical per-slice Agatston, scaled by slice spacing / 3 mm). A fresh cohort seed (default 11)
that no training run uses.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

BAR_AGATSTON = 11.0
"""Below this a calcium-free scan counts as scored right (the issue's bar)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", action="append", required=True)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--methods", nargs="+", default=["off", "geometry", "locator"])
    args = ap.parse_args(argv)

    from cac_lightning.inference import Predictor
    from cac_lightning.io.results import scan_report
    from cac_lightning.sources.synthetic.phantom import NON_GATED, SynthOptions, make_scan
    from cac_lightning.volume import Volume

    options = SynthOptions(**{**NON_GATED, "zero_fraction": 1.0})
    predictor = Predictor.from_checkpoints(args.ckpt, device="cpu")
    cfg = predictor.scoring_config()
    scans = []
    for i in range(args.n):
        s = make_scan(args.seed, i, size=args.size, options=options)
        assert not s.labels.any()
        scans.append(Volume(hu=s.hu, geometry=s.geometry, kvp=120.0, scan_id=f"NG{i:02d}"))
    out: dict = {}
    for method in args.methods:
        predictor.set_heart(method)
        totals = []
        for vol in scans:
            labels = predictor.predict(vol, region=predictor.heart_region(vol))
            totals.append(float(scan_report(vol, labels, cfg)["scores"]["total"]["agatston"]))
        below = sum(t < BAR_AGATSTON for t in totals)
        out[method] = {"agatston": [round(t, 1) for t in totals], "below_bar": below}
        print(
            f"{method:9s} below {BAR_AGATSTON:g} Agatston: {below}/{len(totals)}; "
            f"median {np.median(totals):.1f}, max {max(totals):.1f}; "
            + " ".join(f"{t:.0f}" for t in totals)
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

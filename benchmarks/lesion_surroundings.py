"""How much fine structure surrounds a calcified lesion, real against synthetic?

For every lesion of a slice (2D connected component of the labels: the expert ROIs of the COCA
sample, the generator's labels for synthetic scans) the image is high-pass filtered (HU minus its
1.5 mm Gaussian blur) and the SD of that is taken over the soft-tissue and fat pixels 1.5-8 mm
from the lesion ("near") and 12-25 mm from it ("far"); pixels within 3 mm of lung (<= -300 HU)
or of anything >= 130 HU are left out, so lung borders and bone do not count. "Near" measures
the edges and artefacts next to a plaque (vessel lumen, groove fat, motion, streaks), "far" the
noise and tissue texture. Medians over lesions, by the lesion's peak HU.

Usage::

    python benchmarks/lesion_surroundings.py --coca ../shared/data/coca-sample --n-synth 6
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage as ndi

BINS = ((0, 300), (300, 500), (500, 800), (800, 5000))


def lesion_rings(hu: np.ndarray, labels: np.ndarray, px: float) -> list[tuple[float, float, float]]:
    """``(peak HU, near SD, far SD)`` of each 2D lesion of a scan (see the module docstring)."""
    hp = hu - ndi.gaussian_filter(hu.astype(np.float32), (0, 1.5 / px, 1.5 / px))
    out = []
    for z in np.nonzero(labels.reshape(labels.shape[0], -1).any(axis=1))[0]:
        bad = (hu[z] <= -300) | (hu[z] >= 130)
        ok = ndi.distance_transform_edt(~bad) * px > 3.0
        lab, n = ndi.label(labels[z] > 0)
        for k in range(1, n + 1):
            m = lab == k
            d = ndi.distance_transform_edt(~m) * px
            near, far = ok & (d > 1.5) & (d < 8.0), ok & (d > 12.0) & (d < 25.0)
            if near.sum() >= 50 and far.sum() >= 200:
                out.append(
                    (float(hu[z][m].max()), float(hp[z][near].std()), float(hp[z][far].std()))
                )
    return out


def summary(rows: list[tuple[float, float, float]]) -> list[str]:
    """One line per peak-HU bin: lesions, median near and far SD, median near/far ratio."""
    r = np.asarray(rows, dtype=float).reshape(-1, 3)
    lines = []
    for lo, hi in ((0, 1e9), *BINS):
        s = r[(r[:, 0] >= lo) & (r[:, 0] < hi)]
        if len(s):
            label = "all" if hi == 1e9 else f"{lo}-{hi} HU"
            lines.append(
                f"  {label:>12}: {len(s):3d} lesions, near SD {np.median(s[:, 1]):5.1f}, "
                f"far SD {np.median(s[:, 2]):5.1f}, near/far {np.median(s[:, 1] / s[:, 2]):.2f}"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coca", help="COCA root (Gated_release_final); skipped when not given")
    ap.add_argument("--n-synth", type=int, default=6, help="synthetic scans (512², in memory)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic cohort seed")
    args = ap.parse_args(argv)
    if args.coca:
        from cac_lightning.sources.synthetic.stats import coca_scans

        rows = []
        for hu, labels, g in coca_scans(args.coca):
            rows += lesion_rings(hu, labels, g.pixel_spacing[0])
        print("COCA sample:", *summary(rows), sep="\n")
    from cac_lightning.sources.synthetic import COHORT_VERSION, make_scan

    rows = []
    for i in range(args.n_synth):
        s = make_scan(args.seed, i, 512)
        rows += lesion_rings(s.hu, s.labels, s.geometry.pixel_spacing[0])
    print(f"synthetic (version {COHORT_VERSION}, seed {args.seed}, {args.n_synth} scans):")
    print(*summary(rows), sep="\n")


if __name__ == "__main__":
    main()

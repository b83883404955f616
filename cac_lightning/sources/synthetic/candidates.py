"""Where the non-coronary candidate voxels lie: the same rough regions on synthetic and real scans.

A candidate voxel is >= the calcium threshold (130 HU at 120 kVp) and carries no calcium label:
everything a model must learn to leave alone. Each 2D connected component of candidates in a
slice is assigned a region from the image alone, relative to the convex hull of the slice's
lungs (HU < -500 inside the body, components >= :data:`LUNG_MIN_MM2`):

- inside the hull means more than :data:`HULL_MARGIN_MM` inside it (where the lungs reach in
  front of the sternum, the hull's edge runs through the chest wall);
- ``spine``: >= :data:`SPINE_MIN_MM2` with its centroid in the posterior 40 % of the rows
  (:data:`SPINE_ROW`; both sources centre the field of view on the heart): the vertebral body,
  with any osteophyte touching it; or outside the hull behind its centroid within
  :data:`MIDLINE_MM` of its midline (posterior arch);
- ``sternum``: outside the hull, anterior, within :data:`MIDLINE_MM` of the midline;
- ``anterior wall``: outside the hull, anterior, off the midline (costal cartilage, anterior
  rib ends);
- ``ribs``: outside the hull, posterior or lateral, off the midline;
- ``mediastinum``: inside the hull otherwise (aortic wall, valve and annulus calcium, stents,
  clips, and whatever else dense lies by the heart);
- ``no lung``: slices without lung (below the diaphragm).

Rough by design (no anatomy model): the point is to compare proportions between sources with
one piece of code. ``python -m cac_lightning.sources.synthetic.candidates SOURCE ...`` prints
one column per source (a COCA root or a cohort folder with ``manifest.csv``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU

__all__ = [
    "HULL_MARGIN_MM",
    "LUNG_MIN_MM2",
    "MIDLINE_MM",
    "REGIONS",
    "SPINE_MIN_MM2",
    "SPINE_ROW",
    "candidate_regions",
    "main",
]

REGIONS = ("spine", "sternum", "anterior wall", "ribs", "mediastinum", "no lung")
LUNG_MIN_MM2 = 200.0
SPINE_MIN_MM2 = 150.0
HULL_MARGIN_MM = 10.0
SPINE_ROW = 0.6
MIDLINE_MM = 20.0


def _slice_regions(hu: np.ndarray, lab: np.ndarray, px: tuple[float, float], thr: float):
    """Candidate area (mm^2) by region of one slice."""
    from skimage.morphology import convex_hull_image

    area = px[0] * px[1]
    out = dict.fromkeys(REGIONS, 0.0)
    cand = (hu >= thr) & (lab == 0)
    if not cand.any():
        return out
    # Lung: -950..-500 HU after a 1 mm blur (not the air around the body, ~-1000 HU); the
    # body's outline is no help, as the field of view often cuts the chest wall.
    smooth = ndi.gaussian_filter(hu.astype(np.float32), 1.0 / px[0])
    # eroded by 2 mm: the thin band where the skin meets the air around the body is no lung
    lungish = (smooth > -950) & (smooth < -500)
    comps, n = ndi.label(ndi.binary_erosion(lungish, iterations=max(int(round(2.0 / px[0])), 1)))
    lung = np.zeros(hu.shape, dtype=bool)
    if n:
        sizes = ndi.sum_labels(np.ones(hu.shape), comps, index=np.arange(1, n + 1)) * area
        lung = np.isin(comps, np.flatnonzero(sizes >= LUNG_MIN_MM2) + 1)
    if not lung.any():
        out["no lung"] = float(cand.sum()) * area
        return out
    hull = convex_hull_image(lung)
    hy, hx = (float(c.mean()) for c in np.nonzero(hull))
    depth = ndi.distance_transform_edt(hull) * px[0]  # mm inside the hull
    cl, m = ndi.label(cand, structure=np.ones((3, 3)))
    for k, sl in enumerate(ndi.find_objects(cl), start=1):
        ys, xs = np.nonzero(cl[sl] == k)
        ys, xs = ys + sl[0].start, xs + sl[1].start
        cy, cx = float(ys.mean()), float(xs.mean())
        posterior = cy > hy
        midline = abs(cx - hx) * px[1] < MIDLINE_MM
        if ys.size * area >= SPINE_MIN_MM2 and cy > SPINE_ROW * hu.shape[0]:
            region = "spine"
        elif depth[int(round(cy)), int(round(cx))] > HULL_MARGIN_MM:
            region = "mediastinum"
        elif not posterior:
            region = "sternum" if midline else "anterior wall"
        else:
            region = "spine" if midline else "ribs"
        out[region] += ys.size * area
    return out


def candidate_regions(
    hu: np.ndarray, labels: np.ndarray, pixel_spacing: tuple[float, float],
    threshold_hu: float = DEFAULT_THRESHOLD_HU,
) -> dict[str, float]:  # fmt: skip
    """Non-coronary candidate area of a scan by region (see the module docstring): mm^2
    summed over slices (x slice spacing for a volume).

    Args:
        hu: (z, y, x) HU, y from anterior to posterior.
        labels: (z, y, x) calcium labels (0 = none).
        pixel_spacing: (row, column) mm.
        threshold_hu: calcium threshold.

    Returns:
        mm^2 per region of :data:`REGIONS`.
    """
    total = dict.fromkeys(REGIONS, 0.0)
    for z in range(hu.shape[0]):
        for k, v in _slice_regions(hu[z], labels[z], pixel_spacing, threshold_hu).items():
            total[k] += v
    return total


def _scans(source: Path):
    from cac_lightning.sources.synthetic.stats import coca_scans

    if (source / "Gated_release_final").is_dir() or (source / "calcium_xml").is_dir():
        for hu, labels, geometry in coca_scans(source):
            yield hu, labels, geometry.pixel_spacing
        return
    from cac_lightning.io import read_label_map, read_volume
    from cac_lightning.io.manifest import read_manifest

    for row in read_manifest(source):
        vol = read_volume(row.image)
        yield vol.hu, read_label_map(row.label, vol.geometry), vol.geometry.pixel_spacing


def main(argv: list[str] | None = None) -> int:
    """Print the share of non-coronary candidate voxels by region, one column per source."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", type=Path, help="COCA roots or cohort folders")
    args = ap.parse_args(argv)
    cols = []
    for src in args.sources:
        total = dict.fromkeys(REGIONS, 0.0)
        n = 0
        for hu, labels, px in _scans(src):
            for k, v in candidate_regions(hu, labels, px).items():
                total[k] += v
            n += 1
        cols.append((f"{src.name} ({n} scans)", total))
    print("| region | " + " | ".join(c for c, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for r in REGIONS:
        cells = [f"{100.0 * t[r] / max(sum(t.values()), 1):.1f} %" for _, t in cols]
        print(f"| {r} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

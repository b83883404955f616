"""Measure the heart locator on the three real COCA sample scans (never trained or tuned on).

For each scan: predicted heart + pericardium volume (mL, probability >= 0.5), its z extent, and
the share of expert calcium voxels and of expert 2D lesions (8-connected per slice) inside the
heart mask dilated by 0, 5, 10 and 15 mm (a lesion counts when any of its voxels is inside;
``all`` when every voxel is), and the share of the other voxels >= 130 HU (bone, cartilage,
aortic and valve calcium: what the gate should remove) inside it (``oth``). Writes a PNG of
axial slices per scan (heart contour red, 10 mm margin yellow, expert calcium cyan) under
``--png-dir``.

Usage (repository root):
    PYTHONPATH=$PWD .venv/bin/python experiments/heart/measure_locator.py \
        [--coca ../shared/data/coca-sample] [--weights PATH] [--png-dir /tmp/heart_png]
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.heart.locator import HeartLocator
from cac_lightning.io import read_volume
from cac_lightning.sources.coca_labels import rasterise_rois
from cac_lightning.sources.coca_xml import parse_coca_xml

MARGINS_MM = (0, 5, 10, 15)
EIGHT = np.ones((3, 3), dtype=bool)


def lesions(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Expert 2D lesions: (slice, boolean in-plane mask) per 8-connected component."""
    out = []
    for z in range(labels.shape[0]):
        comp, n = ndi.label(labels[z] > 0, structure=EIGHT)
        out += [(z, comp == i) for i in range(1, n + 1)]
    return out


def save_png(path, hu, mask, wide, labels, spacing) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = np.nonzero(mask.any((1, 2)))[0]
    zl = np.nonzero(labels.any((1, 2)))[0]
    picks = sorted({*np.linspace(zs.min(), zs.max(), 4).astype(int)} | {int(np.median(zl))})
    fig, axs = plt.subplots(1, len(picks), figsize=(4 * len(picks), 4.4))
    for ax, z in zip(np.atleast_1d(axs), picks, strict=True):
        ax.imshow(hu[z], cmap="gray", vmin=-300, vmax=500)
        ax.contour(mask[z], [0.5], colors="r", linewidths=1)
        ax.contour(wide[z], [0.5], colors="y", linewidths=0.7)
        if labels[z].any():
            ax.contour(labels[z] > 0, [0.5], colors="c", linewidths=1)
        ax.set_title(f"slice {z}/{hu.shape[0]}  z={z * spacing[0]:.0f} mm")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coca", default="../shared/data/coca-sample")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--png-dir", default="/tmp/heart_png")
    a = ap.parse_args()
    os.makedirs(a.png_dir, exist_ok=True)
    loc = HeartLocator.load(a.weights)
    root = f"{a.coca}/Gated_release_final"
    head = "| scan | grid (z,y,x) @ mm | heart mL | heart z (slices) | s |"
    head += "".join(f" vox {m} mm | les {m} mm (all) | oth {m} mm |" for m in MARGINS_MM)
    print(head)
    print("|" + "---|" * (5 + 3 * len(MARGINS_MM)))
    for pid in sorted(os.listdir(f"{root}/patient")):
        series = glob.glob(f"{root}/patient/{pid}/*")[0]
        vol = read_volume(series)
        sp = vol.geometry.spacing_zyx
        labels, _ = rasterise_rois(
            parse_coca_xml(f"{root}/calcium_xml/{pid}.xml"), vol.hu, vol.geometry
        )
        t = time.time()
        prob = loc.probability(vol.hu, sp)
        secs = time.time() - t
        mask = prob >= 0.5
        ml = mask.sum() * np.prod(sp) / 1000.0
        zs = np.nonzero(mask.any((1, 2)))[0]
        dist = ndi.distance_transform_edt(~mask, sampling=sp) if mask.any() else None
        calc = labels > 0
        other = (vol.hu >= 130) & ~calc
        les = lesions(labels)
        row = (
            f"| {pid} | {vol.hu.shape} @ ({sp[0]:.2f}, {sp[1]:.3f}) | {ml:.0f} | "
            f"{zs.min() if zs.size else '-'}-{zs.max() if zs.size else '-'} of "
            f"{vol.hu.shape[0]} | {secs:.1f} |"
        )
        wide = None
        for m in MARGINS_MM:
            inside = dist <= m if dist is not None else np.zeros_like(mask)
            if m == 10:
                wide = inside
            fv = inside[calc].mean() if calc.any() else float("nan")
            any_in = sum(bool(inside[z][c].any()) for z, c in les)
            all_in = sum(bool(inside[z][c].all()) for z, c in les)
            row += f" {fv:.3f} | {any_in}/{len(les)} ({all_in}) | {inside[other].mean():.3f} |"
        print(row, flush=True)
        if mask.any():
            save_png(f"{a.png_dir}/coca_{pid}.png", vol.hu, mask, wide, labels, sp)


if __name__ == "__main__":
    main()

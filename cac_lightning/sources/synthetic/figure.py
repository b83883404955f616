"""Figure of a synthetic slice with its calcium labels (the docs picture).

Usage::

    python -m cac_lightning.sources.synthetic.figure docs/synthetic_slice.png [--seed 0 --index 0]

Left: CT slice (in :data:`~cac_lightning.render.DISPLAY_WINDOW`) with the label overlay
coloured by vessel. Right: the model's second input channel (HU >= 130): labelled calcium in
colour, everything else that crosses the threshold (bone, aortic/valve calcium, stents) in
white. Top row: a slice with several labelled vessels; bottom row: the slice of another scan
with the most hard-negative calcium (stent, aortic or valve calcification).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from cac_lightning.io.atomic import atomic_write_png
from cac_lightning.render.overlay import DISPLAY_WINDOW
from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.sources.synthetic.phantom import SynthScan, make_scan
from cac_lightning.vessels import LABELS, VESSEL_COLORS, VESSELS

__all__ = ["VESSEL_COLOURS", "best_slice", "plot_slices"]

VESSEL_COLOURS = {v: "#{:02x}{:02x}{:02x}".format(*VESSEL_COLORS[v]) for v in VESSELS}


def best_slice(scan: SynthScan, negatives: bool = False) -> int:
    """Slice with the most labelled vessels (then the most calcium voxels).

    With ``negatives`` (needs ``make_scan(..., keep_parts=True)``): the slice with the most
    voxels of aortic/valve calcium or stent above 300 HU.
    """
    if negatives:
        dense = (scan.parts["negatives"] > 300).sum(axis=(1, 2))
        return int(np.argmax(dense))
    lab = scan.labels
    n_vessels = np.array([len(np.unique(s[s > 0])) for s in lab])
    calcium = np.count_nonzero(lab, axis=(1, 2))
    return int(np.lexsort((calcium, n_vessels))[-1])


def plot_slices(panels: list[tuple[SynthScan, int, str]], path: str | Path) -> Path:
    """Write a PNG with one row per ``(scan, slice, caption)`` (palette PNG, < 300 kB).

    Each row: the CT slice (in the display window) with the label overlay, and the HU >= 130
    mask with labelled calcium in colour and everything else above the threshold in white.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from PIL import Image

    lo, hi = DISPLAY_WINDOW
    cmap = ListedColormap([(0, 0, 0, 0)] + [VESSEL_COLOURS[v] for v in VESSELS])
    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 4.3 * len(panels) + 0.5), squeeze=False)
    for row, (scan, k, caption) in zip(axes, panels, strict=True):
        hu, lab = scan.hu[k], scan.labels[k]
        fov = scan.geometry.pixel_spacing[0] * hu.shape[1]
        extent = (0, fov, fov, 0)
        overlay = np.ma.masked_equal(lab, 0)
        row[0].imshow(hu, cmap="gray", vmin=lo, vmax=hi, extent=extent)
        row[1].imshow(hu >= DEFAULT_THRESHOLD_HU, cmap="gray", vmin=0, vmax=1, extent=extent)
        for ax in row:
            ax.imshow(overlay, cmap=cmap, vmin=0, vmax=4, interpolation="nearest", extent=extent)
            ax.set_xticks(np.arange(0, fov, 50))
            ax.set_yticks(np.arange(0, fov, 50))
            ax.tick_params(labelsize=8)
        row[0].set_title(
            f"{caption}: CT (W {hi - lo:.0f} / L {(hi + lo) / 2:.0f}) + labels", fontsize=9
        )
        row[1].set_title(
            f"HU >= {DEFAULT_THRESHOLD_HU:.0f}; white = not coronary calcium", fontsize=9
        )
    handles = [Patch(color=VESSEL_COLOURS[v], label=f"{LABELS[v]} {v}") for v in VESSELS]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.text(0.99, 0.005, "mm; patient right on the image left", ha="right", fontsize=7)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    buf.seek(0)
    return atomic_write_png(Image.open(buf).convert("RGB"), path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Plot synthetic slices with their labels.")
    p.add_argument("out", help="PNG path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--index", type=int, default=0, help="scan for the labelled slice")
    p.add_argument("--stent-index", type=int, default=1, help="scan for the hard-negative slice")
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args(argv)
    a = make_scan(args.seed, args.index, args.size)
    b = make_scan(args.seed, args.stent_index, args.size, keep_parts=True)
    ka, kb = best_slice(a), best_slice(b, negatives=True)
    panels = [
        (a, ka, f"{a.patient_id} slice {ka + 1}/{a.hu.shape[0]}"),
        (b, kb, f"{b.patient_id} slice {kb + 1} ({', '.join(b.meta['negatives'])})"),
    ]
    plot_slices(panels, args.out)


if __name__ == "__main__":
    main()

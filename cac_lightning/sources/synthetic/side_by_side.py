"""Side-by-side picture: one real gated CaSc slice next to a synthetic one (docs/ figure).

Both slices are cut to the same square field of view around the image centre, resampled to the
same pixel size and shown in the same window (:data:`~cac_lightning.render.DISPLAY_WINDOW`),
grey levels only: no DICOM metadata and no text are written into the image (the captions live
in the docs).

Usage::

    python -m cac_lightning.sources.synthetic.side_by_side COCA_ROOT docs/real_vs_synthetic.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_write_png
from cac_lightning.render.overlay import grey

__all__ = ["centre_crop", "main", "side_by_side"]


def centre_crop(sl: np.ndarray, px: float, fov_mm: float, out_px: int) -> np.ndarray:
    """The central ``fov_mm`` square of slice ``sl`` (pixel ``px`` mm) as ``out_px``² HU."""
    z = ndi.zoom(sl.astype(np.float32), px * out_px / fov_mm, order=1, mode="nearest")
    c0, c1, h = z.shape[0] // 2, z.shape[1] // 2, out_px // 2
    if min(z.shape) < out_px:
        raise InputError(f"field of view {fov_mm} mm is larger than the slice")
    return z[c0 - h : c0 - h + out_px, c1 - h : c1 - h + out_px]


def side_by_side(
    real: tuple[np.ndarray, float],
    synth: tuple[np.ndarray, float],
    path: str | Path,
    fov_mm: float = 160.0,
    out_px: int = 320,
) -> Path:
    """Write a greyscale PNG: real slice (left) | synthetic slice (right), same FOV and window."""
    a = grey(centre_crop(real[0], real[1], fov_mm, out_px)).astype(np.uint8)
    b = grey(centre_crop(synth[0], synth[1], fov_mm, out_px)).astype(np.uint8)
    gap = np.full((out_px, 4), 255, dtype=np.uint8)
    return atomic_write_png(np.concatenate([a, gap, b], axis=1), path)


def main(argv: list[str] | None = None) -> None:
    from cac_lightning.io import read_volume
    from cac_lightning.sources.synthetic.phantom import make_scan

    p = argparse.ArgumentParser(description="Real COCA slice next to a synthetic slice.")
    p.add_argument("coca", type=Path, help="COCA root (Gated_release_final)")
    p.add_argument("out", help="PNG path")
    p.add_argument("--patient", default="1", help="COCA patient folder name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--index", type=int, default=2, help="synthetic scan")
    p.add_argument("--fov", type=float, default=160.0, help="field of view shown (mm)")
    args = p.parse_args(argv)
    base = args.coca / "Gated_release_final"
    series = sorted(d for d in (base / "patient" / args.patient).iterdir() if d.is_dir())
    if not series:
        raise InputError(f"no series for COCA patient {args.patient}")
    v = read_volume(series[0])
    s = make_scan(args.seed, args.index, 512)
    real = (v.hu[v.hu.shape[0] // 2], float(v.geometry.pixel_spacing[0]))
    synth = (s.hu[s.hu.shape[0] // 2], float(s.geometry.pixel_spacing[0]))
    side_by_side(real, synth, args.out, fov_mm=args.fov)


if __name__ == "__main__":
    main()

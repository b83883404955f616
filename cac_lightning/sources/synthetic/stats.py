"""Image and lesion statistics of a cohort, measured the same way on synthetic and real scans.

Used to calibrate the phantom on the COCA sample (``cac-synth --stats``). Definitions:

- lesion (count): a 3D connected component (26-connectivity) of one vessel's label voxels;
- lesion area and peak HU: per slice, each 2D connected component (8-connectivity) of a vessel's
  label voxels, as in the per-slice expert ROIs of COCA (area in mm^2, maximum HU);
- bone slices: share of slices holding a connected region of >= 130 HU outside the calcium
  labels larger than :data:`BONE_MIN_MM2`;
- noise SD: HU standard deviation in a circle of radius :data:`ROI_RADIUS_MM` at the centroid of
  the heart's 0-100 HU region (smoothed, central slices), median over the 5 slices around it;
- per-tissue HU (median and SD of lung, fat, soft tissue, bone) and the noise power spectrum of
  flat soft-tissue and fat ROIs: :mod:`.realism`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.errors import InputError
from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.sources.synthetic.realism import (
    TISSUE_WINDOWS,
    noise_power_spectrum,
    nps_bins,
    nps_mean_freq,
    tissue_hu,
)
from cac_lightning.vessels import LABELS, VESSELS
from cac_lightning.volume import Geometry

__all__ = [
    "BONE_MIN_MM2",
    "ROI_RADIUS_MM",
    "CohortStats",
    "coca_scans",
    "coca_stats",
    "cohort_stats",
    "format_stats",
    "manifest_stats",
    "scan_stats",
]

log = logging.getLogger(__name__)

BONE_MIN_MM2 = 5.0
ROI_RADIUS_MM = 8.0
_EIGHT = np.ones((3, 3), dtype=bool)
_TWENTY_SIX = np.ones((3, 3, 3), dtype=bool)


@dataclass
class CohortStats:
    """Pooled statistics of one source.

    Attributes:
        source: a short name for the column header.
        n_scans: scans measured.
        lesions: per vessel, the lesion count of each scan.
        area_mm2: per-slice lesion areas (all vessels).
        peak_hu: per-slice lesion peak HU.
        bone_fraction: per scan, the share of slices with bone >= 130 HU.
        bone_area_cm2: per slice, the area >= 130 HU outside the labels (cm^2).
        noise_sd: per scan, the blood-pool noise SD (HU).
        tissue: per tissue (lung, fat, soft, bone), per scan ``(median, sd)`` HU.
        nps: per region (soft, fat), per scan the radial NPS on :func:`.realism.nps_bins`.
    """

    source: str
    n_scans: int = 0
    lesions: dict[str, list[int]] = field(default_factory=lambda: {v: [] for v in VESSELS})
    area_mm2: list[float] = field(default_factory=list)
    peak_hu: list[float] = field(default_factory=list)
    bone_fraction: list[float] = field(default_factory=list)
    bone_area_cm2: list[float] = field(default_factory=list)
    noise_sd: list[float] = field(default_factory=list)
    tissue: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {k: [] for k in TISSUE_WINDOWS}
    )
    nps: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"soft": [], "fat": []})

    def add(self, s: dict) -> None:
        """Pool one :func:`scan_stats` result."""
        self.n_scans += 1
        for v in VESSELS:
            self.lesions[v].append(s["lesions"][v])
        self.area_mm2.extend(s["area_mm2"])
        self.peak_hu.extend(s["peak_hu"])
        self.bone_fraction.append(s["bone_fraction"])
        self.bone_area_cm2.extend(s["bone_area_cm2"])
        if np.isfinite(s["noise_sd"]):
            self.noise_sd.append(s["noise_sd"])
        for k in self.tissue:
            self.tissue[k].append(s["tissue"][k])
        for k in self.nps:
            if np.isfinite(s["nps"][k]).any():
                self.nps[k].append(s["nps"][k])


def _noise_sd(hu: np.ndarray, geometry: Geometry) -> float:
    """Blood-pool noise SD (see module docstring); NaN when no heart region is found."""
    px = float(geometry.pixel_spacing[0])
    nz = hu.shape[0]
    lo, hi = nz // 4, max(nz // 4 + 1, (3 * nz) // 4)
    sub = hu[lo:hi].astype(np.float32)
    smooth = ndi.gaussian_filter(sub, (0, 2.0 / px, 2.0 / px))
    mask = (smooth > 0) & (smooth < 100)
    r = max(int(round(ROI_RADIUS_MM / px)), 1)
    mask = np.stack([ndi.distance_transform_edt(m) > r if m.any() else m for m in mask])
    lab, n = ndi.label(mask)
    if n == 0:
        return float("nan")
    sizes = ndi.sum_labels(mask, lab, index=np.arange(1, n + 1))
    zc, yc, xc = (int(round(c)) for c in ndi.center_of_mass(lab == int(np.argmax(sizes)) + 1))
    Y, X = np.ogrid[: hu.shape[1], : hu.shape[2]]
    roi = (Y - yc) ** 2 + (X - xc) ** 2 <= r * r
    sds = [float(sub[k][roi].std()) for k in range(max(zc - 2, 0), min(zc + 3, sub.shape[0]))]
    return float(np.median(sds))


def scan_stats(hu: np.ndarray, labels: np.ndarray, geometry: Geometry) -> dict:
    """Statistics of one scan (definitions in the module docstring).

    Args:
        hu: int16 (z, y, x) CT numbers.
        labels: uint8 (z, y, x) calcium labels (0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA).
        geometry: the voxel grid.
    """
    if hu.shape != labels.shape:
        raise InputError(f"image {hu.shape} and labels {labels.shape} differ in shape")
    px_area = geometry.pixel_area_mm2
    lesions, areas, peaks = {}, [], []
    for v in VESSELS:
        m = labels == LABELS[v]
        lesions[v] = int(ndi.label(m, structure=_TWENTY_SIX)[1]) if m.any() else 0
        for k in np.nonzero(m.any(axis=(1, 2)))[0]:
            lab, n = ndi.label(m[k], structure=_EIGHT)
            idx = np.arange(1, n + 1)
            areas.extend((ndi.sum_labels(m[k], lab, idx) * px_area).tolist())
            peaks.extend(ndi.maximum(hu[k], lab, idx).tolist())
    bone_slices, bone_area = 0, []
    min_px = BONE_MIN_MM2 / px_area
    for k in range(hu.shape[0]):
        b = (hu[k] >= DEFAULT_THRESHOLD_HU) & (labels[k] == 0)
        bone_area.append(float(b.sum()) * px_area / 100.0)
        if b.any():
            lab, n = ndi.label(b, structure=_EIGHT)
            if n and ndi.sum_labels(b, lab, np.arange(1, n + 1)).max() >= min_px:
                bone_slices += 1
    px = float(geometry.pixel_spacing[0])
    return {
        "lesions": lesions,
        "area_mm2": areas,
        "peak_hu": peaks,
        "bone_fraction": bone_slices / max(hu.shape[0], 1),
        "bone_area_cm2": bone_area,
        "noise_sd": _noise_sd(hu, geometry),
        "tissue": tissue_hu(hu, px),
        "nps": {k: noise_power_spectrum(hu, px, k) for k in ("soft", "fat")},
    }


def coca_scans(root: str | Path):
    """Yield ``(hu, labels, geometry)`` of each scan of a COCA root (``Gated_release_final``).

    Labels are the expert ROIs rasterised on the native voxels (vessel numbers, HU >= 130).
    """
    from cac_lightning.io import read_volume
    from cac_lightning.sources.coca import parse_coca_xml
    from cac_lightning.sources.coca_labels import rasterise_rois

    root = Path(root)
    base = root / "Gated_release_final" if (root / "Gated_release_final").is_dir() else root
    patients = sorted((base / "patient").iterdir()) if (base / "patient").is_dir() else []
    if not patients:
        raise InputError(f"{root}: no COCA patients under {base / 'patient'}")
    for pdir in patients:
        xml = base / "calcium_xml" / f"{pdir.name}.xml"
        series = [d for d in sorted(pdir.iterdir()) if d.is_dir()]
        if not series:
            log.warning("COCA patient folder %s holds no series; skipped", pdir.name)
            continue
        vol = read_volume(series[0])
        rois = parse_coca_xml(xml) if xml.is_file() else []
        labels, _ = rasterise_rois(rois, vol.hu, vol.geometry, where=f"{pdir.name}: ")
        yield vol.hu, labels, vol.geometry


def coca_stats(root: str | Path) -> CohortStats:
    """Statistics of a COCA root (holding ``Gated_release_final``)."""
    out = CohortStats(source=f"COCA ({Path(root).name})")
    for hu, labels, geometry in coca_scans(root):
        out.add(scan_stats(hu, labels, geometry))
    return out


def manifest_stats(path: str | Path) -> CohortStats:
    """Statistics of a cohort folder with ``manifest.csv`` (image + label per row)."""
    from cac_lightning.io import read_label_map, read_volume
    from cac_lightning.io.manifest import read_manifest

    path = Path(path)
    rows = read_manifest(path)
    out = CohortStats(source=path.name if path.is_dir() else path.parent.name)
    for row in rows:
        vol = read_volume(row.image)
        labels = (
            read_label_map(row.label, vol.geometry)
            if row.label is not None
            else np.zeros(vol.hu.shape, dtype=np.uint8)
        )
        out.add(scan_stats(vol.hu, labels, vol.geometry))
    return out


def cohort_stats(path: str | Path) -> CohortStats:
    """Statistics of a synthetic cohort folder (``manifest.csv``) or a COCA root."""
    path = Path(path)
    if (path / "Gated_release_final").is_dir() or (path / "calcium_xml").is_dir():
        return coca_stats(path)
    if (path.is_file() and path.suffix == ".csv") or (path / "manifest.csv").is_file():
        return manifest_stats(path)
    raise InputError(f"{path}: neither a cohort folder (manifest.csv) nor a COCA root")


def _dist(values, digits: int = 1) -> str:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "-"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    d = digits
    return f"{med:.{d}f} [{q1:.{d}f}-{q3:.{d}f}] ({v.min():.{d}f}-{v.max():.{d}f})"


def _rows(s: CohortStats) -> list[tuple[str, str]]:
    rows = [("scans", str(s.n_scans))]
    for v in VESSELS:
        c = np.asarray(s.lesions[v], dtype=float)
        rows.append(
            (f"lesions/scan {v} (mean, max)", f"{c.mean():.2f}, {int(c.max())}" if c.size else "-")
        )
    tot = np.sum([s.lesions[v] for v in VESSELS], axis=0) if s.n_scans else []
    rows += [
        ("lesions/scan all", _dist(tot)),
        ("per-slice lesions", str(len(s.area_mm2))),
        ("lesion area mm2", _dist(s.area_mm2)),
        ("lesion peak HU", _dist(s.peak_hu)),
        ("bone >=130 HU slices", _dist(s.bone_fraction)),
        ("non-calcium >=130 HU cm2/slice", _dist(s.bone_area_cm2)),
        ("blood-pool noise SD HU", _dist(s.noise_sd)),
    ]
    for k, vals in s.tissue.items():
        med = [m for m, _ in vals]
        sd = [d for _, d in vals]
        rows.append((f"{k} HU median", _dist(med)))
        rows.append((f"{k} HU SD (noise+texture)", _dist(sd)))
    f = nps_bins()
    show = [int(np.argmin(np.abs(f - g))) for g in (0.125, 0.325, 0.525, 0.725, 0.925)]
    for k, curves in s.nps.items():
        if not curves:
            rows.append((f"NPS {k}", "-"))
            continue
        c = np.nanmedian(np.stack(curves), axis=0)
        rows.append((f"NPS {k} mean freq c/mm", _dist([nps_mean_freq(n) for n in curves], 3)))
        rel = c[show] / np.nanmax(c)
        label = f"NPS {k} rel. at " + "/".join(f"{f[i]:.2f}" for i in show)
        rows.append((label, " ".join(f"{v:.3f}" for v in rel)))
    return rows


def format_stats(stats: list[CohortStats]) -> str:
    """A plain-text table, one column per source; distributions: median [IQR] (range)."""
    if not stats:
        return ""
    cols = [_rows(s) for s in stats]
    names = [name for name, _ in cols[0]]
    pairs = list(zip(stats, cols, strict=True))
    widths = [max(len(s.source), *(len(v) for _, v in c)) for s, c in pairs]
    w0 = max(len(n) for n in names)
    header = [s.source.ljust(w) for s, w in zip(stats, widths, strict=True)]
    lines = ["  ".join([" " * w0, *header]).rstrip()]
    for i, name in enumerate(names):
        cells = [c[i][1].ljust(w) for c, w in zip(cols, widths, strict=True)]
        lines.append("  ".join([name.ljust(w0), *cells]).rstrip())
    return "\n".join(lines)

"""Image-formation measures compared between synthetic and real scans: tissue HU and noise spectrum.

Both are measured with the same code on any volume (``cac-synth --stats``):

- **per-tissue HU**: the image is smoothed (Gaussian, sigma :data:`SMOOTH_MM`) and cut into
  tissue classes by the smoothed CT number (:data:`TISSUE_WINDOWS`); each class is eroded by
  :data:`EDGE_MM` so that edges do not count, and the median and SD of the *raw* HU inside it are
  reported. The SD therefore holds noise plus texture (lung vessels, trabecular bone).
- **noise power spectrum (NPS)**: square ROIs of side :data:`ROI_MM` lying wholly inside a flat
  region (soft tissue / blood pool 0..90 HU, or fat -160..-60 HU, smoothed) on the central half of
  the slices; each ROI minus its fitted plane is Fourier transformed, ``|F|^2 px^2 / N^2``
  averaged and binned radially in physical frequency (cycles/mm, bins of :data:`NPS_BIN`). Its
  integral is the noise variance; the mean frequency ``sum f NPS / sum NPS`` summarises its
  texture (white noise at 0.4 mm pixels: ~0.75 cycles/mm; a filtered back-projection with a
  smooth kernel: lower).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "EDGE_MM",
    "NPS_BIN",
    "NPS_FMAX",
    "ROI_MM",
    "SMOOTH_MM",
    "TISSUE_WINDOWS",
    "nps_bins",
    "nps_mean_freq",
    "nps_rois",
    "noise_power_spectrum",
    "tissue_hu",
]

SMOOTH_MM = 1.5
EDGE_MM = 2.0
ROI_MM = 16.0
NPS_BIN = 0.05
NPS_FMAX = 1.0
# Smoothed-HU windows of the tissue classes (lower bound inclusive, upper exclusive).
TISSUE_WINDOWS = {
    "lung": (-950.0, -600.0),
    "fat": (-160.0, -60.0),
    "soft": (0.0, 90.0),
    "bone": (180.0, 3072.0),
}
NPS_REGIONS = {"soft": (0.0, 90.0), "fat": (-160.0, -60.0)}


def _central(hu: np.ndarray, max_slices: int = 8) -> np.ndarray:
    """At most ``max_slices`` evenly spaced slices of the central half (float32)."""
    nz = hu.shape[0]
    lo, hi = nz // 4, max(nz // 4 + 1, (3 * nz) // 4)
    step = max(int(np.ceil((hi - lo) / max_slices)), 1)
    return hu[lo:hi:step].astype(np.float32)


def _smooth(sub: np.ndarray, px: float) -> np.ndarray:
    return ndi.gaussian_filter(sub, (0, SMOOTH_MM / px, SMOOTH_MM / px), truncate=3.0)


def tissue_hu(hu: np.ndarray, px: float) -> dict[str, tuple[float, float]]:
    """Median and SD of raw HU per tissue class on the central half of the slices.

    Args:
        hu: (z, y, x) CT numbers.
        px: in-plane pixel spacing (mm).

    Returns:
        ``{tissue: (median, sd)}``; NaNs for a class that is absent.
    """
    sub = _central(hu)
    sm = _smooth(sub, px)
    r = EDGE_MM / px
    out = {}
    for name, (lo, hi) in TISSUE_WINDOWS.items():
        m = (sm >= lo) & (sm < hi)
        m = np.stack([ndi.distance_transform_edt(s) > r if s.any() else s for s in m])
        vals = sub[m]
        out[name] = (float(np.median(vals)), float(vals.std())) if vals.size else (np.nan, np.nan)
    return out


def nps_rois(hu: np.ndarray, px: float, region: str = "soft", max_rois: int = 200) -> np.ndarray:
    """Flat square ROIs (k, N, N) of side :data:`ROI_MM` inside ``region`` (see module doc)."""
    lo, hi = NPS_REGIONS[region]
    sub = _central(hu)
    sm = _smooth(sub, px)
    n = max(int(round(ROI_MM / px)), 8)
    half = n / 2.0 * np.sqrt(2.0)
    rois = []
    for k in range(sub.shape[0]):
        m = (sm[k] >= lo) & (sm[k] < hi)
        if not m.any():
            continue
        inside = ndi.distance_transform_edt(m) > half + 1
        ys, xs = np.nonzero(inside[::n, ::n])
        for y, x in zip(ys * n, xs * n, strict=True):
            y0, x0 = y - n // 2, x - n // 2
            if y0 < 0 or x0 < 0 or y0 + n > sub.shape[1] or x0 + n > sub.shape[2]:
                continue
            rois.append(sub[k, y0 : y0 + n, x0 : x0 + n])
    if not rois:
        return np.zeros((0, n, n), dtype=np.float32)
    arr = np.stack(rois)
    if len(arr) > max_rois:
        arr = arr[np.linspace(0, len(arr) - 1, max_rois).astype(int)]
    return arr


def nps_bins() -> np.ndarray:
    """Centres (cycles/mm) of the radial NPS bins."""
    return (np.arange(int(round(NPS_FMAX / NPS_BIN))) + 0.5) * NPS_BIN


def noise_power_spectrum(hu: np.ndarray, px: float, region: str = "soft") -> np.ndarray:
    """Radially averaged NPS (HU^2 mm^2) on :func:`nps_bins`; NaN where no ROI or no sample.

    Args:
        hu: (z, y, x) CT numbers.
        px: in-plane pixel spacing (mm).
        region: "soft" (blood pool / soft tissue) or "fat".
    """
    rois = nps_rois(hu, px, region)
    nb = len(nps_bins())
    if len(rois) == 0:
        return np.full(nb, np.nan)
    n = rois.shape[1]
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    design = np.stack([np.ones_like(xx).ravel(), xx.ravel(), yy.ravel()], 1)
    flat = rois.reshape(len(rois), -1).T
    coef, *_ = np.linalg.lstsq(design, flat, rcond=None)
    resid = (flat - design @ coef).T.reshape(rois.shape)
    power = np.abs(np.fft.fft2(resid)) ** 2 * (px * px) / (n * n)
    nps2 = power.mean(0)
    f = np.fft.fftfreq(n, d=px)
    fr = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    idx = np.floor(fr / NPS_BIN).astype(int)
    out = np.full(nb, np.nan)
    for b in range(nb):
        sel = idx == b
        if sel.any():
            out[b] = float(nps2[sel].mean())
    return out


def nps_mean_freq(nps: np.ndarray) -> float:
    """Mean frequency (cycles/mm) of an NPS on :func:`nps_bins` (2D-weighted by f)."""
    f = nps_bins()
    ok = np.isfinite(nps)
    if not ok.any():
        return float("nan")
    w = nps[ok] * f[ok]  # ring area grows with f
    return float((w * f[ok]).sum() / w.sum())

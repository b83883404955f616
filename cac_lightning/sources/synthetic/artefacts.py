"""Image formation beyond the point-spread function: slice profile, cardiac motion, streaks.

- :func:`slice_profile`: the anatomy is painted at slice centres; a 3 mm slice averages 3 mm of
  it. With the anatomy linear between neighbouring slice centres, the mean over one slice is
  ``1/8, 3/4, 1/8`` of the previous, own and next slice, which softens oblique surfaces as real
  thick slices do.
- :func:`add_motion`: residual cardiac motion of a gated scan smears each moving dense object
  (plaques, stents, valve and annulus calcium) along one in-plane direction; a Gaussian smear of
  covariance ``M`` keeps the object's mass (``amp * sqrt(det C / det(C + M))``). The right
  coronary artery moves most, the left main least.
- :func:`streaks`: filtered back-projection around dense objects (metal struts, dense calcium)
  leaves bright and dark streaks radiating from the object and a dark beam-hardening halo, in
  proportion to how much dense material a slice holds there.

All draws come from the generator the caller passes (the scan's own "texture" stream), so the
anatomy, plaque and noise draws of a scan do not move when these change.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from cac_lightning.sources.synthetic.grid import Grid
from cac_lightning.sources.synthetic.plaques import Beads

__all__ = ["MOTION_SIGMA_MM", "add_motion", "slice_profile", "streaks"]

SLICE_WEIGHTS = (0.125, 0.75, 0.125)  # mean of a linear profile over one slice (see above)
# Largest motion smear (Gaussian sigma, mm) per moving structure, at the worst motion level;
# a uniform smear of length L has sigma L / sqrt(12) (RCA: up to ~3.5 mm of travel).
MOTION_SIGMA_MM = {
    "LM": 0.35,
    "LAD": 0.5,
    "CX": 0.7,
    "RCA": 1.0,
    "aortic_wall": 0.3,
    "aortic_valve": 0.7,
    "mitral_annulus": 0.9,
}
STREAK_SOURCE_HU = 400.0  # a dense object casts streaks when its blurred peak exceeds this
STREAK_HU_PER_MASS = 1.0 / 200.0  # streak amplitude (HU) per HU*mm^2 of dense material
STREAK_MAX_HU = 150.0
STREAK_WIDTH_MM = 0.5  # Gaussian sigma across a streak
STREAK_DECAY_MM = 20.0  # exponential fall-off along a streak
STREAK_CORE_MM = 1.5  # no streak inside the object itself
HALO_SIGMA_MM = 4.0  # dark beam-hardening halo around the object
HALO_SHARE = 0.25  # its depth, as a share of the streak amplitude


def slice_profile(vol: np.ndarray) -> np.ndarray:
    """Average over the 3 mm slice profile (z is axis 0); float32 in, float32 out."""
    if vol.shape[0] < 2:
        return vol
    w_prev, w_own, w_next = (np.float32(w) for w in SLICE_WEIGHTS)
    out = vol * w_own  # shifted sums: ndimage along axis 0 is several times slower
    out[1:] += w_prev * vol[:-1]
    out[0] += w_prev * vol[0]
    out[:-1] += w_next * vol[1:]
    out[-1] += w_next * vol[-1]
    return out


def motion_level(rng: np.random.Generator) -> float:
    """The scan's motion level in [0, 1]: u^2, so most gated scans hold still."""
    return float(rng.uniform()) ** 2


def add_motion(objs: list[Beads], level: float, rng: np.random.Generator) -> list[Beads]:
    """Smear each object along a random in-plane direction (mass kept).

    Args:
        objs: dense objects (plaques, negatives); a stent moves with its vessel.
        level: the scan's motion level (0 = still).
        rng: the scan's texture generator (one angle per object is drawn, whatever ``level``).

    Returns:
        New :class:`Beads` with widened covariances and lowered amplitudes.
    """
    out = []
    for ob in objs:
        ang = float(rng.uniform(0.0, np.pi))
        sigma = level * MOTION_SIGMA_MM.get(ob.vessel or ob.kind, 0.0)
        if sigma <= 0.0:
            out.append(ob)
            continue
        d = np.array([np.cos(ang), np.sin(ang), 0.0])
        m = sigma**2 * np.outer(d, d)
        covs = ob.covs + m[None]
        keep = np.sqrt(np.linalg.det(ob.covs) / np.linalg.det(covs))
        out.append(replace(ob, covs=covs, amps=ob.amps * keep))
    return out


def _span(grid: Grid, centre_px: float, reach_mm: float) -> slice:
    """Pixel range within ``reach_mm`` of a (fractional) pixel index, clipped to the grid."""
    half = reach_mm / grid.px
    return slice(max(int(centre_px - half), 0), min(int(centre_px + half) + 1, grid.n))


def _pattern(grid: Grid, box, centre, amp: float, rng: np.random.Generator) -> np.ndarray:
    """Streaks and halo (HU) of one source on the in-plane ``box`` (y, x slices)."""
    y = grid.y[box[0]][:, None] - np.float32(centre[1])
    x = grid.x[box[1]][None, :] - np.float32(centre[0])
    r2 = x * x + y * y
    r = np.sqrt(r2)
    k = int(rng.integers(6, 13))
    angles = rng.uniform(0.0, np.pi, size=k)
    # Signed weights, scaled so that overlapping streaks near the object stay about `amp`.
    signs = np.where(rng.uniform(size=k) < 0.5, -1.0, 1.0) * rng.uniform(0.5, 1.0, size=k)
    signs *= np.sqrt(2.0 / k)
    lines = np.zeros_like(r)
    for a, s in zip(angles, signs, strict=True):
        across = x * np.float32(np.sin(a)) - y * np.float32(np.cos(a))
        lines += np.float32(s) * np.exp(-(across * across) / np.float32(2 * STREAK_WIDTH_MM**2))
    core = 1.0 - np.exp(-r2 / np.float32(2 * STREAK_CORE_MM**2))
    out = lines * np.exp(-r / np.float32(STREAK_DECAY_MM)) * core
    out -= np.float32(HALO_SHARE) * np.exp(-r2 / np.float32(2 * HALO_SIGMA_MM**2)) * core
    return np.float32(amp) * out


def streaks(dense: np.ndarray, grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Streak and beam-hardening image (HU, float32 on the grid) of the dense objects.

    Each 2D connected region of ``dense`` >= half of :data:`STREAK_SOURCE_HU` whose peak reaches
    it is a source; its amplitude grows with its mass (HU x mm^2 in the slice), up to
    :data:`STREAK_MAX_HU`; its streaks reach about three decay lengths.
    """
    out = np.zeros(grid.shape, dtype=np.float32)
    reach = 3.0 * STREAK_DECAY_MM
    area = grid.px * grid.px
    for z in np.nonzero(dense.reshape(grid.nz, -1).max(axis=1) >= STREAK_SOURCE_HU)[0]:
        sl = dense[z]
        lab, _ = ndi.label(sl >= 0.5 * STREAK_SOURCE_HU)
        for k, obj in enumerate(ndi.find_objects(lab), start=1):
            vals = np.where(lab[obj] == k, sl[obj], 0.0)
            if vals.max() < STREAK_SOURCE_HU:
                continue
            total = float(vals.sum())
            mass = total * area
            yy, xx = np.indices(vals.shape)
            cy = obj[0].start + float((vals * yy).sum()) / total
            cx = obj[1].start + float((vals * xx).sum()) / total
            c = (float(grid.x[0]) + cx * grid.px, float(grid.y[0]) + cy * grid.px)
            amp = min(STREAK_HU_PER_MASS * mass, STREAK_MAX_HU)
            box = (_span(grid, cy, reach), _span(grid, cx, reach))
            out[z][box] += _pattern(grid, box, c, amp, rng)
    return out

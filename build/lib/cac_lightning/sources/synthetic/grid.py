"""The voxel grid of a synthetic scan and the primitives painted on it.

Coordinates are millimetres in a scan-local patient frame (DICOM LPS axes: x to the patient's
left, y posterior, z superior) whose in-plane origin is the centre of the field of view and whose
z origin is the heart centre. Arrays are indexed (z, y, x) like :class:`~cac_lightning.io.Volume`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "add_gaussian", "ellipsoid_q", "tube_distance"]


@dataclass(frozen=True)
class Grid:
    """A regular grid of ``nz`` axial slices of ``n`` x ``n`` pixels.

    Attributes:
        n: pixels per row and column.
        nz: number of slices.
        fov_mm: in-plane field of view (mm); pixel spacing is ``fov_mm / n``.
        slice_mm: slice spacing and thickness (mm).
        z0_mm: local z (mm) of slice 0 (slices ascend in z).
    """

    n: int
    nz: int
    fov_mm: float
    slice_mm: float
    z0_mm: float

    @property
    def px(self) -> float:
        """Pixel spacing (mm)."""
        return self.fov_mm / self.n

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.nz, self.n, self.n)

    @property
    def x(self) -> np.ndarray:
        """Column centres (n,) in mm."""
        return ((np.arange(self.n) + 0.5) * self.px - self.fov_mm / 2).astype(np.float32)

    @property
    def y(self) -> np.ndarray:
        """Row centres (n,) in mm."""
        return self.x

    @property
    def z(self) -> np.ndarray:
        """Slice centres (nz,) in mm."""
        return (self.z0_mm + np.arange(self.nz) * self.slice_mm).astype(np.float32)

    def box(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index box (z, y, x slices) covering the mm box ``lo``..``hi`` given as (x, y, z).

        Returns None when the box misses the grid.
        """
        lo = np.asarray(lo, dtype=np.float64)
        hi = np.asarray(hi, dtype=np.float64)
        half = self.fov_mm / 2
        i0 = [
            int(np.floor((lo[2] - self.z0_mm) / self.slice_mm)),
            int(np.floor((lo[1] + half) / self.px)),
            int(np.floor((lo[0] + half) / self.px)),
        ]
        i1 = [
            int(np.ceil((hi[2] - self.z0_mm) / self.slice_mm)) + 1,
            int(np.ceil((hi[1] + half) / self.px)) + 1,
            int(np.ceil((hi[0] + half) / self.px)) + 1,
        ]
        dims = self.shape
        out = []
        for a, b, d in zip(i0, i1, dims, strict=True):
            a, b = max(a, 0), min(b, d)
            if a >= b:
                return None
            out.append(slice(a, b))
        return tuple(out)  # type: ignore[return-value]

    def coords(self, box: tuple[slice, slice, slice] | None = None):
        """Broadcastable coordinate arrays ``(Z (k,1,1), Y (1,m,1), X (1,1,l))`` in mm."""
        z, y, x = self.z, self.y, self.x
        if box is not None:
            z, y, x = z[box[0]], y[box[1]], x[box[2]]
        return z[:, None, None], y[None, :, None], x[None, None, :]


def ellipsoid_q(grid: Grid, box, centre, axes: np.ndarray, semi) -> np.ndarray:
    """Normalised squared radius of an ellipsoid on ``box``: <= 1 inside.

    Args:
        grid: the grid.
        box: index box from :meth:`Grid.box`.
        centre: (3,) centre (x, y, z) mm.
        axes: (3, 3) rows are the unit principal directions (x, y, z).
        semi: (3,) semi-axis lengths (mm) along those rows.

    Returns:
        float32 array of the box's shape.
    """
    Z, Y, X = grid.coords(box)
    dx, dy, dz = X - np.float32(centre[0]), Y - np.float32(centre[1]), Z - np.float32(centre[2])
    q = np.zeros(np.broadcast_shapes(Z.shape, Y.shape, X.shape), dtype=np.float32)
    for a, s in zip(np.asarray(axes, dtype=np.float32), semi, strict=True):
        t = (dx * a[0] + dy * a[1] + dz * a[2]) / np.float32(s)
        q += t * t
    return q


def tube_distance(grid: Grid, points: np.ndarray, reach: float) -> tuple[np.ndarray, tuple]:
    """Distance (mm) from voxels to a densely sampled centre-line, within ``reach``.

    Loops over the centre-line samples (not voxels): each updates a small box.

    Args:
        grid: the grid.
        points: (K, 3) centre-line samples (x, y, z) in mm, spaced well below ``reach``.
        reach: distances beyond this are left at ``inf``.

    Returns:
        ``(dist, box)``: float32 distances on the index box around the whole line.
    """
    lo, hi = points.min(0) - reach, points.max(0) + reach
    box = grid.box(lo, hi)
    if box is None:
        return np.full((0, 0, 0), np.inf, dtype=np.float32), (slice(0, 0),) * 3
    dist = np.full(tuple(s.stop - s.start for s in box), np.inf, dtype=np.float32)
    off = np.array([box[0].start, box[1].start, box[2].start])
    for p in points:
        sub = grid.box(p - reach, p + reach)
        if sub is None:
            continue
        Z, Y, X = grid.coords(sub)
        d2 = (X - p[0]) ** 2 + (Y - p[1]) ** 2 + (Z - p[2]) ** 2
        loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sub, off, strict=True))
        np.minimum(dist[loc], np.sqrt(d2), out=dist[loc])
    return dist, box


def add_gaussian(
    out: np.ndarray,
    grid: Grid,
    centre: np.ndarray,
    cov: np.ndarray,
    amplitude: float,
    psf_var: np.ndarray,
    origin: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Add a Gaussian blob seen through the scanner PSF to ``out`` (in place).

    A blob ``A exp(-x^T C^-1 x / 2)`` convolved with a normalised Gaussian PSF of covariance
    ``P`` is ``A sqrt(det C / det(C + P)) exp(-x^T (C + P)^-1 x / 2)``: the exact partial-volume
    image of the blob, evaluated at voxel centres.

    Args:
        out: float32 array; the grid when ``origin`` is zero, else a sub-box starting at ``origin``.
        grid: the grid.
        centre: (3,) blob centre (x, y, z) mm.
        cov: (3, 3) blob covariance (mm^2) in (x, y, z).
        amplitude: peak value of the unblurred blob (HU).
        psf_var: (3,) PSF variances (x, y, z) in mm^2 (scanner blur + pixel/slice box).
        origin: index (z, y, x) of ``out[0, 0, 0]`` in the grid.
    """
    tot = cov + np.diag(psf_var)
    peak = amplitude * np.sqrt(np.linalg.det(cov) / np.linalg.det(tot))
    reach = 3.5 * np.sqrt(np.diag(tot))
    box = grid.box(centre - reach, centre + reach)
    if box is None:
        return
    box = tuple(
        slice(max(s.start, o), min(s.stop, o + d))
        for s, o, d in zip(box, origin, out.shape, strict=True)
    )
    if any(s.start >= s.stop for s in box):
        return
    Z, Y, X = grid.coords(box)
    inv = np.linalg.inv(tot).astype(np.float32)
    dx, dy, dz = X - np.float32(centre[0]), Y - np.float32(centre[1]), Z - np.float32(centre[2])
    m = (
        inv[0, 0] * dx * dx
        + inv[1, 1] * dy * dy
        + inv[2, 2] * dz * dz
        + 2 * (inv[0, 1] * dx * dy + inv[0, 2] * dx * dz + inv[1, 2] * dy * dz)
    )
    loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(box, origin, strict=True))
    out[loc] += np.float32(peak) * np.exp(-0.5 * m)

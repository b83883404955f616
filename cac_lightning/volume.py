"""The in-memory CT volume, its geometry and the HU of air: types every layer shares.

Below both ``io/`` (which reads and writes volumes) and ``scoring/`` (which scores them), so
neither imports the other for these types (docs/architecture.md).

Arrays are indexed (z, y, x) = (slice, row, column). Origin and direction use
the SimpleITK / DICOM LPS convention: ``origin`` is the patient position (mm)
of voxel (0, 0, 0) and ``direction`` is the row-major 3x3 matrix whose
columns are the unit vectors of the x (column), y (row) and z (slice) index
axes, exactly as ``SimpleITK.Image.GetDirection()`` returns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["AIR_HU", "IDENTITY", "Geometry", "Volume"]

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

AIR_HU = -1024
"""HU of air, given to voxels outside a scan's field of view (padding, warps, window cuts)."""


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of a volume.

    Attributes:
        shape: (z, y, x) voxel counts.
        pixel_spacing: (row, column) spacing in mm, i.e. (y, x).
        slice_spacing: distance between slice centres in mm (from positions).
        origin: patient position (x, y, z) in mm of voxel (0, 0, 0).
        direction: row-major 3x3 direction matrix (SimpleITK convention).
        slice_thickness: the SliceThickness tag in mm when known.
    """

    shape: tuple[int, int, int]
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY
    slice_thickness: float | None = None

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return (self.slice_spacing, self.pixel_spacing[0], self.pixel_spacing[1])

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        """Spacing in SimpleITK order (x, y, z)."""
        return (self.pixel_spacing[1], self.pixel_spacing[0], self.slice_spacing)

    @property
    def pixel_area_mm2(self) -> float:
        return self.pixel_spacing[0] * self.pixel_spacing[1]

    @property
    def voxel_volume_mm3(self) -> float:
        return self.pixel_area_mm2 * self.slice_spacing

    def index_to_mm(self, zyx: np.ndarray) -> np.ndarray:
        """Map (..., 3) continuous (z, y, x) indices to patient (x, y, z) mm."""
        zyx = np.asarray(zyx, dtype=np.float64)
        ijk = zyx[..., ::-1] * np.asarray(self.spacing_xyz)
        d = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        return ijk @ d.T + np.asarray(self.origin)

    def same_grid(self, other: Geometry, tol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape, spacing, origin and direction."""
        return (
            tuple(self.shape) == tuple(other.shape)
            and np.allclose(self.spacing_zyx, other.spacing_zyx, atol=tol_mm)
            and np.allclose(self.origin, other.origin, atol=max(tol_mm, 1e-2))
            and np.allclose(self.direction, other.direction, atol=1e-4)
        )


@dataclass
class Volume:
    """A CT volume in Hounsfield units with its geometry and scan metadata.

    Attributes:
        hu: int16 array (z, y, x) in HU, slices in ascending position order.
        geometry: the voxel grid.
        kvp: tube voltage (0018,0060) when known.
        mass_factor: (0018,9352) CalciumScoringMassFactorDevice when present.
        study_uid / series_uid: DICOM identifiers (UIDs, not patient data).
        scan_id: a name safe for file names; never a patient name or ID.
        source: the path it was read from.
    """

    hu: np.ndarray
    geometry: Geometry
    kvp: float | None = None
    mass_factor: float | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    scan_id: str = "scan"
    source: str = ""
    extra: dict = field(default_factory=dict)

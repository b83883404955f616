"""COCA ROIs -> a vessel label map in the CT series' grid.

Each ROI polygon is filled on its slice (``skimage.draw.polygon`` with
rows = y, columns = x, which reproduces the annotated pixel counts of the
COCA sample exactly) and intersected with HU >= 130. Two identities built into
the XML are checked per ROI and a warning names every ROI that breaks one:
calcium pixel count × pixel area = Area, and the highest HU inside = Max.

Overlap rule: where ROIs of different vessels share pixels, the ROI with the
larger annotated Area keeps them (ROIs are filled largest first and never
overwrite a labelled pixel); every such ROI is counted and warned about.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

import numpy as np
from skimage.draw import polygon

from cac_lightning.errors import InputError
from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.sources.coca_xml import CocaROI
from cac_lightning.vessels import LABELS
from cac_lightning.volume import Geometry

__all__ = ["RasterStats", "check_slice", "rasterise_rois"]

logger = logging.getLogger(__name__)


@dataclass
class RasterStats:
    """Counts over the ROIs of one or more scans.

    Attributes:
        n_rois: ROIs read from the XML files.
        n_used: ROIs filled into the label map.
        n_empty: skipped placeholders (Area 0 or fewer than 3 points).
        n_unknown: skipped ROIs whose name is not a known artery.
        n_area_mismatch: ROIs whose calcium pixel area differs from Area.
        n_max_mismatch: ROIs whose highest HU inside differs from Max.
        n_overlap: ROIs that lost pixels to a larger ROI of another vessel.
        n_overlap_px: pixels so lost.
    """

    n_rois: int = 0
    n_used: int = 0
    n_empty: int = 0
    n_unknown: int = 0
    n_area_mismatch: int = 0
    n_max_mismatch: int = 0
    n_overlap: int = 0
    n_overlap_px: int = 0

    def add(self, other: RasterStats) -> None:
        """Add ``other``'s counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def check_slice(roi: CocaROI, geometry: Geometry, where: str = "") -> None:
    """Check that ``roi.image_index`` is the slice its ``Point_mm`` lie on.

    The distance of every vertex from slice ``image_index`` along the slice
    normal must be under half the slice spacing.

    Raises:
        InputError: index outside the series, or the points lie on another slice.
    """
    nz = geometry.shape[0]
    k = roi.image_index
    if not 0 <= k < nz:
        raise InputError(f"{where}ImageIndex {k} is outside the series ({nz} slices)")
    if len(roi.points_mm) == 0:
        return
    normal = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)[:, 2]
    origin = np.asarray(geometry.origin, dtype=np.float64)
    height = (roi.points_mm - origin) @ normal  # mm along the normal from slice 0
    offset = height - k * geometry.slice_spacing
    if np.max(np.abs(offset)) > 0.5 * geometry.slice_spacing:
        slice_z = float(geometry.index_to_mm(np.array([k, 0.0, 0.0]))[2])
        nearest = int(np.round(np.median(height) / geometry.slice_spacing))
        raise InputError(
            f"{where}ImageIndex {k} is the slice at z = {slice_z:.2f} mm but the ROI's "
            f"Point_mm lie at z = {float(np.median(roi.points_mm[:, 2])):.2f} mm "
            f"(slice {nearest}): the XML does not match this series' ascending-z slice order"
        )


def rasterise_rois(
    rois: list[CocaROI],
    hu: np.ndarray,
    geometry: Geometry,
    *,
    where: str = "",
    threshold_hu: float = DEFAULT_THRESHOLD_HU,
) -> tuple[np.ndarray, RasterStats]:
    """Build the label map of one scan from its ROIs.

    Args:
        rois: the scan's ROIs (:func:`~cac_lightning.sources.coca_xml.parse_coca_xml`).
        hu: int16 array (z, y, x), slices in ascending z.
        geometry: the grid of ``hu``.
        where: prefix of warnings and errors (e.g. ``"coca-1: "``).
        threshold_hu: calcium threshold, default 130 HU.

    Returns:
        ``(labels, stats)``: uint8 array (z, y, x) with 0 bg, 1 LM, 2 LAD, 3 CX,
        4 RCA on calcium pixels only; the ROI counts.

    Raises:
        InputError: an ROI's ImageIndex disagrees with its Point_mm (see :func:`check_slice`).
    """
    labels = np.zeros(hu.shape, dtype=np.uint8)
    stats = RasterStats(n_rois=len(rois))
    usable: list[tuple[int, CocaROI]] = []
    for i, roi in enumerate(rois):
        if roi.is_empty:
            stats.n_empty += 1
            continue
        tag = f"{where}slice {roi.image_index} ROI {i} ({roi.name!r})"
        if roi.vessel is None:
            stats.n_unknown += 1
            logger.warning("%s: unknown artery name %r, ROI skipped", tag, roi.name)
            continue
        check_slice(roi, geometry, f"{tag}: ")
        usable.append((i, roi))
    pixel_area = geometry.pixel_area_mm2
    # Largest annotated Area first (stable): it keeps pixels shared with other vessels.
    for i, roi in sorted(usable, key=lambda item: -item[1].area_mm2):
        tag = f"{where}slice {roi.image_index} ROI {i} ({roi.name!r})"
        k = roi.image_index
        rr, cc = polygon(roi.points_px[:, 1], roi.points_px[:, 0], shape=hu.shape[1:])
        values = hu[k, rr, cc]
        calcium = values >= threshold_hu
        rr, cc, values = rr[calcium], cc[calcium], values[calcium]
        n = int(rr.size)
        if abs(n * pixel_area - roi.area_mm2) > 0.5 * pixel_area + 1e-6:
            stats.n_area_mismatch += 1
            logger.warning(
                "%s: %d calcium px x %.4f mm² = %.2f mm² but Area = %.2f mm²",
                tag, n, pixel_area, n * pixel_area, roi.area_mm2,
            )  # fmt: skip
        top = float(values.max()) if n else float("nan")
        if not abs(top - roi.max_hu) <= 0.5:
            stats.n_max_mismatch += 1
            logger.warning("%s: highest HU inside is %s but Max = %g", tag, top, roi.max_hu)
        value = LABELS[roi.vessel]
        current = labels[k, rr, cc]
        clash = (current != 0) & (current != value)
        if clash.any():
            stats.n_overlap += 1
            stats.n_overlap_px += int(clash.sum())
            logger.warning(
                "%s: %d px already belong to a larger ROI of another vessel, kept there",
                tag, int(clash.sum()),
            )  # fmt: skip
        free = current == 0
        labels[k, rr[free], cc[free]] = value
        stats.n_used += 1
    return labels, stats

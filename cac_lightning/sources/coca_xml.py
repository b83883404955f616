"""Reading the calcium annotations of the Stanford COCA gated release.

Each ``Gated_release_final/calcium_xml/<pid>.xml`` is an Apple property list
(OsiriX ROI export): a top-level ``Images`` list of ``{ImageIndex, ROIs}``;
each ROI has ``Name`` (the artery), ``Area`` (cm²), ``Max`` / ``Mean`` / ``Min``
(HU of the calcium pixels inside it), ``Point_px`` (strings ``"(x, y)"``:
x = column, y = row) and ``Point_mm`` (strings ``"(x, y, z)"``, patient mm).
``ImageIndex`` is the slice index after sorting the series by ascending z of
ImagePositionPatient (checked against ``Point_mm`` by the rasteriser).
"""

from __future__ import annotations

import plistlib
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.scoring.agatston import density_weight as scoring_density_weight
from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.vessels import VESSELS_AND_TOTAL

__all__ = [
    "VESSEL_BY_NAME",
    "CocaROI",
    "density_weight",
    "parse_coca_xml",
    "vessel_of",
    "xml_agatston",
]

#: COCA ROI names -> our vessel names. "Left Coronary Artery" is the left main.
VESSEL_BY_NAME: dict[str, str] = {
    "left coronary artery": "LM",
    "left anterior descending artery": "LAD",
    "left circumflex artery": "CX",
    "right coronary artery": "RCA",
}

_NUMBER = r"\s*([-+0-9.eE]+)\s*"


@dataclass(frozen=True, eq=False)
class CocaROI:
    """One annotated calcium region on one slice.

    Attributes:
        image_index: slice index (series sorted by ascending z).
        name: the ROI name as written in the XML.
        vessel: ``"LM"``, ``"LAD"``, ``"CX"``, ``"RCA"``, or None for an unknown name.
        area_mm2: annotated calcium area in mm² (the XML stores cm²).
        max_hu / mean_hu / min_hu: HU statistics of the calcium pixels.
        points_px: float array (N, 2) of polygon vertices (x = column, y = row).
        points_mm: float array (N, 3) of the same vertices in patient mm (x, y, z).
    """

    image_index: int
    name: str
    vessel: str | None
    area_mm2: float
    max_hu: float
    mean_hu: float
    min_hu: float
    points_px: np.ndarray = field(repr=False)
    points_mm: np.ndarray = field(repr=False)

    @property
    def is_empty(self) -> bool:
        """True for the placeholder ROIs with Area 0 or fewer than 3 points."""
        return self.area_mm2 <= 0.0 or len(self.points_px) < 3


def vessel_of(name: str) -> str | None:
    """Our vessel name for a COCA ROI name (case and spacing ignored), or None."""
    return VESSEL_BY_NAME.get(" ".join(str(name).split()).lower())


def _points(values: object, dim: int, where: str) -> np.ndarray:
    if values is None:
        return np.zeros((0, dim))
    if not isinstance(values, list):
        raise InputError(f"{where}: point list is not a list")
    pattern = re.compile(r"^\(" + ",".join([_NUMBER] * dim) + r"\)$")
    out = np.zeros((len(values), dim))
    for i, text in enumerate(values):
        match = pattern.match(str(text).strip())
        if match is None:
            raise InputError(f"{where}: cannot parse point {text!r} (expected {dim} numbers)")
        out[i] = [float(v) for v in match.groups()]
    return out


def _number(roi: dict, key: str, where: str) -> float:
    try:
        return float(roi[key])
    except KeyError:
        raise InputError(f"{where}: ROI lacks {key!r}") from None
    except (TypeError, ValueError):
        raise InputError(f"{where}: ROI {key!r} is not a number: {roi[key]!r}") from None


def parse_coca_xml(path: str | Path) -> list[CocaROI]:
    """Read every ROI of a COCA calcium XML file.

    Placeholder ROIs (Area 0, no points) are returned too; see
    :attr:`CocaROI.is_empty`.

    Args:
        path: a ``calcium_xml/<pid>.xml`` file.

    Returns:
        The ROIs in file order, areas converted from cm² to mm².

    Raises:
        InputError: the file is missing, is not a plist, or lacks a field.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = plistlib.load(f)
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    except (plistlib.InvalidFileException, xml.parsers.expat.ExpatError, ValueError) as err:
        raise InputError(f"{path}: not a COCA plist XML ({err})") from None
    images = doc.get("Images") if isinstance(doc, dict) else None
    if not isinstance(images, list):
        raise InputError(f"{path}: no top-level 'Images' list (not a COCA calcium XML)")
    rois: list[CocaROI] = []
    for n, image in enumerate(images):
        if not isinstance(image, dict) or "ImageIndex" not in image:
            raise InputError(f"{path}: Images[{n}] has no ImageIndex")
        index = image["ImageIndex"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise InputError(f"{path}: Images[{n}] ImageIndex {index!r} is not an integer")
        for i, roi in enumerate(image.get("ROIs") or []):
            where = f"{path.name}: ImageIndex {index} ROI {i}"
            if not isinstance(roi, dict):
                raise InputError(f"{where}: not a dictionary")
            name = str(roi.get("Name", ""))
            rois.append(
                CocaROI(
                    image_index=index,
                    name=name,
                    vessel=vessel_of(name),
                    area_mm2=_number(roi, "Area", where) * 100.0,  # cm² -> mm²
                    max_hu=_number(roi, "Max", where),
                    mean_hu=_number(roi, "Mean", where),
                    min_hu=_number(roi, "Min", where),
                    points_px=_points(roi.get("Point_px"), 2, where),
                    points_mm=_points(roi.get("Point_mm"), 3, where),
                )
            )
    return rois


def density_weight(max_hu: float) -> int:
    """Agatston density weight of a peak HU (:func:`cac_lightning.scoring.density_weight`),
    0 below the 120 kVp threshold (Agatston et al. 1990, J Am Coll Cardiol 15:827)."""
    if max_hu < DEFAULT_THRESHOLD_HU:
        return 0
    return int(scoring_density_weight(max_hu))


def xml_agatston(rois: list[CocaROI]) -> dict[str, float]:
    """The XML's own Agatston score: Σ Area (mm²) × weight(Max) per vessel.

    Empty ROIs and ROIs with an unknown name are left out. The series are 3 mm,
    so no slice-thickness scaling applies.

    Returns:
        ``{"LM", "LAD", "CX", "RCA", "total"} -> Agatston``.
    """
    scores = dict.fromkeys(VESSELS_AND_TOTAL, 0.0)
    for roi in rois:
        if roi.is_empty or roi.vessel is None:
            continue
        value = roi.area_mm2 * density_weight(roi.max_hu)
        scores[roi.vessel] += value
        scores["total"] += value
    return scores

"""Agatston, volume and mass scores per coronary artery from a HU volume and a label map.

Definitions (Agatston et al. 1990, J Am Coll Cardiol 15:827; Hong et al. 2022,
section 2.3 and Eqs. 1-3):

- Calcium: voxels with HU >= threshold inside a vessel label (1 LM, 2 LAD, 3 CX,
  4 RCA); voxels of different vessels are never joined.
- ``per-slice`` (default, the clinical definition): 2D 8-connected components in
  each slice. A component smaller than ``min_area_mm2`` is noise and is dropped from
  every score. Each component scores ``area_mm2 * w(max HU) * slice_spacing / 3``,
  so a lesion crossing slices takes one weight per slice. For the lesion list, kept
  components that overlap in consecutive slices are grouped into one lesion.
- The ``/ 3`` slice factor is the standard's; ``ScoringConfig(slice_scaling="none")``
  drops it (Hong et al. 2022 Eq. 1, see docs/paper_recipe.md). Volume and mass keep it.
- ``lesion3d`` (Hong et al. 2022): 6-connected 3D lesions; a lesion whose total
  in-plane area (summed over its slices, the paper's "total lesion area") is below
  ``min_area_mm2`` is noise; it scores ``total area * w(lesion max HU) * spacing / 3``.
- Density weight w: 1 from the threshold to 199 HU, 2 for 200-299, 3 for 300-399,
  4 for >= 400 (bands scaled with the threshold at other kVp, see
  :class:`~cac_lightning.scoring.config.ScoringConfig`).
- Volume: voxels * pixel area * slice spacing (mm³).
- Mass: ``c * mean HU * volume / 1000`` (mg CaHA) per lesion, c in mg/(HU·cm³);
  summed over lesions this equals ``c * sum(HU) * voxel volume / 1000``.

All reductions are vectorised over the calcium voxels (``np.bincount`` /
``ufunc.at``); there is no Python loop over slices or lesions.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.scoring.components import (
    INPLANE_8,
    LESION_6,
    Z_LINK,
    components,
    neighbour_pairs,
)
from cac_lightning.scoring.config import (
    DEFAULT_MASS_FACTOR,
    WEIGHT_BANDS_HU,
    ScoringConfig,
)
from cac_lightning.scoring.lesions import Lesion, ScanScores, VesselScore
from cac_lightning.scoring.risk import cac_drs, cac_drs_report, n_vessels_class, risk_category
from cac_lightning.vessels import NUM_CLASSES, VESSELS
from cac_lightning.volume import Geometry

__all__ = ["density_weight", "score_scan"]

log = logging.getLogger(__name__)

_AREA_EPS = 1e-9  # areas equal to min_area (up to rounding) are kept


def density_weight(max_hu: np.ndarray | float, bands=WEIGHT_BANDS_HU) -> np.ndarray:
    """Agatston density weight from a component's maximum HU.

    Args:
        max_hu: maximum HU of each component, any shape (values >= the threshold).
        bands: lower edges of weights 2, 3 and 4; default (200, 300, 400) HU
            (Agatston et al. 1990).

    Returns:
        int64 array of ``max_hu``'s shape with values 1..4.
    """
    m = np.asarray(max_hu, dtype=np.float64)
    b2, b3, b4 = bands
    return 1 + (m >= b2).astype(np.int64) + (m >= b3) + (m >= b4)


def score_scan(
    hu: np.ndarray,
    labels: np.ndarray,
    geometry: Geometry,
    config: ScoringConfig | None = None,
    *,
    kvp: float | None = None,
    mass_factor: float | None = None,
) -> ScanScores:
    """Score one scan.

    Args:
        hu: (z, y, x) HU volume, int16 (any real dtype accepted), slices ascending.
        labels: (z, y, x) integer label map: 0 background, 1 LM, 2 LAD, 3 CX, 4 RCA.
        geometry: the voxel grid of ``hu`` (pixel spacing and slice spacing are used).
        config: scoring settings; default :class:`ScoringConfig` (per-slice, 1 mm²).
        kvp: tube voltage of the scan; picks the threshold when ``config.threshold_hu``
            is None (130 HU at 120 kVp or unknown).
        mass_factor: mass calibration factor of the scan (DICOM (0018,9352)); used when
            ``config.mass_factor`` is None, else :data:`DEFAULT_MASS_FACTOR`.

    Returns:
        :class:`ScanScores` with per-vessel and total scores, the lesion list, the risk
        classes and the calcium voxels kept (``calcium_index``, ``calcium_vessel``).

    Raises:
        InputError: arrays that do not match each other or ``geometry``, a non-integer
            label map, or label values outside 0..4.
    """
    cfg = config if config is not None else ScoringConfig()
    hu, labels = _check_inputs(hu, labels, geometry)
    threshold, bands = cfg.resolve(kvp)
    c, c_source = _mass_factor(cfg, mass_factor)
    shape = hu.shape

    flat, vessel, value = _calcium_voxels(hu, labels, threshold)
    spacing = float(geometry.slice_spacing)
    les_voxel, n_les, les_agatston = _lesion_ids(
        cfg, flat, vessel, value, shape, float(geometry.pixel_area_mm2), spacing, bands
    )
    lesions, les_vessel, les_vol, les_mass = _lesions(
        les_voxel, n_les, les_agatston, flat, vessel, value, shape, geometry, c
    )
    vessels = _vessel_scores(les_vessel, les_agatston, les_vol, les_mass)
    kept = les_voxel >= 0
    total = vessels["total"].agatston
    settings = {
        "mode": cfg.mode,
        "threshold_hu": round(float(threshold), 6),
        "weight_bands_hu": [round(float(b), 6) for b in bands],
        "min_area_mm2": float(cfg.min_area_mm2),
        "slice_scaling": cfg.slice_scaling,
        "mass_factor": round(float(c), 6),
        "mass_factor_source": c_source,
        "kvp": None if kvp is None else float(kvp),
        "pixel_spacing_mm": [round(float(s), 6) for s in geometry.pixel_spacing],
        "slice_spacing_mm": round(spacing, 6),
    }
    return ScanScores(
        vessels=vessels,
        lesions=lesions,
        risk_category=risk_category(total),
        cac_drs=cac_drs(total),
        n_vessels=n_vessels_class({v: vessels[v].agatston for v in VESSELS}),
        cac_drs_report=cac_drs_report(total, {v: vessels[v].agatston for v in VESSELS}),
        settings=settings,
        calcium_index=flat[kept],
        calcium_vessel=vessel[kept].astype(np.uint8),
    )


def _check_inputs(hu, labels, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    hu = np.asarray(hu)
    labels = np.asarray(labels)
    if hu.ndim != 3:
        raise InputError(f"the HU volume must be 3D (z, y, x), got shape {hu.shape}")
    if labels.shape != hu.shape:
        raise InputError(f"label map shape {labels.shape} differs from volume shape {hu.shape}")
    if tuple(int(s) for s in geometry.shape) != hu.shape:
        raise InputError(f"geometry shape {tuple(geometry.shape)} differs from volume {hu.shape}")
    if hu.dtype.kind not in "iuf":
        raise InputError(f"the HU volume must hold numbers, got dtype {hu.dtype}")
    if labels.dtype.kind not in "iu":
        raise InputError(
            f"the label map must be integers 0..{NUM_CLASSES - 1}, got dtype {labels.dtype}"
        )
    spacing = (*geometry.pixel_spacing, geometry.slice_spacing)
    if not all(math.isfinite(float(s)) and float(s) > 0 for s in spacing):
        raise InputError(f"voxel spacing must be positive, got {spacing}")
    return hu, labels


def _mass_factor(cfg: ScoringConfig, scan_value: float | None) -> tuple[float, str]:
    if cfg.mass_factor is not None:
        return cfg.mass_factor, "config"
    if scan_value is not None:
        try:
            c = float(scan_value)
        except (TypeError, ValueError):
            c = float("nan")
        if math.isfinite(c) and c > 0:
            return c, "scan"
        log.warning("ignoring invalid scan mass factor %r; using the default", scan_value)
    return DEFAULT_MASS_FACTOR, "default"


def _calcium_voxels(hu: np.ndarray, labels: np.ndarray, threshold: float):
    """Sorted flat indices, vessel labels and HU of labelled voxels with HU >= threshold."""
    lab = labels.reshape(-1)
    flat = np.flatnonzero(lab != 0)  # ~10x faster than on the integer array itself
    vessel = lab[flat].astype(np.int64)
    if vessel.size and (vessel.min() < 0 or vessel.max() >= NUM_CLASSES):
        bad = np.unique(vessel[(vessel < 0) | (vessel >= NUM_CLASSES)])[:5].tolist()
        raise InputError(f"label values must be 0..{NUM_CLASSES - 1}; found {bad}")
    value = hu.reshape(-1)[flat].astype(np.float64)
    calcium = value >= threshold
    return flat[calcium], vessel[calcium], value[calcium]


def _lesion_ids(cfg, flat, vessel, value, shape, pixel_area, spacing, bands):
    """Lesion index of each calcium voxel (-1: noise), lesion count, lesion Agatston."""
    n = len(flat)
    offsets = INPLANE_8 if cfg.mode == "per-slice" else LESION_6
    n_comp, comp = components(n, *neighbour_pairs(flat, vessel, shape, offsets))
    comp_area = np.bincount(comp, minlength=n_comp) * pixel_area
    kept = np.flatnonzero(comp_area + _AREA_EPS >= cfg.min_area_mm2)
    weight = density_weight(_group_max(comp, value, n_comp), bands)
    comp_agatston = comp_area * weight * cfg.slice_factor(spacing)

    compact = np.full(n_comp, -1, np.int64)  # kept component -> 0..len(kept)-1, noise -> -1
    compact[kept] = np.arange(len(kept))
    vox_comp = compact[comp]
    vox_kept = vox_comp >= 0
    if cfg.mode == "per-slice":
        # Group kept 2D components that overlap in consecutive slices into lesions.
        ck = vox_comp[vox_kept]
        zi, zj = neighbour_pairs(flat[vox_kept], vessel[vox_kept], shape, Z_LINK)
        n_les, les_of_kept = components(len(kept), ck[zi], ck[zj])
    else:
        n_les, les_of_kept = len(kept), np.arange(len(kept))
    les_voxel = np.full(n, -1, np.int64)
    les_voxel[vox_kept] = les_of_kept[vox_comp[vox_kept]]
    les_agatston = np.bincount(les_of_kept, weights=comp_agatston[kept], minlength=n_les)
    return les_voxel, n_les, les_agatston


def _group_max(group: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, group, value)
    return out


def _lesions(les_voxel, n_les, les_agatston, flat, vessel, value, shape, geometry, c):
    """Lesion list and per-lesion vessel, volume and mass arrays."""
    sel = les_voxel >= 0
    les, f, val = les_voxel[sel], flat[sel], value[sel]
    n_vox = np.bincount(les, minlength=n_les)
    hu_sum = np.bincount(les, weights=val, minlength=n_les)
    hu_max = _group_max(les, val, n_les)
    z, rem = np.divmod(f, shape[1] * shape[2])
    y, x = np.divmod(rem, shape[2])
    z_first = np.full(n_les, np.iinfo(np.int64).max)
    z_last = np.full(n_les, -1, np.int64)
    np.minimum.at(z_first, les, z)
    np.maximum.at(z_last, les, z)
    les_vessel = np.zeros(n_les, np.int64)
    les_vessel[les] = vessel[sel]

    denom = np.maximum(n_vox, 1)
    centroid = np.stack([np.bincount(les, weights=a, minlength=n_les) for a in (z, y, x)], 1)
    centroid = centroid / denom[:, None]
    centroid_mm = geometry.index_to_mm(centroid).reshape(n_les, 3)
    area = n_vox * float(geometry.pixel_area_mm2)
    volume = n_vox * float(geometry.voxel_volume_mm3)
    mass = c * hu_sum * float(geometry.voxel_volume_mm3) / 1000.0
    mean = hu_sum / denom

    names = ("background", *VESSELS)
    lesions = [
        Lesion(names[v], (z0, z1), nv, a, mx, mn, ag, vo, ms, tuple(cz), tuple(cm))
        for v, z0, z1, nv, a, mx, mn, ag, vo, ms, cz, cm in zip(
            les_vessel.tolist(),
            z_first.tolist(),
            z_last.tolist(),
            n_vox.tolist(),
            area.tolist(),
            hu_max.tolist(),
            mean.tolist(),
            les_agatston.tolist(),
            volume.tolist(),
            mass.tolist(),
            centroid.tolist(),
            centroid_mm.tolist(),
            strict=True,
        )
    ]
    return lesions, les_vessel, volume, mass


def _vessel_scores(les_vessel, agatston, volume, mass) -> dict[str, VesselScore]:
    sums = [
        np.bincount(les_vessel, weights=w, minlength=NUM_CLASSES) for w in (agatston, volume, mass)
    ]
    count = np.bincount(les_vessel, minlength=NUM_CLASSES)
    out = {
        name: VesselScore(float(sums[0][k]), float(sums[1][k]), float(sums[2][k]), int(count[k]))
        for k, name in enumerate(VESSELS, start=1)
    }
    out["total"] = VesselScore(
        float(sum(s.agatston for s in out.values())),
        float(sum(s.volume_mm3 for s in out.values())),
        float(sum(s.mass_mg for s in out.values())),
        int(sum(s.lesions for s in out.values())),
    )
    return out

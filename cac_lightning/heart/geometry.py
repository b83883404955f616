"""Where the heart can be, from body, lungs and bone alone: the classical chest geometry.

No network and no training: CT numbers and shapes that hold on any chest CT.

1. Everything is done on a coarse grid (:data:`COARSE_MM` pixels, block means), then mapped
   back to the native voxels.
2. **Body**: the largest 3D component above :data:`LUNG_HU`, holes filled slice by slice.
3. **Lungs**: air whose slice component averages like lung, not gas (:data:`GAS_HU`), at least
   :data:`LUNG_CORE_MM` thick, in 3D components of at least :data:`MIN_LUNG_ML`.
4. **Chest cavity**: per slice, the convex hull of the lungs of the slices within
   :data:`HULL_REACH_MM` (below the lung bases, where the heart sits on the diaphragm in front
   of the lungs' posterior recesses, the lungs just above outline it).
5. **Bone**: 3D components at or above :data:`BONE_HU` of at least :data:`MIN_BONE_ML` (spine
   with its ribs, sternum), grown by :data:`BONE_MARGIN_MM`. Coronary calcium never forms a
   component that large.
6. **Behind the heart**: the rows behind the front of the vertebral bodies (the spine, the
   descending aorta beside it, the oesophagus).
7. The region is the cavity minus lungs (shrunk by :data:`LUNG_MARGIN_MM`, so calcium on the
   heart's border with the lung stays in), minus bone, minus what lies behind the spine's front.

It holds the heart and the mediastinum around it (great vessels, thymus fat, oesophagus), so it
is much larger than a heart; :mod:`cac_lightning.heart.region` narrows it with the learned
locator when one is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from cac_lightning.volume import AIR_HU

__all__ = [
    "BONE_HU",
    "BONE_MARGIN_MM",
    "COARSE_MM",
    "HULL_REACH_MM",
    "LUNG_HU",
    "LUNG_MARGIN_MM",
    "MIN_BONE_ML",
    "MIN_LUNG_ML",
    "ChestMasks",
    "chest_masks",
]

COARSE_MM = 2.0
"""In-plane pixel size (mm) of the grid the geometry is worked out on."""
LUNG_HU = -400.0
"""Air and lung lie below this; body tissue above."""
MIN_LUNG_ML = 20.0
"""Smallest 3D lung component (noise and small airways are smaller)."""
GAS_HU = -930.0
"""A slice's air component whose mean lies below this is gas, not lung: air outside the body,
in the stomach or bowel (lung parenchyma, with its vessels, averages about -750 to -880)."""
LUNG_CORE_MM = 5.0
"""Air thinner than this (in-plane radius, mm) is not lung: the sliver of outside air between
the skin and the edge of a small cardiac field of view, whose block means look like lung."""
MIN_LUNG_SLICE_MM2 = 500.0
"""A slice with at least this much lung counts as a lung slice (``ChestMasks.lung_slices``)."""
HULL_REACH_MM = 30.0
"""Each slice's cavity is the hull of the lungs within this distance (mm) above and below."""
LUNG_MARGIN_MM = 3.0
"""The lung mask is shrunk by this before it is cut out (calcium at the heart's lung border)."""
BONE_HU = 200.0
"""Bone (cortex and dense marrow) lies above this on the coarse grid."""
MIN_BONE_ML = 4.0
"""Smallest dense 3D component taken as bone."""
BONE_MARGIN_MM = 3.0
"""Bone is grown by this before it is cut out (its partial-volume rim)."""


@dataclass
class ChestMasks:
    """The chest geometry of one scan, each a (Z, H, W) bool array on the native grid.

    Attributes:
        body: the patient's body.
        lungs: both lungs (air inside the body).
        bone: spine, ribs and sternum (grown by :data:`BONE_MARGIN_MM`).
        region: where the heart can be (see the module docstring).
        lung_slices: slices where lungs were found (the others borrowed a hull).
    """

    body: np.ndarray
    lungs: np.ndarray
    bone: np.ndarray
    region: np.ndarray
    lung_slices: np.ndarray


def _coarse(hu: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """Block means of (Z, H, W) ``hu`` over ``factor`` pixels (edges padded with air)."""
    fy, fx = factor
    z, h, w = hu.shape
    ph, pw = (-h) % fy, (-w) % fx
    x = np.pad(hu.astype(np.float32), ((0, 0), (0, ph), (0, pw)), constant_values=AIR_HU)
    return x.reshape(z, (h + ph) // fy, fy, (w + pw) // fx, fx).mean(axis=(2, 4))


def _native(mask: np.ndarray, factor: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour map of a coarse (Z, h, w) mask back to the native (Z, H, W) grid."""
    up = np.repeat(np.repeat(mask, factor[0], axis=1), factor[1], axis=2)
    return np.ascontiguousarray(up[:, : shape[1], : shape[2]])


def _largest(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(sizes.argmax())


def _big_components(mask: np.ndarray, min_voxels: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(kept mask, labels, n) of the 3D components of at least ``min_voxels``."""
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask), lab, 0
    sizes = np.bincount(lab.ravel())
    big = sizes >= min_voxels
    big[0] = False
    return big[lab], lab, n


def _disk(radius_px: float) -> np.ndarray:
    r = max(int(np.ceil(radius_px)), 0)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px + 1e-6


def _grow2d(mask: np.ndarray, radius_px: float) -> np.ndarray:
    if radius_px <= 0:
        return mask
    return ndi.binary_dilation(mask, structure=_disk(radius_px)[None])


def _shrink2d(mask: np.ndarray, radius_px: float) -> np.ndarray:
    if radius_px <= 0:
        return mask
    return ndi.binary_erosion(mask, structure=_disk(radius_px)[None])


def _outside_air(hu_c: np.ndarray) -> np.ndarray:
    """Air outside the body: pure air (below :data:`GAS_HU`) reached from the image's edge,
    grown by two pixels over the skin's partial-volume rim."""
    out = np.zeros(hu_c.shape, dtype=bool)
    for z, s in enumerate(hu_c):
        lab, _ = ndi.label(s < GAS_HU)
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        out[z] = np.isin(lab, edge[edge > 0])
    return _grow2d(out, 2)


def _lung_like(hu_c: np.ndarray) -> np.ndarray:
    """Air pixels, outside air excepted, whose 2D component (per slice) averages like lung,
    not like gas.

    The cardiac field of view often cuts the chest wall, so a lung may touch the image edge:
    lungs are told from outside air by their CT number (lung parenchyma is not pure air), not
    by being enclosed.
    """
    out = np.zeros(hu_c.shape, dtype=bool)
    air = (hu_c <= LUNG_HU) & ~_outside_air(hu_c)
    for z, s in enumerate(hu_c):
        lab, n = ndi.label(air[z])
        if n == 0:
            continue
        means = ndi.mean(s, lab, index=np.arange(1, n + 1))
        keep = np.concatenate([[False], np.asarray(means) >= GAS_HU])
        out[z] = keep[lab]
    return out


def _hulls(lungs: np.ndarray, min_px: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, the convex hull of the lungs of every slice within ``reach`` slices.

    Below the lung bases the heart lies on the diaphragm, in front of the lungs' posterior
    recesses: the hull of those recesses alone would cut it off, the hull of the lungs just
    above does not.
    """
    hull = np.zeros_like(lungs)
    has = lungs.reshape(len(lungs), -1).sum(axis=1) >= min_px
    for z in range(len(lungs)):
        lo, hi = max(z - reach, 0), min(z + reach + 1, len(lungs))
        if has[lo:hi].any():
            hull[z] = convex_hull_image(lungs[lo:hi].any(axis=0))
    return hull, has


def _behind_spine(bone: np.ndarray, labels: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Rows behind the front of the vertebral bodies, slice by slice (the spine is the bone
    component nearest the back of the body in the middle third of its width)."""
    behind = np.zeros_like(bone)
    ids = np.unique(labels[bone])
    ids = ids[ids > 0]
    if ids.size == 0:
        return behind
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if rows.size == 0 or cols.size == 0:
        return behind
    back = rows.max()
    mid_lo = cols.min() + (cols.max() - cols.min()) // 3
    mid_hi = cols.max() - (cols.max() - cols.min()) // 3
    middle = np.zeros(bone.shape[2], dtype=bool)
    middle[mid_lo : mid_hi + 1] = True
    best, best_score = 0, np.inf
    for i in ids:
        zz, yy, xx = np.nonzero((labels == i) & middle[None, None, :])
        if zz.size == 0:
            continue
        score = back - float(np.median(yy))  # distance from the back of the body
        if score < best_score:
            best, best_score = int(i), score
    if best == 0:
        return behind
    spine = (labels == best) & middle[None, None, :]
    for z in range(bone.shape[0]):
        yy = np.nonzero(spine[z])[0]
        if yy.size:
            behind[z, int(yy.min()) :, :] = True
    return behind


def chest_masks(hu: np.ndarray, spacing_zyx: tuple[float, float, float]) -> ChestMasks:
    """Body, lungs, bone and the region where the heart can be.

    Args:
        hu: (Z, H, W) CT numbers in HU, slices in ascending position order.
        spacing_zyx: voxel spacing (slice, row, column) in mm.

    Returns:
        The :class:`ChestMasks` on the native grid; ``region`` is empty when no lungs were
        found (not a chest CT).
    """
    dz, dy, dx = (float(s) for s in spacing_zyx)
    factor = (max(1, round(COARSE_MM / dy)), max(1, round(COARSE_MM / dx)))
    cy, cx = dy * factor[0], dx * factor[1]
    voxel_ml = dz * cy * cx / 1000.0
    hu_c = _coarse(np.asarray(hu), factor)

    body = _largest(hu_c > LUNG_HU)
    thick = ndi.binary_opening(_lung_like(hu_c), structure=_disk(LUNG_CORE_MM / cy)[None])
    lungs, _, _ = _big_components(thick, MIN_LUNG_ML / voxel_ml)
    body = np.stack([ndi.binary_fill_holes(s) for s in body | lungs]) if body.any() else body
    reach = int(round(HULL_REACH_MM / dz))
    hull, has = _hulls(lungs, MIN_LUNG_SLICE_MM2 / (cy * cx), reach)

    bone, labels, _ = _big_components((hu_c >= BONE_HU) & body, MIN_BONE_ML / voxel_ml)
    behind = _behind_spine(bone, labels, body)
    bone_grown = _grow2d(bone, BONE_MARGIN_MM / cy)
    lungs_cut = _shrink2d(lungs, LUNG_MARGIN_MM / cy)
    region = hull & body & ~lungs_cut & ~bone_grown & ~behind

    shape = np.shape(hu)
    return ChestMasks(
        body=_native(body, factor, shape),
        lungs=_native(lungs, factor, shape),
        bone=_native(bone_grown, factor, shape),
        region=_native(region, factor, shape),
        lung_slices=has,
    )

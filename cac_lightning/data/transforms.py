"""The network input and the training augmentations of axial HU slices.

:func:`make_input`, the model's input definition, lives in
:mod:`cac_lightning.models.inputs` and is re-exported here.

Augmentations keep the anatomy's handedness: no left-right or anterior-posterior
flips (vessel identity depends on the side of the heart), only small rotations
and isotropic scaling (one affine warp: bilinear for HU via Pillow,
nearest-neighbour for labels and the candidate mask, one Pillow pass), HU
shift/scale and white noise. Intensity jitter never changes the target, and
:func:`augment_slice` also returns the calcium-candidate mask (HU >= threshold)
computed on the *original* HU and warped with the labels in the same
nearest-neighbour pass,
so the input mask channel, the HU gate (the module gates predictions with that
channel) and the labels (ROI and HU >= threshold) stay consistent at lesion
edges whatever the jitter does to the image channel.
The paper does not report augmentation; it is off in ``paper_*`` and unless configured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

# The model's input contract lives with the model; re-exported here for older imports.
from cac_lightning.models.inputs import AIR_HU, DEFAULT_THRESHOLD_HU, DEFAULT_WINDOW, make_input

__all__ = [
    "AIR_HU",
    "DEFAULT_THRESHOLD_HU",
    "DEFAULT_WINDOW",
    "AugmentConfig",
    "augment_slice",
    "make_input",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings (each part applied with probability ``p``).

    Attributes:
        p: probability of each of: spatial warp, HU jitter, noise. Default 0.5.
        rotate_deg: rotation angle drawn from U(-rotate_deg, rotate_deg) degrees.
        scale: isotropic zoom factor drawn from U(1 - scale, 1 + scale).
        hu_shift: HU offset drawn from U(-hu_shift, hu_shift).
        hu_scale: HU gain drawn from U(1 - hu_scale, 1 + hu_scale).
        noise_sd: white noise SD drawn from U(0, noise_sd) HU.
    """

    p: float = 0.5
    rotate_deg: float = 10.0
    scale: float = 0.1
    hu_shift: float = 20.0
    hu_scale: float = 0.05
    noise_sd: float = 10.0

    @classmethod
    def from_dict(cls, options: Mapping | None) -> AugmentConfig | None:
        """Build from a plain mapping; ``None`` -> ``None`` (no augmentation)."""
        if options is None:
            return None
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown augment option(s) {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**{k: float(v) for k, v in options.items()})


def _crop_origin(
    rng: np.random.Generator, shape: tuple[int, int], crop: int, point: np.ndarray | None
) -> np.ndarray:
    """Top-left (row, col) of a crop; when ``point`` is given the crop contains it."""
    hi = np.array([shape[0] - crop, shape[1] - crop], dtype=np.float64)
    if point is None:
        return np.floor(rng.uniform(0, hi + 1)).astype(np.float64)
    margin = crop // 8
    u = rng.uniform(margin, crop - margin, size=2)
    return np.clip(np.floor(point - u), 0, hi)


def _warp_hu(
    hu: np.ndarray, matrix: np.ndarray, offset: np.ndarray, out_shape: tuple[int, int]
) -> np.ndarray:
    """Bilinear warp of a HU slice: output pixel ``o`` samples input ``matrix @ o + offset``.

    The same map as ``scipy.ndimage.affine_transform(order=1)`` (identical values
    away from the border, air outside), done by Pillow, about 3x faster.
    """
    from PIL import Image

    # Pillow works in (x, y) = (col, row) with pixel centres at +0.5
    a = np.array([[matrix[1, 1], matrix[1, 0]], [matrix[0, 1], matrix[0, 0]]])
    t = np.array([offset[1], offset[0]]) + 0.5 - a @ np.array([0.5, 0.5])
    image = Image.fromarray(np.ascontiguousarray(hu, dtype=np.float32))
    out = image.transform(
        (int(out_shape[1]), int(out_shape[0])),
        Image.Transform.AFFINE,
        (a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1]),
        resample=Image.Resampling.BILINEAR,
        fillcolor=AIR_HU,
    )
    return np.array(out, dtype=np.float32)


def _warp_nearest(
    target: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    offset: np.ndarray,
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour warp of a label slice and a binary mask in one pass.

    Both are packed into one uint8 image (labels in bits 0-6, the mask in bit 7) and
    warped once by Pillow (the map of :func:`_warp_hu`, zero outside), so every output
    pixel takes its label and its mask bit from the same input pixel: a label never
    lands outside the mask it came with. About 2 ms for 512².
    """
    from PIL import Image

    codes = np.asarray(target, dtype=np.uint8) | (np.asarray(mask, dtype=np.uint8) << 7)
    a = np.array([[matrix[1, 1], matrix[1, 0]], [matrix[0, 1], matrix[0, 0]]])
    t = np.array([offset[1], offset[0]]) + 0.5 - a @ np.array([0.5, 0.5])
    out = Image.fromarray(np.ascontiguousarray(codes)).transform(
        (int(out_shape[1]), int(out_shape[0])),
        Image.Transform.AFFINE,
        (a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1]),
        resample=Image.Resampling.NEAREST,
        fillcolor=0,
    )
    out = np.array(out, dtype=np.uint8)
    return out & np.uint8(0x7F), out >= 0x80


_NOISE_BANKS: dict[tuple[int, int], np.ndarray] = {}


def _white_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit white noise (float32, ``shape``): a random window of a fixed bank (fast)."""
    bank = _NOISE_BANKS.get(shape)
    if bank is None:
        bank = np.random.default_rng(20220404).standard_normal(
            (2 * shape[0], 2 * shape[1]), dtype=np.float32
        )
        _NOISE_BANKS[shape] = bank
    r, c = rng.integers(0, shape[0] + 1), rng.integers(0, shape[1] + 1)
    return bank[r : r + shape[0], c : c + shape[1]]


def augment_slice(
    hu: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    config: AugmentConfig | None,
    crop: int | None = None,
    threshold_hu: float = DEFAULT_THRESHOLD_HU,
    centre: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment one axial slice and its label map, and optionally crop it.

    Args:
        hu: (H, W) HU slice (any numeric dtype), or an (S, H, W) stack of it and its
            neighbours (slice context), all moved by the same map and intensity jitter.
        target: (H, W) uint8 labels.
        rng: the item's random generator (seeded per draw, so deterministic).
        config: augmentation settings; ``None`` = no augmentation (crop only).
        crop: output size (crop, crop) <= (H, W); when the slice has calcium the
            crop contains a randomly chosen calcium pixel. ``None`` = whole slice.
        threshold_hu: the scan's calcium threshold, for the candidate mask.
        centre: the labelled slice of a stack (its mask is returned).

    Returns:
        (hu float32 (h, w) or (S, h, w), target uint8 (h, w), mask bool (h, w)) with (h, w) =
        (crop, crop) or (H, W); ``hu`` carries the intensity jitter, ``mask`` is
        ``original hu >= threshold_hu`` of the centre slice under the same geometric map as
        ``target``.
    """
    stack = np.asarray(hu)
    if stack.ndim == 2:
        out, target_out, mask = augment_slice(
            stack[None], target, rng, config, crop, threshold_hu, 0
        )
        return out[0], target_out, mask
    h, w = stack.shape[1:]
    out_shape = (crop, crop) if crop else (h, w)
    cfg = config or AugmentConfig(p=0.0)
    warp = cfg.p > 0 and rng.random() < cfg.p and (cfg.rotate_deg > 0 or cfg.scale > 0)
    jitter = cfg.p > 0 and rng.random() < cfg.p and (cfg.hu_shift > 0 or cfg.hu_scale > 0)
    noise = cfg.p > 0 and rng.random() < cfg.p and cfg.noise_sd > 0

    middle = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    matrix = np.eye(2)
    if warp:
        theta = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
        zoom = rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale)
        c, s = math.cos(theta), math.sin(theta)
        # output -> input map: a proper rotation divided by the zoom (det > 0: no flip)
        matrix = np.array([[c, -s], [s, c]]) / zoom

    origin = np.zeros(2)
    if crop:
        point = None
        fg = np.flatnonzero(target)
        if fg.size:
            p_in = np.array(np.unravel_index(fg[rng.integers(fg.size)], (h, w)), dtype=np.float64)
            point = np.linalg.solve(matrix, p_in - middle) + middle
        origin = _crop_origin(rng, (h, w), crop, point)

    if warp:
        offset = matrix @ (origin - middle) + middle
        hu_out = np.stack([_warp_hu(plane, matrix, offset, out_shape) for plane in stack])
        tgt_out, mask_out = _warp_nearest(
            target, stack[centre] >= threshold_hu, matrix, offset, out_shape
        )
    else:
        r, c0 = int(origin[0]), int(origin[1])
        window = (slice(None), slice(r, r + out_shape[0]), slice(c0, c0 + out_shape[1]))
        hu_out = np.array(stack[window], dtype=np.float32)
        tgt_out = np.array(target[window[1:]], dtype=np.uint8)
        mask_out = hu_out[centre] >= np.float32(threshold_hu)  # before any jitter

    if jitter:
        gain = rng.uniform(1.0 - cfg.hu_scale, 1.0 + cfg.hu_scale)
        shift = rng.uniform(-cfg.hu_shift, cfg.hu_shift)
        hu_out *= np.float32(gain)
        hu_out += np.float32(shift)
    if noise:
        sd = np.float32(rng.uniform(0.0, cfg.noise_sd))
        for plane in hu_out:
            plane += _white_noise(rng, out_shape) * sd
    return hu_out, tgt_out, mask_out

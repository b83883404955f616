"""The network input and the training augmentations of axial HU slices.

:func:`make_input` is *the* input definition, shared by training, validation,
inference and the callbacks: two channels per slice, the windowed HU image and
the binary HU >= 130 mask of Hong et al. 2022 (section 2.4, Fig. 3b, after
Zhao et al., their ref [15]).

Augmentations keep the anatomy's handedness: no left-right or anterior-posterior
flips (vessel identity depends on the side of the heart), only small rotations
and isotropic scaling (one affine warp: bilinear for HU via Pillow,
nearest-neighbour for labels via scipy, computed around the labels only), HU
shift/scale and white noise. Intensity jitter never changes the target.
The paper does not report augmentation; it is off unless configured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy import ndimage

__all__ = [
    "AIR_HU",
    "DEFAULT_THRESHOLD_HU",
    "DEFAULT_WINDOW",
    "AugmentConfig",
    "augment_slice",
    "make_input",
]

# Full range from air up to dense cortical bone: calcium (130 to ~1000 HU), bone
# (~300 to ~1500 HU) and metal stents (saturating near the top) stay distinguishable
# in the image channel; the lower bound keeps lung and fat apart from soft tissue.
DEFAULT_WINDOW: tuple[float, float] = (-1024.0, 2048.0)
# The Agatston calcium threshold at 120 kVp (Agatston et al. 1990; Hong et al. 2022, 2.3).
DEFAULT_THRESHOLD_HU = 130.0
# HU given to pixels warped in from outside the field of view.
AIR_HU = -1024.0


def make_input(
    hu: np.ndarray | torch.Tensor,
    window: tuple[float, float] = DEFAULT_WINDOW,
    threshold_hu: float = DEFAULT_THRESHOLD_HU,
) -> torch.Tensor:
    """Build the 2-channel network input from HU slices.

    Args:
        hu: HU slices (N, H, W) or one slice (H, W); numpy (int16, float, memmap)
            or a torch tensor (kept on its device).
        window: (lo, hi) HU mapped linearly to [0, 1] and clipped; default
            :data:`DEFAULT_WINDOW` = (-1024, 2048).
        threshold_hu: channel 1 is ``hu >= threshold_hu``; default 130 HU.

    Returns:
        float32 tensor (N, 2, H, W): channel 0 = clip((hu - lo) / (hi - lo), 0, 1),
        channel 1 = 1.0 where hu >= threshold_hu else 0.0.

    Raises:
        ValueError: on a shape other than (N, H, W) / (H, W) or an empty window.
    """
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise ValueError(f"window must be (lo, hi) with hi > lo, got {tuple(window)}")
    x = hu if isinstance(hu, torch.Tensor) else np.asarray(hu)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(
            f"make_input expects HU slices of shape (N, H, W) or (H, W), got {tuple(x.shape)}"
        )
    if isinstance(x, torch.Tensor):
        x = x.to(torch.float32)
        image = ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)
        mask = (x >= threshold_hu).to(torch.float32)
        return torch.stack([image, mask], dim=1)
    # numpy: the same float32 arithmetic, single-threaded (cheap in loader workers)
    x = x.astype(np.float32, copy=False)
    out = np.empty((x.shape[0], 2, *x.shape[1:]), dtype=np.float32)
    np.subtract(x, np.float32(lo), out=out[:, 0])
    np.divide(out[:, 0], np.float32(hi - lo), out=out[:, 0])
    np.clip(out[:, 0], 0.0, 1.0, out=out[:, 0])
    np.greater_equal(x, np.float32(threshold_hu), out=out[:, 1])
    return torch.from_numpy(out)


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


def _warp_labels(
    target: np.ndarray, matrix: np.ndarray, offset: np.ndarray, out_shape: tuple[int, int]
) -> np.ndarray:
    """Nearest-neighbour warp of a label slice, computed only around its labels.

    Same result as warping the whole slice (output pixel ``o`` samples input
    ``matrix @ o + offset``) at a fraction of the cost: labels are sparse.
    """
    out = np.zeros(out_shape, dtype=np.uint8)
    target = np.asarray(target, dtype=np.uint8)
    rows, cols = np.flatnonzero(target.any(axis=1)), np.flatnonzero(target.any(axis=0))
    if rows.size == 0:
        return out
    r0, r1, c0, c1 = rows[0] - 1, rows[-1] + 1, cols[0] - 1, cols[-1] + 1
    corners = np.array([[r0, c0], [r0, c1], [r1, c0], [r1, c1]], dtype=np.float64)
    o = np.linalg.solve(matrix, (corners - offset).T).T  # input corners -> output coordinates
    lo = np.maximum(np.floor(o.min(axis=0)) - 1, 0).astype(int)
    hi = np.minimum(np.ceil(o.max(axis=0)) + 2, out_shape).astype(int)
    if (hi <= lo).any():
        return out
    out[lo[0] : hi[0], lo[1] : hi[1]] = ndimage.affine_transform(
        target,
        matrix,
        offset + matrix @ lo,
        output_shape=tuple(hi - lo),
        order=0,
        mode="constant",
        cval=0,
        prefilter=False,
    )
    return out


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
) -> tuple[np.ndarray, np.ndarray]:
    """Augment one axial slice and its label map, and optionally crop it.

    Args:
        hu: (H, W) HU slice (any numeric dtype).
        target: (H, W) uint8 labels.
        rng: the item's random generator (seeded per draw, so deterministic).
        config: augmentation settings; ``None`` = no augmentation (crop only).
        crop: output size (crop, crop) <= (H, W); when the slice has calcium the
            crop contains a randomly chosen calcium pixel. ``None`` = whole slice.

    Returns:
        (hu float32 (h, w), target uint8 (h, w)) with (h, w) = (crop, crop) or (H, W).
    """
    h, w = hu.shape
    out_shape = (crop, crop) if crop else (h, w)
    cfg = config or AugmentConfig(p=0.0)
    warp = cfg.p > 0 and rng.random() < cfg.p and (cfg.rotate_deg > 0 or cfg.scale > 0)
    jitter = cfg.p > 0 and rng.random() < cfg.p and (cfg.hu_shift > 0 or cfg.hu_scale > 0)
    noise = cfg.p > 0 and rng.random() < cfg.p and cfg.noise_sd > 0

    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
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
            point = np.linalg.solve(matrix, p_in - centre) + centre
        origin = _crop_origin(rng, (h, w), crop, point)

    if warp:
        offset = matrix @ (origin - centre) + centre
        hu_out = _warp_hu(hu, matrix, offset, out_shape)
        tgt_out = _warp_labels(target, matrix, offset, out_shape)
    else:
        r, c0 = int(origin[0]), int(origin[1])
        hu_out = np.array(hu[r : r + out_shape[0], c0 : c0 + out_shape[1]], dtype=np.float32)
        tgt_out = np.array(target[r : r + out_shape[0], c0 : c0 + out_shape[1]], dtype=np.uint8)

    if jitter:
        gain = rng.uniform(1.0 - cfg.hu_scale, 1.0 + cfg.hu_scale)
        shift = rng.uniform(-cfg.hu_shift, cfg.hu_shift)
        hu_out *= np.float32(gain)
        hu_out += np.float32(shift)
    if noise:
        sd = np.float32(rng.uniform(0.0, cfg.noise_sd))
        hu_out += _white_noise(rng, out_shape) * sd
    return hu_out, tgt_out

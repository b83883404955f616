"""HeartLocator: heart + pericardium probability on a scan's native grid from shipped weights.

The scan is brought to the coarse grid the net was trained at (``spacing_mm`` in the weights'
meta, 6 mm): HU clipped to :data:`WINDOW_HU` and area-averaged
(each coarse voxel is the mean of the native voxels it overlaps, separably per axis), windowed
to [0, 1], padded with air to a multiple of the net's stride, run, and the probability mapped
back to every native voxel by trilinear interpolation between coarse voxel centres. Training
(:mod:`cac_lightning.heart.train`) feeds its synthetic scans through the same
:func:`to_coarse`, so what the net saw in training is what it sees here.

Importing this module does not import torch; loading a locator does.

Weights are a ``.npz`` of float32 arrays (the net's ``state_dict``) plus ``meta_json`` (JSON:
version, spacing, window, channels, training seed and command, sha256 of the arrays); loading
never unpickles anything.

Example:
    >>> loc = HeartLocator.load()
    >>> prob = loc.probability(volume.hu, volume.geometry.spacing_zyx)  # (Z, H, W) float32
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.sources.synthetic.render import interp_matrix

__all__ = [
    "AIR_GATE_HU",
    "COARSE_MM",
    "DEFAULT_WEIGHTS",
    "WINDOW_HU",
    "default_weights",
    "HeartLocator",
    "from_coarse",
    "save_weights",
    "to_coarse",
    "weights_hash",
]

WINDOW_HU = (-1000.0, 400.0)
"""HU window of the net's input: clipped to it, then mapped linearly to [0, 1] (air 0)."""

COARSE_MM = 6.0
"""Voxel size (mm, all three axes) of the grid the locator's net works on."""

DEFAULT_WEIGHTS = "heartnet_v1.npz"
"""File name of the shipped weights under ``cac_lightning/heart/weights/``."""

FORMAT_VERSION = 1

AIR_GATE_HU = -700.0
"""A coarse voxel whose mean HU is below this (mostly air or lung) is never heart: its
probability is set to 0. Also what makes a body-free (all-air) volume come out empty, where
instance normalisation of a constant input would leave the net's output undefined."""


def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights: output cell i is the mean of the input cells it overlaps.

    Both grids cover the same extent; input cell j spans [j, j+1) and output cell i spans
    [i, i+1) * n_in / n_out (in input-cell units).
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return (overlap / overlap.sum(1, keepdims=True)).astype(np.float32)


def _separable(vol: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
    """Apply one (n_out, n_in) matrix per axis of a 3D array (z, y, x)."""
    out = np.tensordot(mats[0], vol, axes=(1, 0))  # (z', y, x)
    out = np.matmul(mats[1], out)  # (z', y', x)
    return np.matmul(out, mats[2].T)  # (z', y', x')


def coarse_shape(shape: tuple[int, ...], spacing_zyx, coarse_mm: float = COARSE_MM):
    """Coarse grid size covering the same extent: ``round(n * spacing / coarse_mm)``, >= 1."""
    return tuple(
        max(1, int(round(n * float(s) / coarse_mm)))
        for n, s in zip(shape, spacing_zyx, strict=True)
    )


def to_coarse(hu: np.ndarray, spacing_zyx, coarse_mm: float = COARSE_MM) -> np.ndarray:
    """Native HU (Z, H, W) -> windowed [0, 1] float32 on the coarse grid of the same extent.

    HU is clipped to ``WINDOW_HU`` first (so padding below -1000 HU counts as air), then each
    coarse voxel is the area-weighted mean of the native voxels it overlaps.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise InputError(f"heart locator expects a (Z, H, W) volume, got shape {hu.shape}")
    lo, hi = WINDOW_HU
    x = (np.clip(hu.astype(np.float32), lo, hi) - np.float32(lo)) / np.float32(hi - lo)
    cs = coarse_shape(hu.shape, spacing_zyx, coarse_mm)
    mats = [_area_matrix(c, n) for c, n in zip(cs, hu.shape, strict=True)]
    return _separable(x, mats).astype(np.float32)


def from_coarse(coarse: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Coarse (z, y, x) -> native ``shape`` by trilinear interpolation between voxel centres."""
    mats = [interp_matrix(n, c) for n, c in zip(shape, coarse.shape, strict=True)]
    return _separable(np.asarray(coarse, dtype=np.float32), mats).astype(np.float32)


def weights_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, shapes and float32 bytes, in sorted name order."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k], dtype=np.float32)
        h.update(k.encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_weights(net: Any, path: str | Path, meta: dict) -> dict:
    """Write ``net``'s weights and ``meta`` (plain names and numbers) to an ``.npz``.

    Returns:
        the meta as written (with ``format_version``, ``channels``, ``sha256`` added).
    """
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    meta = {
        **meta,
        "format_version": FORMAT_VERSION,
        "channels": list(net.channels),
        "sha256": weights_hash(arrays),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, meta_json=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return meta


def _keep_largest(prob: np.ndarray) -> np.ndarray:
    """``prob`` zeroed outside its largest >= 0.5 component (26-connected), dilated by one."""
    from scipy import ndimage as ndi

    comp, n = ndi.label(prob >= 0.5, structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return prob
    sizes = ndi.sum_labels(np.ones_like(prob), comp, index=np.arange(1, n + 1))
    keep = ndi.binary_dilation(comp == 1 + int(np.argmax(sizes)), np.ones((3, 3, 3), bool))
    return np.where(keep, prob, np.float32(0.0)).astype(np.float32)


def default_weights() -> Path:
    """Path of the shipped weights (:data:`DEFAULT_WEIGHTS` under ``heart/weights/``)."""
    return Path(str(resources.files("cac_lightning.heart") / "weights" / DEFAULT_WEIGHTS))


class HeartLocator:
    """A trained :class:`~cac_lightning.heart.net.HeartNet` with its meta.

    Attributes:
        meta: the weights' meta (``spacing_mm``, ``window_hu``, ``channels``, ``seed``, ...).
    """

    def __init__(self, net: Any, meta: dict) -> None:
        self.net = net.eval()
        self.meta = dict(meta)

    @classmethod
    def load(cls, path: str | Path | None = None) -> HeartLocator:
        """Load weights from ``path`` (default: the shipped :data:`DEFAULT_WEIGHTS`).

        Raises:
            InputError: the file is missing, of another format version, or its arrays do not
                match their recorded hash.
        """
        import torch

        from cac_lightning.heart.net import HeartNet

        path = default_weights() if path is None else Path(str(path))
        if not path.is_file():
            raise InputError(f"heart locator weights not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta_json"]))
            arrays = {k: z[k] for k in z.files if k != "meta_json"}
        if meta.get("format_version") != FORMAT_VERSION:
            raise InputError(
                f"{path}: heart weights format {meta.get('format_version')!r}, "
                f"this code reads {FORMAT_VERSION}"
            )
        if weights_hash(arrays) != meta.get("sha256"):
            raise InputError(f"{path}: heart weights do not match their recorded sha256")
        if tuple(meta.get("window_hu", WINDOW_HU)) != tuple(WINDOW_HU):
            raise InputError(
                f"{path}: trained with window {meta['window_hu']}, code has {WINDOW_HU}"
            )
        net = HeartNet(tuple(meta["channels"]))
        net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
        return cls(net, meta)

    @property
    def spacing_mm(self) -> float:
        """Coarse voxel size (mm) the net was trained at."""
        return float(self.meta.get("spacing_mm", COARSE_MM))

    def coarse_probability(self, x: np.ndarray, largest_only: bool = True) -> np.ndarray:
        """Heart probability on a coarse windowed volume (z, y, x) from :func:`to_coarse`.

        Voxels below :data:`AIR_GATE_HU` get 0. With ``largest_only`` the probability is
        zeroed outside the largest 26-connected component of voxels >= 0.5 (grown by one
        voxel): the heart is one organ, and a separate blob (vertebral body, liver dome,
        shoulder muscle) is not it.
        """
        import torch

        m = self.net.multiple
        pad = [(0, (-s) % m) for s in x.shape]
        xp = np.pad(x, pad, constant_values=0.0)  # air
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(xp))[None, None])
        prob = torch.sigmoid(logits)[0, 0].numpy()
        prob = prob[: x.shape[0], : x.shape[1], : x.shape[2]].astype(np.float32)
        lo, hi = WINDOW_HU
        prob[x < (AIR_GATE_HU - lo) / (hi - lo)] = 0.0
        if largest_only:
            prob = _keep_largest(prob)
        return prob

    def probability(self, hu: np.ndarray, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
        """Heart + pericardium probability on the scan's native grid.

        Args:
            hu: (Z, H, W) CT numbers (HU), slices ascending, any dtype.
            spacing_zyx: voxel spacing (slice, row, column) in mm.

        Returns:
            float32 (Z, H, W) in [0, 1].
        """
        if len(spacing_zyx) != 3 or min(float(s) for s in spacing_zyx) <= 0:
            raise InputError(f"spacing_zyx must be three positive mm values, got {spacing_zyx}")
        coarse = to_coarse(hu, spacing_zyx, self.spacing_mm)
        return from_coarse(self.coarse_probability(coarse), tuple(np.shape(hu)))

"""Axial slice dataset over cached scans."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cac_lightning.data.cache import CachedScan
from cac_lightning.data.transforms import (
    DEFAULT_THRESHOLD_HU,
    DEFAULT_WINDOW,
    AugmentConfig,
    augment_slice,
    make_input,
)

__all__ = ["SliceDataset"]


class SliceDataset(Dataset):
    """Every axial slice of a list of cached scans.

    An item is ``{"image": float32 (2, H, W), "target": int64 (H, W), "scan": int,
    "slice": int}`` with ``image`` from :func:`make_input` and ``scan`` the index
    into ``scans``. Keys are a flat slice index, or ``(index, seed)`` pairs as
    yielded by :class:`~cac_lightning.data.samplers.BalancedSliceSampler` with
    ``with_seeds=True``; the seed drives the augmentation of that draw. A plain
    index is augmented with the seed (``seed``, ``epoch``, index).

    Args:
        scans: the cached scans.
        window: HU window of the image channel (:data:`DEFAULT_WINDOW`).
        threshold_hu: the mask channel threshold (130 HU).
        augment: augmentation settings; ``None`` = none (validation / test).
        crop: square crop size for training items; ``None`` = whole slices.
        seed: base seed for plain-index keys.
    """

    def __init__(
        self,
        scans: Sequence[CachedScan],
        window: tuple[float, float] = DEFAULT_WINDOW,
        threshold_hu: float = DEFAULT_THRESHOLD_HU,
        augment: AugmentConfig | None = None,
        crop: int | None = None,
        seed: int = 0,
    ) -> None:
        self.scans = list(scans)
        self.window = (float(window[0]), float(window[1]))
        self.threshold_hu = float(threshold_hu)
        self.augment = augment
        self.crop = int(crop) if crop else None
        self.seed = int(seed)
        self.epoch = 0
        counts = np.array([s.n_slices for s in self.scans], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.positive = (
            np.concatenate([np.asarray(s.positive, dtype=bool) for s in self.scans])
            if self.scans
            else np.zeros(0, dtype=bool)
        )

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Epoch used to seed plain-index keys."""
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[int, int]:
        """(scan, slice) of flat slice ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"slice index {index} out of range [0, {len(self)})")
        scan = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return scan, int(index - self.offsets[scan])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | int]:
        if isinstance(key, (tuple, list)):
            index, item_seed = int(key[0]), int(key[1])
            seed_seq: list[int] = [item_seed]
        else:
            index = int(key)
            seed_seq = [self.seed, self.epoch, index]
        s, z = self.locate(index)
        scan = self.scans[s]
        hu = np.asarray(scan.hu[z])
        target = np.asarray(scan.labels[z])
        if self.augment is not None or self.crop:
            rng = np.random.default_rng(seed_seq)
            hu, target = augment_slice(hu, target, rng, self.augment, self.crop)
        image = make_input(hu[None], self.window, self.threshold_hu)[0]
        return {
            "image": image,
            "target": torch.from_numpy(target.astype(np.int64)),
            "scan": s,
            "slice": z,
        }

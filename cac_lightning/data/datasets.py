"""Axial slice dataset over cached scans.

Each scan's input mask channel uses that scan's calcium threshold,
:func:`cac_lightning.scoring.config.threshold_for_kvp` of its kVp (130 HU at
120 kVp or unknown kVp, 119 HU at 135 kVp, ...): the same rule as the
prediction gate and the scorer. Targets are uint8 (a quarter of int64's bytes per
sample); :meth:`cac_lightning.data.datamodule.CACDataModule.on_after_batch_transfer`
makes them int64 on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cac_lightning.data.cache import CachedScan
from cac_lightning.data.transforms import (
    DEFAULT_WINDOW,
    AugmentConfig,
    augment_slice,
    make_input,
)
from cac_lightning.models.inputs import context_indices
from cac_lightning.scoring.config import threshold_for_kvp

__all__ = ["SliceDataset"]


class SliceDataset(Dataset):
    """Every axial slice of a list of cached scans.

    An item is ``{"image": float32 (2 + 2 * context, H, W), "target": uint8 (H, W), "scan": int,
    "slice": int}`` with ``image`` from :func:`make_input` and ``scan`` the index
    into ``scans``. Keys are a flat slice index, or ``(index, seed)`` pairs as
    yielded by :class:`~cac_lightning.data.samplers.BalancedSliceSampler` with
    ``with_seeds=True``; the seed drives the augmentation of that draw. A plain
    index is augmented with the seed (``seed``, ``epoch``, index).

    Args:
        scans: the cached scans.
        window: HU window of the image channel (:data:`DEFAULT_WINDOW`).
        threshold_hu: one mask channel threshold for every scan; ``None`` (default)
            = each scan's own, ``threshold_for_kvp(scan.kvp)``.
        augment: augmentation settings; ``None`` = none (validation / test).
        crop: square crop size for training items; ``None`` = whole slices.
        seed: base seed for plain-index keys.
        context: neighbour slices on each side (:func:`make_input`); augmentation and crop
            move them with the centre slice.
    """

    def __init__(
        self,
        scans: Sequence[CachedScan],
        window: tuple[float, float] = DEFAULT_WINDOW,
        threshold_hu: float | None = None,
        augment: AugmentConfig | None = None,
        crop: int | None = None,
        seed: int = 0,
        context: int = 0,
    ) -> None:
        self.scans = list(scans)
        self.context = int(context)
        self.window = (float(window[0]), float(window[1]))
        self.thresholds = np.array(
            [
                float(threshold_hu) if threshold_hu is not None else threshold_for_kvp(s.kvp)
                for s in self.scans
            ],
            dtype=np.float64,
        )
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
        k = self.context
        if k:
            hu = np.asarray(scan.hu[context_indices(scan.n_slices, z, z + 1, k)])
        else:
            hu = np.asarray(scan.hu[z])[None]
        target = np.asarray(scan.labels[z])
        threshold = float(self.thresholds[s])
        if self.augment is not None or self.crop:
            rng = np.random.default_rng(seed_seq)
            hu, target, mask = augment_slice(
                hu, target, rng, self.augment, self.crop, threshold_hu=threshold, centre=k
            )
            image = make_input(hu, self.window, threshold, k)[0]
            image[1] = torch.from_numpy(mask)  # from the original HU, not the jittered one
        else:
            image = make_input(hu, self.window, threshold, k)[0]
        return {
            "image": image,
            "target": torch.from_numpy(np.array(target, dtype=np.uint8)),
            "scan": s,
            "slice": z,
        }

"""The model's input contract: the 2-channel slice input and the HU gate on its output.

:func:`make_input` is *the* input definition, shared by training, validation, inference
and the callbacks: two channels per slice, the windowed HU image and the binary
HU >= threshold mask of Hong et al. 2022 (section 2.4, Fig. 3b, after Zhao et al.,
their ref [15]). The threshold is the scan's own
(:func:`cac_lightning.scoring.config.threshold_for_kvp`). :func:`gate_labels` is the
one rule that keeps predicted calcium only where the HU reaches that threshold.

Slice context (2.5D, ours, not the paper's): with ``context`` k > 0 the windowed images of
the k slices on each side follow the two channels, ``[image(z), mask(z), image(z-k), ...,
image(z-1), image(z+1), ..., image(z+k)]`` (:func:`input_channels` = 2 + 2k), so the centre
slice keeps channels 0 and 1 and everything that reads them is unchanged. Beyond the first or
last slice the edge slice is repeated (:func:`context_indices`). A stent's end or a rib's
edge looks like plaque in one slice and not in its neighbours.
"""

from __future__ import annotations

import numpy as np
import torch

from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.volume import AIR_HU

__all__ = [
    "AIR_HU",
    "BASE_CHANNELS",
    "DEFAULT_THRESHOLD_HU",
    "DEFAULT_WINDOW",
    "MASK_CHANNEL",
    "candidates",
    "context_indices",
    "gate_labels",
    "input_channels",
    "make_input",
]

DEFAULT_WINDOW: tuple[float, float] = (-1024.0, 2048.0)
"""HU window of the image channel: full range from air up to dense cortical bone, so
calcium, bone and metal stents stay distinguishable and lung and fat stay apart from
soft tissue."""

MASK_CHANNEL = 1
"""Index of the HU >= threshold channel in the input."""

BASE_CHANNELS = 2
"""Channels of one slice's input: the windowed image and the mask (the paper's input)."""


def input_channels(context: int = 0) -> int:
    """Input channels with ``context`` slices on each side: 2 + 2 * context."""
    if int(context) < 0:
        raise ValueError(f"slice context must be >= 0, got {context}")
    return BASE_CHANNELS + 2 * int(context)


def context_indices(n_slices: int, start: int, stop: int, context: int = 0) -> np.ndarray:
    """Slice indices ``start - context .. stop + context - 1`` of a ``n_slices`` volume, the
    edge slice repeated past either end: what :func:`make_input` needs for slices
    ``start:stop`` with ``context``."""
    return np.clip(np.arange(start - context, stop + context), 0, n_slices - 1)


def make_input(
    hu: np.ndarray | torch.Tensor,
    window: tuple[float, float] = DEFAULT_WINDOW,
    threshold_hu: float = DEFAULT_THRESHOLD_HU,
    context: int = 0,
) -> torch.Tensor:
    """Build the network input from HU slices.

    Args:
        hu: HU slices (N + 2 * context, H, W), consecutive (:func:`context_indices`), or one
            slice (H, W) when ``context`` is 0; numpy (int16, float, memmap) or a torch tensor
            (kept on its device).
        window: (lo, hi) HU mapped linearly to [0, 1] and clipped; default
            :data:`DEFAULT_WINDOW`.
        threshold_hu: channel 1 is ``hu >= threshold_hu``; default
            :data:`~cac_lightning.scoring.config.DEFAULT_THRESHOLD_HU` (120 kVp).
        context: slices on each side of every centre slice (module doc); default 0.

    Returns:
        float32 tensor (N, 2 + 2 * context, H, W) for the N centre slices: channel 0 =
        clip((hu - lo) / (hi - lo), 0, 1), channel 1 = 1.0 where hu >= threshold_hu else 0.0,
        then the neighbours' channel 0, nearest first below, then above.

    Raises:
        ValueError: on a shape other than (N, H, W) / (H, W), fewer than 2 * context + 1
            slices, or an empty window.
    """
    base = _two_channels(hu, window, threshold_hu)
    k = int(context)
    if k == 0:
        return base
    n = base.shape[0] - 2 * k
    if k < 0 or n < 1:
        raise ValueError(
            f"context {context} needs at least {2 * max(k, 0) + 1} slices, got {base.shape[0]}"
        )
    offsets = [*range(-k, 0), *range(1, k + 1)]
    neighbours = [base[k + d : k + d + n, :1] for d in offsets]
    return torch.cat([base[k : k + n], *neighbours], dim=1)


def _two_channels(
    hu: np.ndarray | torch.Tensor, window: tuple[float, float], threshold_hu: float
) -> torch.Tensor:
    """(N, 2, H, W): the windowed image and the mask of every slice (:func:`make_input`)."""
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


def candidates(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: the pixels of a (B, 2, H, W) input whose HU reach the threshold."""
    return x[:, MASK_CHANNEL] > 0.5


def gate_labels(labels, calcium_candidates):
    """Set labels to background wherever the HU gate is off.

    Args:
        labels: (..., H, W) integer labels, a numpy array or a torch tensor.
        calcium_candidates: bool of the same shape and kind: HU >= the scan's threshold
            (``hu >= threshold`` on native voxels, or :func:`candidates` of the input).

    Returns:
        The gated labels (a new array / tensor of ``labels``' dtype).
    """
    if isinstance(labels, torch.Tensor):
        return labels.masked_fill(~calcium_candidates, 0)
    return np.where(calcium_candidates, labels, 0).astype(labels.dtype, copy=False)

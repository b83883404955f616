"""Train the heart locator's net on synthetic phantoms only and write its ``.npz`` weights.

The shipped weights ``cac_lightning/heart/weights/heartnet_v1.npz`` come out of exactly::

    python -m cac_lightning.heart.train --out cac_lightning/heart/weights/heartnet_v1.npz --seed 0

(defaults: ``--n-train 64 --n-val 6 --epochs 12``, batch 4; 2 CPU threads). The command renders
the training cases in memory (:func:`~cac_lightning.heart.synth.make_case`, indices
``0..n_train-1``; validation cases from index 1,000,000 on, never trained on), brings each to
the net's coarse grid with the locator's own :func:`~cac_lightning.heart.locator.to_coarse`,
trains with Adam and a cosine schedule on one random crop per case per epoch (loss: binary
cross-entropy + soft Dice against the coarse heart fraction), prints each epoch's mean loss,
then the synthetic validation Dice and volume error measured through
:meth:`~cac_lightning.heart.locator.HeartLocator.probability` on the cases' own grids (the
production path), and writes the weights. Deterministic for a seed on one machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np

from cac_lightning.heart.locator import (
    COARSE_MM,
    WINDOW_HU,
    HeartLocator,
    save_weights,
    to_coarse,
)
from cac_lightning.heart.net import HeartNet
from cac_lightning.heart.synth import make_case

__all__ = ["VAL_OFFSET", "dice", "main", "train", "validate"]

logger = logging.getLogger(__name__)

VAL_OFFSET = 1_000_000
"""Validation cases are indices ``VAL_OFFSET + i``: never among the training indices."""
CROP = (24, 48, 48)
"""Largest training crop (coarse voxels z, y, x): 144 x 288 x 288 mm at 6 mm."""
CHANNELS = (4, 8, 16, 32)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    s = int(pred.sum()) + int(ref.sum())
    return 1.0 if s == 0 else 2.0 * int((pred & ref).sum()) / s


def _batch(items: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, multiple: int):
    """Random crops of one common shape (at most CROP), padded with air to the net's stride.

    Returns:
        ``(x, y, shape)``: float32 (B, 1, Z, Y, X) inputs and targets, and the unpadded shape.
    """
    shape = tuple(min([c] + [x.shape[d] for x, _ in items]) for d, c in enumerate(CROP))
    pad = [(0, 0)] + [(0, (-s) % multiple) for s in shape]
    xs, ys = [], []
    for x, y in items:
        sl = []
        for n, k in zip(x.shape, shape, strict=True):
            s = int(rng.integers(0, n - k + 1))
            sl.append(slice(s, s + k))
        xs.append(x[tuple(sl)])
        ys.append(y[tuple(sl)])
    x = np.pad(np.stack(xs), pad)[:, None]
    y = np.pad(np.stack(ys), pad)[:, None]
    return np.ascontiguousarray(x), np.ascontiguousarray(y), shape


def _batches(whole: list[bool], batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches: gated and whole-chest cases apart (so a batch's common crop keeps
    the whole-chest context), in random order."""
    order = rng.permutation(len(whole))
    out = []
    for kind in (False, True):
        idx = np.array([i for i in order if whole[i] == kind], dtype=int)
        out += [idx[b : b + batch] for b in range(0, len(idx), batch)]
    return [out[k] for k in rng.permutation(len(out))]


def train(
    seed: int = 0,
    n_train: int = 64,
    n_val: int = 6,
    epochs: int = 12,
    batch: int = 4,
    lr: float = 5e-3,
    threads: int = 2,
    echo=print,
) -> tuple[HeartLocator, dict]:
    """Train a locator from scratch on synthetic cases; returns it and its meta.

    Args:
        seed: seeds the cases, the initial weights and the crop order.
        n_train: synthetic training cases.
        n_val: synthetic validation cases (fresh indices).
        epochs: passes over the training cases (one random crop each).
        batch: cases per step (batch > 1 also makes CPU convolutions take the oneDNN kernels,
            several times faster than the native ones torch picks for a single small volume).
        lr: peak Adam learning rate (cosine decay to 0).
        threads: torch CPU threads.
        echo: where progress lines go (the CLI prints them).
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    data, whole = [], []
    for i in range(n_train):
        c = make_case(seed, i)
        data.append((to_coarse(c.hu, c.spacing_zyx), to_coarse_mask(c.mask, c.spacing_zyx)))
        whole.append(c.whole_chest)
    echo(f"rendered {n_train} training cases in {time.time() - t0:.0f} s")

    net = HeartNet(CHANNELS)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps_per_epoch = len(_batches(whole, batch, np.random.default_rng(0)))
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1 + np.cos(np.pi * min(k, total) / total))
    )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    t1 = time.time()
    for ep in range(epochs):
        net.train()
        losses = []
        for idx in _batches(whole, batch, rng):
            x, y, shape = _batch([data[i] for i in idx], rng, net.multiple)
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            w = torch.zeros_like(yt)
            w[..., : shape[0], : shape[1], : shape[2]] = 1.0
            logits = net(xt)
            bce = (F.binary_cross_entropy_with_logits(logits, yt, reduction="none") * w).sum()
            bce = bce / w.sum()
            p = torch.sigmoid(logits) * w
            soft_dice = (2 * (p * yt).sum() + 1.0) / (p.sum() + (yt * w).sum() + 1.0)
            loss = bce + (1 - soft_dice)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        echo(f"epoch {ep + 1}/{epochs}  loss {np.mean(losses):.4f}  ({time.time() - t1:.0f} s)")

    meta = {
        "version": "heartnet_v1",
        "spacing_mm": COARSE_MM,
        "window_hu": list(WINDOW_HU),
        "seed": seed,
        "n_train": n_train,
        "epochs": epochs,
        "batch": batch,
        "lr": lr,
        "train_command": (
            f"python -m cac_lightning.heart.train --out PATH --seed {seed} "
            f"--n-train {n_train} --n-val {n_val} --epochs {epochs}"
        ),
        "target": "synthetic heart + pericardial fat (cac_lightning.heart.masks.heart_mask)",
    }
    net.channels = CHANNELS
    loc = HeartLocator(net, meta)
    meta.update(validate(loc, seed, n_val, echo))
    meta["train_seconds"] = round(time.time() - t0, 1)
    loc.meta = meta
    return loc, meta


def validate(loc: HeartLocator, seed: int, n_val: int, echo=print) -> dict:
    """Dice and volume error of ``loc`` on synthetic validation cases, on their native grids.

    Cases ``VAL_OFFSET .. VAL_OFFSET + n_val - 1`` of ``seed`` (never trained on), predicted by
    :meth:`HeartLocator.probability` (the production path), thresholded at 0.5.

    Returns:
        ``val_dice_mean``, ``val_dice_min``, ``val_volume_error_mean_abs`` (fraction).
    """
    dices, vol_err = [], []
    for i in range(n_val):
        c = make_case(seed, VAL_OFFSET + i)
        pred = loc.probability(c.hu, c.spacing_zyx) >= 0.5
        dices.append(dice(pred, c.mask))
        vol_err.append((int(pred.sum()) - int(c.mask.sum())) / max(int(c.mask.sum()), 1))
    out = {
        "val_dice_mean": round(float(np.mean(dices)), 4),
        "val_dice_min": round(float(np.min(dices)), 4),
        "val_volume_error_mean_abs": round(float(np.mean(np.abs(vol_err))), 4),
    }
    echo(
        f"synthetic validation ({n_val} cases): Dice mean {out['val_dice_mean']:.3f} "
        f"min {out['val_dice_min']:.3f}; mean |volume error| "
        f"{out['val_volume_error_mean_abs']:.1%} "
        f"(per case Dice: {', '.join(f'{d:.2f}' for d in dices)}; "
        f"volume error: {', '.join(f'{v:+.0%}' for v in vol_err)})"
    )
    return out


def to_coarse_mask(mask: np.ndarray, spacing_zyx) -> np.ndarray:
    """Heart fraction of each coarse voxel (float32 in [0, 1]), on :func:`to_coarse`'s grid."""
    from cac_lightning.heart.locator import _area_matrix, _separable, coarse_shape

    cs = coarse_shape(mask.shape, spacing_zyx, COARSE_MM)
    mats = [_area_matrix(c, n) for c, n in zip(cs, mask.shape, strict=True)]
    return np.clip(_separable(mask.astype(np.float32), mats), 0.0, 1.0).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="weights file to write (.npz)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--n-val", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    loc, _ = train(a.seed, a.n_train, a.n_val, a.epochs, threads=a.threads)
    meta = save_weights(loc.net, a.out, loc.meta)
    print(f"wrote {a.out}  sha256 {meta['sha256'][:16]}  ({meta['train_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

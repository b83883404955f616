"""How well can a small classifier tell synthetic patches from real COCA patches?

Patches of ``--patch`` pixels at a common ``--spacing`` (mm) are cut at random positions of the
central half of the slices (patches that are mostly air outside the body are skipped: at least
half of the pixels must be > -950 HU) from the real COCA sample scans and from synthetic scans
made in memory by :func:`make_scan` (or read from a cohort folder). Two classifiers:

- ``logreg``: L2 logistic regression (Newton) on hand-made features (HU percentiles, tissue
  fractions, band-pass energies at 4 scales, gradient magnitude);
- ``cnn``: a tiny CNN (3 strided conv layers, global average pool) trained for a few epochs on CPU.

Cross-validation is split **by scan**: fold k holds out real scan k and every third synthetic
scan, so a patch is never judged by a model that saw its scan. The AUC is computed on the pooled
held-out predictions (0.5 = indistinguishable, 1.0 = always told apart).

Usage::

    python benchmarks/realism_classifier.py --coca /work/shared/data/coca-sample
    python benchmarks/realism_classifier.py --coca ROOT --n-synth 9 --models logreg cnn
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["auc", "features", "main", "sample_patches"]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); labels 1 = synthetic."""
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    sorted_s = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    pos = labels == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def sample_patches(hu, px: float, spacing: float, patch: int, n: int, rng) -> np.ndarray:
    """``n`` patches (n, patch, patch) float32 HU at ``spacing`` mm from the central slices."""
    nz = hu.shape[0]
    zs = np.arange(nz // 4, max(nz // 4 + 1, (3 * nz) // 4))
    out, tries = [], 0
    cache: dict[int, np.ndarray] = {}
    while len(out) < n and tries < 50 * n:
        tries += 1
        k = int(rng.choice(zs))
        if k not in cache:
            cache[k] = ndi.zoom(hu[k].astype(np.float32), px / spacing, order=1)
        sl = cache[k]
        y = int(rng.integers(0, sl.shape[0] - patch))
        x = int(rng.integers(0, sl.shape[1] - patch))
        p = sl[y : y + patch, x : x + patch]
        if (p > -950).mean() >= 0.5:
            out.append(p)
    return np.stack(out)


def features(p: np.ndarray) -> np.ndarray:
    """Hand-made features (n, F) of patches (n, s, s) in HU."""
    flat = p.reshape(len(p), -1)
    q = np.percentile(np.clip(flat, -1000, 1500), [5, 25, 50, 75, 95], axis=1).T / 500.0
    fr = np.stack(
        [
            (flat < -600).mean(1),
            ((flat >= -160) & (flat < -60)).mean(1),
            ((flat >= 0) & (flat < 90)).mean(1),
            (flat >= 180).mean(1),
        ],
        1,
    )
    c = np.clip(p, -200, 300)
    bands = []
    prev = c
    for s in (0.7, 1.5, 3.0, 6.0):
        g = ndi.gaussian_filter(c, (0, s, s))
        bands.append(np.log1p(np.abs(prev - g).reshape(len(p), -1).mean(1)))
        prev = g
    gy, gx = np.gradient(c, axis=(1, 2))
    grad = np.log1p(np.sqrt(gx**2 + gy**2).reshape(len(p), -1).mean(1))
    return np.concatenate([q, fr, np.stack(bands, 1), grad[:, None]], 1)


def _logreg(xtr, ytr, xte, lam: float = 1e-2) -> np.ndarray:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a = np.c_[np.ones(len(xtr)), (xtr - mu) / sd]
    b = np.c_[np.ones(len(xte)), (xte - mu) / sd]
    w = np.zeros(a.shape[1])
    reg = lam * len(a) * np.eye(a.shape[1])
    reg[0, 0] = 0
    for _ in range(50):
        pr = 1 / (1 + np.exp(-a @ w))
        g = a.T @ (pr - ytr) + reg @ w
        h = (a * (pr * (1 - pr))[:, None]).T @ a + reg
        w -= np.linalg.solve(h, g)
    return b @ w


def _cnn(xtr, ytr, xte, epochs: int = 10, seed: int = 0) -> np.ndarray:
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 1),
    )

    def prep(x):
        return torch.from_numpy((np.clip(x, -1000, 1500) / 400.0)[:, None].astype(np.float32))

    xt, yt = prep(xtr), torch.from_numpy(ytr.astype(np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=g).split(64):
            xb = xt[idx]
            if torch.rand(1, generator=g).item() < 0.5:
                xb = xb.flip(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xb)[:, 0], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return net(prep(xte))[:, 0].numpy()


def _synth_scans(n: int, seed: int, cohort: Path | None):
    if cohort is not None:
        from cac_lightning.io import read_volume
        from cac_lightning.io.manifest import read_manifest

        for row in read_manifest(cohort)[:n]:
            v = read_volume(row.image)
            yield v.hu, float(v.geometry.pixel_spacing[0])
        return
    from cac_lightning.sources.synthetic import make_scan

    for i in range(n):
        s = make_scan(seed, i, 512)
        yield s.hu, float(s.geometry.pixel_spacing[0])


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coca", type=Path, required=True, help="COCA root (Gated_release_final)")
    ap.add_argument("--synth", type=Path, default=None, help="cohort folder (default: make_scan)")
    ap.add_argument("--n-synth", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1000, help="synthetic cohort seed")
    ap.add_argument("--spacing", type=float, default=0.5)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--per-scan", type=int, default=200, help="real patches per scan")
    ap.add_argument("--models", nargs="+", default=["logreg", "cnn"], choices=["logreg", "cnn"])
    args = ap.parse_args(argv)
    from cac_lightning.sources.synthetic.stats import coca_scans

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    patches, y, group = [], [], []
    for k, (hu, _, geometry) in enumerate(coca_scans(args.coca)):
        px = float(geometry.pixel_spacing[0])
        patches.append(sample_patches(hu, px, args.spacing, args.patch, args.per_scan, rng))
        y += [0] * len(patches[-1])
        group += [k] * len(patches[-1])
    n_real = len(set(group))
    per_syn = max(args.per_scan * n_real // args.n_synth, 1)
    for i, (hu, px) in enumerate(_synth_scans(args.n_synth, args.seed, args.synth)):
        patches.append(sample_patches(hu, px, args.spacing, args.patch, per_syn, rng))
        y += [1] * len(patches[-1])
        group += [i % n_real] * len(patches[-1])
    x, y, group = np.concatenate(patches), np.asarray(y), np.asarray(group)
    t_data = time.perf_counter() - t0
    feats = features(x)
    names = [f"hu_p{q}" for q in (5, 25, 50, 75, 95)]
    names += ["f_lung", "f_fat", "f_soft", "f_bone", "band0.7", "band1.5", "band3", "band6", "grad"]
    single = sorted(((abs(auc(f, y) - 0.5), n) for f, n in zip(feats.T, names, strict=True)))
    print(
        "most telling features (|AUC - 0.5|):",
        ", ".join(f"{n} {d:.2f}" for d, n in single[::-1][:5]),
    )
    result = {}
    for model in args.models:
        t1 = time.perf_counter()
        score = np.zeros(len(y))
        for k in range(n_real):
            te = group == k
            if model == "logreg":
                score[te] = _logreg(feats[~te], y[~te], feats[te])
            else:
                score[te] = _cnn(x[~te], y[~te], x[te], seed=k)
        folds = [auc(score[group == k], y[group == k]) for k in range(n_real)]
        result[model] = auc(score, y)
        print(
            f"{model:6s} AUC {result[model]:.3f} (folds {', '.join(f'{a:.3f}' for a in folds)}; "
            f"{time.perf_counter() - t1:.0f} s)"
        )
    print(
        f"patches: {int((y == 0).sum())} real from {n_real} scans, {int(y.sum())} synthetic from "
        f"{args.n_synth} scans; {args.patch}x{args.patch} at {args.spacing} mm; "
        f"data {t_data:.0f} s"
    )
    return result


if __name__ == "__main__":
    main()

"""Evaluation figures: Bland-Altman (Hong et al. 2022, Fig. 5), risk confusion, scatter, and
``cac-compare``'s leaderboard.

Drawn on :func:`cac_lightning.render.new_figure` (matplotlib imported lazily, Agg canvas,
never ``pyplot``) and written atomically by :func:`cac_lightning.render.save_png`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cac_lightning.render.figures import new_figure, save_png

__all__ = ["bland_altman_png", "leaderboard_png", "risk_confusion_png", "scatter_png"]

TITLES = {
    "agatston": "Agatston score",
    "volume_mm3": "Volume score (mm³)",
    "mass_mg": "Mass score (mg CaHA)",
}
Pairs = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def _metric_panels(pairs: Pairs, panel_width: float):
    """A figure with one panel per score, and ``(axes, reference, predicted)`` per score
    (float arrays), the panel already titled."""
    fig = new_figure(panel_width * max(len(pairs), 1), 3.8)
    axes = fig.subplots(1, max(len(pairs), 1), squeeze=False)[0]
    panels = []
    for ax, (metric, (ref, pred)) in zip(axes[: len(pairs)], pairs.items(), strict=True):
        ax.set_title(TITLES.get(metric, metric), fontsize=10)
        panels.append((ax, np.asarray(ref, dtype=float), np.asarray(pred, dtype=float)))
    return fig, panels


def bland_altman_png(path: str | Path, pairs: Pairs, title: str = "") -> Path:
    """One Bland-Altman panel per score: mean of the pair vs predicted - reference.

    Each panel shows the bias and the limits of agreement (bias ± 1.96 SD).

    Args:
        path: output PNG.
        pairs: ``{metric: (ref (n,), pred (n,))}``, e.g. agatston, volume_mm3, mass_mg.
        title: figure title.

    Returns:
        ``path``.
    """
    from cac_lightning.evaluation.stats import bland_altman

    fig, panels = _metric_panels(pairs, 4.2)
    for ax, r, p in panels:
        ax.scatter((r + p) / 2, p - r, s=12, alpha=0.7, color="tab:blue")
        ba = bland_altman(r, p)
        for y, style in ((ba.mean_diff, "-"), (ba.loa_low, "--"), (ba.loa_high, "--")):
            if np.isfinite(y):
                ax.axhline(y, color="tab:red", linestyle=style, linewidth=1)
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_xlabel("mean of reference and predicted")
        ax.set_ylabel("predicted - reference")
        if np.isfinite(ba.mean_diff):
            sd = f"{ba.sd_diff:.2f}" if np.isfinite(ba.sd_diff) else "n/a"
            ax.text(
                0.02,
                0.97,
                f"bias {ba.mean_diff:.2f}, SD {sd}, n={ba.n}",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
            )
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def risk_confusion_png(
    path: str | Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str = ""
) -> Path:
    """Heat map of a confusion matrix with the counts written in the cells.

    Args:
        path: output PNG.
        matrix: (k, k) counts, rows predicted, columns reference (the paper's Table 7).
        labels: the k category names.
        title: figure title.

    Returns:
        ``path``.
    """
    m = np.asarray(matrix, dtype=float)
    fig = new_figure(4.6, 4.0)
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("reference")
    ax.set_ylabel("predicted")
    top = m.max() if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                f"{int(m[i, j])}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if top and m[i, j] > top / 2 else "black",
            )
    if title:
        ax.set_title(title)
    return save_png(fig, path)


def scatter_png(path: str | Path, pairs: Pairs, title: str = "") -> Path:
    """Predicted vs reference scatter per score, with the identity line.

    Args:
        path: output PNG.
        pairs: ``{metric: (ref (n,), pred (n,))}``.
        title: figure title.

    Returns:
        ``path``.
    """
    fig, panels = _metric_panels(pairs, 4.0)
    for ax, r, p in panels:
        ax.scatter(r, p, s=12, alpha=0.7, color="tab:blue")
        hi = float(max(r.max(initial=0.0), p.max(initial=0.0), 1.0))
        ax.plot([0, hi], [0, hi], color="grey", linewidth=0.8)
        ax.set_xlabel("reference")
        ax.set_ylabel("predicted")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def leaderboard_png(
    path: str | Path,
    rows: Sequence[Mapping],
    metrics: Sequence[tuple[str, str]],
    title: str = "",
) -> Path:
    """One panel per metric: a horizontal bar per arm, mean ± sd over seeds, arms in the order
    of ``rows`` (the leaderboard's, best first at the top).

    Args:
        path: output PNG.
        rows: ``{"arm": name, key: (mean, sd, n), ...}`` per arm.
        metrics: ``(key, label)`` per panel.
        title: figure title.

    Returns:
        ``path``.
    """
    arms = [str(r["arm"]) for r in rows]
    fig = new_figure(3.2 * len(metrics) + 1.5, 0.9 + 0.35 * len(arms))
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    y = np.arange(len(arms))[::-1]
    for ax, (key, label) in zip(axes, metrics, strict=True):
        mean = np.array([r[key][0] for r in rows], dtype=float)
        sd = np.array([r[key][1] for r in rows], dtype=float)
        ax.barh(y, np.nan_to_num(mean), xerr=np.nan_to_num(sd), color="tab:blue", capsize=3)
        ax.set_title(label, fontsize=10)
    axes[0].set_yticks(y, arms)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)

"""Patient-level splits of an imported dataset (Hong et al. 2022, 2.1) and ``splits.json``.

The paper's design: the calcium-positive scans 70/10/20 % train/val/test, stratified by risk
category C2-C5 of the reference score (:func:`paper_splits`), the zero-calcium scans to
``test_zero``; seeded, written to ``OUT/splits.json`` beside the manifest and reused on a
re-import into the same folder (:func:`write_splits`). :func:`assign_splits` gives the explicit
alternatives (one split for every scan, or seeded fractions without stratification).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

from cac_lightning.errors import InputError
from cac_lightning.io.manifest import SPLITS, ManifestRow

__all__ = [
    "PAPER_FRACTIONS",
    "STRATIFY_BY",
    "ZERO_SPLIT",
    "assign_splits",
    "paper_splits",
    "split_counts",
    "write_splits",
]

PAPER_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
"""Train / val / test shares of the calcium-positive scans (Hong et al. 2022, 2.1: 754/98/215)."""
ZERO_SPLIT = "test_zero"
"""Where zero-calcium scans go (the paper's Testing Data Set 2, 2.1)."""
STRATIFY_BY = "risk_category"
"""Positive scans are split within each risk category C2-C5 (Table 2) of the reference score."""


def assign_splits(
    pids: Sequence[str],
    *,
    split: str = "test",
    fractions: Sequence[float] | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Patient-level splits.

    Args:
        pids: patient folder names.
        split: the split of every patient when ``fractions`` is None (default ``test``).
        fractions: (train, val, test) fractions summing to 1; patients are ordered by
            a hash of (seed, pid) and cut at the rounded cumulative counts, so the
            result depends only on the patient set and the seed.
        seed: changes the hash order.

    Returns:
        pid -> split.
    """
    if fractions is None:
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return dict.fromkeys(pids, split)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise InputError(f"split fractions must be 3 numbers >= 0 summing to 1, got {fractions}")
    order = sorted(pids, key=lambda p: _hash_key(seed, p))
    n_train = round(fractions[0] * len(order))
    n_val = min(round(fractions[1] * len(order)), len(order) - n_train)
    names = ["train"] * n_train + ["val"] * n_val
    names += ["test"] * (len(order) - len(names))
    return dict(zip(order, names, strict=True))


def _hash_key(seed: int, name: str) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def split_counts(n: int, fractions: Sequence[float] = PAPER_FRACTIONS) -> tuple[int, int, int]:
    """(train, val, test) counts of ``n`` scans: rounded shares, each >= 1 once ``n >= 3``.

    Tiny datasets: 1 scan -> train; 2 -> train and val (no test); from 3 on every split
    gets at least one scan (taken from train), e.g. 3 -> 1/1/1, 5 -> 3/1/1, 10 -> 7/1/2.
    """
    if n <= 0:
        return 0, 0, 0
    if n == 1:
        return 1, 0, 0
    if n == 2:
        return 1, 1, 0
    n_val = int(math.floor(fractions[1] * n + 0.5))
    n_test = int(math.floor(fractions[2] * n + 0.5))
    n_val, n_test = max(n_val, 1), max(n_test, 1)
    return n - n_val - n_test, n_val, n_test


def paper_splits(
    agatston: dict[str, float],
    seed: int = 0,
    fractions: Sequence[float] = PAPER_FRACTIONS,
) -> dict[str, str]:
    """The paper's patient-level splits (Hong et al. 2022, 2.1) from total Agatston scores.

    Zero-calcium scans go to :data:`ZERO_SPLIT`. The positive scans are ordered by risk
    category (:data:`STRATIFY_BY`), then by a hash of (seed, id), and dealt out so that
    after every scan each split's count is as close as possible to its share (largest
    deficit first, ties in train, val, test order) until it reaches its total from
    :func:`split_counts`: every category is split in (nearly) the same proportions.

    Args:
        agatston: scan (or patient) id -> total reference Agatston score.
        seed: changes the order within each category.
        fractions: (train, val, test) shares of the positive scans.

    Returns:
        id -> split.
    """
    from cac_lightning.scoring.risk import risk_category

    out = {k: ZERO_SPLIT for k, a in agatston.items() if float(a) <= 0.0}
    positive = sorted(
        (k for k, a in agatston.items() if float(a) > 0.0),
        key=lambda k: (risk_category(agatston[k]), _hash_key(seed, k)),
    )
    quota = split_counts(len(positive), fractions)
    shares = [q / max(len(positive), 1) for q in quota]
    counts = [0, 0, 0]
    for i, k in enumerate(positive):
        open_ = [j for j in range(3) if counts[j] < quota[j]]
        j = max(open_, key=lambda j: (shares[j] * (i + 1) - counts[j], -j))
        counts[j] += 1
        out[k] = SPLITS[j]
    return out


def write_splits(
    out: Path,
    rows: list[ManifestRow],
    paper: bool,
    seed: int,
    split: str | None,
    fractions: Sequence[float] | None,
) -> Path:
    """Set the paper's splits on ``rows`` (reusing ``out/splits.json``) and write the file."""
    from cac_lightning.io.atomic import atomic_write_text

    path = out / "splits.json"
    if paper:
        previous: dict[str, str] = {}
        if path.is_file():
            try:
                saved = json.loads(path.read_text())
                previous = {str(k): str(v) for k, v in saved["splits"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise InputError(f"{path} is not a splits file; move it away") from None
            bad = sorted({v for v in previous.values()} - set(SPLITS))
            if bad:
                raise InputError(f"{path}: unknown split(s) {bad}")
        new = {r.scan_id: r.ref_agatston for r in rows if r.scan_id not in previous}
        assigned = {**paper_splits(new, seed), **previous}
        for r in rows:
            r.split = assigned[r.scan_id]
        rule = {
            "rule": "paper",
            "fractions": list(PAPER_FRACTIONS),
            "stratify_by": STRATIFY_BY,
            "zero_calcium": ZERO_SPLIT,
        }
        kept = {k: v for k, v in previous.items() if k not in {r.scan_id for r in rows}}
        table = {**kept, **{r.scan_id: r.split for r in rows}}
    else:
        rule = (
            {"rule": "fractions", "fractions": list(fractions)}
            if fractions
            else {
                "rule": "single",
                "split": split,
            }
        )
        table = {r.scan_id: r.split for r in rows}
    doc = {**rule, "seed": int(seed), "splits": dict(sorted(table.items()))}
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path

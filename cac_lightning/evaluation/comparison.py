"""``cac-compare``'s tables: a leaderboard of arms, and every arm against a reference arm.

The leaderboard has one row per arm: mean ± sd over seeds of the headline test metrics, the
trainable parameters and the training speed (``callbacks/throughput.py``), sorted by Agatston
MAE. The paired table has, for every metric and every arm but the reference, the paired
difference arm − reference with its 95 % hierarchical bootstrap interval and two-sided p-value
(:mod:`cac_lightning.evaluation.paired`), the p-value Holm-adjusted over the arms within the
metric, and a verdict: "not distinguishable" when the adjusted p is at least :data:`ALPHA`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cac_lightning.evaluation.paired import PairedDifference
from cac_lightning.evaluation.runs import SPEED_KEY, Run

__all__ = [
    "ALPHA",
    "COLUMNS",
    "DEFAULT_REFERENCE",
    "LEADERBOARD",
    "PairedRow",
    "arms_of",
    "leaderboard",
    "leaderboard_cells",
    "leaderboard_markdown",
    "nets_of",
    "paired_cells",
    "paired_markdown",
    "paired_rows",
    "pairing_notes",
    "reference_arm",
]

ALPHA = 0.05
DEFAULT_REFERENCE = "unetplusplus"

# Metrics of the paired table.
COLUMNS = (
    ("test/agatston_mae", "CAC error (MAE)"),
    ("test/precision", "Precision"),
    ("test/recall", "Recall"),
    ("test/dice", "Dice"),
    ("test/iou", "IoU"),
    ("test/icc_agatston_total", "ICC Agatston total"),
    ("test/kappa", "Risk kappa"),
    ("test/kappa_linear", "Risk kappa (linear)"),
    ("test/risk_accuracy", "Risk accuracy"),
    ("test_zero/zero_cac_flagged_rate", "Zero-CAC FP rate"),
)
# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = {"test/agatston_mae", "test_zero/zero_cac_flagged_rate"}
# Metrics without per-scan records in metrics.json: bootstrapped over seeds only.
VOXEL_LEVEL = {"test/precision", "test/recall", "test/dice", "test/iou"}

# Columns of the leaderboard (the first sorts it).
LEADERBOARD = (
    ("test/agatston_mae", "Agatston MAE"),
    ("test/icc_agatston_total", "ICC total"),
    ("test/kappa_linear", "κ linear"),
    ("test/risk_accuracy", "risk accuracy"),
    ("test/dice", "Dice"),
    ("model/params", "params"),
    (SPEED_KEY, "train slices/s"),
)


def arms_of(runs: Sequence[Run]) -> list[str]:
    """The arms, sorted by name."""
    return sorted({r.arm for r in runs})


def reference_arm(
    arms: Sequence[str], wanted: str | None = None, nets: Mapping[str, set[str]] | None = None
) -> str:
    """The reference arm: ``wanted``, else ``unetplusplus`` when present, else the first arm.

    A name matches an arm of that label, else the one arm with a label part equal to it
    (``unetplusplus`` matches ``unetplusplus lr=0.001``); the default also matches the one arm
    whose runs are all that network (``nets``: arm -> its runs' net names), e.g.
    ``experiment=paper_unetplusplus``.

    Raises:
        InputError: ``wanted`` matches no arm, or several.
    """
    from cac_lightning.errors import InputError

    def match(name: str) -> list[str]:
        if name in arms:
            return [name]
        return [a for a in arms if name in a.split(" ")]

    if wanted is not None:
        found = match(wanted)
        if len(found) != 1:
            why = "no arm" if not found else f"several arms ({', '.join(found)})"
            raise InputError(f"--reference {wanted} matches {why}; arms: {', '.join(arms)}")
        return found[0]
    found = match(DEFAULT_REFERENCE)
    if not found and nets:
        found = [a for a in arms if nets.get(a) == {DEFAULT_REFERENCE}]
    return found[0] if len(found) == 1 else arms[0]


def nets_of(runs: Sequence[Run]) -> dict[str, set[str]]:
    """arm -> the network names of its runs."""
    out: dict[str, set[str]] = {}
    for r in runs:
        out.setdefault(r.arm, set()).add(r.net)
    return out


def _stat(values: Sequence[float | None]) -> tuple[float, float, int]:
    """(mean, sd, n) of the finite values; sd 0 for one value, NaN mean for none."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if not len(v):
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def leaderboard(runs: Sequence[Run]) -> list[dict]:
    """One row per arm: ``{"arm", "seeds": [..], key: (mean, sd, n), ...}``, sorted by the
    first :data:`LEADERBOARD` metric (lower first; arms without it last)."""
    rows = []
    for arm in arms_of(runs):
        mine = [r for r in runs if r.arm == arm]
        row = {"arm": arm, "seeds": sorted(r.seed for r in mine)}
        row.update({key: _stat([r.metrics.get(key) for r in mine]) for key, _ in LEADERBOARD})
        rows.append(row)
    first = LEADERBOARD[0][0]
    return sorted(rows, key=lambda r: (math.isnan(r[first][0]), r[first][0], r["arm"]))


def _cell(key: str, stat: tuple[float, float, int]) -> str:
    mean, sd, n = stat
    if n == 0:
        return "n/a"
    if key == "model/params":
        return f"{mean / 1e6:.2f} M" if sd == 0 else f"{mean / 1e6:.2f} ± {sd / 1e6:.2f} M"
    digits = 1 if key == SPEED_KEY or abs(mean) >= 100 else 3
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if n > 1 else "")


def leaderboard_cells(rows: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the leaderboard (markdown and W&B share them)."""
    header = ["rank", "arm", "seeds", *(label for _, label in LEADERBOARD)]
    cells = [
        [str(i), row["arm"], str(len(row["seeds"]))]
        + [_cell(key, row[key]) for key, _ in LEADERBOARD]
        for i, row in enumerate(rows, 1)
    ]
    return header, cells


def _markdown(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def leaderboard_markdown(rows: Sequence[dict]) -> str:
    """The leaderboard as a markdown table."""
    return _markdown(*leaderboard_cells(rows))


@dataclass(frozen=True)
class PairedRow:
    """One metric of one arm against the reference."""

    key: str
    label: str
    arm: str
    result: PairedDifference
    p_holm: float
    verdict: str


def _pair(runs: Sequence[Run], reference: str, arm: str, key: str) -> tuple[dict, dict]:
    """(reference, arm): seed -> per-scan records of the metric's split where both have them
    at every common seed, else seed -> the runs' number (voxel metrics: always numbers)."""
    split = key.split("/")[0]
    by_arm = {a: {r.seed: r for r in runs if r.arm == a} for a in (reference, arm)}
    common = set(by_arm[reference]) & set(by_arm[arm])
    records = (
        key not in VOXEL_LEVEL
        and bool(common)
        and all(by_arm[a][s].scans.get(split) for a in by_arm for s in common)
    )
    if records:
        return tuple({s: list(r.scans[split]) for s, r in by_arm[a].items()} for a in by_arm)
    return tuple({s: r.metrics.get(key) for s, r in by_arm[a].items()} for a in by_arm)


def _has(run: Run, key: str) -> bool:
    """Whether ``run`` has a value of ``key``: its number, or records of a scan-level key."""
    records = key not in VOXEL_LEVEL and run.scans.get(key.split("/")[0])
    return run.metrics.get(key) is not None or bool(records)


def _verdict(key: str, res: PairedDifference, p_holm: float, arm: str, reference: str) -> str:
    if res.n_seeds == 0:
        return "no paired values"
    if not math.isfinite(p_holm):
        return "no interval (too few seeds or scans)"
    if p_holm >= ALPHA:
        return "not distinguishable"
    better = (res.diff < 0) == (key in LOWER_IS_BETTER)
    return f"{arm} better" if better else f"{reference} better"


def paired_rows(runs: Sequence[Run], reference: str, n_boot: int = 1000) -> list[PairedRow]:
    """Every metric of :data:`COLUMNS` that a run has × every arm but ``reference``:
    arm − reference, Holm-adjusted over the arms."""
    from cac_lightning.evaluation.paired import bootstrap_paired, holm

    others = [a for a in arms_of(runs) if a != reference]
    rows = []
    for key, label in COLUMNS:
        if not any(_has(r, key) for r in runs):
            continue
        results = [bootstrap_paired(*_pair(runs, reference, a, key), key, n_boot) for a in others]
        adjusted = holm([r.p for r in results])
        for arm, res, p in zip(others, results, adjusted, strict=True):
            rows.append(PairedRow(key, label, arm, res, p, _verdict(key, res, p, arm, reference)))
    return rows


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def paired_cells(rows: Sequence[PairedRow], reference: str) -> tuple[list[str], list[list]]:
    """Header and cells of the paired table (markdown and W&B share them)."""
    from cac_lightning.evaluation.paired import seeds_needed

    header = [
        "metric", "arm", f"arm − {reference}", "95% CI", "p", "p (Holm)", "resampled", "seeds",
        "verdict", "seeds needed",
    ]  # fmt: skip
    cells = []
    for row in rows:
        res = row.result
        finite = res.n_seeds > 0 and math.isfinite(res.diff)
        need = seeds_needed(res.diff, res.sd_seed) if finite else math.nan
        cells.append(
            [
                row.label,
                row.arm,
                f"{res.diff:+.3f}" if finite else "n/a",
                f"[{res.lo:+.3f}, {res.hi:+.3f}]" if math.isfinite(res.lo) else "n/a",
                _p(res.p),
                _p(row.p_holm),
                res.level,
                str(res.n_seeds),
                row.verdict,
                f"{need:.0f}" if math.isfinite(need) else "n/a",
            ]
        )
    return header, cells


def paired_markdown(rows: Sequence[PairedRow], reference: str) -> str:
    """The paired table as markdown."""
    return _markdown(*paired_cells(rows, reference))


def _seeds(seeds: set[int]) -> str:
    return ", ".join(str(s) for s in sorted(seeds))


def pairing_notes(runs: Sequence[Run], reference: str) -> list[str]:
    """What the paired table leaves out: seeds an arm or the reference lacks, and test scans
    that are not in both runs of a seed (pairs use the common scan ids only)."""
    notes = []
    ref_runs = {r.seed: r for r in runs if r.arm == reference}
    for arm in arms_of(runs):
        if arm == reference:
            continue
        mine = {r.seed: r for r in runs if r.arm == arm}
        common = set(mine) & set(ref_runs)
        if not common:
            notes.append(
                f"arm {arm} (seeds {_seeds(set(mine))}) has no seed in common with the "
                f"reference {reference} (seeds {_seeds(set(ref_runs))}): not compared "
                "(an imported arm pairs under its `cac-import-nnunet --seed`)"
            )
            continue
        if only := set(mine) - common:
            notes.append(f"arm {arm}: seed(s) {_seeds(only)} without a {reference} run")
        if missing := set(ref_runs) - common:
            notes.append(f"arm {arm}: no run for seed(s) {_seeds(missing)} of {reference}")
        for seed in sorted(common):
            a, b = mine[seed].scans, ref_runs[seed].scans
            for split in sorted(set(a) | set(b)):
                ids_a = {str(s.get("scan_id")) for s in a.get(split) or []}
                ids_b = {str(s.get("scan_id")) for s in b.get(split) or []}
                if ids_a != ids_b:
                    notes.append(
                        f"arm {arm} seed {seed}, {split}: paired on the {len(ids_a & ids_b)} "
                        f"scans both have ({arm} {len(ids_a)}, {reference} {len(ids_b)})"
                    )
    return notes

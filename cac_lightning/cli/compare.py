"""``cac-compare``: a leaderboard of arms over seeds, and every arm against a reference arm.

``cac-compare outputs/arch_sweep/multiruns/<time> [runs/nnunet_2d ...] --out results.md``
gathers the runs under the roots (:mod:`cac_lightning.evaluation.runs`: multirun jobs, whose
arm is the overrides that differ between jobs, and external arm folders such as
``cac-import-nnunet``'s) and writes a markdown file: the leaderboard (one row per arm, mean ± sd
over seeds, sorted by Agatston MAE), the paired difference arm − reference per metric with a
95 % hierarchical bootstrap interval and a Holm-adjusted p-value
(:mod:`cac_lightning.evaluation.comparison`), and notes on what was left out (failed or
unfinished jobs, unpaired seeds or scans). A PNG of the leaderboard is written beside it, and
both tables and the plot go to W&B (offline unless configured) as a run with
``job_type="compare"`` in the sweep's group. Nothing usable under the roots: one line, exit 2.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from cac_lightning.cli.common import run_cli
from cac_lightning.errors import InputError
from cac_lightning.evaluation.runs import Gathered
from cac_lightning.io.atomic import atomic_write_text

__all__ = ["main"]

PLOTTED = (
    ("test/agatston_mae", "Agatston MAE"),
    ("test/icc_agatston_total", "ICC total"),
    ("test/dice", "Dice"),
)


def notes(found: Gathered, reference: str) -> list[str]:
    """Every job without a result, every run left out, every seed or scan left unpaired."""
    from cac_lightning.evaluation.comparison import arms_of, pairing_notes

    out = []
    for job in found.failed:
        where = f"job `{job.dir}` (arm {job.arm}, seed {job.seed})"
        if job.error == "unfinished":
            out.append(f"{where}: no metrics.json (still running, killed, or test=false)")
        else:
            out.append(f"{where} failed: {job.error}: {job.message}")
    out += found.notes
    if len(arms_of(found.runs)) < 2:
        out.append("one arm only: no paired differences")
    return out + pairing_notes(found.runs, reference)


def sweep_group(found: Gathered) -> str:
    """The W&B group most runs share ("" when none has one)."""
    groups = Counter(r.group for r in found.runs if r.group)
    return min(groups, key=lambda g: (-groups[g], g)) if groups else ""


def log_wandb(tables: dict, image: Path, group: str, config: dict, out_dir: Path) -> str | None:
    """A W&B run (``job_type="compare"``, in ``group``) holding ``tables`` ({key: (header,
    cells)}) and the plot; offline unless ``WANDB_MODE`` says otherwise. Its folder, or None
    without wandb."""
    try:
        import wandb
    except ImportError:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project="cac-lightning",
        group=group or None,
        job_type="compare",
        name=f"{group or 'arms'}-compare",
        dir=str(out_dir),
        config=config,
        mode=os.environ.get("WANDB_MODE", "offline"),
        reinit=True,
    )
    try:
        logged = {k: wandb.Table(columns=h, data=c) for k, (h, c) in tables.items()}
        run.log({**logged, "compare/leaderboard_plot": wandb.Image(str(image))})
        return str(run.dir)
    finally:
        run.finish()


def report(
    roots: list[Path],
    found: Gathered,
    reference: str,
    tables: tuple[str, str],
    png: str,
    notes_: list[str],
) -> str:
    """The markdown file: ``tables`` (leaderboard, paired differences; "" for none), notes."""
    from cac_lightning.evaluation.comparison import ALPHA, arms_of

    board_md, paired_md = tables
    n_arms = len(arms_of(found.runs))
    where = ", ".join(f"`{r}`" for r in roots)
    text = (
        f"# Comparison of {n_arms} arm{'s' * (n_arms != 1)}\n\n"
        f"{len(found.runs)} run{'s' * (len(found.runs) != 1)} gathered from {where}.\n\n"
        "## Leaderboard\n\n"
        "Mean ± sd over seeds of the test split (Agatston MAE, ICC of the total, linear kappa "
        "and accuracy of the risk category, Dice), trainable parameters and training slices "
        f"per second (training steps only), sorted by Agatston MAE.\n\n{board_md}\n"
        f"![leaderboard]({png})\n"
    )
    if paired_md:
        text += (
            f"\n## Paired differences against {reference}\n\n"
            f"Per metric and arm: arm − {reference}, the mean over seeds of the per-seed "
            "difference on the same test scans (paired by scan id); 95 % percentile bootstrap "
            "over the test scans within each seed, then over seeds (voxel metrics: over seeds "
            "only); p: two-sided bootstrap p-value (voxel metrics: at least 2^(1 − seeds), "
            "what a sign-flip test over the seeds can reach); p (Holm): adjusted over the "
            f"{n_arms - 1} arm{'s' * (n_arms != 2)} within the metric; 'not distinguishable' "
            f"when the adjusted p ≥ {ALPHA}; 'seeds needed': seeds for the interval to exclude "
            f"0 at the observed difference and seed-to-seed sd.\n\n{paired_md}"
        )
    if notes_:
        text += "\n## Notes\n\n" + "".join(f"- {n}\n" for n in notes_)
    return text


def _main(argv: list[str] | None = None) -> int:
    from cac_lightning.evaluation import comparison as cmp
    from cac_lightning.evaluation.plots import leaderboard_png
    from cac_lightning.evaluation.runs import gather

    p = argparse.ArgumentParser(prog="cac-compare", description=__doc__.splitlines()[0])
    p.add_argument(
        "roots", nargs="+", metavar="ROOT",
        help="a multirun folder, a run folder, or an external arm folder (cac-import-nnunet --out)",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="markdown file to write (and <name>.png beside)")
    p.add_argument(
        "--reference", metavar="ARM",
        help=f"the arm the others are compared with (default {cmp.DEFAULT_REFERENCE} when "
        "present, else the first arm by name)",
    )  # fmt: skip
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--no-wandb", action="store_true", help="do not log the tables to W&B")
    a = p.parse_args(argv)
    roots = [Path(r) for r in a.roots]
    for root in roots:
        if not root.is_dir():
            raise InputError(f"{root} is not a folder")
    if a.n_boot < 100:
        raise InputError(f"--n-boot must be >= 100, got {a.n_boot}")
    found = gather(roots)
    if not found.runs:
        failed = sum(j.error != "unfinished" for j in found.failed)
        unfinished = len(found.failed) - failed
        raise InputError(
            f"no usable runs (metrics.json of a job or an external arm) under "
            f"{', '.join(map(str, roots))} ({failed} failed, {unfinished} unfinished jobs)"
        )
    arms = cmp.arms_of(found.runs)
    reference = cmp.reference_arm(arms, a.reference, cmp.nets_of(found.runs))
    board = cmp.leaderboard(found.runs)
    rows = cmp.paired_rows(found.runs, reference, a.n_boot) if len(arms) > 1 else []
    board_md = cmp.leaderboard_markdown(board)
    paired_md = cmp.paired_markdown(rows, reference) if rows else ""
    found_notes = notes(found, reference)
    out = Path(a.out)
    png = out.with_suffix(".png")
    text = report(roots, found, reference, (board_md, paired_md), png.name, found_notes)
    atomic_write_text(out, text)
    leaderboard_png(png, board, PLOTTED, title="mean ± sd over seeds")
    print(board_md)
    if paired_md:
        print(f"arm − {reference}:\n{paired_md}")
    for line in found_notes:
        print(f"note: {line}")
    print(f"written to {out} and {png}")
    if not a.no_wandb:
        group = sweep_group(found)
        tables = {"compare/leaderboard": cmp.leaderboard_cells(board)}
        if rows:
            tables["compare/paired_differences"] = cmp.paired_cells(rows, reference)
        config = {"reference": reference, "arms": arms, "roots": [str(r) for r in roots]}
        if log_wandb(tables, png, group, config, out.parent):
            print(f"W&B: compare run in group {group or '-'} ({out.parent / 'wandb'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-compare", exit_process=argv is None)


if __name__ == "__main__":
    main()

"""``cac-synth``: generate a synthetic gated cardiac CT cohort, or print cohort statistics.

Examples::

    cac-synth --out data/synth --n-scans 100 --seed 0            # 512 x 512, all CPU cores
    cac-synth --out /tmp/s --n-scans 20 --size 128 --workers 2   # small and fast
    cac-synth --out data/p --n-scans 100 --split paper           # 70/10/20 by risk category
    cac-synth --stats data/synth /path/to/coca-sample            # one column per source
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from cac_lightning.cli.common import run_cli
from cac_lightning.errors import InputError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from cac_lightning.sources.synthetic.cohort import SPLIT_RULES

    p = argparse.ArgumentParser(
        prog="cac-synth",
        description=(
            "Write N synthetic ECG-gated non-contrast cardiac CT scans (DICOM series), their "
            "coronary calcium label maps (0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA) and manifest.csv with "
            "reference scores; or, with --stats, compare cohorts (synthetic or COCA)."
        ),
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--out", metavar="DIR", help="new (or empty) output folder")
    mode.add_argument(
        "--stats",
        nargs="+",
        metavar="PATH",
        help="cohort folder (manifest.csv) or COCA root (Gated_release_final)",
    )
    p.add_argument("--n-scans", type=int, metavar="N", help="number of scans (with --out)")
    p.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    p.add_argument(
        "--size",
        type=int,
        default=512,
        metavar="PX",
        help="in-plane matrix; same FOV, coarser pixels when smaller (default 512)",
    )
    p.add_argument(
        "--zero-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of calcium-free scans (default 0.2)",
    )
    p.add_argument(
        "--stent-fraction",
        type=float,
        default=None,
        metavar="F",
        help="share of scans with an (unlabelled) coronary stent (default 0.1)",
    )
    p.add_argument(
        "--non-gated",
        action="store_true",
        help="non-gated chest CT: 5 mm slices, 300-460 mm field of view, the whole chest, "
        "cardiac motion blur (sources/synthetic/phantom.py NON_GATED)",
    )
    p.add_argument(
        "--split",
        choices=SPLIT_RULES,
        default=SPLIT_RULES[0],
        help="demo: positives 60/20/20; paper: positives 70/10/20 stratified by risk category, "
        "as cac-import-coca (default demo; zero-calcium scans go to test_zero either way)",
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="W", help="processes (default: CPU count)"
    )
    return p


def _generate(args: argparse.Namespace) -> int:
    from cac_lightning.io.manifest import read_manifest
    from cac_lightning.sources.synthetic import generate_cohort

    if args.n_scans is None:
        raise InputError("--out needs --n-scans N")
    options = {}
    if args.non_gated:
        from cac_lightning.sources.synthetic.phantom import NON_GATED

        options.update(NON_GATED)
    if args.zero_fraction is not None:
        options["zero_fraction"] = args.zero_fraction
    if args.stent_fraction is not None:
        options["stent_fraction"] = args.stent_fraction
    manifest = generate_cohort(
        args.out,
        args.n_scans,
        seed=args.seed,
        size=args.size,
        workers=args.workers,
        split=args.split,
        **options,
    )
    counts = Counter(r.split for r in read_manifest(manifest))
    splits = ", ".join(f"{k} {counts[k]}" for k in ("train", "val", "test", "test_zero"))
    print(f"wrote {args.n_scans} scans ({splits}) to {manifest}")
    return 0


def _stats(paths: list[str]) -> int:
    from cac_lightning.sources.synthetic.stats import cohort_stats, format_stats

    for p in paths:
        if not Path(p).exists():
            raise InputError(f"{p} does not exist")
    print(format_stats([cohort_stats(p) for p in paths]))
    return 0


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stats:
        return _stats(args.stats)
    return _generate(args)


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-synth", exit_process=argv is None)


if __name__ == "__main__":
    main()

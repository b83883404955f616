"""``cac-import-coca``: convert the Stanford COCA gated release into a cac-lightning dataset.

Prints one line per patient (scan_id, ROIs, total Agatston), a summary and the
scans per split. Without split options the splits are the paper's (calcium-positive
scans 70/10/20 % train/val/test stratified by risk category, zero-calcium scans to
test_zero; seeded; OUT/splits.json, reused on a re-import into OUT), so
``cac-import-coca ROOT --out data/coca && cac-train data=coca`` trains. A patient
that fails is reported in one line and the others still import; the exit code is
then 1. Bad arguments or a bad COCA_ROOT: one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys

from cac_lightning.cli.common import run_cli
from cac_lightning.io.manifest import SPLITS

__all__ = ["main"]

EXIT_PARTIAL = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cac-import-coca",
        description="Import COCA gated CAC scans (Gated_release_final) with label maps and "
        "reference scores into OUT/manifest.csv; the DICOM series are referenced in place.",
    )
    p.add_argument("coca_root", metavar="COCA_ROOT", help="folder holding Gated_release_final")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (no manifest.csv yet)"
    )
    p.add_argument(
        "--patients", nargs="+", metavar="PID", help="patient folder names to import (default: all)"
    )
    splits = p.add_mutually_exclusive_group()
    splits.add_argument(
        "--split",
        choices=SPLITS,
        default=None,
        help="put every imported scan in this split (default: the paper's splits: "
        "calcium-positive 70/10/20 train/val/test by risk category, zero-calcium to test_zero)",
    )
    splits.add_argument(
        "--split-fractions",
        nargs=3,
        type=float,
        metavar=("TRAIN", "VAL", "TEST"),
        help="seeded patient-level split without stratification, e.g. 0.6 0.2 0.2",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split order (default 0)")
    return p


def _main(argv: list[str] | None = None) -> int:
    from cac_lightning.sources.coca import run_import

    args = build_parser().parse_args(argv)
    result = run_import(
        args.coca_root,
        args.out,
        args.patients,
        split=args.split,
        fractions=args.split_fractions,
        seed=args.seed,
        progress=lambda line: print(line, flush=True),
    )
    print(result.summary())
    if result.manifest is not None:
        print(result.split_line())
        print(f"manifest: {result.manifest} (splits: {result.splits_path})")
    if result.failures:
        print(
            f"cac-import-coca: error: {len(result.failures)} patient(s) failed: "
            f"{', '.join(result.failures)}",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-import-coca", exit_process=argv is None)


if __name__ == "__main__":
    main()

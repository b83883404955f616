"""``cac-import-nnunet``: score nnU-Net's predictions as a run of ours (docs/nnunet.md).

Example::

    cac-import-nnunet preds/Dataset501_CAC data/synth --out runs/nnunet_2d --arm nnunet_2d

reads ``PRED_DIR/<case>.nii.gz`` (``nnUNetv2_predict``'s output) for every scan of the chosen
splits (default: ``test`` and ``test_zero``), scores each against the manifest's reference with
our scorer on native voxels (predictions kept inside the heart region as our Predictor keeps
its own; ``--heart off``: as written) and writes ``RUN_DIR/metrics.json`` (``write_summary``'s
schema plus ``arm`` and ``seed``) and ``RUN_DIR/records.jsonl``; ``cac-compare`` then takes
RUN_DIR as an arm. Prints one line per scan and the headline table. Bad input (missing
predictions, all named; a prediction on another grid; RUN_DIR not empty): one line, exit 2,
nothing written.
"""

from __future__ import annotations

import argparse

from cac_lightning.cli.common import run_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from cac_lightning.heart.region import HEART_METHODS
    from cac_lightning.io.manifest import SPLITS

    p = argparse.ArgumentParser(
        prog="cac-import-nnunet",
        description=(
            "Score nnU-Net v2 predictions (PRED_DIR/<case>.nii.gz) against the references of "
            "DATA_DIR's manifest with cac-lightning's scorer; write RUN_DIR/metrics.json as an "
            "arm for cac-compare."
        ),
    )
    p.add_argument("pred_dir", metavar="PRED_DIR", help="nnUNetv2_predict's output folder")
    p.add_argument("data_dir", metavar="DATA_DIR", help="the exported dataset (manifest.csv)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="new or empty run folder")
    p.add_argument("--arm", required=True, metavar="NAME", help="the arm's name in cac-compare")
    p.add_argument(
        "--seed", type=int, default=0, help="seed cac-compare pairs the run under (default 0)"
    )
    p.add_argument(
        "--split",
        action="append",
        choices=SPLITS,
        metavar="SPLIT",
        help="split to score, repeatable (default: test and test_zero, those the manifest has; "
        "val with nnU-Net's fold_0/validation folder)",
    )
    p.add_argument(
        "--heart",
        choices=HEART_METHODS,
        default=None,
        help="keep predicted calcium inside the heart region found this way, as our Predictor "
        "does for our arms (default: the Predictor's default, auto); off: score nnU-Net's "
        "label maps exactly as written",
    )
    return p


def _main(argv: list[str] | None = None) -> int:
    from cac_lightning.evaluation.summary import summary_table
    from cac_lightning.nnunet.predictions import default_heart, score_predictions, write_run

    args = build_parser().parse_args(argv)
    heart = default_heart() if args.heart is None else args.heart
    records = score_predictions(
        args.pred_dir,
        args.data_dir,
        args.split,
        heart=heart,
        progress=lambda line: print(line, flush=True),
    )
    source = {
        "kind": "nnunetv2",
        "heart": heart,
        "predictions": str(args.pred_dir),
        "data_dir": str(args.data_dir),
        "splits": sorted({r.split for r in records}),
    }
    summary = write_run(args.out, records, args.arm, args.seed, source)
    print(summary_table(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-import-nnunet", exit_process=argv is None)


if __name__ == "__main__":
    main()

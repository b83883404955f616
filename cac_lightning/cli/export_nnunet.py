"""``cac-export-nnunet``: write a dataset of ours as an nnU-Net v2 raw dataset (docs/nnunet.md).

Example::

    cac-export-nnunet data/synth nnunet --dataset-id 501 --name CAC
    # -> nnunet/nnUNet_raw/Dataset501_CAC/{dataset.json,imagesTr,labelsTr,imagesTs}
    #    nnunet/nnUNet_preprocessed/Dataset501_CAC/splits_final.json (fold 0 = our train/val)

Prints one line per case and a summary; then ``nnUNetv2_plan_and_preprocess -d 501 -c 2d`` with
``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` set under OUT. Bad input (not a
dataset folder, a dataset of that id already in OUT, a bad id): one line, exit 2, nothing written.
"""

from __future__ import annotations

import argparse

from cac_lightning.cli.common import run_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from cac_lightning.nnunet.layout import CT_NORMALISATIONS

    p = argparse.ArgumentParser(
        prog="cac-export-nnunet",
        description=(
            "Write the dataset DATA_DIR (manifest.csv) as nnU-Net v2 dataset OUT/nnUNet_raw/"
            "DatasetNNN_NAME: channel 0 the CT in HU, channel 1 the HU >= threshold mask, labels "
            "0 background 1 LM 2 LAD 3 CX 4 RCA; train+val in imagesTr with our split as fold 0 "
            "(OUT/nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json), test and test_zero in "
            "imagesTs."
        ),
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="dataset folder holding manifest.csv")
    p.add_argument("out", metavar="OUT", help="folder for nnUNet_raw and nnUNet_preprocessed")
    p.add_argument("--dataset-id", type=int, required=True, metavar="N", help="nnU-Net id 1..999")
    p.add_argument("--name", default="CAC", help="dataset name, DatasetNNN_NAME (default CAC)")
    p.add_argument(
        "--ct-normalisation",
        choices=CT_NORMALISATIONS,
        default=CT_NORMALISATIONS[0],
        help="nnU-Net normalisation of the CT channel (default zscore: nnU-Net's CT scheme "
        "clips to the percentiles of calcium voxels, all above the threshold; docs/nnunet.md)",
    )
    return p


def _main(argv: list[str] | None = None) -> int:
    from cac_lightning.nnunet.export import export_dataset

    args = build_parser().parse_args(argv)
    result = export_dataset(
        args.data_dir,
        args.out,
        args.dataset_id,
        args.name,
        ct_normalisation=args.ct_normalisation,
        progress=lambda line: print(line, flush=True),
    )
    print(result.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-export-nnunet", exit_process=argv is None)


if __name__ == "__main__":
    main()

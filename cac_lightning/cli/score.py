"""``cac-score``: calcium scores of CT scans from a label map (``--mask``) or a model (``--ckpt``).

Writes ``OUT/<scan_id>.json`` and one row per scan in ``OUT/scores.csv`` (a row for a
scan already there is replaced). ``scan_id`` is the series folder or file name (or a
manifest's ``scan_id``), sanitised, plus 8 hex characters of a hash of the series UID
(or of the input path), so equally named series of different patients never overwrite
each other. A scan's outputs appear together or not at all
(:mod:`cac_lightning.io.scan_outputs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cac_lightning.cli.common import run_cli, summary_line
from cac_lightning.cli.mesa import add_mesa_arguments, mesa_for_scan, prepare_mesa
from cac_lightning.errors import InputError
from cac_lightning.heart.region import DEFAULT_MARGIN_MM, HEART_METHODS

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cac-score",
        description="Agatston, volume and mass scores per coronary artery (LM, LAD, CX, RCA).",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="DICOM series folder, NIfTI/MHA/NRRD volume, or (with --ckpt) a manifest CSV",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--mask",
        metavar="LABELS",
        help="label map in the image's geometry: 0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA",
    )
    src.add_argument(
        "--ckpt",
        metavar="CKPT",
        action="append",
        help="a cac-train checkpoint (model inference); repeat to ensemble several of one recipe",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--series-uid",
        help="the series to read when a folder holds several (default: the one gated, "
        "non-contrast 2.5-3 mm series; localizers are skipped)",
    )
    p.add_argument(
        "--mode",
        choices=("per-slice", "lesion3d"),
        default=None,
        help="Agatston definition: clinical per-slice (default) or the 3D lesion variant",
    )
    p.add_argument(
        "--min-area",
        type=float,
        default=None,
        metavar="MM2",
        help="drop calcium components smaller than this (default 1 mm²)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="HU",
        help="calcium threshold (default 130 HU at 120 kVp, kVp-adjusted otherwise)",
    )
    p.add_argument(
        "--mass-factor",
        type=float,
        default=None,
        metavar="C",
        help="mass calibration factor mg/(HU·cm³) (default: DICOM (0018,9352) or built-in)",
    )
    g = p.add_argument_group("model inference (--ckpt)")
    g.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:N")
    g.add_argument("--batch-size", type=int, default=16, help="slices per forward pass")
    g.add_argument(
        "--read-ahead",
        type=int,
        default=1,
        metavar="N",
        help="scans read in the background while the current one is scored (default 1; 0: "
        "read each scan when its turn comes)",
    )
    g.add_argument(
        "--overlays", action="store_true", help="PNG per calcified slice and a summary PNG per scan"
    )
    g.add_argument(
        "--seg",
        action="store_true",
        help="DICOM Segmentation per scan (DICOM inputs); it references the source series and "
        "copies PatientName, PatientID, PatientBirthDate, PatientSex, StudyDate, StudyTime, "
        "StudyID, AccessionNumber, ReferringPhysicianName",
    )
    g.add_argument(
        "--seg-deidentified",
        action="store_true",
        help="with --seg: leave those patient/study attributes empty (UIDs are kept)",
    )
    g.add_argument(
        "--lesion-floor",
        type=float,
        metavar="P",
        help="drop predicted lesions whose mean foreground probability is below P "
        "(default: the checkpoint's calibrated floor; 0 keeps every lesion)",
    )
    g.add_argument(
        "--heart",
        choices=HEART_METHODS,
        default=None,
        help="where calcium may be called coronary: the learned heart locator grown by "
        "--heart-margin (locator), the chest geometry (geometry), the locator when installed "
        "(auto, default), or anywhere (off)",
    )
    g.add_argument(
        "--heart-margin",
        type=float,
        default=DEFAULT_MARGIN_MM,
        metavar="MM",
        help=f"how far the located heart is grown (default {DEFAULT_MARGIN_MM:g} mm)",
    )
    g.add_argument(
        "--save-labels",
        action="store_true",
        help="predicted label map as <id>_labels.nii.gz (the heart region: <id>_heart.nii.gz)",
    )
    g.add_argument(
        "--strict-domain",
        action="store_true",
        help="refuse (exit 2) a scan outside the checkpoint's training data "
        "(pixel spacing, slice thickness, field of view, kVp, ECG gating); default: warn",
    )
    r = p.add_argument_group("reports (--ckpt)")
    r.add_argument(
        "--sr",
        action="store_true",
        help="DICOM Structured Report (TID 1500) per scan, <id>_sr.dcm (DICOM inputs): scores "
        "per vessel, CAC-DRS, threshold, kVp, checkpoint hash; references the source series "
        "(and the SEG with --seg); patient attributes as for --seg (--seg-deidentified: none)",
    )
    r.add_argument(
        "--report",
        action="store_true",
        help="one-page report per scan, <id>_report.html and the same page as an A4 "
        "<id>_report.pdf: scores, CAC-DRS, MESA, key slices, warnings; no patient name or ID "
        "unless --show-patient",
    )
    r.add_argument(
        "--show-patient",
        action="store_true",
        help="with --report: print the patient's name, ID, birth date and study date on it",
    )
    add_mesa_arguments(p)
    return p


def _config_factory(args: argparse.Namespace):
    """Scoring settings: command-line values over the checkpoint's over the defaults."""
    from cac_lightning.scoring import ScoringConfig

    if args.min_area is not None and args.min_area < 0:
        raise InputError("--min-area must be >= 0")
    given = {
        "mode": args.mode,
        "threshold_hu": args.threshold,
        "min_area_mm2": args.min_area,
        "mass_factor": args.mass_factor,
    }

    def make(base: dict | None = None):
        merged = {**(base or {}), **{k: v for k, v in given.items() if v is not None}}
        return ScoringConfig(**merged)

    return make


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if args.batch_size < 1:
        raise InputError("--batch-size must be >= 1")
    make_config = _config_factory(args)
    if args.seg_deidentified and not (args.seg or args.sr):
        raise InputError("--seg-deidentified goes with --seg or --sr")
    if args.show_patient and not args.report:
        raise InputError("--show-patient goes with --report")
    if args.ckpt:
        from cac_lightning.cli.batch import score_with_checkpoint

        return score_with_checkpoint(args, make_config)
    if len(args.inputs) != 1:
        raise InputError("--mask scores exactly one INPUT")
    if args.overlays or args.seg or args.save_labels or args.lesion_floor is not None:
        raise InputError("--overlays, --seg, --save-labels and --lesion-floor need --ckpt")
    if args.sr or args.report:
        raise InputError("--sr and --report need --ckpt")
    from cac_lightning.io import read_label_map, read_volume
    from cac_lightning.io.results import scan_report
    from cac_lightning.io.scan_outputs import (
        check_out_not_in_input,
        output_id,
        prepare_out_dir,
        scan_key,
        scan_outputs,
    )

    check_out_not_in_input(out, args.inputs)
    mesa_state = prepare_mesa(args)
    vol = read_volume(args.inputs[0], series_uid=args.series_uid)
    vol.scan_id = output_id(vol.scan_id, scan_key(vol))
    labels = read_label_map(args.mask, vol.geometry)
    report = scan_report(vol, labels, make_config())
    mesa = mesa_for_scan(mesa_state, vol, report)
    if mesa is not None:
        report["mesa"] = mesa
    with scan_outputs(prepare_out_dir(out), vol.scan_id) as staged:
        staged.commit(report)
    print(summary_line(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(lambda: _main(argv), "cac-score", exit_process=argv is None)


if __name__ == "__main__":
    main()

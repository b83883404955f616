"""``cac-score --ckpt``: model inference over many inputs, one failure never stops the rest."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path

from cac_lightning.errors import CACError, InputError

__all__ = ["DomainError", "expand_inputs", "score_with_checkpoint"]


class DomainError(InputError):
    """A scan outside the checkpoint's training data under ``--strict-domain``."""


def expand_inputs(inputs: Iterable[str]) -> list[tuple[str, str | None]]:
    """(path, scan_id or None) for each input; a manifest CSV expands to its scans."""
    from cac_lightning.data.manifest import read_manifest

    items: list[tuple[str, str | None]] = []
    for inp in inputs:
        if inp.endswith(".csv"):
            items += [(str(r.image), r.scan_id) for r in read_manifest(inp)]
        else:
            items.append((inp, None))
    return items


def _unique(scan_id: str, used: set[str]) -> str:
    sid, n = scan_id, 2
    while sid in used:
        sid, n = f"{scan_id}-{n}", n + 1
    used.add(sid)
    return sid


def score_with_checkpoint(args, config) -> int:
    """Score every input with the checkpoint's network; returns the exit code."""
    from tqdm import tqdm

    from cac_lightning.inference import Predictor
    from cac_lightning.io import read_volume, write_label_map
    from cac_lightning.io.results import scan_report, write_scan_outputs

    predictor = Predictor.from_checkpoint(args.ckpt, args.device, args.batch_size)
    cfg = config(predictor.scoring)
    strict = bool(getattr(args, "strict_domain", False))
    out = Path(args.out)
    items = expand_inputs(args.inputs)
    used: set[str] = set()
    failed: list[str] = []
    domain_failed = False
    bar = tqdm(items, desc="cac-score", unit="scan", disable=len(items) < 2, file=sys.stderr)
    for path, scan_id in bar:
        try:
            t0 = time.perf_counter()
            vol = read_volume(path, series_uid=args.series_uid)
            vol.scan_id = _unique(scan_id or vol.scan_id, used)
            warnings = predictor.warnings(vol)
            if strict and warnings:
                raise DomainError(f"outside the training domain: {'; '.join(warnings)}")
            for line in warnings:
                bar.write(f"cac-score: warning: {vol.scan_id}: {line}", file=sys.stderr)
            t1 = time.perf_counter()
            threshold = predictor.threshold_for(vol, cfg)
            labels = predictor.predict(vol, threshold_hu=threshold)
            t2 = time.perf_counter()
            report = scan_report(vol, labels, cfg)
            report["threshold_hu"] = threshold
            report["warnings"] = warnings
            t3 = time.perf_counter()
            report["timing_s"] = {
                "read": round(t1 - t0, 4),
                "infer": round(t2 - t1, 4),
                "score": round(t3 - t2, 4),
            }
            report["model"] = predictor.describe()
            write_scan_outputs(out, report)
            if args.save_labels:
                write_label_map(labels, vol.geometry, out / f"{vol.scan_id}_labels.nii.gz")
            if args.overlays:
                from cac_lightning.inference.outputs import write_overlays

                write_overlays(out / f"{vol.scan_id}_overlays", vol, labels, report)
            if args.seg:
                from cac_lightning.inference.outputs import write_seg

                write_seg(out / f"{vol.scan_id}_seg.dcm", vol, labels)
            tim = report["timing_s"]
            bar.write(
                f"{_line(report)}  [read {tim['read']:.2f} s, infer {tim['infer']:.2f} s, "
                f"score {tim['score']:.3f} s]",
                file=sys.stdout,
            )
        except DomainError as err:
            domain_failed = True
            failed.append(path)
            bar.write(f"cac-score: error: {path}: {err}", file=sys.stderr)
        except CACError as err:
            failed.append(path)
            bar.write(f"cac-score: error: {path}: {err}", file=sys.stderr)
    print(
        f"{len(items) - len(failed)} scored, {len(failed)} failed"
        + (": " + ", ".join(failed) if failed else "")
    )
    if domain_failed:
        return 2  # --strict-domain refused a scan: a user error
    return 1 if failed else 0


def _line(report: dict) -> str:
    from cac_lightning.cli.score import summary_line

    return summary_line(report)

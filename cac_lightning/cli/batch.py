"""``cac-score --ckpt``: model inference over many inputs, one failure never stops the rest."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from cac_lightning.cli.common import EXIT_USER_ERROR, summary_line
from cac_lightning.errors import CACError, InputError

__all__ = ["DomainError", "expand_inputs", "read_ahead", "score_with_checkpoint"]


class DomainError(InputError):
    """A scan outside the checkpoint's training data under ``--strict-domain``."""


log = logging.getLogger(__name__)


def expand_inputs(inputs: Iterable[str]) -> list[tuple[str, str | None]]:
    """(path, scan_id or None) for each input; a manifest CSV expands to its scans."""
    from cac_lightning.io.manifest import read_manifest

    items: list[tuple[str, str | None]] = []
    for inp in inputs:
        if inp.endswith(".csv"):
            items += [(str(r.image), r.scan_id) for r in read_manifest(inp)]
        else:
            items.append((inp, None))
    return items


def read_ahead(items: list, read: Callable, depth: int = 1) -> Iterator[tuple[object, Future]]:
    """``(item, future of read(item))`` in order, with up to ``depth`` later items already being
    read in a background thread (0: each read starts when its item is taken). A read's error is
    raised by ``future.result()``, at its own item."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cac-read") as pool:
        pending = iter(items)
        queue: deque = deque()
        for item in pending:
            queue.append((item, pool.submit(read, item)))
            if len(queue) > depth:
                yield queue.popleft()
        while queue:
            yield queue.popleft()


def score_with_checkpoint(args, config) -> int:
    """Score every input with the checkpoint's network; returns the exit code.

    A scan that cannot be read or written is one line on stderr; the others go on and
    the last line says ``N scored, M failed``. Exit code 0, else 1 (2 when the only
    input failed, as bad input does everywhere).
    """
    from tqdm import tqdm

    from cac_lightning.inference import Predictor
    from cac_lightning.io import read_volume
    from cac_lightning.io.scan_outputs import check_out_not_in_input, prepare_out_dir
    from cac_lightning.io.sr import checkpoint_sha256

    out = Path(args.out)
    items = expand_inputs(args.inputs)
    depth = int(getattr(args, "read_ahead", 1))
    if depth < 0:
        raise InputError(f"--read-ahead must be >= 0, got {depth}")
    check_out_not_in_input(out, [p for p, _ in items])
    try:
        predictor = Predictor.from_checkpoints(args.ckpt, args.device, args.batch_size)
    except (TypeError, ValueError) as err:  # network arguments the code does not know
        raise InputError(
            f"{', '.join(args.ckpt)}: the network hyper-parameters do not fit this version ({err})"
        ) from None
    if getattr(args, "lesion_floor", None) is not None:
        predictor.set_floor(args.lesion_floor)
    predictor.set_heart(args.heart or predictor.heart_method, args.heart_margin)
    cfg = config(predictor.scoring)
    from cac_lightning.cli.mesa import prepare_mesa

    args.mesa_state = prepare_mesa(args)  # MESA flags checked and --covariates read once
    args.checkpoint_sha256 = checkpoint_sha256(args.ckpt)  # once, not per scan
    strict = bool(getattr(args, "strict_domain", False))
    prepare_out_dir(out)
    done: dict[str, str] = {}
    failed: list[str] = []
    domain_failed = False
    bar = tqdm(
        total=len(items), desc="cac-score", unit="scan", disable=len(items) < 2, file=sys.stderr
    )

    def read(item: tuple[str, str | None]):
        return read_volume(item[0], series_uid=args.series_uid)

    for (path, scan_id), volume in read_ahead(items, read, depth):
        bar.update(1)
        try:
            report = _score_one(args, predictor, cfg, out, path, scan_id, strict, bar, volume)
        except DomainError as err:
            domain_failed = True
            failed.append(path)
            bar.write(f"cac-score: error: {path}: {err}", file=sys.stderr)
            continue
        except CACError as err:
            failed.append(path)
            bar.write(f"cac-score: error: {path}: {err}", file=sys.stderr)
            continue
        except OSError as err:  # reading failures the readers did not name
            failed.append(path)
            bar.write(f"cac-score: error: {path}: {err.strerror or err}", file=sys.stderr)
            continue
        if report["scan_id"] in done:
            first = done[report["scan_id"]]
            log.warning("%s and %s are the same scan; kept the later result", first, path)
        done[report["scan_id"]] = path
        tim = report["timing_s"]
        bar.write(
            f"{summary_line(report)}  [read {tim['read']:.2f} s, infer {tim['infer']:.2f} s, "
            f"score {tim['score']:.3f} s]",
            file=sys.stdout,
        )
    print(
        f"{len(items) - len(failed)} scored, {len(failed)} failed"
        + (": " + ", ".join(failed) if failed else "")
    )
    if not failed:
        return 0
    if domain_failed:
        return EXIT_USER_ERROR  # --strict-domain refused a scan: a user error
    return EXIT_USER_ERROR if len(items) == 1 else 1  # one scan: as for --mask


def _score_one(
    args, predictor, cfg, out: Path, path: str, scan_id: str | None, strict: bool, bar, volume
) -> dict:
    """Predict, score and write one scan (``volume``: the future of its reading); its outputs
    appear together or not at all. ``timing_s.read`` is the wait for the reading, which ran
    while the previous scan was scored (``--read-ahead``)."""
    from cac_lightning.inference.domain import NON_GATED_NOTE, acquisition
    from cac_lightning.io import write_label_map
    from cac_lightning.io.results import scan_report
    from cac_lightning.io.scan_outputs import output_id, scan_key, scan_outputs

    t0 = time.perf_counter()
    vol = volume.result()
    vol.scan_id = output_id(scan_id or vol.scan_id, scan_key(vol))
    warnings = predictor.warnings(vol)
    if strict and warnings:
        raise DomainError(f"outside the training domain: {'; '.join(warnings)}")
    kind = acquisition(vol)
    if kind == "non-gated":
        warnings = [*warnings, NON_GATED_NOTE]
    for line in warnings:
        bar.write(f"cac-score: warning: {vol.scan_id}: {line}", file=sys.stderr)
    t1 = time.perf_counter()
    region = predictor.heart_region(vol)
    threshold = predictor.threshold_for(vol, cfg)
    floor = predictor.floor_for(vol)
    labels = predictor.predict(vol, threshold_hu=threshold, floor=floor, region=region)
    t2 = time.perf_counter()
    report = scan_report(vol, labels, cfg)
    report["threshold_hu"] = threshold
    report["lesion_floor"] = floor
    report["heart_region"] = None if region is None else region.describe()
    report["acquisition"] = kind
    report["warnings"] = warnings
    t3 = time.perf_counter()
    report["timing_s"] = {
        "read": round(t1 - t0, 4),
        "infer": round(t2 - t1, 4),
        "score": round(t3 - t2, 4),
    }
    report["model"] = predictor.describe()
    report["model"]["checkpoint_sha256"] = args.checkpoint_sha256

    from cac_lightning.cli.mesa import mesa_for_scan

    mesa = mesa_for_scan(getattr(args, "mesa_state", None), vol, report, scan_id)
    if mesa is not None:
        report["mesa"] = mesa
    mask = None if region is None else region.mask
    with scan_outputs(out, vol.scan_id) as staged:
        if args.save_labels:
            write_label_map(labels, vol.geometry, staged.path("_labels.nii.gz"))
            if mask is not None:
                write_label_map(mask.astype("uint8"), vol.geometry, staged.path("_heart.nii.gz"))
        if args.overlays:
            from cac_lightning.inference.outputs import write_overlays

            write_overlays(staged.path("_overlays"), vol, labels, report, region=mask)
        notes: list[str] = []  # warnings of writing the DICOM objects (replaced UIDs)
        if args.seg:
            from cac_lightning.io.seg import write_seg

            write_seg(
                staged.path("_seg.dcm"),
                vol,
                labels,
                deidentify=args.seg_deidentified,
                region=mask,
                notes=notes,
            )
        if getattr(args, "sr", False):
            from cac_lightning.io.sr import write_sr

            seg = staged.path("_seg.dcm") if args.seg else None
            write_sr(staged.path("_sr.dcm"), vol, report, args.seg_deidentified, seg, notes)
        report["warnings"] = [*report.get("warnings", []), *notes]
        if getattr(args, "report", False):
            from cac_lightning.inference.report import report_content, write_report
            from cac_lightning.inference.report_pdf import write_report_pdf

            content = report_content(vol, labels, report, mask, args.show_patient)
            write_report(staged.path("_report.html"), vol, labels, report, mask, content=content)
            write_report_pdf(staged.path("_report.pdf"), content)
        staged.commit(report)
    return report

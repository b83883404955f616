"""Import the Stanford COCA gated calcium-scoring release as a cac-lightning dataset.

Input layout (``COCA_ROOT`` may also be ``Gated_release_final`` itself)::

    COCA_ROOT/Gated_release_final/patient/<pid>/<series>/*.dcm
    COCA_ROOT/Gated_release_final/calcium_xml/<pid>.xml

Output (the cac-synth layout): the DICOM series stay where they are and are
referenced by absolute path; ``OUT/labels/coca-<pid>.nii.gz`` holds the label
map in the series' geometry (0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA on calcium pixels);
``OUT/manifest.csv`` has one row per patient with reference scores computed by
:func:`cac_lightning.scoring.score_scan` from the written label map (default
settings, as ``cac-score --mask`` computes them). ``scan_id`` and
``patient_id`` are ``coca-<pid>`` (the COCA folder index, never a DICOM field).
A patient without an XML file is a zero-calcium scan. Existing label files in
``OUT/labels`` are replaced; an existing manifest is never overwritten.

Splits (``OUT/splits.json``, written beside the manifest): without split options
the paper's design (Hong et al. 2022, 2.1; :func:`paper_splits`): the
calcium-positive scans 70/10/20 % train/val/test, stratified by risk category
C2-C5 of the reference score, the zero-calcium scans to ``test_zero``; seeded,
and on a re-import into the same ``OUT`` the scans listed in ``splits.json``
keep their split. ``--split NAME`` puts every scan in one split and
``--split-fractions`` cuts a seeded order without stratification.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cac_lightning.errors import CACError, InputError
from cac_lightning.io.manifest import SPLITS, ManifestRow, write_manifest
from cac_lightning.scoring.lesions import SCORE_METRICS
from cac_lightning.sources.coca_labels import RasterStats, rasterise_rois
from cac_lightning.sources.coca_xml import CocaROI, parse_coca_xml, xml_agatston
from cac_lightning.sources.splits import (
    PAPER_FRACTIONS,
    STRATIFY_BY,
    ZERO_SPLIT,
    assign_splits,
    paper_splits,
    split_counts,
    write_splits,
)
from cac_lightning.vessels import VESSELS_AND_TOTAL

if TYPE_CHECKING:
    from cac_lightning.scoring import ScoringConfig

__all__ = [
    "CocaROI",
    "ImportResult",
    "PAPER_FRACTIONS",
    "STRATIFY_BY",
    "ZERO_SPLIT",
    "assign_splits",
    "find_release",
    "import_coca",
    "list_patients",
    "paper_splits",
    "parse_coca_xml",
    "run_import",
    "split_counts",
]

logger = logging.getLogger(__name__)

RELEASE = "Gated_release_final"


@dataclass
class ImportResult:
    """What :func:`run_import` did.

    Attributes:
        manifest: the written manifest, or None when no patient imported.
        rows: one manifest row per imported patient.
        failures: scan_id -> one-line reason, for patients that failed.
        stats: ROI counts summed over the imported patients.
        n_without_xml: imported patients without an XML (zero-calcium scans).
    """

    manifest: Path | None = None
    rows: list[ManifestRow] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    stats: RasterStats = field(default_factory=RasterStats)
    n_without_xml: int = 0
    splits_path: Path | None = None

    def split_line(self) -> str:
        """One line: scans per split, and which splits are empty."""
        counts = {name: sum(r.split == name for r in self.rows) for name in SPLITS}
        text = "splits: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        empty = [k for k in ("train", "val", "test") if not counts[k]]
        if empty:
            text += (
                f" (empty: {', '.join(empty)}: cac-train needs train and val scans and tests "
                "on test; import at least 3 calcium-positive scans)"
            )
        return text

    def summary(self) -> str:
        """One line: patients imported and the ROI counts."""
        s = self.stats
        n = len(self.rows) + len(self.failures)
        text = (
            f"imported {len(self.rows)} of {n} patients ({self.n_without_xml} without XML); "
            f"ROIs: {s.n_used} used, {s.n_empty} empty skipped, {s.n_unknown} unknown name, "
            f"{s.n_area_mismatch} area mismatch, {s.n_max_mismatch} max-HU mismatch, "
            f"{s.n_overlap} overlapping another vessel ({s.n_overlap_px} px)"
        )
        if self.failures:
            text += f"; failed: {', '.join(self.failures)}"
        return text


def find_release(coca_root: str | Path) -> Path:
    """The ``Gated_release_final`` folder under ``coca_root`` (or ``coca_root`` itself)."""
    root = Path(coca_root)
    if not root.is_dir():
        raise InputError(f"COCA root {root} is not a folder")
    for release in (root / RELEASE, root):
        if (release / "patient").is_dir():
            return release
    raise InputError(f"{root} is not a COCA root: no {RELEASE}/patient/ folder in it")


def _pid_key(pid: str) -> tuple[int, int | str]:
    return (0, int(pid)) if pid.isdigit() else (1, pid)


def list_patients(release: Path) -> list[str]:
    """Patient folder names under ``release/patient``, numeric order first."""
    names = [p.name for p in (release / "patient").iterdir() if p.is_dir()]
    return sorted((n for n in names if not n.startswith(".")), key=_pid_key)


def scan_id_of(pid: str) -> str:
    """``coca-<pid>`` with characters unsafe in file names replaced by ``_``."""
    return "coca-" + re.sub(r"[^A-Za-z0-9._-]", "_", pid)


def _series_dir(patient_dir: Path) -> Path:
    subdirs = sorted(p for p in patient_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(subdirs) == 1:
        return subdirs[0]
    if len(subdirs) > 1:
        names = ", ".join(p.name for p in subdirs)
        raise InputError(f"{len(subdirs)} series folders ({names}); expected exactly one")
    if any(p.is_file() for p in patient_dir.iterdir()):
        return patient_dir
    raise InputError("empty patient folder (no DICOM series)")


def _import_patient(
    pid: str, release: Path, labels_dir: Path, split: str, config: ScoringConfig | None
) -> tuple[ManifestRow, RasterStats, bool, str]:
    from cac_lightning.io import read_label_map, read_volume, write_label_map
    from cac_lightning.scoring import score_scan

    scan_id = scan_id_of(pid)
    series = _series_dir(release / "patient" / pid)
    volume = read_volume(series)
    xml = release / "calcium_xml" / f"{pid}.xml"
    rois = parse_coca_xml(xml) if xml.is_file() else []
    labels, stats = rasterise_rois(rois, volume.hu, volume.geometry, where=f"{scan_id}: ")
    label_path = write_label_map(labels, volume.geometry, labels_dir / f"{scan_id}.nii.gz")
    written = read_label_map(label_path, volume.geometry)  # score exactly what was written
    scores = score_scan(
        volume.hu, written, volume.geometry, config, kvp=volume.kvp, mass_factor=volume.mass_factor
    )
    ref = {
        v: {k: float(getattr(scores.vessels[v], k)) for k in SCORE_METRICS}
        for v in VESSELS_AND_TOTAL
    }
    row = ManifestRow(scan_id, scan_id, series.resolve(), Path(label_path).resolve(), split, ref)
    line = (
        f"{scan_id}: {len(rois)} ROIs ({stats.n_used} used), {volume.hu.shape[0]} slices, "
        f"Agatston {ref['total']['agatston']:.1f} (XML {xml_agatston(rois)['total']:.1f})"
        + ("" if xml.is_file() else ", no XML: zero calcium")
    )
    return row, stats, xml.is_file(), line


def run_import(
    coca_root: str | Path,
    out_dir: str | Path,
    patients: Sequence[str] | None = None,
    *,
    split: str | None = None,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    config: ScoringConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import COCA patients; a patient that fails is recorded and the others go on.

    Args:
        coca_root: folder holding ``Gated_release_final`` (or that folder).
        out_dir: output folder; must not hold a ``manifest.csv`` yet.
        patients: patient folder names (default: all).
        split / fractions: one split for every scan, or seeded fractions (see
            :func:`assign_splits`); both None (default): the paper's splits
            (:func:`paper_splits`), reusing ``out_dir/splits.json`` when present.
        seed: seed of the split order.
        config: a :class:`cac_lightning.scoring.ScoringConfig` for the reference
            scores (default: its defaults, as ``cac-score --mask``).
        progress: called with one line per patient (imported or failed).

    Returns:
        The :class:`ImportResult`; the manifest holds the imported patients only.
    """
    release = find_release(coca_root)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    manifest = out / "manifest.csv"
    if manifest.exists():
        raise InputError(f"{manifest} already exists; choose another --out")
    available = list_patients(release)
    if patients is None:
        chosen = available
    else:
        chosen = list(dict.fromkeys(str(p) for p in patients))
        missing = [p for p in chosen if p not in available]
        if missing:
            raise InputError(f"no patient folder {', '.join(missing)} in {release / 'patient'}")
    if not chosen:
        raise InputError(f"no patient folders in {release / 'patient'}")
    paper = split is None and fractions is None
    splits = (
        dict.fromkeys(chosen, "train")
        if paper
        else assign_splits(chosen, split=split or "test", fractions=fractions, seed=seed)
    )
    result = ImportResult()
    for pid in chosen:
        try:
            row, stats, has_xml, line = _import_patient(
                pid, release, out / "labels", splits[pid], config
            )
        except (CACError, OSError) as err:
            result.failures[scan_id_of(pid)] = str(err)
            line = f"{scan_id_of(pid)}: error: {err}"
        else:
            result.rows.append(row)
            result.stats.add(stats)
            result.n_without_xml += int(not has_xml)
        if progress is not None:
            progress(line)
        else:
            logger.info(line)
    if result.rows:
        result.splits_path = write_splits(out, result.rows, paper, seed, split, fractions)
        result.manifest = write_manifest(manifest, result.rows)
    return result


def import_coca(
    coca_root: str | Path, out_dir: str | Path, patients: list[str] | None = None, **options
) -> Path:
    """Import COCA patients into ``out_dir`` (see :func:`run_import` for ``options``).

    Returns:
        The path of ``out_dir/manifest.csv``.

    Raises:
        InputError: bad root, existing manifest, unknown patient.
        CACError: one or more patients failed (the others are in the manifest).
    """
    result = run_import(coca_root, out_dir, patients, **options)
    if result.failures:
        reasons = "; ".join(f"{k}: {v}" for k, v in result.failures.items())
        raise CACError(f"{len(result.failures)} patient(s) failed ({reasons})")
    assert result.manifest is not None
    return result.manifest

"""Where a scan's results go: collision-proof names, paths kept inside ``--out``, all or nothing.

Every output of one scan (``<id>.json``, its ``scores.csv`` row, ``<id>_labels.nii.gz``,
``<id>_heart.nii.gz``, ``<id>_overlays/``, ``<id>_seg.dcm``, ``<id>_sr.dcm``,
``<id>_report.html``) is first written into a hidden
staging folder inside the output folder; :meth:`ScanOutputs.commit` then moves them into
place and upserts the CSV row under a file lock, so concurrent ``cac-score`` runs into one
folder lose no row and a failed scan (disk full, permission denied) leaves nothing behind.

Output ids are ``<sanitised name>-<8 hex>``: the hex is a hash of the series UID (DICOM) or
of the resolved input path, so two patients whose series folders share a name get two
results, and re-scoring the same series replaces its own result only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cac_lightning.errors import OutputError
from cac_lightning.io.atomic import remove_dead_temps, umask

__all__ = [
    "OUTPUT_SUFFIXES",
    "ScanOutputs",
    "check_inside",
    "check_out_not_in_input",
    "output_id",
    "prepare_out_dir",
    "scan_key",
    "scan_outputs",
]

# The files and folders one scan owns in the output folder, by suffix after its id.
OUTPUT_SUFFIXES = (
    ".json",
    "_labels.nii.gz",
    "_heart.nii.gz",
    "_overlays",
    "_seg.dcm",
    "_sr.dcm",
    "_report.html",
    "_report.pdf",
)
DICOM_SUFFIXES = ("_seg.dcm", "_sr.dcm")
"""The DICOM objects cac-score writes (allowed in an output folder inside an input folder)."""
CSV_NAME = "scores.csv"
LOCK_NAME = ".scores.csv.lock"
STAGE_PREFIX = ".partial-"
MAX_NAME = 64
HASH_CHARS = 8


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:MAX_NAME].strip("._-") or "scan"


def scan_key(vol) -> str:
    """What identifies a scan's source: its series UID, else its resolved input path."""
    return str(vol.series_uid or os.path.realpath(vol.source or vol.scan_id))


def output_id(name: str, key: str) -> str:
    """A file-name-safe, collision-proof output id: sanitised ``name`` + hash of ``key``.

    Args:
        name: a readable name (series folder or file name, or a manifest ``scan_id``);
            characters outside ``[A-Za-z0-9._-]`` become ``_``, at most 64 are kept.
        key: what makes the scan unique (:func:`scan_key`).
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_CHARS]
    return f"{_sanitize(name)}-{digest}"


def _describe(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, "") or type(err).__name__


def check_inside(out: Path, path: Path) -> Path:
    """``path`` when it lies inside ``out`` (links resolved), else :class:`OutputError`."""
    root = Path(os.path.realpath(out))
    real = Path(os.path.realpath(path))
    if real == root or root not in real.parents:
        raise OutputError(f"refusing to write {path}: outside the output folder {out}")
    return path


def prepare_out_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` and prove it is a writable folder; one-line :class:`OutputError` if not."""
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
        remove_dead_temps(out, STAGE_PREFIX)  # staging folders of a killed cac-score
    except OSError as err:
        raise OutputError(f"--out {out}: cannot write there ({_describe(err)})") from None
    return out


class ScanOutputs:
    """One scan's outputs, staged in a hidden folder of ``out`` until :meth:`commit`.

    Args:
        out: the output folder (exists; see :func:`prepare_out_dir`).
        scan_id: the scan's output id (:func:`output_id`).
    """

    def __init__(self, out: Path, scan_id: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", scan_id):
            raise OutputError(f"unsafe output id {scan_id!r}")
        self.out = Path(out)
        self.scan_id = scan_id
        for suffix in OUTPUT_SUFFIXES:
            check_inside(self.out, self.out / f"{scan_id}{suffix}")
        self.stage = Path(
            tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", suffix=".tmp", dir=self.out)
        )

    def path(self, suffix: str) -> Path:
        """Staging path of the output ``<scan_id><suffix>`` (one of :data:`OUTPUT_SUFFIXES`)."""
        if suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"unknown output suffix {suffix!r}")
        return self.stage / f"{self.scan_id}{suffix}"

    def commit(self, report: dict) -> Path:
        """Write the JSON, move every staged output into place and upsert the CSV row.

        Runs under the output folder's lock. Outputs this scan had from an earlier run
        and does not produce now are removed, so what is there belongs to one run.

        Returns:
            the JSON path.
        """
        from filelock import FileLock

        from cac_lightning.io.results import upsert_csv_text

        json_name = f"{self.scan_id}.json"
        (self.stage / json_name).write_text(json.dumps(report, indent=2) + "\n")
        with FileLock(str(self.out / LOCK_NAME)):
            csv_path = self.out / CSV_NAME
            staged_csv = self.stage / CSV_NAME
            staged_csv.write_text(upsert_csv_text(csv_path, report))
            trash = self.stage / ".old"
            trash.mkdir()
            for suffix in OUTPUT_SUFFIXES:  # move earlier outputs aside (same file system)
                final = self.out / f"{self.scan_id}{suffix}"
                if final.exists() or final.is_symlink():
                    os.replace(final, trash / final.name)
            moved: list[Path] = []
            try:
                for suffix in OUTPUT_SUFFIXES:
                    src = self.stage / f"{self.scan_id}{suffix}"
                    if src.exists():
                        os.chmod(src, (0o777 if src.is_dir() else 0o666) & ~umask())
                        os.replace(src, self.out / src.name)
                        moved.append(self.out / src.name)
                os.chmod(staged_csv, 0o666 & ~umask())
                os.replace(staged_csv, csv_path)
            except OSError:
                for path in moved:  # put the earlier result back
                    _remove(path)
                for old in trash.iterdir():
                    os.replace(old, self.out / old.name)
                raise
        return self.out / json_name

    def discard(self) -> None:
        """Remove the staging folder and whatever it holds."""
        shutil.rmtree(self.stage, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def scan_outputs(out: Path, scan_id: str) -> Iterator[ScanOutputs]:
    """Stage one scan's outputs; on any failure nothing of it is left in ``out``.

    An ``OSError`` while writing (disk full, permission denied, not a folder, link loop)
    becomes one-line :class:`OutputError` naming the scan.
    """
    staged = None
    try:
        staged = ScanOutputs(out, scan_id)
        yield staged
    except OSError as err:
        raise OutputError(f"{scan_id}: cannot write outputs to {out} ({_describe(err)})") from None
    finally:
        if staged is not None:
            staged.discard()


def check_out_not_in_input(out: Path, inputs: list[str | os.PathLike]) -> None:
    """Refuse an output folder that is a DICOM input folder or lies inside one.

    A subfolder of an input folder is allowed while it holds no DICOM file other than the
    ``*_seg.dcm`` and ``*_sr.dcm`` objects ``cac-score`` writes (the series reader does not
    descend into subfolders, so results there never join the series).
    """
    from cac_lightning.io.dicom import is_dicom_file

    real_out = Path(os.path.realpath(out))
    for inp in inputs:
        if not os.path.isdir(inp):
            continue
        real_in = Path(os.path.realpath(inp))
        if real_out == real_in:
            raise OutputError(f"--out {out} is the input folder {inp}: give another folder")
        if real_in in real_out.parents and real_out.is_dir():
            for p in real_out.iterdir():
                if p.is_file() and not p.name.endswith(DICOM_SUFFIXES) and is_dicom_file(p):
                    raise OutputError(
                        f"--out {out} lies inside the input folder {inp} and holds DICOM "
                        f"files ({p.name}): give another folder"
                    )

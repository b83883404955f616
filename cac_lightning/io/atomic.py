"""Atomic file writes: write to a temporary sibling, then rename into place.

An interrupted run therefore never leaves a half-written output behind; the temporary
folder of a killed :func:`atomic_dir` writer is removed by the next writer of the same path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_dir",
    "atomic_path",
    "atomic_write_png",
    "atomic_write_text",
    "pid_alive",
    "remove_dead_temps",
    "remove_stale_temps",
    "umask",
]


def umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    ``suffix`` defaults to the target's own suffixes, so writers that infer the
    format from the extension (SimpleITK, numpy) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_png(image, path: str | os.PathLike) -> Path:
    """Save a PIL image (or a uint8 array) to ``path`` as an optimised PNG, atomically."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return path


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_dead_temps(folder: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the ``<prefix><pid>-*.tmp`` folders in ``folder`` whose process no longer runs
    (on this machine): what a killed writer left. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(f"{glob.escape(prefix)}*-*.tmp"):
        pid = tmp.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders a killed writer of ``path`` left next to it.

    :func:`atomic_dir` names its folder ``.<name>.<pid>-<random>.tmp``; those whose
    process no longer runs (on this machine) are removed. Returns what was removed.
    """
    path = Path(path)
    return remove_dead_temps(path.parent, f".{path.name}.")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; rename it onto ``path`` on success.

    ``path`` must not exist yet (nothing a user gave is overwritten). Temporary folders
    of an earlier writer of ``path`` that was killed are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    )
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

"""Preprocessed scan cache: each scan read once, then memory-mapped.

One folder per scan under the cache directory, named by a hash of the sources
(image path and the size/mtime of its files, label path and size/mtime,
:data:`PREPROCESS_VERSION`, and the training grid: target spacing and field of view), so a
changed source or grid gets a new entry:

- ``hu.npy``: int16 (z, y, x) HU, slices ascending along the slice normal;
- ``labels.npy``: uint8 (z, y, x), 0 background, 1 LM, 2 LAD, 3 CX, 4 RCA;
- ``meta.json``: geometry (of the cached arrays) and native geometry (of the source), kVp,
  mass factor, scan id, split, reference scores and the per-slice positive flag (any calcium
  label in the slice).

With a target spacing and / or field of view the arrays are resampled and cropped once here
(:class:`cac_lightning.data.resample.TrainingGrid`, the rule the Predictor applies to every scan
it predicts: HU linear, labels nearest and gated with the scan's own threshold,
:func:`cac_lightning.scoring.config.threshold_for_kvp`). Without either, an entry holds the scan
on its native grid: what scan-level evaluation scores
(:meth:`cac_lightning.data.datamodule.CACDataModule.native_scans`).

Entries are written with :func:`cac_lightning.io.atomic.atomic_dir`, so an
interrupted run leaves no entry behind; the temporary folder of a killed build
is removed when that entry is built again. Stale entries are not deleted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_dir
from cac_lightning.io.manifest import ManifestRow
from cac_lightning.volume import Geometry

__all__ = [
    "PREPROCESS_VERSION",
    "CachedScan",
    "build_entry",
    "cache_key",
    "cache_scans",
    "load_entry",
]

log = logging.getLogger(__name__)

# Bump when the cached arrays or meta.json change meaning: every entry is rebuilt.
PREPROCESS_VERSION = 2
FILES = ("hu.npy", "labels.npy", "meta.json")


@dataclass
class CachedScan:
    """A cached scan: memory-mapped arrays plus what scoring needs.

    Attributes:
        scan_id: the manifest's scan id (a pseudonym).
        hu: int16 (z, y, x) HU memmap.
        labels: uint8 (z, y, x) label memmap.
        geometry: the voxel grid of ``hu`` (the training grid).
        kvp: tube voltage when known.
        mass_factor: calcium mass calibration factor when known.
        ref: reference scores ``{vessel: {score: value}}`` from the manifest.
        split: the manifest split.
        patient_id: the manifest's (pseudonymous) patient id.
        positive: (z,) bool, True where the slice has any calcium label.
        path: the cache entry folder.
        native_geometry: the source scan's grid (None: the same as ``geometry``).
    """

    scan_id: str
    hu: np.ndarray
    labels: np.ndarray
    geometry: Geometry
    kvp: float | None
    mass_factor: float | None = None
    ref: dict = field(default_factory=dict)
    split: str = ""
    patient_id: str = ""
    positive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    path: Path | None = None
    native_geometry: Geometry | None = None

    @property
    def n_slices(self) -> int:
        return int(self.hu.shape[0])

    def __getstate__(self) -> dict:
        # Pickle (e.g. to spawned loader workers) by entry path, not array contents.
        state = dict(self.__dict__)
        if self.path is not None:
            state["hu"] = state["labels"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.hu is None:
            self.hu = np.load(self.path / "hu.npy", mmap_mode="r")
            self.labels = np.load(self.path / "labels.npy", mmap_mode="r")


def _file_stats(path: Path, what: str, scan_id: str) -> list[list]:
    if not path.exists():
        raise InputError(f"scan {scan_id}: {what} {path} not found")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
    elif path.suffix.lower() == ".mhd":
        files = sorted(p for p in path.parent.glob(path.stem + ".*") if p.is_file())
    else:
        files = [path]
    out = []
    for p in files:
        st = p.stat()
        out.append([p.name, st.st_size, st.st_mtime_ns])
    return out


def cache_key(
    row: ManifestRow, target_spacing_mm: float | None = None, fov_mm: float | None = None
) -> str:
    """Hex digest identifying a scan's sources, the training grid and the preprocessing version."""
    if row.label is None:
        raise InputError(f"scan {row.scan_id}: the manifest gives no label map")
    image, label = Path(row.image).resolve(), Path(row.label).resolve()
    desc = {
        "image": str(image),
        "image_files": _file_stats(image, "image", row.scan_id),
        "label": str(label),
        "label_files": _file_stats(label, "label map", row.scan_id),
        "version": PREPROCESS_VERSION,
        "target_spacing_mm": None if target_spacing_mm is None else float(target_spacing_mm),
        "fov_mm": None if fov_mm is None else float(fov_mm),
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]


def _read_sources(row: ManifestRow):
    """Read the image volume and its label map (the only place sources are read)."""
    from cac_lightning.io import read_label_map, read_volume

    vol = read_volume(row.image)
    labels = read_label_map(row.label, vol.geometry)
    return vol, labels


def _complete(entry: Path) -> bool:
    return all((entry / f).is_file() for f in FILES)


def _geometry_from_dict(d: dict) -> Geometry:
    return Geometry(
        shape=tuple(int(v) for v in d["shape"]),
        pixel_spacing=tuple(float(v) for v in d["pixel_spacing"]),
        slice_spacing=float(d["slice_spacing"]),
        origin=tuple(float(v) for v in d["origin"]),
        direction=tuple(float(v) for v in d["direction"]),
        slice_thickness=None if d.get("slice_thickness") is None else float(d["slice_thickness"]),
    )


def build_entry(
    row: ManifestRow,
    cache_dir: str | os.PathLike,
    target_spacing_mm: float | None = None,
    fov_mm: float | None = None,
) -> Path:
    """Preprocess one scan into ``cache_dir`` unless an up-to-date entry exists.

    Args:
        row: the manifest row (image and label map paths).
        cache_dir: the cache root.
        target_spacing_mm: in-plane spacing to resample to; None keeps the native grid.
        fov_mm: side of the square field of view cut around the body centre; None keeps
            whole slices.

    Returns:
        The entry folder.
    """
    from cac_lightning.data.resample import preprocess_scan
    from cac_lightning.scoring.config import threshold_for_kvp

    entry = Path(cache_dir) / cache_key(row, target_spacing_mm, fov_mm)
    if _complete(entry):
        return entry
    if entry.exists():  # not written by us (writes are atomic): rebuild it
        shutil.rmtree(entry)
    vol, labels = _read_sources(row)
    hu = np.ascontiguousarray(vol.hu, dtype=np.int16)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    if labels.shape != hu.shape:
        raise InputError(f"scan {row.scan_id}: label map {labels.shape} != image {hu.shape}")
    pre = preprocess_scan(
        hu, labels, vol.geometry, threshold_for_kvp(vol.kvp), target_spacing_mm, fov_mm
    )
    hu, labels = pre.hu, pre.labels
    if pre.lost_label_voxels:
        log.warning(
            "scan %s: %d calcium voxels lie outside the %s mm field of view",
            row.scan_id,
            pre.lost_label_voxels,
            fov_mm,
        )
    geometry = dataclasses.asdict(pre.geometry)
    meta = {
        "version": PREPROCESS_VERSION,
        "scan_id": row.scan_id,
        "patient_id": row.patient_id,
        "split": row.split,
        "geometry": geometry,
        "native_geometry": dataclasses.asdict(vol.geometry),
        "target_spacing_mm": target_spacing_mm,
        "fov_mm": fov_mm,
        "lost_label_voxels": pre.lost_label_voxels,
        "kvp": vol.kvp,
        "mass_factor": vol.mass_factor,
        "ref": row.ref,
        "positive": (labels > 0).any(axis=(1, 2)).tolist(),
    }
    try:
        with atomic_dir(entry) as tmp:
            np.save(tmp / "hu.npy", hu)
            np.save(tmp / "labels.npy", labels)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    except OSError:
        if not _complete(entry):  # not another process that finished first
            raise
    log.info("cached scan %s (%d slices) in %s", row.scan_id, hu.shape[0], entry.name)
    return entry


def load_entry(entry: str | os.PathLike, row: ManifestRow | None = None) -> CachedScan:
    """Open a cache entry as memmaps; ``row`` overrides id, split and reference scores."""
    entry = Path(entry)
    meta = json.loads((entry / "meta.json").read_text())
    return CachedScan(
        scan_id=row.scan_id if row else meta["scan_id"],
        hu=np.load(entry / "hu.npy", mmap_mode="r"),
        labels=np.load(entry / "labels.npy", mmap_mode="r"),
        geometry=_geometry_from_dict(meta["geometry"]),
        kvp=meta.get("kvp"),
        mass_factor=meta.get("mass_factor"),
        ref=row.ref if row else meta.get("ref", {}),
        split=row.split if row else meta.get("split", ""),
        patient_id=row.patient_id if row else meta.get("patient_id", ""),
        positive=np.asarray(meta["positive"], dtype=bool),
        path=entry,
        native_geometry=_geometry_from_dict(meta.get("native_geometry", meta["geometry"])),
    )


def cache_scans(
    rows: list[ManifestRow],
    cache_dir: str | os.PathLike,
    target_spacing_mm: float | None = None,
    fov_mm: float | None = None,
) -> list[CachedScan]:
    """Build (where needed) and open the cache entries of ``rows``, in order.

    ``target_spacing_mm`` / ``fov_mm``: the training grid (see :func:`build_entry`).
    """
    return [load_entry(build_entry(row, cache_dir, target_spacing_mm, fov_mm), row) for row in rows]

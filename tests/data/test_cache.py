"""The scan cache: built once, reused, rebuilt on change, atomic."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from cac_lightning.data import cache
from cac_lightning.errors import InputError
from cac_lightning.io.manifest import ManifestRow

SIZE, NZ = 24, 5


def _write(arr: np.ndarray, path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.7, 3.0))
    img.SetOrigin((-10.0, -12.0, 30.0))
    sitk.WriteImage(img, str(path))


def _scan(tmp_path, name: str, calcium_slices: list[int]) -> ManifestRow:
    """A tiny scan: soft tissue, unlabelled bone, calcium labelled on given slices."""
    hu = np.full((NZ, SIZE, SIZE), 40, dtype=np.int16)
    hu[:, 2:5, 15:20] = 700
    labels = np.zeros(hu.shape, dtype=np.uint8)
    for z in calcium_slices:
        hu[z, 10:13, 4:7] = 300 + z
        labels[z, 10:13, 4:7] = 1 + z % 4
    _write(hu, tmp_path / f"{name}.nii.gz")
    _write(labels, tmp_path / f"{name}_label.nii.gz")
    return ManifestRow(
        name,
        f"P{name}",
        tmp_path / f"{name}.nii.gz",
        tmp_path / f"{name}_label.nii.gz",
        "train",
        {"total": {"agatston": 5.0}},
    )


@pytest.fixture
def reads(monkeypatch):
    """Count source reads (the real reader runs)."""
    calls = []
    original = cache._read_sources

    def counting(row):
        calls.append(row.scan_id)
        return original(row)

    monkeypatch.setattr(cache, "_read_sources", counting)
    return calls


def test_built_once_then_reused(tmp_path, reads):
    rows = [_scan(tmp_path, "a", [1, 2]), _scan(tmp_path, "b", [])]
    scans = cache.cache_scans(rows, tmp_path / "cache")
    assert reads == ["a", "b"]
    a = scans[0]
    assert isinstance(a.hu, np.memmap) and a.hu.dtype == np.int16 and a.hu.shape == (NZ, SIZE, SIZE)
    assert isinstance(a.labels, np.memmap) and a.labels.dtype == np.uint8
    assert a.hu[1, 11, 5] == 301 and a.labels[2, 11, 5] == 3 and a.hu[0, 3, 16] == 700
    assert a.positive.tolist() == [False, True, True, False, False]
    assert not scans[1].positive.any()
    assert a.geometry.spacing_zyx == pytest.approx((3.0, 0.7, 0.7))
    assert a.geometry.origin == pytest.approx((-10.0, -12.0, 30.0))
    assert a.ref == {"total": {"agatston": 5.0}} and a.scan_id == "a"
    again = cache.cache_scans(rows, tmp_path / "cache")
    assert reads == ["a", "b"]  # nothing re-read
    assert np.array_equal(again[0].labels, a.labels)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_changed_source_is_reprocessed(tmp_path, reads):
    row = _scan(tmp_path, "a", [1])
    first = cache.cache_scans([row], tmp_path / "cache")[0]
    assert first.positive.tolist() == [False, True, False, False, False]
    st = os.stat(row.label)
    _scan(tmp_path, "a", [1, 4])  # the label map (and image) change
    os.utime(row.label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = cache.cache_scans([row], tmp_path / "cache")[0]
    assert reads == ["a", "a"]
    assert second.positive.tolist() == [False, True, False, False, True]
    assert second.path != first.path


def test_interrupted_write_leaves_no_entry(tmp_path, reads, monkeypatch):
    row = _scan(tmp_path, "a", [1])
    real_save = np.save
    n = []

    def failing_save(path, arr, *args, **kwargs):
        n.append(path)
        real_save(path, arr, *args, **kwargs)
        if len(n) == 2:
            raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(cache.np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        cache.build_entry(row, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # no entry, no temporary folder
    monkeypatch.setattr(cache.np, "save", real_save)
    scan = cache.cache_scans([row], tmp_path / "cache")[0]
    assert scan.positive.tolist() == [False, True, False, False, False]
    assert reads == ["a", "a"]


def test_cached_scan_pickles_by_path(tmp_path):
    scan = cache.cache_scans([_scan(tmp_path, "a", [1])], tmp_path / "cache")[0]
    blob = pickle.dumps(scan)
    assert len(blob) < scan.hu.nbytes  # arrays not copied into the pickle
    back = pickle.loads(blob)
    assert isinstance(back.hu, np.memmap) and np.array_equal(back.hu, scan.hu)
    assert np.array_equal(back.labels, scan.labels) and back.geometry == scan.geometry


def test_row_overrides_meta(tmp_path):
    row = _scan(tmp_path, "a", [1])
    entry = cache.build_entry(row, tmp_path / "cache")
    row.split, row.ref = "val", {"total": {"agatston": 9.0}}
    scan = cache.load_entry(entry, row)
    assert scan.split == "val" and scan.ref["total"]["agatston"] == 9.0
    assert cache.load_entry(entry).split == "train"


def test_missing_sources_are_input_errors(tmp_path):
    row = _scan(tmp_path, "a", [1])
    bad = ManifestRow("x", "Px", tmp_path / "nope.nii.gz", row.label, "train")
    with pytest.raises(InputError, match="image .*nope.nii.gz not found"):
        cache.build_entry(bad, tmp_path / "cache")
    bad = ManifestRow("x", "Px", row.image, tmp_path / "nolabel.nii.gz", "train")
    with pytest.raises(InputError, match="label map .*not found"):
        cache.build_entry(bad, tmp_path / "cache")
    with pytest.raises(InputError, match="no label map"):
        cache.build_entry(ManifestRow("x", "Px", row.image, None, "train"), tmp_path / "cache")


def test_caches_a_real_dicom_series(coca_root, tmp_path, reads):
    from cac_lightning.io import read_volume, write_label_map

    series = next((coca_root / "Gated_release_final" / "patient" / "0").iterdir())
    vol = read_volume(series)
    labels = np.zeros(vol.hu.shape, dtype=np.uint8)
    labels[vol.hu.shape[0] // 2, 100:102, 200:203] = 2
    label_path = write_label_map(labels, vol.geometry, tmp_path / "label.nii.gz")
    row = ManifestRow("coca0", "C0", series, label_path, "test")
    scan = cache.cache_scans([row], tmp_path / "cache")[0]
    assert np.array_equal(scan.hu, vol.hu) and scan.geometry == vol.geometry
    assert scan.kvp == vol.kvp and np.flatnonzero(scan.positive).tolist() == [len(labels) // 2]
    cache.cache_scans([row], tmp_path / "cache")
    assert reads == ["coca0"]

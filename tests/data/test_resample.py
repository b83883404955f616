"""Training in physical units: resampling, the field-of-view crop and the cache/DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from cac_lightning.data import cache
from cac_lightning.data.resample import (
    AIR_HU,
    TrainingGrid,
    body_centre,
    crop_fov,
    fov_pixels,
    preprocess_scan,
    resample_scan,
)
from cac_lightning.io.manifest import ManifestRow
from cac_lightning.volume import Geometry


def _disc_scan(n: int, px: float, nz: int = 3):
    """Air, a soft-tissue disc of 40 mm radius at the centre, a 4 mm calcium square (LAD)."""
    c = (np.arange(n) + 0.5) * px - n * px / 2  # pixel centres, mm from the image centre
    yy, xx = np.meshgrid(c, c, indexing="ij")
    hu = np.full((nz, n, n), AIR_HU, dtype=np.int16)
    hu[:, yy**2 + xx**2 <= 40.0**2] = 40
    calc = (np.abs(yy - 20.0) <= 2.0) & (np.abs(xx + 10.0) <= 2.0)
    hu[:, calc] = 400
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[:, calc] = 2
    geom = Geometry(
        shape=hu.shape, pixel_spacing=(px, px), slice_spacing=3.0, origin=(-50.0, -60.0, 10.0)
    )
    return hu, labels, geom


@pytest.mark.parametrize(("n", "px", "target"), [(256, 0.4, 0.8), (128, 0.9, 0.7), (200, 0.5, 0.5)])
def test_resampling_keeps_physical_size_and_position(n, px, target):
    hu, labels, geom = _disc_scan(n, px)
    out, lab, g = resample_scan(hu, labels, geom, target, threshold_hu=130.0)
    assert g.pixel_spacing == (target, target)
    assert out.shape == lab.shape == g.shape
    # Same physical extent, up to one output pixel.
    assert abs(out.shape[1] * target - n * px) < target
    # The calcium square keeps its area (16 mm²) and its patient position.
    area = np.count_nonzero(lab[0]) * target**2
    assert area == pytest.approx(16.0, rel=0.35)
    before = geom.index_to_mm(np.r_[0.0, np.mean(np.argwhere(labels[0] > 0), axis=0)])
    after = g.index_to_mm(np.r_[0.0, np.mean(np.argwhere(lab[0] > 0), axis=0)])
    assert np.allclose(before, after, atol=target / 2 + 1e-6)
    # The body disc keeps its area (pi 40² mm²).
    body = np.count_nonzero(out[0] > -300) * target**2
    assert body == pytest.approx(np.pi * 40.0**2, rel=0.03)


def test_labels_stay_integer_classes_and_only_where_hu_reaches_threshold():
    hu, labels, geom = _disc_scan(240, 0.45)
    # A faint labelled rim (< 130 HU after averaging) must not survive as calcium.
    labels[:, 100:103, 100:140] = 3
    hu[:, 100:103, 100:140] = 135
    hu[:, 101, 100:140] = 60
    out, lab, _ = resample_scan(hu, labels, geom, 0.8, threshold_hu=130.0)
    assert lab.dtype == np.uint8 and out.dtype == np.int16
    assert set(np.unique(lab)) <= {0, 2, 3}
    assert 2 in np.unique(lab)
    assert np.all(out[lab > 0] >= 130)


def test_threshold_is_the_scans_own():
    hu, labels, geom = _disc_scan(128, 0.5)
    hu[labels > 0] = 140
    _, lab_130, _ = resample_scan(hu, labels, geom, 0.8, threshold_hu=130.0)
    _, lab_150, _ = resample_scan(hu, labels, geom, 0.8, threshold_hu=150.0)
    assert np.count_nonzero(lab_130) > 0
    assert np.count_nonzero(lab_150) == 0


@pytest.mark.parametrize(("fov", "spacing"), [(140.8, 0.8), (100.0, 0.5), (64.0, 1.0)])
def test_fov_crop_size_in_pixels_is_fov_over_spacing(fov, spacing):
    hu, labels, geom = _disc_scan(int(round(200 / spacing)), spacing)
    out, lab, g, lost = crop_fov(hu, labels, geom, fov)
    side = round(fov / spacing)
    assert out.shape == lab.shape == (3, side, side) == g.shape
    assert side == fov_pixels(fov, spacing)
    assert lost == 0  # the calcium is 22 mm from the centre
    # The crop is centred on the body: the disc centre stays at the crop centre.
    cy, cx = body_centre(out)
    assert abs(cy - (side - 1) / 2) < 1.5 and abs(cx - (side - 1) / 2) < 1.5


def test_fov_larger_than_image_is_padded_with_air_and_origin_follows():
    hu, labels, geom = _disc_scan(100, 1.0)
    out, lab, g, _ = crop_fov(hu, labels, geom, 140.0)
    assert out.shape[1:] == (140, 140)
    assert out[0, 0, 0] == AIR_HU and lab[0, 0, 0] == 0
    # Voxel (0, 20, 20) of the crop is voxel (0, 0, 0) of the source: same patient position.
    assert np.allclose(g.index_to_mm(np.array([0.0, 20.0, 20.0])), geom.origin)
    assert np.count_nonzero(lab) == np.count_nonzero(labels)


def test_body_centre_follows_the_body_not_the_image():
    hu, labels, geom = _disc_scan(200, 1.0)
    shifted = np.full_like(hu, AIR_HU)
    shifted[:, :, 30:] = hu[:, :, :-30]
    cy, cx = body_centre(shifted)
    assert cx == pytest.approx(99.5 + 30, abs=1.0) and cy == pytest.approx(99.5, abs=1.0)


def test_preprocess_none_keeps_native_grid():
    hu, labels, geom = _disc_scan(64, 0.7)
    pre = preprocess_scan(hu, labels, geom, 130.0)
    assert pre.geometry == geom and np.array_equal(pre.hu, hu)
    assert np.array_equal(pre.labels, labels)


def _write(arr, path, px):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((px, px, 3.0))
    sitk.WriteImage(img, str(path))


def _rows(tmp_path, specs):
    rows = []
    for i, (n, px, split) in enumerate(specs):
        hu, labels, _ = _disc_scan(n, px, nz=4)
        _write(hu, tmp_path / f"s{i}.nii.gz", px)
        _write(labels, tmp_path / f"s{i}_l.nii.gz", px)
        rows.append(
            ManifestRow(
                f"s{i}", f"P{i}", tmp_path / f"s{i}.nii.gz", tmp_path / f"s{i}_l.nii.gz", split
            )
        )
    return rows


def test_cache_holds_the_training_grid_and_the_native_one(tmp_path):
    rows = _rows(tmp_path, [(300, 0.4, "train"), (150, 0.9, "train")])
    scans = cache.cache_scans(rows, tmp_path / "c", target_spacing_mm=0.8, fov_mm=96.0)
    for scan, (n, px) in zip(scans, [(300, 0.4), (150, 0.9)], strict=True):
        assert scan.hu.shape == scan.labels.shape == (4, 120, 120)
        assert scan.geometry.pixel_spacing == (0.8, 0.8)
        assert scan.native_geometry.pixel_spacing == pytest.approx((px, px))
        assert scan.native_geometry.shape == (4, n, n)
        assert scan.positive.all()
    native = cache.cache_scans(rows, tmp_path / "c")  # another grid: another entry
    assert native[0].hu.shape == (4, 300, 300) and native[0].path != scans[0].path


def test_datamodule_geometry_summary(tmp_path):
    from cac_lightning.data.datamodule import CACDataModule

    rows = _rows(tmp_path, [(300, 0.4, "train"), (150, 0.9, "train"), (200, 0.5, "val")])
    from cac_lightning.io.manifest import write_manifest

    write_manifest(tmp_path / "manifest.csv", rows)
    dm = CACDataModule(str(tmp_path), batch_size=2, target_spacing_mm=0.8, fov_mm=96.0)
    dm.setup("fit")
    assert {s.hu.shape[1:] for s in dm.scans("val")} == {(120, 120)}
    g = dm.geometry_summary()
    assert g["spacing_mm"] == 0.8 and g["fov_mm"] == 96.0
    assert g["pixel_spacing_mm"] == pytest.approx([0.4, 0.9])
    assert g["fov_range_mm"] == pytest.approx([120.0, 135.0])
    assert g["slice_thickness_mm"] == pytest.approx([3.0, 3.0])
    assert g["kvp"] == []
    (tmp_path / "n").mkdir()
    rows = _rows(tmp_path / "n", [(160, 0.5, "train"), (160, 0.8, "train"), (160, 0.6, "val")])
    write_manifest(tmp_path / "n" / "manifest.csv", rows)
    native = CACDataModule(str(tmp_path / "n"), batch_size=2)
    native.setup("fit")
    assert native.geometry_summary()["spacing_mm"] == pytest.approx(0.65)
    assert native.geometry_summary()["fov_mm"] is None


@pytest.mark.parametrize("bad", [0, -1.0, "x"])
def test_bad_spacing_is_one_clear_error(tmp_path, bad):
    from cac_lightning.data.datamodule import CACDataModule
    from cac_lightning.errors import InputError

    with pytest.raises(InputError, match="target_spacing_mm"):
        CACDataModule(str(tmp_path), target_spacing_mm=bad)


def test_grid_plan_is_the_cache_and_maps_the_window_back_onto_its_native_pixels():
    """0.5 mm native, 1.0 mm training grid, 64 mm window: the network sees the cache's pixels,
    and a value on window pixel (i, j) comes back on native pixels 2i..2i+1 of the grid, with
    nothing outside the window."""
    import torch

    hu, labels, geom = _disc_scan(200, 0.5)
    grid = TrainingGrid(1.0, 64.0)
    plan = grid.plan(hu, geom.pixel_spacing)
    pre = grid.preprocess(hu, labels, geom, 130.0)
    np.testing.assert_array_equal(plan.network_hu(0, 3), pre.hu)
    assert plan.scale == (2.0, 2.0) and pre.lost_label_voxels == 0
    y0, x0, rows, cols = plan.window
    assert (rows, cols) == (64, 64) and pre.hu.shape[1:] == (64, 64)
    values = torch.from_numpy(pre.labels.astype(np.float32))[:, None]
    back = plan.to_native(values, "nearest")[:, 0].numpy()
    expected = np.zeros(hu.shape, np.float32)
    up = np.repeat(np.repeat(pre.labels, 2, axis=1), 2, axis=2)
    expected[:, 2 * y0 : 2 * (y0 + rows), 2 * x0 : 2 * (x0 + cols)] = up
    np.testing.assert_array_equal(back, expected)
    assert np.count_nonzero(back) == np.count_nonzero(labels)  # the calcium square, in place
    assert int(plan.inside().sum()) == (2 * rows) * (2 * cols)
    # a window wider than the image: every native pixel is inside, none is lost
    wide = TrainingGrid(1.0, 140.0).plan(hu, geom.pixel_spacing)
    assert wide.network_hu(0, 1).shape == (1, 140, 140) and bool(wide.inside().all())
    # at the training spacing nothing is resampled, only cut
    same = TrainingGrid(0.5, 64.0).plan(hu, geom.pixel_spacing)
    assert same.scale is None and same.network_hu(0, 1).shape == (1, 128, 128)

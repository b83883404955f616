"""The 2-channel input and the anatomy-preserving augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cac_lightning.data.transforms import (
    DEFAULT_WINDOW,
    AugmentConfig,
    augment_slice,
    make_input,
)


def test_make_input_hand_values():
    hu = np.array([[[-1024, 512], [129, 130]], [[-2000, 3000], [2048, 0]]], dtype=np.int16)
    x = make_input(hu, window=(-1024.0, 2048.0), threshold_hu=130.0)
    assert x.shape == (2, 2, 2, 2) and x.dtype == torch.float32
    expected0 = np.array(
        [[[0.0, 0.5], [1153 / 3072, 1154 / 3072]], [[0.0, 1.0], [1.0, 1024 / 3072]]]
    )
    np.testing.assert_allclose(x[:, 0].numpy(), expected0, rtol=1e-6)
    expected1 = np.array([[[0, 1], [0, 1]], [[0, 1], [1, 0]]], dtype=np.float32)
    np.testing.assert_array_equal(x[:, 1].numpy(), expected1)


def test_make_input_default_window_and_threshold():
    assert DEFAULT_WINDOW == (-1024.0, 2048.0)
    x = make_input(np.array([[-1024.0, 2048.0, 130.0, 129.9]]))
    assert x.shape == (1, 2, 1, 4)
    np.testing.assert_allclose(x[0, 0, 0, :2].numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(x[0, 1, 0].numpy(), [0, 1, 1, 0])


def test_make_input_tensor_and_memmap_like_inputs(tmp_path):
    hu = np.arange(-200, 200, 25, dtype=np.int16).reshape(1, 4, 4)
    np.save(tmp_path / "a.npy", hu)
    ro = np.load(tmp_path / "a.npy", mmap_mode="r")
    a = make_input(ro)
    b = make_input(torch.from_numpy(hu.copy()))
    c = make_input(hu[0])  # one (H, W) slice
    assert torch.equal(a, b) and torch.equal(a, c)
    # threshold 130: values 150 and 175 only
    assert int(a[0, 1].sum()) == 2


@pytest.mark.parametrize("shape", [(4,), (1, 1, 4, 4)])
def test_make_input_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        make_input(np.zeros(shape))


def test_make_input_rejects_empty_window():
    with pytest.raises(ValueError, match="hi > lo"):
        make_input(np.zeros((1, 2, 2)), window=(100.0, 100.0))


def _marker_slice(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Body at 40 HU with a calcium marker on the image's left, anterior quarter."""
    hu = np.full((size, size), 40, dtype=np.int16)
    target = np.zeros((size, size), dtype=np.uint8)
    hu[10:16, 8:14] = 400
    target[10:16, 8:14] = 2
    return hu, target


def test_intensity_jitter_keeps_target_and_geometry():
    hu, target = _marker_slice()
    cfg = AugmentConfig(p=1.0, rotate_deg=0.0, scale=0.0, hu_shift=30.0, hu_scale=0.1, noise_sd=5.0)
    out_hu, out_t, _ = augment_slice(hu, target, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(out_t, target)
    assert out_hu.dtype == np.float32 and out_hu.shape == hu.shape
    assert not np.array_equal(out_hu, hu.astype(np.float32))
    # marker still where it was: the brightest region stays on the left
    assert np.unravel_index(np.argmax(out_hu), hu.shape)[1] < 16


@pytest.mark.parametrize("seed", range(8))
def test_no_flips_marker_stays_left_and_anterior(seed):
    hu, target = _marker_slice()
    cfg = AugmentConfig(p=1.0, rotate_deg=10.0, scale=0.1, hu_shift=20.0, noise_sd=10.0)
    out_hu, out_t, _ = augment_slice(hu, target, np.random.default_rng(seed), cfg)
    rows, cols = np.nonzero(out_t)
    assert rows.size > 0
    assert cols.mean() < 32 and rows.mean() < 32  # a flip would move it to the other half
    assert set(np.unique(out_t)) <= {0, 2}  # nearest neighbour: no mixed label values


def test_augmentation_is_deterministic_per_seed():
    hu, target = _marker_slice()
    cfg = AugmentConfig(p=1.0)
    a = augment_slice(hu, target, np.random.default_rng(5), cfg)
    b = augment_slice(hu, target, np.random.default_rng(5), cfg)
    c = augment_slice(hu, target, np.random.default_rng(6), cfg)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_no_augmentation_is_identity():
    hu, target = _marker_slice()
    out_hu, out_t, _ = augment_slice(hu, target, np.random.default_rng(0), None)
    np.testing.assert_array_equal(out_hu, hu.astype(np.float32))
    np.testing.assert_array_equal(out_t, target)


@pytest.mark.parametrize("warp", [False, True])
def test_crop_keeps_calcium_in_positive_slices(warp):
    hu, target = _marker_slice()
    cfg = AugmentConfig(p=1.0) if warp else None
    for seed in range(10):
        out_hu, out_t, _ = augment_slice(hu, target, np.random.default_rng(seed), cfg, crop=24)
        assert out_hu.shape == (24, 24) and out_t.shape == (24, 24)
        assert (out_t == 2).any()


def test_crop_without_warp_is_a_window_of_the_slice():
    hu = np.arange(64 * 64, dtype=np.int16).reshape(64, 64)
    out_hu, _, _ = augment_slice(
        hu, np.zeros_like(hu, dtype=np.uint8), np.random.default_rng(1), None, crop=16
    )
    r, c = divmod(int(out_hu[0, 0]), 64)
    np.testing.assert_array_equal(out_hu, hu[r : r + 16, c : c + 16])


def test_augment_config_from_dict():
    assert AugmentConfig.from_dict(None) is None
    cfg = AugmentConfig.from_dict({"p": 1, "rotate_deg": 5})
    assert cfg.p == 1.0 and cfg.rotate_deg == 5.0 and cfg.scale == 0.1
    with pytest.raises(ValueError, match="flip"):
        AugmentConfig.from_dict({"flip": 1})


def test_nearest_warp_matches_scipy_and_keeps_labels_in_mask():
    from scipy import ndimage

    from cac_lightning.data.transforms import _warp_nearest

    agree = total = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        target = np.zeros((48, 40), dtype=np.uint8)
        r, c = rng.integers(2, 35, size=2)
        target[r : r + 6, c : c + 4] = rng.integers(1, 5, size=(6, 4))
        mask = (rng.random((48, 40)) < 0.3) | (target > 0)
        theta, zoom = np.radians(rng.uniform(-15, 15)), rng.uniform(0.85, 1.15)
        m = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / zoom
        offset = rng.uniform(-6, 6, size=2)
        full = ndimage.affine_transform(target, m, offset, output_shape=(32, 36), order=0,
                                        mode="constant", cval=0, prefilter=False)  # fmt: skip
        labels, warped_mask = _warp_nearest(target, mask, m, offset, (32, 36))
        assert set(np.unique(labels)) <= set(np.unique(target))
        assert not (labels > 0)[~warped_mask].any()
        agree += int((labels == full).sum())
        total += full.size
    assert agree / total > 0.99  # the same map; only rounding ties may differ


def test_hu_warp_matches_scipy_inside_the_slice():
    from scipy import ndimage

    from cac_lightning.data.transforms import _warp_hu

    rng = np.random.default_rng(0)
    hu = ndimage.gaussian_filter(rng.normal(40, 200, (64, 80)), 1.5).astype(np.float32)
    th, zoom = np.radians(8.0), 1.07
    m = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) / zoom
    offset = np.array([3.3, -2.1])
    out = _warp_hu(hu, m, offset, (48, 56))
    ref = ndimage.affine_transform(hu, m, offset, output_shape=(48, 56), order=1, prefilter=False)
    r, c = np.mgrid[0:48, 0:56]
    ri, ci = m[0, 0] * r + m[0, 1] * c + offset[0], m[1, 0] * r + m[1, 1] * c + offset[1]
    inside = (ri > 1) & (ri < 62) & (ci > 1) & (ci < 78)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(out[inside], ref[inside], atol=1e-3)
    assert (out[(ri < -1) | (ci < -1)] == -1024.0).all()  # air outside the field of view


def test_make_input_numpy_and_torch_paths_agree_on_floats():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1500, 3500, size=(3, 16, 16)).astype(np.float32)
    hu[0, 0, :4] = [129.99998, 130.0, 130.00002, -1024.0]
    a, b = make_input(hu), make_input(torch.from_numpy(hu))
    assert a.dtype == b.dtype == torch.float32
    assert torch.equal(a, b)
    assert a[0, 1, 0, :4].tolist() == [0.0, 1.0, 1.0, 0.0]


def _edge_slice(threshold: float = 130.0) -> tuple[np.ndarray, np.ndarray]:
    """Lesions whose rims lie within 20 HU of the threshold (the labels: ROI and HU >= it)."""
    rng = np.random.default_rng(3)
    hu = rng.integers(-40, 90, size=(64, 64)).astype(np.int16)
    roi = np.zeros((64, 64), dtype=bool)
    roi[20:30, 10:22] = roi[40:48, 30:44] = True
    hu[roi] = rng.integers(int(threshold) - 20, int(threshold) + 20, size=int(roi.sum()))
    hu[24:27, 14:18] = 420  # a dense core
    hu[5:12, 50:60] = 700  # unlabelled bone
    target = np.where(roi & (hu >= threshold), 2, 0).astype(np.uint8)
    return hu, target


@pytest.mark.parametrize("threshold", [130.0, 119.0])
@pytest.mark.parametrize("warp", [False, True])
def test_jitter_keeps_mask_gate_and_labels_consistent_at_edges(threshold, warp):
    """HU shift/gain/noise change the image channel only: mask, gate and labels still agree."""
    from cac_lightning.data.datasets import SliceDataset  # noqa: F401 (the consumer)

    hu, target = _edge_slice(threshold)
    edge = (target > 0) & (hu < threshold + 20)
    assert edge.sum() >= 20  # many labelled pixels within 20 HU of the threshold
    cfg = AugmentConfig(
        p=1.0, rotate_deg=10.0 if warp else 0.0, scale=0.1 if warp else 0.0,
        hu_shift=20.0, hu_scale=0.05, noise_sd=10.0,
    )  # fmt: skip
    flipped = 0
    for seed in range(12):
        out_hu, out_t, mask = augment_slice(
            hu, target, np.random.default_rng(seed), cfg, threshold_hu=threshold
        )
        assert mask.dtype == bool and mask.shape == out_t.shape
        assert not (out_t > 0)[~mask].any()  # every label is a candidate (gate keeps it)
        if not warp:
            np.testing.assert_array_equal(mask, hu >= threshold)  # the original HU's mask
            np.testing.assert_array_equal(out_t, target)
        # the jittered image would have moved the mask at the lesion edges
        flipped += int(((out_hu >= threshold) != mask).sum())
    assert flipped > 0


def test_dataset_mask_channel_from_original_hu_and_scan_kvp(tmp_path):
    """SliceDataset: channel 1 is the original HU >= the scan's kVp threshold, under jitter."""
    import types

    import torch

    from cac_lightning.data.datasets import SliceDataset
    from cac_lightning.scoring.config import threshold_for_kvp

    hu, target = _edge_slice(119.0)
    scans = [
        types.SimpleNamespace(
            hu=hu[None], labels=target[None], positive=np.array([True]), kvp=kvp, n_slices=1
        )
        for kvp in (135.0, 120.0, None)
    ]
    cfg = AugmentConfig(p=1.0, rotate_deg=0.0, scale=0.0, hu_shift=20.0, noise_sd=10.0)
    ds = SliceDataset(scans, augment=cfg)
    for s, kvp in enumerate((135.0, 120.0, None)):
        item = ds[(s, 11)]
        thr = threshold_for_kvp(kvp)
        assert item["target"].dtype == torch.uint8
        np.testing.assert_array_equal(item["image"][1].numpy() > 0.5, hu >= thr)
    assert threshold_for_kvp(135.0) == 119.0 and ds.thresholds.tolist() == [119.0, 130.0, 130.0]
    fixed = SliceDataset(scans, threshold_hu=130.0)
    np.testing.assert_array_equal(fixed[0]["image"][1].numpy() > 0.5, hu >= 130)

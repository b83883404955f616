"""Validation is production: the validation callback's Agatston of a checkpoint on a scan is
``cac-score --ckpt``'s on the same scan written as DICOM.

The checkpoint is trained (by hand) at 1.0 mm on 128 mm windows; the scan is a synthetic
phantom at 1.39 mm pixels, 178 mm wide, so both paths resample, cut the window around the heart
region, map the logits back and score native voxels.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from cac_lightning.callbacks import ScanAgatstonEvaluation
from cac_lightning.cli.score import main as cac_score
from cac_lightning.data.datamodule import CACDataModule
from cac_lightning.data.manifest import ManifestRow, write_manifest
from cac_lightning.inference import Predictor
from cac_lightning.io import write_dicom_series, write_label_map
from cac_lightning.sources.synthetic.phantom import make_scan
from cac_lightning.vessels import SCORE_KEYS

GRID = {
    "spacing_mm": 1.0,
    "fov_mm": 128.0,
    "pixel_spacing_mm": [1.3, 1.5],
    "slice_thickness_mm": [3.0, 3.0],
    "fov_range_mm": [170.0, 190.0],
    "kvp": [120],
}


class CheckpointModule(L.LightningModule):
    """A checkpoint's network and hyper-parameters as the module the callback validates."""

    def __init__(self, ckpt):
        super().__init__()
        loaded = Predictor.from_checkpoint(ckpt, device="cpu")
        self.net = loaded.net
        self.save_hyperparameters(
            {
                "input": {"window": list(loaded.window)},
                "scoring": dict(loaded.scoring),
                "data_geometry": loaded.data_geometry.to_dict(),
            }
        )

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """Scan 1 of seed 3 at 128 px: DICOM series, NIfTI reference labels, a one-scan manifest."""
    root = tmp_path_factory.mktemp("native")
    scan = make_scan(3, 1, size=128)
    dicom = write_dicom_series(scan.hu, scan.geometry, root / "dicom", patient_id=scan.patient_id)
    label = write_label_map(scan.labels, scan.geometry, root / "labels.nii.gz")
    write_manifest(
        root / "data" / "manifest.csv",
        [ManifestRow("s1", scan.patient_id, dicom, label, "val")],
    )
    return SimpleNamespace(root=root, scan=scan, dicom=dicom)


def test_validation_agatston_equals_cac_score(phantom, make_lad_ckpt):
    root = phantom.root
    # Every grid pixel LAD: the calcium is what the gates keep (native HU, the training grid's
    # candidates, the 128 mm window, the heart region).
    ckpt = make_lad_ckpt(root / "model.ckpt", data_geometry=GRID)
    dm = CACDataModule(
        str(root / "data"), batch_size=1, target_spacing_mm=1.0, fov_mm=128.0, num_workers=0
    )
    dm.prepare_data()
    dm.setup("fit")
    assert dm.scans("val")[0].hu.shape[1:] == (128, 128)  # the training grid
    native = dm.native_scans("val")[0]
    assert native.hu.shape == phantom.scan.hu.shape  # the manifest's image, not resampled

    cb = ScanAgatstonEvaluation(batch_size=8)
    trainer = SimpleNamespace(datamodule=dm, global_rank=0, world_size=1)
    cb.evaluate(trainer, CheckpointModule(ckpt), "val")
    (record,) = cb.records["val"]

    out = root / "out"
    assert cac_score([str(phantom.dicom), "--ckpt", str(ckpt), "--out", str(out)]) == 0
    (report_path,) = out.glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["heart_region"] is not None  # both paths keep calcium in the heart only

    total = record.pred["total"]["agatston"]
    assert total > 10.0  # something to compare
    for key in SCORE_KEYS:
        assert record.pred[key]["agatston"] == pytest.approx(
            report["scores"][key]["agatston"], rel=0.005, abs=1e-6
        )
    # The reference is scored on the native labels too (the manifest's label map).
    from cac_lightning.scoring import score_scan

    ref = score_scan(phantom.scan.hu, phantom.scan.labels, phantom.scan.geometry, kvp=120.0)
    assert record.ref["total"]["agatston"] == pytest.approx(ref.total.agatston)


def test_native_scans_are_the_training_scans_in_native_voxels(phantom):
    dm = CACDataModule(str(phantom.root / "data"), batch_size=1, target_spacing_mm=1.0)
    dm.setup("fit")
    grid, native = dm.scans("val")[0], dm.native_scans("val")[0]
    assert grid.scan_id == native.scan_id and grid.ref == native.ref
    assert grid.geometry.pixel_spacing == (1.0, 1.0)
    assert native.geometry == native.native_geometry == grid.native_geometry
    np.testing.assert_array_equal(native.hu, phantom.scan.hu)
    np.testing.assert_array_equal(native.labels, phantom.scan.labels)
    # no training grid: the training scans are already native, no second entry
    plain = CACDataModule(str(phantom.root / "data"), batch_size=1)
    assert plain.native_scans("val")[0].path == plain.scans("val")[0].path


def test_network_sees_the_cached_training_grid(phantom):
    """The Predictor's network input is the cache's training-grid scan, pixel for pixel."""
    from cac_lightning.models.inputs import make_input

    seen = []

    class Recorder(torch.nn.Module):
        multiple = 8

        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 5, *x.shape[2:])

    dm = CACDataModule(str(phantom.root / "data"), batch_size=1, target_spacing_mm=1.0, fov_mm=128)
    cached = dm.scans("val")[0]
    pred = Predictor(Recorder(), {"data_geometry": GRID}, batch_size=64)
    pred.set_heart("off")  # training centres the window on the body
    pred.predict(dm.native_scans("val")[0])
    x = torch.cat(seen)
    assert x.shape[-2:] == cached.hu.shape[1:]
    expected = make_input(torch.from_numpy(np.asarray(cached.hu, np.float32)), pred.window, 130.0)
    torch.testing.assert_close(x, expected)

"""The checkpoint schema (cac_lightning/models/checkpoint.py): the version-0 file main wrote
migrates and predicts as before, faults are one clear InputError, write -> read keeps every
field, and what Lightning writes is the schema."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from cac_lightning.errors import InputError
from cac_lightning.inference import Predictor
from cac_lightning.models import CACSegModule, checkpoint
from cac_lightning.models.checkpoint import (
    SCHEMA_VERSION,
    CheckpointRecord,
    DataGeometry,
    InputSpec,
    LesionFloor,
    NetworkSpec,
    TrainingSummary,
    Versions,
)
from cac_lightning.vessels import CLASS_NAMES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
V0 = FIXTURES / "checkpoint_v0.ckpt"


def test_version_0_file_migrates():
    record = checkpoint.read(V0)
    assert record.source_schema == 0 and record.versions.schema == SCHEMA_VERSION
    assert record.network == NetworkSpec(
        "unetplusplus",
        {"in_channels": 2, "num_classes": 5, "channels": [4, 8], "deep_supervision": False},
    )
    # threshold_hu (stored, never read) -> the scan's own threshold, as inference always did
    assert record.input == InputSpec((-1024.0, 2048.0), "scan")
    assert record.data_geometry.spacing_mm == pytest.approx(4.576099)
    assert record.data_geometry.kvp == (120,) and record.data_geometry.fov_mm is None
    # the data definition from Lightning's datamodule_hyper_parameters
    assert record.data["_target_"] == checkpoint.DEFAULT_DATAMODULE
    assert record.data["synthetic"] == {"n_scans": 6, "seed": 0, "size": 48}
    assert record.versions.lightning == "2.6.6" and record.versions.torch is None
    assert record.lesion_confidence is None and record.lesion_floor == 0.0
    assert record.training.loss_region == "all" and record.training.criterion["name"] == "focal"
    assert record.class_names == CLASS_NAMES
    assert record.lightning["epoch"] == 0 and "optimizer_states" in record.lightning


def test_version_0_file_predicts_as_main_did():
    """The labels and foreground probability main's own code gave on this file (fixture)."""
    expected = np.load(FIXTURES / "checkpoint_v0_expected.npz")
    predictor = Predictor.from_checkpoint(V0, device="cpu")
    # Main predicted 4.5 mm pixels natively (within 2 % of the training 4.576 mm); one grid rule
    # (data/resample.py TrainingGrid) now resamples any other spacing, so give the training
    # spacing: the network then sees the same pixels main's code gave it.
    spacing = predictor.spacing_mm
    labels, fg = predictor.predict(
        expected["hu"], pixel_spacing=(spacing, spacing), kvp=120.0, return_foreground=True
    )
    assert expected["labels"].any()  # a real prediction, not all background
    np.testing.assert_array_equal(labels, expected["labels"])
    np.testing.assert_allclose(fg, expected["foreground"], atol=1e-6)


def _full_record() -> CheckpointRecord:
    return CheckpointRecord(
        network=NetworkSpec("unet", {"channels": [4, 8], "in_channels": 2}),
        input=InputSpec((-1000.0, 1500.0), 140.0),
        scoring={"mode": "per-slice", "threshold_hu": None, "min_area_mm2": 1.0},
        data_geometry=DataGeometry(0.8, 128.0, (0.4, 0.9), (2.5, 3.0), (180.0, 260.0), (100, 120)),
        data={"_target_": checkpoint.DEFAULT_DATAMODULE, "data_dir": "/d", "fov_mm": 128.0},
        lesion_confidence=LesionFloor(0.7, "val", 12, {"0": 10.5, "0.7": 8.25}),
        training=TrainingSummary(
            {"name": "focal", "gamma": 3.0},
            {"name": "torch.optim.adam.Adam", "lr": 1e-3},
            {"name": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.95},
            "candidates",
            True,
            True,
        ),
        versions=Versions(SCHEMA_VERSION, "0.1.0", "2.13.0", "2.6.6"),
        state_dict={"net.w": torch.arange(6.0).reshape(2, 3)},
        lightning={"epoch": 3, "global_step": 40, "callbacks": {"X": {"a": 1}}},
    )


def test_write_read_round_trip_keeps_every_field(tmp_path):
    record = _full_record()
    path = tmp_path / "r.ckpt"
    checkpoint.write(record, path)
    back = checkpoint.read(path)
    for f in dataclasses.fields(CheckpointRecord):
        if f.name in ("state_dict", "path"):
            continue
        assert getattr(back, f.name) == getattr(record, f.name), f.name
    assert back.path == path and back.source_schema == SCHEMA_VERSION
    assert back.state_dict.keys() == record.state_dict.keys()
    torch.testing.assert_close(back.state_dict["net.w"], record.state_dict["net.w"])
    assert back.network_state().keys() == {"w"}


def test_floor_rewrite_migrates_a_version_0_file(tmp_path):
    out = tmp_path / "floored.ckpt"
    checkpoint.set_lesion_floor(V0, {"floor": 0.6, "calibrated_on": "val"}, out)
    back = checkpoint.read(out)
    assert back.source_schema == SCHEMA_VERSION and back.lesion_floor == 0.6
    assert back.data == checkpoint.read(V0).data  # nothing else lost
    assert torch.load(out, weights_only=True)["hyper_parameters"]["schema_version"] == 1
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        checkpoint.set_lesion_floor(V0, {"floor": 1.5}, out)


def _edited(tmp_path, **hp_changes) -> Path:
    ckpt = torch.load(V0, weights_only=True)
    ckpt["hyper_parameters"].update(hp_changes)
    path = tmp_path / "edited.ckpt"
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (SCHEMA_VERSION + 1, rf"schema version {SCHEMA_VERSION + 1}; .* upgrade cac-lightning"),
        ("v2", "unknown checkpoint schema version 'v2'"),
        (-1, "unknown checkpoint schema version -1"),
    ],
)
def test_unknown_schema_version_is_one_clear_error(tmp_path, version, message):
    path = _edited(tmp_path, schema_version=version)
    with pytest.raises(InputError, match=message) as info:
        checkpoint.read(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(InputError, match=message):
        Predictor.from_checkpoint(path, device="cpu")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "not a loadable checkpoint"),
        ({"state_dict": {}}, "not a cac-train checkpoint"),
        ({"hyper_parameters": {"net": {"name": "unet"}}}, r"not a cac-train checkpoint \(no state"),
        ([1, 2, 3], "not a cac-train checkpoint"),
    ],
)
def test_not_a_checkpoint_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "x.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError, match=message) as info:
        checkpoint.read(path, "ckpt=")
    assert "\n" not in str(info.value) and str(info.value).startswith(f"ckpt={path}: ")
    with pytest.raises(InputError, match="no such checkpoint file"):
        checkpoint.read(tmp_path / "missing.ckpt")


def test_bad_field_is_one_clear_error(tmp_path):
    path = _edited(tmp_path, data_geometry={"spacing_mm": -1.0})
    with pytest.raises(InputError, match="data_geometry.spacing_mm must be a positive number"):
        checkpoint.read(path)


class _Data(L.LightningDataModule):
    """A DataModule with the geometry hooks of CACDataModule (tiny random slices)."""

    def __init__(self, per_scan_threshold: bool = False, threshold_hu: float = 150.0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def geometry_summary(self) -> dict:
        return {"spacing_mm": 0.7, "fov_mm": None, "pixel_spacing_mm": [0.6, 0.8], "kvp": [120]}

    def input_threshold(self):
        return "scan" if self.hparams.per_scan_threshold else self.hparams.threshold_hu

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, 2, 16, 16, generator=g)
        y = torch.randint(0, 5, (4, 16, 16), generator=g)
        ds = torch.utils.data.TensorDataset(x, y)
        return torch.utils.data.DataLoader(
            ds,
            batch_size=2,
            collate_fn=lambda b: {
                "image": torch.stack([i for i, _ in b]),
                "target": torch.stack([t for _, t in b]),
            },
        )


def test_what_lightning_writes_is_the_schema(tmp_path):
    from cac_lightning.callbacks.geometry import RecordDataGeometry

    module = CACSegModule(net={"name": "unet", "channels": [4, 8]})
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[RecordDataGeometry()],
    )
    trainer.fit(module, datamodule=_Data())
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    hp = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hp["schema_version"] == SCHEMA_VERSION
    assert hp["versions"]["torch"] == torch.__version__
    assert hp["input"] == {"window": [-1024.0, 2048.0], "threshold": 150.0, "context": 0}
    assert hp["data"]["_target_"].endswith("test_checkpoint._Data")
    record = checkpoint.read(path)
    assert record.source_schema == SCHEMA_VERSION
    assert record.data_geometry == DataGeometry(0.7, None, (0.6, 0.8), None, None, (120,))
    assert record.input.mask_threshold(119.0) == 150.0
    assert InputSpec().mask_threshold(119.0) == 119.0
    # the module's own loader still works on the schema's hyper-parameters
    loaded = CACSegModule.load_from_checkpoint(path, weights_only=True)
    assert loaded.hparams["input"] == hp["input"]

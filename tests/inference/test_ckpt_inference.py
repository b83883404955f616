"""`cac-score --ckpt`: checkpoint-only inference, batch with a bad input, overlays, DICOM SEG."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cac_lightning.cli.score import main
from cac_lightning.io import write_dicom_series
from cac_lightning.io.volume import Geometry
from cac_lightning.models import CACSegModule


def _always_lad_checkpoint(path):
    """A real module whose network predicts LAD everywhere (so calcium = HU >= 130)."""
    module = CACSegModule(
        net={"name": "unet", "channels": [4, 8]},
        criterion={"name": "focal"},
        input={"window": [-1024.0, 2048.0], "threshold_hu": 130.0},
    )
    with torch.no_grad():
        for p in module.net.parameters():
            p.zero_()
        last = [m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        assert last.out_channels == 5
        last.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0]))
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def _series(folder, seed):
    rng = np.random.default_rng(seed)
    hu = rng.normal(40, 10, (4, 32, 32)).astype(np.int16)
    hu[1, 8:12, 8:12] = 420  # 16 px * 0.25 mm² * 4 = 16 Agatston
    g = Geometry(
        shape=hu.shape,
        pixel_spacing=(0.5, 0.5),
        slice_spacing=3.0,
        origin=(0.0, 0.0, 0.0),
        slice_thickness=3.0,
    )
    return write_dicom_series(hu, g, folder, patient_id=f"SYN{seed:04d}")


@pytest.fixture
def setup(tmp_path):
    ckpt = _always_lad_checkpoint(tmp_path / "model.ckpt")
    a = _series(tmp_path / "scanA", 1)
    b = _series(tmp_path / "scanB", 2)
    return tmp_path, ckpt, a, b


def test_batch_with_bad_input(setup, capsys):
    tmp, ckpt, a, b = setup
    out = tmp / "out"
    bad = tmp / "empty"
    bad.mkdir()
    code = main(
        [str(a), str(bad), str(b), "--ckpt", str(ckpt), "--out", str(out), "--device", "cpu"]
    )
    assert code == 1
    cap = capsys.readouterr()
    assert "2 scored, 1 failed" in cap.out
    assert [ln for ln in cap.err.splitlines() if "error" in ln and str(bad) in ln]
    for sid in ("scanA", "scanB"):
        (json_path,) = out.glob(f"{sid}-*.json")
        rep = json.loads(json_path.read_text())
        assert rep["scores"]["LAD"]["agatston"] == pytest.approx(16.0)
        assert rep["scores"]["total"]["agatston"] == pytest.approx(16.0)
        assert set(rep["timing_s"]) == {"read", "infer", "score"}
    assert not list(out.glob("empty*"))


def test_overlays_and_seg_round_trip(setup):
    import highdicom as hd
    import pydicom

    tmp, ckpt, a, _ = setup
    out = tmp / "out"
    assert (
        main(
            [str(a), "--ckpt", str(ckpt), "--out", str(out), "--overlays", "--seg", "--save-labels"]
        )
        == 0
    )
    (json_path,) = out.glob("scanA-*.json")
    sid = json_path.stem
    pngs = sorted(p.name for p in (out / f"{sid}_overlays").iterdir())
    assert pngs == ["slice_001.png", "summary.png"]
    seg_path = out / f"{sid}_seg.dcm"
    ds = pydicom.dcmread(seg_path)
    assert ds.Modality == "SEG" and len(ds.SegmentSequence) == 4
    src = pydicom.dcmread(sorted(a.iterdir())[0])
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    seg = hd.seg.segread(seg_path)
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    assert labels == ["LM calcium", "LAD calcium", "CX calcium", "RCA calcium"]
    arr = seg.get_volume(combine_segments=True).array if hasattr(seg, "get_volume") else None
    if arr is not None:
        assert int((arr == 2).sum()) == 16 and int((arr != 0).sum()) == 16
    assert (out / f"{sid}_labels.nii.gz").is_file()


def test_checkpoint_that_runs_code_is_refused(tmp_path, capsys):
    import collections

    bad = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {}, "hyper_parameters": collections.Counter(a=1), "obj": np.dtype}, bad
    )
    series = _series(tmp_path / "s", 3)
    assert main([str(series), "--ckpt", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a loadable checkpoint" in err[0]

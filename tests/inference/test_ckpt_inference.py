"""`cac-score --ckpt`: checkpoint-only inference, batch with a bad input, overlays, DICOM SEG."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from cac_lightning.cli.score import main
from cac_lightning.io import write_dicom_series
from cac_lightning.volume import Geometry


@pytest.fixture
def setup(tmp_path, lad_ckpt, make_small_series):
    ckpt = lad_ckpt
    a = make_small_series(tmp_path / "scanA", 1)
    b = make_small_series(tmp_path / "scanB", 2)
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


def test_checkpoint_that_runs_code_is_refused(tmp_path, capsys, make_small_series):
    import collections

    bad = tmp_path / "evil.ckpt"
    torch.save(
        {"state_dict": {}, "hyper_parameters": collections.Counter(a=1), "obj": np.dtype}, bad
    )
    series = make_small_series(tmp_path / "s", 3)
    assert main([str(series), "--ckpt", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a loadable checkpoint" in err[0]


def _odd_series(folder, kvp, size=500):
    """500 x 500 slices (no multiple of 16) at ``kvp``; a 125 HU lesion only 135 kVp counts."""
    hu = np.full((3, size, size), 40, np.int16)
    hu[1, 100:104, 200:204] = 125  # 16 px * 0.25 mm²: calcium at 135 kVp (119 HU), not at 120
    hu[2, 300:304, 496:500] = 420  # touching the edge
    g = Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=3.0, slice_thickness=3.0)
    return write_dicom_series(hu, g, folder, patient_id="SYN0009", kvp=kvp)


def test_500px_135kvp_threshold_recorded_and_used(tmp_path, lad_ckpt):
    ckpt = lad_ckpt
    out = tmp_path / "out"
    s135 = _odd_series(tmp_path / "kv135", 135.0)
    s120 = _odd_series(tmp_path / "kv120", 120.0)
    assert main([str(s135), str(s120), "--ckpt", str(ckpt), "--out", str(out)]) == 0
    r135 = json.loads(next(out.glob("kv135-*.json")).read_text())
    r120 = json.loads(next(out.glob("kv120-*.json")).read_text())
    assert r135["threshold_hu"] == 119.0 == r135["settings"]["threshold_hu"]
    assert r120["threshold_hu"] == 130.0 == r120["settings"]["threshold_hu"]
    # 4 mm² at weight 1 (bands scaled by 119/130) + 4 mm² at weight 4 -> 4 + 16
    assert r135["scores"]["LAD"]["agatston"] == pytest.approx(20.0)
    assert r120["scores"]["LAD"]["agatston"] == pytest.approx(16.0)
    assert r135["shape_zyx"] == [3, 500, 500]
    assert r135["warnings"] == [
        "the checkpoint records no training data geometry: domain not checked"
    ]


def test_domain_warnings_in_json_and_strict_domain(
    tmp_path, capsys, make_lad_ckpt, make_small_series
):
    geometry = {
        "spacing_mm": 0.5,
        "fov_mm": None,
        "pixel_spacing_mm": [0.45, 0.55],
        "slice_thickness_mm": [3.0, 3.0],
        "fov_range_mm": [10.0, 20.0],
        "kvp": [120],
    }
    ckpt = make_lad_ckpt(tmp_path / "model.ckpt", data_geometry=geometry)
    series = make_small_series(tmp_path / "scanA", 1)  # 32 px * 0.5 mm = 16 mm FOV, 120 kVp: inside
    wide = _odd_series(tmp_path / "wide", 135.0, size=48)  # 24 mm FOV, 135 kVp: outside
    out = tmp_path / "out"
    assert main([str(series), str(wide), "--ckpt", str(ckpt), "--out", str(out)]) == 0
    assert json.loads(next(out.glob("scanA-*.json")).read_text())["warnings"] == []
    lines = json.loads(next(out.glob("wide-*.json")).read_text())["warnings"]
    assert lines == [
        "field of view 24 mm is outside the training range 10-20 mm",
        "kVp 135 is outside the training kVp 120",
    ]
    err = capsys.readouterr().err
    for line in lines:  # the scan id is the folder name plus a key hash (wide-<hash>)
        assert re.search(rf"warning: wide-[0-9a-f]+: {re.escape(line)}", err)
    strict = tmp_path / "strict"
    code = main([str(wide), "--ckpt", str(ckpt), "--out", str(strict), "--strict-domain"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outside the training domain" in err[0]
    assert not list(strict.glob("wide*.json"))


def test_ensemble_of_checkpoints_scores_with_their_mean(tmp_path, make_lad_ckpt):
    """`--ckpt A --ckpt B`: one ensemble; a surer RCA member outweighs the LAD one."""
    lad = make_lad_ckpt(tmp_path / "lad.ckpt")
    rca = make_lad_ckpt(tmp_path / "rca.ckpt", bias=(0, 0, 0, 0, 8))
    out = tmp_path / "out"
    series = _odd_series(tmp_path / "kv120", 120.0)
    assert main([str(series), "--ckpt", str(lad), "--ckpt", str(rca), "--out", str(out)]) == 0
    report = json.loads(next(out.glob("kv120-*.json")).read_text())
    assert report["scores"]["RCA"]["agatston"] == pytest.approx(16.0)
    assert report["scores"]["LAD"]["agatston"] == 0.0


def test_lesion_floor_option(tmp_path, make_lad_ckpt, make_small_series, capsys):
    """--lesion-floor replaces the checkpoint's floor (in the JSON); out of range: exit 2."""
    ckpt = make_lad_ckpt(tmp_path / "unsure.ckpt", bias=(0, 0, 0.5, 0, 0))  # foreground ~0.82
    scan = make_small_series(tmp_path / "scan", 1)
    totals = {}
    for floor in ("0.8", "0.9"):
        out = tmp_path / f"out{floor}"
        args = [str(scan), "--ckpt", str(ckpt), "--out", str(out), "--lesion-floor", floor]
        assert main([*args, "--device", "cpu"]) == 0
        (json_path,) = out.glob("scan-*.json")
        rep = json.loads(json_path.read_text())
        assert rep["model"]["lesion_confidence_floor"] == float(floor)
        assert rep["lesion_floor"] == float(floor)  # set by the user: applied out of domain too
        totals[floor] = rep["scores"]["total"]["agatston"]
    assert totals == {"0.8": pytest.approx(16.0), "0.9": 0.0}
    capsys.readouterr()
    out = tmp_path / "bad"
    assert main([str(scan), "--ckpt", str(ckpt), "--out", str(out), "--lesion-floor", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "floor must be in [0, 1), got 1.0" in err[0]
    default = tmp_path / "default"
    assert main([str(scan), "--ckpt", str(ckpt), "--out", str(default), "--device", "cpu"]) == 0
    (json_path,) = default.glob("scan-*.json")
    assert json.loads(json_path.read_text())["lesion_floor"] == 0.0  # none recorded
    assert not out.exists() or not any(out.iterdir())

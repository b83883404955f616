"""The COCA importer: a COCA-format scan built here (always) and the real sample (if present)."""

from __future__ import annotations

import copy
import json
import logging
import plistlib
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from cac_lightning.cli.import_coca import main
from cac_lightning.errors import CACError, InputError
from cac_lightning.sources.coca import (
    assign_splits,
    find_release,
    import_coca,
    paper_splits,
    run_import,
    split_counts,
)
from cac_lightning.sources.coca_labels import rasterise_rois
from cac_lightning.sources.coca_xml import density_weight, parse_coca_xml, xml_agatston
from cac_lightning.volume import Geometry

SP, DZ, N, NZ = 0.5, 3.0, 32, 5  # pixel mm, slice mm, in-plane size, slices
ORIGIN = (-8.0, -10.0, -100.0)
GEOMETRY = Geometry(shape=(NZ, N, N), pixel_spacing=(SP, SP), slice_spacing=DZ, origin=ORIGIN)
SECRET = "SECRET-PID-42"  # the DICOM PatientID: must never reach an output
LAD, RCA, CX = "Left Anterior Descending Artery", "Right Coronary Artery", "Left Circumflex Artery"


def make_hu() -> np.ndarray:
    """int16 (z, y, x): an LAD lesion on slice 1, an RCA lesion on slice 3, bone on slice 2."""
    hu = np.full((NZ, N, N), 20, dtype=np.int16)
    hu[1, 5:8, 10:14] = 180  # rows 5-7, cols 10-13: 12 px ...
    hu[1, 6, 12] = 250
    hu[1, 5, 10] = 100  # ... one under 130 -> 11 calcium px, max 250
    hu[3, 20:22, 20:23] = 150  # 6 px ...
    hu[3, 21, 21] = 450  # ... max 450
    hu[2, 26:30, 2:6] = 700  # bone: above 130, never labelled
    return hu


def roi(name, k, x0, x1, y0, y1, *, area_px=None, max_hu=0.0, z_index=None) -> dict:
    """An OsiriX-style ROI: rectangle with vertices on pixel centres (x = column, y = row)."""
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    z = ORIGIN[2] + DZ * (k if z_index is None else z_index)
    mm = [(ORIGIN[0] + (x - 0.5) * SP, ORIGIN[1] + (y - 0.5) * SP, z) for x, y in corners]
    area = (x1 - x0 + 1) * (y1 - y0 + 1) if area_px is None else area_px
    return {
        "Name": name, "Area": area * SP * SP / 100.0, "Max": float(max_hu), "Mean": 0.0,
        "Min": 130.0, "Point_px": [f"({x:f}, {y:f})" for x, y in corners],
        "Point_mm": [f"({x:f}, {y:f}, {z:f})" for x, y, z in mm], "Type": 20,
    }  # fmt: skip


EMPTY = {"Name": LAD, "Area": 0.0, "Max": 0.0, "Mean": 0.0, "Min": 0.0, "Point_px": [],
         "Point_mm": []}  # fmt: skip


def good_rois() -> dict[int, list[dict]]:
    return {
        1: [roi(LAD, 1, 10, 13, 5, 7, area_px=11, max_hu=250)],
        2: [EMPTY, roi("Aortic Valve", 2, 2, 5, 26, 29, max_hu=700)],
        3: [roi(RCA, 3, 20, 22, 20, 21, max_hu=450)],
    }


def write_xml(path: Path, images: dict[int, list[dict]]) -> Path:
    doc = {"Images": [{"ImageIndex": k, "ROIs": r} for k, r in images.items()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(plistlib.dumps(doc))
    return path


def write_series(folder: Path, hu: np.ndarray) -> Path:
    """CT_small.dcm copies, InstanceNumber 1 at the top (descending z, as in COCA)."""
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True)
    series_uid = generate_uid()
    for k in range(hu.shape[0]):
        ds = copy.deepcopy(base)
        ds.PatientID = ds.PatientName = SECRET
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = hu.shape[0] - k
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.PixelSpacing = [SP, SP]
        ds.SliceThickness = DZ
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + DZ * k]
        ds.SliceLocation = ORIGIN[2] + DZ * k
        ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = -1024, 1, 120
        ds.PixelData = (hu[k].astype(np.int16) + 1024).astype("<i2").tobytes()
        ds.save_as(folder / f"IM-{hu.shape[0] - k:04d}.dcm")
    return folder


def make_root(tmp_path: Path, patients: dict[str, dict | None]) -> Path:
    """A COCA root; ``patients`` maps pid -> ROI images (None: no XML)."""
    release = tmp_path / "coca" / "Gated_release_final"
    for pid, images in patients.items():
        write_series(release / "patient" / pid / "Pro_Gated_CS_3.0", make_hu())
        if images is not None:
            write_xml(release / "calcium_xml" / f"{pid}.xml", images)
    return tmp_path / "coca"


def parsed(tmp_path: Path, images: dict[int, list[dict]]):
    return parse_coca_xml(write_xml(tmp_path / "x.xml", images))


# --- XML parsing and the XML's own score ----------------------------------------------------


def test_parse_fields_units_and_vessels(tmp_path):
    rois = parsed(tmp_path, good_rois())
    expected = [(1, "LAD"), (2, "LAD"), (2, None), (3, "RCA")]
    assert [(r.image_index, r.vessel) for r in rois] == expected
    lad = rois[0]
    assert lad.area_mm2 == pytest.approx(11 * 0.25)  # cm² -> mm²
    assert lad.max_hu == 250.0 and lad.min_hu == 130.0
    assert lad.points_px.shape == (4, 2) and lad.points_px[1].tolist() == [13.0, 5.0]
    assert lad.points_mm.shape == (4, 3) and lad.points_mm[0, 2] == pytest.approx(-97.0)
    assert rois[1].is_empty and not lad.is_empty
    assert rois[1].points_px.shape == (0, 2)


def test_xml_agatston_hand_computed(tmp_path):
    scores = xml_agatston(parsed(tmp_path, good_rois()))
    # LAD 2.75 mm² x w(250)=2; RCA 1.5 mm² x w(450)=4; unknown and empty ROIs left out
    assert scores == pytest.approx({"LM": 0.0, "LAD": 5.5, "CX": 0.0, "RCA": 6.0, "total": 11.5})


@pytest.mark.parametrize(
    ("hu", "weight"), [(129.9, 0), (130, 1), (199, 1), (200, 2), (299.9, 2), (300, 3), (400, 4)]
)
def test_density_weight(hu, weight):
    assert density_weight(hu) == weight


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"not xml at all", "not a COCA plist"),
        (plistlib.dumps({"Other": []}), "no top-level 'Images'"),
        (plistlib.dumps({"Images": [{"ROIs": []}]}), "no ImageIndex"),
        (plistlib.dumps({"Images": [{"ImageIndex": 0, "ROIs": [{"Name": LAD}]}]}), "lacks 'Area'"),
    ],
)
def test_parse_bad_files(tmp_path, content, message):
    path = tmp_path / "p.xml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        parse_coca_xml(path)


def test_parse_bad_point(tmp_path):
    bad = roi(LAD, 1, 10, 13, 5, 7, max_hu=250)
    bad["Point_px"][2] = "(13.0; 7.0)"
    with pytest.raises(InputError, match="cannot parse point"):
        parsed(tmp_path, {1: [bad]})


# --- rasterisation ----------------------------------------------------------------------------


def test_rasterise_fills_polygons_above_130(tmp_path, caplog):
    hu = make_hu()
    with caplog.at_level(logging.WARNING):
        labels, stats = rasterise_rois(parsed(tmp_path, good_rois()), hu, GEOMETRY, where="t: ")
    assert labels.dtype == np.uint8 and labels.shape == hu.shape
    expected = np.zeros_like(labels)
    expected[1, 5:8, 10:14] = 2
    expected[1, 5, 10] = 0  # 100 HU inside the polygon: not calcium
    expected[3, 20:22, 20:23] = 4
    np.testing.assert_array_equal(labels, expected)  # bone under the unknown ROI stays 0
    assert (stats.n_rois, stats.n_used, stats.n_empty, stats.n_unknown) == (4, 2, 1, 1)
    assert (stats.n_area_mismatch, stats.n_max_mismatch, stats.n_overlap) == (0, 0, 0)
    unknown = [r.getMessage() for r in caplog.records if "Aortic Valve" in r.getMessage()]
    assert len(unknown) == 1 and "unknown artery name" in unknown[0]
    assert len(caplog.records) == 1


def test_rasterise_identity_warnings(tmp_path, caplog):
    images = {1: [roi(LAD, 1, 10, 13, 5, 7, area_px=12, max_hu=300)]}  # true: 11 px, max 250
    with caplog.at_level(logging.WARNING):
        labels, stats = rasterise_rois(parsed(tmp_path, images), make_hu(), GEOMETRY)
    assert (stats.n_area_mismatch, stats.n_max_mismatch, stats.n_used) == (1, 1, 1)
    assert int((labels == 2).sum()) == 11
    text = caplog.text
    assert "11 calcium px" in text and "Area = 3.00 mm²" in text and "Max = 300" in text


def test_rasterise_overlap_larger_roi_wins(tmp_path, caplog):
    # the smaller CX ROI comes first in the file; it overlaps the LAD ROI in 2 calcium px
    cx = roi(CX, 1, 13, 14, 6, 7, area_px=2, max_hu=180)  # cols 13-14: col 14 is 20 HU
    lad = roi(LAD, 1, 10, 13, 5, 7, area_px=11, max_hu=250)
    with caplog.at_level(logging.WARNING):
        labels, stats = rasterise_rois(parsed(tmp_path, {1: [cx, lad]}), make_hu(), GEOMETRY)
    assert (stats.n_overlap, stats.n_overlap_px) == (1, 2)
    assert int((labels == 2).sum()) == 11 and int((labels == 3).sum()) == 0
    assert "larger ROI of another vessel" in caplog.text


def test_rasterise_index_z_mismatch(tmp_path):
    images = {1: [roi(LAD, 1, 10, 13, 5, 7, area_px=11, max_hu=250, z_index=3)]}
    with pytest.raises(InputError, match=r"ImageIndex 1 .* z = -97\.00 mm .* \(slice 3\)"):
        rasterise_rois(parsed(tmp_path, images), make_hu(), GEOMETRY)


def test_rasterise_index_outside_series(tmp_path):
    images = {7: [roi(LAD, 7, 10, 13, 5, 7, max_hu=250)]}
    with pytest.raises(InputError, match="ImageIndex 7 is outside the series"):
        rasterise_rois(parsed(tmp_path, images), make_hu(), GEOMETRY)


# --- splits -----------------------------------------------------------------------------------


def test_assign_splits():  # the explicit options
    pids = [str(i) for i in range(10)]
    assert set(assign_splits(pids).values()) == {"test"}
    assert set(assign_splits(pids, split="val").values()) == {"val"}
    a = assign_splits(pids, fractions=(0.6, 0.2, 0.2))
    assert sorted(a.values()).count("train") == 6 and list(a.values()).count("val") == 2
    assert a == assign_splits(pids[::-1], fractions=(0.6, 0.2, 0.2))  # input order irrelevant
    assert a != assign_splits(pids, fractions=(0.6, 0.2, 0.2), seed=1)
    with pytest.raises(InputError, match="summing to 1"):
        assign_splits(pids, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(InputError, match="unknown split"):
        assign_splits(pids, split="holdout")


@pytest.mark.parametrize(
    ("n", "counts"),
    [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (5, (3, 1, 1)),
     (10, (7, 1, 2)), (1067, (747, 107, 213))],
)  # fmt: skip
def test_split_counts(n, counts):
    assert split_counts(n) == counts


def test_paper_splits_stratified_seeded_zero_to_test_zero():
    rng = np.random.default_rng(0)
    # 40 scans per risk category C2..C5 and 30 zero-calcium scans
    scores = {f"s{i}": 0.0 for i in range(30)}
    for c, (lo, hi) in enumerate([(0.5, 10), (11, 100), (101, 400), (401, 3000)]):
        scores.update({f"c{c}-{i}": float(rng.uniform(lo, hi)) for i in range(40)})
    a = paper_splits(scores, seed=0)
    assert [k for k, v in a.items() if v == "test_zero"] == [f"s{i}" for i in range(30)]
    counts = Counter(a.values())
    assert (counts["train"], counts["val"], counts["test"]) == (112, 16, 32)  # 70/10/20 of 160
    for c in range(4):  # every risk category split 28/4/8
        per = Counter(v for k, v in a.items() if k.startswith(f"c{c}-"))
        assert (per["train"], per["val"], per["test"]) == (28, 4, 8), (c, per)
    assert a == paper_splits(dict(reversed(scores.items())), seed=0)  # order irrelevant
    assert a != paper_splits(scores, seed=1)
    three = paper_splits({"a": 5.0, "b": 50.0, "c": 500.0, "z": 0.0})
    assert sorted(three.values()) == ["test", "test_zero", "train", "val"]


def test_reimport_reuses_saved_splits(built_root, tmp_path):
    out = tmp_path / "out"
    run_import(built_root, out, ["0", "1"])
    saved = json.loads((out / "splits.json").read_text())
    saved["splits"]["coca-0"] = "val"  # e.g. a split chosen earlier
    (out / "splits.json").write_text(json.dumps(saved))
    (out / "manifest.csv").unlink()
    result = run_import(built_root, out, ["0", "1"])
    assert {r.scan_id: r.split for r in result.rows} == {"coca-0": "val", "coca-1": "test_zero"}
    assert json.loads((out / "splits.json").read_text())["rule"] == "paper"
    explicit = run_import(built_root, tmp_path / "x", ["0"], split="test")
    assert [r.split for r in explicit.rows] == ["test"]


# --- the importer on a built COCA root --------------------------------------------------------


@pytest.fixture
def built_root(tmp_path) -> Path:
    mismatch = {1: [roi(LAD, 1, 10, 13, 5, 7, area_px=11, max_hu=250, z_index=2)]}
    root = make_root(tmp_path, {"0": good_rois(), "1": None, "2": mismatch})
    write_series(root / "Gated_release_final/patient/3/A", make_hu())
    write_series(root / "Gated_release_final/patient/3/B", make_hu())
    return root


def test_find_release(built_root, tmp_path):
    assert find_release(built_root) == built_root / "Gated_release_final"
    assert find_release(built_root / "Gated_release_final") == built_root / "Gated_release_final"
    with pytest.raises(InputError, match="not a COCA root"):
        find_release(tmp_path)


def test_import_reference_scores_and_failures(built_root, tmp_path):
    from cac_lightning.io.manifest import read_manifest

    pytest.importorskip("SimpleITK")
    import SimpleITK as sitk

    lines: list[str] = []
    out = tmp_path / "out"
    result = run_import(built_root, out, progress=lines.append)
    assert sorted(result.failures) == ["coca-2", "coca-3"]
    assert "ImageIndex 1" in result.failures["coca-2"]
    assert "2 series folders (A, B)" in result.failures["coca-3"]
    assert [line.split(":")[0] for line in lines] == ["coca-0", "coca-1", "coca-2", "coca-3"]
    assert lines[0].startswith("coca-0: 4 ROIs (2 used)") and "Agatston 11.5 (XML 11.5)" in lines[0]
    assert "no XML: zero calcium" in lines[1]
    assert result.n_without_xml == 1 and result.stats.n_empty == 1
    rows = {r.scan_id: r for r in read_manifest(out / "manifest.csv")}
    assert sorted(rows) == ["coca-0", "coca-1"]
    r0, r1 = rows["coca-0"], rows["coca-1"]
    # the paper's splits by default: the one positive scan trains, the zero-calcium one tests
    assert (r0.patient_id, r0.split, r1.split) == ("coca-0", "train", "test_zero")
    assert json.loads((out / "splits.json").read_text())["splits"] == {
        "coca-0": "train",
        "coca-1": "test_zero",
    }
    assert "empty: val, test" in result.split_line()
    assert r0.image == built_root / "Gated_release_final/patient/0/Pro_Gated_CS_3.0"
    assert r0.label == out / "labels" / "coca-0.nii.gz"
    assert r0.ref["LAD"]["agatston"] == pytest.approx(5.5)
    assert r0.ref["RCA"]["agatston"] == pytest.approx(6.0)
    assert r0.ref["total"]["agatston"] == pytest.approx(11.5)
    assert r0.ref["LAD"]["volume_mm3"] == pytest.approx(11 * 0.25 * 3.0)
    assert r0.ref["LM"]["agatston"] == 0.0 and r0.ref["CX"]["volume_mm3"] == 0.0
    assert r1.ref["total"] == {"agatston": 0.0, "volume_mm3": 0.0, "mass_mg": 0.0}
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(r0.label)))
    assert int((labels == 2).sum()) == 11 and int((labels == 4).sum()) == 6 and labels.max() == 4
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(r1.label))).any()
    outputs = [p.name for p in out.rglob("*")] + [(out / "manifest.csv").read_text()]
    assert not any(SECRET in text for text in outputs)


def test_import_coca_raises_after_partial_import(built_root, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(CACError, match=r"2 patient\(s\) failed .*coca-2"):
        import_coca(built_root, out)
    assert (out / "manifest.csv").is_file()
    assert import_coca(built_root, tmp_path / "ok", ["1"]) == tmp_path / "ok" / "manifest.csv"


def test_cli_partial_failure_then_refuses_overwrite(built_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(built_root), "--out", str(out), "--split-fractions", "0.5", "0.5", "0"]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 7  # 4 patient lines, summary, splits, manifest path
    assert "splits: train " in captured.out and "empty: " in captured.out
    assert "imported 2 of 4 patients (1 without XML)" in captured.out
    assert captured.err.strip().endswith("2 patient(s) failed: coca-2, coca-3")
    before = (out / "manifest.csv").read_text()
    assert main([str(built_root), "--out", str(out), "--patients", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err
    assert (out / "manifest.csv").read_text() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [(["nowhere"], "is not a folder"), (["."], "not a COCA root"), (["ROOT", "--patients", "9"],
     "no patient folder 9")],
)  # fmt: skip
def test_cli_bad_input_one_line(built_root, tmp_path, capsys, args, message):
    args = [str(built_root) if a == "ROOT" else a for a in args]
    if args[0] == ".":
        args[0] = str(tmp_path)
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "manifest.csv").exists()


# --- the real COCA sample ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_import(coca_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("coca-import")
    assert main([str(coca_root), "--out", str(out)]) == 0
    return out


def test_sample_matches_xml_agatston(coca_root, sample_import):
    from cac_lightning.io import read_label_map, read_volume
    from cac_lightning.io.manifest import read_manifest
    from cac_lightning.scoring import ScoringConfig, score_scan

    rows = read_manifest(sample_import)
    assert [r.scan_id for r in rows] == ["coca-0", "coca-1", "coca-2"]
    config = ScoringConfig(mode="per-slice", min_area_mm2=0.0)
    for row in rows:
        pid = row.scan_id.removeprefix("coca-")
        xml = xml_agatston(parse_coca_xml(coca_root / f"Gated_release_final/calcium_xml/{pid}.xml"))
        assert xml["total"] > 0
        volume = read_volume(row.image)
        labels = read_label_map(row.label, volume.geometry)
        assert np.all(volume.hu[labels > 0] >= 130)
        scores = score_scan(volume.hu, labels, volume.geometry, config, kvp=volume.kvp)
        for vessel, expected in xml.items():
            got = scores.vessels[vessel].agatston
            assert got == pytest.approx(expected, rel=0.015, abs=1e-9), (row.scan_id, vessel)
        assert row.ref["total"]["agatston"] <= xml["total"] + 1e-6  # default drops < 1 mm²


def test_sample_label_geometry_equals_dicom_series(sample_import):
    import SimpleITK as sitk

    from cac_lightning.io.manifest import read_manifest

    for row in read_manifest(sample_import):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(row.image)))
        image = reader.Execute()
        label = sitk.ReadImage(str(row.label))
        assert label.GetSize() == image.GetSize()
        assert label.GetOrigin() == image.GetOrigin()
        assert label.GetSpacing() == image.GetSpacing()
        assert label.GetDirection() == image.GetDirection()

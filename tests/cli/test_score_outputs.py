"""`cac-score` output names and paths: no collisions, nothing outside --out, no lost CSV rows."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cac_lightning.cli.score import main
from cac_lightning.errors import OutputError
from cac_lightning.io import read_volume, write_label_map
from cac_lightning.io.scan_outputs import check_inside, output_id
from cac_lightning.volume import Geometry

REPO = Path(__file__).resolve().parents[2]
COCA_SERIES = "Pro_Gated_CS_3.0_I30f_3_70%"


def _rows(out: Path) -> list[dict]:
    with (out / "scores.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _zero_mask(vol_folder: Path, path: Path) -> Path:
    vol = read_volume(vol_folder)
    lab = np.zeros(vol.hu.shape, np.uint8)
    lab[vol.hu >= 130] = 2  # everything bright is "LAD": a non-zero, patient-specific score
    return write_label_map(lab, vol.geometry, path)


def test_output_id_is_sanitised_and_keyed():
    a = output_id(COCA_SERIES, "1.2.3.4")
    b = output_id(COCA_SERIES, "1.2.3.5")
    assert a != b and a.startswith("Pro_Gated_CS_3.0_I30f_3_70-")
    assert output_id("../../etc/passwd", "k").startswith("etc_passwd-")
    assert "/" not in output_id("/abs/x", "k") and not output_id("...", "k").startswith(".")
    assert output_id(COCA_SERIES, "1.2.3.4") == a  # stable: re-scoring replaces its own


def test_same_series_folder_name_two_coca_patients(coca_root, tmp_path, capsys):
    """Item 1: COCA patients 0 and 1 have identically named series folders."""
    base = coca_root / "Gated_release_final" / "patient"
    p0, p1 = base / "0" / COCA_SERIES, base / "1" / COCA_SERIES
    m0, m1 = _zero_mask(p0, tmp_path / "m0.nii.gz"), _zero_mask(p1, tmp_path / "m1.nii.gz")
    out = tmp_path / "out"
    assert main([str(p0), "--mask", str(m0), "--out", str(out)]) == 0
    assert main([str(p1), "--mask", str(m1), "--out", str(out)]) == 0
    jsons = sorted(out.glob("*.json"))
    assert len(jsons) == 2, "the second patient overwrote the first"
    rows = _rows(out)
    assert len(rows) == 2 and rows[0]["scan_id"] != rows[1]["scan_id"]
    ids = {r["scan_id"] for r in rows}
    assert ids == {p.stem for p in jsons}
    first = {r["scan_id"]: r["total_agatston"] for r in rows}
    # Re-scoring patient 0 with another mask replaces patient 0's result only.
    assert main([str(p0), "--mask", str(m0), "--out", str(out), "--min-area", "50"]) == 0
    rows2 = _rows(out)
    assert len(rows2) == 2 and {r["scan_id"] for r in rows2} == ids
    changed = [r["scan_id"] for r in rows2 if r["total_agatston"] != first[r["scan_id"]]]
    assert len(changed) == 1
    rep = json.loads((out / f"{changed[0]}.json").read_text())
    assert rep["settings"]["min_area_mm2"] == 50
    other = next(i for i in ids if i != changed[0])
    assert json.loads((out / f"{other}.json").read_text())["settings"]["min_area_mm2"] != 50
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]


def test_manifest_scan_ids_cannot_leave_out(tmp_path, lad_ckpt, make_small_series):
    """Item 3: hostile scan_id values in a manifest write inside --out only."""
    a = make_small_series(tmp_path / "data" / "a", 1)
    b = make_small_series(tmp_path / "data" / "b", 2)
    target = tmp_path / "victim"
    target.mkdir()
    (target / "x.json").write_text("keep")
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text(
        f"scan_id,image,split\n../../victim/x,{a},test\n{tmp_path / 'victim' / 'y'},{b},test\n"
    )
    out = tmp_path / "data" / "results"
    args = [str(manifest), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--overlays", "--save-labels", "--seg"]) == 0
    assert (target / "x.json").read_text() == "keep"
    assert sorted(p.name for p in target.iterdir()) == ["x.json"]
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert len([n for n in names if n.endswith(".json")]) == 2
    assert all(n.startswith(("victim_x-", "tmp", "scores.csv")) or "victim_y-" in n for n in names)
    for p in out.rglob("*"):
        assert out.resolve() in p.resolve().parents


def test_check_inside_follows_links(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)
    assert check_inside(out, out / "a.json") == out / "a.json"
    for bad in (out / "link" / "a.json", out / ".." / "a.json", Path("/etc/a.json"), out):
        with pytest.raises(OutputError, match="outside the output folder"):
            check_inside(out, bad)


def _nifti(path: Path, seed: int) -> Path:
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    hu = rng.normal(0, 20, (4, 16, 16)).astype(np.int16)
    hu[1, 4:8, 4:8] = 200 + 50 * seed
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((0.5, 0.5, 3.0))
    sitk.WriteImage(img, str(path))
    return path


def test_six_concurrent_processes_leave_six_rows(tmp_path):
    """Item 2: scores.csv is updated under a lock; no row is lost."""
    g = Geometry(shape=(4, 16, 16), pixel_spacing=(0.5, 0.5), slice_spacing=3.0)
    lab = np.zeros(g.shape, np.uint8)
    lab[1, 3:9, 3:9] = 2
    mask = write_label_map(lab, g, tmp_path / "mask.nii.gz")
    scans = [_nifti(tmp_path / f"scan{i}.nii.gz", i) for i in range(6)]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import sys; from cac_lightning.cli.score import main; main(sys.argv[1:])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(s), "--mask", str(mask), "--out", str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for s in scans
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, results
    rows = _rows(out)
    assert len(rows) == 6 and len({r["scan_id"] for r in rows}) == 6
    assert len(list(out.glob("*.json"))) == 6
    assert {r["scan_id"] for r in rows} == {p.stem for p in out.glob("*.json")}

"""Writing a synthetic cohort: files, manifest reference scores, splits, ``cac-synth`` CLI."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from cac_lightning.cli.synth import main as synth_main
from cac_lightning.errors import InputError
from cac_lightning.io import read_label_map, read_volume
from cac_lightning.io.manifest import read_manifest
from cac_lightning.scoring import score_scan
from cac_lightning.scoring.lesions import SCORE_METRICS
from cac_lightning.scoring.risk import risk_category
from cac_lightning.sources.splits import paper_splits
from cac_lightning.sources.synthetic import (
    assign_splits,
    cohort_split_rule,
    generate_cohort,
    prepare_cohort,
)
from cac_lightning.vessels import VESSELS


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    return generate_cohort(out, 5, seed=1, size=48, workers=2)


def test_manifest_scores_equal_scoring_the_written_files(cohort):
    rows = read_manifest(cohort)
    assert [r.scan_id for r in rows] == [f"SYN{i:04d}" for i in range(5)]
    for r in rows:
        vol = read_volume(r.image)
        assert vol.kvp == 120.0 and vol.scan_id == r.scan_id
        assert vol.geometry.slice_spacing == pytest.approx(3.0)
        labels = read_label_map(r.label, vol.geometry)
        assert np.all(vol.hu[labels > 0] >= 130)
        scores = score_scan(vol.hu, labels, vol.geometry, kvp=vol.kvp, mass_factor=vol.mass_factor)
        for v in (*VESSELS, "total"):
            for k in SCORE_METRICS:
                assert r.ref[v][k] == getattr(scores.vessels[v], k)  # exact


def test_dicom_holds_only_the_synthetic_patient_id(cohort):
    import pydicom

    row = read_manifest(cohort)[2]
    files = sorted(row.image.glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.PatientID == "SYN0002"
    assert float(ds.RescaleIntercept) == -1024 and float(ds.KVP) == 120
    assert float(ds.SliceThickness) == 3.0
    assert "PatientBirthDate" not in ds or not ds.PatientBirthDate


def test_scan_is_independent_of_cohort_size_and_workers(cohort, tmp_path):
    other = generate_cohort(tmp_path / "small", 2, seed=1, size=48, workers=1)
    a = read_manifest(cohort)[1]
    b = read_manifest(other)[1]
    va, vb = read_volume(a.image), read_volume(b.image)
    assert np.array_equal(va.hu, vb.hu)
    la, lb = read_label_map(a.label, va.geometry), read_label_map(b.label, vb.geometry)
    assert np.array_equal(la, lb)
    assert a.ref == b.ref


def test_cohort_splits_are_patient_level_and_complete(cohort):
    rows = read_manifest(cohort)
    assert len({r.patient_id for r in rows}) == len(rows)
    counts = Counter(r.split for r in rows)
    # 5 scans, scan 4 calcium-free (zero_fraction 0.2): 4 positives -> 2 train, 1 val, 1 test
    assert counts == {"train": 2, "val": 1, "test": 1, "test_zero": 1}
    assert rows[4].split == "test_zero" and rows[4].ref["total"]["agatston"] == 0.0
    assert (cohort.parent / "synthetic.json").is_file()


def test_assign_splits_rules():
    out = assign_splits([False] * 10, seed=0)
    assert Counter(out) == {"train": 6, "val": 2, "test": 2}
    out = assign_splits([False] * 8 + [True] * 4, seed=3)
    assert Counter(out) == {"train": 4, "val": 2, "test": 2, "test_zero": 4}
    assert all(s == "test_zero" for s in out[8:])
    # too few positives: zero scans fill val, test, then train
    out = assign_splits([False, True, True, True, True], seed=0)
    assert Counter(out) == {"val": 1, "test": 1, "train": 1, "test_zero": 2}
    assert out[0] == "val"
    assert assign_splits([False] * 3) == ["train"] * 3  # < 5 scans: no hold-out
    assert assign_splits([False] * 10, seed=1) == assign_splits([False] * 10, seed=1)


def test_generate_refuses_bad_input(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        generate_cohort(tmp_path / "full", 1, size=32)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="n_scans"):
        generate_cohort(tmp_path / "new", 0)
    with pytest.raises(InputError, match="unknown synthetic option"):
        generate_cohort(tmp_path / "new", 1, colour="red")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-scans", "2"], "not an empty folder"),
        (["--n-scans", "0"], "n_scans"),
        (["--n-scans", "2", "--stent-fraction", "-1"], "stent_fraction"),
        ([], "--n-scans"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("")
    target = out if message == "not an empty folder" else tmp_path / "fresh"
    code = synth_main(["--out", str(target), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "fresh").exists()


def test_cli_generates_and_reports_stats(tmp_path, capsys):
    out = tmp_path / "c"
    assert synth_main(["--out", str(out), "--n-scans", "2", "--size", "32", "--workers", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote 2 scans (train 2, val 0, test 0, test_zero 0)")
    assert synth_main(["--stats", str(out)]) == 0
    table = capsys.readouterr().out
    assert "lesion peak HU" in table and "blood-pool noise SD HU" in table
    assert table.splitlines()[1].split()[-1] == "2"  # scans
    # --split paper: the importer's rule, 2 positives -> 1 train, 1 val (demo above: 2 train)
    argv = ["--out", str(tmp_path / "p"), "--n-scans", "2", "--size", "32", "--workers", "1"]
    assert synth_main([*argv, "--split", "paper"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote 2 scans (train 1, val 1, test 0, test_zero 0)")


def test_cli_stats_bad_path_exit_2(tmp_path, capsys):
    assert synth_main(["--stats", str(tmp_path)]) == 2
    assert "neither a cohort folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def paper_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "paper"
    return generate_cohort(out, 10, seed=2, size=32, workers=1, split="paper")


def test_paper_split_rule_is_the_coca_importers(paper_cohort):
    """``split="paper"``: positives 70/10/20 by the importer's :func:`paper_splits` (stratified by
    risk category), zero-calcium scans to test_zero; synthetic.json records the rule."""
    rows = read_manifest(paper_cohort)
    agatston = {r.patient_id: r.ref["total"]["agatston"] for r in rows}
    # 10 scans, scans 4 and 9 calcium-free: 8 positives -> split_counts(8) = 5 / 1 / 2
    assert Counter(r.split for r in rows) == {"train": 5, "val": 1, "test": 2, "test_zero": 2}
    assert {r.patient_id for r in rows if r.split == "test_zero"} == {
        p for p, a in agatston.items() if a == 0.0
    }
    assert {r.patient_id: r.split for r in rows} == paper_splits(agatston, seed=2)
    # stratified: within each risk category every split holds its share to within one scan
    positive = [r for r in rows if r.split != "test_zero"]
    for cat in {risk_category(agatston[r.patient_id]) for r in positive}:
        per = Counter(r.split for r in positive if risk_category(agatston[r.patient_id]) == cat)
        n = sum(per.values())
        for split, share in zip(("train", "val", "test"), (5 / 8, 1 / 8, 2 / 8), strict=True):
            assert abs(per[split] - share * n) < 1.5, (cat, per)
    info = json.loads((paper_cohort.parent / "synthetic.json").read_text())
    assert info["split_rule"] == "paper"
    assert [s["split"] for s in info["scans"]] == [r.split for r in rows]


def test_demo_cohort_records_no_rule_and_is_not_reused_as_paper(cohort, paper_cohort):
    """A cohort made under one rule is refused under the other, in one line, and left as is."""
    demo_dir, paper_dir = cohort.parent, paper_cohort.parent
    assert "split_rule" not in json.loads((demo_dir / "synthetic.json").read_text())
    assert cohort_split_rule(demo_dir) == "demo" and cohort_split_rule(paper_dir) == "paper"
    before = (paper_dir / "manifest.csv").read_bytes()
    for folder, asked in ((demo_dir, "paper"), (paper_dir, "demo")):
        with pytest.raises(
            InputError, match=f"split by the '.*' rule, this run asks for '{asked}'"
        ):
            prepare_cohort(folder, generate=False, n_scans=5, seed=1, size=48, split=asked)
    with pytest.raises(InputError, match="split by the 'paper' rule"):
        prepare_cohort(paper_dir, generate=False, n_scans=10, seed=2, size=32)  # default: demo
    prepare_cohort(paper_dir, generate=False, n_scans=10, seed=2, size=32, split="paper")
    prepare_cohort(demo_dir, generate=False, n_scans=5, seed=1, size=48, split="demo")
    assert (paper_dir / "manifest.csv").read_bytes() == before
    with pytest.raises(InputError, match="unknown split rule 'coca'"):
        generate_cohort(demo_dir.parent / "new", 1, size=32, split="coca")

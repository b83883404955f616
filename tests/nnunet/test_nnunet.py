"""The nnU-Net v2 arm: export a synthetic cohort, plan and preprocess it with nnU-Net, and score
label maps in nnU-Net's output layout with our scorer (``cac-export-nnunet``,
``nnUNetv2_plan_and_preprocess``, ``cac-import-nnunet``).

No nnU-Net training runs here (it needs a GPU): the "predictions" are the reference label maps
themselves, written as ``nnUNetv2_predict`` writes them (the geometry of the case's input image),
and a copy with one vessel's calcium removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cac_lightning.cli.export_nnunet import main as export_main
from cac_lightning.cli.import_nnunet import main as import_main
from cac_lightning.io import read_label_map, read_volume
from cac_lightning.io.images import read_image_volume
from cac_lightning.io.manifest import read_manifest
from cac_lightning.scoring.config import DEFAULT_THRESHOLD_HU
from cac_lightning.sources.synthetic import generate_cohort
from cac_lightning.vessels import LABELS

DATASET_ID = 501
DATASET = f"Dataset{DATASET_ID}_CAC"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Six 80 px scans: 3 train, 1 val, 1 test, 1 test_zero (in-plane pixels finer than the
    3 mm slices, so nnU-Net's 2d configuration slices axially, as on real scans)."""
    out = tmp_path_factory.mktemp("nnunet") / "cohort"
    generate_cohort(out, 6, seed=1, size=80, workers=1)
    splits = sorted(r.split for r in read_manifest(out))
    assert splits == ["test", "test_zero", "train", "train", "train", "val"]
    return out


@pytest.fixture(scope="module")
def exported(cohort) -> Path:
    """``cac-export-nnunet COHORT OUT --dataset-id 501``: OUT."""
    out = cohort.parent / "nnunet_out"
    assert export_main([str(cohort), str(out), "--dataset-id", str(DATASET_ID)]) == 0
    return out


def test_export_writes_an_nnunet_raw_dataset(cohort, exported):
    raw = exported / "nnUNet_raw" / DATASET
    rows = read_manifest(cohort)
    ids = {s: [r.scan_id for r in rows if r.split == s] for s in ("train", "val")}
    tr = ids["train"] + ids["val"]
    ts = [r.scan_id for r in rows if r.split in ("test", "test_zero")]
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "zscore", "1": "noNorm"}
    assert meta["labels"] == {"background": 0, "LM": 1, "LAD": 2, "CX": 3, "RCA": 4} == LABELS
    assert meta["numTraining"] == len(tr) == 4
    assert meta["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (raw / "imagesTr").iterdir()) == sorted(
        f"{c}_{k:04d}.nii.gz" for c in tr for k in (0, 1)
    )
    assert sorted(p.name for p in (raw / "labelsTr").iterdir()) == sorted(f"{c}.nii.gz" for c in tr)
    assert sorted(p.name for p in (raw / "imagesTs").iterdir()) == sorted(
        f"{c}_{k:04d}.nii.gz" for c in ts for k in (0, 1)
    )
    splits = json.loads(
        (exported / "nnUNet_preprocessed" / DATASET / "splits_final.json").read_text()
    )
    assert splits == [{"train": ids["train"], "val": ids["val"]}]
    # every case: the CT in HU on the scan's grid, the >= threshold mask, the labels
    for row in rows:
        vol = read_volume(row.image)
        folder = "imagesTr" if row.scan_id in tr else "imagesTs"
        ct = read_image_volume(raw / folder / f"{row.scan_id}_0000.nii.gz")
        mask = read_image_volume(raw / folder / f"{row.scan_id}_0001.nii.gz")
        assert ct.geometry.same_grid(vol.geometry) and mask.geometry.same_grid(vol.geometry)
        np.testing.assert_array_equal(ct.hu, vol.hu)
        assert vol.kvp == 120.0  # the 120 kVp threshold
        np.testing.assert_array_equal(mask.hu, vol.hu >= DEFAULT_THRESHOLD_HU)
        if row.scan_id in tr:
            labels = read_label_map(raw / "labelsTr" / f"{row.scan_id}.nii.gz", vol.geometry)
            np.testing.assert_array_equal(labels, read_label_map(row.label, vol.geometry))


def test_nnunet_plans_and_preprocesses_the_export(exported):
    """nnU-Net verifies the dataset, plans a 2d configuration that slices axially with our
    channel normalisations, preprocesses every training case and keeps our fold 0."""
    pytest.importorskip("nnunetv2")
    pre = exported / "nnUNet_preprocessed" / DATASET
    splits_before = (pre / "splits_final.json").read_text()
    tool = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    entry = "plan_and_preprocess_entrypoints import plan_and_preprocess_entry as main; main()"
    cmd = (
        [str(tool)]
        if tool.exists()
        else [sys.executable, "-c", f"from nnunetv2.experiment_planning.{entry}"]
    )
    env = {
        **os.environ,
        "nnUNet_raw": str(exported / "nnUNet_raw"),
        "nnUNet_preprocessed": str(exported / "nnUNet_preprocessed"),
        "nnUNet_results": str(exported / "nnUNet_results"),
        "OMP_NUM_THREADS": "1",
    }
    args = ["-d", str(DATASET_ID), "-c", "2d", "--verify_dataset_integrity", "-np", "1"]
    proc = subprocess.run(
        [*cmd, *args, "-npfp", "1"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    assert plans["transpose_forward"] == [0, 1, 2]
    two_d = plans["configurations"]["2d"]
    assert two_d["normalization_schemes"] == ["ZScoreNormalization", "NoNormalization"]
    cases = [c for fold in json.loads(splits_before) for c in fold["train"] + fold["val"]]
    data = pre / two_d["data_identifier"]
    assert sorted({p.name.split(".")[0] for p in data.iterdir() if "_seg" not in p.name}) == sorted(
        cases
    )
    assert (pre / "splits_final.json").read_text() == splits_before
    # why the CT channel is not nnU-Net's "CT" scheme: its clip window comes from foreground
    # (calcium) voxels, which all lie at or above the threshold
    fingerprint = json.loads((pre / "dataset_fingerprint.json").read_text())
    ct = fingerprint["foreground_intensity_properties_per_channel"]["0"]
    assert ct["percentile_00_5"] >= DEFAULT_THRESHOLD_HU


def _write_predictions(
    exported: Path, cohort: Path, pred: Path, drop: dict[str, int], add: dict | None = None
) -> None:
    """Reference label maps as ``nnUNetv2_predict`` writes them: ``pred/<case>.nii.gz`` with the
    geometry of the case's ``imagesTs`` input, and its ``dataset.json``; ``drop``: case -> a
    label removed from that case's prediction; ``add``: case -> (bool mask, label) set."""
    import SimpleITK as sitk

    raw = exported / "nnUNet_raw" / DATASET
    pred.mkdir()
    shutil.copy(raw / "dataset.json", pred / "dataset.json")
    for row in read_manifest(cohort):
        if row.split not in ("test", "test_zero"):
            continue
        vol = read_volume(row.image)
        labels = read_label_map(row.label, vol.geometry)
        if row.scan_id in drop:
            labels = np.where(labels == drop[row.scan_id], 0, labels).astype(np.uint8)
        if add and row.scan_id in add:
            mask, value = add[row.scan_id]
            labels = np.where(mask, value, labels).astype(np.uint8)
        img = sitk.GetImageFromArray(labels)
        img.CopyInformation(sitk.ReadImage(str(raw / "imagesTs" / f"{row.scan_id}_0000.nii.gz")))
        sitk.WriteImage(img, str(pred / f"{row.scan_id}.nii.gz"), True)


def test_import_scores_nnunet_predictions_with_our_scorer(cohort, exported, tmp_path, capsys):
    rows = {r.scan_id: r for r in read_manifest(cohort)}
    test_id = next(k for k, r in rows.items() if r.split == "test")
    assert rows[test_id].ref_agatston > 0
    exact, perturbed = tmp_path / "exact", tmp_path / "perturbed"
    _write_predictions(exported, cohort, exact, {})
    lad = LABELS["LAD"]
    assert rows[test_id].ref["LAD"]["agatston"] > 0
    _write_predictions(exported, cohort, perturbed, {test_id: lad})

    runs = {}
    for name, pred in (("exact", exact), ("perturbed", perturbed)):
        run = tmp_path / f"run_{name}"
        argv = [str(pred), str(cohort), "--out", str(run), "--arm", f"nnunet_{name}"]
        assert import_main([*argv, "--seed", "3", "--heart", "off"]) == 0
        runs[name] = json.loads((run / "metrics.json").read_text())
        assert (run / "records.jsonl").is_file()
    out = capsys.readouterr().out
    assert f"{test_id} (test): Agatston" in out and "Agatston MAE, total" in out

    exact_run = runs["exact"]
    assert exact_run["arm"] == "nnunet_exact" and exact_run["seed"] == 3
    assert set(exact_run) >= {"headline", "metrics", "best_checkpoint", "scans"}
    assert sorted(exact_run["scans"]) == ["test", "test_zero"]
    for split, scans in exact_run["scans"].items():
        for s in scans:
            assert rows[s["scan_id"]].split == split
            assert s["pred"] == s["ref"]
            assert s["ref"]["total"] == pytest.approx(rows[s["scan_id"]].ref_agatston, rel=1e-6)
    assert exact_run["metrics"]["test/agatston_mae"] == 0.0
    assert exact_run["headline"]["test/agatston_mae"] == 0.0
    assert exact_run["metrics"]["test/dice"] == pytest.approx(1.0)
    assert exact_run["metrics"]["test_zero/zero_cac_flagged_rate"] == 0.0

    scan = next(s for s in runs["perturbed"]["scans"]["test"] if s["scan_id"] == test_id)
    assert scan["pred"]["LAD"] == 0.0 and scan["ref"]["LAD"] > 0
    assert scan["pred"]["total"] == pytest.approx(scan["ref"]["total"] - scan["ref"]["LAD"])
    assert runs["perturbed"]["metrics"]["test/agatston_mae"] == pytest.approx(scan["ref"]["LAD"])


def test_import_keeps_calcium_in_the_heart_as_our_predictor_does(cohort, exported, tmp_path):
    """Bright bone outside the heart called RCA: dropped by default (the Predictor's heart
    region), scored with ``--heart off``."""
    from cac_lightning.heart import find_heart

    row = next(r for r in read_manifest(cohort) if r.split == "test")
    vol = read_volume(row.image)
    region = find_heart(vol.hu, vol.geometry.spacing_zyx, method="auto")
    bone = (vol.hu >= 2 * DEFAULT_THRESHOLD_HU) & ~region.mask
    z = int(np.argmax(bone.sum(axis=(1, 2))))
    outside = np.zeros_like(bone)
    outside[z] = bone[z]
    assert outside.sum() >= 4
    exact, bone = tmp_path / "exact", tmp_path / "bone"
    _write_predictions(exported, cohort, exact, {})
    _write_predictions(exported, cohort, bone, {}, {row.scan_id: (outside, LABELS["RCA"])})
    pred = {}
    for name, folder in (("exact", exact), ("bone", bone)):
        for heart in ("default", "off"):
            run = tmp_path / f"run_{name}_{heart}"
            argv = [str(folder), str(cohort), "--out", str(run), "--arm", "nn", "--split", "test"]
            assert import_main(argv + ([] if heart == "default" else ["--heart", heart])) == 0
            summary = json.loads((run / "metrics.json").read_text())
            assert summary["source"]["heart"] == ("auto" if heart == "default" else "off")
            (scan,) = summary["scans"]["test"]
            pred[name, heart] = scan["pred"]["total"]
    assert pred["exact", "off"] == pytest.approx(row.ref_agatston)
    assert pred["bone", "off"] > pred["exact", "off"]
    assert pred["bone", "default"] == pred["exact", "default"]


# -- bad input: one line, exit 2, nothing written ---------------------------------------------


def test_export_refuses_what_it_cannot_write(cohort, exported, tmp_path, capsys):
    before = _tree(exported)
    again = [str(cohort), str(exported), "--dataset-id", str(DATASET_ID), "--name", "Other"]
    assert export_main(again) == 2
    assert "already exists" in _one_line(capsys)
    assert _tree(exported) == before

    out = tmp_path / "out"
    cases = {
        "not a dataset": ([str(tmp_path), str(out), "--dataset-id", "7"], "no manifest"),
        "id 0": ([str(cohort), str(out), "--dataset-id", "0"], "1..999"),
        "id 1000": ([str(cohort), str(out), "--dataset-id", "1000"], "1..999"),
        "bad name": ([str(cohort), str(out), "--dataset-id", "7", "--name", "a/b"], "name"),
    }
    for argv, says in cases.values():
        assert export_main(argv) == 2
        assert says in _one_line(capsys)
        assert not out.exists()


def test_export_needs_a_val_split(cohort, tmp_path, capsys):
    text = (cohort / "manifest.csv").read_text().replace(",val,", ",train,")
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.csv").write_text(
        text.replace("images/", f"{cohort}/images/").replace("labels/", f"{cohort}/labels/")
    )
    assert export_main([str(data), str(tmp_path / "out"), "--dataset-id", "7"]) == 2
    assert "0 val" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_import_refuses_missing_or_misfit_predictions(cohort, exported, tmp_path, capsys):
    rows = read_manifest(cohort)
    test_ids = [r.scan_id for r in rows if r.split in ("test", "test_zero")]
    pred = tmp_path / "pred"
    _write_predictions(exported, cohort, pred, {})
    run = tmp_path / "run"

    (pred / f"{test_ids[0]}.nii.gz").rename(tmp_path / "kept.nii.gz")
    assert import_main([str(pred), str(cohort), "--out", str(run), "--arm", "nn"]) == 2
    line = _one_line(capsys)
    assert "no .nii.gz prediction for 1 of 2 scans" in line and test_ids[0] in line
    assert not run.exists()

    # a prediction on another grid (the scan shifted by 5 mm)
    import SimpleITK as sitk

    img = sitk.ReadImage(str(tmp_path / "kept.nii.gz"))
    img.SetOrigin(tuple(v + 5.0 for v in img.GetOrigin()))
    sitk.WriteImage(img, str(pred / f"{test_ids[0]}.nii.gz"), True)
    assert import_main([str(pred), str(cohort), "--out", str(run), "--arm", "nn"]) == 2
    assert "does not match the image grid: origin" in _one_line(capsys)
    assert not run.exists()

    (tmp_path / "kept.nii.gz").replace(pred / f"{test_ids[0]}.nii.gz")
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    assert import_main([str(pred), str(cohort), "--out", str(run), "--arm", "nn"]) == 2
    assert "not empty" in _one_line(capsys)
    assert _tree(run) == ["notes.txt"] and (run / "notes.txt").read_text() == "mine"

    argv = [str(pred), str(cohort), "--out", str(tmp_path / "r2"), "--arm", "nn"]
    assert import_main([*argv, "--split", "val"]) == 2  # nnU-Net's val predictions not given
    assert "no .nii.gz prediction for 1 of 1 scans" in _one_line(capsys)
    assert import_main([str(tmp_path / "nowhere"), *argv[1:]]) == 2
    assert "does not exist" in _one_line(capsys)
    assert not (tmp_path / "r2").exists()

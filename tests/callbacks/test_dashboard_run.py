"""A smoke run on PHI-stamped DICOM logs the dashboard to an offline W&B run, and no PHI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest

from cac_lightning.cli.train import train

PHI = ("Doe^Jane^PHI", "PHI-ID-4711", "19450317", "ACC-PHI-99")


@pytest.fixture(scope="module")
def phi_dataset(tmp_path_factory):
    """The smoke cohort rewritten as DICOM series whose headers carry patient data."""
    from cac_lightning.io import read_volume
    from cac_lightning.io.dicom_write import write_dicom_series
    from cac_lightning.io.manifest import read_manifest, write_manifest
    from cac_lightning.sources.synthetic import generate_cohort

    root = tmp_path_factory.mktemp("phi")
    cohort = generate_cohort(root / "synthetic", 8, seed=0, size=64, workers=1)
    rows = []
    for i, row in enumerate(read_manifest(cohort)):
        vol = read_volume(row.image)
        folder = write_dicom_series(
            vol.hu, vol.geometry, root / "dicom" / f"series{i}", patient_id=PHI[1]
        )
        for f in sorted(folder.glob("*.dcm")):
            ds = pydicom.dcmread(f)
            ds.PatientName, ds.PatientBirthDate, ds.AccessionNumber = PHI[0], PHI[2], PHI[3]
            ds.save_as(f)
        rows.append(dataclasses.replace(row, image=folder))
    write_manifest(root / "manifest.csv", rows)
    return root


def test_dashboard_in_offline_run_without_phi(train_cfg, phi_dataset):
    from cac_lightning.evaluation.wandb_file import find_run_files, read_run
    from cac_lightning.io.manifest import read_manifest

    cfg = train_cfg(["data=manifest", f"data.data_dir={phi_dataset}", "logger=[csv,wandb]"])
    train(cfg)
    import wandb

    wandb.finish()
    out = Path(cfg.paths.output_dir)
    (run_file,) = find_run_files(out)
    run = read_run(run_file, wait_s=60)
    n_test = sum(r.split == "test" for r in read_manifest(phi_dataset))
    assert run.logged("test/scans/nrows") == [n_test]
    assert any(k.startswith("test/risk_confusion") for k in run.history_keys)
    assert run.logged("test/bland_altman/_type") == ["image-file"]
    meta = run.config["run_meta"]
    assert meta["data"]["n_scans"]["test"] == n_test and meta["data"]["kvp"] == [120]
    assert meta["model"]["params"] > 0 and meta["model"]["gflops_per_slice_512"] > 0
    assert "git_commit" in meta
    assert "val/agatston_mae_best" in run.summary
    assert "model.net.name" in run.config  # flattened config for parallel coordinates
    assert (out / "dashboard" / "scans_test.csv").is_file()
    leaked = [
        (p.relative_to(out), s)
        for p in out.rglob("*")
        if p.is_file()
        for s in PHI
        if s.encode() in p.read_bytes()
    ]
    assert not leaked

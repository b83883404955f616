"""A manifest dataset never generates anything: a missing manifest is one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cac_lightning.data.datamodule import CACDataModule
from cac_lightning.errors import InputError


def test_manifest_dataset_never_generates(tmp_path):
    empty = tmp_path / "coca"
    empty.mkdir()
    dm = CACDataModule(str(empty), synthetic=None)
    for step in (dm.check_source, dm.prepare_data, dm.setup):
        with pytest.raises(InputError, match=rf"cac-import-coca COCA_ROOT --out {empty}"):
            step()
    assert list(empty.iterdir()) == []


def test_paper_experiment_on_an_empty_coca_folder_is_one_line(tmp_path):
    """`cac-train experiment=paper_unetplusplus data=coca data.data_dir=EMPTY`: exit 2, one line."""
    empty = tmp_path / "EMPTY"
    empty.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cac_lightning.cli.train",
            "experiment=paper_unetplusplus",
            "data=coca",
            f"data.data_dir={empty}",
            "logger=csv",
            f"paths.log_dir={tmp_path / 'logs'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert err[-1] == (
        f"cac-train: error: no manifest at {empty}/manifest.csv: import the COCA scans with "
        f"`cac-import-coca COCA_ROOT --out {empty}` (or make a synthetic cohort with cac-synth, "
        "or use data=synthetic)"
    )
    assert list(empty.iterdir()) == []  # nothing generated, nothing cached

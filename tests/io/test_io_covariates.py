"""The covariates CSV of `cac-score --covariates` (cac_lightning.io.covariates)."""

from __future__ import annotations

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.io.covariates import read_covariates
from cac_lightning.volume import Geometry, Volume


def _vol(source: str, uid: str | None = None) -> Volume:
    g = Geometry((1, 1, 1), (1.0, 1.0), 1.0)
    return Volume(np.zeros((1, 1, 1), np.int16), g, series_uid=uid, source=source)


def test_rows_found_by_path_uid_or_scan_id(tmp_path):
    (tmp_path / "scans" / "a").mkdir(parents=True)
    csv = tmp_path / "cov.csv"
    csv.write_text(
        "path,series_uid,scan_id,age,sex,ethnicity,hdl\n"
        "scans/a,,,50,F,white,\n"
        ",1.2.3,,060Y,M,black,45\n"
        ",,case7,70,m,Chinese,\n"
    )
    t = read_covariates(csv)
    a = t.lookup(_vol(str(tmp_path / "scans" / "a")))
    assert (a.age, a.sex, a.ethnicity, a.hdl) == (50.0, "F", "white", None)
    b = t.lookup(_vol("/elsewhere/x", uid="1.2.3"))
    assert (b.age, b.sex, b.ethnicity, b.hdl) == (60.0, "M", "black", 45.0)
    assert t.lookup(_vol("/data/case7")).ethnicity == "chinese"
    assert t.lookup(_vol("/data/unknown")) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("age,sex\n50,F\n", "needs a column path, series_uid, scan_id"),
        ("scan_id,sex\ns1,Q\n", "line 2: invalid sex"),
        ("scan_id,smoker\ns1,sometimes\n", "line 2: column smoker must be 0 or 1"),
    ],
)
def test_bad_csv_names_line_and_column_not_value(tmp_path, body, message):
    csv = tmp_path / "cov.csv"
    csv.write_text(body)
    with pytest.raises(InputError, match=message) as err:
        read_covariates(csv)
    assert "'Q'" not in str(err.value) and "sometimes" not in str(err.value)

"""The report directory: files written, parseable, atomic, never over user data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.evaluation.records import NOT_DETECTED, ScanRecord
from cac_lightning.evaluation.report import json_safe, markdown_report, write_report
from cac_lightning.evaluation.tables import tables_by_split

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records(make_record):
    return [
        make_record("s1", 0, 0, tp=0, fp=0, fn=0),
        make_record("s2", 12, 15, tp=10, fp=2, fn=1, lesions=[("LAD", "LAD")]),
        make_record(
            "s3", 150, 140, tp=30, fp=1, fn=3, lesions=[("RCA", "RCA"), ("LM", NOT_DETECTED)]
        ),
        make_record("s4", 600, 620, tp=90, fp=5, fn=4, lesions=[("CX", "CX")]),
        make_record("z1", 0, 0, split="test_zero"),
        make_record("z2", 0, 3, split="test_zero"),
    ]


def _strict_json(text: str):
    def reject(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def test_write_report_files(tmp_path, make_record):
    out = write_report(
        tmp_path / "report",
        _records(make_record),
        title="Hand cases",
        settings={"scoring": {"mode": "per-slice"}},
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "metrics.json",
            "report.md",
            "records.jsonl",
            *(
                f"{kind}_{split}.png"
                for kind in ("bland_altman", "risk_confusion", "scatter")
                for split in ("test", "test_zero")
            ),
        ]
    )
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
    metrics = _strict_json((out / "metrics.json").read_text())
    assert metrics["title"] == "Hand cases"
    assert metrics["settings"]["scoring"]["mode"] == "per-slice"
    test = metrics["splits"]["test"]
    assert test["n_scans"] == 4
    assert test["table7"]["matrix"][2][2] == 1  # s2: C3 -> C3
    assert test["table4"]["matrix"] == [[1, 0], [0, 3]]
    assert test["table5"]["matrix"][4][0] == 1 and test["table5"]["matrix"][4][4] is None
    zero = metrics["splits"]["test_zero"]
    assert zero["zero_calcium"]["flagged"] == ["z2"]
    assert zero["table6"]["LM"]["agatston"]["icc"] is None  # nan -> null
    lines = (out / "records.jsonl").read_text().splitlines()
    assert [ScanRecord.from_dict(_strict_json(x)).scan_id for x in lines] == [
        "s1",
        "s2",
        "s3",
        "s4",
        "z1",
        "z2",
    ]
    md = (out / "report.md").read_text()
    assert md.startswith("# Hand cases")
    for heading in ("Table 3", "Table 4", "Table 5", "Table 6", "Table 7", "Bland–Altman"):
        assert heading in md
    assert "![bland_altman_test.png](bland_altman_test.png)" in md
    assert "1 of 2 scans with reference Agatston 0 have predicted calcium: `z2`" in md
    assert not list(tmp_path.glob(".report.*"))  # no temporary folder left behind


def test_write_report_refuses_existing_folder(tmp_path, make_record):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(InputError):
        write_report(out, _records(make_record), plots=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(InputError):
        write_report(tmp_path / "empty_records", [], plots=False)
    assert not (tmp_path / "empty_records").exists()


def test_write_report_into_empty_folder_without_plots(tmp_path, make_record):
    out = tmp_path / "empty"
    out.mkdir()
    write_report(out, _records(make_record)[:2], plots=False)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "records.jsonl", "report.md"]


def test_markdown_mirrors_tables(make_record):
    tables = tables_by_split(_records(make_record)[:4])
    md = markdown_report(tables, title="T")
    t7 = tables["test"]["table7"]
    assert f"Cohen's kappa: {t7['kappa']['kappa']:.3f}" in md
    assert "| Overall |" in md and "| LM |" in md
    assert "| not detected | 1 | 0 | 0 | 0 | – |" in md


def test_json_safe():
    data = {
        "a": float("nan"),
        "b": np.float32(1.5),
        "c": (np.int64(2), math.inf),
        "d": np.array([1, 2]),
        "e": np.bool_(True),
    }
    assert json_safe(data) == {"a": None, "b": 1.5, "c": [2, None], "d": [1, 2], "e": True}
    json.dumps(json_safe(data), allow_nan=False)

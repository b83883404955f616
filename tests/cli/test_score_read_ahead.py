"""`cac-score` over many scans reads the next scan while the current one is scored
(``--read-ahead``): the same results as reading in turn, errors at their own scan."""

from __future__ import annotations

import json
import threading
import time

import pytest

from cac_lightning.cli.batch import read_ahead
from cac_lightning.cli.score import main


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_read_ahead_keeps_the_order_and_raises_at_the_failing_item(depth):
    def read(i):
        if i == 2:
            raise OSError("unreadable")
        return i * 10

    got = []
    for item, future in read_ahead(list(range(5)), read, depth):
        try:
            got.append((item, future.result()))
        except OSError:
            got.append((item, "error"))
    assert got == [(0, 0), (1, 10), (2, "error"), (3, 30), (4, 40)]


def test_the_next_read_runs_while_the_current_item_is_worked_on():
    started: dict[int, float] = {}

    def read(i):
        started[i] = time.perf_counter()
        return threading.current_thread().name

    taken = {}
    for item, future in read_ahead([0, 1, 2], read, depth=1):
        taken[item] = time.perf_counter()
        assert future.result().startswith("cac-read")  # read off the main thread
        time.sleep(0.2)  # "inference"
    assert started[1] < taken[0] + 0.2 and started[2] < taken[1] + 0.2


def test_depth_zero_reads_each_item_only_when_taken():
    started: dict[int, float] = {}
    taken = {}
    for item, future in read_ahead([0, 1], lambda i: started.setdefault(i, time.perf_counter()), 0):
        taken[item] = time.perf_counter()
        future.result()
        time.sleep(0.1)
    assert started[1] >= taken[0] + 0.1


def _results(out):
    reports = {}
    for js in sorted(out.glob("*.json")):
        report = json.loads(js.read_text())
        report.pop("timing_s")
        reports[js.name] = report
    return reports


def test_folder_with_and_without_read_ahead_scores_the_same(
    tmp_path, lad_ckpt, capsys, make_small_series
):
    series = [make_small_series(tmp_path / f"s{i}", i, calcified_slices=1 + i) for i in range(3)]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.dcm").write_bytes(b"not dicom")
    inputs = [str(series[0]), str(broken), str(series[1]), str(series[2])]
    outs = {}
    for depth in ("0", "2"):
        out = tmp_path / f"out{depth}"
        args = [*inputs, "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
        assert main([*args, "--read-ahead", depth, "--heart", "off"]) == 1
        cap = capsys.readouterr()
        errors = [ln for ln in cap.err.splitlines() if "cac-score: error:" in ln]
        assert len(errors) == 1 and str(broken) in errors[0] and "Traceback" not in cap.err
        assert "3 scored, 1 failed" in cap.out
        outs[depth] = _results(out)
    assert len(outs["0"]) == 3 and outs["0"] == outs["2"]
    sha = {r["model"]["checkpoint_sha256"] for r in outs["2"].values()}
    assert len(sha) == 1 and len(sha.pop()) == 16  # recorded once for the batch


def test_negative_read_ahead_is_one_line_and_writes_nothing(
    tmp_path, lad_ckpt, capsys, make_small_series
):
    series = make_small_series(tmp_path / "s", 0)
    out = tmp_path / "out"
    args = [str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--read-ahead", "-1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--read-ahead" in err[0]
    assert not out.exists()

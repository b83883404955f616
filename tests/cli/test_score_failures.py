"""`cac-score` when writing fails or --out is a bad place: one line per scan, nothing partial."""

from __future__ import annotations

import csv
import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from cac_lightning.cli.score import main


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted: list[Path] = []

    def make(name: str, options: str) -> Path:
        where = tmp_path / name
        if not _mount_tmpfs(where, options):
            pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def _one_line_errors(err: str) -> list[str]:
    lines = [ln for ln in err.splitlines() if "cac-score: error:" in ln]
    assert "Traceback" not in err
    return lines


def _clean(out: Path) -> list[str]:
    """Names in ``out`` apart from the lock file; no staging folder may be left."""
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".partial")], names
    return [n for n in names if n != ".scores.csv.lock"]


def test_disk_full_one_line_batch_continues_nothing_partial(
    tmp_path, tmpfs, lad_ckpt, capsys, make_small_series
):
    """Item 5: ENOSPC on the second scan's PNGs; the first and third are complete."""
    a = make_small_series(tmp_path / "a", 1, calcified_slices=1)
    b = make_small_series(tmp_path / "b", 2, calcified_slices=14)  # ~15 PNGs: does not fit
    c = make_small_series(tmp_path / "c", 3, calcified_slices=1)
    out = tmpfs("small", "size=128k")
    args = [str(a), str(b), str(c), "--ckpt", str(lad_ckpt), "--out", str(out), "--overlays"]
    assert main([*args, "--device", "cpu"]) == 1
    cap = capsys.readouterr()
    errors = _one_line_errors(cap.err)
    assert len(errors) == 1 and str(b) in errors[0] and "No space left" in errors[0]
    assert "2 scored, 1 failed" in cap.out
    names = _clean(out)
    assert not [n for n in names if n.startswith("b-")], names  # nothing of b
    for sid in ("a-", "c-"):
        (json_name,) = [n for n in names if n.startswith(sid) and n.endswith(".json")]
        pngs = sorted(p.name for p in (out / f"{json_name[:-5]}_overlays").iterdir())
        assert pngs == ["slice_001.png", "summary.png"]
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert sorted(r["scan_id"][:2] for r in rows) == ["a-", "c-"]


def test_permission_denied_on_one_scan(tmp_path, lad_ckpt, capsys, make_small_series, monkeypatch):
    """Item 5: EACCES while writing one scan's overlays (simulated: root ignores modes)."""
    import cac_lightning.inference.outputs as outputs

    real_save = outputs._save

    def save(fig, path):
        if Path(path).parent.name.startswith("b-"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_save(fig, path)

    monkeypatch.setattr(outputs, "_save", save)
    a = make_small_series(tmp_path / "a", 1)
    b = make_small_series(tmp_path / "b", 2)
    out = tmp_path / "out"
    args = [str(b), str(a), "--ckpt", str(lad_ckpt), "--out", str(out), "--overlays"]
    assert main([*args, "--save-labels", "--device", "cpu"]) == 1
    cap = capsys.readouterr()
    errors = _one_line_errors(cap.err)
    assert len(errors) == 1 and "Permission denied" in errors[0] and str(b) in errors[0]
    assert "1 scored, 1 failed" in cap.out
    names = _clean(out)
    assert not [n for n in names if n.startswith("b-")]
    assert len([n for n in names if n.startswith("a-")]) == 3  # json, labels, overlays


@pytest.mark.parametrize("case", ["below_file", "link_loop", "read_only"])
def test_bad_out_folder_is_one_line(tmp_path, tmpfs, case, capsys, make_small_series):
    """Item 5: --out below a regular file (ENOTDIR), a symlink loop (ELOOP), not writable."""
    from cac_lightning.io import read_volume, write_label_map

    folder = make_small_series(tmp_path / "s", 1)
    vol = read_volume(folder)
    mask = write_label_map((vol.hu > 130).astype("uint8"), vol.geometry, tmp_path / "m.nii.gz")
    if case == "below_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
    elif case == "link_loop":
        out = tmp_path / "loop"
        out.symlink_to(out)
        out = out / "sub"
    else:
        out = tmpfs("ro", "size=64k,ro")
    assert main([str(folder), "--mask", str(mask), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cac-score: error:") and str(out) in err[0]


def test_stale_staging_folder_of_killed_run_is_removed(tmp_path, make_small_series):
    """Item 7 for cac-score: a killed run's staging folder goes on the next run."""
    from cac_lightning.io import read_volume, write_label_map

    folder = make_small_series(tmp_path / "s", 1)
    vol = read_volume(folder)
    mask = write_label_map((vol.hu > 130).astype("uint8"), vol.geometry, tmp_path / "m.nii.gz")
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out"
    stale = out / f".partial-{dead.pid}-abc.tmp"
    stale.mkdir(parents=True)
    (stale / "x.json").write_text("{}")
    assert main([str(folder), "--mask", str(mask), "--out", str(out)]) == 0
    assert not stale.exists() and len(list(out.glob("*.json"))) == 1


def test_single_scan_write_failure_exits_2(
    tmp_path, lad_ckpt, capsys, make_small_series, monkeypatch
):
    """One scan with --ckpt that cannot be written: one error line and exit code 2, as --mask."""
    import cac_lightning.io.scan_outputs as so

    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(so.ScanOutputs, "commit", full)
    folder = make_small_series(tmp_path / "s", 1)
    out = tmp_path / "out"
    args = [str(folder), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main(args) == 2
    cap = capsys.readouterr()
    assert len(_one_line_errors(cap.err)) == 1 and "No space left" in cap.err
    assert _clean(out) == []

"""Item 7: pool workers die with their parent; a killed run's temp folders go on the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cac_lightning.io.atomic import atomic_dir, remove_stale_temps

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _start_synth(out: Path) -> subprocess.Popen:
    args = ["--out", str(out), "--n-scans", "40", "--size", "128", "--workers", "2"]
    code = "import sys; from cac_lightning.cli.synth import main; main(sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _temps(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


def _started(proc: subprocess.Popen, out: Path) -> list[int]:
    assert _wait(lambda: len(_children(proc.pid)) >= 2 and _temps(out), 120), "no workers"
    assert _wait(lambda: any(p.is_dir() for p in (_temps(out)[0] / "images").glob("*")), 120)
    return _children(proc.pid)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_cac_synth_workers_die_with_parent(tmp_path, sig):
    out = tmp_path / "cohort"
    proc = _start_synth(out)
    workers: list[int] = []
    try:
        workers = _started(proc, out)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        assert _wait(lambda: not any(_alive(w) for w in workers), 15), "orphaned workers"
        temps = _temps(out)
        if sig == signal.SIGTERM:
            assert proc.returncode != 0 and not temps  # cleaned up on the way out
            assert not out.exists()
            return
        assert temps, "SIGKILL leaves the temp folder"
        size = sum(p.stat().st_size for p in temps[0].rglob("*") if p.is_file())
        time.sleep(1.0)  # nobody writes into it any more
        assert sum(p.stat().st_size for p in temps[0].rglob("*") if p.is_file()) == size
        # The next run of the same command removes the debris and writes the cohort.
        from cac_lightning.sources.synthetic import generate_cohort

        generate_cohort(out, 2, seed=0, size=32, workers=1)
        assert not _temps(out) and (out / "manifest.csv").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # a failing run must not leave orphans either
            if _alive(w):
                os.kill(w, signal.SIGKILL)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_of_a_killed_cache_build_is_removed(tmp_path):
    from cac_lightning.data.cache import build_entry, cache_key
    from cac_lightning.io.manifest import read_manifest
    from cac_lightning.sources.synthetic import generate_cohort

    manifest = generate_cohort(tmp_path / "c", 1, seed=0, size=32, workers=1)
    (row,) = read_manifest(manifest)
    cache = tmp_path / "cache"
    entry = cache / cache_key(row)
    stale = cache / f".{entry.name}.{_dead_pid()}-abcd.tmp"
    (stale / "hu.npy").parent.mkdir(parents=True)
    (stale / "hu.npy").write_bytes(b"\0" * 1000)
    live = cache / f".{entry.name}.{os.getpid() + 0}-live.tmp"  # ours: still running
    live.mkdir()
    assert build_entry(row, cache) == entry
    assert not stale.exists() and live.exists()


def test_remove_stale_temps_keeps_live_writers(tmp_path):
    target = tmp_path / "out"
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".out.{parent.pid}-x.tmp"
        dead = tmp_path / f".out.{_dead_pid()}-y.tmp"
        other = tmp_path / f".outer.{_dead_pid()}-z.tmp"
        for d in (live, dead, other):
            d.mkdir()
        assert remove_stale_temps(target) == [dead]
        assert live.exists() and other.exists()
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("a")
        assert (target / "a").read_text() == "a"
    finally:
        parent.kill()
        parent.wait()

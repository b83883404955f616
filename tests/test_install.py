"""Works as an installed package: a wheel with the configs, a fresh venv, commands from anywhere.

How (offline, and the same on a fresh machine): the wheel is built from a copy of this source
tree (package, ``conf/``, ``pyproject.toml``, ``setup.py``, README) with
``pip wheel --no-deps --no-build-isolation`` by the interpreter running the tests; a new venv
(``python -m venv``, nothing inherited) gets it with ``pip install --no-deps``, and a ``.pth``
file in the new venv adds the running interpreter's site-packages *after* its own, so the
already-installed dependencies (torch, Lightning, ...) are importable without a network while
``cac_lightning`` itself can only come from the installed wheel (asserted). Then
``cac-train experiment=smoke`` runs from a folder outside the repository, with no
``PYTHONPATH`` and no ``CAC_CONF_DIR``: Hydra finds the configs inside the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CAC_", "VIRTUAL"))}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", HOME=str(tmp), PIP_NO_INDEX="1")
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
    )
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    env = _clean_env(build)
    # Build from a copy, so setuptools' build/ and egg-info never land in the source tree.
    src = build / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for folder in ("cac_lightning", "conf"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        cwd=build,
        env=env,
    )  # fmt: skip
    wheels = list(out.glob("cac_lightning-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("cac_lightning/conf/") and n.endswith(".yaml")}
    in_tree = {
        "cac_lightning/conf/" + p.relative_to(ROOT / "conf").as_posix()
        for p in (ROOT / "conf").rglob("*.yaml")
    }
    assert in_tree and shipped == in_tree
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_fresh_venv_runs_smoke_from_outside_the_repository(wheel, tmp_path):
    env = _clean_env(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, env=env)
    py = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    )
    # Dependencies from the running interpreter, after the venv's own packages.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([str(py), "-m", "pip", "install", "--no-deps", str(wheel)], cwd=tmp_path, env=env)

    where = _run(
        [
            str(py),
            "-c",
            "import cac_lightning, cac_lightning.config as c; "
            "print(cac_lightning.__file__); print(c.CONF_DIR)",
        ],
        cwd=tmp_path,
        env=env,
    ).split()
    assert all(Path(p).is_relative_to(venv) for p in where[:2]), where

    work = tmp_path / "elsewhere"
    work.mkdir()
    out = _run([str(venv / "bin" / "cac-train"), "experiment=smoke"], cwd=work, env=env)
    assert (work / "data").is_dir(), out[-2000:]
    assert list((work / "outputs").rglob("*.ckpt")), "no checkpoint written"
    summaries = list((work / "outputs").rglob("metrics.json"))
    assert summaries and "test/" in summaries[0].read_text()

"""Run folders of sweeps, gathered as arms × seeds for ``cac-compare``.

A folder is one of:

- a **finished job** of a Hydra multirun: ``metrics.json`` (``cac-train``'s summary) and
  ``.hydra/`` (``config.yaml``, ``overrides.yaml``);
- an **external run**: a ``metrics.json`` with ``"arm"`` and ``"seed"`` keys and no ``.hydra/``
  (what ``cac-import-nnunet`` writes);
- a **failed job**: ``failed.json`` (:func:`write_failure`: error type, one-line message,
  overrides), written by ``cac-train`` when a multirun job raises;
- an **unfinished job**: ``.hydra/`` and neither file (still running, killed, or ``test=false``).

A job's arm is read from its ``.hydra/overrides.yaml``: every override key whose value differs
between the gathered jobs, ``seed`` and ``hydra.*`` aside, defines the arm (:func:`arm_labels`):
``model/net=smp_fpn`` gives the arm ``smp_fpn``, ``model/net=unet model.optimizer.lr=0.001``
gives ``unet lr=0.001``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from cac_lightning.io.atomic import atomic_write_text

__all__ = [
    "EPOCH_SECONDS_KEY",
    "SPEED_KEY",
    "TIMING_KEYS",
    "VAL_SHARE_KEY",
    "FAILED_FILE",
    "FailedJob",
    "Gathered",
    "Run",
    "arm_labels",
    "gather",
    "parse_overrides",
    "write_failure",
]

SPEED_KEY = "train/slices_per_s"
"""Training slices per second (callbacks/throughput.py), a column of cac-compare's leaderboard."""
EPOCH_SECONDS_KEY = "time/epoch_s"
"""Wall seconds of the last training epoch, its validation included (callbacks/throughput.py)."""
VAL_SHARE_KEY = "time/val_share"
"""The share of that epoch's wall time spent in validation (callbacks/throughput.py)."""
TIMING_KEYS: tuple[str, ...] = (SPEED_KEY, EPOCH_SECONDS_KEY, VAL_SHARE_KEY)
"""A run's metrics that are wall-clock measurements: they differ between runs of the same seed;
every other metric is reproducible on the same machine."""

FAILED_FILE = "failed.json"
METRICS_FILE = "metrics.json"
SEED_KEY = "seed"


def one_line(err: BaseException, limit: int = 300) -> str:
    """The first non-empty line of ``err``'s message (its type name when it has none)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_failure(folder: str | Path, err: BaseException, overrides: list[str]) -> Path:
    """Write ``folder/failed.json``: ``{"error": type name, "message": one line, "overrides"}``."""
    path = Path(folder) / FAILED_FILE
    record = {"error": type(err).__name__, "message": one_line(err), "overrides": overrides}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Run:
    """One finished run: an arm at a seed.

    Attributes:
        arm: the arm's label.
        seed: the training seed (an external run's ``"seed"``).
        dir: the run folder.
        group: the W&B group of the run ("" for an external run).
        metrics: the flat metrics of ``metrics.json``.
        scans: per split, the per-scan records of ``metrics.json``.
        net: the network's name in the job's config ("" for an external run).
    """

    arm: str
    seed: int
    dir: str
    group: str = ""
    metrics: dict = field(default_factory=dict)
    scans: dict = field(default_factory=dict)
    net: str = ""


@dataclass(frozen=True)
class FailedJob:
    """A job without a result: ``error`` is the exception type, or ``unfinished``."""

    arm: str
    seed: int | None
    dir: str
    error: str
    message: str


@dataclass
class Gathered:
    """What :func:`gather` found: finished runs, failed jobs, and notes on what was left out."""

    runs: list[Run]
    failed: list[FailedJob]
    notes: list[str]


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """``["model/net=unet", "+x.y=1", "~z"]`` -> ``{"model/net": "unet", "x.y": "1", "z": "~"}``."""
    out = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        deleted = key.startswith("~")
        out[key.lstrip("+~")] = value if sep else ("~" if deleted else "")
    return out


def _arm_key(key: str) -> bool:
    return key != SEED_KEY and not key.startswith(("hydra.", "hydra/"))


def arm_labels(jobs: list[dict[str, str]]) -> list[str | None]:
    """A readable arm label per job, from the override keys whose value differs between jobs.

    A config-group key (``model/net``) shows its value, a dotted key its last part and value
    (``lr=0.001``), a key a job does not set ``=default``; parts are joined by spaces in the
    order the keys first appear. Where short labels would merge different arms, every part is
    ``full.key=value``. None for every job when no key differs.
    """
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job if _arm_key(k) and k not in keys]
    varying = [k for k in keys if len({job.get(k) for job in jobs}) > 1]
    if not varying:
        return [None] * len(jobs)

    def part(key: str, value: str | None, full: bool) -> str:
        shown = "default" if value is None else value
        if full:
            return f"{key}={shown}"
        if "." in key:
            return f"{key.rsplit('.', 1)[1]}={shown}"
        return value if value is not None else f"{key.rsplit('/', 1)[-1]}=default"

    values = [tuple(job.get(k) for k in varying) for job in jobs]
    for full in (False, True):
        labels = [
            " ".join(part(k, v, full) for k, v in zip(varying, vs, strict=True)) for vs in values
        ]
        if len(set(labels)) == len(set(values)):
            break
    return labels


def _load_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when the file is missing; ``{"unreadable": True}``
    when it is not a JSON object."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    return data if isinstance(data, dict) else {"unreadable": True}


def _folders(roots: list[Path]) -> list[Path]:
    """Every folder under ``roots`` (the roots included) holding a run file or ``.hydra/``."""
    found = set()
    for root in roots:
        for pattern in (METRICS_FILE, FAILED_FILE, ".hydra"):
            found.update(p.parent for p in root.rglob(pattern))
    return sorted(found)


@dataclass
class _Job:
    """A Hydra job folder as read: overrides, seed, group, net, and its result files."""

    folder: Path
    overrides: dict[str, str]
    seed: int | None
    group: str
    net: str | None
    summary: dict | None
    failure: dict | None


def _hydra_job(folder: Path, summary: dict | None, failure: dict | None) -> _Job:
    """Read a Hydra job folder; without ``overrides.yaml`` the net of its ``config.yaml``
    stands for the arm, and ``failed.json``'s overrides win over ``overrides.yaml``."""
    from omegaconf import OmegaConf

    hydra = folder / ".hydra"
    cfg = OmegaConf.load(hydra / "config.yaml") if (hydra / "config.yaml").is_file() else None
    net = OmegaConf.select(cfg, "model.net.name", default=None) if cfg is not None else None
    net = None if net is None else str(net)
    if failure is not None and isinstance(failure.get("overrides"), list):
        overrides = parse_overrides(failure["overrides"])
    elif (hydra / "overrides.yaml").is_file():
        overrides = parse_overrides(list(OmegaConf.load(hydra / "overrides.yaml")))
    else:
        overrides = {"model/net": net} if net is not None else {}
    seed = OmegaConf.select(cfg, SEED_KEY, default=None) if cfg is not None else None
    if seed is None and overrides.get(SEED_KEY, "").lstrip("-").isdigit():
        seed = overrides[SEED_KEY]
    group = OmegaConf.select(cfg, "group", default="") if cfg is not None else ""
    seed = None if seed is None else int(seed)
    return _Job(folder, overrides, seed, str(group or ""), net, summary, failure)


def gather(roots: list[str | Path]) -> Gathered:
    """Finished runs, failed jobs and notes under ``roots`` (multirun folders, run folders,
    external arm folders, in any mix).

    A second run of the same arm and seed is left out with a note; so are ``metrics.json``
    files that are neither a job's nor an external arm's (e.g. a ``cac-eval`` report).
    """
    notes: list[str] = []
    jobs: list[_Job] = []
    runs: list[Run] = []
    for folder in _folders([Path(r) for r in roots]):
        summary = _load_json(folder / METRICS_FILE)
        failure = _load_json(folder / FAILED_FILE)
        if (folder / ".hydra").is_dir():
            if failure is None and summary is not None and summary.get("unreadable"):
                failure = {"error": "unreadable", "message": f"{METRICS_FILE} is not JSON"}
            jobs.append(_hydra_job(folder, summary, failure))
        elif summary is not None and "arm" in summary:
            seed = summary.get("seed", 0)
            if isinstance(seed, int) and not isinstance(seed, bool):
                runs.append(_run(str(summary["arm"]), seed, folder, "", summary))
            else:
                notes.append(f"`{folder}`: arm {summary['arm']} with seed {seed!r}: not a run")
        elif summary is not None:
            notes.append(f'`{folder}`: {METRICS_FILE} without `.hydra/` or an "arm": not a run')

    failed: list[FailedJob] = []
    for job, label in zip(jobs, arm_labels([j.overrides for j in jobs]), strict=True):
        arm = label or job.net or "all"
        if job.failure is not None:
            error = str(job.failure.get("error", "unreadable"))
            message = str(job.failure.get("message", f"{FAILED_FILE} is not JSON"))
            failed.append(FailedJob(arm, job.seed, str(job.folder), error, message))
        elif job.summary is None:
            failed.append(
                FailedJob(arm, job.seed, str(job.folder), "unfinished", "no " + METRICS_FILE)
            )
        else:
            seed = 0 if job.seed is None else job.seed
            runs.append(_run(arm, seed, job.folder, job.group, job.summary, job.net or ""))

    kept: dict[tuple[str, int], Run] = {}
    for run in runs:
        first = kept.setdefault((run.arm, run.seed), run)
        if first is not run:
            notes.append(
                f"arm {run.arm} seed {run.seed}: a second run `{run.dir}` left out "
                f"(kept `{first.dir}`)"
            )
    return Gathered(list(kept.values()), failed, notes)


def _run(arm: str, seed: int, folder: Path, group: str, summary: dict, net: str = "") -> Run:
    metrics = {
        k: (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
        for k, v in (summary.get("metrics") or {}).items()
    }
    scans = dict(summary.get("scans") or {})
    return Run(arm, int(seed), str(folder), group, metrics, scans, net)

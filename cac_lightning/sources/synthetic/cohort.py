"""Write a synthetic cohort: DICOM series, label maps, ``manifest.csv`` with reference scores.

Layout of ``out_dir`` (created atomically: a cohort appears whole or not at all)::

    manifest.csv              scan_id, patient_id, image, label, split, ref_<vessel>_<score>
    synthetic.json            seed, size, options, split rule and what each scan contains
    images/SYN0000/IM-0001.dcm ...   one CT series per scan (RescaleIntercept -1024, 120 kVp)
    labels/SYN0000.nii.gz     calcium labels in the series geometry (0 bg, 1 LM, 2 LAD, 3 CX, 4 RCA)

Reference scores are those ``cac-score --mask`` computes: the written series and label map are
read back and scored with :func:`cac_lightning.scoring.score_scan` (default settings).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.io.atomic import atomic_dir, atomic_write_text
from cac_lightning.io.manifest import ManifestRow, write_manifest
from cac_lightning.scoring.lesions import SCORE_METRICS
from cac_lightning.sources.synthetic.phantom import SynthOptions, make_scan
from cac_lightning.vessels import VESSELS_AND_TOTAL
from cac_lightning.workers import parent_bound_pool

__all__ = [
    "COHORT_VERSION",
    "SPLIT_RULES",
    "assign_splits",
    "cohort_split_rule",
    "cohort_version",
    "generate_cohort",
    "prepare_cohort",
    "write_scan",
]

INFO_NAME = "synthetic.json"
"""The cohort description next to ``manifest.csv`` (generator version, seed, options, scans)."""

COHORT_VERSION = 4
"""Generator version written to ``synthetic.json``: raised whenever the same seed and options
give other scans (2: stents spread evenly, :func:`~.phantom.is_stent_scan`; 3: slice profile,
motion, streaks and irregular plaques, :mod:`.artefacts`; 4: calcified costal cartilage,
cortex and marrow texture of sternum and ribs, osteophytes, more aortic wall calcium with age,
sternal wires and surgical clips, :func:`~.plaques.sample_findings`). A cohort folder
without it is version 1."""


SPLIT_RULES = ("demo", "paper")
"""How :func:`generate_cohort` splits a cohort: ``demo`` (the default) is :func:`assign_splits`,
``paper`` the COCA importer's rule, :func:`cac_lightning.sources.splits.paper_splits`
(positives 70/10/20 stratified by risk category). Either way zero-calcium scans go to
``test_zero``. ``synthetic.json`` records ``split_rule`` for a ``paper`` cohort only, so a
``demo`` cohort keeps the bytes it had before the option existed."""


def cohort_version(folder: str | Path) -> int | None:
    """The generator version of the cohort in ``folder`` (None when it has no
    ``synthetic.json``, i.e. it is not a generated cohort)."""
    path = Path(folder) / INFO_NAME
    if not path.is_file():
        return None
    return int(json.loads(path.read_text()).get("version", 1))


def cohort_split_rule(folder: str | Path) -> str | None:
    """The split rule (:data:`SPLIT_RULES`) of the cohort in ``folder`` (None when it has no
    ``synthetic.json``; ``demo`` when that file records none)."""
    path = Path(folder) / INFO_NAME
    if not path.is_file():
        return None
    return str(json.loads(path.read_text()).get("split_rule", SPLIT_RULES[0]))


def prepare_cohort(data_dir: str | os.PathLike, *, generate: bool, **options) -> None:
    """Generate the cohort of ``data_dir``, or check that the one there is of this version.

    The DataModule's ``make_cohort`` (``conf/data/synthetic.yaml`` injects this function, so
    ``data/`` never imports ``sources/``): it is called with ``generate=False`` to fail fast
    before training and, on rank 0, with ``generate=True`` when the manifest is missing.

    Args:
        data_dir: the cohort's folder.
        generate: generate the cohort (:func:`generate_cohort`) into ``data_dir``; False: only
            check the generator version and split rule of a cohort already there.
        **options: :func:`generate_cohort` arguments (``n_scans``, ``seed``, ``size``,
            ``split``, ...).

    Raises:
        InputError: ``data_dir`` holds a cohort of another generator version or split rule
            (one line: delete it or choose another folder); nothing is written.
    """
    if generate:
        log.info("generating synthetic cohort %s in %s", options, data_dir)
        generate_cohort(data_dir, **options)
        return
    version = cohort_version(data_dir)
    if version is not None and version != COHORT_VERSION:
        raise InputError(
            f"{data_dir} holds a synthetic cohort of generator version {version}, "
            f"this one writes version {COHORT_VERSION}: delete the folder to regenerate it, "
            "or set data.data_dir"
        )
    rule, wanted = cohort_split_rule(data_dir), options.get("split", SPLIT_RULES[0])
    if rule is not None and rule != wanted:
        raise InputError(
            f"{data_dir} holds a synthetic cohort split by the {rule!r} rule, this run asks for "
            f"{wanted!r} (data.synthetic.split): delete the folder to regenerate it, "
            "or set data.data_dir"
        )


log = logging.getLogger(__name__)

SERIES_DESCRIPTION = "cac-lightning synthetic gated CaSc 3.0 mm"
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
MIN_SCANS_FOR_HOLDOUT = 5


def assign_splits(is_zero: list[bool], seed: int = 0) -> list[str]:
    """Patient-level splits (one scan per synthetic patient).

    Calcium-positive scans are shuffled with ``seed`` and cut 60/20/20 into train, val and
    test, with at least one val and one test scan when the cohort has >= 5 scans. Zero-calcium
    scans go to ``test_zero`` (the paper's Testing Data Set 2) once val, test and train have
    their scans: they fill val, test, then train only when positives are too few.

    Args:
        is_zero: per scan (in index order), True when its reference Agatston score is 0.
        seed: shuffling seed.

    Returns:
        One of ``train``, ``val``, ``test``, ``test_zero`` per scan.
    """
    n = len(is_zero)
    pos = [i for i, z in enumerate(is_zero) if not z]
    zeros = [i for i, z in enumerate(is_zero) if z]
    perm = [pos[k] for k in np.random.default_rng([int(seed), 7]).permutation(len(pos))]
    if n >= MIN_SCANS_FOR_HOLDOUT:
        n_val = max(1, round(VAL_FRACTION * len(pos)))
        n_test = max(1, round(TEST_FRACTION * len(pos)))
    else:
        n_val = n_test = 0
    groups = {
        "val": perm[:n_val],
        "test": perm[n_val : n_val + n_test],
        "train": perm[n_val + n_test :],
    }
    for name, quota in (("val", n_val), ("test", n_test), ("train", 1)):
        while len(groups[name]) < quota and zeros:
            groups[name].append(zeros.pop(0))
    groups["test_zero"] = zeros
    out = [""] * n
    for name, members in groups.items():
        for i in members:
            out[i] = name
    return out


def _split(results: list[dict], seed: int, rule: str) -> list[str]:
    """Splits of the written scans (in index order) under ``rule`` (:data:`SPLIT_RULES`)."""
    agatston = [r["ref"]["total"]["agatston"] for r in results]
    if rule == SPLIT_RULES[0]:
        return assign_splits([a == 0.0 for a in agatston], seed)
    from cac_lightning.sources.splits import paper_splits

    by_pid = paper_splits(
        {r["patient_id"]: a for r, a in zip(results, agatston, strict=True)}, seed
    )
    return [by_pid[r["patient_id"]] for r in results]


def _uid(seed: int, index: int, what: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["cac-lightning-synthetic", str(seed), str(index), what]))


def write_scan(
    root: str | os.PathLike, seed: int, index: int, size: int, options: SynthOptions
) -> dict:
    """Generate scan ``index``, write its series and label map under ``root``, score it.

    Returns:
        ``{"index", "scan_id", "patient_id", "image", "label", "ref", "meta"}`` with ``ref`` the
        per-vessel reference scores of the files as written.
    """
    from cac_lightning.io import read_label_map, read_volume, write_dicom_series, write_label_map
    from cac_lightning.scoring import score_scan

    root = Path(root)
    scan = make_scan(seed, index, size, options)
    pid = scan.patient_id
    image = root / "images" / pid
    label = root / "labels" / f"{pid}.nii.gz"
    image.parent.mkdir(parents=True, exist_ok=True)
    label.parent.mkdir(parents=True, exist_ok=True)
    write_dicom_series(
        scan.hu, scan.geometry, image, patient_id=pid, study_uid=_uid(seed, index, "study"),
        series_uid=_uid(seed, index, "series"), kvp=120.0, description=SERIES_DESCRIPTION,
    )  # fmt: skip
    write_label_map(scan.labels, scan.geometry, label)
    # Score exactly what cac-score --mask will read.
    vol = read_volume(image)
    labels = read_label_map(label, vol.geometry)
    scores = score_scan(vol.hu, labels, vol.geometry, kvp=vol.kvp, mass_factor=vol.mass_factor)
    ref = {
        v: {k: float(getattr(scores.vessels[v], k)) for k in SCORE_METRICS}
        for v in VESSELS_AND_TOTAL
    }
    meta = dict(scan.meta)
    meta.update(risk_category=scores.risk_category, n_label_voxels=int(np.count_nonzero(labels)))
    log.info("%s: Agatston %.1f", pid, ref["total"]["agatston"])
    return {
        "index": index,
        "scan_id": vol.scan_id,
        "patient_id": pid,
        "image": image,
        "label": label,
        "ref": ref,
        "meta": meta,
    }


def _write_one(args: tuple) -> dict:
    return write_scan(*args)


def generate_cohort(
    out_dir: str | os.PathLike,
    n_scans: int,
    *,
    seed: int = 0,
    size: int = 512,
    workers: int | None = None,
    split: str = "demo",
    **options,
) -> Path:
    """Generate ``n_scans`` synthetic gated cardiac CT scans into the new folder ``out_dir``.

    Scan ``i`` is seeded from ``(seed, i)``: it does not depend on ``n_scans`` or ``workers``.

    Args:
        out_dir: a folder that does not exist yet or is empty; never overwritten.
        n_scans: number of scans (>= 1).
        seed: cohort seed (>= 0).
        size: in-plane matrix (16..1024 pixels); the FOV stays 165-230 mm, so spacing grows
            as ``size`` shrinks.
        workers: processes (default: CPU count; 1 runs in this process).
        split: the split rule, one of :data:`SPLIT_RULES` (default ``demo``).
        **options: :class:`SynthOptions` fields (``zero_fraction``, ``stent_fraction``, ...).

    Returns:
        Path of ``out_dir/manifest.csv``.

    Raises:
        InputError: bad arguments, or ``out_dir`` exists and is not an empty folder.
    """
    if int(n_scans) != n_scans or n_scans < 1:
        raise InputError(f"n_scans must be a whole number >= 1, got {n_scans}")
    if int(seed) != seed or seed < 0:
        raise InputError(f"seed must be a whole number >= 0, got {seed}")
    if int(size) != size or not 16 <= size <= 1024:
        raise InputError(f"size must be a whole number in 16..1024, got {size}")
    if workers is not None and (int(workers) != workers or workers < 1):
        raise InputError(f"workers must be a whole number >= 1, got {workers}")
    if split not in SPLIT_RULES:
        raise InputError(f"unknown split rule {split!r}; choose from {', '.join(SPLIT_RULES)}")
    opts = SynthOptions.from_dict(options)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder; choose a new one")
    n_scans, seed, size = int(n_scans), int(seed), int(size)
    workers = min(int(workers or os.cpu_count() or 1), n_scans)
    with atomic_dir(out) as tmp:
        jobs = [(tmp, seed, i, size, opts) for i in range(n_scans)]
        if workers == 1:
            results = [_write_one(job) for job in jobs]
        else:
            with parent_bound_pool(workers) as pool:  # workers die with this process
                results = list(pool.map(_write_one, jobs))
        splits = _split(results, seed, split)
        rows = [
            ManifestRow(
                scan_id=r["scan_id"],
                patient_id=r["patient_id"],
                image=r["image"],
                label=r["label"],
                split=split,
                ref=r["ref"],
            )  # fmt: skip
            for r, split in zip(results, splits, strict=True)
        ]
        write_manifest(tmp / "manifest.csv", rows)
        info = {
            "generator": "cac_lightning.sources.synthetic",
            "version": COHORT_VERSION,
            "seed": seed,
            "n_scans": n_scans,
            "size": size,
            "options": opts.to_dict(),
            **({"split_rule": split} if split != SPLIT_RULES[0] else {}),
            "scans": [
                {"scan_id": r["scan_id"], "split": s, **r["meta"]}
                for r, s in zip(results, splits, strict=True)
            ],
        }
        atomic_write_text(tmp / INFO_NAME, json.dumps(info, indent=1) + "\n")
    log.info("wrote %d synthetic scans to %s", n_scans, out)
    return out / "manifest.csv"

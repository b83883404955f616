"""The MESA options of ``cac-score``: ``--age``, ``--sex``, ``--ethnicity``, ``--covariates``.

Covariates come from the DICOM header (PatientAge, PatientSex), then the covariates CSV,
then the flags, each later source overriding the earlier ones; the report's
``mesa.inputs_source`` says where each came from. Values are never printed or logged.
"""

from __future__ import annotations

import argparse

from cac_lightning.errors import InputError

__all__ = ["add_mesa_arguments", "mesa_for_scan", "mesa_requested", "prepare_mesa"]


def add_mesa_arguments(p: argparse.ArgumentParser) -> None:
    """Add the MESA argument group to ``p``."""
    g = p.add_argument_group(
        "MESA reference (ages 45-84; adds 'mesa' to the JSON when any of these is given)"
    )
    g.add_argument("--age", metavar="YEARS", help="age in years (overrides the DICOM PatientAge)")
    g.add_argument("--sex", metavar="M|F", help="sex (overrides the DICOM PatientSex)")
    g.add_argument(
        "--ethnicity",
        metavar="GROUP",
        help="MESA race/ethnicity group: white, black, hispanic or chinese",
    )
    g.add_argument(
        "--covariates",
        metavar="CSV",
        help="per-scan covariates: a path, series_uid or scan_id column, then age, sex, "
        "ethnicity and optionally diabetes, smoker, total_chol, hdl, sbp, lipid_med, bp_med, "
        "family_history (for the 10-year CHD risk)",
    )


def mesa_requested(args: argparse.Namespace) -> bool:
    """True when any MESA option was given."""
    return any(
        getattr(args, k, None) is not None for k in ("age", "sex", "ethnicity", "covariates")
    )


def prepare_mesa(args: argparse.Namespace):
    """Check the MESA flags once and read ``--covariates``; returns the state for
    :func:`mesa_for_scan` (None when no MESA option was given).

    Raises:
        InputError: an invalid flag value or covariates CSV.
    """
    if not mesa_requested(args):
        return None
    from cac_lightning.scoring.mesa import Covariates, parse_age, parse_ethnicity, parse_sex

    try:
        flags = Covariates(
            age=parse_age(args.age),
            sex=parse_sex(args.sex),
            ethnicity=parse_ethnicity(args.ethnicity),
        )
    except InputError as err:
        raise InputError(f"--{str(err).split(' ', 1)[0]}: {err}") from None
    table = None
    if args.covariates is not None:
        from cac_lightning.io.covariates import read_covariates

        table = read_covariates(args.covariates)
    return flags, table


def _sources(cov, origin: str) -> dict[str, str]:
    from dataclasses import asdict

    return {k: origin for k, v in asdict(cov).items() if v is not None}


def mesa_for_scan(state, vol, report: dict, scan_id: str | None = None) -> dict | None:
    """The report's ``mesa`` block for ``vol`` (None when MESA was not asked for)."""
    if state is None:
        return None
    from cac_lightning.scoring.mesa import Covariates, mesa_summary, parse_age, parse_sex

    flags, table = state
    header = Covariates()
    try:
        header = Covariates(age=parse_age(vol.extra.get("patient_age")))
    except InputError:
        pass  # an unreadable header age counts as absent
    try:
        header = header.merged(Covariates(sex=parse_sex(vol.extra.get("patient_sex"))))
    except InputError:
        pass  # "O" (other) or garbage: no MESA sex
    cov, source = header, _sources(header, "dicom")
    row = table.lookup(vol, scan_id) if table is not None else None
    for layer, origin in ((row, "csv"), (flags, "flag")):
        if layer is not None:
            cov = cov.merged(layer)
            source.update(_sources(layer, origin))
    return mesa_summary(report["scores"]["total"]["agatston"], cov, source)

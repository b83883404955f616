"""The covariates CSV of ``cac-score --covariates``: age, sex, ethnicity and risk factors per scan.

One row per scan. Which scan a row is for: a ``path`` column (the input folder or file, as
given or resolved; relative paths are taken from the CSV's folder), a ``series_uid`` column,
or a ``scan_id`` column (a manifest's ``scan_id`` or the sanitised input folder name); at
least one of them. Value columns, all optional: ``age`` (years, or a DICOM age ``065Y``),
``sex`` (M/F), ``ethnicity`` (white, black, hispanic, chinese) and the risk factors of
:data:`cac_lightning.scoring.mesa.RISK_FACTORS` (``diabetes``, ``smoker``, ``lipid_med``,
``bp_med``, ``family_history`` as 0/1; ``total_chol``, ``hdl`` in mg/dL; ``sbp`` in mm Hg).
An empty cell is "not given". Values are never logged or echoed in errors.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from cac_lightning.errors import InputError
from cac_lightning.scoring.mesa import (
    RISK_FACTORS,
    Covariates,
    parse_age,
    parse_ethnicity,
    parse_sex,
)
from cac_lightning.volume import Volume

__all__ = ["KEY_COLUMNS", "CovariateTable", "read_covariates"]

KEY_COLUMNS: tuple[str, ...] = ("path", "series_uid", "scan_id")
_BOOL = {"1": 1.0, "0": 0.0, "yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "y": 1.0, "n": 0.0}
_FLAGS = ("diabetes", "smoker", "lipid_med", "bp_med", "family_history")


@dataclass
class CovariateTable:
    """Rows of a covariates CSV, found by path, series UID or scan id."""

    source: str
    by_key: dict[tuple[str, str], Covariates] = field(default_factory=dict)

    def lookup(self, vol: Volume, scan_id: str | None = None) -> Covariates | None:
        """The row for ``vol`` (read from ``vol.source``), or None when the CSV has none."""
        keys = []
        if vol.source:
            keys += [("path", vol.source), ("path", str(Path(vol.source).resolve()))]
        if vol.series_uid:
            keys.append(("series_uid", vol.series_uid))
        for sid in (scan_id, vol.scan_id, Path(vol.source).name if vol.source else None):
            if sid:
                keys.append(("scan_id", sid))
        return next((self.by_key[k] for k in keys if k in self.by_key), None)


def _number(path: Path, line: int, column: str, text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    if column in _FLAGS:
        if text.lower() not in _BOOL:
            raise InputError(f"{path} line {line}: column {column} must be 0 or 1")
        return _BOOL[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path} line {line}: column {column} is not a number") from None


def read_covariates(path: str | os.PathLike) -> CovariateTable:
    """Read a covariates CSV (see the module docstring).

    Raises:
        InputError: missing file, no key column, a value that does not parse (the message
            names the line and column, never the value).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--covariates {path}: no such file")
    table = CovariateTable(str(path))
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        keys = [c for c in KEY_COLUMNS if c in columns]
        if not keys:
            raise InputError(f"{path}: needs a column {', '.join(KEY_COLUMNS)} naming each scan")
        for line, rec in enumerate(reader, start=2):
            rec = {k: (v or "") for k, v in rec.items() if k is not None}
            try:
                values = {
                    "age": parse_age(rec.get("age")),
                    "sex": parse_sex(rec.get("sex")),
                    "ethnicity": parse_ethnicity(rec.get("ethnicity")),
                }
            except InputError as err:
                what = str(err).split(" ", 1)[0]  # the covariate's name, not its value
                raise InputError(f"{path} line {line}: invalid {what}") from None
            for k in RISK_FACTORS:
                values[k] = _number(path, line, k, rec.get(k, ""))
            cov = Covariates(**values)
            for k in keys:
                value = rec.get(k, "").strip()
                if not value:
                    continue
                if k == "path":
                    p = Path(value)
                    p = p if p.is_absolute() else path.parent / p
                    table.by_key[("path", value)] = cov
                    table.by_key[("path", str(p.resolve()))] = cov
                else:
                    table.by_key[(k, value)] = cov
    return table

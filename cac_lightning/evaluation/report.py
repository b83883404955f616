"""The evaluation report directory: ``metrics.json``, ``report.md``, ``records.jsonl``, PNGs.

``report.md`` mirrors Tables 3-7 and Fig. 5 of Hong et al. 2022 for each split;
``metrics.json`` holds the same tables as JSON (nan and inf become null). The
directory is written atomically and never over an existing non-empty folder.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cac_lightning.errors import InputError
from cac_lightning.evaluation.records import NOT_CAC, ScanRecord
from cac_lightning.evaluation.tables import METRICS, score_pairs, tables_by_split
from cac_lightning.io.atomic import atomic_dir
from cac_lightning.vessels import VESSELS, VESSELS_AND_TOTAL

__all__ = ["json_safe", "markdown_report", "write_report"]

METRIC_TITLES = {"agatston": "Agatston", "volume_mm3": "Volume (mm³)", "mass_mg": "Mass (mg)"}


def json_safe(obj):
    """Recursively turn numpy scalars/arrays, tuples and non-finite floats into JSON values.

    nan and ±inf become None.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _num(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}f}"


def _pct(x) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.2f}%"


def _p(x) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _split_section(split: str, t: dict) -> list[str]:
    out = [f"## Split `{split}` ({t['n_scans']} scans)", ""]
    t3 = t["table3"]
    out += ["### Table 3. Mean metrics in CAC detection", ""]
    out += _table(
        ["CAC error (Agatston MAE)", "Precision", "Recall", "Dice", "IoU"],
        [
            [_num(t3["agatston_mae"])]
            + [_num(t3[k]) for k in ("precision", "recall", "dice", "iou")]
        ],
    )
    pooled = t3["pooled"]
    out += [
        f"Voxel metrics are means over the {t3['n_voxel_scans']} scans with calcium in "
        f"either map; pooled over all voxels: precision {_num(pooled['precision'])}, "
        f"recall {_num(pooled['recall'])}, Dice {_num(pooled['dice'])}, "
        f"IoU {_num(pooled['iou'])}.",
        "",
    ]

    t4 = t["table4"]
    out += ["### Table 4. Overall calcium detection (rows predicted, columns reference)", ""]
    out += _table(
        ["Predicted", *(f"Ref. {x}" for x in t4["labels"])],
        [[lab, *map(str, row)] for lab, row in zip(t4["labels"], t4["matrix"], strict=True)],
    )
    out += [f"Sensitivity {_pct(t4['sensitivity'])}; specificity {_pct(t4['specificity'])}.", ""]

    t5 = t["table5"]
    out += ["### Table 5. Vessel-specific lesion detection (rows predicted, columns reference)", ""]
    out += _table(
        ["Predicted", *t5["columns"]],
        [
            [r, *("–" if c is None else str(c) for c in row)]
            for r, row in zip(t5["rows"], t5["matrix"], strict=True)
        ],
    )
    rates = ", ".join(f"{v} {_pct(t5['detection_rate'][v])}" for v in VESSELS)
    out += [
        f"Detection rate (right vessel / reference lesions): {rates}. "
        f"Not detected {_pct(t5['not_detected_rate'])}; {NOT_CAC} "
        f"{_pct(t5['not_cac_rate'])} of {sum(t5['n_lesions'].values())} reference "
        "lesions.",
        "",
    ]

    t6 = t["table6"]
    out += ["### Table 6. Reference vs predicted scores: median (IQR), ICC(A,1)", ""]
    header = ["Location"]
    for m in METRICS:
        header += [f"{METRIC_TITLES[m]} ref.", "pred.", "ICC", "P"]
    rows = []
    for key in VESSELS_AND_TOTAL:
        row = ["Overall" if key == "total" else key]
        for m in METRICS:
            c = t6[key][m]
            row += [
                f"{_num(c['ref_median'], 1)} ({_num(c['ref_iqr'], 1)})",
                f"{_num(c['pred_median'], 1)} ({_num(c['pred_iqr'], 1)})",
                _num(c["icc"]),
                _p(c["p_value"]),
            ]
        rows.append(row)
    out += _table(header, rows)

    t7 = t["table7"]
    out += ["### Table 7. Risk categories (rows predicted, columns reference)", ""]
    out += _table(
        ["Predicted", *t7["labels"]],
        [[lab, *map(str, row)] for lab, row in zip(t7["labels"], t7["matrix"], strict=True)],
    )
    for name, k in (("Cohen's kappa", t7["kappa"]), ("Linear weighted kappa", t7["kappa_linear"])):
        out.append(
            f"{name}: {_num(k['kappa'], 3)} (95% CI {_num(k['ci_low'], 3)}–"
            f"{_num(k['ci_high'], 3)}, p {_p(k['p_value'])}).  "
        )
    out += [f"Accuracy {_pct(t7['accuracy'])}.", ""]

    out += ["### Bland–Altman (total scores; predicted − reference)", ""]
    out += _table(
        ["Score", "Bias", "SD", "LoA low", "LoA high", "n"],
        [
            [
                METRIC_TITLES[m],
                _num(b["mean_diff"]),
                _num(b["sd_diff"]),
                _num(b["loa_low"]),
                _num(b["loa_high"]),
                str(b["n"]),
            ]
            for m, b in t["bland_altman"].items()
        ],
    )

    z = t["zero_calcium"]
    flagged = ", ".join(f"`{s}`" for s in z["flagged"]) or "none"
    out += [
        "### Zero-calcium scans",
        "",
        f"{z['n_flagged']} of {z['n_scans']} scans with reference Agatston 0 have "
        f"predicted calcium: {flagged}.",
        "",
    ]
    return out


def markdown_report(
    tables: dict[str, dict],
    title: str = "CAC evaluation",
    figures: dict[str, list[str]] | None = None,
) -> str:
    """Markdown mirroring the paper's Tables 3-7 for each split.

    Args:
        tables: ``{split: build_tables(...)}``.
        title: the document title.
        figures: ``{split: [png file names]}`` to link under each split.

    Returns:
        The markdown text.
    """
    lines = [
        f"# {title}",
        "",
        "Tables follow Hong et al. 2022 (Tables 3–7, Fig. 5). ICC is ICC(A,1) "
        "(two-way random, absolute agreement, single measure); kappa CIs use the "
        "Fleiss–Cohen–Everitt asymptotic SE; medians/IQR use SPSS-style percentiles.",
        "",
    ]
    for split, t in tables.items():
        lines += _split_section(split, t)
        for name in (figures or {}).get(split, []):
            lines += [f"![{name}]({name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(
    out_dir: str | Path,
    records: Sequence[ScanRecord],
    *,
    title: str = "CAC evaluation",
    plots: bool = True,
    settings: dict | None = None,
) -> Path:
    """Write the evaluation report directory.

    Contents: ``metrics.json`` (``{"title", "settings", "splits": {split: tables}}``),
    ``report.md``, ``records.jsonl`` (one :class:`ScanRecord` per line) and, when
    ``plots``, ``bland_altman_<split>.png``, ``risk_confusion_<split>.png`` and
    ``scatter_<split>.png``.

    Args:
        out_dir: the report folder; must not exist or be empty.
        records: per-scan records (any splits).
        title: report title.
        plots: write the PNGs (needs matplotlib).
        settings: extra JSON-ready settings stored in ``metrics.json`` (e.g. scoring).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        InputError: ``out_dir`` exists and is not an empty folder, or no records.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"report folder {out} already exists and is not empty")
    records = list(records)
    if not records:
        raise InputError("no scan records to report")
    tables = tables_by_split(records)
    figures: dict[str, list[str]] = {}
    with atomic_dir(out) as tmp:
        if plots:
            from cac_lightning.evaluation.plots import (
                bland_altman_png,
                risk_confusion_png,
                scatter_png,
            )

            for split, t in tables.items():
                rs = [r for r in records if r.split == split]
                pairs = {m: score_pairs(rs, "total", m) for m in METRICS}
                safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", split) or "split"
                names = [
                    f"bland_altman_{safe}.png",
                    f"risk_confusion_{safe}.png",
                    f"scatter_{safe}.png",
                ]
                bland_altman_png(tmp / names[0], pairs, title=f"{split}: Bland–Altman")
                risk_confusion_png(
                    tmp / names[1],
                    t["table7"]["matrix"],
                    t["table7"]["labels"],
                    title=f"{split}: risk categories",
                )
                scatter_png(tmp / names[2], pairs, title=f"{split}: predicted vs reference")
                figures[split] = names
        metrics = {"title": title, "settings": settings or {}, "splits": tables}
        (tmp / "metrics.json").write_text(
            json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n"
        )
        (tmp / "report.md").write_text(markdown_report(tables, title, figures))
        (tmp / "records.jsonl").write_text(
            "".join(json.dumps(json_safe(r.to_dict()), allow_nan=False) + "\n" for r in records)
        )
    return out

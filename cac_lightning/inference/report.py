"""One-page HTML report of a scored scan (``cac-score --report``): a file that stands alone.

It shows the per-vessel table, the risk category and the CAC-DRS string, up to four key
slices (the slice with the most calcium of each vessel) and the whole-scan projection, with
the calcium coloured by vessel (:func:`cac_lightning.render.overlay.render_overlay`) and the
heart region outlined, every warning, and the checkpoint, its hash and the version. The
pictures are embedded as base64 PNGs. It names the patient (name, ID, birth date, study
date) only when asked (``show_patient``); the scan id is the output id, which holds no
identifier beyond the series folder name the user gave.

What the page says is gathered once (:func:`report_content`); :func:`write_report` lays it out
as HTML and :func:`cac_lightning.inference.report_pdf.write_report_pdf` as a one-page A4 PDF
drawn by matplotlib (no browser engine, no system libraries).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cac_lightning import __version__
from cac_lightning.inference.outputs import REGION_COLOR
from cac_lightning.io.atomic import atomic_path
from cac_lightning.render.figures import new_figure
from cac_lightning.render.overlay import render_overlay
from cac_lightning.vessels import LABELS, VESSEL_COLORS, VESSELS, VESSELS_AND_TOTAL
from cac_lightning.volume import Volume

__all__ = ["PATIENT_KEYWORDS", "ReportContent", "key_slices", "report_content", "write_report"]

PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate")
"""What ``show_patient`` prints, read from the first source file."""

MAX_SIDE_PX = 420
CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 880px; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
.sub { color: #555; font-size: 12px; margin-bottom: 12px; }
.drs { font-size: 22px; font-weight: bold; margin: 10px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #bbb; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: bold; background: #f2f2f2; }
.sw { display: inline-block; width: 11px; height: 11px; margin-right: 5px;
      border: 1px solid #444; vertical-align: middle; }
.figs { display: flex; flex-wrap: wrap; gap: 6px; }
figure { margin: 0; font-size: 11px; color: #444; text-align: center; }
img { width: 280px; height: auto; border: 1px solid #999; }
.legend { font-size: 12px; margin: 4px 0 8px 0; }
.legend span.item { margin-right: 14px; }
.mesa { font-size: 13px; margin: 2px 0; }
.warn { color: #8a4b00; font-size: 12px; margin-top: 10px; }
.foot { color: #666; font-size: 11px; margin-top: 12px; border-top: 1px solid #ccc;
        padding-top: 6px; }
"""


def key_slices(labels: np.ndarray, vessels=VESSELS, limit: int = 4) -> list[int]:
    """The slice with the most calcium of each of ``vessels``, each slice once, sorted."""
    picks: list[int] = []
    for vessel in vessels:
        area = (labels == LABELS[vessel]).sum(axis=(1, 2))
        if area.any():
            z = int(np.argmax(area))
            if z not in picks:
                picks.append(z)
    return sorted(picks[:limit])


def _crop(region: np.ndarray | None, labels: np.ndarray, shape) -> tuple[slice, slice]:
    """Rows and columns around the heart region (or the calcium), 15 % margin; else all."""
    mask = region if region is not None and region.any() else labels > 0
    if not mask.any():
        return slice(None), slice(None)
    ys, xs = np.nonzero(mask.any(axis=0))
    h, w = shape
    side = max(ys.max() - ys.min(), xs.max() - xs.min()) * 1.3 + 16
    cy, cx = (ys.max() + ys.min()) / 2, (xs.max() + xs.min()) / 2
    y0, x0 = int(max(0, cy - side / 2)), int(max(0, cx - side / 2))
    return slice(y0, int(min(h, y0 + side))), slice(x0, int(min(w, x0 + side)))


def _png(hu2d: np.ndarray, lab2d: np.ndarray, reg2d: np.ndarray | None) -> str:
    """A key slice as a base64 PNG, calcium coloured, the heart region outlined."""
    h, w = lab2d.shape
    scale = MAX_SIDE_PX / max(h, w)
    fig = new_figure(w * scale / 100, h * scale / 100, layout=None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(render_overlay(hu2d, lab2d), interpolation="nearest")
    if reg2d is not None and reg2d.any() and not reg2d.all():
        ax.contour(reg2d, [0.5], colors=[REGION_COLOR], linewidths=1.0)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _patient(vol: Volume) -> dict[str, str]:
    import pydicom

    from cac_lightning.io.dicom import quiet_pydicom

    files = vol.extra.get("files") or []
    if not files:
        return {}
    with quiet_pydicom():
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return {k: str(ds.get(k, "") or "") for k in PATIENT_KEYWORDS}


CATEGORY_TEXT = (
    "CAC-DRS (SCCT 2018): A0 = 0, A1 = 1–99, A2 = 100–299, A3 ≥ 300; N = vessels with calcium "
    "(LM, LAD, CX, RCA). Risk category: C1 = 0, C2 = 1–10, C3 = 11–100, C4 = 101–400, C5 > 400."
)
KEY_SLICE_TEXT = (
    "Key slices: the slice with the most calcium of each scored vessel. Colours are the model's "
    "calcium labels; specks below the minimum lesion area are drawn but not scored."
)
DISCLAIMER = "research software, not a medical device: a clinician must check every result"


@dataclass
class ReportContent:
    """What the one-page report says, whatever it is drawn with.

    ``rows`` are (vessel or "Total", Agatston, volume mm³, mass mg, lesions); ``figures`` are
    (HU slice, label slice, heart-region slice or None, caption), cropped around the region.
    """

    scan_id: str
    headline: str
    rows: list[tuple[str, float, float, float, int]]
    figures: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, str]]
    with_region: bool
    patient: dict[str, str] = field(default_factory=dict)
    mesa: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)


def _mesa_lines(mesa: dict | None) -> list[str]:
    """The MESA percentile and 10-year CHD risk, or why each is not given."""
    if not mesa:
        return []
    pct, risk = mesa.get("percentile"), mesa.get("risk_10y_chd")
    return [
        f"MESA percentile for age, sex and ethnicity: {pct:.0f}"
        if pct is not None
        else f"MESA percentile: not given ({mesa.get('reason')})",
        f"MESA 10-year CHD risk with CAC (McClelland et al., JACC 2015): {risk:.1f} %"
        if risk is not None
        else f"MESA 10-year CHD risk: not given ({mesa.get('risk_reason')})",
    ]


def report_content(
    vol: Volume,
    labels: np.ndarray,
    report: dict,
    region: np.ndarray | None = None,
    show_patient: bool = False,
) -> ReportContent:
    """Gather what the report of a scored scan says (arguments as :func:`write_report`)."""
    rows, cols = _crop(region, labels, labels.shape[1:])
    scored = [v for v in VESSELS if report["scores"][v]["agatston"] > 0]
    figures = []
    for z in key_slices(labels, scored):
        reg = None if region is None else region[z, rows, cols]
        present = [v for v in scored if (labels[z] == LABELS[v]).any()]
        caption = f"slice {z + 1} of {labels.shape[0]}: {', '.join(present)}"
        figures.append((vol.hu[z, rows, cols], labels[z, rows, cols], reg, caption))
    proj = np.zeros(labels.shape[1:], np.uint8)
    for value in range(1, len(VESSELS) + 1):
        proj[(labels == value).any(axis=0)] = value
    reg = None if region is None else region.any(axis=0)[rows, cols]
    mip = vol.hu.max(axis=0)[rows, cols]
    figures.append((mip, proj[rows, cols], reg, "all slices: maximum projection"))

    model = report.get("model") or {}
    settings = report.get("settings") or {}
    threshold = report.get("threshold_hu", settings.get("threshold_hu"))
    kvp = report.get("kvp")
    heart = report.get("heart_region")
    total = report["scores"]["total"]["agatston"]
    scoring = (
        f"threshold {threshold:g} HU" if threshold is not None else "threshold unknown",
        f"{kvp:g} kVp" if kvp is not None else "kVp not stated",
        f"Agatston {settings.get('mode', 'per-slice')}",
        f"slice spacing {report.get('slice_spacing_mm', 0):g} mm",
    )
    region_text = (
        "heart region: none (calcium looked for anywhere)"
        if not heart
        else f"heart region: {heart.get('method')}, {heart.get('volume_ml')} ml"
    )
    warnings = [str(w) for w in report.get("warnings") or []]
    if heart:
        warnings += [str(n) for n in heart.get("notes") or []]
    return ReportContent(
        scan_id=str(report["scan_id"]),
        headline=(
            f"{report['cac_drs_report']}   Agatston {total:.1f}   "
            f"risk category {report['risk_category']}"
        ),
        rows=[
            (
                "Total" if v == "total" else v,
                report["scores"][v]["agatston"],
                report["scores"][v]["volume_mm3"],
                report["scores"][v]["mass_mg"],
                report["scores"][v]["lesions"],
            )
            for v in VESSELS_AND_TOTAL
        ],
        figures=figures,
        with_region=region is not None,
        patient=_patient(vol) if show_patient else {},
        mesa=_mesa_lines(report.get("mesa")),
        warnings=warnings,
        footer=[
            f"Scoring: {', '.join(scoring)}; {region_text}.",
            f"Model: {model.get('checkpoint', 'unknown')} ({model.get('net', '')}), "
            f"checkpoint sha256 {model.get('checkpoint_sha256', 'unknown')}; "
            f"cac-lightning {__version__}.",
        ],
    )


def _table(content: ReportContent) -> str:
    rows = []
    for name, agatston, volume, mass, lesions in content.rows:
        cell = name
        if name in VESSEL_COLORS:
            rgb = ",".join(str(c) for c in VESSEL_COLORS[name])
            cell = f'<span class="sw" style="background: rgb({rgb})"></span>{name}'
        rows.append(
            f"<tr{' class=total' if name == 'Total' else ''}><td>{cell}</td>"
            f"<td>{agatston:.1f}</td><td>{volume:.1f}</td><td>{mass:.1f}</td>"
            f"<td>{lesions}</td></tr>"
        )
    head = (
        "<tr><th>Vessel</th><th>Agatston</th><th>Volume (mm³)</th><th>Mass (mg)</th>"
        "<th>Lesions</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _legend(with_region: bool) -> str:
    items = [
        f'<span class="item"><span class="sw" style="background: rgb('
        f'{",".join(str(c) for c in VESSEL_COLORS[v])})"></span>{v}</span>'
        for v in VESSELS
    ]
    if with_region:
        items.append(
            f'<span class="item"><span class="sw" style="background: none; '
            f'border: 2px solid {REGION_COLOR}"></span>heart region</span>'
        )
    return f'<div class="legend">{"".join(items)}</div>'


def write_report(
    path: Path,
    vol: Volume,
    labels: np.ndarray,
    report: dict,
    region: np.ndarray | None = None,
    show_patient: bool = False,
    content: ReportContent | None = None,
) -> Path:
    """Write the one-page HTML report of a scan.

    Args:
        path: the ``.html`` file to write (atomically).
        vol: the scan (HU (z, y, x)).
        labels: (z, y, x) uint8 predicted calcium labels, 0 bg, 1 LM .. 4 RCA.
        report: the scan's report as ``cac-score`` builds it (``scores``, ``risk_category``,
            ``cac_drs_report``, ``threshold_hu``, ``heart_region``, ``warnings``, ``model``,
            ``mesa`` when asked for).
        region: (z, y, x) bool heart region, outlined in the pictures.
        show_patient: print the patient's name, ID, birth date and study date (DICOM input).
        content: what :func:`report_content` gathered from these, when already at hand.
    """
    esc = html.escape
    c = content or report_content(vol, labels, report, region, show_patient)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>CAC report {esc(c.scan_id)}</title><style>{CSS}</style></head><body>",
        "<h1>Coronary artery calcium score</h1>",
        f'<div class="sub">Scan {esc(c.scan_id)} &middot; {esc(DISCLAIMER)}</div>',
    ]
    if c.patient:
        parts.append(
            '<div class="sub">'
            + " &middot; ".join(f"{esc(k)}: {esc(v)}" for k, v in c.patient.items())
            + "</div>"
        )
    parts += [
        f'<div class="drs">{esc(c.headline).replace("   ", " &nbsp; ")}</div>',
        _table(c),
        *[f'<div class="mesa">{esc(line)}</div>' for line in c.mesa],
        f'<div class="sub">{esc(CATEGORY_TEXT)}</div>',
        _legend(c.with_region),
        f'<div class="sub">{esc(KEY_SLICE_TEXT)}</div>',
        '<div class="figs">',
        *[
            f'<figure><img alt="{esc(cap)}" src="data:image/png;base64,{_png(hu, lab, reg)}">'
            f"<figcaption>{esc(cap)}</figcaption></figure>"
            for hu, lab, reg, cap in c.figures
        ],
        "</div>",
    ]
    if c.warnings:
        parts.append('<div class="warn"><b>Warnings</b><ul>')
        parts += [f"<li>{esc(w)}</li>" for w in c.warnings]
        parts.append("</ul></div>")
    parts += [
        '<div class="foot">',
        "<br>".join(esc(line) for line in c.footer),
        "</div></body></html>",
    ]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path

"""`cac-score --sr` (DICOM SR, TID 1500) and `--report` (one-page HTML): what they hold."""

from __future__ import annotations

import html
import json
import shutil
import subprocess

import pydicom
import pytest

from cac_lightning.cli.score import main
from cac_lightning.io.sr import SR_CODES, checkpoint_sha256
from cac_lightning.vessels import VESSELS_AND_TOTAL

NUMS = {"agatston": "agatston", "volume_mm3": "volume", "mass_mg": "mass", "lesions": "lesions"}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """One toy series scored once with --seg --sr --report (an always-LAD model)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "_cac_conftest", Path(__file__).resolve().parents[1] / "conftest.py"
    )
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    root = tmp_path_factory.mktemp("sr")
    series = conf.small_series(root / "s", 11, calcified_slices=2)
    ckpt = conf.always_lad_checkpoint(root / "m.ckpt")
    out = root / "out"
    args = [str(series), "--ckpt", str(ckpt), "--out", str(out), "--device", "cpu"]
    args += ["--heart", "off", "--seg", "--sr", "--report"]
    assert main(args) == 0
    (js,) = out.glob("*.json")
    return {"out": out, "report": json.loads(js.read_text()), "ckpt": ckpt, "series": series}


def _items(seq):
    for item in seq:
        yield item
        yield from _items(item.get("ContentSequence", []))


def _code(item, attr="ConceptNameCodeSequence"):
    c = item[attr][0]
    return (str(c.CodeValue), str(c.CodingSchemeDesignator))


def _groups(ds):
    """{finding-site code: {concept code: value}} of every measurement group."""
    out = {}
    for item in _items(ds.ContentSequence):
        if item.ValueType != "CONTAINER" or _code(item) != ("125007", "DCM"):
            continue
        values, site = {}, None
        for child in item.ContentSequence:
            if child.ValueType == "CODE" and _code(child) == ("363698007", "SCT"):
                site = _code(child, "ConceptCodeSequence")
            elif child.ValueType == "NUM":
                values[_code(child)] = float(child.MeasuredValueSequence[0].NumericValue)
            elif child.ValueType == "CODE":
                values[_code(child)] = str(child.ConceptCodeSequence[0].CodeMeaning)
        out[site] = values
    return out


def test_sr_holds_every_number_of_the_json(scored):
    report = scored["report"]
    (path,) = scored["out"].glob("*_sr.dcm")
    ds = pydicom.dcmread(path)
    groups = _groups(ds)
    assert len(groups) == 5
    for vessel in VESSELS_AND_TOTAL:
        values = groups[SR_CODES[vessel][:2]]
        for key, concept in NUMS.items():
            assert values[SR_CODES[concept][:2]] == pytest.approx(report["scores"][vessel][key])
    total = groups[SR_CODES["total"][:2]]
    assert report["scores"]["LAD"]["agatston"] > 0
    assert total[SR_CODES["threshold"][:2]] == pytest.approx(report["threshold_hu"])
    assert total[SR_CODES["cac_drs"][:2]] == report["cac_drs_report"] == "CAC-DRS A1/N1"
    assert total[SR_CODES["risk_category"][:2]] == report["risk_category"]
    assert report["model"]["checkpoint_sha256"] == checkpoint_sha256([scored["ckpt"]])
    text = path.read_bytes()
    assert report["model"]["checkpoint_sha256"].encode() in text


def test_sr_references_its_source_series_and_seg(scored):
    (sr_path,) = scored["out"].glob("*_sr.dcm")
    (seg_path,) = scored["out"].glob("*_seg.dcm")
    sr, seg = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path, stop_before_pixels=True)
    src = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(scored["series"].iterdir())]
    assert sr.StudyInstanceUID == src[0].StudyInstanceUID
    evidence = {
        str(inst.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for inst in series.ReferencedSOPSequence
    }
    assert evidence == {str(d.SOPInstanceUID) for d in src} | {str(seg.SOPInstanceUID)}
    segments = [
        (
            str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
            int(i.ReferencedSOPSequence[0].ReferencedSegmentNumber),
        )
        for i in _items(sr.ContentSequence)
        if i.ValueType == "IMAGE" and "ReferencedSegmentNumber" in i.ReferencedSOPSequence[0]
    ]
    assert segments == [(str(seg.SOPInstanceUID), n) for n in (1, 2, 3, 4)]
    assert str(sr.PatientID) == str(src[0].PatientID)  # not de-identified: as the SEG


def test_sr_reads_back_with_highdicom(scored):
    import highdicom as hd

    (path,) = scored["out"].glob("*_sr.dcm")
    sr = hd.sr.srread(path)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 4
    lad = [g for g in groups if g.finding_sites[0].value.value == SR_CODES["LAD"][0]][0]
    (m,) = lad.get_measurements(name=hd.sr.CodedConcept(*SR_CODES["agatston"]))
    assert m.value == pytest.approx(scored["report"]["scores"]["LAD"]["agatston"])


@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dcmtk's dsrdump not installed")
def test_dsrdump_reads_the_sr(scored):
    (path,) = scored["out"].glob("*_sr.dcm")
    run = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Coronary artery calcium score" in run.stdout and "CAC-DRS A1/N1" in run.stdout


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools' dciodvfy not installed")
def test_dciodvfy_finds_no_error(scored):
    (path,) = scored["out"].glob("*_sr.dcm")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_sr_deidentified(tmp_path, lad_ckpt, make_small_series):
    series = make_small_series(tmp_path / "s", 12)
    out = tmp_path / "out"
    args = [str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--sr", "--seg-deidentified"]) == 0
    (path,) = out.glob("*_sr.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientID) == ""
    assert b"SYN0012" not in path.read_bytes()


def test_report_holds_the_numbers_and_no_patient(scored):
    report = scored["report"]
    (path,) = scored["out"].glob("*_report.html")
    page = path.read_text()
    assert report["cac_drs_report"] in page
    for vessel in VESSELS_AND_TOTAL:
        s = report["scores"][vessel]
        assert f"<td>{s['agatston']:.1f}</td><td>{s['volume_mm3']:.1f}</td>" in page
    assert report["model"]["checkpoint_sha256"] in page
    assert page.count("data:image/png;base64,") == 2  # one key slice (LAD) + the projection
    assert "SYN0011" not in page
    for warning in report["warnings"]:
        assert warning.split(":")[0] in page


def test_report_pdf_is_one_a4_page(scored):
    (pdf,) = scored["out"].glob("*_report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") == 1
    assert b"/MediaBox [ 0 0 595.44 841.68 ]" in data  # A4 in points (8.27 x 11.69 in)
    assert b"/FontFile" in data or b"/Type3" in data  # fonts travel with the file


def test_report_says_mesa(tmp_path, lad_ckpt, make_small_series):
    series = make_small_series(tmp_path / "s", 15)
    out = tmp_path / "out"
    args = [str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--heart", "off", "--report", "--age", "30", "--sex", "F"]) == 0
    (path,) = out.glob("*_report.html")
    page = path.read_text()
    report = json.loads(next(out.glob("*.json")).read_text())
    assert report["mesa"]["percentile"] is None
    assert f"MESA percentile: not given ({report['mesa']['reason']})" in page
    assert "MESA 10-year CHD risk: not given" in page


def test_report_shows_the_patient_only_when_asked(tmp_path, lad_ckpt, make_small_series, capsys):
    series = make_small_series(tmp_path / "s", 13)
    out = tmp_path / "out"
    args = [str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--report", "--show-patient"]) == 0
    (path,) = out.glob("*_report.html")
    assert "SYN0013" in path.read_text()
    assert main([*args, "--show-patient"]) == 2
    assert "--show-patient goes with --report" in capsys.readouterr().err


def test_sr_and_report_need_a_checkpoint(tmp_path, make_small_series, capsys):
    series = make_small_series(tmp_path / "s", 14)
    assert main([str(series), "--mask", str(series), "--out", str(tmp_path / "o"), "--sr"]) == 2
    assert "--sr and --report need --ckpt" in capsys.readouterr().err


def test_sr_on_a_real_coca_scan_with_anonymised_uids(tmp_path, coca_root, lad_ckpt, caplog):
    """COCA's anonymiser writes UIDs with illegal roots and leading zeros: the SEG and SR
    reference valid UIDs derived from them, read back in dcmtk and highdicom with the JSON's
    numbers, and say so in one warning."""
    import logging

    import highdicom as hd

    from cac_lightning.io.seg import derived_uid

    series = next((coca_root / "Gated_release_final" / "patient" / "2").iterdir())
    out = tmp_path / "out"
    args = [str(series), "--ckpt", str(lad_ckpt), "--out", str(out), "--device", "cpu"]
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--heart", "off", "--seg", "--sr", "--report"]) == 0
    assert "not valid DICOM UIDs" in caplog.text
    (js,) = out.glob("*.json")
    report = json.loads(js.read_text())
    # the warning is the report's too, once (SEG and SR both met it), on the page and in the JSON
    (note,) = [w for w in report["warnings"] if "not valid DICOM UIDs" in w]
    (page,) = out.glob("*_report.html")
    assert html.escape(note) in page.read_text()
    (sr_path,) = out.glob("*_sr.dcm")
    (seg_path,) = out.glob("*_seg.dcm")
    src = pydicom.dcmread(next(series.glob("*.dcm")), stop_before_pixels=True)
    sr, seg = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path, stop_before_pixels=True)
    assert sr.StudyInstanceUID == seg.StudyInstanceUID == derived_uid(src.StudyInstanceUID)
    groups = hd.sr.srread(sr_path).content.get_volumetric_roi_measurement_groups()
    for g in groups:
        vessel = next(
            v for v in VESSELS_AND_TOTAL if SR_CODES[v][0] == g.finding_sites[0].value.value
        )
        (m,) = g.get_measurements(name=hd.sr.CodedConcept(*SR_CODES["agatston"]))
        assert m.value == pytest.approx(report["scores"][vessel]["agatston"])
    if shutil.which("dsrdump"):
        run = subprocess.run(["dsrdump", str(sr_path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    if shutil.which("dciodvfy"):
        for path in (sr_path, seg_path):
            run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            text = run.stdout + run.stderr
            assert [x for x in text.splitlines() if x.startswith("Error")] == [], path.name

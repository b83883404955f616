"""Scan records from label maps and the paper's Tables 3-7 on hand-made cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cac_lightning.errors import InputError
from cac_lightning.evaluation.records import (
    NOT_DETECTED,
    ScanRecord,
    lesion_detection,
    scan_record,
)
from cac_lightning.evaluation.tables import (
    bland_altman_table,
    build_tables,
    flat_metrics,
    table3,
    table4,
    table5,
    table6,
    table7,
    tables_by_split,
    zero_calcium_summary,
)
from cac_lightning.scoring import ScoringConfig, score_scan
from cac_lightning.vessels import LABELS, VESSELS
from cac_lightning.volume import Geometry

LM, LAD, CX, RCA = (LABELS[v] for v in VESSELS)

# Hong et al. 2022, Table 5, rows predicted (LM, LAD, CX, RCA, not detected),
# columns standard (LM, LAD, CX, RCA) then "not CAC".
TABLE5 = {
    "train": [
        [290, 6, 0, 0, 10],
        [0, 1993, 2, 0, 52],
        [0, 2, 1059, 3, 55],
        [0, 0, 0, 1721, 86],
        [5, 9, 10, 75, None],
    ],
    "test1": [
        [76, 3, 0, 0, 18],
        [4, 602, 2, 0, 23],
        [3, 2, 260, 3, 21],
        [0, 0, 11, 483, 25],
        [12, 16, 20, 30, None],
    ],
}
TABLE7_TEST1 = [
    [10, 1, 1, 0, 0],
    [0, 20, 1, 0, 0],
    [0, 3, 71, 1, 0],
    [0, 0, 2, 46, 2],
    [0, 0, 0, 0, 57],
]
RISK = ("C1", "C2", "C3", "C4", "C5")


# ------------------------------------------------------------------ label maps -> record


def calcium_labels(hu, lab, threshold, pixel_area, min_area):
    """The calcium voxels score_scan keeps (the one definition), as a label map."""
    side = pixel_area**0.5
    g = Geometry(shape=hu.shape, pixel_spacing=(side, side), slice_spacing=3.0)
    cfg = ScoringConfig(threshold_hu=threshold, min_area_mm2=min_area)
    return score_scan(hu, lab, g, cfg).calcium_labels(hu.shape)


def test_calcium_kept_by_score_scan_threshold_noise_and_connectivity():
    hu = np.full((1, 8, 8), 300, dtype=np.int16)
    lab = np.zeros((1, 8, 8), dtype=np.uint8)
    lab[0, 0, 0:4] = LAD  # 4 px x 0.25 mm² = 1.0 mm²: kept
    lab[0, 2, 0:3] = CX  # 0.75 mm²: noise
    lab[0, 4, 0], lab[0, 5, 1], lab[0, 6, 2], lab[0, 7, 3] = RCA, RCA, RCA, RCA  # diagonal
    lab[0, 4:6, 6] = LM  # 2 LM px next to 2 LAD px: separate components, both noise
    lab[0, 4:6, 7] = LAD
    hu[0, 0, 3] = 129  # below 130 HU: not calcium, and the rest is then 0.75 mm²
    out = calcium_labels(hu, lab, 130.0, 0.25, 1.0)
    assert out[0, 0].tolist() == [0] * 8
    assert not out[0, 2].any()
    assert [out[0, 4 + i, i] for i in range(4)] == [RCA] * 4  # 8-connected: 1.0 mm²
    assert not out[0, 4:6, 6:].any()
    hu[0, 0, 3] = 130  # exactly the threshold counts
    assert calcium_labels(hu, lab, 130.0, 0.25, 1.0)[0, 0, :4].tolist() == [LAD] * 4
    assert (calcium_labels(hu, lab, 130.0, 0.25, 0.0) == lab).all()


def test_lesion_detection_connectivity_6_vs_26():
    ref = np.zeros((2, 4, 4), dtype=np.uint8)
    ref[0, 1, 1] = ref[1, 2, 2] = LAD  # touch only by a corner across slices
    pred = np.zeros_like(ref)
    pred[1, 2, 2] = LAD
    lesions6, _ = lesion_detection(ref, pred, connectivity=6)
    lesions26, _ = lesion_detection(ref, pred, connectivity=26)
    assert sorted(lesions6) == [("LAD", "LAD"), ("LAD", NOT_DETECTED)]
    assert lesions26 == [("LAD", "LAD")]
    with pytest.raises(InputError):
        lesion_detection(ref, pred, connectivity=8)


def test_lesion_detection_majority_tie_and_not_cac():
    ref = np.zeros((1, 6, 6), dtype=np.uint8)
    ref[0, 0, 0:4] = RCA
    pred = np.zeros_like(ref)
    pred[0, 0, 0:2] = CX
    pred[0, 0, 2:4] = LAD  # 2 vs 2: the lower label (LAD) wins
    pred[0, 5, 5] = LM  # touches no reference calcium
    pred[0, 1, 0] = RCA  # touches nothing itself, but is its own component -> not CAC
    lesions, not_cac = lesion_detection(ref, pred)
    assert lesions == [("RCA", "LAD")]
    assert not_cac == {"LM": 1, "LAD": 0, "CX": 0, "RCA": 1}


def _hand_scan():
    """3 slices of 8 x 8, 0.5 mm pixels (0.25 mm²), 3 mm apart."""
    g = Geometry(shape=(3, 8, 8), pixel_spacing=(0.5, 0.5), slice_spacing=3.0)
    hu = np.zeros(g.shape, dtype=np.int16)
    ref = np.zeros(g.shape, dtype=np.uint8)
    pred = np.zeros(g.shape, dtype=np.uint8)
    # Lesion A (LAD): slice 0 6 px at 300 HU (1.5 mm² x 3), slice 1 4 px at 450 HU (1 x 4).
    hu[0, 1:4, 1:3], ref[0, 1:4, 1:3] = 300, LAD
    hu[1, 1:3, 1:3], ref[1, 1:3, 1:3] = 450, LAD
    # Lesion B (RCA): slice 2, 4 px at 200 HU (1 mm² x 2).
    hu[2, 5:7, 5:7], ref[2, 5:7, 5:7] = 200, RCA
    # Lesion C (LM): slice 0, 4 px at 150 HU (1 mm² x 1).
    hu[0, 5:7, 1:3], ref[0, 5:7, 1:3] = 150, LM
    # Reference noise (1 px, 0.25 mm²) and a sub-threshold labelled voxel.
    hu[2, 0, 7], ref[2, 0, 7] = 500, CX
    hu[2, 3, 3], ref[2, 3, 3] = 100, LAD
    # Prediction: A's slice 0 as LAD (6 px), A's slice 1 as CX (4 px) -> majority LAD;
    # B as CX; C missed; a false LM lesion (4 px at 250 HU); 1 px RCA noise.
    pred[0, 1:4, 1:3] = LAD
    pred[1, 1:3, 1:3] = CX
    pred[2, 5:7, 5:7] = CX
    hu[2, 0:2, 3:5], pred[2, 0:2, 3:5] = 250, LM
    hu[1, 6, 0], pred[1, 6, 0] = 600, RCA
    return g, hu, ref, pred


def test_scan_record_from_label_maps():
    g, hu, ref, pred = _hand_scan()
    rec = scan_record("scan-a", "test", hu, ref, pred, g)
    assert rec.ref["LAD"]["agatston"] == pytest.approx(1.5 * 3 + 1.0 * 4)
    assert rec.ref["total"]["agatston"] == pytest.approx(8.5 + 2 + 1)
    assert rec.pred["CX"]["agatston"] == pytest.approx(4 + 2)
    assert rec.pred["total"]["agatston"] == pytest.approx(4.5 + 6 + 2)
    assert (rec.ref_risk, rec.pred_risk) == ("C3", "C3")
    assert (rec.tp, rec.fp, rec.fn) == (14, 4, 4)
    conf = np.asarray(rec.voxel_confusion)
    assert conf[LAD, LAD] == 6 and conf[LAD, CX] == 4 and conf[RCA, CX] == 4
    assert conf[LM, 0] == 4 and conf[0, LM] == 4 and conf[0, 0] == 192 - 22
    assert conf.sum() == 192
    assert rec.lesions == [("LM", NOT_DETECTED), ("LAD", "LAD"), ("RCA", "CX")]
    assert rec.not_cac == {"LM": 1, "LAD": 0, "CX": 0, "RCA": 0}
    back = ScanRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec
    assert rec.threshold_hu == 130.0 and rec.kvp is None


def test_scan_record_config_and_shape_checks():
    g, hu, ref, pred = _hand_scan()
    # A 160 HU threshold drops lesion C (150 HU) from the reference calcium.
    rec = scan_record("scan-a", "test", hu, ref, pred, g, {"threshold_hu": 160.0})
    assert ("LM", NOT_DETECTED) not in rec.lesions and rec.fn == 0
    with pytest.raises(InputError):
        scan_record("bad", "test", hu[:2], ref, pred, g)


# ------------------------------------------------------------------ tables


def test_table3_hand_values(make_record):
    recs = [
        make_record("a", 10, 12, tp=8, fp=2, fn=0),  # P 0.8, R 1, Dice 16/18, IoU 0.8
        make_record("b", 0, 1, tp=1, fp=0, fn=3),  # P 1, R 0.25, Dice 0.4, IoU 0.25
        make_record("c", 5, 5),  # no calcium voxels at all: left out of the voxel means
    ]
    t = table3(recs)
    assert t["agatston_mae"] == pytest.approx((2 + 1 + 0) / 3)
    assert t["precision"] == pytest.approx(0.9)
    assert t["recall"] == pytest.approx(0.625)
    assert t["dice"] == pytest.approx((16 / 18 + 0.4) / 2)
    assert t["iou"] == pytest.approx(0.525)
    assert t["n_voxel_scans"] == 2
    assert t["pooled"]["precision"] == pytest.approx(9 / 11)
    assert t["pooled"]["dice"] == pytest.approx(18 / 23)


def test_table3_dice_per_vessel(make_record):
    conf = np.zeros((5, 5), dtype=int)
    conf[LAD, LAD], conf[LAD, CX], conf[0, LAD] = 6, 2, 2
    t = table3([make_record("a", 1, 1, voxel_confusion=conf.tolist())])
    assert t["dice_per_vessel"]["LAD"] == pytest.approx(12 / (8 + 8))
    assert t["dice_per_vessel"]["CX"] == 0.0
    assert math.isnan(t["dice_per_vessel"]["LM"])


@pytest.mark.parametrize(
    ("tn", "fn", "fp", "tp", "sens", "spec"),
    [(29, 3, 5, 717, 0.9958, 0.8529), (10, 2, 0, 203, 0.9902, 1.0)],  # paper Table 4
)
def test_table4_reproduces_paper(make_record, tn, fn, fp, tp, sens, spec):
    recs = (
        [make_record("tn", 0, 0)] * tn
        + [make_record("fn", 20, 0)] * fn
        + [make_record("fp", 0, 3)] * fp
        + [make_record("tp", 50, 40)] * tp
    )
    t = table4(recs)
    assert t["matrix"] == [[tn, fn], [fp, tp]]
    assert round(t["sensitivity"], 4) == sens and round(t["specificity"], 4) == spec


@pytest.mark.parametrize(
    ("name", "rates", "not_detected", "not_cac"),
    [
        ("train", (0.983, 0.992, 0.989, 0.957), 0.019, 0.039),
        ("test1", (0.800, 0.966, 0.887, 0.936), 0.051, 0.057),
    ],
)
def test_table5_reproduces_paper(make_record, name, rates, not_detected, not_cac):
    m = TABLE5[name]
    rows = [*VESSELS, NOT_DETECTED]
    lesions = [(VESSELS[j], rows[i]) for i in range(5) for j in range(4) for _ in range(m[i][j])]
    half = len(lesions) // 2  # spread over two scans
    r1 = make_record(
        "a", 100, 100, lesions=lesions[:half], not_cac={v: m[i][4] for i, v in enumerate(VESSELS)}
    )
    r2 = make_record("b", 100, 100, lesions=lesions[half:])
    t = table5([r1, r2])
    assert t["matrix"] == m
    assert tuple(round(t["detection_rate"][v], 3) for v in VESSELS) == rates
    assert round(t["not_detected_rate"], 3) == not_detected
    assert round(t["not_cac_rate"], 3) == not_cac
    lm_total = sum(m[i][0] for i in range(5))
    assert t["detection_rate_any_vessel"]["LM"] == pytest.approx((lm_total - m[4][0]) / lm_total)


def test_table5_rejects_unknown_class(make_record):
    with pytest.raises(InputError):
        table5([make_record("a", 1, 1, lesions=[("LAD", "aorta")])])


def test_table6_median_iqr_and_icc(make_record):
    ref = [0, 10, 20, 30, 40]
    pred = [0, 12, 18, 30, 44]
    t = table6([make_record(str(i), r, p) for i, (r, p) in enumerate(zip(ref, pred, strict=True))])
    total = t["total"]["agatston"]
    # SPSS percentiles at rank (n + 1)p: Q1 at rank 1.5 = 5, Q3 at rank 4.5 = 35.
    assert (total["ref_median"], total["ref_iqr"]) == (20.0, 30.0)
    assert (total["pred_median"], total["pred_iqr"]) == (18.0, 37.0 - 6.0)  # Q1 6, Q3 37
    from cac_lightning.evaluation.stats import icc_a1

    assert total["icc"] == pytest.approx(icc_a1(ref, pred).icc)
    assert total["n"] == 5 and total["p_value"] < 0.05
    assert t["total"]["volume_mm3"]["ref_median"] == 10.0  # volume = 0.5 x Agatston here
    lm = t["LM"]["agatston"]  # all zero: no variance
    assert math.isnan(lm["icc"]) and "no variance" in lm["reason"]


def test_table7_reproduces_paper_kappa(make_record):
    recs = []
    for i, row in enumerate(TABLE7_TEST1):  # rows predicted, columns reference
        for j, count in enumerate(row):
            recs += [make_record(f"{i}{j}", 1, 1, ref_risk=RISK[j], pred_risk=RISK[i])] * count
    t = table7(recs)
    assert t["matrix"] == TABLE7_TEST1
    assert round(t["kappa"]["kappa"], 3) == 0.931
    assert (round(t["kappa"]["ci_low"], 3), round(t["kappa"]["ci_high"], 3)) == (0.891, 0.971)
    assert t["accuracy"] == pytest.approx(204 / 215)
    assert t["kappa_linear"]["kappa"] > t["kappa"]["kappa"]
    with pytest.raises(InputError):
        table7([make_record("x", 1, 1, ref_risk="A0")])


def test_bland_altman_and_zero_calcium(make_record):
    recs = [
        make_record("z1", 0, 0),
        make_record("z2", 0, 4),
        make_record("z3", 0, 0),
        make_record("p1", 100, 98),
        make_record("p2", 50, 0),
    ]
    ba = bland_altman_table(recs)
    d = np.array([0, 4, 0, -2, -50], dtype=float)
    assert ba["agatston"]["mean_diff"] == pytest.approx(d.mean())
    assert ba["agatston"]["sd_diff"] == pytest.approx(d.std(ddof=1))
    assert ba["volume_mm3"]["mean_diff"] == pytest.approx(0.5 * d.mean())
    z = zero_calcium_summary(recs)
    assert (z["n_scans"], z["n_flagged"], z["flagged"]) == (3, 1, ["z2"])
    assert z["flagged_rate"] == pytest.approx(1 / 3)


def test_build_tables_by_split_and_flat_metrics(make_record):
    recs = [
        make_record("a", 10, 12, tp=8, fp=2, fn=0, lesions=[("LAD", "LAD")]),
        make_record("b", 200, 190, tp=5, fp=0, fn=5, lesions=[("RCA", NOT_DETECTED)]),
        make_record("c", 0, 0, split="test_zero"),
        make_record("d", 0, 7, split="test_zero"),
    ]
    by_split = tables_by_split(recs)
    assert list(by_split) == ["test", "test_zero"]
    assert by_split["test"]["n_scans"] == 2
    assert by_split["test_zero"]["zero_calcium"]["flagged"] == ["d"]
    flat = flat_metrics(by_split["test"], prefix="test/")
    assert flat["test/agatston_mae"] == pytest.approx(6.0)
    assert flat["test/icc_agatston_total"] == by_split["test"]["table6"]["total"]["agatston"]["icc"]
    assert flat["test/detection_rate_LAD"] == 1.0 and flat["test/detection_rate_RCA"] == 0.0
    assert math.isnan(flat["test/detection_rate_LM"])
    # Risk: a is C2 -> C3, b is C4 -> C4: po = 0.5, pe = 0.25 -> kappa = 1/3.
    assert flat["test/kappa"] == pytest.approx(1 / 3)
    assert {
        "test/kappa_linear",
        "test/icc_mass_LM",
        "test/ba_volume_loa_high",
        "test/zero_cac_flagged",
        "test/sensitivity",
        "test/dice",
    } <= set(flat)
    assert all(isinstance(v, float) for v in flat.values())
    zero = flat_metrics(build_tables([r for r in recs if r.split == "test_zero"]), prefix="z/")
    assert zero["z/zero_cac_flagged"] == 1.0 and math.isnan(zero["z/icc_agatston_LM"])

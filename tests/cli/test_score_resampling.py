"""`cac-score --ckpt` on a scan finer than the checkpoint's training grid, answer by hand.

The checkpoint is a real U-Net whose weights are set by hand so that it is a deterministic
stand-in for a trained network: it calls every HU >= threshold candidate pixel of the grid it
sees LAD (logit ``10 * mask`` against a background logit 3) and everything else background.
It records a training pixel spacing of 1.0 mm; the scan has 0.5 mm pixels, so the Predictor
resamples each slice to 1.0 mm, runs the network there, maps the logits back and gates them
with the native HU (``inference/predictor.py``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cac_lightning.cli.score import main
from cac_lightning.io import write_dicom_series
from cac_lightning.io.volume import Geometry

TRAINED_MM = 1.0
NATIVE_MM = 0.5
SLICE_MM = 1.5  # Agatston factor slice_spacing / 3 = 0.5


def candidate_is_lad_checkpoint(path, spacing_mm: float = TRAINED_MM, context: int = 0):
    """A ``unet`` (channels 4, 8) that passes the input's mask channel straight to the LAD
    logit: identity 3x3 kernels on one channel of the top row, BatchNorm at its defaults
    (eval: x / sqrt(1 + eps)), the lower row and the up-convolution zero. With ``context`` the
    network takes the neighbour slices too (2 + 2 * context channels) and ignores them."""
    from cac_lightning.models import CACSegModule

    module = CACSegModule(
        net={"name": "unet", "channels": [4, 8]},
        criterion={"name": "focal"},
        input={"window": [-1024.0, 2048.0], "threshold_hu": 130.0, "context": context},
        data_geometry={"spacing_mm": spacing_mm, "fov_mm": None},
    )
    net = module.net
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.fill_(1.0)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
        top_in, top_out = net.nodes["x_0_0"][0], net.nodes["x_0_0"][3]
        top_in.weight[0, 1, 1, 1] = 1.0  # mask channel -> channel 0
        top_out.weight[0, 0, 1, 1] = 1.0
        dec_in, dec_out = net.nodes["x_0_1"][0], net.nodes["x_0_1"][3]
        dec_in.weight[0, 0, 1, 1] = 1.0  # skip channel 0 (first in the concatenation)
        dec_out.weight[0, 0, 1, 1] = 1.0
        net.head.weight[2, 0, 0, 0] = 10.0  # LAD
        net.head.bias[0] = 3.0  # background: LAD wins where the (interpolated) mask > 0.3
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def _scan(folder):
    """3 slices of 40 x 48 px at 0.5 mm, 1.5 mm apart, 40 HU background.

    Slice 1: blob A, 6 x 8 px of 420 HU on even rows/columns (exactly 3 x 4 training pixels);
    and a line 1 px (0.5 mm) wide, 16 px long, of 200 HU: 100 HU or less on the 1.0 mm grid
    (anti-aliased: 0.375 * 200 + 0.625 * 40), so no candidate there, invisible to a network
    that sees 1.0 mm pixels. Slice 2: blob B, 3 x 3 px of 700 HU off the training grid.
    """
    hu = np.full((3, 40, 48), 40, np.int16)
    hu[1, 10:16, 30:38] = 420
    hu[1, 30, 4:20] = 200
    hu[2, 21:24, 5:8] = 700
    g = Geometry(
        shape=hu.shape,
        pixel_spacing=(NATIVE_MM, NATIVE_MM),
        slice_spacing=SLICE_MM,
        slice_thickness=SLICE_MM,
    )
    return write_dicom_series(hu, g, folder, patient_id="SYN0022")


@pytest.mark.parametrize("context", [0, 1])
def test_score_resamples_to_training_spacing_and_scores_native_voxels(tmp_path, context):
    """Also with a 2.5D checkpoint (one neighbour slice a side: 4 input channels)."""
    ckpt = candidate_is_lad_checkpoint(tmp_path / "model.ckpt", context=context)
    scan = _scan(tmp_path / "scan")
    out = tmp_path / "out"
    assert main([str(scan), "--ckpt", str(ckpt), "--out", str(out), "--device", "cpu"]) == 0
    (json_path,) = out.glob("scan-*.json")
    report = json.loads(json_path.read_text())
    assert report["model"]["spacing_mm"] == TRAINED_MM
    assert torch.load(ckpt, weights_only=True)["state_dict"]["net.nodes.x_0_0.0.weight"].shape[
        1
    ] == (2 + 2 * context)
    # By hand, native voxels: area (px * 0.25 mm²) * weight(max HU) * slice spacing / 3.
    pixel_mm2 = NATIVE_MM * NATIVE_MM
    factor = SLICE_MM / 3.0
    blob_a = 6 * 8 * pixel_mm2 * 4 * factor  # 12 mm², 420 HU -> weight 4: 24
    blob_b = 3 * 3 * pixel_mm2 * 4 * factor  # 2.25 mm², 700 HU -> weight 4: 4.5
    # The 0.5 mm line (4 mm², weight 2: 4 more) is no candidate on the 1.0 mm grid: a network
    # predicting at the native spacing would add it.
    lad = report["scores"]["LAD"]
    assert lad["agatston"] == pytest.approx(blob_a + blob_b)
    assert lad["volume_mm3"] == pytest.approx((48 + 9) * pixel_mm2 * SLICE_MM)
    assert report["scores"]["total"]["agatston"] == pytest.approx(28.5)
    for vessel in ("LM", "CX", "RCA"):
        assert report["scores"][vessel]["agatston"] == 0.0

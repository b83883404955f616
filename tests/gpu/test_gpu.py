"""CUDA-only checks (``pytest -m gpu``; run by benchmarks/gpu_check.sh): a bf16 channels_last
Lightning training step and ``cac-score --device cuda``. Skipped without CUDA."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


class _Batches(torch.utils.data.Dataset):
    """Random 2-channel slices with a calcium square on the mask channel (uint8 targets)."""

    def __init__(self, n: int = 16, size: int = 128) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        image = torch.rand(2, self.size, self.size, generator=g)
        image[1] = 0.0
        target = torch.zeros(self.size, self.size, dtype=torch.long)
        image[1, 40:48, 40:48] = 1.0
        target[40:48, 40:48] = 1 + i % 4
        return {"image": image, "target": target}


def _module():
    from cac_lightning.models import CACSegModule

    return CACSegModule(
        net={"name": "unetplusplus", "channels": [8, 16, 32, 64, 128]},
        criterion={"name": "focal", "alpha": 0.5, "gamma": 3.0},
        input={"window": [-1024.0, 2048.0]},
        channels_last=True,
    )


def test_bf16_channels_last_training_step(tmp_path):
    import lightning as L

    module = _module()
    before = [p.detach().clone() for p in module.parameters()]
    loader = torch.utils.data.DataLoader(_Batches(), batch_size=4)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=loader)
    loss = float(trainer.callback_metrics["train/loss"])
    assert np.isfinite(loss) and loss > 0
    assert all(p.dtype == torch.float32 for p in module.parameters())  # master weights fp32
    after = list(module.parameters())
    changed = sum(not torch.equal(a, b.cpu()) for a, b in zip(before, after, strict=True))
    assert changed > len(before) // 2
    trainer.save_checkpoint(tmp_path / "gpu.ckpt")
    assert (tmp_path / "gpu.ckpt").stat().st_size > 10_000


def test_cac_score_on_cuda(tmp_path):
    from cac_lightning.cli.score import main
    from cac_lightning.io.dicom_write import write_dicom_series
    from cac_lightning.volume import Geometry

    module = _module()
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save(ckpt, tmp_path / "m.ckpt")
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 15, size=(12, 128, 128)).astype(np.int16)
    hu[5, 60:66, 60:66] = 450
    g = Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=3.0,
                 origin=(0.0, 0.0, 0.0), slice_thickness=3.0)  # fmt: skip
    scan = write_dicom_series(hu, g, tmp_path / "scan", patient_id="GPUTEST")
    out = tmp_path / "out"
    ckpt = str(tmp_path / "m.ckpt")
    rc = main([str(scan), "--ckpt", ckpt, "--out", str(out), "--device", "cuda"])
    assert rc == 0
    reports = [json.loads(p.read_text()) for p in out.glob("*.json")]
    reports = [r for r in reports if "scores" in r]
    assert len(reports) == 1 and reports[0]["scores"]["total"]["agatston"] >= 0.0


def test_cuda_graphs_keep_the_loss_curve(tmp_path):
    """50 paper-recipe steps (batch 4, Adam, focal loss) with and without CUDA graphs: the same
    loss curve within float tolerance (the captured step computes the same numbers)."""
    import lightning as L

    class _Losses(L.Callback):
        def __init__(self):
            self.values = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.values.append(float(outputs["loss"]))  # the test's own host sync

    curves = []
    for graphs in (False, True):
        L.seed_everything(0)
        module = _module()
        module.hparams.cuda_graphs = graphs
        losses = _Losses()
        loader = torch.utils.data.DataLoader(_Batches(n=200), batch_size=4, drop_last=True)
        L.Trainer(
            accelerator="gpu",
            devices=1,
            max_steps=50,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            callbacks=[losses],
            default_root_dir=tmp_path,
        ).fit(module, loader)
        assert module._compiled is graphs
        curves.append(np.array(losses.values))
    assert len(curves[0]) == len(curves[1]) == 50
    np.testing.assert_allclose(curves[1], curves[0], rtol=2e-3, atol=1e-5)

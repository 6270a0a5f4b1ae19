"""videolstm.features.backbones: VGG-16 in torchvision's layout, weights from any URI, the small CNN."""

from __future__ import annotations

import io
import os
import pickle

import pytest
import torch

from tests.pipeline_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from videolstm.features.backbones import (
    VGG16,
    SmallFrameCNN,
    WeightsError,
    build_frame_cnn,
    load_state_dict_uri,
    load_vgg16_weights,
)
from videolstm.store import storage as st

#: torchvision.models.vgg16's state dict (written out by hand: torchvision is not a dependency).
_CONVS = [
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (17, 256, 512),
    (19, 512, 512),
    (21, 512, 512),
    (24, 512, 512),
    (26, 512, 512),
    (28, 512, 512),
]


def torchvision_vgg16_shapes(num_classes: int = 1000, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for index, cin, cout in _CONVS:
        shapes[f"features.{index}.weight"] = (cout, in_channels if index == 0 else cin, 3, 3)
        shapes[f"features.{index}.bias"] = (cout,)
    for index, fan_in, fan_out in ((0, 512 * 7 * 7, 4096), (3, 4096, 4096), (6, 4096, num_classes)):
        shapes[f"classifier.{index}.weight"] = (fan_out, fan_in)
        shapes[f"classifier.{index}.bias"] = (fan_out,)
    return shapes


def _allocated_vgg16(num_classes: int, in_channels: int = 3) -> VGG16:
    """A VGG16 with uninitialised (allocated) parameters: cheap, and enough to load weights into."""
    with torch.device("meta"):
        model = VGG16(num_classes, in_channels)
    return model.to_empty(device="cpu")


def _random_weights(keys: list[str], num_classes: int = 1000) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = torchvision_vgg16_shapes(num_classes)
    return {k: torch.randn(shapes[k], generator=generator) for k in keys}


FIRST_CONVS = ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias", "features.5.weight", "features.5.bias"]


def test_vgg16_state_dict_has_torchvision_keys_and_shapes():
    with torch.device("meta"):
        model = VGG16(num_classes=101)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == torchvision_vgg16_shapes(101)
    assert list(got) == list(torchvision_vgg16_shapes(101))  # same order too


def test_vgg16_flow_network_differs_only_in_the_first_convolution():
    with torch.device("meta"):
        model = VGG16(num_classes=10, in_channels=10)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == torchvision_vgg16_shapes(10, in_channels=10)


def test_vgg16_gives_512x7x7_pool5_for_224_input_and_fc7_after_the_relu():
    torch.manual_seed(0)
    model = VGG16(num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
        small = model(torch.randn(2, 3, 64, 64))  # the adaptive pool makes any size 7x7
    assert out.pool5.shape == (1, 512, 7, 7) and small.pool5.shape == (2, 512, 7, 7)
    assert out.fc7.shape == (1, 4096) and out.logits.shape == (1, 5)
    assert (out.fc7 >= 0).all()
    with torch.no_grad():
        hand_fc7 = torch.relu(model.classifier[3](torch.relu(model.classifier[0](out.pool5.flatten(1)))))
        torch.testing.assert_close(out.fc7, hand_fc7)
        torch.testing.assert_close(out.logits, model.classifier[6](out.fc7))


def test_vgg16_weights_load_from_a_local_file(tmp_path):
    weights = _random_weights(FIRST_CONVS + ["classifier.3.weight", "classifier.3.bias"], num_classes=5)
    uri = str(tmp_path / "vgg16-397923af.pth")
    torch.save(weights, uri)
    model = _allocated_vgg16(num_classes=5)
    missing = load_vgg16_weights(model, uri)
    own = model.state_dict()
    for key, tensor in weights.items():
        torch.testing.assert_close(own[key], tensor, rtol=0, atol=0)
    assert missing == sorted(set(torchvision_vgg16_shapes()) - set(weights))


def test_the_imagenet_classifier_is_skipped_when_the_class_count_differs(tmp_path):
    weights = _random_weights(FIRST_CONVS + ["classifier.6.weight", "classifier.6.bias"], num_classes=1000)
    uri = str(tmp_path / "vgg.pth")
    torch.save(weights, uri)
    model = _allocated_vgg16(num_classes=7)
    before = model.classifier[6].weight.detach().clone()
    missing = load_vgg16_weights(model, uri)
    assert "classifier.6.weight" in missing and "classifier.6.bias" in missing
    torch.testing.assert_close(model.classifier[6].weight, before, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(model.features[0].weight, weights["features.0.weight"], rtol=0, atol=0)


def test_a_flow_network_gets_the_rgb_averaged_first_convolution(tmp_path):
    weights = _random_weights(FIRST_CONVS)
    uri = str(tmp_path / "vgg.pth")
    torch.save(weights, uri)
    stack = 5
    model = _allocated_vgg16(num_classes=3, in_channels=2 * stack)
    load_vgg16_weights(model, uri)
    first = model.features[0].weight
    assert first.shape == (64, 2 * stack, 3, 3)
    rgb = weights["features.0.weight"]
    for channel in range(2 * stack):
        expected = (rgb[:, 0] + rgb[:, 1] + rgb[:, 2]) / 3
        torch.testing.assert_close(first[:, channel], expected)
    torch.testing.assert_close(model.features[2].weight, weights["features.2.weight"], rtol=0, atol=0)


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_weights_wrapped_in_a_checkpoint_dict_are_accepted(tmp_path, wrapper):
    weights = _random_weights(FIRST_CONVS)
    uri = str(tmp_path / "wrapped.pth")
    torch.save({wrapper: weights, "epoch": 90}, uri)
    loaded = load_state_dict_uri(uri)
    assert loaded.keys() == weights.keys()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([torch.zeros(2)], "holds a list, not a state dict"),
        (torch.zeros(3, 3), "holds a Tensor, not a state dict"),
        ({}, "holds a dict, not a state dict"),
        ({"weight": "not a tensor"}, "holds a dict, not a state dict"),
    ],
    ids=["list", "tensor", "empty-dict", "dict-of-strings"],
)
def test_a_file_that_is_not_a_state_dict_raises_weights_error_naming_it(tmp_path, content, expected):
    uri = str(tmp_path / "weights.pth")
    torch.save(content, uri)
    with pytest.raises(WeightsError, match=f"weights.pth {expected}"):
        load_state_dict_uri(uri)


def test_garbage_bytes_and_missing_files_raise_weights_error_naming_them(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(WeightsError, match="garbage.pth is not a loadable torch state dict"):
        load_state_dict_uri(str(garbage))
    with pytest.raises(WeightsError, match="absent.pth does not exist"):
        load_state_dict_uri(str(tmp_path / "absent.pth"))


class _Exploit:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_malicious_weights_file_is_refused_and_nothing_executes(tmp_path):
    marker = tmp_path / "pwned"
    uri = tmp_path / "vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(1), "x": _Exploit(f"touch {marker}")}, str(uri))
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(_Exploit(f"touch {marker}"), protocol=2))
    for path in (uri, legacy):
        with pytest.raises(WeightsError, match=path.name):
            load_state_dict_uri(str(path))
    assert not marker.exists()


def test_weights_that_do_not_fit_vgg16_name_the_file_and_the_key(tmp_path):
    prefixed = {f"module.{k}": v for k, v in _random_weights(FIRST_CONVS[:2]).items()}
    uri = str(tmp_path / "ddp.pth")
    torch.save(prefixed, uri)
    with pytest.raises(WeightsError, match=r"ddp.pth: keys \['module.features.0.bias'"):
        load_vgg16_weights(_allocated_vgg16(3), uri)
    wrong = {"features.2.weight": torch.zeros(64, 32, 3, 3)}
    uri = str(tmp_path / "wrong.pth")
    torch.save(wrong, uri)
    with pytest.raises(WeightsError, match=r"wrong.pth: features.2.weight has shape \(64, 32, 3, 3\), expected \(64, 64, 3, 3\)"):
        load_vgg16_weights(_allocated_vgg16(3), uri)


@pytest.mark.integration
def test_vgg16_weights_load_from_s3(moto_s3):
    storage, bucket = moto_s3
    weights = _random_weights(FIRST_CONVS)
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    uri = f"s3://{bucket}/weights/vgg16-397923af.pth"
    st.write_bytes(uri, buffer.getvalue(), storage)
    model = _allocated_vgg16(num_classes=4)
    missing = load_vgg16_weights(model, uri, storage)
    torch.testing.assert_close(model.features[5].weight, weights["features.5.weight"], rtol=0, atol=0)
    assert "features.5.weight" not in missing and "features.7.weight" in missing
    with pytest.raises(WeightsError, match="does not exist"):
        load_state_dict_uri(f"s3://{bucket}/weights/absent.pth", storage)


def test_small_cnn_maps_56x56_frames_to_exactly_7x7_before_the_adaptive_pool():
    torch.manual_seed(0)
    model = SmallFrameCNN(num_classes=4, in_channels=3, channels=(8, 16, 16), fc_dim=32).eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert model.features(x).shape == (2, 16, 7, 7)
        out = model(x)
    assert out.pool5.shape == (2, 16, 7, 7) and out.fc7.shape == (2, 32) and out.logits.shape == (2, 4)
    assert model.pool5_channels == 16 and model.fc7_dim == 32


def test_build_frame_cnn_builds_each_arch_for_a_flow_stack():
    small = build_frame_cnn("small", 3, in_channels=10, channels=(4, 8, 8), fc_dim=16)
    assert isinstance(small, SmallFrameCNN) and small.features[0].in_channels == 10
    with torch.device("meta"):
        vgg = build_frame_cnn("vgg16", 3, in_channels=10)
    assert isinstance(vgg, VGG16) and vgg.features[0].in_channels == 10
    with pytest.raises(ValueError, match="unknown frame CNN arch 'resnet'"):
        build_frame_cnn("resnet", 3, in_channels=3)

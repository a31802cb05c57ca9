"""load_model: the offline default and the torchvision models."""

import pytest
import torch

from captum_hint.attr import resolve_layer
from captum_hint.datasets.models import MODELS, load_model


def test_default_model_is_the_real_efficientnet(real_photos):
    spec = load_model()
    assert spec.name == "efficientnet-lite0" and spec.input_size == 224 and len(spec.wnids) == 1000
    assert spec.wnids[967] == "n07920052"  # espresso
    with torch.no_grad():
        assert spec.model(real_photos).argmax(1)[1] == 967
    for layer in (spec.layer, *spec.layers, spec.gradcam_layer):
        resolve_layer(spec.model, layer)
    pixels = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(spec.denormalize(spec.normalize(pixels)), pixels)


def test_channels_last_models_give_the_contiguous_outputs(real_photos):
    fast, plain = load_model().model, load_model(channels_last=False).model
    conv = fast.get_submodule("_conv_stem")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert plain.get_submodule("_conv_stem").weight.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(fast(real_photos), plain(real_photos), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "resnet50", "inception_v3"])
def test_torchvision_models_with_random_weights(name):
    pytest.importorskip("torchvision")
    spec = load_model(name, weights=None)
    for layer in (spec.layer, *spec.layers, spec.gradcam_layer):
        resolve_layer(spec.model, layer)
    assert spec.input_size == MODELS[name][0] and not spec.model.training


def test_unavailable_weights_give_a_clear_error():
    pytest.importorskip("torchvision")
    try:
        spec = load_model("vgg16")  # real weights: downloaded, or from torch's hub cache
    except OSError as error:
        assert "could not load vgg16 weights 'DEFAULT'" in str(error) and "weights=None" in str(error)
    else:
        assert spec.name == "vgg16"


def test_unknown_model():
    with pytest.raises(ValueError, match="name: unknown model 'alexnet'"):
        load_model("alexnet")

"""All five saliency methods on torchvision models and the real EfficientNet-Lite0."""

import pytest
import torch

from captum_hint.attr import SALIENCY_METHODS, LayerGradient, LayerGuidedBackprop
from captum_hint.hint.regions import responsible_regions

FAST = {"integrated_gradients": {"n_steps": 4}, "smoothgrad": {"n_samples": 3, "seed": 0}}


def run_all_methods(model, layer, images, target):
    results = {}
    for name, method in SALIENCY_METHODS.items():
        results[name] = method(model, layer).attribute(images, target=target, **FAST.get(name, {}))
    return results


@pytest.mark.parametrize(
    "arch, layer, channels, size",
    [("vgg16", "features.20", 512, 8), ("resnet50", "layer3.5", 1024, 4)],
)
def test_torchvision_models_run_all_methods(arch, layer, channels, size):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    images = torch.randn(2, 3, 64, 64)
    for name, saliency in run_all_methods(model, layer, images, target=[3, 7]).items():
        assert saliency.shape == (2, channels, size, size), name
        assert torch.isfinite(saliency).all(), name


def test_efficientnet_lite0_real_photos(efficientnet_lite0, real_photos):
    model = efficientnet_lite0
    with torch.no_grad():
        predicted = model(real_photos).argmax(1).tolist()
    # chelsea is a tabby/tiger/Egyptian cat (281-285), coffee an espresso (967)
    assert 281 <= predicted[0] <= 285 and predicted[1] == 967
    results = run_all_methods(model, "_blocks.10", real_photos, target=predicted)
    for name, saliency in results.items():
        assert saliency.shape == (2, 112, 14, 14), name
        assert torch.isfinite(saliency).all() and saliency.abs().sum() > 0, name
    # The ReLU6 modules after the layer are guided, so the result differs.
    assert not torch.allclose(results["guided_backprop"], results["gradient"])
    regions = responsible_regions(results["smoothgrad"], size=(224, 224))
    fraction = regions.responsible.float().mean(dim=(1, 2, 3))
    assert ((fraction > 0) & (fraction < 1)).all()


def test_efficientnet_concept_target(efficientnet_lite0, real_photos):
    cats = set(range(281, 286))
    by_concept = LayerGradient(efficientnet_lite0, "_blocks.10").attribute(real_photos[:1], target=cats)
    guided = LayerGuidedBackprop(efficientnet_lite0, "_blocks.10").attribute(real_photos[:1], target=cats)
    assert by_concept.shape == guided.shape == (1, 112, 14, 14)


@pytest.mark.parametrize("arch_layer", ["efficientnet:_blocks.10", "resnet18:layer3.1.conv2"])
def test_shared_pass_integrated_gradients_equal_captum_on_real_architectures(arch_layer, efficientnet_lite0,
                                                                                 real_photos):
    # EfficientNet's ReLU6 module runs below and above _blocks.10 (not replayed); ResNet's skip connection
    # and downsample cross layer3.1.conv2. Both must equal Captum's full passes.
    from captum_hint.attr import LayerIntegratedGradients, SharedPassSaliency

    arch, layer = arch_layer.split(":")
    if arch == "resnet18":
        torchvision = pytest.importorskip("torchvision")
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None).eval()
    else:
        model = efficientnet_lite0
    images = torch.nn.functional.interpolate(real_photos, size=96) if arch == "resnet18" else real_photos
    shared = SharedPassSaliency(model, layer, "integrated_gradients").attribute(images, [[3, 7], [5]], n_steps=3,
                                                                               max_rows=3)
    expected = LayerIntegratedGradients(model, layer).attribute(images[[0, 0, 1]], target=[3, 7, 5], n_steps=3)
    torch.testing.assert_close(shared, expected, atol=1e-5, rtol=1e-4)

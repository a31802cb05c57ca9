"""gAP's attribution: activation maps A = G * F, contributions and peaks, against hand-computed values and Captum."""

import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn

from captum_hint.attr import LayerActivationPropagation, LayerGradient
from nets import SmallNet, TwoStageNet


@pytest.fixture
def x():
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_maps_are_gradient_times_activation_with_means_and_peaks(x):
    net = SmallNet().eval()
    result = LayerActivationPropagation(net, "features.2").propagate(x, target=[0, 3, 5])
    gradient = LayerGradient(net, "features.2").attribute(x, target=[0, 3, 5])
    captured = {}
    handle = net.features[2].register_forward_hook(lambda m, i, o: captured.setdefault("f", o.detach()))
    logits = net(x)
    handle.remove()
    torch.testing.assert_close(result.maps, gradient * captured["f"])
    torch.testing.assert_close(result.contributions, result.maps.mean((2, 3)))
    flat = result.maps.flatten(2).argmax(-1)
    assert torch.equal(result.peaks, torch.stack([flat // 8, flat % 8], -1))
    torch.testing.assert_close(result.decisions, logits[torch.arange(3), torch.tensor([0, 3, 5])].detach())


def test_eq11_sum_of_maps_is_gradcam_before_its_relu(x):
    net = TwoStageNet().eval()  # global average pooling and a linear layer after the last conv stage
    maps = LayerActivationPropagation(net, "features.4").attribute(x, target=[2, 0, 1])
    gradcam = LayerGradCam(net, net.features[4]).attribute(x, target=[2, 0, 1], relu_attributions=False)
    torch.testing.assert_close(maps.sum(1, keepdim=True), gradcam)


def test_a_feature_decision_by_hand(x):
    net = TwoStageNet(linear_top=True).eval()
    lower = net.features[1](net.features[0](x)).detach().requires_grad_()
    upper = net.features[3](net.features[2](lower))
    (gradient,) = torch.autograd.grad(upper[:, 2, 1, 3].sum(), lower)
    result = LayerActivationPropagation(net, "features.1").propagate(x, neuron_selector=(2, 1, 3),
                                                                     source_layer="features.3")
    torch.testing.assert_close(result.maps, gradient * lower.detach())
    torch.testing.assert_close(result.decisions, upper[:, 2, 1, 3].detach())


def test_a_channel_alone_is_decomposed_at_its_peak(x):
    net = TwoStageNet().eval()
    upper = net.features(x).detach()
    peaks = upper[:, 4].flatten(1).argmax(1)
    method = LayerActivationPropagation(net, "features.1")
    by_channel = method.propagate(x, neuron_selector=4, source_layer="features.4")
    explicit = torch.stack([torch.full((3,), 4), peaks // 4, peaks % 4], 1)
    torch.testing.assert_close(by_channel.maps, method.attribute(x, neuron_selector=explicit, source_layer="features.4"))


def test_batched_decisions_equal_one_at_a_time(x):
    net = TwoStageNet().eval()
    selectors = torch.tensor([[[0, 0, 0], [4, 3, 2]], [[1, 2, 2], [1, 0, 3]], [[3, 1, 1], [2, 2, 0]]])
    method = LayerActivationPropagation(net, "features.1")
    batched = method.propagate(x, neuron_selector=selectors, source_layer="features.4")
    assert batched.maps.shape == (3, 2, 4, 8, 8) and batched.contributions.shape == (3, 2, 4)
    for n in range(3):
        for s in range(2):
            one = method.propagate(x[n : n + 1], neuron_selector=tuple(selectors[n, s].tolist()),
                                   source_layer="features.4")
            torch.testing.assert_close(batched.maps[n, s], one.maps[0])
            torch.testing.assert_close(batched.decisions[n, s], one.decisions[0])


def test_hooks_are_removed_also_after_an_error(x):
    net = TwoStageNet().eval()
    method = LayerActivationPropagation(net, "features.1")
    method.propagate(x, neuron_selector=(0, 0, 0), source_layer="features.4")
    with pytest.raises(ValueError):
        method.propagate(x, neuron_selector=(9, 0, 0), source_layer="features.4")
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in net.modules())


@pytest.mark.parametrize("kwargs, message", [
    ({"neuron_selector": (5, 0, 0), "source_layer": "features.4"},
     r"neuron_selector: channel 5 is out of range for a source layer output of shape \(5, 4, 4\)"),
    ({"neuron_selector": (0, 4, 0), "source_layer": "features.4"}, "neuron_selector: row 4 is out of range"),
    ({"neuron_selector": 7, "source_layer": "features.4"}, r"neuron_selector: channel 7 is out of range \(0..4\)"),
    ({"neuron_selector": (0, 0, 0)}, "source_layer: a neuron_selector needs the higher layer"),
    ({"neuron_selector": (0, 0, 0), "source_layer": "features.0"}, "the source layer runs before the layer"),
    ({"neuron_selector": (0, 0), "source_layer": "features.4"}, r"expected a \(channel, row, col\) tuple"),
    ({"target": 0, "neuron_selector": (0, 0, 0), "source_layer": "features.4"}, "give one decision, not both"),
])
def test_bad_selectors_and_layer_pairs(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LayerActivationPropagation(TwoStageNet().eval(), "features.1").propagate(x, **kwargs)


def test_a_source_layer_that_does_not_depend_on_the_layer():
    class TwoBranches(nn.Module):
        def __init__(self):
            super().__init__()
            self.left, self.right = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return (self.left(x) + self.right(x)).mean((2, 3))

    with pytest.raises(ValueError, match="does not depend on the layer's output"):
        LayerActivationPropagation(TwoBranches(), "left").propagate(
            torch.randn(1, 3, 4, 4), neuron_selector=(0, 0, 0), source_layer="right")

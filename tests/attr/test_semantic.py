"""Semantic Guided Backprop and Gradient x Input: plain when nothing is suppressed, exact where units are."""

import pytest
import torch
from captum.attr import InputXGradient
from torch import nn

from captum_hint.attr import LayerGuidedBackprop, SemanticGradientXInput, SemanticGuidedBackprop, semantic_mask
from nets import SmallNet


@pytest.fixture
def x():
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _masked_gradient(net, x, target, mask):
    """d score / d x with the gradient at features.2's output multiplied by mask (by hand)."""
    x = x.clone().requires_grad_()
    def hook(module, args, output):
        output.register_hook(lambda grad: grad * mask.view(output.shape))

    handle = net.features[2].register_forward_hook(hook)
    try:
        out = net(x)
        (gradient,) = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), x)
    finally:
        handle.remove()
    return gradient


def test_no_suppression_is_plain_gradient_x_input(x, small_net):
    flat = torch.ones(5 * 8 * 8)  # every unit at its maximum: nothing suppressed
    ours = SemanticGradientXInput(small_net, "features.2").attribute(x, target=[0, 2, 4], semantic_vector=flat)
    torch.testing.assert_close(ours, InputXGradient(small_net).attribute(x, target=[0, 2, 4]))


def test_suppression_is_exact_where_units_are_masked(x, small_net):
    vector = torch.rand(3, 5 * 8 * 8, generator=torch.Generator().manual_seed(1))  # one per sample
    mask = semantic_mask(vector)
    ours = SemanticGradientXInput(small_net, "features.2").attribute(x, target=[0, 2, 4], semantic_vector=vector)
    torch.testing.assert_close(ours, _masked_gradient(small_net, x, [0, 2, 4], mask.float()) * x)
    assert not torch.allclose(ours, InputXGradient(small_net).attribute(x, target=[0, 2, 4]))


def test_guided_without_suppression_is_guided_backprop_at_the_input(x):
    net = SmallNet().eval()
    first = nn.Sequential(nn.Identity(), net)  # so that the input is a layer's input
    plain = LayerGuidedBackprop(first, "1").attribute(x, target=1, attribute_to_layer_input=True)
    ours = SemanticGuidedBackprop(first, "1.features.2").attribute(x, target=1, semantic_vector=torch.ones(320))
    torch.testing.assert_close(ours, plain)
    masked = SemanticGuidedBackprop(first, "1.features.2").attribute(
        x, target=1, semantic_vector=torch.rand(320, generator=torch.Generator().manual_seed(2)))
    assert not torch.allclose(masked, plain)


def test_pooled_vectors_mask_whole_channels_and_batching(x, small_net):
    vector = torch.tensor([1.0, 0.1, 0.9, 0.0, 0.7])  # channels 1 and 3 suppressed
    method = SemanticGuidedBackprop(small_net, "features.2")
    batched = method.attribute(x, target=[0, 2, 4], semantic_vector=vector)
    for n in range(3):
        torch.testing.assert_close(batched[n : n + 1], method.attribute(x[n : n + 1], target=[0, 2, 4][n],
                                                                        semantic_vector=vector))
    assert all(not m._forward_hooks and not m._backward_hooks for m in small_net.modules())


def test_concept_targets_and_errors(x, small_net):
    method = SemanticGradientXInput(small_net, "features.2")
    assert method.attribute(x, target={1, 3}, semantic_vector=torch.ones(5)).shape == x.shape
    with pytest.raises(ValueError, match=r"semantic_vector: has 7 units; the layer gives \(5, 8, 8\)"):
        method.attribute(x, target=0, semantic_vector=torch.ones(7))
    with pytest.raises(ValueError, match="semantic_vector: got 2 vectors for a batch of 3"):
        method.attribute(x, target=0, semantic_vector=torch.ones(2, 5))
    with pytest.raises(ValueError, match="threshold: expected a finite number"):
        method.attribute(x, target=0, semantic_vector=torch.ones(5), threshold=float("nan"))

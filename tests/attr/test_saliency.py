"""Layer saliency methods against independent computations."""

import captum.attr
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from captum_hint import ConceptScore
from captum_hint.attr import (
    SALIENCY_METHODS,
    LayerGradient,
    LayerGradientXActivation,
    LayerGuidedBackprop,
    LayerIntegratedGradients,
    LayerSmoothGrad,
    saliency_method,
)
from nets import SmallNet

DETERMINISTIC = [LayerGradient, LayerGradientXActivation, LayerIntegratedGradients, LayerGuidedBackprop]


def layer_value_and_grad(model, layer, x, score, replace=None):
    """Layer output z and d score(model(x)).sum() / d z, by plain autograd.

    ``replace`` optionally substitutes the layer output (for IG's path points).
    """
    captured = {}

    def hook(module, inputs, output):
        z = (output if replace is None else replace).detach().requires_grad_()
        captured["z"] = z
        return z

    handle = layer.register_forward_hook(hook)
    try:
        out = model(x)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(score(out).sum(), captured["z"])
    return captured["z"].detach(), grad


def class_score(target):
    return lambda out: out[torch.arange(out.shape[0]), torch.as_tensor(target)]


def test_gradient_equals_autograd(small_net, images):
    target = [0, 3, 5]
    _, expected = layer_value_and_grad(small_net, small_net.features[2], images, class_score(target))
    got = LayerGradient(small_net, "features.2").attribute(images, target=target)
    torch.testing.assert_close(got, expected)


def test_gradient_x_activation_equals_autograd_and_captum(small_net, images):
    z, grad = layer_value_and_grad(small_net, small_net.features[2], images, class_score(2))
    got = LayerGradientXActivation(small_net, "features.2").attribute(images, target=2)
    torch.testing.assert_close(got, grad * z)
    captum_result = captum.attr.LayerGradientXActivation(small_net, small_net.features[2]).attribute(
        images, target=2
    )
    torch.testing.assert_close(got, captum_result)


def test_integrated_gradients_equals_manual_path_integral(small_net, images):
    """Riemann-middle IG in activation space, computed by hand, equals ours."""
    layer, target, steps = small_net.features[2], [1, 4, 0], 8
    baseline = torch.full_like(images, 0.25)
    z1, _ = layer_value_and_grad(small_net, layer, images, class_score(target))
    z0, _ = layer_value_and_grad(small_net, layer, baseline, class_score(target))
    total = torch.zeros_like(z1)
    for i in range(steps):
        alpha = (i + 0.5) / steps
        _, grad = layer_value_and_grad(
            small_net, layer, images, class_score(target), replace=z0 + alpha * (z1 - z0)
        )
        total += grad / steps
    got = LayerIntegratedGradients(small_net, "features.2").attribute(
        images, target=target, baselines=baseline, n_steps=steps, method="riemann_middle"
    )
    torch.testing.assert_close(got, total * (z1 - z0))
    # Completeness: the attributions sum to f(x) - f(baseline) as n_steps grows.
    fine = LayerIntegratedGradients(small_net, "features.2").attribute(
        images, target=target, baselines=baseline, n_steps=64
    )
    gap = class_score(target)(small_net(images)) - class_score(target)(small_net(baseline))
    torch.testing.assert_close(fine.sum(dim=(1, 2, 3)), gap.detach(), atol=2e-3, rtol=1e-2)


def test_smoothgrad_equals_mean_gradient_over_seeded_noise(small_net, images):
    n, level, seed = 5, 0.2, 7
    got = LayerSmoothGrad(small_net, "features.2").attribute(
        images, target=3, n_samples=n, noise_level=level, seed=seed
    )
    flat = images.flatten(1)
    std = level * (flat.max(1).values - flat.min(1).values)
    noisy = images.repeat_interleave(n, 0)
    noise = torch.randn(noisy.shape, generator=torch.Generator().manual_seed(seed))
    noisy = noisy + noise * std.repeat_interleave(n).view(-1, 1, 1, 1)
    _, grad = layer_value_and_grad(small_net, small_net.features[2], noisy, class_score(3))
    expected = grad.view(images.shape[0], n, *grad.shape[1:]).mean(1)
    torch.testing.assert_close(got, expected)


def test_smoothgrad_seeding(small_net, images):
    method = LayerSmoothGrad(small_net, "features.2")
    a = method.attribute(images, target=1, seed=3)
    b = method.attribute(images, target=1, seed=3)
    c = method.attribute(images, target=1, seed=4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(method.attribute(images, target=1, generator=g), a, rtol=0, atol=0)
    # Without noise SmoothGrad is the plain layer gradient.
    torch.testing.assert_close(
        method.attribute(images, target=1, noise_level=0.0, n_samples=3),
        LayerGradient(small_net, "features.2").attribute(images, target=1),
    )


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cap):
        ctx.save_for_backward(x)
        ctx.cap = cap
        return x.clamp(0, cap)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * ((x > 0) & (x < ctx.cap)), None


def hand_guided_gradient(net, x, target, cap=float("inf")):
    """Guided gradient at features.2 of SmallNet with every ReLU written by hand."""
    f = net.features
    relu = lambda t: _GuidedReLU.apply(t, cap)  # noqa: E731
    z = f[2](relu(f[0](x))).detach().requires_grad_()
    out = net.fc(relu(f[4](relu(z))).mean(dim=(2, 3)))
    (grad,) = torch.autograd.grad(class_score(target)(out).sum(), z)
    return grad


@pytest.mark.parametrize(
    "kind", ["modules", "functional", "relu6"], ids=["relu-modules", "functional-relus", "relu6-modules"]
)
def test_guided_backprop_equals_hand_hooked_relus(kind, images):
    net = SmallNet(functional_relu=kind == "functional", relu6=kind == "relu6").eval()
    if kind == "relu6":
        images = images * 8  # reach the upper cap of ReLU6 too
    cap = 6.0 if kind == "relu6" else float("inf")
    target = [2, 0, 5]
    if kind == "relu6":
        # The last rectifier of SmallNet.forward is a plain torch.relu, also guided.
        f = net.features
        z = f[2](f[1](f[0](images))).detach().requires_grad_()
        out = net.fc(_GuidedReLU.apply(f[4](_GuidedReLU.apply(z, 6.0)), float("inf")).mean(dim=(2, 3)))
        (expected,) = torch.autograd.grad(class_score(target)(out).sum(), z)
    else:
        expected = hand_guided_gradient(net, images, target, cap)
    got = LayerGuidedBackprop(net, "features.2").attribute(images, target=target)
    torch.testing.assert_close(got, expected)
    plain = LayerGradient(net, "features.2").attribute(images, target=target)
    assert not torch.allclose(got, plain), "guiding changed nothing: the hooks did not run"


def _hook_count(model):
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_guided_backprop_removes_every_hook(small_net, images):
    before = _hook_count(small_net)
    LayerGuidedBackprop(small_net, "features.2").attribute(images, target=1)
    assert _hook_count(small_net) == before == 0
    assert torch._C._len_torch_function_stack() == 0


def test_guided_backprop_removes_hooks_when_forward_raises(images):
    class Failing(SmallNet):
        def forward(self, x, fail):
            out = super().forward(x)
            if fail:
                raise RuntimeError("boom")
            return out

    net = Failing().eval()
    with pytest.raises(ValueError, match=r"inputs: LayerGuidedBackprop could not run the model on them "
                                         r"\(RuntimeError: boom\)"):
        LayerGuidedBackprop(net, "features.2").attribute(images, target=1, additional_forward_args=(True,))
    assert _hook_count(net) == 0
    assert torch._C._len_torch_function_stack() == 0
    # and a later call still works
    LayerGuidedBackprop(net, "features.2").attribute(images, target=1, additional_forward_args=(False,))


def test_guided_backprop_warns_without_relus(images):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Conv2d(4, 2, 3), nn.Flatten(1), nn.LazyLinear(3))
    net(images)
    with pytest.warns(UserWarning, match="no supported ReLU"):
        got = LayerGuidedBackprop(net, "2").attribute(images, target=0)
    torch.testing.assert_close(got, LayerGradient(net, "2").attribute(images, target=0))


@pytest.mark.parametrize("method", DETERMINISTIC, ids=lambda m: m.__name__)
def test_batched_equals_per_sample(method, small_net, images):
    target = [1, 5, 2]
    batched = method(small_net, "features.2").attribute(images, target=target)
    single = torch.cat(
        [method(small_net, "features.2").attribute(images[i : i + 1], target=t) for i, t in enumerate(target)]
    )
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", list(SALIENCY_METHODS.values()), ids=list(SALIENCY_METHODS))
def test_layer_by_name_equals_layer_by_module(method, small_net, images):
    kwargs = {"seed": 0} if method is LayerSmoothGrad else {}
    by_name = method(small_net, "features.2").attribute(images, target=4, **kwargs)
    by_module = method(small_net, small_net.features[2]).attribute(images, target=4, **kwargs)
    torch.testing.assert_close(by_name, by_module, rtol=0, atol=0)


def test_concept_target_is_log_summed_softmax(small_net, images):
    leaves = {1, 3, 4}

    def score(out):
        return torch.logsumexp(torch.log_softmax(out, 1)[:, sorted(leaves)], dim=1)

    _, expected = layer_value_and_grad(small_net, small_net.features[2], images, score)
    got = LayerGradient(small_net, "features.2").attribute(images, target=leaves)
    torch.testing.assert_close(got, expected)
    # The reusable wrapper gives the same with Captum's own classes.
    wrapped = ConceptScore(small_net, [leaves])
    captum_result = captum.attr.LayerGradientXActivation(
        wrapped, small_net.features[2], multiply_by_inputs=False
    ).attribute(images, target=0)
    torch.testing.assert_close(got, captum_result)


def test_per_sample_concepts_equal_one_at_a_time(small_net, images):
    concepts = [{0, 1}, {5}, {0, 1}]
    method = LayerGradient(small_net, "features.2")
    batched = method.attribute(images, target=concepts)
    single = torch.cat([method.attribute(images[i : i + 1], target=c) for i, c in enumerate(concepts)])
    torch.testing.assert_close(batched, single)


def test_one_leaf_concept_is_logit_up_to_a_constant(small_net, images):
    logits = small_net(images)
    scores = ConceptScore(small_net, [{c} for c in range(6)])(images)
    difference = logits - scores  # = logsumexp(logits), the same for every class
    torch.testing.assert_close(difference, difference[:, :1].expand_as(difference))
    torch.testing.assert_close(difference[:, 0], torch.logsumexp(logits, 1))


def test_saliency_method_lookup():
    assert saliency_method("smoothgrad") is LayerSmoothGrad
    assert saliency_method(LayerGradient) is LayerGradient
    with pytest.raises(ValueError, match="saliency: unknown method 'smooth'"):
        saliency_method("smooth")


def test_unknown_layer_name_lists_close_names(small_net):
    with pytest.raises(ValueError, match=r"layer: 'feature.2' is not a submodule.*features\.2"):
        LayerGradient(small_net, "feature.2")


def test_layer_name_needs_a_module():
    with pytest.raises(TypeError, match="layer: a layer given by name needs forward_func"):
        LayerGradient(lambda x: x, "features.2")


@pytest.mark.parametrize("target", [6, [0, 1, 9]])
def test_target_out_of_range(small_net, images, target):
    with pytest.raises(ValueError, match="target: class index .* out of range for a model with 6 outputs"):
        LayerGradient(small_net, "features.2").attribute(images, target=target)


def test_a_negative_target_is_not_read_from_the_end(small_net, images):
    with pytest.raises(ValueError, match="target: class index -7 is negative"):
        LayerGradient(small_net, "features.2").attribute(images, target=-7)


def test_concept_leaf_out_of_range(small_net, images):
    with pytest.raises(ValueError, match="target: concept 0 has leaf index 8, out of range"):
        LayerGradient(small_net, "features.2").attribute(images, target={1, 8})


def test_target_count_must_match_batch(small_net, images):
    with pytest.raises(ValueError, match="target: got 2 per-sample targets for a batch of 3"):
        LayerGradient(small_net, "features.2").attribute(images, target=[0, 1])


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 3, 8, 8, 1), (24,)])
def test_input_of_wrong_rank(small_net, shape):
    with pytest.raises(ValueError, match=r"inputs: expected a batch of images shaped \(N, C, H, W\)"):
        LayerGradient(small_net, "features.2").attribute(torch.randn(shape), target=0)


# ---------------------------------------------------------------- review defects
class _FunctionalReLUBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.relu(self.conv(x))


def _relu_at_layer_net():
    torch.manual_seed(0)
    return nn.Sequential(_FunctionalReLUBlock(), nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()


@pytest.mark.parametrize("layer, to_input", [("0", False), ("1", True)], ids=["layer-output", "layer-input"])
def test_guided_backprop_leaves_a_functional_relu_at_the_layer_unguided(layer, to_input, images):
    """Defect 1: a functional ReLU producing the layer's output (or input) clamped the attribution itself."""
    net = _relu_at_layer_net()
    with pytest.warns(UserWarning, match="no supported ReLU ran"):  # none is above the layer
        guided = LayerGuidedBackprop(net, layer).attribute(images, target=0, attribute_to_layer_input=to_input)
    plain = LayerGradient(net, layer).attribute(images, target=0, attribute_to_layer_input=to_input)
    torch.testing.assert_close(guided, plain)
    assert guided.min() < 0


def test_guided_backprop_guides_a_functional_relu_above_the_layer(images):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _FunctionalReLUBlock(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3)).eval()
    net[1].conv = nn.Conv2d(4, 4, 3, padding=1)
    z = net[0](images).detach().requires_grad_()
    pre = net[1].conv(z)
    out = net[4](net[3](net[2](_GuidedReLU.apply(pre, float("inf")))))
    (expected,) = torch.autograd.grad(out[:, 0].sum(), z)
    torch.testing.assert_close(LayerGuidedBackprop(net, "0").attribute(images, target=0), expected)


def test_unseeded_smoothgrad_leaves_the_global_rng_alone(small_net, images):
    torch.manual_seed(99)
    state = torch.get_rng_state()
    first = LayerSmoothGrad(small_net, "features.2").attribute(images, target=1, n_samples=2)
    assert torch.equal(torch.get_rng_state(), state)
    second = LayerSmoothGrad(small_net, "features.2").attribute(images, target=1, n_samples=2)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"noise_level": float("nan")}, ValueError, "noise_level: expected a finite number, got nan"),
    ({"noise_level": float("inf")}, ValueError, "noise_level: expected a finite number, got inf"),
    ({"noise_level": -0.1}, ValueError, r"noise_level: expected a value in \[0.0, inf\), got -0.1"),
    ({"n_samples": 0}, ValueError, "n_samples: expected an integer >= 1, got 0"),
    ({"n_samples": 2.5}, TypeError, "n_samples: expected an integer >= 1, got 2.5"),
])
def test_smoothgrad_rejects_non_finite_or_out_of_range_arguments(small_net, images, kwargs, error, message):
    """Defect 6: noise_level=nan passed the `< 0` check and every map came out constant."""
    with pytest.raises(error, match=message):
        LayerSmoothGrad(small_net, "features.2").attribute(images, target=1, **kwargs)


def test_bool_target_tensor_is_rejected(small_net, images):
    """Defect 7: a bool target tensor was read as class indices 0 and 1."""
    with pytest.raises(TypeError, match="target: got a bool tensor; expected class indices"):
        LayerGradient(small_net, "features.2").attribute(images, target=torch.tensor([True, False, True]))


def test_non_finite_images_are_rejected(small_net, images):
    bad = images.clone()
    bad[2, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"inputs: contains Inf \(rows \[2\]\)"):
        LayerGradient(small_net, "features.2").attribute(bad, target=0)


@pytest.mark.parametrize("batch_size", [1, 2, 32])
def test_mean_layer_gradient_is_the_mean_of_per_image_autograd(small_net, images, batch_size):
    from captum_hint.attr import mean_layer_gradient

    def score(x):
        return small_net(x)[:, 1:2]

    per_image = torch.stack([layer_value_and_grad(small_net, small_net.features[2], x[None], class_score(1))[1][0]
                             for x in images])
    mean = mean_layer_gradient(score, small_net.features[2], images, batch_size=batch_size)
    torch.testing.assert_close(mean, per_image.mean(0))

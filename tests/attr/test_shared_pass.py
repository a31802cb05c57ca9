"""Shared-pass saliency equals the per-target Captum-based methods; bounded passes change nothing."""

import pytest
import torch

from captum_hint.attr import (
    LayerGradient,
    LayerGradientXActivation,
    LayerGuidedBackprop,
    LayerIntegratedGradients,
    SharedPassSaliency,
)
from captum_hint.attr.shared_pass import target_slots
from nets import ResidualNet, SmallNet

CONCEPTS = [{0, 1, 2}, {2, 3, 4, 5}, {1}]
TARGETS = [[0, 1], [2], [], [1, 0, 2]]
PER_PAIR = {"gradient": LayerGradient, "gradient_x_input": LayerGradientXActivation,
            "guided_backprop": LayerGuidedBackprop, "integrated_gradients": LayerIntegratedGradients}


def _pairs(targets):
    image = torch.repeat_interleave(torch.arange(len(targets)), torch.tensor([len(t) for t in targets]))
    return image, [CONCEPTS[c] for t in targets for c in t]


@pytest.fixture
def batch():
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def test_target_slots_by_hand():
    assert target_slots(torch.tensor([0, 0, 1, 3, 3, 3, 1])).tolist() == [0, 1, 0, 0, 1, 2, 1]


@pytest.mark.parametrize("method", sorted(PER_PAIR))
@pytest.mark.parametrize("max_rows", [1, 3, 4])
def test_equals_per_pair_method_at_two_layers(method, max_rows, batch):
    # features.0 is followed by an in-place ReLU (which Captum's LayerIntegratedGradients cannot take);
    # features.3 is a ReLU module.
    model = SmallNet().eval()
    layers = ["features.2" if method == "integrated_gradients" else "features.0", "features.3"]
    kwargs = {"n_steps": 6} if method == "integrated_gradients" else {}
    shared = SharedPassSaliency(model, layers, method, concepts=CONCEPTS).attribute(batch, TARGETS, max_rows=max_rows,
                                                                                    **kwargs)
    image, concepts = _pairs(TARGETS)
    for layer, got in zip(layers, shared):
        expected = PER_PAIR[method](model, layer).attribute(batch[image], target=concepts, **kwargs)
        assert got.shape == expected.shape == (len(image), *expected.shape[1:])
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layer", ["stem", "conv1", "conv2"])
@pytest.mark.parametrize("max_rows", [3, 6, 12, 24])
def test_integrated_gradients_around_a_skip_connection(layer, max_rows, batch):
    # The stem's output skips around conv1 and conv2 (it is replayed and must meet their path points right).
    model = ResidualNet().eval()
    targets = [[0, 1], [2], [], [1, 0, 2]]
    shared = SharedPassSaliency(model, layer, "integrated_gradients", concepts=CONCEPTS).attribute(
        batch, targets, max_rows=max_rows, n_steps=6)
    image, concepts = _pairs(targets)
    expected = LayerIntegratedGradients(model, layer).attribute(batch[image], target=concepts, n_steps=6)
    torch.testing.assert_close(shared, expected, atol=1e-6, rtol=1e-5)


class _CountingConv(torch.nn.Conv2d):
    def forward(self, x):
        self.rows.append(len(x))
        return super().forward(x)


def test_integrated_gradients_runs_the_layers_below_once_per_chunk(batch):
    model = SmallNet().eval()
    counting = _CountingConv(3, 4, 3, padding=1)
    counting.load_state_dict(model.features[0].state_dict())
    counting.rows = []
    model.features[0] = counting
    got = SharedPassSaliency(model, "features.2", "integrated_gradients", concepts=CONCEPTS).attribute(
        batch, TARGETS, max_rows=12, n_steps=6)
    # the clean pass (4 images), the constant baseline (1), finding what runs below the layer (1), then one
    # recording per chunk of 2 images (12 rows = 2 images x 6 points): neither path pass runs it
    assert counting.rows == [4, 1, 1, 2, 2]
    assert "forward" not in counting.__dict__ and not counting._forward_hooks
    image, concepts = _pairs(TARGETS)
    expected = LayerIntegratedGradients(model, "features.2").attribute(batch[image], target=concepts, n_steps=6)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_guided_backprop_of_functional_and_relu6_nets(batch):
    for model in (SmallNet(functional_relu=True).eval(), SmallNet(relu6=True).eval()):
        shared = SharedPassSaliency(model, "features.2", "guided_backprop", concepts=CONCEPTS).attribute(batch, TARGETS)
        image, concepts = _pairs(TARGETS)
        expected = LayerGuidedBackprop(model, "features.2").attribute(batch[image], target=concepts)
        torch.testing.assert_close(shared, expected, atol=1e-6, rtol=1e-5)


def test_class_targets_equal_layer_gradient(batch):
    model = SmallNet().eval()
    targets = [[5], [0, 3], [1], [2]]
    shared = SharedPassSaliency(model, "features.2").attribute(batch, targets)
    image = torch.tensor([0, 1, 1, 2, 3])
    expected = LayerGradient(model, "features.2").attribute(batch[image], target=[5, 0, 3, 1, 2])
    torch.testing.assert_close(shared, expected)


def test_smoothgrad_is_the_mean_over_the_same_noise(batch):
    model = SmallNet().eval()
    n_samples, noise_level = 3, 0.2
    shared = SharedPassSaliency(model, "features.2", "smoothgrad", concepts=CONCEPTS)
    got = shared.attribute(batch, TARGETS, n_samples=n_samples, noise_level=noise_level, seed=5,
                           max_rows=len(batch) * n_samples)
    # The pass draws the noise of all copies as one n_samples x N x ... tensor.
    noise = torch.randn((n_samples, *batch.shape), generator=torch.Generator().manual_seed(5))
    flat = batch.flatten(1)
    std = (noise_level * (flat.max(1).values - flat.min(1).values)).view(1, -1, 1, 1, 1)
    image, concepts = _pairs(TARGETS)
    expected = torch.stack([
        LayerGradient(model, "features.2").attribute((batch + noise[k] * std[0])[image], target=concepts)
        for k in range(n_samples)
    ]).mean(0)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    # Fewer rows per pass (one noisy copy of 1 image at a time) gives other draws, not other math: with
    # zero noise every bound gives the plain gradient.
    zero = shared.attribute(batch, TARGETS, n_samples=n_samples, noise_level=0.0, seed=5, max_rows=1)
    plain = LayerGradient(model, "features.2").attribute(batch[image], target=concepts)
    torch.testing.assert_close(zero, plain, atol=1e-6, rtol=1e-5)


def test_model_is_left_as_it_was(batch):
    model = SmallNet().train()
    model.features[0].weight.requires_grad_(False)
    running = model.features[0].weight.clone()
    with pytest.warns(UserWarning, match="train mode"):
        SharedPassSaliency(model, ["features.2"], "guided_backprop", concepts=CONCEPTS).attribute(batch, TARGETS)
    assert model.training and all(m.training for m in model.modules())
    assert not model.features[0].weight.requires_grad and model.features[2].weight.requires_grad
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())
    assert torch.equal(model.features[0].weight, running) and model.features[2].weight.grad is None


def test_bad_arguments_are_named(batch):
    model = SmallNet().eval()
    with pytest.raises(ValueError, match="method: expected one of"):
        SharedPassSaliency(model, "features.2", "occlusion")
    with pytest.raises(ValueError, match=r"target: indices must lie in 0\.\.2"):
        SharedPassSaliency(model, "features.2", concepts=CONCEPTS).attribute(batch, [[3], [], [], []])
    with pytest.raises(ValueError, match="target: expected one sequence of targets per image"):
        SharedPassSaliency(model, "features.2").attribute(batch, [[1]])
    with pytest.raises(ValueError, match="layer 'features.2' output: contains NaN"):
        model.features[2].bias.data[0] = float("nan")
        SharedPassSaliency(model, "features.2").attribute(batch, [[1], [], [], []])


class _PairStem(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x), x.mean()


class _PairNet(torch.nn.Module):
    """A stem that returns a tuple, below ``head_conv``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = _PairStem()
        self.head_conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 6)

    def forward(self, x):
        features, _ = self.stem(x)
        return self.fc(torch.relu(self.head_conv(features)).mean(dim=(2, 3)))


def test_modules_wholly_below_by_hand(batch):
    from captum_hint.attr.replay import modules_wholly_below

    model = ResidualNet().eval()
    below = lambda layer: modules_wholly_below(model, model.get_submodule(layer), batch[:1])  # noqa: E731
    assert below("stem") == [] and below("conv1") == [model.stem] and below("conv2") == [model.stem, model.conv1]
    # a module returning a tuple is not replayed (nor anything else), and the result still equals Captum's
    pair = _PairNet().eval()
    assert modules_wholly_below(pair, pair.head_conv, batch[:1]) == []
    got = SharedPassSaliency(pair, "head_conv", "integrated_gradients").attribute(batch, [[1], [2], [], [0]],
                                                                                   n_steps=4)
    expected = LayerIntegratedGradients(pair, "head_conv").attribute(batch[[0, 1, 3]], target=[1, 2, 0], n_steps=4)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)

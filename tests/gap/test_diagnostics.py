"""gAP's diagnostics: ground-truth ablation, the sanity table, randomization, surrogate, discriminative degree."""

import pytest
import torch

from captum_hint.attr import LayerActivationPropagation
from captum_hint.gap import HierarchicalDecomposition
from captum_hint.gap.diagnostics import (ablation_contributions, cascading_randomization, contribution_sanity,
                                         discriminative_degree, gap_input_saliency, sparse_surrogate)
from nets import TwoStageNet


@pytest.fixture
def x():
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _brute_force_drops(net, x, layer, decision, base):
    """One full forward per channel, the slow way."""
    module = dict(net.named_modules())[layer]
    clean = decision(net, x)
    drops = []
    for k in range(base.numel()):
        def hook(m, i, o, k=k):
            o = o.clone()
            o[:, k] = base[k]
            return o
        handle = module.register_forward_hook(hook)
        drops.append(clean - decision(net, x))
        handle.remove()
    return torch.stack(drops, 1)


def test_ablation_equals_one_forward_per_channel(x):
    net = TwoStageNet().eval()
    with torch.no_grad():
        features = net.features[:2](x)
        expected = _brute_force_drops(net, x, "features.1", lambda m, v: m(v)[torch.arange(3), torch.tensor([0, 2, 1])],
                                      features.mean((0, 2, 3)))
    got = ablation_contributions(net, x, "features.1", target=[0, 2, 1], channels_per_pass=3)
    torch.testing.assert_close(got, expected)


def test_linear_map_ablation_is_gap_by_hand(x):
    """A linear layer between two stages: drop_k = sum_xy G (F - b_k); with b = 0 that is H W alpha_k."""
    net = TwoStageNet(linear_top=True).eval()
    selector = torch.tensor([[2, 1, 3], [0, 0, 0], [4, 2, 1]])
    gap = LayerActivationPropagation(net, "features.1").propagate(x, neuron_selector=selector, source_layer="features.3")
    zero = ablation_contributions(net, x, "features.1", neuron_selector=selector, source_layer="features.3", baseline=0.0)
    torch.testing.assert_close(zero, gap.contributions * 64)
    mean = ablation_contributions(net, x, "features.1", neuron_selector=selector, source_layer="features.3")
    lower = net.features[:2](x).detach().requires_grad_()
    upper = net.features[2:](lower)
    (gradient,) = torch.autograd.grad(upper[torch.arange(3), selector[:, 0], selector[:, 1], selector[:, 2]].sum(), lower)
    base = lower.detach().mean((0, 2, 3))
    torch.testing.assert_close(mean, (gradient * (lower.detach() - base[None, :, None, None])).sum((2, 3)))


def test_sanity_table_rows(x):
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    rows = contribution_sanity(decomposition, x)
    assert [row["pair"] for row in rows] == ["T -> features.4", "features.4 -> features.1"]
    for row in rows:
        for key in ("AA", "MA", "AG", "MG"):
            assert row[key].shape == (3,) and ((row[key] >= -1 - 1e-6) & (row[key] <= 1 + 1e-6)).all()
        assert row["seconds_gap"] > 0 and row["seconds_ablation"] > 0
    # T -> features.4 is linear (global average pooling, a linear head): against zero channels the
    # ground truth is H W alpha exactly, so gAP's correlation is 1
    rows = contribution_sanity(decomposition, x, baseline=0.0)
    torch.testing.assert_close(rows[0]["AA"], torch.ones(3))


def test_surrogate_counts_and_rates(x):
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    labels = decomposition.model(x).argmax(1)
    rows = sparse_surrogate(decomposition, x, labels, ks=(1, 5))
    assert rows[0]["kept_channels"] == [1.0, 1.0]  # one child per decision, one decision per layer
    assert all(1 <= kept <= 5 for kept in rows[1]["kept_channels"])
    assert rows[1]["accuracy_full"] == 1.0 and all(0 <= row["match_rate"] <= 1 for row in rows)


def test_discriminative_degree_by_hand(x):
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    same = x[:1].repeat(2, 1, 1, 1)
    degree = discriminative_degree(decomposition, [(same, torch.tensor([0, 1]))], num_classes=2, top_k=2)
    # identical images with different labels choose the same channels: each counted once per class
    for layer, values in degree.items():
        counted = ~values.isnan()
        assert counted.any() and torch.allclose(values[counted], torch.tensor(0.5))
    one_class = discriminative_degree(decomposition, [(x, torch.tensor([1, 1, 1]))], num_classes=2, top_k=2)
    assert all(torch.allclose(v[~v.isnan()], torch.tensor(1.0)) for v in one_class.values())
    with pytest.raises(ValueError, match=r"labels: expected class indices in 0..1"):
        discriminative_degree(decomposition, [(x, torch.tensor([0, 1, 2]))], num_classes=2)


def test_randomization_leaves_the_model_alone(x):
    net = TwoStageNet().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    decomposition = HierarchicalDecomposition(net, input_shape=(3, 8, 8))
    rows = cascading_randomization(decomposition, x, methods=("gap", "smoothgrad"), top_k=2, seed=0)
    assert [row["randomized"] for row in rows] == ["head", "features.4", "features.1"]
    assert all(((row["gap"].abs() <= 1) | row["gap"].isnan()).all() for row in rows)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    again = cascading_randomization(decomposition, x, methods=("gap",), top_k=2, seed=0)
    assert all(torch.allclose(a["gap"], b["gap"], equal_nan=True) for a, b in zip(rows, again))  # seeded


def test_gap_input_saliency_shape(x):
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    maps = gap_input_saliency(decomposition, x, top_k=2)
    assert maps.shape == (3, 1, 8, 8) and (maps >= 0).all() and maps.flatten(1).sum(1).gt(0).all()


def test_spearman_matches_scipy_with_ties():
    from scipy import stats

    from captum_hint.evaluation.statistics import spearman_rows

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 5, 5, generator=generator).round(decimals=1)  # many ties
    b = torch.rand(3, 1, 5, 5, generator=generator)
    expected = [stats.spearmanr(x.flatten().numpy(), y.flatten().numpy())[0] for x, y in zip(a, b)]
    torch.testing.assert_close(spearman_rows(a, b), torch.tensor(expected, dtype=torch.float32))

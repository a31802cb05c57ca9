"""gAP's hierarchical decomposition: stages, child selection with NMS, trees, JSON, real models."""

import pytest
import torch
from torch import nn

from captum_hint.attr import LayerActivationPropagation
from captum_hint.gap import (EvidenceNode, HierarchicalDecomposition, chosen_channel_shares, chosen_children_map,
                             label_with_concepts, load_tree, save_tree, select_children, stage_layers)
from nets import TwoStageNet


@pytest.fixture
def x():
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_stage_layers_of_torchvision_models():
    torchvision = pytest.importorskip("torchvision")
    assert stage_layers(torchvision.models.vgg16(weights=None)) == [
        "features.3", "features.8", "features.15", "features.22", "features.29"]  # conv1_2 ... conv5_3
    assert stage_layers(torchvision.models.resnet50(weights=None)) == [
        "relu", "layer1.2", "layer2.3", "layer3.5", "layer4.2"]
    assert stage_layers(TwoStageNet(), (3, 8, 8)) == ["features.1", "features.4"]


def test_stage_layers_of_efficientnet_lite0(efficientnet_lite0):
    assert stage_layers(efficientnet_lite0) == ["_blocks.0", "_blocks.2", "_blocks.4", "_blocks.10", "_bn1"]


def test_select_children_by_hand():
    maps = torch.zeros(1, 4, 2, 2)
    maps[0, 0] = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # alpha 1.0
    maps[0, 1] = torch.tensor([[2.0, 0.0], [0.0, 0.0]])  # alpha 0.5, same mask as channel 0: merged into it
    maps[0, 2] = torch.tensor([[0.0, 0.0], [1.2, 0.0]])  # alpha 0.3, its own place
    maps[0, 3] = torch.tensor([[0.0, 0.0], [0.0, -2.0]])  # negative: never chosen
    picked = select_children(maps, top_k=3)
    chosen = picked.channels[0, picked.chosen[0]].tolist()
    assert chosen == [0, 2]
    assert picked.merged_into[0].tolist()[:2] == [-1, 0]
    torch.testing.assert_close(picked.shares[0, :3], torch.tensor([1.0, 0.5, 0.3]) / 1.8)
    assert picked.peaks[0, 0].tolist() == [0, 0] and picked.peaks[0, 2].tolist() == [1, 0]
    only_big = select_children(maps, top_k=3, min_share=0.4)
    assert only_big.channels[0, only_big.chosen[0]].tolist() == [0]


def test_tree_follows_the_paper_rule(x):
    net = TwoStageNet().eval()
    decomposition = HierarchicalDecomposition(net, input_shape=(3, 8, 8))
    trees = decomposition.decompose(x, target=[1, 2], top_k=2)
    top = LayerActivationPropagation(net, "features.4").propagate(x, target=[1, 2])
    for n, tree in enumerate(trees):
        assert tree.layer == "output" and tree.channel == [1, 2][n]
        assert tree.contribution == pytest.approx(float(top.decisions[n]))
        first = tree.children[0]
        assert first.channel == int(top.contributions[n].argmax()) and first.layer == "features.4"
        assert first.peak == tuple(top.peaks[n, first.channel].tolist())
        torch.testing.assert_close(first.activation_map, top.maps[n, first.channel])
        # the first child's own decomposition: its feature at its peak, onto features.1
        below = LayerActivationPropagation(net, "features.1").propagate(
            x[n : n + 1], neuron_selector=(first.channel, *first.peak), source_layer="features.4")
        assert [c.channel for c in first.children][0] == int(below.contributions[0].argmax())
        assert all(c.layer == "features.1" and not c.children for c in first.children)
        assert first.peak_pixel == tuple((p + 0.5) * 2 - 0.5 for p in first.peak)


def test_batched_trees_equal_one_image_at_a_time(x):
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    together = decomposition.decompose(x, top_k=2)
    for n in range(2):
        alone = decomposition.decompose(x[n : n + 1], top_k=2)[0]
        a, b = alone.to_dict(), together[n].to_dict()
        assert _close(a, b)


def _close(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(u, v) for u, v in zip(a, b))
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-5, abs=1e-7)
    return a == b


def test_json_round_trip_is_exact(x, tmp_path):
    tree = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8)).decompose(x, top_k=2)[0]
    tree.children[0].concepts = [("animal.n.01", 0.25)]
    save_tree(tree, tmp_path / "tree.json")
    again = load_tree(tmp_path / "tree.json")
    assert again.to_dict() == tree.to_dict()
    assert torch.equal(again.children[0].activation_map, tree.children[0].activation_map)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json is not a readable evidence tree"):
        load_tree(tmp_path / "bad.json")
    with pytest.raises(RuntimeError, match="not attached"):
        again.expand(2)


def test_lazy_expansion(x):
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    shallow = decomposition.decompose(x, top_k=2, depth=1)[1]
    assert shallow.children and not any(c.children for c in shallow.children)
    grown = shallow.children[0].expand(3)
    full = decomposition.decompose(x, top_k=3)[1]
    twin = next(c for c in full.children if c.channel == shallow.children[0].channel)
    assert [c.channel for c in grown] == [c.channel for c in twin.children]
    assert len(shallow.expand(1)) == 1


def test_nodes_named_by_a_hint_like_explainer(x):
    class Named:
        layer = "features.4"

        def concepts_of(self, neuron, n):
            return [(f"concept{neuron}", 1.0)][:n]

    trees = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8)).decompose(x, top_k=2)
    label_with_concepts(trees, Named())
    for node in trees[0].walk():
        assert node.concepts == ([(f"concept{node.channel}", 1.0)] if node.layer == "features.4" else [])


def test_model_left_as_it_was(x):
    net = TwoStageNet()
    net.features.insert(2, nn.BatchNorm2d(4))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.warns(UserWarning, match="train mode"):
        HierarchicalDecomposition(net, input_shape=(3, 8, 8)).decompose(x, top_k=2)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()) and net.training
    assert all(not m._forward_hooks and not m._backward_hooks for m in net.modules())


@pytest.mark.parametrize("name, size", [("vgg16", 64), ("resnet50", 64)])
def test_torchvision_models_decompose_end_to_end(name, size):
    torchvision = pytest.importorskip("torchvision")
    model = getattr(torchvision.models, name)(weights=None).eval()
    decomposition = HierarchicalDecomposition(model, input_shape=(3, size, size))
    tree = decomposition.decompose(torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)),
                                   top_k=1)[0]
    layers = [node.layer for node in tree.walk()]
    assert layers == ["output"] + decomposition.layers[::-1]


def test_efficientnet_lite0_on_a_real_photo(efficientnet_lite0, photo_set):
    decomposition = HierarchicalDecomposition(efficientnet_lite0)
    tree = decomposition.decompose(photo_set[:1], top_k=2)[0]
    assert tree.channel == int(efficientnet_lite0(photo_set[:1]).argmax())
    by_layer = {}
    for node in tree.walk():
        by_layer.setdefault(node.layer, []).append(node)
    assert [len(by_layer[layer]) for layer in decomposition.layers[::-1]] == [2, 4, 8, 16, 32]
    assert all(0 < node.share <= 1 and node.contribution > 0 for node in tree.walk() if node.layer != "output")


def test_errors(x):
    net = TwoStageNet().eval()
    with pytest.raises(ValueError, match=r"layers: expected them in forward order, i.e. \['features.1', 'features.4'\]"):
        HierarchicalDecomposition(net, ["features.4", "features.1"], input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="layers: 'features.9' not a submodule"):
        HierarchicalDecomposition(net, ["features.1", "features.9"], input_shape=(3, 8, 8))
    decomposition = HierarchicalDecomposition(net, input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="top_k: expected an integer >= 1, got 0"):
        decomposition.decompose(x, top_k=0)
    with pytest.raises(ValueError, match="target: expected None"):
        decomposition.decompose(x, target=[0, 1, 2])
    assert isinstance(EvidenceNode("output", 0, 1.0).describe(), str)


def test_blocks_bound_the_rows_per_pass_and_change_nothing(x):
    net = TwoStageNet().eval()
    wide = HierarchicalDecomposition(net, input_shape=(3, 8, 8), max_decisions=64).decompose(x, top_k=3)
    narrow = HierarchicalDecomposition(net, input_shape=(3, 8, 8), max_decisions=1)
    calls = []
    original = narrow.propagated_blocks

    def counting(images, lower, upper, selectors):
        for rows, decisions, maps in original(images, lower, upper, selectors):
            calls.append(maps.shape[0] * maps.shape[1])
            yield rows, decisions, maps

    narrow.propagated_blocks = counting
    batches = []
    hook = net.features[0].register_forward_pre_hook(lambda module, inputs: batches.append(len(inputs[0])))
    try:
        small = narrow.decompose(x, top_k=3)
    finally:
        hook.remove()
    assert calls and max(calls) == 1  # one (image, decision) row per backward pass
    assert len(x) > 1 and max(batches) == 1  # and one image per forward pass
    assert all(_close(a.to_dict(), b.to_dict()) for a, b in zip(wide, small))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_chosen_channel_shares_average_the_trees_first_level(batch_size):
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    net = TwoStageNet().eval()
    trees = HierarchicalDecomposition(net, ["features.4"], input_shape=(3, 8, 8)).decompose(x, target=1, top_k=2)
    expected = torch.zeros(5)
    for tree in trees:
        for child in tree.children:
            expected[child.channel] += child.share / len(x)
    got = chosen_channel_shares(net, "features.4", x, target=1, top_k=2, batch_size=batch_size)
    torch.testing.assert_close(got, expected)
    assert (expected > 0).sum() >= 2  # the case is not trivial


@pytest.mark.parametrize("batch_size", [1, 3])
def test_chosen_children_map_sums_the_trees_first_level_maps(batch_size):
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    net = TwoStageNet().eval()
    trees = HierarchicalDecomposition(net, ["features.4"], input_shape=(3, 8, 8)).decompose(x, target=1, top_k=2)
    expected = torch.stack([sum(child.activation_map for child in tree.children).clamp_min(0)[None]
                            for tree in trees])
    got = chosen_children_map(net, "features.4", x, target=1, top_k=2, batch_size=batch_size)
    assert got.shape == (5, 1, *expected.shape[-2:])
    torch.testing.assert_close(got, expected)

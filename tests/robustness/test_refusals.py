"""Bad input refused with an error naming the argument (issue 23): each case failed before its fix."""

import pytest
import torch

from captum_hint.afi import gradient_importance
from captum_hint.attr import LayerActivationPropagation, LayerGradient, SharedPassSaliency
from captum_hint.gap import HierarchicalDecomposition
from captum_hint.hint.regions import RegionBank
from nets import SmallNet, TwoStageNet

X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- negative indices were Python indices
def test_a_negative_class_target_is_refused_not_read_from_the_end(small_net):
    with pytest.raises(ValueError, match="target: class index -1 is negative"):
        LayerGradient(small_net, "features.2").attribute(X, target=-1)
    with pytest.raises(ValueError, match="target: class index -3 is negative"):
        LayerGradient(small_net, "features.2").attribute(X, target=[0, -3])
    with pytest.raises(ValueError, match="target: class index 6 is out of range for a model with 6 outputs"):
        LayerGradient(small_net, "features.2").attribute(X, target=6)


def test_afi_refuses_a_negative_or_too_large_y(small_net):
    with pytest.raises(ValueError, match="y: expected class indices >= 0, got -1"):
        gradient_importance(small_net, "features.2", X, y=-1)
    with pytest.raises(ValueError, match="y: expected class indices >= 0"):
        gradient_importance(small_net, "features.2", X, y={2, -1})
    with pytest.raises(ValueError, match="y: class index 6 is out of range for a model with 6 outputs"):
        gradient_importance(small_net, "features.2", X, y=6)


def test_gap_refuses_a_negative_target_the_trees_use_as_their_concept_marker():
    decomposition = HierarchicalDecomposition(TwoStageNet().eval(), input_shape=(3, 8, 8))
    for target in (-1, [-1, 0], torch.tensor([0, -2])):
        with pytest.raises(ValueError, match="target: class index -[12] is negative"):
            decomposition.decompose(X, target=target)


def test_region_bank_refuses_a_negative_concept_count():
    with pytest.raises(ValueError, match="n_concepts: expected an integer >= 1, got -1"):
        RegionBank(-1)


# ---------------------------------------------------------------- empty batches gave raw internal errors
@pytest.mark.parametrize("call", [
    lambda net: LayerGradient(net, "features.2").attribute(X[:0], target=0),
    lambda net: LayerActivationPropagation(net, "features.2").propagate(X[:0], target=0),
    lambda net: SharedPassSaliency(net, "features.2").attribute(X[:0], []),
    lambda net: HierarchicalDecomposition(net, ["features.0", "features.2"], input_shape=(3, 8, 8)).decompose(X[:0]),
    lambda net: LayerGradient(net, "features.2").attribute(X[:, :, :0], target=0),
], ids=["attribute", "propagate", "shared pass", "decompose", "zero height"])
def test_empty_batches_are_refused_by_name(call):
    with pytest.raises(ValueError, match=r"(inputs|images): expected at least one image of at least one channel and pixel"):
        call(SmallNet().eval())


# ---------------------------------------------------------------- layers of the wrong kind
def test_gap_refuses_flat_layers_and_an_empty_layer_list():
    with pytest.raises(ValueError, match=r"layers: 'fc' gives outputs shaped \(1, 6\); expected spatial layers"):
        HierarchicalDecomposition(SmallNet().eval(), ["features.2", "fc"], input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="layers: expected at least one layer name"):
        HierarchicalDecomposition(SmallNet().eval(), [], input_shape=(3, 8, 8))


# ---------------------------------------------------------------- NaN flowed through instead of being refused
NAN_IMAGES = X.clone()
NAN_IMAGES[1, 0, 2, 2] = float("nan")


def test_afi_refuses_nan_weights_scores_samples_and_occluders(small_net):
    from captum_hint.afi import channel_importance, meta_detector, mmd_unbiased
    from captum_hint.attr import LayerFeatureOcclusion, occlude

    with pytest.raises(ValueError, match="scores: contains NaN"):
        channel_importance(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="weights: contains NaN"):
        meta_detector(small_net, "features.2", torch.tensor([1.0, float("nan"), 0, 0, 0]), X)
    with pytest.raises(ValueError, match="x: contains Inf"):
        mmd_unbiased(torch.tensor([[0.0], [float("inf")]]), torch.zeros(3, 1))
    delta = torch.zeros(3, 8, 8)
    delta[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="delta: contains NaN"):
        LayerFeatureOcclusion(small_net, "features.2").attribute(X, delta)
    with pytest.raises(ValueError, match=r"valid_range: low exceeds high in channel\(s\) \[1\]"):
        occlude(X, torch.zeros(3, 8, 8), (torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.5, 1.0])))


def test_distillation_without_negatives_is_refused_not_reported_as_perfect(small_net):
    from captum_hint.afi import distillation_test

    with pytest.raises(ValueError, match="negatives: expected at least 2 images"):
        distillation_test(small_net, "features.2", torch.ones(5), X, X[:0], epochs=2)


def test_semantic_saliency_refuses_a_nan_or_all_zero_vector(small_net):
    from captum_hint.attr import SemanticGradientXInput, semantic_mask

    method = SemanticGradientXInput(small_net, "features.2")
    with pytest.raises(ValueError, match="semantic_vector: contains NaN"):
        method.attribute(X, target=0, semantic_vector=torch.full((320,), float("nan")))
    with pytest.raises(ValueError, match="semantic_vector: every unit is <= 0"):
        method.attribute(X, target=0, semantic_vector=torch.zeros(320))
    with pytest.raises(ValueError, match="semantic_vector: every unit is <= 0"):
        semantic_mask(torch.stack([torch.rand(4), torch.zeros(4)]))


def test_sevec_refuses_nan_images_and_an_undefined_correlation():
    from captum_hint.sevec import SemanticVectors, accuracy_correlation, neuron_vs_vector_test

    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(3, 4))  # class k: unit k
    predicted = torch.arange(30) % 3
    images = torch.nn.functional.one_hot(predicted, 4).float().view(30, 2, 1, 2)
    sevec = SemanticVectors(model, "0", [0, 1, 2], progress=False).fit([(images, predicted)])
    nan = images.clone()
    nan[3, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="images: contains NaN"):
        neuron_vs_vector_test(sevec, nan, [0] * 30)
    with pytest.raises(ValueError, match="images: contains NaN"):
        accuracy_correlation(sevec, [(nan, predicted)])
    with pytest.raises(ValueError, match="the accuracy is 1 for every one of the 3 concepts"):
        accuracy_correlation(sevec, [(images, predicted)])  # every concept answered right


def test_gap_refuses_nan_maps_and_will_not_write_a_nan_tree(tmp_path):
    from captum_hint.gap import EvidenceNode, save_tree, select_children

    maps = torch.rand(1, 4, 3, 3)
    maps[0, 2, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="maps: contains NaN"):
        select_children(maps, top_k=2)
    tree = EvidenceNode("output", 3, 1.0, children=[EvidenceNode("features.2", 1, float("nan"), share=0.5)])
    with pytest.raises(ValueError, match=r"tree: node features.2 #1 holds NaN or Inf"):
        save_tree(tree, tmp_path / "tree.json")
    assert not (tmp_path / "tree.json").exists()


# ---------------------------------------------------------------- loading accepted garbage
def _saved_tree(tmp_path):
    from captum_hint.gap import EvidenceNode, save_tree

    tree = EvidenceNode("output", 3, 1.5, children=[EvidenceNode("features.2", 1, 0.5, share=0.4, peak=(1, 2),
                                                                 activation_map=torch.ones(2, 2))])
    save_tree(tree, tmp_path / "tree.json")
    return (tmp_path / "tree.json").read_text()


@pytest.mark.parametrize("before, after, message", [
    ('"channel": 1', '"channel": "abc"', r"tree.children\[0\].channel: expected an integer >= -1, got 'abc'"),
    ('"contribution": 0.5', '"contribution": Infinity', "Infinity is not a number JSON allows"),
    ('"share": 0.4', '"share": -0.4', r"tree.children\[0\].share: expected a number in \[0, 1\], got -0.4"),
    ('"peak": [1, 2]', '"peak": [1]', r"tree.children\[0\].peak: expected null or two integers >= 0"),
    ('"merged": []', '"merged": {}', r"\(tree.merged: expected a list of channels"),
    ('"layer": "output"', '"layer": 7', "tree.layer: expected a layer name, got 7"),
    ('"activation_map": [[1.0, 1.0], [1.0, 1.0]]', '"activation_map": [[1.0], [1.0, 1.0]]',
     r"activation_map: expected null or rows of finite numbers of equal length"),
])
def test_load_tree_refuses_malformed_fields_by_name(before, after, message, tmp_path):
    from captum_hint.gap import load_tree

    text = _saved_tree(tmp_path)
    assert before in text
    (tmp_path / "bad.json").write_text(text.replace(before, after))
    with pytest.raises(ValueError, match=message):
        load_tree(tmp_path / "bad.json")


def test_load_tree_refuses_deep_nesting_with_a_message(tmp_path):
    from captum_hint.gap import load_tree

    depth = 100_000
    (tmp_path / "deep.json").write_text('{"format": "captum_hint.gap.EvidenceTree/1", "tree": ' + "[" * depth
                                        + "]" * depth + "}")
    with pytest.raises(ValueError, match="deep.json is not a readable evidence tree"):
        load_tree(tmp_path / "deep.json")


def test_region_bank_refuses_wrong_dtypes_and_shapes():
    bank = RegionBank(2, 4, 4)
    bank.add(torch.rand(3, 5), torch.tensor([0, 1, -1]), torch.tensor([[True, False], [True, True], [False, False]]),
             torch.tensor([0, 1, 2]))
    state = bank.state_dict()
    for key, value, message in (("vectors", state["vectors"].long(), r"state\['vectors'\]: expected a float tensor"),
                                ("under", state["under"].float(), r"state\['under'\]: expected a bool tensor"),
                                ("buckets", state["buckets"][:2], r"state\['buckets'\]: expected shape 3"),
                                ("buckets", torch.tensor([0, 5, -1]), r"state\['buckets'\]: expected values in -1..1"),
                                ("vectors", state["vectors"] * float("nan"), r"state\['vectors'\]: contains NaN")):
        with pytest.raises(ValueError, match=message):
            RegionBank.from_state_dict({**state, key: value})
    assert torch.equal(RegionBank.from_state_dict(state).rows()[0], bank.rows()[0])


@pytest.mark.parametrize("key, change, message", [
    ("scores", lambda t: t * float("nan"), "scores: contains NaN"),
    ("coef", lambda t: t[:, :-1], "coef: expected shape 2 x 5"),
    ("intercept", lambda t: t.long(), "intercept: expected a float tensor"),
])
def test_hint_load_refuses_nan_scores_and_wrong_width_coefficients(key, change, message, tmp_path):
    from captum_hint import HINT, ConceptHierarchy
    from torch.utils.data import DataLoader, TensorDataset

    net = SmallNet().eval()
    hierarchy = ConceptHierarchy.from_paths(["a/x", "a/y", "a/z", "b/u", "b/v", "b/w"])
    data = TensorDataset(torch.randn(24, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(24) % 6)
    HINT(net, "features.2", hierarchy, concepts=["a", "b"], saliency="gradient", shapley_kwargs={"n_permutations": 4},
         n_regions=32, progress=False).fit(DataLoader(data, batch_size=12)).save(tmp_path / "hint")
    tensors = torch.load(tmp_path / "hint" / "tensors.pt", weights_only=True)
    tensors[key] = change(tensors[key])
    torch.save(tensors, tmp_path / "hint" / "tensors.pt")
    with pytest.raises(ValueError, match=f"holds a malformed saved HINT \\({message}"):
        HINT.load(tmp_path / "hint", net, progress=False)


def test_sevec_without_a_hierarchy_says_which_labels_count_for_no_concept():
    from captum_hint.sevec import SemanticVectors

    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = torch.rand(6, 2, 1, 2)
    with pytest.warns(UserWarning, match=r"2 image\(s\) have labels that are none of the concepts \(e.g. \[2\]\)"):
        sevec = SemanticVectors(model, "0", [0, 1], progress=False).fit([(images, torch.tensor([0, 1, 2, 0, 1, 2]))])
    assert sevec.n_unused_ == 2 and sevec.counts_.tolist() == [2, 2]
    with pytest.raises(ValueError, match="labels: expected class indices >= 0, got -1"):
        SemanticVectors(model, "0", [0, 1], progress=False).fit([(images, torch.tensor([0, 1, -1, 0, 1, 0]))])


# ---------------------------------------------------------------- answers computed from nothing
ROOTED = ["all/a/x", "all/a/y", "all/a/z", "all/b/u", "all/b/v", "all/b/w"]


def test_a_concept_covering_every_class_is_refused_under_log_probability(small_net):
    """Its score log P = log 1 is constant: HINT collected regions from float noise and reported an F1."""
    from captum_hint import HINT, ConceptHierarchy

    hierarchy = ConceptHierarchy.from_paths(ROOTED)
    with pytest.raises(ValueError, match="concepts: all cover.s. every class of the model"):
        HINT(small_net, "features.2", hierarchy, concepts=["all", "a"])
    for settings in ({"concept_score": "logit"}, {"saliency_target": "leaf"}):  # the score varies: allowed
        assert HINT(small_net, "features.2", hierarchy, concepts=["all", "a"], **settings).concepts == ["all", "a"]
    assert sorted(HINT(small_net, "features.2", hierarchy).concepts) == ["a", "b"]  # the default set leaves it out
    assert "all" in HINT(small_net, "features.2", hierarchy, concept_score="logit").concepts


def test_gap_nodes_match_a_hint_at_the_stage_container():
    """HINT at 'features' (a Sequential) labelled none of gAP's 'features.4' nodes, silently."""
    from captum_hint.gap import label_with_concepts

    net = TwoStageNet().eval()

    class AtLayer:
        model = net

        def __init__(self, layer):
            self.layer = layer

        def concepts_of(self, neuron, n):
            return [(f"concept{neuron}", 1.0)][:n]

    decomposition = HierarchicalDecomposition(net, input_shape=(3, 8, 8))
    assert decomposition.layers[-1] == "features.4"
    trees = decomposition.decompose(X, top_k=2)
    label_with_concepts(trees, AtLayer("features"))
    named = [node for tree in trees for node in tree.walk() if node.concepts]
    assert named and all(node.layer == "features.4" for node in named)
    assert all(node.concepts or node.layer != "features.4" for tree in trees for node in tree.walk())
    with pytest.raises(ValueError, match=r"explainer: no node of the trees is at its layer 'fc'.*'features.1', "
                                         r"'features.4'"):
        label_with_concepts(trees, AtLayer("fc"))


def test_a_spatially_flat_saliency_is_named_on_the_first_batch():
    """A layer feeding global average pooling and a linear head: the error came after the whole pass and
    blamed the data."""
    from captum_hint import HINT, ConceptHierarchy

    def one_batch_then_fail():
        yield torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
        raise AssertionError("a second batch was read")

    net = TwoStageNet(linear_top=True).eval()
    hint = HINT(net, "features.3", ConceptHierarchy.from_paths(["a/x", "a/y", "b/z"]), concepts=["a"],
                saliency="gradient", progress=False)
    with pytest.raises(ValueError, match="saliency: the gradient saliency at layer 'features.3' is the same at every "
                                         "position.*choose saliency='gradient_x_input'"):
        hint.fit(one_batch_then_fail())


# ---------------------------------------------------------------- raw internal errors, now named
def test_a_hierarchy_file_that_is_not_one_names_the_file(tmp_path):
    from captum_hint import ConceptHierarchy

    (tmp_path / "h.json").write_text('{"leaves": 3}')
    with pytest.raises(ValueError, match=r"path: .*h.json is not a readable concept hierarchy"):
        ConceptHierarchy.from_json(tmp_path / "h.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep.json is not a readable concept hierarchy"):
        ConceptHierarchy.from_json(tmp_path / "deep.json")


def test_afi_names_a_bad_mean_or_std_not_the_images(small_net):
    from captum_hint.afi import GlobalFeatureOccluder

    for kwargs, message in (({"mean": ("a", "b", "c")}, "mean: expected one number per channel"),
                            ({"std": (0.2, float("nan"), 0.2)}, "std: contains NaN"),
                            ({"mean": (0.5, 0.5)}, "mean, std: expected as many values, got 2 and 3")):
        with pytest.raises((TypeError, ValueError), match=message):
            GlobalFeatureOccluder(small_net, **kwargs)
    occluder = GlobalFeatureOccluder(small_net, mean=(0.5,), std=(0.2,), max_iterations=1, progress=False)
    with pytest.raises(ValueError, match=r"images, mean, std: the images have 3 channel\(s\), mean and std 1"):
        occluder.fit(X, 1)


def test_an_integrated_gradients_baseline_of_the_wrong_shape_is_named(small_net):
    from captum_hint.attr import LayerIntegratedGradients

    with pytest.raises(ValueError, match=r"baselines: expected a scalar or a tensor shaped like the inputs"):
        LayerIntegratedGradients(small_net, "features.2").attribute(X, target=0, baselines=torch.zeros(5, 3, 8, 8))
    broadcast = LayerIntegratedGradients(small_net, "features.2").attribute(X, target=0, n_steps=4,
                                                                            baselines=torch.zeros(1, 3, 8, 8))
    assert torch.allclose(broadcast, LayerIntegratedGradients(small_net, "features.2").attribute(X, target=0,
                                                                                                 n_steps=4))


def test_flat_layers_are_refused_where_a_map_is_needed(small_net):
    """afi --layers _fc, class_impression on fc and gAP on an MLP's layer gave wrong shapes or raw errors."""
    from captum_hint.afi import GlobalFeatureOccluder, class_impression, feature_importance

    occluder = GlobalFeatureOccluder(small_net, max_iterations=1, use_transform=False, progress=False)
    occluder.delta_ = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match=r"layer: feature_importance needs a spatial layer .* 'fc' gives \(2, 6\)"):
        feature_importance(occluder, X, "fc")
    with pytest.raises(ValueError, match=r"layer: class_impression needs a spatial layer .* 'fc' gives \(1, 6\)"):
        class_impression(occluder, "fc", torch.ones(6), (3, 8, 8), steps=1)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with pytest.raises(ValueError, match=r"layer: gAP needs a spatial layer .* gives \(2, 5\)"):
        LayerActivationPropagation(mlp, "2").attribute(X, target=1)


def test_batches_with_another_number_of_labels_than_images_are_named(small_net):
    from captum_hint import HINT, ConceptHierarchy
    from captum_hint.afi import GlobalFeatureOccluder
    from captum_hint.sevec import SemanticVectors

    hierarchy = ConceptHierarchy.from_paths(["a/x", "a/y", "a/z", "b/u", "b/v", "b/w"])
    batch = [(X, torch.tensor([0]))]
    with pytest.raises(ValueError, match="dataloader: a batch has 2 images and 1 labels"):
        HINT(small_net, "features.2", hierarchy, concepts=["a"], progress=False).fit(batch)
    with pytest.raises(ValueError, match="dataloader: a batch has 2 images and 1 labels"):
        SemanticVectors(small_net, "features.1", [0, 1], progress=False).fit(batch)
    with pytest.raises(ValueError, match=r"labels: expected one per image \(2\), got 1"):
        GlobalFeatureOccluder(small_net, max_iterations=1, progress=False).fit(X, 1, labels=torch.tensor([1]))


def test_a_deeply_nested_saved_hint_is_named_not_a_recursion_error(tmp_path):
    from captum_hint import HINT

    (tmp_path / "hint").mkdir()
    (tmp_path / "hint" / "hint.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "hint" / "tensors.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"hint.json is not a readable saved HINT \(maximum recursion depth"):
        HINT.load(tmp_path / "hint", SmallNet().eval(), progress=False)

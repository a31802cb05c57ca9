"""HINT end to end: exact regions on a hand-built model, real models, persistence, errors."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from captum_hint import HINT, ConceptHierarchy
from captum_hint.hint.regions import RegionBank, training_targets
from nets import SmallNet


class SpatialLinear(nn.Module):
    """logits[c] = sum_hw M[c, h, w] * (W[c] . z[:, :, h, w]) with z = the input.

    The layer gradient for class c is M[c, h, w] * W[c], so its L2 map is
    M[c] * |W[c]|: the responsible positions are known by hand.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.register_buffer("M", torch.tensor([[[1.0, 0.0], [0.0, 0.8]], [[0.0, 0.0], [1.0, 0.0]]]))
        self.register_buffer("W", torch.tensor([[1.0, 0.0], [0.0, 1.0]]))

    def forward(self, x):
        z = self.features(x)
        return torch.einsum("chw,cd,ndhw->nc", self.M, self.W, z)


def test_region_extraction_by_hand():
    model = SpatialLinear()
    hierarchy = ConceptHierarchy.from_paths(["x/a", "x/b"])
    images = torch.arange(16.0).view(2, 2, 2, 2) + 1  # pixel (h, w) of image n = its 2 channel values
    hint = HINT(model, "features", hierarchy, concepts=["x", "a"], saliency="gradient", saliency_target="leaf",
                percentile=100, classifier_kwargs={"holdout": 0}, shapley_kwargs={"n_permutations": 4}, progress=False)
    hint.fit(DataLoader(TensorDataset(images, torch.tensor([0, 1])), batch_size=2))

    def pixels(n, positions):
        return {tuple(images[n, :, i, j].tolist()) for i, j in positions}

    vectors, buckets, under, image_ids = hint.bank_.rows()
    rows = lambda b: {tuple(v.tolist()) for v in vectors[buckets == b].float()}  # noqa: E731
    # image 0 (class a): concepts x and a, responsible (0,0) and (1,1); image 1 (class b): x at (1,0)
    assert rows(0) == pixels(0, [(0, 0), (1, 1)]) | pixels(1, [(1, 0)])
    assert rows(1) == pixels(0, [(0, 0), (1, 1)])
    assert rows(-1) == pixels(0, [(0, 1), (1, 0)]) | pixels(1, [(0, 0), (0, 1), (1, 1)])
    assert hint.bank_.counts().tolist() == [3, 2, 5]
    assert set(image_ids[buckets == 1].tolist()) == {0} and set(image_ids[buckets == 0].tolist()) == {0, 1}
    # every row remembers the concepts of its image: image 0 (class a) is under x and a, image 1 (class b) under x
    assert torch.equal(under, torch.tensor([[True, True], [True, False]])[image_ids])


def test_regions_on_objects_by_hand():
    from captum_hint.datasets import collate_samples

    model = SpatialLinear()
    hierarchy = ConceptHierarchy.from_paths(["x/a", "x/b"])
    images = torch.arange(16.0).view(2, 2, 2, 2) + 1

    def mask(*positions):
        grid = torch.zeros(2, 2, dtype=torch.bool)
        for i, j in positions:
            grid[i, j] = True
        return grid

    # image 0 (label a): an a object at (0, 0) and a b object at (1, 1); image 1 (label b): a b object on (1, 0), (0, 0)
    objects = [([0, 1], [mask((0, 0)), mask((1, 1))]), ([1], [mask((1, 0), (0, 0))])]
    samples = [{"image": images[n], "label": [0, 1][n], "boxes": torch.zeros(len(labels), 4),
                "masks": torch.stack(masks), "labels": torch.tensor(labels)} for n, (labels, masks) in enumerate(objects)]
    hint = HINT(model, "features", hierarchy, concepts=["x", "a"], saliency="gradient", saliency_target="leaf",
                percentile=100, regions="saliency_on_objects", classifier_kwargs={"holdout": 0},
                shapley_kwargs={"n_permutations": 4}, progress=False)
    hint.fit(DataLoader(samples, batch_size=2, collate_fn=collate_samples))

    def pixels(n, positions):
        return {tuple(images[n, :, i, j].tolist()) for i, j in positions}

    vectors, buckets, _, _ = hint.bank_.rows()
    rows = lambda b: {tuple(v.tolist()) for v in vectors[buckets == b].float()}  # noqa: E731
    # salient (as in test_region_extraction_by_hand): image 0 at (0,0), (1,1) for x and a; image 1 at (1,0) for x.
    # a keeps only the position on its object; x keeps both (b is an x); the background is every position on no
    # object of the image's concepts
    assert rows(0) == pixels(0, [(0, 0), (1, 1)]) | pixels(1, [(1, 0)])
    assert rows(1) == pixels(0, [(0, 0)])
    assert rows(-1) == pixels(0, [(0, 1), (1, 0)]) | pixels(1, [(0, 1), (1, 1)])
    with pytest.raises(ValueError, match="regions: expected one of 'saliency', 'saliency_on_objects'"):
        HINT(model, "features", hierarchy, concepts=["x"], regions="masks")
    with pytest.raises(ValueError, match="regions='saliency_on_objects'\\) need dict batches"):
        hint.fit(DataLoader(TensorDataset(images, torch.tensor([0, 1])), batch_size=2))


def test_training_targets_by_hand():
    buckets = torch.tensor([0, 1, -1, 0])
    under = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    # row 0: concept 0's region of an image under both -> positive for 0, ignored for 1
    # row 1: concept 1's region -> positive for 1, ignored for 0 (its image is under 0)
    # row 2: background -> negative for both; row 3: concept 0 region of an image not under 1
    expected = [[1, -1], [-1, 1], [0, 0], [1, 0]]
    assert training_targets(buckets, under).tolist() == expected


def test_reservoir_keeps_everything_under_capacity():
    bank = RegionBank(1, max_per_concept=10, max_background=10)
    vectors = torch.arange(12.0).view(6, 2)
    under = torch.tensor([True, False]).repeat(3)[:, None]
    bank.add(vectors[:4], torch.zeros(4, dtype=torch.long), under[:4], torch.arange(4))
    bank.add(vectors[4:], torch.zeros(2, dtype=torch.long), under[4:], torch.arange(4, 6))
    stored, buckets, stored_under, images = bank.rows()
    assert torch.equal(stored.float(), vectors) and torch.equal(stored_under, under) and images.tolist() == list(range(6))


def test_reservoir_is_bounded_and_uniform():
    counts = torch.zeros(20)
    for trial in range(300):
        bank = RegionBank(1, max_per_concept=5, max_background=1, seed=trial)
        for start in range(0, 20, 7):
            ids = torch.arange(start, min(start + 7, 20))
            bank.add(ids[:, None].float(), torch.zeros(len(ids), dtype=torch.long),
                     torch.ones(len(ids), 1, dtype=torch.bool), ids)
        _, _, _, images = bank.rows()
        assert len(images) == 5 and len(set(images.tolist())) == 5
        counts[images] += 1
    frequency = counts / 300  # each of the 20 items should be kept with probability 5/20
    assert (frequency - 0.25).abs().max() < 0.1, frequency


def test_bank_memory_is_capped():
    bank = RegionBank(2, max_per_concept=50, max_background=100, dtype=torch.float16)
    for step in range(20):
        bank.add(torch.randn(64, 32), torch.randint(-1, 2, (64,)), torch.zeros(64, 2, dtype=torch.bool),
                 torch.zeros(64, dtype=torch.long))
    assert bank.counts().tolist() == [50, 50, 100]
    assert bank.nbytes == (50 + 50 + 100) * (32 * 2 + 8 + 2)  # float16 vectors, image id, 2 concept flags


@pytest.fixture(scope="module")
def small_fit():
    net = SmallNet().eval()
    hierarchy = ConceptHierarchy.from_paths(["animal/mammal/dog", "animal/mammal/cat", "animal/bird",
                                             "thing/car", "thing/cup", "thing/boat"])
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(48, 3, 8, 8, generator=generator), torch.arange(48) % 6
    hint = HINT(net, "features.2", hierarchy, concepts=["animal", "mammal", "thing"], saliency="gradient",
                shapley_kwargs={"n_permutations": 16}, progress=False)
    return hint.fit(DataLoader(TensorDataset(images, labels), batch_size=16)), images


def test_fitted_attributes_and_associations(small_fit):
    hint, images = small_fit
    assert hint.scores_.shape == hint.standard_errors_.shape == (5, 3)
    assert (hint.scores_ >= 0).all() and hint.f1_.shape == (3,)
    assert [c.concept for c in hint.classifiers_] == ["animal", "mammal", "thing"]
    top = hint.top_neurons("mammal", n=3)
    assert torch.equal(top.values, hint.scores_[:, 1].sort(descending=True).values[:3])
    assert [c for c, _ in hint.concepts_of(int(top.indices[0]), n=3)] == [
        hint.concepts[k] for k in hint.scores_[int(top.indices[0])].argsort(descending=True)
    ]
    shared = hint.multimodal_neurons(n=2)
    for neuron, concepts in shared.items():
        assert len(concepts) >= 2
        for concept in concepts:
            assert neuron in hint.top_neurons(concept, n=2).indices.tolist()
    assert hint.plot_associations(n=2).texts


def test_localize(small_fit):
    hint, images = small_fit
    maps = hint.localize(images[:4], "animal", top_fraction=0.4)
    assert maps.shape == (4, 1, 8, 8) and (maps >= 0).all() and (maps <= 1).all()
    neurons, classifier = hint.localizer("animal", 0.4)
    assert len(neurons) == math.ceil(0.4 * 5) == len(classifier.coef_)
    torch.testing.assert_close(neurons, hint.top_neurons("animal", 2).indices.sort().values)
    custom = hint.localize(images[:4], "animal", top_fraction=0.4, ranking=torch.tensor([0.0, 0, 0, 1, 2]))
    assert torch.equal(hint.localizer("animal", 0.4, torch.tensor([0.0, 0, 0, 1, 2]))[0], torch.tensor([3, 4]))
    assert custom.shape == maps.shape
    for ranking in ["coef", "random"]:
        assert hint.localize(images[:1], "animal", ranking=ranking).shape == (1, 1, 8, 8)


def test_refit_forgets_earlier_localizers():
    net = SmallNet().eval()
    hierarchy = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])
    hint = HINT(net, "features.2", hierarchy, ["a", "b"], saliency="gradient", progress=False,
                shapley_kwargs={"n_permutations": 4})
    generator = torch.Generator().manual_seed(1)
    first = [(torch.randn(24, 3, 8, 8, generator=generator), torch.arange(24) % 6)]
    second = [(torch.randn(24, 3, 8, 8, generator=generator) * 3, torch.arange(24) % 6)]
    neurons, before = hint.fit(first).localizer("a", 0.4, ranking=torch.arange(5.0))
    _, after = hint.fit(second).localizer("a", 0.4, ranking=torch.arange(5.0))
    assert after is not before and not torch.equal(after.coef_, before.coef_)


def test_save_and_load_exactly(small_fit, tmp_path):
    hint, images = small_fit
    hint.save(tmp_path / "hint")
    again = HINT.load(tmp_path / "hint", hint.model, progress=False)
    assert again.concepts == hint.concepts and again.layer == hint.layer and again.hierarchy == hint.hierarchy
    assert again._config() == hint._config()  # every setting, the region rule included
    torch.testing.assert_close(again.scores_, hint.scores_, rtol=0, atol=0)
    torch.testing.assert_close(again.standard_errors_, hint.standard_errors_, rtol=0, atol=0)
    torch.testing.assert_close(again.f1_, hint.f1_, rtol=0, atol=0, equal_nan=True)
    for a, b in zip(again.classifiers_, hint.classifiers_):
        torch.testing.assert_close(a.coef_, b.coef_, rtol=0, atol=0)
    for a, b in zip(again.bank_.rows(), hint.bank_.rows()):
        assert torch.equal(a, b)
    torch.testing.assert_close(again.localize(images[:2], "thing"), hint.localize(images[:2], "thing"), rtol=0, atol=0)
    torch.load(tmp_path / "hint" / "tensors.pt", weights_only=True)  # plain tensors only


def test_efficientnet_lite0_real_photos(efficientnet_lite0, photo_set):
    hierarchy = ConceptHierarchy.imagenet()
    concepts = ["whole.n.02", "artifact.n.01", "animal.n.01"]
    hint = HINT(efficientnet_lite0, "_blocks.10", hierarchy, concepts=concepts, saliency="gradient",
                batch_size=32, shapley_kwargs={"n_permutations": 8}, n_regions=256, progress=False)
    hint.fit(DataLoader(photo_set, batch_size=16), labels="predicted")
    assert hint.n_images_ == 32
    assert hint.scores_.shape == (112, 3) and torch.isfinite(hint.scores_).all()
    counts = hint.bank_.counts()
    assert (counts > 0).all()
    assert hint.f1_[0] > 0.5, hint.f1_  # 'whole' covers most photos and separates from background
    maps = hint.localize(photo_set[:2], "whole.n.02", top_fraction=0.2)
    assert maps.shape == (2, 1, 224, 224)


def test_torchvision_vgg16_shapes():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval()
    hierarchy = ConceptHierarchy.imagenet()
    concepts = ["animal.n.01", "artifact.n.01"]
    leaves = hierarchy.leaves_under("animal.n.01")[:3] + hierarchy.leaves_under("artifact.n.01")[:3]
    images, labels = torch.randn(6, 3, 64, 64), torch.tensor(leaves)
    hint = HINT(model, "features.20", hierarchy, concepts=concepts, saliency="guided_backprop", batch_size=6,
                shapley_kwargs={"n_permutations": 2}, n_regions=64, classifier_kwargs={"holdout": 0, "min_steps": 20},
                progress=False)
    hint.fit([(images, labels)])
    assert hint.scores_.shape == (512, 2)
    assert hint.localize(images[:2], "animal", top_fraction=0.1).shape == (2, 1, 64, 64)


def test_concept_without_regions_is_an_error():
    hierarchy = ConceptHierarchy.from_paths(["x/a", "x/b", "y/c"])
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    data = [(torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 0, 1]))]
    hint = HINT(model, "0", hierarchy, concepts=["x", "y"], saliency="gradient", progress=False)
    with pytest.raises(ValueError, match=r"concepts: no responsible regions were collected for y \(0 images under it\)"):
        hint.fit(data)


def test_layer_without_spatial_dims_is_an_error(small_net):
    hierarchy = ConceptHierarchy.from_paths([f"all/c{i}" for i in range(5)] + ["else/c5"])
    with pytest.raises(ValueError, match=r"layer: HINT needs a spatial layer \(output N x K x H x W\); 'fc' gives \(2, 6\)"):
        HINT(small_net, "fc", hierarchy, concepts=["all"], progress=False).fit([torch.randn(2, 3, 8, 8)])


def test_nan_features_are_an_error():
    class NaNLayer(nn.Module):
        def forward(self, x):
            return x * float("nan")

    model = nn.Sequential(nn.Conv2d(3, 2, 1), NaNLayer(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    hierarchy = ConceptHierarchy.from_paths(["all/a", "else/b"])
    with pytest.raises(ValueError, match="layer '1' output: contains NaN"):
        HINT(model, "1", hierarchy, concepts=["all"], progress=False).fit([torch.randn(2, 3, 4, 4)])


def test_setting_errors(small_net):
    hierarchy = ConceptHierarchy.from_paths([f"all/c{i}" for i in range(5)] + ["else/c5"])
    with pytest.raises(ValueError, match="concept: 'animal' matches nothing"):
        HINT(small_net, "features.2", hierarchy, concepts=["animal"])
    with pytest.raises(ValueError, match=r"threshold: expected a value in \(0.0, 1.0\)"):
        HINT(small_net, "features.2", hierarchy, concepts=["all"], threshold=1.0)
    with pytest.raises(ValueError, match="layer: 'feature.2' is not a submodule"):
        HINT(small_net, "feature.2", hierarchy, concepts=["all"])
    hint = HINT(small_net, "features.2", hierarchy, concepts=["all"])
    with pytest.raises(RuntimeError, match="call fit"):
        hint.top_neurons("all")


# ---------------------------------------------------------------- review defects
HIERARCHY6 = ConceptHierarchy.from_paths(["animal/mammal/dog", "animal/mammal/cat", "animal/bird",
                                          "thing/car", "thing/cup", "thing/boat"])


def _small_loader(n=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 3, 8, 8, generator=generator), torch.arange(n) % 6), batch_size=12)


def _quick_hint(model, layer="features.2", **kwargs):
    return HINT(model, layer, HIERARCHY6, concepts=["animal", "thing"], saliency="gradient",
                shapley_kwargs={"n_permutations": 4}, n_regions=32, progress=False, **kwargs)


def test_activations_beyond_float16_are_stored_safely_and_scores_stay_finite():
    """Defect 3: a float16 bank turned activations > 65504 into Inf and the scores into NaN."""

    class Scale(nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    net = SmallNet().eval()  # the layer's activations reach ~1e5; the model's function is unchanged
    net.features[2] = nn.Sequential(net.features[2], Scale(1e5))
    net.features.insert(3, Scale(1e-5))
    with pytest.warns(UserWarning, match=r"activation of .* exceeds torch.float16's range.*float32"):
        hint = _quick_hint(net).fit(_small_loader())
    assert hint.bank_.dtype == torch.float32
    assert torch.isfinite(hint.bank_.rows()[0]).all()
    assert torch.isfinite(hint.scores_).all() and torch.isfinite(hint.standard_errors_).all()
    assert max(c.coef_.abs().max() for c in hint.classifiers_) < float("inf")


def test_inf_features_are_an_error():
    class InfLayer(nn.Module):
        def forward(self, x):
            return x.clone().index_fill_(1, torch.tensor([0]), float("inf"))

    model = nn.Sequential(nn.Conv2d(3, 2, 1), InfLayer(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    hierarchy = ConceptHierarchy.from_paths(["all/a", "else/b"])
    with pytest.raises(ValueError, match="layer '1' output: contains Inf"):
        HINT(model, "1", hierarchy, concepts=["all"], progress=False).fit([torch.randn(2, 3, 4, 4)])


def test_load_rejects_a_model_of_another_width_or_class_count(small_fit, tmp_path):
    """Defect 4: a model with another layer width or class count was accepted; localize then used wrong neurons."""
    hint, _ = small_fit
    hint.save(tmp_path / "hint")
    wider = SmallNet().eval()
    wider.features[2] = nn.Conv2d(4, 7, 3, padding=1)
    wider.features[4] = nn.Conv2d(7, 6, 3, padding=1)
    with pytest.raises(ValueError, match=r"fitted on a layer 'features.2' of 5 neurons and 6 classes; this model "
                                         r"gives 7 neurons and 6 classes"):
        HINT.load(tmp_path / "hint", wider, progress=False)
    more_classes = SmallNet().eval()
    more_classes.fc = nn.Linear(6, 9)
    with pytest.raises(ValueError, match="this model gives 5 neurons and 9 classes"):
        HINT.load(tmp_path / "hint", more_classes, progress=False)


def test_fit_leaves_a_train_mode_model_exactly_as_it_was():
    """Defect 5: fit updated BatchNorm statistics of a model in train mode."""
    net = SmallNet()
    net.features.insert(3, nn.BatchNorm2d(5))
    net.train()
    net.features[0].weight.requires_grad_(False)
    net.dropout_like = nn.Identity().eval()  # a module already in eval mode stays so
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [p.requires_grad for p in net.parameters()]
    modes = [m.training for m in net.modules()]
    with pytest.warns(UserWarning, match="HINT.fit: the model is in train mode"):
        hint = _quick_hint(net, "features.4").fit(_small_loader())
    hint.localize(torch.randn(2, 3, 8, 8), "animal")
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert net.features[3].num_batches_tracked.item() == 0
    assert [p.requires_grad for p in net.parameters()] == flags
    assert [m.training for m in net.modules()] == modes
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in net.modules())


def test_pool_and_regions_in_shapley_kwargs_are_rejected(small_net):
    """Defect 7: 'pool' in shapley_kwargs failed deep inside with a duplicate-argument TypeError."""
    with pytest.raises(ValueError, match="shapley_kwargs: 'pool' are set by HINT"):
        HINT(small_net, "features.2", HIERARCHY6, concepts=["animal"], shapley_kwargs={"pool": torch.zeros(3, 5)})


def test_load_names_the_corrupt_or_truncated_file(small_fit, tmp_path):
    """Defect 7: a truncated tensors.pt or corrupt hint.json gave a bare traceback without the path."""
    hint, _ = small_fit
    hint.save(tmp_path / "hint")
    tensors = tmp_path / "hint" / "tensors.pt"
    tensors.write_bytes(tensors.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"path: {tensors} is not a readable saved HINT"):
        HINT.load(tmp_path / "hint", hint.model, progress=False)
    hint.save(tmp_path / "other")
    config = tmp_path / "other" / "hint.json"
    config.write_text(config.read_text()[:50])
    with pytest.raises(ValueError, match=f"path: {config} is not a readable saved HINT"):
        HINT.load(tmp_path / "other", hint.model, progress=False)
    with pytest.raises(ValueError, match="hint.json is not a readable saved HINT"):
        HINT.load(tmp_path / "nothing-here", hint.model, progress=False)


def test_localize_rejects_features_of_the_wrong_width(small_fit):
    """Defect 7: features of another width gave an IndexError."""
    hint, images = small_fit
    with pytest.raises(ValueError, match=r"features: expected the layer output of these images, shaped \(2, 5, h, w\)"):
        hint.localize(images[:2], "thing", features=torch.zeros(2, 3, 8, 8))


def test_non_finite_settings_are_rejected(small_net, small_fit):
    """Defect 6: NaN passed range checks written as `value < low`."""
    with pytest.raises(ValueError, match="threshold: expected a finite number, got nan"):
        HINT(small_net, "features.2", HIERARCHY6, concepts=["animal"], threshold=float("nan"))
    with pytest.raises(ValueError, match="percentile: expected a finite number"):
        HINT(small_net, "features.2", HIERARCHY6, concepts=["animal"], percentile=float("inf"))
    hint, images = small_fit
    with pytest.raises(ValueError, match="top_fraction: expected a finite number, got nan"):
        hint.localize(images[:2], "thing", top_fraction=float("nan"))


@pytest.mark.parametrize("saliency", ["gradient", "smoothgrad", "guided_backprop"])
def test_fit_layers_in_one_pass_equals_separate_fits(saliency):
    from captum_hint.hint.explainer import fit_layers

    hierarchy = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])
    generator = torch.Generator().manual_seed(2)
    loader = DataLoader(TensorDataset(torch.randn(24, 3, 8, 8, generator=generator), torch.arange(24) % 6), batch_size=8)
    settings = dict(concepts=["a", "b"], saliency=saliency, saliency_kwargs={"n_samples": 3} if saliency == "smoothgrad" else {},
                    shapley_kwargs={"n_permutations": 8}, progress=False)
    net = SmallNet().eval()
    together = fit_layers(net, ["features.2", "features.3"], hierarchy, loader, **settings)
    assert list(together) == ["features.2", "features.3"]
    for layer, hint in together.items():
        alone = HINT(net, layer, hierarchy, **settings).fit(loader)
        for got, expected in zip(hint.bank_.rows(), alone.bank_.rows()):
            torch.testing.assert_close(got, expected)
        torch.testing.assert_close(hint.scores_, alone.scores_)
    with pytest.raises(ValueError, match="layers: each layer may appear once"):
        fit_layers(net, ["features.2", "features.2"], hierarchy, loader, **settings)


def test_gradient_and_gradient_x_input_from_one_pass_equal_their_own_fits():
    from captum_hint.hint.collection import stream_regions

    hierarchy = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])
    generator = torch.Generator().manual_seed(4)
    loader = DataLoader(TensorDataset(torch.randn(24, 3, 8, 8, generator=generator), torch.arange(24) % 6), batch_size=8)
    net = SmallNet().eval()
    settings = dict(concepts=["a", "b"], shapley_kwargs={"n_permutations": 8}, progress=False)
    hints = [HINT(net, layer, hierarchy, saliency=saliency, **settings)
             for layer, saliency in [("features.2", "gradient"), ("features.2", "gradient_x_input"),
                                     ("features.3", "gradient_x_input")]]
    banks, _ = stream_regions(hints, loader, "given")
    for hint, bank in zip(hints, banks):
        alone = HINT(net, hint.layer, hierarchy, saliency=hint.saliency, **settings).fit(loader)
        for got, expected in zip(bank.rows(), alone.bank_.rows()):
            torch.testing.assert_close(got, expected)
    assert not torch.equal(banks[0].rows()[0], banks[1].rows()[0])  # the two methods do differ


def test_a_batch_without_concept_images_adds_nothing():
    hierarchy = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])
    generator = torch.Generator().manual_seed(3)
    images, labels = torch.randn(16, 3, 8, 8, generator=generator), torch.tensor([0, 1, 2, 0] * 2 + [3, 4, 5, 3] * 2)
    hint = HINT(SmallNet().eval(), "features.2", hierarchy, ["a"], saliency="gradient", progress=False,
                classifier_kwargs={"holdout": 0}, shapley_kwargs={"n_permutations": 4})
    first = hint.fit(DataLoader(TensorDataset(images[:8], labels[:8]), batch_size=8)).bank_.rows()
    both = hint.fit(DataLoader(TensorDataset(images, labels), batch_size=8)).bank_.rows()  # 2nd batch: no "a"
    for got, expected in zip(both, first):
        assert torch.equal(got, expected)


def test_one_leaf_per_row_label_matrix_equals_index_labels(small_fit):
    fitted, images = small_fit
    labels = torch.arange(48) % 6
    hint = HINT(SmallNet().eval(), "features.2", fitted.hierarchy, concepts=fitted.concepts, saliency="gradient",
                shapley_kwargs={"n_permutations": 16}, progress=False)
    hint.fit(DataLoader(TensorDataset(images, nn.functional.one_hot(labels, 6)), batch_size=16))
    for got, expected in zip(hint.bank_.rows(), fitted.bank_.rows()):
        assert torch.equal(got, expected)
    assert torch.equal(hint.scores_, fitted.scores_)


def _two_object_scenes(n):
    """Scenes of the constructed model holding one object of a and one of b each (their pixels summed)."""
    from captum_hint.datasets.constructed import mask_scenes

    scenes = mask_scenes(2 * n, seed=1)
    images = torch.stack([scenes[2 * i]["image"] + scenes[2 * i + 1]["image"] for i in range(n)])
    masks = torch.stack([torch.stack([scenes[2 * i]["masks"][0], scenes[2 * i + 1]["masks"][0]]) for i in range(n)])
    return images, masks


def test_several_leaves_per_image_give_regions_for_every_present_concept():
    from captum_hint.datasets.constructed import constructed_planted_model

    planted = constructed_planted_model((3, 1))  # a multi-label model: logit k = mean of channel planted_[k]
    images, masks = _two_object_scenes(8)
    settings = dict(saliency="gradient_x_input", classifier_kwargs={"holdout": 0}, shapley_kwargs={"n_permutations": 4},
                    progress=False)

    def fitted(concepts, labels, concept_score):
        hint = HINT(planted.model, planted.layer, planted.hierarchy, concepts, concept_score=concept_score, **settings)
        return hint.fit([(images, labels)])

    both = fitted(planted.concepts, torch.ones(8, 2, dtype=torch.long), "logit")
    vectors, buckets, under, image_ids = both.bank_.rows()
    assert under.all()  # every image is under both concepts
    for k in (0, 1):  # each concept's regions come from every image, and lie on that concept's object only
        assert set(image_ids[buckets == k].tolist()) == set(range(8))
        assert (vectors[buckets == k][:, planted.planted_[k]] > 0).all()
    assert planted.planted_ == [3, 1]
    assert both.neuron_ranking("a").argmax() == 3 and both.neuron_ranking("b").argmax() == 1
    # labelled with the a object only, the same images give the same regions of a and none of b
    only_a = fitted(["a"], torch.zeros(8, dtype=torch.long), "logit")
    assert only_a.bank_.counts()[0] == both.bank_.counts()[0]
    # the softmax score's normalizer makes a's saliency light up b's objects as well: a's regions then hold
    # rows where only b's channel is active
    softmax = fitted(planted.concepts, torch.ones(8, 2, dtype=torch.long), "log_probability")
    vectors, buckets, _, _ = softmax.bank_.rows()
    rows_a = vectors[buckets == 0].float()
    assert ((rows_a[:, 3] == 0) & (rows_a[:, 1] > 0)).any()


def test_objects_labels_read_every_object_of_dict_batches():
    from captum_hint.datasets import collate_samples, object_classes
    from captum_hint.datasets.constructed import constructed_planted_model, mask_scenes

    planted = constructed_planted_model((3, 1))
    samples = mask_scenes(16)
    loader = DataLoader(samples, batch_size=8, collate_fn=collate_samples)
    settings = dict(saliency="gradient_x_input", shapley_kwargs={"n_permutations": 4}, progress=False)
    by_objects = HINT(planted.model, planted.layer, planted.hierarchy, planted.concepts, **settings)
    by_label = HINT(planted.model, planted.layer, planted.hierarchy, planted.concepts, **settings)
    # one object per scene: its objects' classes are its label
    for got, expected in zip(by_objects.fit(loader, labels="objects").bank_.rows(), by_label.fit(loader).bank_.rows()):
        assert torch.equal(got, expected)
    batch = {"labels": [torch.tensor([1]), torch.tensor([0, 1, 1]), torch.tensor([], dtype=torch.long)]}
    assert object_classes(batch, 3).tolist() == [[False, True, False], [True, True, False], [False, False, False]]
    with pytest.raises(ValueError, match="labels: object class 3 is out of range"):
        object_classes({"labels": [torch.tensor([3])]}, 3)
    with pytest.raises(ValueError, match="labels: 'objects' reads each image's object classes from dict batches"):
        by_objects.fit([(torch.zeros(2, 3, 16, 16), torch.tensor([0, 1]))], labels="objects")


def test_several_leaves_per_image_need_concept_saliency_targets():
    from captum_hint.datasets.constructed import constructed_planted_model

    planted = constructed_planted_model((3, 1))
    images, _ = _two_object_scenes(4)
    hint = HINT(planted.model, planted.layer, planted.hierarchy, planted.concepts, saliency="gradient_x_input",
                saliency_target="leaf", progress=False)
    with pytest.raises(ValueError, match="labels: saliency_target='leaf' explains the one class of each image"):
        hint.fit([(images, torch.ones(4, 2, dtype=torch.long))])
    with pytest.raises(ValueError, match="labels: expected one of 'given', 'predicted', 'objects', got 'all'"):
        hint.fit([(images, torch.ones(4, 2, dtype=torch.long))], labels="all")


def test_shapley_values_recompute_the_fit_and_the_papers_retraining_variant(small_fit):
    hint, _ = small_fit
    values, errors = hint.shapley_values()
    assert torch.equal(values, hint.scores_) and torch.equal(errors, hint.standard_errors_)
    retrained, _ = hint.shapley_values(retrain=True, n_permutations=2, retrain_steps=2)
    assert retrained.shape == hint.scores_.shape and torch.isfinite(retrained).all()
    assert not torch.equal(retrained, hint.scores_)
    with pytest.raises(ValueError, match="shapley_kwargs: 'training_data' are set by HINT"):
        hint.shapley_values(retrain=True, training_data=None)


def test_logits_and_features_come_from_one_forward_pass(small_fit):
    hint, images = small_fit
    calls = []
    handle = hint.model.register_forward_pre_hook(lambda module, inputs: calls.append(len(inputs[0])))
    try:
        logits, features = hint.logits_and_features(images[:4])
    finally:
        handle.remove()
    assert calls == [4]
    with torch.no_grad():
        assert torch.allclose(logits, hint.model(images[:4]))
    assert torch.equal(features, hint.layer_features(images[:4])) and features.shape == (4, 5, 8, 8)

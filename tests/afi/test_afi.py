"""AfI: the occluder's constraints and seeding, Eq. 6-8 by hand, MMD, distillation, concept importance."""

import pytest
import torch

from captum_hint.afi import (GlobalFeatureOccluder, channel_importance, class_impression, concept_importance,
                             distillation_test, feature_importance, gradient_importance, meta_detector,
                             mmd_unbiased, valid_input_range)
from captum_hint.attr import LayerFeatureOcclusion, occlude
from nets import TwoStageNet


@pytest.fixture
def images():
    return torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _class_images(net, images, y):
    with torch.no_grad():
        return images[net(images).argmax(1) == y]


def test_valid_range_from_mean_and_std():
    low, high = valid_input_range((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    torch.testing.assert_close(low, torch.tensor([-1.0, -1.0, 0.0]))
    torch.testing.assert_close(high, torch.tensor([1.0, 3.0, 1.0]))


def test_occluder_flips_the_class_stays_in_range_and_repeats(images):
    net = TwoStageNet(classes=2).eval()
    y = int(net(images).argmax(1).mode().values)
    mine = _class_images(net, images, y)
    fit = lambda: GlobalFeatureOccluder(net, lam=0.01, lr=0.2, max_iterations=200, mean=(0.5,) * 3,  # noqa: E731
                                        std=(0.5,) * 3, seed=3, progress=False).fit(mine, y)
    occluder = fit()
    assert occluder.n_used_ + occluder.n_dropped_ == len(mine)
    # used_ marks the images classified as y, also after one draw of t (the occluder's first draw, seed 3)
    transformed = GlobalFeatureOccluder(net, mean=(0.5,) * 3, std=(0.5,) * 3).transform(
        mine, torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = (net(mine).argmax(1) == y) & (net(transformed).argmax(1) == y)
    assert torch.equal(occluder.used_, expected) and int(occluder.used_.sum()) == occluder.n_used_
    assert occluder.success_rate_ == 1.0 and occluder.history_["success_rate"][-1] == 1.0
    assert occluder.n_iterations_ == len(occluder.history_["loss"]) <= 200
    low, high = occluder.valid_range
    occluded = occlude(mine, occluder.delta_, occluder.valid_range)
    assert (occluded >= low.view(1, -1, 1, 1) - 1e-6).all() and (occluded <= high.view(1, -1, 1, 1) + 1e-6).all()
    assert torch.equal(fit().delta_, occluder.delta_)  # seeded: identical fits
    before = [p.requires_grad for p in net.parameters()]
    assert before == [True] * len(before) and not net.training


def test_occluder_errors(images):
    net = TwoStageNet(classes=2).eval()
    with pytest.raises(ValueError, match="images: not all of class y"):
        GlobalFeatureOccluder(net, progress=False).fit(images, 0, labels=torch.tensor([0] * 11 + [1]))
    with pytest.raises(ValueError, match="lam: expected a value in"):
        GlobalFeatureOccluder(net, lam=-0.1)
    assert bool((net(images).argmax(1) == 0).all())  # so none is classified as class 1
    with pytest.raises(ValueError, match="images: none of the 12 images is classified as y"):
        GlobalFeatureOccluder(net, progress=False).fit(images, 1)
    with pytest.raises(ValueError, match=r"y: class index 6 is out of range for a model with 2 outputs"):
        GlobalFeatureOccluder(net, progress=False).fit(images, {1, 6})


def test_feature_importance_by_hand(images):
    net = TwoStageNet(classes=2).eval()
    occluder = GlobalFeatureOccluder(net, progress=False)
    occluder.delta_ = torch.full((3, 8, 8), 0.3)
    layer = net.features[1]
    with torch.no_grad():
        clean = net.features[:2](images)
        shifted = net.features[:2](torch.clamp(images - 0.3, *[v.view(1, -1, 1, 1) for v in occluder.valid_range]))
    expected = (clean - shifted).mean(0).clamp_min(0)
    torch.testing.assert_close(feature_importance(occluder, images, "features.1", batch_size=5), expected)
    per_image = LayerFeatureOcclusion(net, layer).attribute(images, occluder.delta_, occluder.valid_range)
    torch.testing.assert_close(per_image.mean(0).clamp_min(0), expected)  # batched == mean of per-image
    w = channel_importance(expected)
    totals = expected.flatten(1).sum(1)
    torch.testing.assert_close(w, totals / totals.max())
    assert w.max() == 1.0 and (w >= 0).all()
    maps = meta_detector(net, "features.1", w, images[:3])
    torch.testing.assert_close(maps[:, 0], (clean[:3] * w.view(1, -1, 1, 1)).sum(1))


def test_channel_importance_by_hand():
    scores = torch.tensor([[[1.0, 1.0]], [[0.0, 2.0]], [[0.5, 0.0]]])
    torch.testing.assert_close(channel_importance(scores), torch.tensor([1.0, 1.0, 0.25]))
    assert torch.equal(channel_importance(torch.zeros(2, 1, 1)), torch.zeros(2))


def test_mmd_matches_the_direct_formula_and_vanishes_for_one_distribution():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=generator), torch.randn(4, 3, generator=generator) + 1
    sigma = 1.3

    def k(a, b):
        return float(torch.exp(-((a - b) ** 2).sum() / (2 * sigma**2)))

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert mmd_unbiased(x, y, bandwidth=sigma) == pytest.approx(xx + yy - 2 * xy, rel=1e-6)  # float32 inputs
    same = mmd_unbiased(torch.randn(400, 3, generator=generator), torch.randn(400, 3, generator=generator))
    assert abs(same) < 0.01
    assert mmd_unbiased(torch.randn(200, 3, generator=generator), torch.randn(200, 3, generator=generator) + 2) > 0.3


def test_concept_importance_and_its_errors(images):
    net = TwoStageNet(classes=2).eval()
    weights = {"features.1": torch.tensor([1.0, 0.5, 0.0, 0.2])}
    result = concept_importance(net, weights, {"bright": images.abs() + 0.5, "same": images}, images)
    assert sum(result["importance"].values()) == pytest.approx(1.0)
    assert result["importance"]["bright"] > result["importance"]["same"]
    with pytest.raises(ValueError, match="probes: empty need at least 2 images"):
        concept_importance(net, weights, {"empty": images[:0]}, images)
    with pytest.raises(ValueError, match="bandwidth"):
        concept_importance(net, weights, {"same": images}, images, bandwidth=0.0)


def test_concept_importance_uses_one_bandwidth_for_every_concept(images):
    net = TwoStageNet(classes=2).eval()
    weights = {"features.1": torch.tensor([1.0, 0.5, 0.0, 0.2])}
    probes = {"bright": images[:6].abs() + 0.5, "dark": -images[6:].abs(), "same": images}
    benchmark = images.flip(0)
    result = concept_importance(net, weights, probes, benchmark)
    outputs = {name: meta_detector(net, "features.1", weights["features.1"], x).flatten(1) for name, x in probes.items()}
    reference = meta_detector(net, "features.1", weights["features.1"], benchmark).flatten(1)
    # the median pairwise distance of every probe image and the benchmark, pooled
    pooled = torch.cat([*outputs.values(), reference])
    distances = torch.cdist(pooled, pooled)[~torch.eye(len(pooled), dtype=torch.bool)]
    assert result["bandwidth"]["features.1"] == pytest.approx(float(distances.median()))
    for name, output in outputs.items():
        assert result["mmd"][name]["features.1"] == pytest.approx(
            mmd_unbiased(output, reference, bandwidth=result["bandwidth"]["features.1"]), rel=1e-6)
    given = concept_importance(net, weights, probes, benchmark, bandwidth=3.0)
    assert given["bandwidth"] == {"features.1": 3.0}
    assert given["mmd"]["dark"]["features.1"] == pytest.approx(mmd_unbiased(outputs["dark"], reference, bandwidth=3.0),
                                                               rel=1e-6)


def test_distillation_separates_separable_classes(images):
    net = TwoStageNet(classes=2).eval()
    weights = torch.ones(4)
    result = distillation_test(net, "features.1", weights, images.abs() + 1, -images.abs() - 1, epochs=100, seed=0)
    assert result["accuracy"] == 1.0 and result["n_train"] + result["n_test"] == 24
    again = distillation_test(net, "features.1", weights, images.abs() + 1, -images.abs() - 1, epochs=100, seed=0)
    assert again == result


def test_gradient_baseline_and_class_impression(images):
    net = TwoStageNet(classes=2).eval()
    importance = gradient_importance(net, "features.1", images, 1)
    assert importance.shape == (4, 8, 8) and (importance >= 0).all()
    occluder = GlobalFeatureOccluder(net, mean=(0.5,) * 3, std=(0.5,) * 3, progress=False)
    picture = class_impression(occluder, "features.1", torch.tensor([1.0, 0.0, 0.0, 0.0]), (3, 8, 8), steps=20)
    assert picture.shape == (1, 3, 8, 8) and picture.min() >= -1 - 1e-6 and picture.max() <= 1 + 1e-6
    with torch.no_grad():
        start = net.features[:2]((0.1 * torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))))
        end = net.features[:2](picture)
    assert end[0, 0].mean() > start[0, 0].mean()  # the meta-detector's activation went up


def test_a_layer_not_in_the_model(images):
    net = TwoStageNet(classes=2).eval()
    occluder = GlobalFeatureOccluder(net, progress=False)
    occluder.delta_ = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match=r"layer: 'features.9' is not a submodule of TwoStageNet"):
        feature_importance(occluder, images, "features.9")
    with pytest.raises(RuntimeError, match="occluder: call fit"):
        feature_importance(GlobalFeatureOccluder(net, progress=False), images, "features.1")


def test_a_layer_input_reads_what_the_layer_before_outputs(images):
    """``attribute_to_layer_input``: the input of the pool ``features.2`` is the ReLU output ``features.1``."""
    net = TwoStageNet(classes=2).eval()
    occluder = GlobalFeatureOccluder(net, progress=False)
    occluder.delta_ = torch.linspace(-0.5, 0.5, 3 * 8 * 8).view(3, 8, 8)
    at_output = feature_importance(occluder, images, "features.1")
    assert at_output.abs().sum() > 0
    torch.testing.assert_close(feature_importance(occluder, images, "features.2", attribute_to_layer_input=True),
                               at_output, rtol=0, atol=0)
    weights = channel_importance(at_output)
    torch.testing.assert_close(meta_detector(net, "features.2", weights, images, attribute_to_layer_input=True),
                               meta_detector(net, "features.1", weights, images), rtol=0, atol=0)
    torch.testing.assert_close(gradient_importance(net, "features.2", images, 1, attribute_to_layer_input=True),
                               gradient_importance(net, "features.1", images, 1))
    positives, negatives = images.abs() + 1, -images.abs() - 1
    assert distillation_test(net, "features.2", weights, positives, negatives, epochs=20,
                             attribute_to_layer_input=True) == \
        distillation_test(net, "features.1", weights, positives, negatives, epochs=20)

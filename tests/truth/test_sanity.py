"""Sanity checks of neuron rankings: by hand, with spies that see what each check feeds them, and on real systems."""

import math

import pytest
import torch

from captum_hint.datasets.constructed import constructed_planted_model, mask_scenes
from captum_hint.truth import (cascading_randomization_check, label_randomization_check, rank_correlation,
                               split_half_stability, system_rankings, top_k_overlap)
from nets import SmallNet


def test_rank_correlation_and_overlap_by_hand():
    a = torch.tensor([0.1, 0.5, 0.9, 0.3])
    assert rank_correlation(a, a * 2 + 1) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(a, torch.ones(4)))  # a constant ranking has no order
    nan = torch.tensor([0.1, math.nan, 0.2, 0.3])
    assert math.isnan(rank_correlation(a, nan)) and math.isnan(top_k_overlap(nan, a, 2))  # could not rank
    assert top_k_overlap(a, torch.tensor([0.9, 0.5, 0.8, 0.0]), 2) == 0.5  # top-2 {2, 1} vs {0, 2}
    with pytest.raises(ValueError, match="k: expected at most 4"):
        top_k_overlap(a, a, 5)
    with pytest.raises(ValueError, match="second: expected D scores"):
        rank_correlation(a, a[:3])


class Spy:
    """A ranking function that records what it was fitted on; scores = the label-1 images' channel means."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, samples):
        self.calls.append(list(samples))
        chosen = [s["image"] for s in samples if s["label"] == 1] or [samples[0]["image"]]
        return {"b": torch.stack(chosen).mean((0, 2, 3))}


def test_label_randomization_moves_annotations_and_keeps_pixels():
    samples = mask_scenes(12)
    spy = Spy()
    result = label_randomization_check(spy, None, samples, repeats=2, seed=0)
    original, *shuffled = spy.calls
    assert original == list(samples) and len(shuffled) == 2 and len(result["correlation"]["b"]) == 2
    for calls in shuffled:
        assert all(torch.equal(s["image"], o["image"]) for s, o in zip(calls, samples))  # pixels stay
        assert sorted(s["label"] for s in calls) == sorted(s["label"] for s in samples)  # a permutation
        for s in calls:  # annotations move together, from one source image
            (source,) = [o for o in samples if o["concept_masks"] is s["concept_masks"]]
            assert s["label"] == source["label"] and s["masks"] is source["masks"]
        assert any(s["label"] != o["label"] for s, o in zip(calls, samples))


def test_cascade_reaches_an_activation_ranking_only_at_its_layer_and_leaves_the_model_alone():
    model = SmallNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def mean_activation(net, samples):  # depends only on features.2 and what is below it
        return {"a": net.features[:3](x).mean((0, 2, 3)).detach()}

    result = cascading_randomization_check(mean_activation, model, [], seed=0)
    assert result["steps"] == ["fc", "features.4", "features.2", "features.0"]
    assert result["correlation"]["a"][:2] == [pytest.approx(1.0), pytest.approx(1.0)]  # layers above: no effect
    assert result["correlation"]["a"][2] < 0.99  # the explained layer itself re-initialized
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and result["errors"] == {}

    def fails_once_the_first_layer_is_random(net, samples):
        if not torch.equal(net.features[0].weight, model.features[0].weight):
            raise ValueError("no image is classified as it")
        return mean_activation(net, samples)

    failing = cascading_randomization_check(fails_once_the_first_layer_is_random, model, [], seed=0)
    assert failing["errors"] == {"features.0": "no image is classified as it"}
    assert math.isnan(failing["correlation"]["a"][-1]) and math.isnan(failing["mean"][-1])
    with pytest.raises(ValueError, match="modules:"):
        cascading_randomization_check(mean_activation, model, [], modules=["nope"])


def test_split_halves_are_disjoint_and_cover_the_data():
    samples = mask_scenes(10)
    spy = Spy()
    result = split_half_stability(spy, None, samples, k=1, splits=3, seed=0)
    assert result["k"] == 1 and set(result["overlap"]) == {"b"}
    assert len(spy.calls) == 6
    for first, second in zip(spy.calls[::2], spy.calls[1::2]):
        ids = [id(s) for s in first] + [id(s) for s in second]
        assert sorted(ids) == sorted(id(s) for s in samples) and len(first) == len(second) == 5

    def constant(model, part):
        return {"a": torch.tensor([3.0, 2.0, 1.0])}

    stable = split_half_stability(constant, None, samples, k=2, splits=2)
    assert (stable["mean"], stable["low"], stable["high"], stable["chance"]) == (1.0, 1.0, 1.0, 2 / 3)


def test_hint_split_halves_agree_on_the_planted_channel():
    planted = constructed_planted_model()
    hierarchy = planted.hierarchy
    rankings = system_rankings("HINT (shapley)", "concept_relu", hierarchy, ["a", "b"], saliency="gradient_x_input")
    result = split_half_stability(rankings, planted.model, mask_scenes(32), k=1, splits=2)
    assert result["mean"] == 1.0  # both halves put the planted channel first, for both concepts
    with pytest.raises(ValueError, match="system: expected one of"):
        system_rankings("LIME", "concept_relu", hierarchy, ["a"])


def test_the_figure_shows_every_result():
    import matplotlib.pyplot as plt

    from captum_hint.truth import plot_sanity_checks

    label = {"A": {"correlation": {"x": [0.1, 0.2], "y": [math.nan]}}, "B": {"correlation": {"x": [0.9]}}}
    cascade = {"A": {"steps": ["fc", "conv"], "mean": [0.5, 0.0]}}
    split = {"A": {"mean": 0.5, "low": 0.25, "high": 0.75, "k": 3, "chance": 0.1}}
    figure = plot_sanity_checks(label, cascade, split, title="t")
    left, middle, right = figure.axes[:3]
    assert [len(c.get_offsets()) for c in left.collections] == [2, 1]  # NaN left out
    assert list(middle.lines[0].get_ydata()) == [0.5, 0.0]
    assert [t.get_text() for t in middle.get_xticklabels()] == ["fc", "conv"]
    assert right.get_ylabel() == "overlap@3 of the two halves"
    plt.close(figure)

"""Ranks of planted channels: by hand, and every ranking on a model built by hand whose answer is known."""

import math

import pytest
import torch

from captum_hint.datasets.constructed import constructed_planted_model, mask_scenes
from captum_hint.truth import images_of_class, planted_rank, ranking_table, score_planted_model


def test_planted_rank_by_hand():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9])
    assert planted_rank(scores, 1) == 1.5  # tied with channel 3: they share ranks 1 and 2
    assert planted_rank(scores, 2) == 3.0
    assert planted_rank(scores, 0) == 4.0
    with pytest.raises(ValueError, match="channel: expected an index into"):
        planted_rank(scores, 4)
    with pytest.raises(ValueError, match="scores"):
        planted_rank(torch.tensor([0.1, math.nan]), 0)


def test_images_of_class_keeps_only_scenes_holding_the_class_in_order():
    samples = mask_scenes(12)
    leaves = [1]
    holding = [i for i, s in enumerate(samples) if 1 in s["labels"].tolist()]
    assert 2 <= len(holding) < 12  # the toy scenes hold b in some scenes only
    images = images_of_class(samples, leaves, limit=2)
    assert torch.equal(images, torch.stack([samples[i]["image"] for i in holding[:2]]))
    assert len(images_of_class(samples, leaves, limit=100)) == len(holding)


def test_ranking_table_pools_random_seeds():
    rows = [{"method": "A", "rank": 1.0}, {"method": "A", "rank": 3.0},
            {"method": "random (seed 0)", "rank": 2.0}, {"method": "random (seed 1)", "rank": 4.0}]
    table = {r["method"]: r for r in ranking_table(rows)}
    assert set(table) == {"A", "random"}
    assert table["A"]["mean_rank"] == 2.0 and table["A"]["top1"] == 0.5 and table["random"]["n"] == 2
    assert table["A"]["low"] <= 2.0 <= table["A"]["high"]


def test_every_ranking_finds_channels_planted_by_construction():
    planted = constructed_planted_model((3, 1))
    samples = mask_scenes(32)
    # the layer feeds global average pooling: its gradient is the same at every position, so no region stands out
    fitted = {}
    rows = score_planted_model(planted, samples, saliency=["gradient", "gradient_x_input"], random_seeds=(0, 1),
                               seed=0, fitted=fitted)
    ranks = {(r["method"], r["concept"]): r["rank"] for r in rows}
    assert set(fitted) == {"HINT (gradient_x_input)", "SeVec", "AfI"}
    assert set(fitted["AfI"]) == {"a", "b"} and fitted["AfI"]["a"].shape == (4,)
    for concept in ("a", "b"):
        for ranking in ("shapley", "coef", "shapley retrained"):
            (failed,) = [r for r in rows if r["method"] == f"HINT ({ranking}, gradient)" and r["concept"] == concept]
            assert math.isnan(failed["rank"]) and failed["error"].startswith(
                "saliency: the gradient saliency at layer 'concept_relu' is the same at every position")
            assert "choose saliency='gradient_x_input' (or another method) or an earlier layer" in failed["error"]
        for method in ("HINT (shapley, gradient_x_input)", "HINT (coef, gradient_x_input)",
                       "HINT (shapley retrained, gradient_x_input)", "AfI (channel importance)",
                       "LayerConductance",
                       "Grad-CAM weights", "gAP (chosen children)", "TCAV (CAV)", "NetDissect"):
            assert ranks[(method, concept)] == 1.0, (method, concept, ranks)
        # SeVec's vector is the concept images' activity rate: the two noise channels are active at every
        # position of every image, the planted one only on its objects, so it comes third by definition
        assert ranks[("SeVec (vector)", concept)] == 3.0
        for seed in (0, 1):
            assert 1.0 <= ranks[(f"random (seed {seed})", concept)] <= 4.0
    assert all(r["channels"] == 4 and r["target"] == "planted" for r in rows)


def test_hint_finds_a_planted_multimodal_channel_as_multimodal():
    from torch.utils.data import DataLoader

    from captum_hint.datasets import collate_samples
    from captum_hint.hint import HINT

    planted = constructed_planted_model((3, 1), multimodal=0)
    assert planted.multimodal_ == {0: ["a", "b"]}
    samples = mask_scenes(48)
    hint = HINT(planted.model, planted.layer, planted.hierarchy, planted.concepts, saliency="gradient_x_input",
                progress=False).fit(DataLoader(samples, batch_size=16, collate_fn=collate_samples))
    # the multimodal channel is among the top 2 of both concepts, and nothing else is
    assert hint.multimodal_neurons(n=2) == planted.multimodal_
    assert planted_rank(hint.neuron_ranking("b"), 1) == 1.0  # b's own channel still first for b
    assert planted_rank(hint.neuron_ranking("a"), 2) == 4.0 and planted_rank(hint.neuron_ranking("b"), 2) == 4.0
    # the ranks: every ranking also ranks the multimodal channel for each of its two classes
    rows = score_planted_model(planted, samples[:16], saliency="gradient_x_input", random_seeds=(0,), class_images=8,
                               conductance_images=2, occluder_iterations=10, retrain_permutations=2)
    multimodal = [r for r in rows if r["target"] == "multimodal"]
    assert {(r["concept"]) for r in multimodal} == {"a", "b"}
    assert {r["method"] for r in multimodal} == {r["method"] for r in rows if r["target"] == "planted"}
    ranks = {(r["method"], r["concept"]): r["rank"] for r in multimodal}
    for concept in ("a", "b"):
        # its maps match each class's masks, second only to the class's own channel (which fires on nothing else)
        assert ranks[("NetDissect", concept)] == 2.0
        # the logits do not read it: no conductance, tied with the other class's and the noise channel (ranks 2-4)
        assert ranks[("LayerConductance", concept)] == 3.0
    with pytest.raises(ValueError, match="multimodal: expected a channel in 0..3 other than the planted"):
        constructed_planted_model((3, 1), multimodal=3)

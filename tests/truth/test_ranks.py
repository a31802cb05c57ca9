"""Ranks of planted channels: by hand, and every ranking on a model built by hand whose answer is known."""

import math

import pytest
import torch
from torch import nn

from captum_hint.concepts import ConceptHierarchy
from captum_hint.core.boxes import masks_to_boxes
from captum_hint.datasets.planted import PlantedModel
from captum_hint.truth import planted_rank, ranking_table, score_planted_model


def test_planted_rank_by_hand():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9])
    assert planted_rank(scores, 1) == 1.5  # tied with channel 3: they share ranks 1 and 2
    assert planted_rank(scores, 2) == 3.0
    assert planted_rank(scores, 0) == 4.0
    with pytest.raises(ValueError, match="channel: expected an index into"):
        planted_rank(scores, 4)
    with pytest.raises(ValueError, match="scores"):
        planted_rank(torch.tensor([0.1, math.nan]), 0)


def test_ranking_table_pools_random_seeds():
    rows = [{"method": "A", "rank": 1.0}, {"method": "A", "rank": 3.0},
            {"method": "random (seed 0)", "rank": 2.0}, {"method": "random (seed 1)", "rank": 4.0}]
    table = {r["method"]: r for r in ranking_table(rows)}
    assert set(table) == {"A", "random"}
    assert table["A"]["mean_rank"] == 2.0 and table["A"]["top1"] == 0.5 and table["random"]["n"] == 2
    assert table["A"]["low"] <= 2.0 <= table["A"]["high"]


class MaskChannelNet(nn.Module):
    """Input channel c < 2 carries concept c's mask; ``concept_relu`` copies it to channel ``planted[c]``.

    The other two channels of the layer copy the noise channel, and the
    logit of concept c is 4 x the mean of its planted channel: the answer is
    known by construction.
    """

    def __init__(self, planted):
        super().__init__()
        self.concept_conv = nn.Conv2d(3, 4, 1, bias=False)
        with torch.no_grad():
            self.concept_conv.weight.zero_()
            for c, channel in enumerate(planted):
                self.concept_conv.weight[channel, c] = 1.0
            for channel in set(range(4)) - set(planted):
                self.concept_conv.weight[channel, 2] = 1.0
        self.concept_relu = nn.ReLU()
        self.planted = list(planted)

    def forward(self, x):
        return 4 * self.concept_relu(self.concept_conv(x))[:, self.planted].mean(dim=(2, 3))


def _mask_scenes(n, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        label = i % 2
        top, left = (int(v) for v in torch.randint(0, size - 6, (2,), generator=generator))
        mask = torch.zeros(size, size, dtype=torch.bool)
        mask[top : top + 6, left : left + 6] = True
        image = torch.zeros(3, size, size)
        image[label] = mask * (0.5 + 0.5 * torch.rand(size, size, generator=generator))  # graded: NetDissect's quantile
        image[2] = torch.rand(size, size, generator=generator) * 0.5
        concept_masks = torch.zeros(2, size, size, dtype=torch.bool)
        concept_masks[label] = mask
        samples.append({"image": image, "label": label, "labels": torch.tensor([label]), "masks": mask[None],
                        "boxes": masks_to_boxes(mask[None]), "concept_masks": concept_masks,
                        "present": concept_masks.flatten(1).any(1)})
    return samples


def test_every_ranking_finds_channels_planted_by_construction():
    planted_channels = [3, 1]
    model = MaskChannelNet(planted_channels).eval()
    hierarchy = ConceptHierarchy.from_paths(["whole/a", "whole/b"])
    planted = PlantedModel(model, planted_channels, hierarchy)
    samples = _mask_scenes(32)
    # the layer feeds global average pooling: its gradient is the same at every position, so no region stands out
    with pytest.raises(ValueError, match="saliency='gradient_x_input' or an earlier layer"):
        score_planted_model(planted, samples, saliency="gradient")
    rows = score_planted_model(planted, samples, saliency="gradient_x_input", random_seeds=(0, 1), seed=0)
    ranks = {(r["method"], r["concept"]): r["rank"] for r in rows}
    for concept in ("a", "b"):
        for method in ("HINT (shapley)", "HINT (coef)", "AfI (channel importance)", "LayerConductance",
                       "Grad-CAM weights", "NetDissect"):
            assert ranks[(method, concept)] == 1.0, (method, concept, ranks)
        # SeVec's vector is the concept images' activity rate: the two noise channels are active at every
        # position of every image, the planted one only on its objects, so it comes third by definition
        assert ranks[("SeVec (vector)", concept)] == 3.0
        for seed in (0, 1):
            assert 1.0 <= ranks[(f"random (seed {seed})", concept)] <= 4.0
    assert all(r["channels"] == 4 for r in rows)

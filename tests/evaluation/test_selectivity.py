"""Image-level separation of images with a concept from images without it."""

import pytest
import torch
from sklearn.metrics import roc_auc_score

from captum_hint.evaluation import bootstrap_weights, presence_auc, weighted_roc_auc


def test_weighted_auc_equals_scikit_learn_row_by_row_with_ties():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (40,), generator=generator).float()  # many ties
    present = torch.rand(40, generator=generator) < 0.4
    weights = bootstrap_weights(40, seed=1, rounds=50)
    got = weighted_roc_auc(scores, present, weights)
    for row, value in zip(weights, got):
        if row[present].sum() > 0 and row[~present].sum() > 0:
            assert float(value) == pytest.approx(roc_auc_score(present.numpy(), scores.numpy(), sample_weight=row.numpy()),
                                                 abs=1e-12)
        else:
            assert torch.isnan(value)
    assert float(weighted_roc_auc(scores, present, torch.ones(1, 40))[0]) == pytest.approx(
        roc_auc_score(present.numpy(), scores.numpy()), abs=1e-12)


def test_presence_auc_by_hand():
    # positives 3, 1; negatives 2, 0: pairs (3>2, 3>0, 1<2, 1>0) -> 3 of 4
    assert presence_auc(torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([True, False, True, False]))[0] == 0.75
    auc, low, high = presence_auc(torch.arange(20.0), torch.arange(20) >= 10, seed=2)
    assert (auc, low, high) == (1.0, 1.0, 1.0)
    auc, low, high = presence_auc(torch.ones(30), torch.arange(30) % 3 == 0)
    assert (auc, low, high) == (0.5, 0.5, 0.5)  # a constant score: every pair a tie


def test_presence_auc_names_bad_input():
    with pytest.raises(ValueError, match="present: expected images with and without the concept, got 3 of 3"):
        presence_auc(torch.rand(3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="present: expected one value per score"):
        presence_auc(torch.rand(3), torch.tensor([True, False]))
    with pytest.raises(ValueError, match="scores"):
        presence_auc(torch.tensor([0.0, float("nan")]), torch.tensor([True, False]))

"""Recognition rates: does the model's top-1 class fall under the object's concept?"""

import pytest
import torch
from torch import nn

from captum_hint.concepts import ConceptHierarchy
from captum_hint.evaluation import (bootstrap_mean, recognition_rates, recognition_summary, recognized_indices,
                                    top1_classes)

HIERARCHY = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])


class ClassInPixel(nn.Module):
    """Predicts the class written in the image's first pixel (and has a BatchNorm whose state must survive)."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(6)

    def forward(self, images):
        logits = nn.functional.one_hot(images[:, 0, 0, 0].long(), 6).float()
        return self.norm(logits) if self.training else logits


def scene(predicted, labels):
    image = torch.zeros(3, 4, 4)
    image[0, 0, 0] = predicted
    return {"image": image, "label": labels[0], "labels": torch.tensor(labels)}


def test_rates_count_a_hit_under_the_concept_not_only_the_exact_class():
    samples = [scene(1, [0]), scene(0, [0]), scene(4, [1]), scene(3, [3]), scene(3, [5, 0]), scene(2, [4])]
    model = ClassInPixel().train()
    with pytest.warns(UserWarning, match="top1_classes: the model is in train mode"):
        top1 = top1_classes(model, samples, batch_size=4)
    assert top1.tolist() == [1, 0, 4, 3, 3, 2] and model.training and model.norm.num_batches_tracked == 0
    assert recognized_indices(samples, HIERARCHY, "a", top1) == [0, 1]  # c1 and c0 for a c0 object: both under a
    assert recognized_indices(samples, HIERARCHY, "c0", top1) == [1]
    rows = {r["concept"]: r for r in recognition_rates(model.eval(), samples, HIERARCHY, ["a", "b", "c0", "c2"], seed=3)}
    # a: held by scenes 0, 1, 2 and 4 (the second object), recognized in 0 and 1
    assert (rows["a"]["n"], rows["a"]["recognized"]) == (4, 2)
    assert (rows["a"]["rate"], rows["a"]["low"], rows["a"]["high"]) == bootstrap_mean([1.0, 1.0, 0.0, 0.0], seed=3)
    assert (rows["b"]["n"], rows["b"]["recognized"], rows["b"]["rate"]) == (3, 2, pytest.approx(2 / 3))
    assert rows["c2"]["n"] == 0 and rows["c2"]["rate"] != rows["c2"]["rate"]  # NaN: no scene holds it
    assert rows["a"]["label"] == HIERARCHY.label("a")
    low, high = rows["b"]["low"], rows["b"]["high"]
    assert recognition_summary([rows["b"]]) == f"{HIERARCHY.label('b')} 0.67 [{low:.2f}, {high:.2f}] (2/3)"


def test_a_sample_with_one_label_only_counts_its_label():
    samples = [{"image": scene(3, [3])["image"], "label": 3}, {"image": scene(0, [4])["image"], "label": 4}]
    (row,) = recognition_rates(ClassInPixel(), samples, HIERARCHY, ["b"])
    assert (row["n"], row["recognized"]) == (2, 1)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="samples: expected at least one sample"):
        top1_classes(ClassInPixel(), [])
    with pytest.raises(ValueError, match="top1: expected one class per sample"):
        recognized_indices([scene(0, [0])], HIERARCHY, "a", torch.tensor([0, 1]))

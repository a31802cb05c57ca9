"""Semantic vectors: Eq. 3 and D_c by hand, streaming, retrieval, geometry, the tests of Table 1 and 2."""

import math

import pytest
import torch
from torch import nn

from captum_hint import ConceptHierarchy
from captum_hint.sevec import SemanticVectors, accuracy_correlation, neuron_vs_vector_test


class Rectified(nn.Module):
    """phi(x) = relu(x) at ``features`` (x: N x 2 x 1 x 2, D = 4); logits from a fixed linear head."""

    def __init__(self):
        super().__init__()
        self.features = nn.ReLU()
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 1.0, 0], [0, 0, 0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def images_from(patterns):
    """Images whose phi is the given 0/1 patterns scaled by 2 (a_i = the pattern)."""
    return (torch.tensor(patterns, dtype=torch.float32) * 2 - 0.5).view(-1, 2, 1, 2)


def test_vectors_and_diversity_by_hand():
    patterns = [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    labels = torch.tensor([0, 0, 1, 1])
    sevec = SemanticVectors(Rectified(), "features", [0, 1], progress=False)
    sevec.fit([(images_from(patterns), labels)])
    a = torch.tensor(patterns, dtype=torch.float32)
    unit = a / a.norm(dim=1, keepdim=True)
    for k, rows in ((0, [0, 1]), (1, [2, 3])):
        total = unit[rows].sum(0)
        expected = total / total.norm()
        torch.testing.assert_close(sevec.vectors_[k], expected)
        diversity = 1 - torch.stack([torch.dot(unit[i], expected) for i in rows]).mean()
        torch.testing.assert_close(sevec.diversity_[k], diversity)
    assert sevec.counts_.tolist() == [2, 2]
    assert sevec.diversity_[1] == pytest.approx(0.0, abs=1e-6)  # equal a_i: no diversity
    assert ((sevec.diversity_ >= 0) & (sevec.diversity_ <= 1)).all()


def test_streaming_equals_one_batch_and_hierarchy_counts_ancestors():
    hierarchy = ConceptHierarchy.from_paths(["thing/a", "thing/b", "other/c"])
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(12, 2, 1, 2, generator=generator)
    labels = torch.arange(12) % 3
    one = SemanticVectors(Rectified(), "features", ["thing", "a", "other"], hierarchy, progress=False).fit([(x, labels)])
    many = SemanticVectors(Rectified(), "features", ["thing", "a", "other"], hierarchy, progress=False).fit(
        [(x[i : i + 5], labels[i : i + 5]) for i in range(0, 12, 5)])
    torch.testing.assert_close(one.vectors_, many.vectors_)
    assert one.counts_.tolist() == [8, 4, 4]  # an image counts for every concept above its leaf


def test_pooled_representation_averages_positions():
    x = torch.rand(4, 2, 1, 2) + 0.1
    sevec = SemanticVectors(Rectified(), "features", [0], representation="pooled", progress=False)
    assert torch.equal(sevec.features(x), x.flatten(2).mean(-1))


def test_retrieval_streams_to_the_same_top_n():
    x = torch.rand(10, 2, 1, 2, generator=torch.Generator().manual_seed(1)) + 0.05  # no ties in cosine
    sevec = SemanticVectors(Rectified(), "features", [0, 1, 2], progress=False).fit([(x, torch.arange(10) % 3)])
    streamed = sevec.retrieve([x[:4], x[4:7], x[7:]], n=3)
    assert torch.equal(streamed, sevec.similarity(x).T.topk(3, dim=1).indices)


def test_sibling_and_unrelated_cosines_by_hand():
    hierarchy = ConceptHierarchy.from_paths(["whole/animal/dog", "whole/animal/cat", "whole/thing/car"])
    sevec = SemanticVectors(Rectified(), "features", ["dog", "cat", "car"], hierarchy, progress=False)
    sevec.vectors_ = torch.nn.functional.normalize(torch.tensor([[1.0, 1, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 1]]), dim=1)
    result = sevec.sibling_cosines()
    assert result["siblings"] == pytest.approx(1 / math.sqrt(2)) and result["n_sibling_pairs"] == 1
    assert result["unrelated"] == pytest.approx(0.0) and result["n_unrelated_pairs"] == 2 and result["top"] == "whole"


def test_neuron_vs_vector_modifications_by_hand():
    model = Rectified()
    x = images_from([[1, 1, 0, 1], [0, 1, 1, 0]])
    sevec = SemanticVectors(model, "features", [0, 1, 2], progress=False)
    sevec.vectors_ = torch.tensor([[1.0, 0.2, 0.0, 0.6], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    changes = neuron_vs_vector_test(sevec, x, [0, 1])
    with torch.no_grad():
        before = model(x).softmax(1)
        masked = model.head(torch.relu(x).flatten(1) * torch.tensor([[1.0, 0, 0, 1], [0, 1, 1, 0]])).softmax(1)
        phi = torch.relu(x).flatten(1)
        raised = phi.clone()
        raised[0, 0], raised[1, 1] = 1.5 * phi[0].max(), 1.5 * phi[1].max()  # argmax of v_0, v_1
        raised = model.head(raised).softmax(1)
    torch.testing.assert_close(changes["semantic vector"], masked[[0, 1], [0, 1]] - before[[0, 1], [0, 1]])
    torch.testing.assert_close(changes["associated unit"], raised[[0, 1], [0, 1]] - before[[0, 1], [0, 1]])
    assert set(changes) == {"semantic vector", "permuted vector", "associated unit", "random unit"}
    again = neuron_vs_vector_test(sevec, x, [0, 1])
    assert torch.equal(again["random unit"], changes["random unit"])  # seeded


def test_accuracy_correlation_counts_hits():
    model = Rectified()
    x = torch.randn(30, 2, 1, 2, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(30) % 3
    sevec = SemanticVectors(model, "features", [0, 1, 2], progress=False).fit([(x, labels)])
    result = accuracy_correlation(sevec, [(x, labels)])
    predicted = model(x).argmax(1)
    for k in range(3):
        assert result["accuracy"][k] == pytest.approx(float((predicted[labels == k] == k).float().mean()))
    assert -1 <= result["r"] <= 1 and 0 <= result["p_value"] <= 1


def test_errors():
    x = torch.rand(4, 2, 1, 2)
    with pytest.raises(ValueError, match="concepts: no image for 2"):
        SemanticVectors(Rectified(), "features", [0, 2], progress=False).fit([(x, torch.tensor([0, 0, 1, 1]))])

    class Signed(Rectified):
        def forward(self, x):
            return self.head(self.features(x).flatten(1) - 1)

    signed = SemanticVectors(nn.Sequential(nn.Identity(), nn.Flatten(), nn.Linear(4, 2)), "0", [0], progress=False)
    with pytest.raises(ValueError, match=r"layer: '0' gives negative values .* meant for rectified layers"):
        signed.fit([(x - 0.5, torch.tensor([0, 0, 1, 1]))])
    fitted = SemanticVectors(Rectified(), "features", [0, 1], progress=False).fit([(x, torch.tensor([0, 0, 1, 1]))])
    other = SemanticVectors(nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(6, 2)), "0", [0, 1], progress=False)
    other.vectors_ = fitted.vectors_
    with pytest.raises(ValueError, match="images: give 6-dim features at this layer; the vectors have 4"):
        other.similarity(torch.rand(2, 3, 1, 2))
    with pytest.raises(ValueError, match="representation: expected 'spatial' or 'pooled'"):
        SemanticVectors(Rectified(), "features", [0], representation="mean")
    with pytest.raises(RuntimeError, match="call fit"):
        SemanticVectors(Rectified(), "features", [0]).vector(0)
    assert Signed is not None


@pytest.mark.parametrize("with_hierarchy", [True, False])
def test_several_leaves_per_image(with_hierarchy):
    hierarchy = ConceptHierarchy.from_paths(["thing/a", "thing/b", "other/c"]) if with_hierarchy else None
    concepts = ["thing", "a", "b", "other"] if with_hierarchy else [0, 1, 2]
    x = torch.randn(6, 2, 1, 2, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])

    def fitted(given):
        return SemanticVectors(Rectified(), "features", concepts, hierarchy, progress=False).fit([(x, given)])

    single, one_hot = fitted(labels), fitted(torch.nn.functional.one_hot(labels, 3).bool())
    torch.testing.assert_close(one_hot.vectors_, single.vectors_)  # one leaf per image: the same as indices
    both = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])  # image 0 holds a and b
    several = fitted(both)
    phi = (torch.relu(x).flatten(1) > 0).float()
    unit = phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12)  # an all-inactive image adds nothing
    b_rows = [0, 1, 4]  # image 0 now counts for b (and once only for thing, its ancestor of both)
    b_index = concepts.index("b" if with_hierarchy else 1)
    expected = unit[b_rows].sum(0)
    torch.testing.assert_close(several.vectors_[b_index], expected / expected.norm())
    if with_hierarchy:
        assert several.counts_.tolist() == [4, 2, 3, 2]
    with pytest.raises(ValueError, match="labels: an indicator matrix must hold only 0 and 1"):
        fitted(both * 2)

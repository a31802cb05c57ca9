"""ConceptClassifier and the joint fit."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_hint.hint.classifiers import IGNORE, ConceptClassifier, _holdout_rows, f1_score, fit_concept_classifiers


def two_clusters(n=400, dim=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    features = torch.randn(n, dim, generator=generator)
    features[:, 1] += 8 * labels - 4  # feature 1 separates the classes (no overlap at 4 sigma)
    features[:, 3] = features[:, 3] * 10 + 50  # a large, useless feature
    return features, labels


def test_separable_concept_is_learned():
    features, labels = two_clusters()
    classifier = ConceptClassifier(epochs=40, seed=0)
    assert classifier.fit(features, labels, groups=torch.arange(400) // 4) is classifier
    assert classifier.f1_ == 1.0
    assert classifier.coef_.abs().argmax() == 1 and classifier.coef_[1] > 0
    assert (classifier.predict(features) == labels.bool()).float().mean() > 0.98
    probabilities = classifier.predict_proba(features)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    torch.testing.assert_close(
        classifier.decision_function(features), features @ classifier.coef_ + classifier.intercept_
    )


def test_joint_fit_equals_separate_fits():
    features, labels = two_clusters()
    other = (features[:, 0] > 0).long()
    joint = fit_concept_classifiers(features, torch.stack([labels, other], 1), epochs=5, seed=3)
    alone = [fit_concept_classifiers(features, t, epochs=5, seed=3)[0] for t in (labels, other)]
    for j, a in zip(joint, alone):
        torch.testing.assert_close(j.coef_, a.coef_, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(j.intercept_, a.intercept_, rtol=1e-4, atol=1e-5)
        assert j.f1_ == pytest.approx(a.f1_)


def test_ignored_rows_are_neither_positive_nor_negative():
    features, labels = two_clusters()
    targets = labels.clone().to(torch.int8)
    flipped = torch.arange(0, 400, 5)
    targets[flipped] = IGNORE  # these rows would be wrong if they counted
    features = features.clone()
    features[flipped, 1] *= -1
    (classifier,) = fit_concept_classifiers(features, targets, epochs=30, seed=0)
    kept = targets != IGNORE
    assert (classifier.predict(features[kept]) == (targets[kept] == 1)).all()
    assert classifier.n_positive_ + classifier.n_negative_ == int(kept.sum())


def test_holdout_keeps_groups_whole():
    groups = torch.arange(100) // 10
    held = _holdout_rows(100, groups, 0.3, torch.Generator().manual_seed(0))
    assert held.sum() == 30
    for g in range(10):
        assert held[groups == g].all() or not held[groups == g].any()


def test_f1_by_hand():
    predicted = torch.tensor([True, True, False, False, True])
    actual = torch.tensor([True, False, True, False, True])
    assert f1_score(predicted, actual) == pytest.approx(2 * 2 / (3 + 3))


def test_one_class_is_an_error():
    features, _ = two_clusters()
    with pytest.raises(ValueError, match="targets: concept 'mammal' has no negative examples"):
        fit_concept_classifiers(features, torch.ones(400), concepts=["mammal"])
    with pytest.raises(ValueError, match="has no positive examples"):
        ConceptClassifier().fit(features, torch.zeros(400, dtype=torch.long))


def test_nan_features_are_an_error():
    features, labels = two_clusters()
    features[3, 2] = float("nan")
    with pytest.raises(ValueError, match="features: contains NaN"):
        ConceptClassifier().fit(features, labels)


def test_unfitted_use_is_an_error():
    with pytest.raises(RuntimeError, match="call fit"):
        ConceptClassifier().predict(torch.zeros(2, 3))


def test_captum_classifier_interface():
    features, labels = two_clusters()
    loader = DataLoader(TensorDataset(features, labels + 7), batch_size=64)
    classifier = ConceptClassifier(epochs=30)
    stats = classifier.train_and_eval(loader)
    assert stats["accs"] > 0.95 and stats["f1"] > 0.95
    assert classifier.classes() == [7, 8]
    weights = classifier.weights()
    assert weights.shape == (2, 5)
    torch.testing.assert_close(weights[1], classifier.coef_)
    torch.testing.assert_close(weights[0], -classifier.coef_)


def test_plugs_into_tcav(small_net, tmp_path):
    from captum.concept import TCAV, Concept

    def concept(concept_id, shift):
        generator = torch.Generator().manual_seed(concept_id)
        images = torch.randn(24, 3, 8, 8, generator=generator) + shift
        return Concept(concept_id, f"c{concept_id}", DataLoader(images, batch_size=8))

    tcav = TCAV(small_net, layers=["features.2"], classifier=ConceptClassifier(epochs=10), save_path=str(tmp_path))
    scores = tcav.interpret(torch.randn(4, 3, 8, 8), experimental_sets=[[concept(0, -1.0), concept(1, 1.0)]], target=2)
    (result,) = scores.values()
    assert result["features.2"]["sign_count"].shape == (2,)
    assert result["features.2"]["magnitude"].shape == (2,)


# ---------------------------------------------------------------- review defects
@pytest.mark.parametrize("bad", [2, -2])
def test_targets_outside_positive_negative_ignore_are_named(bad):
    """Defect 7: a target of 2 or -2 was silently ignored (neither positive nor negative)."""
    features, labels = two_clusters(n=40)
    targets = labels.to(torch.int8).clone()
    targets[5] = bad
    with pytest.raises(ValueError, match=rf"targets: expected only 1 \(positive\), 0 \(negative\) or -1 \(IGNORE\), got \[{bad}\]"):
        fit_concept_classifiers(features, targets)


def test_inf_features_are_an_error():
    """Defect 3: Inf passed the NaN-only check and gave NaN coefficients."""
    features, labels = two_clusters(n=40)
    features[7, 2] = float("inf")
    with pytest.raises(ValueError, match=r"features: contains Inf \(rows \[7\]\)"):
        fit_concept_classifiers(features, labels.to(torch.int8))


def test_held_out_scores_equal_scikit_learn_per_classifier():
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

    features, labels = two_clusters()
    features[:, 1] += torch.randn(400, generator=torch.Generator().manual_seed(1)) * 4  # overlapping classes
    other = (features[:, 0] > 0).to(torch.int8)
    other[::7] = IGNORE
    # two classifiers share the labels' column on different features (as HINT's localizers do), one has its own
    targets = torch.stack([labels, labels, other], 1).to(torch.int8)
    masks = torch.tensor([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    groups = torch.arange(400) // 4
    fitted = fit_concept_classifiers(features, targets, groups, epochs=3, seed=5, feature_masks=masks)
    held = _holdout_rows(400, groups, 0.2, torch.Generator().manual_seed(5))
    for k, classifier in enumerate(fitted):
        scored = held & (targets[:, k] != IGNORE)
        truth = (targets[scored, k] == 1).numpy()
        score = classifier.decision_function(features[scored]).detach().numpy()
        assert classifier.roc_auc_ == roc_auc_score(truth, score)
        assert classifier.average_precision_ == average_precision_score(truth, score)
        assert classifier.balanced_accuracy_ == balanced_accuracy_score(truth, score > 0)
        assert classifier.f1_ == f1_score(torch.from_numpy(score > 0), torch.from_numpy(truth))
    assert fitted[0].roc_auc_ != fitted[1].roc_auc_


def test_small_problems_gather_precomputed_rows_exactly_as_streamed_batches(monkeypatch):
    """Training rows standardized once and gathered per step give bit for bit the streamed batches' fit."""
    from captum_hint.hint import classifiers

    features, labels = two_clusters(n=600, dim=7)
    other = (features[:, 0] > 0).to(torch.int8)
    other[::5] = IGNORE
    targets = torch.stack([labels.to(torch.int8), other], 1)
    masks = torch.tensor([[1, 1, 1, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    for dtype, feature_masks in [(torch.float16, None), (torch.float32, masks)]:
        kwargs = dict(groups=torch.arange(600) // 3, batch_size=128, seed=2, feature_masks=feature_masks)
        gathered = fit_concept_classifiers(features.to(dtype), targets, **kwargs)
        with monkeypatch.context() as patch:
            patch.setattr(classifiers, "_TABLE_ELEMENTS", 0)  # every batch standardized as it is drawn
            streamed = fit_concept_classifiers(features.to(dtype), targets, **kwargs)
        for a, b in zip(gathered, streamed):
            assert torch.equal(a.coef_, b.coef_) and torch.equal(a.intercept_, b.intercept_)
            assert a.f1_ == b.f1_ and a.roc_auc_ == b.roc_auc_

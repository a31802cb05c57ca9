"""The paper's experiments and the reference patches, on small nets with known answers."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from captum_hint import HINT, ConceptHierarchy
from captum_hint.hint.experiments import (adversarial_study, cascading_randomization_study, random_rankings,
                                          ranking_study, saliency_method_study)
from captum_hint.hint.reference_patches import receptive_field, top_activating_patches
from nets import SmallNet, TwoStageNet

HIERARCHY = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])


def scene_samples(n, seed):
    """Images with a bright square object (class i % 6) and its mask."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        image = 0.1 * torch.randn(3, 8, 8, generator=generator)
        mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        y, x = int(torch.randint(0, 4, (1,), generator=generator)), int(torch.randint(0, 4, (1,), generator=generator))
        mask[0, y : y + 4, x : x + 4] = True
        image[:, mask[0]] += 1.0 + 0.2 * (i % 6)
        samples.append({"image": image, "label": i % 6, "labels": torch.tensor([i % 6]), "masks": mask,
                        "boxes": torch.tensor([[float(x), float(y), x + 3.0, y + 3.0]])})
    return samples


@pytest.fixture
def fitted():
    from captum_hint.datasets import collate_samples

    train = scene_samples(24, 0)
    hint = HINT(SmallNet(), "features.2", HIERARCHY, ["a", "b"], saliency="gradient", progress=False,
                shapley_kwargs={"n_permutations": 4})
    return hint.fit(DataLoader(train, batch_size=8, collate_fn=collate_samples)), train


def test_joint_localizers_equal_separate_fits(fitted):
    hint, _ = fitted
    from captum_hint.hint.classifiers import fit_concept_classifiers

    neurons, joint = hint.localizer("a", 0.4, "coef")
    vectors, targets, images = hint._training_data()
    (alone,) = fit_concept_classifiers(vectors[:, neurons], targets[:, 0], images, ["a"], seed=hint.seed)
    torch.testing.assert_close(joint.coef_, alone.coef_, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(joint.intercept_, alone.intercept_, rtol=1e-4, atol=1e-5)


def test_held_out_scores(fitted):
    hint, _ = fitted
    scores = hint.held_out_scores()
    assert list(scores) == ["a", "b"]
    for values in scores.values():
        assert set(values) == {"f1", "roc_auc", "average_precision", "balanced_accuracy"}
        assert all(0 <= v <= 1 for v in values.values())


def test_random_rankings_are_seeded_and_differ():
    hint = type("Fitted", (), {"scores_": torch.zeros(5, 2)})()
    first, again = random_rankings(hint, ["a", "b"], (0, 1)), random_rankings(hint, ["a", "b"], (0, 1))
    assert list(first) == ["random (seed 0)", "random (seed 1)"]
    assert torch.equal(first["random (seed 0)"]["a"], again["random (seed 0)"]["a"])
    assert not torch.equal(first["random (seed 0)"]["a"], first["random (seed 1)"]["a"])


def test_ranking_study_rows(fitted):
    hint, train = fitted
    rows = ranking_study(hint, train, scene_samples(12, 1), ["a"], fractions=(0.2, 0.6), random_seeds=(0, 1),
                         conductance_images=2, gradcam_layer="features.2", thresholds=(0.3, 0.6))
    methods = [(r["method"], r["fraction"]) for r in rows]
    expected = [f"HINT ({name})" for name in ("shapley", "coef", "random (seed 0)", "random (seed 1)",
                                              "LayerConductance", "NetDissect")]
    assert [m for m, f in methods if f == 0.2] == expected
    assert {m for m, f in methods if f != f} == {"Grad-CAM", "centre Gaussian", "full image"}
    assert all(r["images"] == 6 for r in rows)


def test_saliency_method_study(fitted):
    _, train = fitted
    study = saliency_method_study(SmallNet(), "features.2", HIERARCHY, ["a", "b"], train, scene_samples(12, 1),
                                  methods={"gradient": {}, "integrated_gradients": {"n_steps": 2}},
                                  hint_kwargs={"shapley_kwargs": {"n_permutations": 2}}, thresholds=(0.5,))
    assert sorted({r["method"] for r in study["rows"]}) == ["HINT gradient", "HINT integrated_gradients"]
    assert set(study["held_out"]) == {"gradient", "integrated_gradients"}


def test_cascading_randomization_keeps_the_model_and_decorrelates():
    net = TwoStageNet(classes=6)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train = scene_samples(24, 0)
    study = cascading_randomization_study(net, "features.1", HIERARCHY, "a", train, scene_samples(12, 1),
                                          saliency="gradient", hint_kwargs={"shapley_kwargs": {"n_permutations": 2}})
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    names = [step["randomized"] for step in study["steps"]]
    assert names[0] == "none" and len(names) >= 2 and names[-1].startswith("head")
    assert study["steps"][0]["spearman"][0] == pytest.approx(1.0)  # the intact maps against themselves
    assert study["maps"].shape[:2] == (len(names), len(study["images"]))


def test_adversarial_study_reaches_the_target(fitted):
    hint, train = fitted
    images = torch.stack([s["image"] for s in train[:4]])
    study = adversarial_study(hint, images, target_class=4, concept="b", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                              radius=2.0, step_size=0.5, steps=20)
    clean, attacked = study["target_prob"]
    assert (attacked > clean).all()
    assert study["maps"][1].shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="target_class: expected a class index"):
        adversarial_study(hint, images, 9, "b", (0.0,) * 3, (1.0,) * 3)


def test_receptive_field_of_stacked_convolutions():
    # three 3 x 3 convolutions: a theoretical field of 7 px; nearly all gradient mass lies inside it
    net = SmallNet()
    assert receptive_field(net, "features.4", (3, 16, 16), mass=0.999) == 7
    assert receptive_field(net, "features.0", (3, 16, 16), mass=0.999) == 3


def test_top_activating_patches_match_brute_force():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(10, 3, 8, 8, generator=generator)
    net = SmallNet()
    result = top_activating_patches(net, "features.2", DataLoader(TensorDataset(data), batch_size=3), [1, 4], k=3,
                                    patch_size=3)
    with torch.no_grad():
        activations = net.features[:3](data)  # 10 x 5 x 8 x 8
    for row, neuron in enumerate([1, 4]):
        peaks = activations[:, neuron].flatten(1).amax(1)
        top = peaks.topk(3)
        torch.testing.assert_close(result["values"][row], top.values)
        assert result["image_index"][row].tolist() == top.indices.tolist()
        for j, image in enumerate(top.indices.tolist()):
            position = activations[image, neuron].flatten().argmax()
            y, x = int(position // 8), int(position % 8)
            assert result["centre"][row, j].tolist() == [y, x]  # stride 1: the pixel itself
            padded = torch.nn.functional.pad(data[image], (1, 1, 1, 1))
            torch.testing.assert_close(result["patches"][row, j], padded[:, y : y + 3, x : x + 3])


def test_top_activating_patches_default_to_the_receptive_field():
    data = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    result = top_activating_patches(SmallNet(), "features.4", DataLoader(TensorDataset(data), batch_size=2), [0], k=2)
    size = receptive_field(SmallNet(), "features.4", (3, 16, 16))
    assert result["patches"].shape == (1, 2, 3, size, size)

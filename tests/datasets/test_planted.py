"""The planted-concept model: its scenes, its seeded and cached training, and the check of its truth."""

import math

import pytest
import torch

from captum_hint.datasets import StampScenes
from captum_hint.datasets.planted import (PLANTED_CLASSES, PlantedConceptNet, PlantedScenes, _ablated_logits,
                                          check_planted_truth, planted_hierarchy, train_planted_model)


def test_scenes_label_every_object_with_its_planted_class():
    scenes = PlantedScenes(12, seed=3)
    folders = [folder for folder, _ in PLANTED_CLASSES.values()]
    for i in range(len(scenes)):
        sample, raw = scenes[i], scenes.scenes[i]
        assert sample["image"].shape == (3, 64, 64) and sample["concept_masks"].shape == (len(folders), 64, 64)
        for k in range(len(folders)):  # each class's mask is the union of its objects' masks
            union = sample["masks"][sample["labels"] == k].any(0) if (sample["labels"] == k).any() else \
                torch.zeros(64, 64, dtype=torch.bool)
            assert torch.equal(sample["concept_masks"][k], union)
        assert torch.equal(sample["present"], torch.isin(torch.arange(len(folders)), sample["labels"]))
        assert sample["label"] in sample["labels"].tolist() and len(sample["labels"]) == len(raw["labels"])
    assert planted_hierarchy().leaves == list(PLANTED_CLASSES)
    assert sorted(planted_hierarchy().leaves_under("animal")) == [0, 1]


def test_a_scene_with_no_visible_object_says_so():
    # tiny stamps feathered below half opacity everywhere leave no object (this raised inside torch.stack);
    # PlantedScenes scales the feather to its size for this reason
    kwargs = dict(objects=(1, 1), size=32, scale=(0.15, 0.15), seed=0)
    with pytest.raises(ValueError, match="feather: scene 1 keeps no pixel of any object above half opacity"):
        StampScenes("train", 2, feather=1.5, **kwargs)[1]
    assert StampScenes("train", 2, feather=0.0, **kwargs)[1]["masks"].flatten(1).any(1).all()


def test_training_is_seeded_cached_and_leaves_the_global_generator(fresh_cache):
    state = torch.get_rng_state()
    first = train_planted_model("bottleneck", seed=5, n_scenes=32, epochs=2, batch_size=16)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(set(first.planted_)) == len(PLANTED_CLASSES) and len(first.history_) == 2
    assert all(math.isfinite(loss) for loss in first.history_)
    again = train_planted_model("bottleneck", seed=5, n_scenes=32, epochs=2, batch_size=16, cache=False)
    for (name, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), name  # the same seed trains the same weights
    loaded = train_planted_model("bottleneck", seed=5, n_scenes=32, epochs=2, batch_size=16)
    assert loaded.history_ == first.history_ and not loaded.model.training
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), loaded.model.state_dict().values()))
    assert list(fresh_cache.glob("planted/*/weights.pt"))
    other = train_planted_model("bottleneck", seed=6, n_scenes=32, epochs=2, batch_size=16, cache=False)
    assert other.planted_ != first.planted_ or not torch.equal(other.model.head.weight, first.model.head.weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant: expected one of"):
        train_planted_model("wide")
    with pytest.raises(ValueError, match="width: expected at least one channel per class"):
        train_planted_model(width=2)
    with pytest.raises(ValueError, match="epochs"):
        train_planted_model(epochs=0)


def test_ablation_is_one_batched_pass_equal_to_zeroing_each_channel():
    torch.manual_seed(0)
    model = PlantedConceptNet(4, [3, 1, 0, 7], width=8).eval()
    images = torch.randn(3, 3, 32, 32)
    batched = _ablated_logits(model, model.concept_relu, images, torch.arange(8))
    for channel in range(8):
        handle = model.concept_relu.register_forward_hook(lambda m, i, o, c=channel: o.index_fill(1, torch.tensor([c]), 0.0))
        with torch.no_grad():
            expected = model(images)
        handle.remove()
        torch.testing.assert_close(batched[channel], expected)
    assert not model.concept_relu._forward_hooks


def test_truth_check_on_a_tiny_model(fresh_cache):
    planted = train_planted_model("bottleneck", seed=0, n_scenes=48, epochs=2, batch_size=16)
    held_out = PlantedScenes(48, seed=99)
    check = check_planted_truth(planted, held_out)
    assert set(check["classes"]) == set(PLANTED_CLASSES) and check["images"] == 48 and check["multimodal"] == {}
    assert check["passed"] == (not check["failures"])
    for name, entry in check["classes"].items():
        # the bottleneck's free channels feed nothing: zeroing one changes no logit
        assert entry["largest_free_drop"] == 0.0, name
        assert 0.0 <= entry["mask_pxap"] <= 1.0 and 0.0 <= entry["mask_iou"] <= 1.0
        assert entry["holds"] == (not any(f.startswith(f"{name}:") for f in check["failures"]))
    lenient = check_planted_truth(planted, held_out, min_auc=0.0, min_pxap=0.0, min_ablation_ratio=0.0)
    assert lenient["passed"]
    strict = check_planted_truth(planted, held_out, min_auc=1.01)
    assert not strict["passed"] and all("roc_auc" in f for f in strict["failures"][:1])


def test_mask_scenes_put_each_object_in_its_concepts_channel():
    from captum_hint.core.boxes import masks_to_boxes
    from captum_hint.datasets import constructed_planted_model, mask_scenes

    samples = mask_scenes(6, size=12, side=4, seed=2)
    for i, s in enumerate(samples):
        mask = s["masks"][0]
        assert s["label"] == i % 2 and int(mask.sum()) == 16 and torch.equal(s["concept_masks"][i % 2], mask)
        assert torch.equal(s["image"][i % 2] > 0, mask) and not s["image"][1 - i % 2].any()
        assert torch.equal(s["boxes"], masks_to_boxes(s["masks"]))
    planted = constructed_planted_model((0, 2))
    logits = planted.model(torch.stack([s["image"] for s in samples]))
    assert (logits.argmax(1) == torch.arange(6) % 2).all()  # the answer is known, and the model says it
    with pytest.raises(ValueError, match="side: expected"):
        mask_scenes(2, size=4, side=4)
    with pytest.raises(ValueError, match="planted: expected two different channels"):
        constructed_planted_model((1, 1))


def test_a_planted_multimodal_channel_is_trained_and_checked(fresh_cache):
    settings = dict(seed=0, n_scenes=32, epochs=1, batch_size=16, width=8)
    planted = train_planted_model("bottleneck", multimodal=["mammal", "fruit"], **settings)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0)).tolist()
    # the class channels are those drawn without it; the multimodal one is the next of the same draw
    assert planted.planted_ == order[:4] and planted.multimodal_ == {order[4]: ["mammal", "fruit"]}
    assert planted.model.planted.tolist() == order[:5]  # the bottleneck's head reads it too
    assert planted.config["multimodal"] == ["mammal", "fruit"]  # part of the cache key
    loaded = train_planted_model("bottleneck", multimodal=["mammal", "fruit"], **settings)
    assert loaded.multimodal_ == planted.multimodal_ and loaded.history_ == planted.history_
    held_out = PlantedScenes(48, seed=99)
    check = check_planted_truth(planted, held_out)
    (entry,) = check["multimodal"].values()
    assert entry["concepts"] == ["mammal", "fruit"] and 0.0 <= entry["mask_pxap"] <= 1.0
    assert entry["holds"] == (not any(f.startswith("multimodal channel") for f in check["failures"]))
    assert not check_planted_truth(planted, held_out, min_pxap=1.01)["multimodal"][order[4]]["holds"]
    # it feeds the head: it is not a free channel, whose drops are all 0 in the bottleneck
    assert all(e["largest_free_drop"] == 0.0 for e in check["classes"].values())
    with pytest.raises(ValueError, match="multimodal: expected two different class names"):
        train_planted_model("bottleneck", multimodal=["mammal", "mammal"], **settings)
    with pytest.raises(ValueError, match="width: a multimodal channel needs at least 5 channels"):
        train_planted_model("bottleneck", seed=0, width=4, multimodal=["mammal", "fruit"])

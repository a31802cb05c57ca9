"""Localization metrics by hand, box maths against torchvision, and the baselines."""

import numpy as np
import pytest
import torch
from captum.attr import LayerConductance, LayerGradCam

from captum_hint.concepts import ConceptScore
from captum_hint.attr.activation_propagation import layer_output
from captum_hint.evaluation import (boxes_to_masks, concept_ground_truth, conductance_ranking, energy_pointing_game,
                                      evaluate_localization, gradcam_channel_ranking, gradcam_maps, gradcam_pass,
                                      localization_hits, tcav_channel_ranking,
                                      localization_record, localization_table, map_to_boxes, mask_area, mask_coverage,
                                      mask_iou, normalize_maps, pointing_game)
from captum_hint.evaluation.metrics import _rounds_like_any_order


def one_map(values):
    return torch.tensor(values, dtype=torch.float32)[None, None]


def test_map_to_box_takes_the_largest_component():
    m = torch.zeros(1, 1, 6, 8)
    m[0, 0, 0:2, 0:2] = 1.0  # 4 pixels
    m[0, 0, 3:6, 4:8] = 0.9  # 12 pixels, the largest
    torch.testing.assert_close(map_to_boxes(m), torch.tensor([[4.0, 3.0, 7.0, 5.0]]))
    flat = torch.ones(1, 1, 4, 5)  # constant: nothing above threshold after scaling -> whole image
    torch.testing.assert_close(map_to_boxes(flat), torch.tensor([[0.0, 0.0, 4.0, 3.0]]))


def test_localization_hits():
    predicted = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    gt = [torch.tensor([[0.0, 0.0, 10.0, 5.0]]), torch.tensor([[0.0, 0.0, 10.0, 4.0], [20.0, 20.0, 30.0, 30.0]])]
    assert localization_hits(predicted, gt).tolist() == [True, False]  # IoU 0.5 and 0.4


def test_mask_metrics_by_hand():
    maps = one_map([[0.0, 1.0, 1.0], [0.0, 0.2, 1.0], [0.0, 0.0, 0.0]])
    gt = torch.tensor([[[False, True, False], [False, True, True], [False, False, False]]])
    # mask = {(0,1), (0,2), (1,2)}; GT = {(0,1), (1,1), (1,2)}; overlap 2
    assert mask_coverage(maps, gt).item() == pytest.approx(2 / 3)
    assert mask_iou(maps, gt).item() == pytest.approx(2 / 4)
    assert mask_area(maps).item() == pytest.approx(3 / 9)
    assert pointing_game(maps, gt, tolerance=0).tolist() == [True]  # argmax (0, 1) is in GT
    assert pointing_game(one_map([[0, 0, 0], [0, 0, 0], [1, 0, 0]]), gt, tolerance=0).tolist() == [False]
    # (2, 0) is sqrt(2) from (1, 1): a hit with a tolerance of 1.5 px, not of 1 px
    assert pointing_game(one_map([[0, 0, 0], [0, 0, 0], [1, 0, 0]]), gt, tolerance=1.5).tolist() == [True]
    assert pointing_game(one_map([[0, 0, 0], [0, 0, 0], [1, 0, 0]]), gt, tolerance=1).tolist() == [False]


def test_energy_pointing_game_by_hand():
    maps = one_map([[4.0, 3.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])  # scaled: 1, .75, .5, .25 (sum 2.5)
    box = [torch.tensor([[0.0, 0.0, 1.0, 1.0]])]  # covers (0,0), (0,1), (1,0), (1,1)
    assert energy_pointing_game(maps, box, energy=0.3).tolist() == [True]  # keeps 1 -> 40 %
    assert energy_pointing_game(maps, box, energy=0.9).tolist() == [True]  # keeps 1, .75, .5 = 90 %
    assert energy_pointing_game(maps, box, energy=0.95).tolist() == [False]  # needs (2,2), outside
    with pytest.raises(ValueError, match=r"energy: expected a value in \(0.0, 1.0\], got 0"):
        energy_pointing_game(maps, box, energy=0)


def test_normalize_maps():
    maps = torch.stack([one_map([[1.0, 3.0]])[0], one_map([[2.0, 2.0]])[0]])
    assert normalize_maps(maps).tolist() == [[[[0.0, 1.0]]], [[[0.0, 0.0]]]]


def test_gradcam_matches_captum(small_net, images):
    leaves = [1, 4]
    got = gradcam_maps(small_net, "features.2", images, leaves, size=(16, 16))
    reference = LayerGradCam(ConceptScore(small_net, [leaves]), small_net.features[2]).attribute(
        images, target=0, relu_attributions=True)
    assert got.shape == (3, 1, 16, 16)
    torch.testing.assert_close(gradcam_maps(small_net, "features.2", images, leaves), reference)


def test_gradcam_pass_equals_captum_for_every_concept_and_captures_a_layer(small_net, images):
    concepts = [[1, 4], [0], [2, 3, 5]]
    maps, logits, captured = gradcam_pass(small_net, "features.2", images, concepts, capture="features.0")
    assert maps.shape == (3, 3, 8, 8)
    for k, leaves in enumerate(concepts):
        reference = LayerGradCam(ConceptScore(small_net, [leaves]), small_net.features[2]).attribute(
            images, target=0, relu_attributions=True)
        torch.testing.assert_close(maps[:, k : k + 1], reference)
    torch.testing.assert_close(logits, small_net(images))
    torch.testing.assert_close(captured, small_net.features[0](images))


def test_pointing_game_equals_the_disc_around_the_peak_on_random_maps():
    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(20, 1, 30, 40, generator=generator)
    masks = torch.rand(20, 30, 40, generator=generator) > 0.985
    ys, xs = torch.arange(30).view(1, -1, 1), torch.arange(40).view(1, 1, -1)
    peak = maps.flatten(1).argmax(1)
    distance2 = (ys - (peak // 40).view(-1, 1, 1)) ** 2 + (xs - (peak % 40).view(-1, 1, 1)) ** 2
    for tolerance in (0.0, 1.5, 4.0, 15.0, 1e5):  # a huge tolerance reaches the whole image, no further
        expected = ((distance2 <= tolerance**2) & masks).flatten(1).any(1)
        assert torch.equal(pointing_game(maps, masks, tolerance), expected)


def kept_inside(maps, boxes, energy):
    """The energy pointing game by its definition: sort each map (ties in raster order), keep the prefix."""
    inside = boxes_to_masks(boxes, *maps.shape[-2:]).flatten(1)
    weights = normalize_maps(maps).flatten(1)
    expected = []
    for row in range(len(maps)):
        order = torch.sort(-weights[row], stable=True).indices  # descending, ties in raster order
        cumulative = weights[row][order].cumsum(0)
        n_keep = int((cumulative < energy * cumulative[-1]).sum()) + 1
        expected.append(bool(inside[row][order[:n_keep]].all()))
    return expected


def test_energy_pointing_game_equals_keeping_the_sorted_pixels_ties_in_raster_order():
    generator = torch.Generator().manual_seed(4)
    plateaus = (torch.rand(30, 1, 4, 4, generator=generator) * 3).floor().repeat_interleave(4, 2).repeat_interleave(4, 3)
    maps = torch.cat([plateaus, torch.rand(10, 1, 16, 16, generator=generator), torch.zeros(1, 1, 16, 16)])
    boxes = [torch.tensor([[float(i % 5), float(i % 3), 9.0 + i % 4, 12.0]]) for i in range(len(maps))]
    for energy in (0.1, 0.3, 0.8):  # at 0.8 the kept pixels are not all in the quarter sorted first
        assert energy_pointing_game(maps, boxes, energy).tolist() == kept_inside(maps, boxes, energy)
    assert energy_pointing_game(maps[-1:], boxes[-1:]).tolist() == [False]  # a constant map keeps pixel (0, 0)


def test_energy_pointing_game_sorts_a_map_whole_when_its_total_may_round_either_way():
    # 1 + 2^-24 lies halfway between two float32 numbers: summed in another order it may round to either
    totals = np.array([1.0 + 2.0**-24, 1.0, 0.0, 1.0 + 2.0**-23 + 2.0**-40])
    assert _rounds_like_any_order(totals, 3).tolist() == [False, True, True, True]
    assert not _rounds_like_any_order(np.array([1.0 + 2.0**-24 + 2.0**-40]), 10**6)  # within the bound of many terms
    maps = torch.zeros(6, 1, 8, 8)  # maps whose values sum to 1 + 2^-24 exactly
    for i in range(6):
        maps[i, 0, 0, i] = 1.0
        maps[i, 0, 7, i] = maps[i, 0, 6, 7 - i] = 2.0**-25
    boxes = [torch.tensor([[0.0, 0.0, float(i), 3.0]]) for i in range(len(maps))]
    weights = normalize_maps(maps).flatten(1)
    assert not _rounds_like_any_order(weights.double().sum(1).numpy(), 64).any()
    for energy in (0.3, 0.9999999, 1.0):
        assert energy_pointing_game(maps, boxes, energy).tolist() == kept_inside(maps, boxes, energy)


def test_conductance_ranking_matches_captum(small_net, images):
    got = conductance_ranking(small_net, "features.2", images, [2], n_steps=5, batch_size=2)
    reference = LayerConductance(ConceptScore(small_net, [[2]]), small_net.features[2]).attribute(
        images, target=0, n_steps=5).sum(dim=(2, 3)).mean(0)
    torch.testing.assert_close(got, reference.detach(), rtol=1e-4, atol=1e-6)


def test_gradcam_channel_weights_rebuild_captums_gradcam(small_net, images):
    layer = small_net.features[2]
    per_image = torch.stack([gradcam_channel_ranking(small_net, "features.2", images[i : i + 1], [2])
                             for i in range(len(images))])
    with torch.no_grad():
        activations = layer_output(small_net, layer, images)
    maps = LayerGradCam(ConceptScore(small_net, [[2]]), layer).attribute(images, target=0, relu_attributions=False)
    # Grad-CAM's map is the weighted sum of the channels with these weights
    torch.testing.assert_close((per_image[:, :, None, None] * activations).sum(1, keepdim=True), maps.detach(),
                               rtol=1e-4, atol=1e-6)
    batched = gradcam_channel_ranking(small_net, "features.2", images, [2], batch_size=2)
    torch.testing.assert_close(batched, per_image.mean(0), rtol=1e-5, atol=1e-7)


def test_concept_ground_truth():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = masks[1, 3, 3] = True
    samples = [{"labels": torch.tensor([5, 9]), "masks": masks, "boxes": torch.tensor([[0.0, 0, 0, 0], [3.0, 3, 3, 3]])},
               {"labels": torch.tensor([7]), "masks": masks[:1], "boxes": torch.zeros(1, 4)}]
    keep, union, boxes = concept_ground_truth(samples, [9, 10])
    assert keep == [0] and union[0].sum() == 1 and union[0][3, 3] and boxes[0].tolist() == [[3.0, 3, 3, 3]]


def test_evaluate_localization_rows(small_net, images):
    from torch.utils.data import DataLoader, TensorDataset

    from captum_hint import HINT, ConceptHierarchy

    hierarchy = ConceptHierarchy.from_paths(["a/c0", "a/c1", "a/c2", "b/c3", "b/c4", "b/c5"])
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(24, 3, 8, 8, generator=generator)
    hint = HINT(small_net, "features.2", hierarchy, ["a", "b"], saliency="gradient", progress=False,
                shapley_kwargs={"n_permutations": 4}).fit(DataLoader(TensorDataset(data, torch.arange(24) % 6), batch_size=8))
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    samples = [{"image": data[i], "labels": torch.tensor([i % 6]), "masks": masks, "boxes": torch.tensor([[2.0, 2, 5, 5]])}
               for i in range(6)]
    rows = evaluate_localization(hint, samples, ["a", "b"], (0.2, 0.6), {"shapley": "shapley"}, gradcam_layer="features.2")
    assert [(r["method"], r["concept"]) for r in rows] == [
        ("HINT (shapley)", "a"), ("HINT (shapley)", "a"), ("Grad-CAM", "a"), ("centre Gaussian", "a"), ("full image", "a"),
        ("HINT (shapley)", "b"), ("HINT (shapley)", "b"), ("Grad-CAM", "b"), ("centre Gaussian", "b"), ("full image", "b")]
    assert all(r["images"] == 3 for r in rows)
    # the maps of a row are exactly what localize / gradcam give for those images
    images = torch.stack([samples[i]["image"] for i in (0, 1, 2)])
    expected = localization_record(hint.localize(images, "a", 0.2).detach(), masks.expand(3, 8, 8),
                                   [samples[i]["boxes"] for i in range(3)])
    assert torch.equal(rows[0]["record"]["box_hits"], expected["box_hits"])
    assert torch.equal(rows[0]["record"]["pointing_15px"], expected["pointing_15px"])
    table = localization_table(rows, rounds=200)
    assert [(r["method"], r["images"]) for r in table][:2] == [("HINT (shapley)", 6), ("HINT (shapley)", 6)]
    for row in table:
        for key in ["maxboxacc", "maxboxacc_v2", "pxap", "pointing_15px", "hint_pointing", "hint_iou", "loc_acc"]:
            assert row[f"{key}_low"] - 1e-9 <= row[key] <= row[f"{key}_high"] + 1e-9
            assert 0 <= row[key] <= 1
        assert row["loc_acc_top1"] <= row["loc_acc"]
    full = next(r for r in table if r["method"] == "full image")
    # a constant map: the box is the whole 8 x 8 image, IoU with the 4 x 4 object = 16/64 < 0.3 at every threshold
    assert full["maxboxacc_v2"] == 0 and full["pxap"] == pytest.approx(16 / 64)
    # another explainer's maps, at half the images' resolution, are upsampled and scored alike
    seen = []

    def object_at_half_size(images, concept):
        seen.append((len(images), concept))
        half = torch.zeros(len(images), 1, 4, 4)
        half[:, :, 1:3, 1:3] = 1.0
        return half

    rows = evaluate_localization(hint, samples, ["a", "b"], (0.2,), {"shapley": "shapley"}, baselines=False,
                                 map_methods={"object": object_at_half_size})
    assert seen == [(3, "a"), (3, "b")]
    (exact,) = [r for r in localization_table(rows, rounds=200) if r["method"] == "object"]
    assert exact["pxap"] == pytest.approx(1.0) and exact["maxboxacc_v2"] == 1.0


def test_baselines_leave_a_train_mode_model_as_it_was(small_net, images):
    """Review defect 5, for the baselines: Captum on a train-mode model would update BatchNorm."""
    net = small_net
    net.features.insert(3, torch.nn.BatchNorm2d(5))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.warns(UserWarning, match="gradcam_maps: the model is in train mode"):
        gradcam_maps(net, "features.4", images, [1, 4])
    with pytest.warns(UserWarning, match="conductance_ranking: the model is in train mode"):
        conductance_ranking(net, "features.4", images, [1, 4], n_steps=2)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(m.training for m in net.modules())


def test_bootstrap_mean_by_hand():
    from captum_hint.evaluation import bootstrap_mean

    mean, low, high = bootstrap_mean([1.0, 1.0, 1.0])
    assert (mean, low, high) == (1.0, 1.0, 1.0)  # no spread, no interval
    mean, low, high = bootstrap_mean([0.0, 1.0] * 50 + [float("nan")], seed=3)
    assert mean == 0.5 and 0.38 < low < 0.5 < high < 0.62  # the binomial CI, about +-0.1
    assert bootstrap_mean([0.0, 1.0] * 50, seed=3) == (mean, low, high)  # NaN dropped, seeded
    with pytest.raises(ValueError, match="values: no finite value"):
        bootstrap_mean([float("nan")])


def test_tcav_channel_ranking_is_seeded_and_leaves_the_global_generators_alone(small_net):
    import random

    import numpy as np

    generator = torch.Generator().manual_seed(5)
    concept, other = torch.randn(12, 3, 8, 8, generator=generator), torch.randn(12, 3, 8, 8, generator=generator)
    concept[:, 0] += 3.0  # a bright first input channel: what the CAV must pick up at the layer
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state, python_state = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    first = tcav_channel_ranking(small_net, "features.2", concept, other, seed=1)
    assert torch.equal(torch.get_rng_state(), torch_state) and (np.random.get_state()[1] == numpy_state).all()
    assert random.getstate() == python_state
    torch.testing.assert_close(tcav_channel_ranking(small_net, small_net.features[2], concept, other, seed=1), first)
    assert first.shape == (5,) and torch.isfinite(first).all()
    assert not torch.equal(tcav_channel_ranking(small_net, "features.2", concept, other, seed=2), first)
    with pytest.raises(ValueError, match="other_images: expected N x C x H x W with N >= 2"):
        tcav_channel_ranking(small_net, "features.2", concept, other[:1])

"""The standard WSOL metrics on hand-made maps with known answers, against scikit-learn where it has them."""

import pytest
import torch
from sklearn.metrics import average_precision_score

from captum_hint.evaluation import (bootstrap_statistic, bootstrap_weights, box_hits_over_thresholds, boxes_to_masks,
                                      center_gaussian_maps, compare_records, full_image_maps, localization_record,
                                      mass_share, max_box_accuracy, netdissect_ranking, paired_bootstrap_mean,
                                      pixel_average_precision, pixel_histograms, pointing_game)


def test_maxboxacc_sweeps_thresholds_and_keeps_the_best():
    # one 10 x 10 map: a plateau 1.0 on the object (rows 2-5, cols 2-5) and 0.5 on a strip next to it
    maps = torch.zeros(2, 1, 10, 10)
    maps[:, 0, 2:6, 2:6] = 1.0
    maps[:, 0, 2:6, 6:10] = 0.5
    boxes = [torch.tensor([[2.0, 2.0, 5.0, 5.0]]), torch.tensor([[2.0, 2.0, 9.0, 5.0]])]
    hits = box_hits_over_thresholds(maps, boxes, thresholds=(0.25, 0.75), ious=(0.3, 0.5, 0.7))
    # tau 0.25: box cols 2-9 (32 px): IoU 16/32 = 0.5 with image 0's box, 1 with image 1's
    # tau 0.75: box cols 2-5 (16 px): IoU 1 with image 0's box, 0.5 with image 1's
    assert hits[0].tolist() == [[True, True, False], [True, True, True]]
    assert hits[1].tolist() == [[True, True, True], [True, True, False]]
    accuracy = max_box_accuracy(hits)  # best single threshold over both images
    assert accuracy.tolist() == [1.0, 1.0, 0.5]
    assert accuracy.mean().item() == pytest.approx(2.5 / 3)  # MaxBoxAccV2
    # weights: image 0 alone (twice) -> tau 0.75 is perfect at every level
    assert max_box_accuracy(hits, torch.tensor([[2.0, 0.0]])).tolist() == [[1.0, 1.0, 1.0]]


def test_maxboxacc_boxes_the_largest_component_per_image():
    maps = torch.zeros(1, 1, 12, 12)
    maps[0, 0, 0:2, 0:2] = 1.0  # small blob, the maximum
    maps[0, 0, 6:12, 6:12] = 0.9  # large blob: the box at any threshold <= 0.9
    hits = box_hits_over_thresholds(maps, [torch.tensor([[6.0, 6.0, 11.0, 11.0]])], thresholds=(0.5, 0.95), ious=(0.5,))
    assert hits[0, :, 0].tolist() == [True, False]


def test_pxap_equals_scikit_learn_on_scores_quantized_to_the_bins():
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 1, 6, 7, generator=generator)
    masks = torch.rand(3, 6, 7, generator=generator) < maps[:, 0] * 0.8
    ap = pixel_average_precision(pixel_histograms(maps, masks, bins=20))
    low, high = maps.amin((1, 2, 3), keepdim=True), maps.amax((1, 2, 3), keepdim=True)
    quantized = ((maps - low) / (high - low) * 20).long().clamp(max=19)  # the bin of each pixel
    reference = average_precision_score(masks.flatten().numpy(), quantized.flatten().numpy())
    assert ap.item() == pytest.approx(reference, abs=1e-6)


def test_pxap_approaches_scikit_learn_with_fine_bins():
    generator = torch.Generator().manual_seed(1)
    maps = torch.rand(4, 1, 9, 9, generator=generator)
    masks = torch.rand(4, 9, 9, generator=generator) < maps[:, 0]
    scaled = (maps - maps.amin((1, 2, 3), keepdim=True)) / (maps.amax((1, 2, 3), keepdim=True) - maps.amin((1, 2, 3), keepdim=True))
    reference = average_precision_score(masks.flatten().numpy(), scaled.flatten().numpy())
    assert pixel_average_precision(pixel_histograms(maps, masks, bins=100000)).item() == pytest.approx(reference, abs=1e-4)


def test_pointing_game_tolerance_of_15_pixels():
    masks = torch.zeros(3, 40, 40, dtype=torch.bool)
    masks[:, 20:30, 20:30] = True
    maps = torch.zeros(3, 1, 40, 40)
    maps[0, 0, 5, 20] = 1  # 15 px above the object: a hit
    maps[1, 0, 4, 20] = 1  # 16 px: a miss
    maps[2, 0, 9, 9] = 1  # (11, 11) from the corner: 15.6 px, a miss
    assert pointing_game(maps, masks).tolist() == [True, False, False]
    assert pointing_game(maps, masks, tolerance=16).tolist() == [True, True, True]
    assert pointing_game(maps, masks, tolerance=0).tolist() == [False, False, False]


def test_boxes_to_masks_and_mass_share():
    masks = boxes_to_masks([torch.tensor([[0.0, 0.0, 1.0, 0.0]]), torch.zeros(0, 4)], 2, 3)
    assert masks.tolist() == [[[True, True, False], [False, False, False]], [[False] * 3, [False] * 3]]
    maps = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 0.0, 2.0]]]])  # scaled: 0, .5, .5, 0, 0, 1 (sum 2)
    other = torch.tensor([[[False, False, True], [False, False, True]]])
    assert mass_share(maps, other).item() == pytest.approx(1.5 / 2)
    uniform = mass_share(torch.tensor([[[[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]]), other)
    assert uniform.item() == pytest.approx(2 / 5)


def test_trivial_maps():
    centre = center_gaussian_maps(2, (5, 5), sigma=0.25)
    assert centre.shape == (2, 1, 5, 5) and centre[0, 0].argmax().item() == 12 and torch.equal(centre[0], centre[1])
    torch.testing.assert_close(centre[0, 0], centre[0, 0].T)
    assert full_image_maps(1, (3, 4)).unique().tolist() == [1.0]
    with pytest.raises(ValueError, match="sigma: expected a value in"):
        center_gaussian_maps(1, (5, 5), sigma=0)


def test_bootstrap_statistic_and_paired_difference():
    weights = bootstrap_weights(5, seed=0, rounds=7)
    assert weights.shape == (7, 5) and (weights.sum(1) == 5).all()
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    value, low, high = bootstrap_statistic(lambda w: w.double() @ values / 5, 5, rounds=500)
    assert value == 3.0 and 1.5 < low < 3 < high < 4.5
    # a constant shift between paired methods has no spread at all
    diff = paired_bootstrap_mean(values.numpy() + 0.25, values.numpy())
    assert diff == pytest.approx((0.25, 0.25, 0.25))
    with pytest.raises(ValueError, match="second: expected 5 values like first"):
        paired_bootstrap_mean([1.0] * 5, [1.0] * 4)


def test_compare_records_is_paired():
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(20, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    boxes = [torch.tensor([[4.0, 4.0, 11.0, 11.0]])] * 20
    good = masks[:, None].float() + 0.1 * torch.rand(20, 1, 16, 16, generator=generator)
    noise = torch.rand(20, 1, 16, 16, generator=generator)
    first = localization_record(good, masks, boxes, thresholds=(0.3, 0.6))
    second = localization_record(noise, masks, boxes, thresholds=(0.3, 0.6))
    difference = compare_records(first, second, rounds=300)
    assert difference["maxboxacc"][0] == pytest.approx(
        max_box_accuracy(first["box_hits"])[1].item() - max_box_accuracy(second["box_hits"])[1].item())
    assert difference["pxap"][1] > 0  # the good maps win on every resample
    assert compare_records(first, first, rounds=50)["pxap"] == (0.0, 0.0, 0.0)


def test_netdissect_ranking_by_hand():
    class Identity(torch.nn.Module):  # the "layer" is the input itself: unit k = channel k
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Identity()

        def forward(self, x):
            return self.layer(x).mean((2, 3))

    images = torch.zeros(2, 2, 4, 4)
    images[:, 0, :2, :2] = 1.0  # unit 0 fires on the top-left quarter
    images[:, 1, :, :2] = 1.0  # unit 1 on the left half
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True  # the concept is the top-left quarter
    batches = [(images, masks)]
    # quantile 0.5: each unit's threshold is its median, 0 here, so a mask is where the unit is on
    scores = netdissect_ranking(Identity(), "layer", batches, quantile=0.5, resolution=4)
    # unit 0: mask = top-left (4 px per image) -> IoU 1; unit 1: left half (8 px) -> IoU 4/8
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.5]))
    # several concepts at once (N x K x H x W masks): a D x K table, one column per concept
    left = torch.zeros(2, 4, 4, dtype=torch.bool)
    left[:, :, :2] = True  # a second concept: the left half
    both = netdissect_ranking(Identity(), "layer", [(images, torch.stack([masks, left], 1))], quantile=0.5, resolution=4)
    # unit 0 on the left half: 4/8; unit 1: 1
    torch.testing.assert_close(both, torch.tensor([[1.0, 0.5], [0.5, 1.0]]))
    # the first pass's activations serve the second when they fit; without a cache the data runs twice
    counted = Identity()
    calls = []
    counted.layer.register_forward_hook(lambda module, args, output: calls.append(len(output)))
    two_batches = [(images[:1], masks[:1]), (images[1:], masks[1:])]
    torch.testing.assert_close(netdissect_ranking(counted, "layer", two_batches, quantile=0.5, resolution=4), scores)
    assert len(calls) == 2
    torch.testing.assert_close(netdissect_ranking(counted, "layer", two_batches, quantile=0.5, resolution=4,
                                                  cache_bytes=0), scores)
    assert len(calls) == 6

"""Responsible regions on hand-computed cases."""

import numpy as np
import pytest
import torch
from captum.attr import visualization as viz

from captum_hint import RegionBank, aggregate_saliency, normalize_saliency, responsible_regions
from captum_hint.attr import LayerGradient
from captum_hint.app.plotting import to_hwc

# Two channels on a 2 x 2 map; every aggregation is computed by hand below.
SALIENCY = torch.tensor([[[[3.0, 0.0], [0.0, -2.0]], [[-4.0, 0.0], [1.0, 0.0]]]])
BY_HAND = {
    "l2": [[5.0, 0.0], [1.0, 2.0]],
    "l1": [[7.0, 0.0], [1.0, 2.0]],
    "sum": [[-1.0, 0.0], [1.0, -2.0]],
    "max": [[3.0, 0.0], [1.0, 0.0]],
    "abs_max": [[4.0, 0.0], [1.0, 2.0]],
}


@pytest.mark.parametrize("name", list(BY_HAND))
def test_aggregations_by_hand(name):
    got = aggregate_saliency(SALIENCY, name)
    assert got.shape == (1, 1, 2, 2)
    torch.testing.assert_close(got, torch.tensor([[BY_HAND[name]]]))


def test_callable_aggregation_and_its_shape_check():
    got = aggregate_saliency(SALIENCY, lambda s: s.mean(dim=1))
    torch.testing.assert_close(got, SALIENCY.mean(dim=1, keepdim=True))
    with pytest.raises(ValueError, match=r"aggregation: expected the callable to return shape \(1, 1, 2, 2\)"):
        aggregate_saliency(SALIENCY, lambda s: s)


def test_min_max_normalization_and_masks_by_hand():
    regions = responsible_regions(SALIENCY, threshold=0.3, percentile=100)
    torch.testing.assert_close(regions.saliency, torch.tensor([[[[1.0, 0.0], [0.2, 0.4]]]]))
    assert regions.responsible.tolist() == [[[[True, False], [False, True]]]]
    assert regions.background.tolist() == [[[[False, True], [True, False]]]]
    # signed aggregation: min -2, max 1 -> (v + 2) / 3
    signed = responsible_regions(SALIENCY, threshold=0.5, aggregation="sum", percentile=100)
    torch.testing.assert_close(signed.saliency, torch.tensor([[[[1 / 3, 2 / 3], [1.0, 0.0]]]]))
    assert signed.responsible.tolist() == [[[[False, True], [True, False]]]]


def test_percentile_normalization_by_hand():
    # l2 values sorted 0, 1, 2, 5; the 99th percentile is 2 + 0.97 * (5 - 2) = 4.91
    got = normalize_saliency(aggregate_saliency(SALIENCY), percentile=99)
    torch.testing.assert_close(got, torch.tensor([[[[1.0, 0.0], [1 / 4.91, 2 / 4.91]]]]))


def test_normalization_is_per_image():
    pair = torch.cat([SALIENCY, 10 * SALIENCY + 3])
    both = normalize_saliency(aggregate_saliency(pair, "sum"), percentile=100)
    torch.testing.assert_close(both[0], both[1])


def test_upsampled_masks():
    regions = responsible_regions(SALIENCY, threshold=0.3, percentile=100, size=(4, 4), interpolate_mode="nearest")
    expected = torch.tensor([[True, False], [False, True]]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert regions.responsible.shape == (1, 1, 4, 4)
    assert torch.equal(regions.responsible[0, 0], expected)
    smooth = responsible_regions(SALIENCY, size=(16, 16))
    assert smooth.saliency.shape == (1, 1, 16, 16)
    assert 0 <= smooth.saliency.min() and smooth.saliency.max() <= 1


def test_constant_map_has_no_responsible_region():
    regions = responsible_regions(torch.ones(2, 3, 4, 4))
    assert not regions.responsible.any() and regions.background.all()
    assert torch.equal(regions.saliency, torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("t", [0, 1, -0.1, 1.5])
def test_threshold_outside_open_unit_interval(t):
    with pytest.raises(ValueError, match=r"threshold: expected a value in \(0.0, 1.0\)"):
        responsible_regions(SALIENCY, threshold=t)


def test_unknown_aggregation():
    with pytest.raises(ValueError, match="aggregation: unknown aggregation 'l3'; expected one of l2, l1"):
        responsible_regions(SALIENCY, aggregation="l3")


def test_nan_saliency_is_rejected():
    bad = SALIENCY.repeat(3, 1, 1, 1)
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"saliency: contains NaN \(rows \[1\]\)"):
        responsible_regions(bad)


def test_wrong_saliency_rank():
    with pytest.raises(ValueError, match=r"saliency: expected a layer saliency tensor shaped \(N, C, H, W\)"):
        responsible_regions(torch.ones(2, 4, 4))


def test_regions_feed_captum_visualization(small_net, images):
    saliency = LayerGradient(small_net, "features.2").attribute(images, target=1)
    regions = responsible_regions(saliency, size=images.shape[-2:])
    heat = to_hwc(regions.saliency, index=2)
    assert heat.shape == (8, 8, 1)
    np.testing.assert_array_equal(heat[..., 0], regions.saliency[2, 0].numpy())
    photo = to_hwc((images - images.min()) / (images.max() - images.min()), index=2)
    assert photo.shape == (8, 8, 3)
    figure, axis = viz.visualize_image_attr(
        heat, photo, method="blended_heat_map", sign="positive", outlier_perc=0, use_pyplot=False
    )
    shown = np.asarray(axis.images[-1].get_array())
    # Captum rescales by the map's maximum; the shown map is ours up to that scale.
    np.testing.assert_allclose(shown, heat[..., 0] / heat.max(), atol=1e-6)
    figure.canvas.draw()


# ---------------------------------------------------------------- review defects
def test_inf_saliency_and_non_finite_settings_are_rejected():
    """Defects 3 and 6: Inf saliency and NaN thresholds/percentiles passed the checks."""
    bad = SALIENCY.repeat(2, 1, 1, 1)
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"saliency: contains Inf \(rows \[1\]\)"):
        responsible_regions(bad)
    with pytest.raises(ValueError, match="threshold: expected a finite number, got nan"):
        responsible_regions(SALIENCY, threshold=float("nan"))
    with pytest.raises(ValueError, match="percentile: expected a finite number, got nan"):
        responsible_regions(SALIENCY, percentile=float("nan"))


def test_bank_widens_to_float32_instead_of_storing_inf():
    """Defect 3: activations above 65504 became Inf in the float16 bank."""
    bank = RegionBank(1, max_per_concept=8, max_background=8, dtype=torch.float16)
    small = torch.tensor([[1.0, 2.0]])
    bank.add(small, torch.tensor([0]), torch.tensor([[True]]), torch.tensor([0]))
    huge = torch.tensor([[7e4, -1e6]])
    with pytest.warns(UserWarning, match="activation of 1e[+]06 exceeds torch.float16's range"):
        bank.add(huge, torch.tensor([0]), torch.tensor([[True]]), torch.tensor([1]))
    vectors = bank.rows()[0]
    assert vectors.dtype == torch.float32 and torch.equal(vectors, torch.cat([small, huge]))
    with pytest.raises(ValueError, match=r"vectors: contains NaN \(rows \[0\]\)"):
        bank.add(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), torch.tensor([[True]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"under: expected 1 x 1 booleans .* got shape \(1,\)"):
        bank.add(small, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))


def _filled_bank(capacity, ids, seed):
    bank = RegionBank(1, max_per_concept=capacity, max_background=capacity, seed=seed)
    ids = torch.as_tensor(ids)
    bank.add(ids[:, None].float(), torch.zeros(len(ids), dtype=torch.long), torch.ones(len(ids), 1, dtype=torch.bool),
             ids)
    return bank


def test_merge_of_unfilled_banks_keeps_every_row_in_image_order():
    merged = RegionBank.merge([_filled_bank(10, [1, 3, 5], 0), _filled_bank(10, [0, 2, 4, 6], 1)])
    vectors, buckets, under, images = merged.rows()
    assert under.all() and under.shape == (7, 1) and images.tolist() == list(range(7)) and vectors[:, 0].tolist() == list(range(7))
    assert merged.seen == [7, 0]


def test_merge_is_a_uniform_sample_of_the_union():
    # bank A saw 30 items, bank B 10; each keeps 5; the merged 5 must hold each of the 40 items w.p. 1/8
    counts = torch.zeros(40)
    for trial in range(400):
        a = _filled_bank(5, range(30), 2 * trial)
        b = _filled_bank(5, range(30, 40), 2 * trial + 1)
        _, _, _, images = RegionBank.merge([a, b], seed=trial).rows()
        assert len(images) == 5 and len(set(images.tolist())) == 5
        counts[images] += 1
    share_a, share_b = counts[:30].sum() / 2000, counts[30:].sum() / 2000
    assert abs(share_a - 0.75) < 0.03 and abs(share_b - 0.25) < 0.03  # binomial sd ~ 0.01
    assert counts.min() > 25 and counts.max() < 75  # each ~ 50

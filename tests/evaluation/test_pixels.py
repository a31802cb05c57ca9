"""pixel_figures against the metric functions it fuses, one per figure."""

import pytest
import torch
import torch.nn.functional as F

from captum_hint.evaluation import (mask_area, mask_coverage, mask_iou, mass_share, normalize_maps,
                                    pixel_histograms)
from captum_hint.evaluation.pixels import pixel_figures


def maps_with_edge_cases(generator):
    smooth = F.interpolate(torch.rand(6, 1, 7, 9, generator=generator), size=(28, 36), mode="bilinear")
    steps = (torch.rand(4, 1, 28, 36, generator=generator) * 4).floor() / 8  # plateaus and values at 0.5 exactly
    constant = torch.full((1, 1, 28, 36), 3.0)  # scaled to all zeros
    tiny = 1.0 + 1e-13 * torch.rand(1, 1, 28, 36, generator=generator, dtype=torch.float64)  # a span under 1e-12
    return torch.cat([smooth, steps, constant, tiny.float(), -5.0 * smooth[:2]])


def test_pixel_figures_equal_the_metric_functions():
    generator = torch.Generator().manual_seed(0)
    maps = maps_with_edge_cases(generator)
    masks = torch.rand(len(maps), 28, 36, generator=generator) > 0.6
    masks[0] = False  # an image without object pixels
    others = torch.rand(len(maps), 28, 36, generator=generator) > 0.8
    for threshold in (0.5, 0.25):
        figures = pixel_figures(maps, masks, others, threshold=threshold, bins=10)
        assert torch.equal(figures.scaled, normalize_maps(maps))
        assert torch.equal(figures.histograms, pixel_histograms(maps, masks, bins=10))
        assert torch.equal(figures.coverage, mask_coverage(maps, masks, threshold).float())
        assert torch.equal(figures.iou, mask_iou(maps, masks, threshold).float())
        assert torch.equal(figures.area, mask_area(maps, threshold))
        assert torch.equal(figures.peak, maps.flatten(1).argmax(1))  # plateaus: the first maximum
        # sums in float64 here, float32 there
        torch.testing.assert_close(figures.other_share, mass_share(maps, others), rtol=1e-6, atol=1e-7, equal_nan=True)
    assert figures.other_share[10].isnan()  # the constant map has no mass
    assert pixel_figures(maps, masks, bins=10).other_share is None
    # a float64 map's maximum is its own, not that of its float32 rounding (which ties it with an earlier pixel)
    close = torch.full((1, 1, 28, 36), 1.0, dtype=torch.float64)
    close[0, 0, 5, 7] += 1e-12
    assert pixel_figures(close, masks[:1]).peak.tolist() == [5 * 36 + 7]
    # any thread count gives the same figures
    one, three = pixel_figures(maps, masks, others, workers=1), pixel_figures(maps, masks, others, workers=3)
    for a, b in zip(one, three):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_pixel_figures_name_bad_input():
    maps = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="maps: expected N x 1 x H x W"):
        pixel_figures(maps[:, 0], torch.zeros(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="gt_masks: expected"):
        pixel_figures(maps, torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="other_masks: expected"):
        pixel_figures(maps, torch.zeros(2, 4, 4, dtype=torch.bool), torch.zeros(3, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="maps: contains NaN"):
        pixel_figures(maps.index_fill(0, torch.tensor([1]), float("nan")), torch.zeros(2, 4, 4, dtype=torch.bool))

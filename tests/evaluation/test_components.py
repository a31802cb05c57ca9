"""The one-pass component sweep against labelling every threshold's mask with scipy, and on hand-made maps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from captum_hint.evaluation import box_hits_over_thresholds, map_to_boxes
from captum_hint.evaluation.components import largest_component_boxes_by_level


def labelled_boxes(scaled: np.ndarray, thresholds) -> np.ndarray:
    """The definition, brute force: label ``scaled >= τ`` per image and τ, box the largest component.

    Ties in size go to the component whose first pixel comes later in raster
    order (scipy numbers components in raster order).
    """
    n, height, width = scaled.shape
    boxes = np.zeros((n, len(thresholds), 4), dtype=np.int32)
    for i in range(n):
        for t, threshold in enumerate(thresholds):
            labels, count = ndimage.label(scaled[i] >= threshold, structure=np.ones((3, 3)))
            if count == 0:
                boxes[i, t] = (0, 0, width - 1, height - 1)
                continue
            sizes = np.bincount(labels.ravel())[1:]
            largest = 1 + np.flatnonzero(sizes == sizes.max())[-1]
            ys, xs = np.nonzero(labels == largest)
            boxes[i, t] = (xs.min(), ys.min(), xs.max(), ys.max())
    return boxes


def maps_of(kind: str, n: int, size: int, generator) -> np.ndarray:
    if kind == "noise":  # many small components, merging often
        maps = torch.rand(n, 1, size, size, generator=generator)
    elif kind == "smooth":  # as HINT's and Grad-CAM's upsampled maps
        maps = F.interpolate(torch.rand(n, 1, 5, 5, generator=generator), size=(size, size), mode="bilinear")
    elif kind == "constant":  # one level holds every pixel (boxed without a pass); 0.05 lies on the grid
        maps = torch.tensor([0.0, 0.05, 0.37, 1.0, 0.999, 0.5])[:n].view(-1, 1, 1, 1).expand(n, 1, size, size)
    else:  # "plateaus": few values, so equal-sized components tie
        maps = (torch.rand(n, 1, size // 3, size // 3, generator=generator) * 3).floor().repeat_interleave(3, 2)
        maps = maps.repeat_interleave(3, 3) / 3
    return maps[:, 0].numpy()


@pytest.mark.parametrize("kind", ["noise", "smooth", "plateaus", "constant"])
def test_one_pass_equals_labelling_every_threshold(kind):
    generator = torch.Generator().manual_seed(0)
    scaled = maps_of(kind, 6, 24, generator)
    grid = np.round(np.arange(0, 1, 0.05), 2).astype(np.float32)
    np.testing.assert_array_equal(largest_component_boxes_by_level(scaled, grid), labelled_boxes(scaled, grid))


def test_ties_go_to_the_later_component_and_empty_masks_to_the_whole_image():
    scaled = np.zeros((1, 5, 7), dtype=np.float32)
    scaled[0, 0, 0:2] = 1.0  # two components of 2 pixels: the later one (row 3) wins
    scaled[0, 3, 4:6] = 1.0
    scaled[0, 4, 0] = 0.6  # a single pixel joins nothing
    boxes = largest_component_boxes_by_level(scaled, np.array([0.5, 0.99, 1.0], dtype=np.float32))
    assert boxes[0].tolist() == [[4, 3, 5, 3], [4, 3, 5, 3], [4, 3, 5, 3]]
    above_all = largest_component_boxes_by_level(scaled, np.array([0.0, 0.5], dtype=np.float32) + 2)
    assert above_all[0].tolist() == [[0, 0, 6, 4], [0, 0, 6, 4]]  # nothing reaches 2: whole image


def test_a_pixel_joining_from_above_makes_the_tie_go_the_other_way():
    scaled = np.zeros((1, 5, 7), dtype=np.float32)
    scaled[0, 3, 1] = 1.0  # component A starts below ...
    scaled[0, 2, 1] = 0.6  # ... and a pixel above joins it at 0.5: A's first pixel moves to (2, 1)
    scaled[0, 2, 4:6] = 0.6  # component B, also two pixels, first at (2, 4): later than A's, so B wins
    grid = np.array([0.5, 0.99], dtype=np.float32)
    boxes = largest_component_boxes_by_level(scaled, grid)
    assert boxes[0].tolist() == [[4, 2, 5, 2], [1, 3, 1, 3]]
    np.testing.assert_array_equal(boxes, labelled_boxes(scaled, grid))


def test_diagonal_pixels_are_connected():
    scaled = np.eye(4, dtype=np.float32)[None]
    scaled[0, 0, 3] = 0.5  # a corner pixel on its own below the diagonal's value
    assert largest_component_boxes_by_level(scaled, np.array([0.4, 0.9], dtype=np.float32))[0].tolist() == [
        [0, 0, 3, 3], [0, 0, 3, 3]]


def test_box_hits_take_thresholds_in_any_order_and_compare_them_in_the_maps_precision():
    generator = torch.Generator().manual_seed(2)
    maps = torch.from_numpy(maps_of("smooth", 4, 20, generator))[:, None]
    boxes = [torch.tensor([[2.0, 3.0, 12.0, 15.0]]) for _ in range(4)]
    thresholds = (0.7, 0.07, 0.3, 0.07, 0.0)  # unsorted, a duplicate, and 0.07 is not exact in float32
    hits = box_hits_over_thresholds(maps, boxes, thresholds, ious=(0.3, 0.5))
    for t, threshold in enumerate(thresholds):
        scaled = ((maps - maps.amin((1, 2, 3), keepdim=True))
                  / (maps.amax((1, 2, 3), keepdim=True) - maps.amin((1, 2, 3), keepdim=True)))[:, 0].numpy()
        expected = torch.from_numpy(labelled_boxes(scaled, [threshold])[:, 0]).float()
        single = box_hits_over_thresholds(maps, boxes, (threshold,), ious=(0.3, 0.5))[:, 0]
        assert torch.equal(hits[:, t], single)
        if threshold > 0:
            torch.testing.assert_close(map_to_boxes(maps, threshold), expected)


def test_bad_grids_are_refused():
    scaled = np.zeros((1, 3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="grid"):
        largest_component_boxes_by_level(scaled, np.array([0.5, 0.2], dtype=np.float32))
    with pytest.raises(ValueError, match="scaled"):
        largest_component_boxes_by_level(scaled[0], np.array([0.5], dtype=np.float32))

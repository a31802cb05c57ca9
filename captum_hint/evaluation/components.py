"""The largest connected component of a map at every threshold, from one sorted pass per map.

MaxBoxAcc (``wsolevaluation``) thresholds each map at every τ of a sweep
(100 of them) and boxes the largest connected component. Labelling the mask
anew at every τ costs ``T`` passes over every pixel. But the masks are nested
(lowering τ only adds pixels), so their components only grow and merge: a
union-find that adds the pixels from the highest level down sees every
mask of the sweep in turn, and the largest component (its size and box kept
in the union-find roots) can be read off after each level. One pass per map,
whatever ``T`` is: this is the component tree ("max-tree") of the quantized
map, of which only the largest node per level is kept. Once the largest
component holds over half the pixels and spans the image, no lower level can
change its box, and the pass stops. Two 8-adjacent pixels of a mask are in
one component from the moment the later one entered, so a new pixel joins
at most four neighbours' components (one above or below stands for its row
neighbours and corners); a constant map is boxed without a pass.

The kernel is compiled with numba; its result equals labelling every mask
with ``scipy.ndimage.label`` (8-connectivity) and taking the largest label,
ties going to the component whose first pixel comes later in raster order
(tested).
"""

from __future__ import annotations

from typing import Optional

import numba
import numpy as np

from ..core.threads import map_row_ranges

__all__ = ["largest_component_boxes_by_level"]

# the columns of a component root's row in the union-find: its area, first pixel (raster order) and box
_AREA, _FIRST, _Y1, _Y2, _X1, _X2 = range(6)


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]  # path halving
        p = parent[p]
    return p


@numba.njit(cache=True, nogil=True)
def _level(grid, value, steps_per_unit):
    """The number of thresholds at or below ``value`` (``grid`` increasing), exact for any grid.

    ``steps_per_unit``: ``(len(grid) - 1) / (grid[-1] - grid[0])`` (0 for one threshold), whose guess is
    right for an evenly spaced grid; the guess is corrected either way.
    """
    n = len(grid)
    level = min(max(int((value - grid[0]) * steps_per_unit) + 1, 0), n)
    while level < n and grid[level] <= value:
        level += 1
    while level > 0 and grid[level - 1] > value:
        level -= 1
    return level


@numba.njit(cache=True, nogil=True)
def _whole_image(boxes, levels, height, width):
    for level in range(levels):
        boxes[level, 0] = 0
        boxes[level, 1] = 0
        boxes[level, 2] = width - 1
        boxes[level, 3] = height - 1


@numba.njit(cache=True, nogil=True)
def _map_boxes(scaled, grid, boxes):
    """Fill ``boxes`` (T x 4) for one H x W map."""
    height, width = scaled.shape
    n_levels = len(grid)
    # A border of level 0 (never in a mask) spares the bounds checks of the 8 neighbours.
    stride = width + 2
    size = (height + 2) * stride
    level_of = np.zeros(size, dtype=np.int32)
    parent = np.full(size, -1, dtype=np.int32)
    stats = np.empty((size, 6), dtype=np.int32)  # a root's component: one row, read together
    # each pixel's level, and a counting sort of the pixels by level (raster order within a level)
    starts = np.zeros(n_levels + 2, dtype=np.int64)
    span = grid[n_levels - 1] - grid[0]
    steps_per_unit = (n_levels - 1) / span if span > 0 else 0.0
    for y in range(height):
        for x in range(width):
            level = _level(grid, scaled[y, x], steps_per_unit)
            level_of[(y + 1) * stride + x + 1] = level
            starts[level + 1] += 1
    for level in range(n_levels + 1):
        if starts[level + 1] == height * width:  # a constant map: every mask is empty or the whole image
            _whole_image(boxes, n_levels, height, width)
            return
        starts[level + 1] += starts[level]
    fill = starts.copy()
    order = np.empty((height * width, 2), dtype=np.int32)  # y, x: no integer division per pixel later
    for y in range(height):
        for x in range(width):
            p = (y + 1) * stride + x + 1
            k = fill[level_of[p]]
            order[k, 0] = y
            order[k, 1] = x
            fill[level_of[p]] += 1
    joined = np.empty(4, dtype=np.int32)
    best, best_area, best_first = -1, 0, -1
    for level in range(n_levels, 0, -1):  # pixels of this level enter the mask of threshold index level - 1
        for k in range(starts[level], starts[level + 1]):
            y, x = order[k, 0], order[k, 1]
            p = (y + 1) * stride + x + 1
            # Two 8-adjacent pixels of the mask are in one component already (joined when the later one
            # entered), so a neighbour above or below stands for the row's left and right neighbours and
            # its own corners, and a neighbour left or right for its corners: at most four unions, not eight.
            up, down, left, right = parent[p - stride] >= 0, parent[p + stride] >= 0, parent[p - 1] >= 0, \
                parent[p + 1] >= 0
            n_joined = 0
            if up:
                joined[n_joined] = p - stride
                n_joined += 1
            if down:
                joined[n_joined] = p + stride
                n_joined += 1
            if left and not (up or down):
                joined[n_joined] = p - 1
                n_joined += 1
            if right and not (up or down):
                joined[n_joined] = p + 1
                n_joined += 1
            if not (up or left) and parent[p - stride - 1] >= 0:
                joined[n_joined] = p - stride - 1
                n_joined += 1
            if not (up or right) and parent[p - stride + 1] >= 0:
                joined[n_joined] = p - stride + 1
                n_joined += 1
            if not (down or left) and parent[p + stride - 1] >= 0:
                joined[n_joined] = p + stride - 1
                n_joined += 1
            if not (down or right) and parent[p + stride + 1] >= 0:
                joined[n_joined] = p + stride + 1
                n_joined += 1
            if n_joined == 0:
                root = p
                parent[p] = p
                stats[p, _AREA] = 1
                stats[p, _FIRST] = p
                stats[p, _Y1] = y
                stats[p, _Y2] = y
                stats[p, _X1] = x
                stats[p, _X2] = x
            else:  # the pixel joins its first neighbour's component, then the others' merge into it
                root = _find(parent, joined[0])
                parent[p] = root
                stats[root, _AREA] += 1
                stats[root, _FIRST] = min(stats[root, _FIRST], p)
                stats[root, _Y1] = min(stats[root, _Y1], y)
                stats[root, _Y2] = max(stats[root, _Y2], y)
                stats[root, _X1] = min(stats[root, _X1], x)
                stats[root, _X2] = max(stats[root, _X2], x)
            for j in range(1, n_joined):
                other = _find(parent, joined[j])
                if other == root:
                    continue
                if stats[other, _AREA] > stats[root, _AREA]:  # union by size
                    root, other = other, root
                parent[other] = root
                stats[root, _AREA] += stats[other, _AREA]
                stats[root, _FIRST] = min(stats[root, _FIRST], stats[other, _FIRST])
                stats[root, _Y1] = min(stats[root, _Y1], stats[other, _Y1])
                stats[root, _Y2] = max(stats[root, _Y2], stats[other, _Y2])
                stats[root, _X1] = min(stats[root, _X1], stats[other, _X1])
                stats[root, _X2] = max(stats[root, _X2], stats[other, _X2])
            # A component's (area, first pixel) only grows, so the largest one is tracked as it changes.
            if stats[root, _AREA] > best_area or (stats[root, _AREA] == best_area and stats[root, _FIRST] > best_first):
                best, best_area, best_first = root, stats[root, _AREA], stats[root, _FIRST]
        if best < 0:  # an empty mask: the whole image, as wsolevaluation
            _whole_image(boxes[level - 1 :], 1, height, width)
        else:
            best = _find(parent, best)
            boxes[level - 1, 0] = stats[best, _X1]
            boxes[level - 1, 1] = stats[best, _Y1]
            boxes[level - 1, 2] = stats[best, _X2]
            boxes[level - 1, 3] = stats[best, _Y2]
            # Holding over half the pixels, the component stays the largest (the others are disjoint from
            # it); spanning the whole image, its box can grow no more: every lower level has this box.
            if 2 * stats[best, _AREA] > height * width and stats[best, _X1] == 0 and stats[best, _Y1] == 0 \
                    and stats[best, _X2] == width - 1 and stats[best, _Y2] == height - 1:
                _whole_image(boxes, level - 1, height, width)
                return


@numba.njit(cache=True, nogil=True)
def _boxes_by_level(scaled, grid):
    boxes = np.empty((scaled.shape[0], len(grid), 4), dtype=np.int32)
    for n in range(scaled.shape[0]):
        _map_boxes(scaled[n], grid, boxes[n])
    return boxes


def largest_component_boxes_by_level(scaled: np.ndarray, grid: np.ndarray, workers: Optional[int] = None) -> np.ndarray:
    """N x T x 4 boxes ``(x1, y1, x2, y2)`` of the largest 8-connected component of ``scaled >= grid[t]``.

    Args:
        scaled: N x H x W maps (float32 or float64).
        grid: T increasing thresholds, compared in ``scaled``'s precision.
        workers: threads sharing the maps (the kernel releases the GIL);
            default torch's intra-op thread count.

    Returns:
        int32 boxes with inclusive pixel corners; an empty mask gives the
        whole image.
    """
    scaled = np.ascontiguousarray(scaled)
    if scaled.ndim != 3:
        raise ValueError(f"scaled: expected N x H x W maps, got shape {scaled.shape}")
    grid = np.asarray(grid, dtype=scaled.dtype)
    if grid.ndim != 1 or len(grid) == 0 or (np.diff(grid) <= 0).any():
        raise ValueError(f"grid: expected increasing thresholds, got {grid}")
    return np.concatenate(map_row_ranges(lambda start, stop: _boxes_by_level(scaled[start:stop], grid), len(scaled),
                                         workers))

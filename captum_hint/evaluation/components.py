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
change its box, and the pass stops.

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


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]  # path halving
        p = parent[p]
    return p


@numba.njit(cache=True, nogil=True)
def _level(grid, value):
    """The number of thresholds at or below ``value`` (``grid`` increasing), exact for any grid."""
    n = len(grid)
    span = grid[n - 1] - grid[0]
    guess = int((value - grid[0]) / span * (n - 1)) + 1 if span > 0 else 1  # right for an evenly spaced grid
    level = min(max(guess, 0), n)
    while level < n and grid[level] <= value:
        level += 1
    while level > 0 and grid[level - 1] > value:
        level -= 1
    return level


@numba.njit(cache=True, nogil=True)
def _map_boxes(scaled, grid, boxes):
    """Fill ``boxes`` (T x 4) for one H x W map."""
    height, width = scaled.shape
    n_levels = len(grid)
    # A border of level 0 (never in a mask) spares the bounds checks of the 8 neighbours.
    stride = width + 2
    size = (height + 2) * stride
    offsets = np.array([-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1])
    level_of = np.zeros(size, dtype=np.int32)
    parent = np.full(size, -1, dtype=np.int32)
    area = np.empty(size, dtype=np.int32)
    first = np.empty(size, dtype=np.int32)
    y1 = np.empty(size, dtype=np.int32)
    y2 = np.empty(size, dtype=np.int32)
    x1 = np.empty(size, dtype=np.int32)
    x2 = np.empty(size, dtype=np.int32)
    # each pixel's level, and a counting sort of the pixels by level (raster order within a level)
    starts = np.zeros(n_levels + 2, dtype=np.int64)
    for y in range(height):
        for x in range(width):
            level = _level(grid, scaled[y, x])
            level_of[(y + 1) * stride + x + 1] = level
            starts[level + 1] += 1
    for level in range(n_levels + 1):
        starts[level + 1] += starts[level]
    fill = starts.copy()
    order = np.empty(height * width, dtype=np.int32)
    for y in range(height):
        for x in range(width):
            p = (y + 1) * stride + x + 1
            order[fill[level_of[p]]] = p
            fill[level_of[p]] += 1
    best, best_area, best_first = -1, 0, -1
    for level in range(n_levels, 0, -1):  # pixels of this level enter the mask of threshold index level - 1
        for k in range(starts[level], starts[level + 1]):
            p = order[k]
            y, x = p // stride - 1, p % stride - 1
            parent[p] = p
            area[p] = 1
            first[p] = p
            y1[p] = y
            y2[p] = y
            x1[p] = x
            x2[p] = x
            root = p
            for j in range(8):
                q = p + offsets[j]
                if parent[q] < 0:
                    continue
                other = _find(parent, q)
                if other == root:
                    continue
                if area[other] > area[root]:  # union by size
                    root, other = other, root
                parent[other] = root
                area[root] += area[other]
                first[root] = min(first[root], first[other])
                y1[root] = min(y1[root], y1[other])
                y2[root] = max(y2[root], y2[other])
                x1[root] = min(x1[root], x1[other])
                x2[root] = max(x2[root], x2[other])
            # A component's (area, first pixel) only grows, so the largest one is tracked as it changes.
            if area[root] > best_area or (area[root] == best_area and first[root] > best_first):
                best, best_area, best_first = root, area[root], first[root]
        if best < 0:  # an empty mask: the whole image, as wsolevaluation
            boxes[level - 1, 0] = 0
            boxes[level - 1, 1] = 0
            boxes[level - 1, 2] = width - 1
            boxes[level - 1, 3] = height - 1
        else:
            best = _find(parent, best)
            boxes[level - 1, 0] = x1[best]
            boxes[level - 1, 1] = y1[best]
            boxes[level - 1, 2] = x2[best]
            boxes[level - 1, 3] = y2[best]
            # Holding over half the pixels, the component stays the largest (the others are disjoint from
            # it); spanning the whole image, its box can grow no more: every lower level has this box.
            if 2 * area[best] > height * width and x1[best] == 0 and y1[best] == 0 and x2[best] == width - 1 \
                    and y2[best] == height - 1:
                for lower in range(level - 1):
                    boxes[lower, 0] = 0
                    boxes[lower, 1] = 0
                    boxes[lower, 2] = width - 1
                    boxes[lower, 3] = height - 1
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

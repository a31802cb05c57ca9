"""The hierarchical decomposition of a decision (Cheng et al., Sec. 3.2 and 4.1).

Starting at the decision (a class or concept score), gAP finds the top-k
channels of the highest decomposed layer by their contribution ``alpha``;
each chosen channel is decomposed *at its peak* (Eq. 5) into the next lower
layer, and so on down to the lowest layer. Channels whose thresholded
activation maps overlap a more contributing channel's with IoU above
``nms_iou`` are merged into it (non-maximum suppression ordered by alpha,
Sec. 4.1): a map's mask is ``A_k >= map_threshold * max A_k``.

Everything is batched: all images, and every decision of a level (all the
nodes of that layer), go through one forward pass and one backward pass
vectorized over the decisions (in blocks of at most ``max_decisions`` (image,
decision) rows); children are chosen block by block, so only the chosen
candidates' maps are kept.
"""

from __future__ import annotations

import functools
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..attr._base import check_image_batch
from ..attr.activation_propagation import LayerActivationPropagation, peak_positions, propagate_between
from ..core.checks import check_finite, check_fraction, check_positive_int
from ..core.model_state import evaluation_mode
from ..core.stages import forward_order, stage_layers
from .tree import EvidenceNode

__all__ = ["HierarchicalDecomposition", "Selection", "chosen_channel_shares", "chosen_children_map",
           "label_with_concepts"]


class Selection(NamedTuple):
    """The children chosen for B decisions among their M best candidates (B x M each).

    Attributes:
        channels: candidate channel indices, by decreasing contribution.
        contributions: their alpha.
        shares: alpha over the decision's positive alpha total.
        chosen: True for the (at most top-k) kept candidates.
        merged_into: for a suppressed candidate, the position of the kept one it merged into, else -1.
        peaks: (row, col) of each candidate's map maximum (B x M x 2).
        maps: the candidates' activation maps (B x M x H x W).
    """

    channels: Tensor
    contributions: Tensor
    shares: Tensor
    chosen: Tensor
    merged_into: Tensor
    peaks: Tensor
    maps: Tensor


def select_children(maps: Tensor, top_k: int, nms_iou: float = 0.9, map_threshold: float = 0.5,
                    min_share: Optional[float] = None) -> Selection:
    """Top-k channels of B decisions' activation maps (B x K x H x W), with NMS over their masks.

    Candidates are the ``4 * top_k`` channels of highest alpha; a candidate is
    suppressed (merged) when its mask overlaps a kept, more contributing
    candidate's with IoU > ``nms_iou``; the first ``top_k`` kept candidates
    with positive alpha (and share >= ``min_share``) are chosen.
    """
    check_finite("maps", maps, "the activation maps of a decision must be finite")
    alpha = maps.mean((-2, -1))
    shares = alpha / alpha.clamp_min(0).sum(1, keepdim=True).clamp_min(torch.finfo(alpha.dtype).tiny)
    n_candidates = min(maps.shape[1], 4 * top_k)
    contributions, channels = alpha.topk(n_candidates, dim=1)
    candidate_maps = maps.gather(1, channels[..., None, None].expand(-1, -1, *maps.shape[-2:]))
    highest = candidate_maps.flatten(2).amax(-1)
    masks = ((candidate_maps >= map_threshold * highest[..., None, None]) & (highest[..., None, None] > 0)).flatten(2)
    masks = masks.float()
    overlap = masks @ masks.transpose(1, 2)
    area = masks.sum(-1)
    iou = overlap / (area[:, :, None] + area[:, None, :] - overlap).clamp_min(1)
    kept = torch.zeros_like(contributions, dtype=torch.bool)
    merged_into = torch.full_like(channels, -1)
    # Greedy NMS over the few candidate ranks, vectorized across decisions.
    kept[:, 0] = True
    for i in range(1, n_candidates):
        overlaps_kept = (iou[:, i, :i] > nms_iou) & kept[:, :i]
        suppressed = overlaps_kept.any(1)
        kept[:, i] = ~suppressed
        merged_into[:, i] = torch.where(suppressed, overlaps_kept.float().argmax(1), -1)
    candidate_shares = shares.gather(1, channels)
    eligible = kept & (contributions > 0)
    if min_share is not None:
        eligible &= candidate_shares >= min_share
    chosen = eligible & (eligible.cumsum(1) <= top_k)
    return Selection(channels, contributions, candidate_shares, chosen, merged_into,
                     peak_positions(candidate_maps), candidate_maps)


def chosen_channel_shares(model: nn.Module, layer, images: Tensor, target=None, top_k: int = 3,
                          nms_iou: float = 0.9, map_threshold: float = 0.5, batch_size: int = 32) -> Tensor:
    """How much gAP's first decomposition step leans on each channel of ``layer``: D scores.

    The decision (``target``, as in :meth:`HierarchicalDecomposition.decompose`)
    of each image is decomposed onto ``layer``; a channel's score is its
    share of the decision's positive evidence where it is one of the chosen
    children (top-``k`` after NMS, as a tree's first level), 0 where it is
    not, averaged over the images. Ranking the channels by it asks which
    ones gAP's trees put under the decision. ``batch_size`` images per pass.
    """
    total = None
    for maps, picked in _first_level(model, layer, images, target, top_k, nms_iou, map_threshold, batch_size,
                                     "chosen_channel_shares"):
        shares = torch.zeros(maps.shape[:2], dtype=maps.dtype, device=maps.device)
        shares.scatter_add_(1, picked.channels, torch.where(picked.chosen, picked.shares, 0.0))
        total = shares.sum(0) if total is None else total + shares.sum(0)
    return (total / len(images)).cpu()


def chosen_children_map(model: nn.Module, layer, images: Tensor, target=None, top_k: int = 3,
                        nms_iou: float = 0.9, map_threshold: float = 0.5, batch_size: int = 32) -> Tensor:
    """Where gAP's first decomposition step finds the decision: its chosen children's maps summed, N x 1 x h x w.

    The decision (``target``) of each image is decomposed onto ``layer``
    (as :func:`chosen_channel_shares`); the activation maps (gradient x
    activation) of the chosen top-``k`` children are summed, negatives
    zeroed: gAP's own localization of the decision at that layer.
    """
    parts = []
    for _, picked in _first_level(model, layer, images, target, top_k, nms_iou, map_threshold, batch_size,
                                  "chosen_children_map"):
        kept = picked.maps * picked.chosen[..., None, None].to(picked.maps.dtype)
        parts.append(kept.sum(1, keepdim=True).clamp_min(0).cpu())
    return torch.cat(parts)


def _first_level(model: nn.Module, layer, images: Tensor, target, top_k: int, nms_iou: float, map_threshold: float,
                 batch_size: int, caller: str):
    """(maps, :class:`Selection`) of each ``batch_size`` images' decisions decomposed onto ``layer``."""
    check_image_batch(images, "images")
    check_positive_int("top_k", top_k)
    check_positive_int("batch_size", batch_size)
    propagation = LayerActivationPropagation(model, layer)
    with evaluation_mode(model, caller):
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            per_image = target[part] if isinstance(target, (list, tuple, Tensor)) else target
            maps = propagation.attribute(images[part], target=per_image).detach()
            yield maps, select_children(maps, top_k, nms_iou, map_threshold)


def _output_layer(model: Optional[nn.Module], name: str) -> str:
    """The innermost layer whose output is ``name``'s: an ``nn.Sequential``'s output is its last module's."""
    modules = dict(model.named_modules()) if model is not None else {}
    while isinstance(modules.get(name), nn.Sequential) and len(modules[name]):
        name = f"{name}.{list(modules[name]._modules)[-1]}" if name else list(modules[name]._modules)[-1]
    return name


def label_with_concepts(trees, explainer, n: int = 2) -> None:
    """Name the nodes at ``explainer.layer`` by the concepts their channel scores highest for.

    ``explainer`` is a fitted :class:`~captum_hint.HINT` (anything with
    ``layer`` and ``concepts_of(neuron, n)``): each node at that layer gets
    ``concepts`` = its channel's top-``n`` (concept, Shapley value) pairs.
    A node matches when its layer gives the same tensor as the explainer's:
    gAP names a stage by its last module (``layer3.5``), a HINT may name the
    stage itself (``layer3``; the explainer's ``model`` tells them apart).

    Raises:
        ValueError: no node of the trees is at the explainer's layer.
    """
    model = getattr(explainer, "model", None)
    wanted = _output_layer(model, explainer.layer)
    trees = [trees] if isinstance(trees, EvidenceNode) else list(trees)
    nodes = [node for tree in trees for node in tree.walk() if node.layer != "output"]
    matched = [node for node in nodes if _output_layer(model, node.layer) == wanted]
    if nodes and not matched:
        raise ValueError(f"explainer: no node of the trees is at its layer {explainer.layer!r} (nor at a layer giving "
                         f"the same output); the trees' layers are {sorted({node.layer for node in nodes})}")
    for node in matched:
        node.concepts = list(explainer.concepts_of(node.channel, n))


class HierarchicalDecomposition:
    """A decision explained as a tree of supporting channels, layer by layer (gAP).

    Args:
        model: the CNN.
        layers: dotted names of the layers to decompose through, in forward
            order; default the last layer of each stage
            (:func:`~captum_hint.gap.stage_layers`).
        input_shape: C x H x W of the images (for finding the stages).
        nms_iou: channels whose masks overlap with IoU above this are merged (0.9 in the paper).
        map_threshold: a map's mask is ``A >= map_threshold * max A``.
        max_decisions: (image, decision) rows propagated in one backward pass, and images
            decomposed at once; bounds memory whatever the number of images and of decisions
            per image.
        progress: show a tqdm bar over levels.

    Attributes:
        layers: the decomposed layers, lowest first.
    """

    def __init__(self, model: nn.Module, layers: Optional[Sequence[str]] = None,
                 input_shape: Sequence[int] = (3, 224, 224), nms_iou: float = 0.9, map_threshold: float = 0.5,
                 max_decisions: int = 64, progress: bool = False):
        self.model = model
        check_fraction("nms_iou", nms_iou)
        check_fraction("map_threshold", map_threshold)
        check_positive_int("max_decisions", max_decisions)
        if layers is None:
            self.layers = stage_layers(model, input_shape)
        else:
            layers = list(layers)
            if not layers:
                raise ValueError("layers: expected at least one layer name (or None: each stage's last layer)")
            order = forward_order(model, layers, input_shape, spatial=True)
            if order != layers:
                raise ValueError(f"layers: expected them in forward order, i.e. {order}; got {layers}")
            self.layers = layers
        self.nms_iou, self.map_threshold = nms_iou, map_threshold
        self.max_decisions, self.progress = max_decisions, progress
        self._modules = dict(model.named_modules())

    # ------------------------------------------------------------------ one level
    def propagated_blocks(self, images: Tensor, lower: int, upper: int, selectors: Tensor):
        """Activation maps at ``layers[lower]`` for features of ``layers[upper]``, block by block.

        ``selectors`` is N x S x 3; yields ``(image_slice, decision_slice, maps)`` with maps shaped
        (images in the slice) x (decisions in the slice) x K x H x W, at most ``max_decisions``
        (image, decision) rows per backward pass, so memory does not grow with N or S.
        """
        n, s = selectors.shape[:2]
        block = min(s, self.max_decisions)
        rows = max(1, self.max_decisions // block)
        lower_module, upper_module = self._modules[self.layers[lower]], self._modules[self.layers[upper]]
        for first in range(0, n, rows):
            images_part = slice(first, min(first + rows, n))
            for start in range(0, s, block):
                decisions = slice(start, min(start + block, s))
                gradients, features, _ = propagate_between(self.model, images[images_part], lower_module,
                                                           upper_module, selectors[images_part, decisions])
                yield images_part, decisions, gradients * features[:, None]

    def _children(self, parent_maps: Tensor, layer: int, input_size: Tuple[int, int], top_k: int,
                  min_share: Optional[float]) -> List[List[EvidenceNode]]:
        """Child nodes of B decisions from their activation maps (B x K x H x W) at ``layers[layer]``."""
        picked = select_children(parent_maps, top_k, self.nms_iou, self.map_threshold, min_share)
        height, width = parent_maps.shape[-2:]
        scale = torch.tensor([input_size[0] / height, input_size[1] / width])
        pixels = (picked.peaks.float() + 0.5) * scale - 0.5
        result = []
        for b in range(len(parent_maps)):
            kept = picked.chosen[b].nonzero().flatten().tolist()
            merged = {i: picked.channels[b, picked.merged_into[b] == i].tolist() for i in kept}
            result.append([EvidenceNode(
                layer=self.layers[layer], channel=int(picked.channels[b, i]),
                contribution=float(picked.contributions[b, i]), share=float(picked.shares[b, i]),
                peak=tuple(picked.peaks[b, i].tolist()), peak_pixel=tuple(round(v, 2) for v in pixels[b, i].tolist()),
                activation_map=picked.maps[b, i].detach().float().cpu(), merged=merged[i]) for i in kept])
        return result

    # ------------------------------------------------------------------ public
    def decompose(self, images: Tensor, target=None, top_k: int = 3, min_share: Optional[float] = None,
                  depth: Optional[int] = None) -> List[EvidenceNode]:
        """One evidence tree per image.

        Args:
            images: N x C x H x W.
            target: the decision: ``None`` (each image's predicted class), a
                class index, per-sample indices, a concept (set of leaf
                indices) or per-sample concepts.
            top_k: children kept per decision.
            min_share: drop children whose share of their parent's positive
                evidence is below this fraction.
            depth: decompose this many layers down (default: all); deeper
                nodes can be expanded later with :meth:`EvidenceNode.expand`.

        Returns:
            N root nodes (layer ``"output"``); their descendants are the evidence.
        """
        check_image_batch(images, "images")
        check_positive_int("top_k", top_k)
        if min_share is not None:
            check_fraction("min_share", min_share)
        depth = len(self.layers) if depth is None else check_positive_int("depth", depth)
        if len(images) > self.max_decisions:  # bounded memory: max_decisions images' trees at a time
            targets = None if target is None else _per_sample_targets(target, len(images))
            return [tree for start in range(0, len(images), self.max_decisions)
                    for tree in self.decompose(images[start : start + self.max_decisions],
                                               None if targets is None else targets[start : start + self.max_decisions],
                                               top_k, min_share, depth)]
        with evaluation_mode(self.model, "HierarchicalDecomposition", "images"), torch.enable_grad():
            if target is None:
                with torch.no_grad():
                    target = self.model(images).argmax(1).tolist()
            targets = _per_sample_targets(target, len(images))
            top = LayerActivationPropagation(self.model, self._modules[self.layers[-1]])
            propagation = top.propagate(images, target=target)
            roots = [EvidenceNode("output", -1 if isinstance(t, frozenset) else t, float(v))
                     for t, v in zip(targets, propagation.decisions)]
            size = tuple(images.shape[-2:])
            for root, children in zip(roots, self._children(propagation.maps, len(self.layers) - 1, size, top_k,
                                                            min_share)):
                root.children = children
            frontier = [(n, child) for n, root in enumerate(roots) for child in root.children]
            levels = range(len(self.layers) - 1, max(len(self.layers) - depth, 0), -1)
            for upper in tqdm(levels, desc="gAP levels", disable=not self.progress):
                frontier = self._expand_level(images, frontier, upper, top_k, min_share)
            for n, root in enumerate(roots):
                self._attach(root, images[n : n + 1], min_share, targets[n])
        return roots

    def _expand_level(self, images: Tensor, frontier, upper: int, top_k: int, min_share):
        """Decompose every frontier node (at ``layers[upper]``) into ``layers[upper - 1]``; the new frontier."""
        if not frontier:
            return []
        owners = sorted({n for n, _ in frontier})
        per_image = [[node for n, node in frontier if n == owner] for owner in owners]
        slots = max(len(nodes) for nodes in per_image)
        selectors = torch.zeros(len(owners), slots, 3, dtype=torch.long)
        for i, nodes in enumerate(per_image):
            selectors[i, : len(nodes)] = torch.tensor([[node.channel, *node.peak] for node in nodes])
        device = images.device
        size = tuple(images.shape[-2:])
        blocks = self.propagated_blocks(images[torch.tensor(owners, device=device)], upper - 1, upper,
                                        selectors.to(device))
        for rows, decisions, maps in blocks:
            # children are chosen block by block: only their candidates' maps are kept
            slots = [(i, d) for i in range(rows.start, rows.stop)
                     for d in range(decisions.start, min(decisions.stop, len(per_image[i])))]
            if not slots:
                continue
            flat = torch.stack([maps[i - rows.start, d - decisions.start] for i, d in slots])
            for (i, d), children in zip(slots, self._children(flat, upper - 1, size, top_k, min_share)):
                per_image[i][d].children = children
        return [(owner, child) for owner, nodes in zip(owners, per_image) for node in nodes
                for child in node.children]

    def _attach(self, node: EvidenceNode, image: Tensor, min_share, target) -> None:
        """Let every node of a tree expand lazily (``node.expand(top_k)``)."""
        for each in node.walk():
            if each.layer != self.layers[0]:
                each._expand = functools.partial(self._expand_node, image=image, min_share=min_share, target=target)

    def _expand_node(self, node: EvidenceNode, top_k: int, image: Tensor, min_share, target) -> List[EvidenceNode]:
        check_positive_int("top_k", top_k)
        with evaluation_mode(self.model, "HierarchicalDecomposition", "images"), torch.enable_grad():
            if node.layer == "output":
                propagation = LayerActivationPropagation(self.model, self._modules[self.layers[-1]]).propagate(
                    image, target=set(target) if isinstance(target, frozenset) else target)
                children = self._children(propagation.maps, len(self.layers) - 1, tuple(image.shape[-2:]), top_k,
                                          min_share)[0]
            else:
                upper = self.layers.index(node.layer)
                self._expand_level(image, [(0, node)], upper, top_k, min_share)
                children = node.children
        for child in children:
            self._attach(child, image, min_share, target)
        return children


def _per_sample_targets(target, n: int) -> list:
    """N targets: class indices (ints) or concepts (frozensets), from any captum_hint target form.

    Negative class indices (-1 is also the tree's marker of a concept
    decision) are refused by the propagation's own target check.
    """
    if isinstance(target, (set, frozenset)):
        return [frozenset(target)] * n
    if isinstance(target, int) and not isinstance(target, bool):
        return [target] * n
    if isinstance(target, Tensor) and not target.is_floating_point() and target.dtype != torch.bool:
        target = target.reshape(-1).tolist()
    if isinstance(target, (list, tuple)) and len(target) == n:
        if all(isinstance(t, (set, frozenset)) for t in target):
            return [frozenset(t) for t in target]
        if all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            return list(target)
    if isinstance(target, (list, tuple)) and len(target) == 1:
        return _per_sample_targets(target[0], n)
    raise ValueError(
        "target: expected None (the predicted class), a class index, N per-sample indices, a concept "
        f"(set of leaf indices) or N concepts, for a batch of {n}; got {target!r}"
    )

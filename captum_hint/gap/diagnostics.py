"""The gAP paper's diagnostics (Cheng et al., Sec. 4.1, Table 1, Fig. 7, 8, 14), as functions.

* :func:`ablation_contributions`: the ground-truth contribution of every
  channel of a layer to a decision — the decision's drop when the channel is
  set to its mean activation — for all channels in batched forwards from the
  layer (a hook feeds N x B ablated copies of the layer's output upwards).
* :func:`contribution_sanity`: Table 1, the Pearson correlation between the
  ground truth and gAP's alpha (AA), the maximum activation (MA), the average
  gradient (AG) and the maximum gradient (MG), per stage pair, with the time
  of each.
* :func:`cascading_randomization`: Fig. 7(a), Spearman correlation of input
  saliency maps with the original ones as the layers are randomized top-down,
  for gAP and Captum's SmoothGrad, Guided Backprop and Integrated Gradients.
* :func:`sparse_surrogate`: Fig. 8, the model restricted to the channels the
  decomposition of its predicted class finds.
* :func:`discriminative_degree`: Eq. 13, per channel and layer.
"""

from __future__ import annotations

import copy
import time
from typing import Dict, List, Optional, Sequence, Union

import torch
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import GuidedBackprop, IntegratedGradients, Saliency
from torch import Tensor, nn

from ..attr._base import check_image_batch, prepare_target
from ..attr.activation_propagation import layer_output, peak_positions, propagate_between
from ..core.checks import check_number, check_positive_int
from ..core.model_state import evaluation_mode
from .decomposition import HierarchicalDecomposition, select_children
from ..core.stages import randomize_parameters, stage_groups
from ..evaluation.statistics import pearson_rows, spearman_rows

__all__ = [
    "ablation_contributions",
    "contribution_sanity",
    "cascading_randomization",
    "gap_input_saliency",
    "sparse_surrogate",
    "discriminative_degree",
]


def _decision_values(outputs: Tensor, target, features: Optional[Tensor], selectors: Optional[Tensor], copies: int):
    """Decision per row for ``copies`` rows per image: a score of ``outputs`` or a feature of ``features``."""
    if selectors is None:
        index = torch.as_tensor(target, device=outputs.device).reshape(-1).long()
        index = index.expand(len(outputs) // copies) if index.numel() == 1 else index
        return outputs[torch.arange(len(outputs), device=outputs.device), index.repeat_interleave(copies)]
    channel, row, col = selectors.to(features.device).repeat_interleave(copies, 0).unbind(-1)
    return features[torch.arange(len(features), device=features.device), channel, row, col]


def ablation_contributions(model: nn.Module, images: Tensor, layer: str, target=None,
                           neuron_selector: Optional[Tensor] = None, source_layer: Optional[str] = None,
                           baseline: Union[str, float] = "mean", channels_per_pass: int = 16) -> Tensor:
    """Ground-truth channel contributions: the decision's drop when a channel is set to its mean.

    ``drop[n, k] = f(x_n) - f(x_n with channel k of `layer` replaced by b_k)``.
    With ``baseline="mean"``, ``b_k`` is channel k's mean activation over the
    given images and positions (the paper's "average activation"); a number
    sets every ablated channel to it. For a decision that depends linearly on
    the layer, ``drop[n, k] = sum_{x,y} G_{k,x,y} (F_{k,x,y} - b_k)``; with
    ``b = 0`` that is ``H * W * alpha_k``.

    All channels are ablated by ``torch.func.vmap`` over the ablated channel
    (``channels_per_pass`` at a time): the layers below ``layer`` run once,
    unbatched, and only the part above it is vectorized over the ablations.

    Args:
        model: the network (run in eval mode, restored after).
        images: N x C x H x W.
        layer: dotted name of the ablated layer.
        target: the decision as a score (class indices, a concept set, ...).
        neuron_selector: or as features of ``source_layer``: N x 3 (channel, row, col).
        baseline: ``"mean"`` or a number.
        channels_per_pass: ablations vectorized at once.

    Returns:
        N x K drops.
    """
    check_image_batch(images, "images")
    check_positive_int("channels_per_pass", channels_per_pass)
    if baseline != "mean":
        check_number("baseline", baseline)
    modules = dict(model.named_modules())
    if layer not in modules or (source_layer is not None and source_layer not in modules):
        raise ValueError(f"layer, source_layer: {layer!r} / {source_layer!r} must be submodules of the model")
    forward, target = prepare_target(model, target, len(images)) if neuron_selector is None else (model, None)
    state: Dict[str, object] = {}

    def replace(module, args, output):
        ablate = state.get("ablate")
        return output if ablate is None else ablate(output)

    def capture(module, args, output):
        state["upper"] = output

    def decisions() -> Tensor:
        return _decision_values(forward(images), target, state.get("upper"), neuron_selector, 1)

    handles = [modules[layer].register_forward_hook(replace)]
    if source_layer is not None:
        handles.append(modules[source_layer].register_forward_hook(capture))
    try:
        with torch.no_grad(), evaluation_mode(model, "ablation_contributions", "images"):
            features = layer_output(model, modules[layer], images)
            clean = decisions()
            k = features.shape[1]
            base = features.transpose(0, 1).reshape(k, -1).mean(1) if baseline == "mean" else \
                torch.full((k,), float(baseline), device=features.device, dtype=features.dtype)

            def ablated(one_hot: Tensor) -> Tensor:
                keep = (1 - one_hot)[None, :, None, None]
                state["ablate"] = lambda output: output * keep + (base * one_hot)[None, :, None, None]
                return decisions()

            eye = torch.eye(k, device=features.device, dtype=features.dtype)
            values = torch.func.vmap(ablated, chunk_size=channels_per_pass)(eye)  # K x N
    finally:
        state["ablate"] = None
        for handle in handles:
            handle.remove()
    return clean[:, None] - values.T


def _gradients_and_features(decomposition: HierarchicalDecomposition, images: Tensor, lower: int,
                            target=None, selectors: Optional[Tensor] = None):
    """(G, F), both N x K x H x W at ``layers[lower]``, for a score target or one feature per image above."""
    modules = decomposition._modules
    if selectors is None:
        forward, captum_target = prepare_target(decomposition.model, target, len(images))
        (gradients,), (features,) = compute_layer_gradients_and_eval(
            forward, modules[decomposition.layers[lower]], images, captum_target)
        return gradients.detach(), features.detach()
    gradients, features, _ = propagate_between(decomposition.model, images, modules[decomposition.layers[lower]],
                                               modules[decomposition.layers[lower + 1]], selectors[:, None])
    return gradients[:, 0], features


def contribution_sanity(decomposition: HierarchicalDecomposition, images: Tensor, target=None,
                        baseline: Union[str, float] = "mean", channels_per_pass: int = 16) -> List[Dict]:
    """Table 1: correlation of channel-contribution estimates with the ablation ground truth.

    Stage pairs run top-down: T -> S_L (the decision: ``target``, default
    the predicted class), then S_{l+1} -> S_l, whose decision is, per image,
    the peak feature of the channel of S_{l+1} with the highest gAP alpha in
    the pair above (the path the decomposition follows first).

    Returns:
        One row per pair: ``pair``, ``AA`` (gAP's alpha), ``MA`` (max of A),
        ``AG`` (mean gradient), ``MG`` (max gradient) — each an N tensor of
        per-image Pearson correlations across channels — ``truth`` (the N x K
        ablation drops), and ``seconds_gap``, ``seconds_ablation`` (the whole
        batch, same run).
    """
    check_image_batch(images, "images")
    model = decomposition.model
    rows = []
    with evaluation_mode(model, "contribution_sanity", "images"):
        if target is None:
            with torch.no_grad():
                target = model(images).argmax(1).tolist()
        selectors = None
        for lower in range(len(decomposition.layers) - 1, -1, -1):
            started = time.perf_counter()
            gradients, features = _gradients_and_features(decomposition, images, lower, target, selectors)
            maps = gradients * features
            seconds_gap = time.perf_counter() - started
            started = time.perf_counter()
            upper = None if selectors is None else decomposition.layers[lower + 1]
            truth = ablation_contributions(model, images, decomposition.layers[lower],
                                           target if selectors is None else None, selectors, upper, baseline,
                                           channels_per_pass)
            seconds_ablation = time.perf_counter() - started
            estimates = {"AA": maps.mean((-2, -1)), "MA": maps.flatten(2).amax(-1),
                         "AG": gradients.mean((-2, -1)), "MG": gradients.flatten(2).amax(-1)}
            name = "T" if selectors is None else decomposition.layers[lower + 1]
            rows.append({"pair": f"{name} -> {decomposition.layers[lower]}",
                         **{key: pearson_rows(value, truth).cpu() for key, value in estimates.items()},
                         "truth": truth.cpu(), "seconds_gap": seconds_gap, "seconds_ablation": seconds_ablation})
            top = estimates["AA"].argmax(1)
            peaks = peak_positions(maps[torch.arange(len(images)), top])
            selectors = torch.cat([top[:, None], peaks], 1).cpu()
    return rows


def gap_input_saliency(decomposition: HierarchicalDecomposition, images: Tensor, target=None,
                       top_k: int = 3) -> Tensor:
    """gAP's input-space saliency: the decomposition continued to the data layer and summed.

    The leaves of each tree (the nodes at the lowest decomposed layer) are
    decomposed onto the input pixels, and their maps ``G * x`` summed over
    leaves and colour channels; returns the absolute value, N x 1 x H x W.
    """
    trees = decomposition.decompose(images, target, top_k=top_k)
    lowest = decomposition.layers[0]
    leaves = [[(node.channel, *node.peak) for node in tree.walk() if node.layer == lowest] for tree in trees]
    slots = max(len(nodes) for nodes in leaves)
    selectors = torch.zeros(len(images), slots, 3, dtype=torch.long)
    valid = torch.zeros(len(images), slots, dtype=torch.bool)
    for n, nodes in enumerate(leaves):
        selectors[n, : len(nodes)] = torch.tensor(nodes)
        valid[n, : len(nodes)] = True
    with evaluation_mode(decomposition.model, "gap_input_saliency", "images"):
        gradients, pixels, _ = propagate_between(decomposition.model, images, None,
                                                 decomposition._modules[lowest], selectors.to(images.device))
    maps = (gradients * pixels[:, None] * valid[:, :, None, None, None].to(gradients.device)).sum((1, 2))
    return maps.abs()[:, None]


def _captum_saliency(model: nn.Module, images: Tensor, target: List[int], method: str, seed: int) -> Tensor:
    if method == "smoothgrad":
        copies = 8
        generator = torch.Generator(device=images.device).manual_seed(seed)
        noise = torch.randn((copies, *images.shape), generator=generator, device=images.device) * 0.15 * (
            images.amax((1, 2, 3)) - images.amin((1, 2, 3)))[None, :, None, None, None]
        # Captum's Saliency on seeded noisy copies in one batch: SmoothGrad without the global RNG.
        noisy = (images[None] + noise).flatten(0, 1)
        maps = Saliency(model).attribute(noisy, target=target * copies, abs=False).view(copies, *images.shape).mean(0)
    elif method == "guided_backprop":
        maps = GuidedBackprop(model).attribute(images, target=target)
    elif method == "integrated_gradients":
        maps = IntegratedGradients(model).attribute(images, target=target, n_steps=16)
    else:
        raise ValueError(f"methods: unknown method {method!r}")
    return maps.detach().sum(1, keepdim=True).abs()


def cascading_randomization(decomposition: HierarchicalDecomposition, images: Tensor,
                            methods: Sequence[str] = ("gap", "smoothgrad", "guided_backprop", "integrated_gradients"),
                            top_k: int = 3, seed: int = 0) -> List[Dict]:
    """Fig. 7(a): maps of a copy of the model whose layers are randomized top-down, cumulatively.

    The model's units (see :mod:`~captum_hint.core.stages`) are grouped by
    stage: the head above the highest decomposed layer first, then each stage
    down to the lowest. Each step replaces every parameter of its group by
    Gaussian noise of the parameter's own standard deviation (a private
    generator seeded with ``seed``). The target stays each image's class
    predicted by the original model. The user's model is never changed.

    Returns:
        Rows ``{"randomized": group, method: N Spearman correlations with the original maps}``.
    """
    check_image_batch(images, "images")
    original = decomposition.model
    with torch.no_grad(), evaluation_mode(original, "cascading_randomization", "images"):
        target = original(images).argmax(1).tolist()
    model = copy.deepcopy(original).eval()
    working = HierarchicalDecomposition(model, decomposition.layers, tuple(images.shape[1:]),
                                        decomposition.nms_iou, decomposition.map_threshold,
                                        decomposition.max_decisions)

    def maps_of(method: str) -> Tensor:
        if method == "gap":
            return gap_input_saliency(working, images, target, top_k).detach()
        return _captum_saliency(model, images, target, method, seed)

    reference = {method: maps_of(method) for method in methods}
    groups = stage_groups(model, decomposition.layers, tuple(images.shape[1:]))
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for name, members in groups:
        randomize_parameters(model, members, generator)
        rows.append({"randomized": name, **{m: spearman_rows(maps_of(m), reference[m]) for m in methods}})
    return rows


def _kept_channels(decomposition: HierarchicalDecomposition, images: Tensor, target: List[int], k: int) -> List[Tensor]:
    """Per layer (lowest first), N x K_l masks of the channels a top-k decomposition reaches.

    Every kept channel of a layer is decomposed at its own peak (the maximum
    of its feature map), so each layer's decisions are at most its distinct
    kept channels.
    """
    modules, layers = decomposition._modules, decomposition.layers
    forward, captum_target = prepare_target(decomposition.model, target, len(images))
    (gradients,), (features,) = compute_layer_gradients_and_eval(forward, modules[layers[-1]], images, captum_target)
    picked = select_children((gradients * features).detach(), k, decomposition.nms_iou, decomposition.map_threshold)
    kept = torch.zeros(features.shape[:2], dtype=torch.bool, device=features.device)
    kept.scatter_(1, picked.channels, picked.chosen)
    masks = [kept]
    for lower in range(len(layers) - 2, -1, -1):
        upper_features = features.detach()
        counts = kept.sum(1)
        slots = int(counts.max())
        order = torch.sort(kept.float(), dim=1, descending=True, stable=True).indices[:, :slots]  # kept channels first
        peaks = peak_positions(upper_features.gather(
            1, order[..., None, None].expand(-1, -1, *upper_features.shape[-2:])))
        selectors = torch.cat([order[..., None], peaks], -1)
        valid = torch.arange(slots, device=features.device)[None] < counts[:, None]
        features = layer_output(decomposition.model, modules[layers[lower]], images)
        kept = torch.zeros(features.shape[:2], dtype=torch.bool, device=features.device)
        for rows, decisions, maps in decomposition.propagated_blocks(images, lower, lower + 1, selectors):
            picked = select_children(maps.flatten(0, 1), k, decomposition.nms_iou, decomposition.map_threshold)
            chosen = picked.chosen & valid[rows, decisions].flatten()[:, None]
            block = torch.zeros(maps.shape[0] * maps.shape[1], maps.shape[2], dtype=torch.bool, device=maps.device)
            block.scatter_(1, picked.channels, chosen)
            kept[rows] |= block.view(maps.shape[0], maps.shape[1], -1).any(1)
        masks.append(kept)
    return masks[::-1]


def sparse_surrogate(decomposition: HierarchicalDecomposition, images: Tensor, labels: Optional[Tensor] = None,
                     ks: Sequence[int] = (1, 2, 4, 8, 16), batch_size: int = 8) -> List[Dict]:
    """Fig. 8: the model keeping only the channels its top-k decomposition finds.

    For each image, the predicted class is decomposed with top-k children per
    decision down to the lowest layer (every kept channel decomposed at its
    own peak). The surrogate is the model with, at every decomposed layer,
    the output channels outside that image's kept set replaced by their mean
    activation over ``images`` and positions, the same "removal" as the
    ground truth of :func:`ablation_contributions` (zero would not be "off"
    for layers whose outputs are signed, such as EfficientNet's stages);
    forward hooks mask all layers in one forward pass.

    Images go ``batch_size`` at a time, which bounds memory (the lower
    layers' maps of every kept channel's decision).

    Returns:
        Rows ``{"k", "match_rate", "accuracy" (if labels), "kept_channels" (mean per layer)}``;
        match rate is the share of images whose surrogate prediction equals the full model's.
    """
    check_image_batch(images, "images")
    check_positive_int("batch_size", batch_size)
    model = decomposition.model
    rows = []
    with evaluation_mode(model, "sparse_surrogate", "images"):
        captured = {}
        handles = [decomposition._modules[layer].register_forward_hook(
            lambda module, args, output, layer=layer: captured.__setitem__(layer, output)) for layer in decomposition.layers]
        try:
            with torch.no_grad():
                predicted = model(images).argmax(1)
        finally:
            for handle in handles:
                handle.remove()
        means = {layer: captured[layer].mean((0, 2, 3))[None, :, None, None] for layer in decomposition.layers}
        for k in ks:
            check_positive_int("ks", k)
            with torch.enable_grad():
                parts = [_kept_channels(decomposition, images[s : s + batch_size],
                                        predicted[s : s + batch_size].tolist(), k)
                         for s in range(0, len(images), batch_size)]
            masks = [torch.cat(per_layer) for per_layer in zip(*parts)]
            handles = [decomposition._modules[layer].register_forward_hook(
                lambda module, args, output, mask=mask, mean=means[layer]:
                torch.where(mask[:, :, None, None], output, mean))
                for layer, mask in zip(decomposition.layers, masks)]
            try:
                with torch.no_grad():
                    surrogate = model(images).argmax(1)
            finally:
                for handle in handles:
                    handle.remove()
            row = {"k": k, "match_rate": (surrogate == predicted).float().mean().item(),
                   "kept_channels": [float(m.sum(1).float().mean()) for m in masks]}
            if labels is not None:
                row["accuracy"] = (surrogate.cpu() == torch.as_tensor(labels)).float().mean().item()
                row["accuracy_full"] = (predicted.cpu() == torch.as_tensor(labels)).float().mean().item()
            rows.append(row)
    return rows


def discriminative_degree(decomposition: HierarchicalDecomposition, batches, num_classes: int,
                          top_k: int = 3) -> Dict[str, Tensor]:
    """Eq. 13: ``D = max_c N_c / sum_c N_c`` of every channel, per decomposed layer.

    ``N_c`` counts how often a channel is among the top-k children of a
    decision in the decompositions (of the predicted class) of images
    labelled c. Streams ``batches`` of ``(images, labels)``; memory is
    K x ``num_classes`` counts per layer.

    Returns:
        layer -> K degrees (NaN for channels never chosen).
    """
    check_positive_int("num_classes", num_classes)
    counts: Dict[str, Tensor] = {}
    for images, labels in batches:
        labels = torch.as_tensor(labels).long()
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels: expected class indices in 0..{num_classes - 1}")
        if not counts:
            with evaluation_mode(decomposition.model, "discriminative_degree", "batches"):
                counts = {layer: torch.zeros(layer_output(decomposition.model, decomposition._modules[layer], images[:1])
                                          .shape[1], num_classes) for layer in decomposition.layers}
        for tree, label in zip(decomposition.decompose(images, top_k=top_k), labels.tolist()):
            for node in tree.walk():
                if node.layer != "output":
                    counts[node.layer][node.channel, label] += 1
    return {layer: table.amax(1) / table.sum(1) for layer, table in counts.items()}

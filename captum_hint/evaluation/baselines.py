"""Baselines that HINT's localization and neuron rankings are compared with.

Maps:

* :func:`gradcam_maps`: Captum's ``LayerGradCam`` on a concept's score
  (:func:`gradcam_pass`: the same for several concepts from one forward pass);
* :func:`center_gaussian_maps`: a Gaussian at the image centre, the trivial
  map every method must beat (objects tend to sit near the centre);
* :func:`full_image_maps`: a constant map, whose box is the whole image.

Neuron rankings:

* :func:`conductance_ranking`: Captum's ``LayerConductance``;
* :func:`gradcam_channel_ranking`: Grad-CAM's channel weights;
* :func:`tcav_channel_ranking`: the concept activation vector of Captum's
  ``TCAV`` (Kim et al., ICML 2018), summed per channel;
* :func:`netdissect_ranking`: NetDissect's unit-concept IoU (Bau et al.,
  "Network Dissection", CVPR 2017).
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerConductance, LayerGradCam
from torch import Tensor, nn

from ..attr._base import resolve_layer
from ..attr.activation_propagation import layer_output
from ..attr.gradient import mean_layer_gradient
from ..attr.shared_pass import SharedPassSaliency
from ..concepts.scores import ConceptScore
from ..core.checks import check_fraction, check_number, check_positive_int
from ..core.model_state import evaluation_mode
from ..core.seeding import seeded_globals

__all__ = ["gradcam_maps", "gradcam_pass", "center_gaussian_maps", "full_image_maps", "conductance_ranking",
           "gradcam_channel_ranking", "netdissect_ranking", "tcav_channel_ranking"]


def gradcam_maps(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], size=None) -> Tensor:
    """Grad-CAM (Captum ``LayerGradCam``) for a concept's score, upsampled: N x 1 x H x W.

    The target is the concept's score (log of the summed softmax over its
    leaves), so Grad-CAM and HINT localize the same concept.
    """
    method = LayerGradCam(ConceptScore(model, [leaves]), resolve_layer(model, layer))
    with evaluation_mode(model, "gradcam_maps"):
        maps = method.attribute(images, target=0, relu_attributions=True)
    return LayerAttribution.interpolate(maps.detach(), tuple(size or images.shape[-2:]), "bilinear")


def gradcam_pass(model: nn.Module, layer, images: Tensor, concepts: Sequence[Sequence[int]],
                 capture=None) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Grad-CAM of K concepts from one forward pass: (N x K x h x w maps at the layer, N x C logits, captured).

    Equals :func:`gradcam_maps` per concept (before upsampling), but the
    forward pass is shared by all concepts and each concept's backward pass
    runs only through the layers above ``layer``
    (:class:`~captum_hint.attr.SharedPassSaliency`). ``capture``: another
    layer (module or dotted name) whose output is returned as well, e.g.
    the layer HINT explains (a copy, safe from in-place operations above it).
    """
    leaf_sets = [list(leaves) for leaves in concepts]
    method = SharedPassSaliency(model, layer, "gradient", concepts=leaf_sets)
    captured = {}

    def keep(module, args, output) -> None:
        captured.setdefault("out", output.detach().clone())

    handle = None if capture is None else resolve_layer(model, capture).register_forward_hook(keep)
    try:
        every_pair = lambda logits, first: (torch.arange(len(logits)).repeat_interleave(len(leaf_sets)),  # noqa: E731
                                            torch.arange(len(leaf_sets)).repeat(len(logits)))
        result = method.collect(images, every_pair)
    finally:
        if handle is not None:
            handle.remove()
    activations, gradients = result.activations[0], result.saliency[0]  # N x D x h x w, NK x D x h x w
    weights = gradients.mean((2, 3), keepdim=True)  # Grad-CAM's channel weights, image-major pairs
    maps = (weights * activations[result.pair_image]).sum(1).relu()
    return maps.view(len(images), len(leaf_sets), *maps.shape[1:]).detach(), result.logits, captured.get("out")


def center_gaussian_maps(n: int, size: Sequence[int], sigma: float = 0.25) -> Tensor:
    """N x 1 x H x W copies of a Gaussian centred on the image, ``sigma`` in units of the side."""
    check_positive_int("n", n)
    check_number("sigma", sigma, low=0.0, low_open=True)
    height, width = size
    ys = (torch.arange(height) + 0.5) / height - 0.5
    xs = (torch.arange(width) + 0.5) / width - 0.5
    bump = torch.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma**2))
    return bump.expand(n, 1, height, width).clone()


def full_image_maps(n: int, size: Sequence[int]) -> Tensor:
    """N x 1 x H x W constant maps: every metric treats them as "the whole image"."""
    check_positive_int("n", n)
    return torch.ones(n, 1, *size)


def conductance_ranking(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], n_steps: int = 8,
                        batch_size: int = 1) -> Tensor:
    """A neuron ranking from Captum's ``LayerConductance`` for a concept: D scores.

    Conductance of each channel, summed over positions and averaged over the
    images. Each call takes ``batch_size`` images with all their
    ``n_steps + 1`` path points in one pass, which bounds memory; one image
    a call was also the fastest on a CPU (EfficientNet-Lite0, the demo's
    rankings phase: fewer fresh pages for the kept autograd graph). Captum's
    ``internal_batch_size`` is not used: for conductance's finite
    differences it evaluates each chunk's last point again in the next
    chunk, so two steps a chunk cost 16 points for 9 (1.6-2x the time here,
    equal values).
    """
    check_positive_int("n_steps", n_steps)
    check_positive_int("batch_size", batch_size)
    method = LayerConductance(ConceptScore(model, [leaves]), resolve_layer(model, layer))
    total = None
    with evaluation_mode(model, "conductance_ranking"):
        for start in range(0, len(images), batch_size):
            conductance = method.attribute(images[start : start + batch_size], target=0, n_steps=n_steps)
            summed = conductance.detach().sum(dim=(2, 3)).sum(0)
            total = summed if total is None else total + summed
    return (total / len(images)).cpu()


def gradcam_channel_ranking(model: nn.Module, layer, images: Tensor, leaves: Sequence[int], batch_size: int = 32) -> Tensor:
    """Grad-CAM's channel weights for a concept, averaged over the images: D scores.

    Each image's weight of channel ``d`` is the spatial mean of the concept
    score's gradient at the layer (``alpha_d`` of Grad-CAM, Selvaraju et al.,
    Eq. 1); the ranking is their mean over ``images``, signed as Grad-CAM
    uses them. Gradients from Captum's ``compute_layer_gradients_and_eval``,
    ``batch_size`` images per pass.
    """
    score = ConceptScore(model, [leaves])
    with evaluation_mode(model, "gradcam_channel_ranking"):
        gradient = mean_layer_gradient(score, resolve_layer(model, layer), images, batch_size)
    return gradient.flatten(1).mean(1).cpu()


def tcav_channel_ranking(model: nn.Module, layer, concept_images: Tensor, other_images: Tensor,
                         batch_size: int = 32, seed: int = 0) -> Tensor:
    """TCAV's concept activation vector, summed over each channel's positions: D scores.

    Captum's ``TCAV`` with its default classifier (scikit-learn's linear
    ``SGDClassifier``, a third of the examples held out) separates the
    layer's flattened activations on ``concept_images`` from those on
    ``other_images``; the CAV is its weight vector for the concept (Kim et
    al., ICML 2018, Sec. 3.1). Captum keeps activations and CAVs on disk; a
    temporary folder holds them. ``seed`` fixes the split and the SGD
    (Python's, NumPy's and torch's global generators are restored afterwards).
    """
    import tempfile

    from captum.concept import TCAV, Concept
    from torch.utils.data import DataLoader

    check_positive_int("batch_size", batch_size)
    for argument, images in (("concept_images", concept_images), ("other_images", other_images)):
        if images.dim() != 4 or len(images) < 2:
            raise ValueError(f"{argument}: expected N x C x H x W with N >= 2 (TCAV holds a third out), "
                             f"got shape {tuple(images.shape)}")
    module = resolve_layer(model, layer)
    name = next(n for n, m in model.named_modules() if m is module)
    concept = Concept(0, "concept", DataLoader(concept_images, batch_size=batch_size))
    other = Concept(1, "other", DataLoader(other_images, batch_size=batch_size))
    with tempfile.TemporaryDirectory() as folder, seeded_globals(seed), \
            evaluation_mode(model, "tcav_channel_ranking"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using default classifier for TCAV")
        warnings.filterwarnings("ignore", message="Creating a tensor from a list of numpy")  # inside Captum
        cavs = TCAV(model, [name], save_path=folder).compute_cavs([[concept, other]], force_train=True)
        channels = layer_output(model, module, concept_images[:1]).shape[1]
    weights = cavs["0-1"][name].stats["weights"][0]  # the row of concept id 0
    return weights.view(channels, -1).sum(1).float().cpu()


def netdissect_ranking(model: nn.Module, layer, batches: Iterable, quantile: float = 0.005, resolution: int = 56,
                       sample_cap: int = 200_000, seed: int = 0, device=None, cache_bytes: int = 1 << 30) -> Tensor:
    """NetDissect's IoU of every unit with one or K concepts: D (or D x K) scores (Bau et al., CVPR 2017, Sec. 2.2).

    Each unit's threshold ``T_k`` is the activation exceeded with probability
    ``quantile`` (0.005) over all positions of the data; its mask on an image
    is the activation map, upsampled bilinearly to the masks' grid, above
    ``T_k``; the score is ``Σ|M_k ∩ L_c| / Σ|M_k ∪ L_c|`` summed over the data.

    Two streamed passes over ``batches`` (an iterable of ``(images N x 3 x
    H x W, concept masks N x H x W or N x K x H x W bool)`` that can be
    iterated twice), whatever the number of concepts: the thresholds do not
    depend on the concept. They come from a uniform sample of at most
    ``sample_cap`` positions (seeded), so memory does not grow with the data.
    Masks are compared at ``resolution`` x ``resolution`` (max-pooled GT).
    The first pass keeps the activations for the second while they fit in
    ``cache_bytes`` (1 GiB), so a small data set runs through the model once.
    """
    check_fraction("quantile", quantile, allow_one=False)
    check_positive_int("resolution", resolution)
    check_positive_int("sample_cap", sample_cap)
    check_number("cache_bytes", cache_bytes, low=0)
    module = resolve_layer(model, layer)
    generator = torch.Generator().manual_seed(seed)

    def activations(images: Tensor) -> Tensor:
        return layer_output(model, module, images.to(device) if device is not None else images).float().cpu()

    with evaluation_mode(model, "netdissect_ranking"):
        sample, cache, cached_bytes = None, [], 0
        for images, _ in batches:
            z = activations(images)
            cached_bytes += z.numel() * z.element_size()
            cache = cache if cache is not None and cached_bytes <= cache_bytes else None
            if cache is not None:
                cache.append(z)
            positions = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            # reservoir by random keys: keep the cap rows with the smallest keys seen so far
            keys = torch.rand(len(positions), generator=generator)
            pool = (positions, keys) if sample is None else (torch.cat([sample[0], positions]), torch.cat([sample[1], keys]))
            keep = pool[1].topk(min(sample_cap, len(pool[1])), largest=False).indices
            sample = (pool[0][keep], pool[1][keep])
        if sample is None:
            raise ValueError("batches: no data")
        rank = max(1, math.ceil((1 - quantile) * len(sample[0])))
        thresholds = sample[0].kthvalue(rank, dim=0).values  # D
        intersection = union = single = None
        for index, (images, masks) in enumerate(batches):
            single = masks.dim() == 3
            concepts = F.adaptive_max_pool2d((masks[:, None] if single else masks).float(), resolution) > 0  # N x K x r x r
            z = cache[index] if cache is not None else activations(images)
            z = F.interpolate(z, size=(resolution, resolution), mode="bilinear", align_corners=False)
            unit_masks = (z > thresholds.view(1, -1, 1, 1)).double().transpose(0, 1).flatten(1)  # D x N r r
            concept_masks = concepts.double().transpose(0, 1).flatten(1)  # K x N r r
            # counts of 0/1 products: exact in float64; |M ∪ L| = |M| + |L| - |M ∩ L|
            both = unit_masks @ concept_masks.T  # D x K
            either = unit_masks.sum(1, keepdim=True) + concept_masks.sum(1) - both
            intersection = both if intersection is None else intersection + both
            union = either if union is None else union + either
    scores = (intersection / union.clamp_min(1)).float()
    return scores[:, 0] if single else scores

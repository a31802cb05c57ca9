"""AfI's feature, channel and concept attribution (Sec. 3.1.2, 3.2, 4.2; Eq. 6-9).

* :func:`feature_importance`: ``s' = max(mean_i (f_l(x_i) - f_l(x_i - delta)), 0)`` (Eq. 6-7),
  the layer's shape (C x H x W).
* :func:`channel_importance`: ``w_c = sum_{j in channel c} s'_j / B`` (Eq. 8) with
  ``B = max_c sum_j s'_j``, so the most important channel has ``w = 1`` and every
  ``w_c`` lies in [0, 1].
* :func:`meta_detector`: ``sum_c w_c A_c`` (Eq. 9), N x 1 x H x W maps.
* :func:`gradient_importance`: the TCAV-style baseline, the class logit's gradient
  at the layer averaged over the class's images, negatives zeroed.
* :func:`mmd_unbiased` and :func:`concept_importance`: concepts' importance as the
  unbiased MMD (Gaussian kernel, one median-heuristic bandwidth per layer for
  all concepts) between the meta-detector outputs of a probe set and of a
  benchmark set of irrelevant concepts, summed over layers and normalized to
  sum to 1 over the concepts.
* :func:`distillation_test`: a student MLP (32-16-2) separating class y from
  the rest on the flattened meta-detector outputs; its held-out accuracy.
* :func:`class_impression`: an input maximizing the meta-detector's total
  activation with a total-variation penalty.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..attr._base import LayerSpec, check_image_batch, check_spatial, resolve_layer
from ..attr.activation_propagation import layer_output
from ..attr.gradient import mean_layer_gradient
from ..attr.feature_occlusion import LayerFeatureOcclusion, occlude
from ..core.checks import check_finite, check_fraction, check_number, check_positive_int
from ..core.model_state import evaluation_mode
from .occluder import GlobalFeatureOccluder, class_leaves, concept_logit

__all__ = ["feature_importance", "channel_importance", "meta_detector", "gradient_importance", "mmd_unbiased",
           "concept_importance", "distillation_test", "class_impression"]


def feature_importance(occluder: GlobalFeatureOccluder, images: Tensor, layer: LayerSpec,
                       batch_size: int = 32, attribute_to_layer_input: bool = False) -> Tensor:
    """Eq. 6-7: the mean activation drop under the occluder, negatives zeroed: C x H x W.

    Streams ``images`` ``batch_size`` at a time; equals the mean of the per-image drops.
    Eq. 6 averages over the images the occluder was fitted on:
    ``images[occluder.used_]`` of its fitting images.
    ``attribute_to_layer_input``: the drops of the layer's input, e.g. the
    rectified features of a block whose output is a signed residual sum
    (EfficientNet's ``_blocks.10._project_conv`` reads its block's ReLU6
    features): there a drop means a detector was dimmed.
    """
    check_image_batch(images, "images")
    if not hasattr(occluder, "delta_"):
        raise RuntimeError("occluder: call fit() first")
    method = LayerFeatureOcclusion(occluder.model, layer)
    total = None
    with evaluation_mode(occluder.model, "feature_importance", "images"):
        for start in range(0, len(images), batch_size):
            drops = check_spatial(layer, method.attribute(images[start : start + batch_size], occluder.delta_,
                                                          occluder.valid_range, attribute_to_layer_input),
                                  "feature_importance")
            total = drops.sum(0) if total is None else total + drops.sum(0)
    return (total / len(images)).clamp_min(0)


def channel_importance(scores: Tensor) -> Tensor:
    """Eq. 8: per-channel sums of C x H x W (or C) scores over ``B = max_c sum``; C values in [0, 1]."""
    check_finite("scores", scores)
    if scores.dim() not in (1, 3) or (scores < 0).any():
        raise ValueError("scores: expected non-negative feature importance shaped C x H x W (or C)")
    totals = scores.flatten(1).sum(1) if scores.dim() == 3 else scores
    return totals / totals.max() if totals.max() > 0 else torch.zeros_like(totals)


def meta_detector(model: nn.Module, layer: LayerSpec, weights: Tensor, images: Tensor,
                  attribute_to_layer_input: bool = False) -> Tensor:
    """Eq. 9: ``sum_c w_c A_c`` for a batch, N x 1 x H x W (a pooled layer gives N x 1 x 1 x 1).

    ``attribute_to_layer_input``: ``A`` is the layer's input (as for :func:`feature_importance`).
    """
    check_image_batch(images, "images")
    check_finite("weights", weights)
    module = resolve_layer(model, layer)
    with evaluation_mode(model, "meta_detector", "images"):
        features = layer_output(model, module, images, attribute_to_layer_input)
    if features.shape[1] != weights.numel():
        raise ValueError(f"weights: expected {features.shape[1]} channel weights for this layer, got {weights.numel()}")
    shaped = weights.to(features.device, features.dtype).view(1, -1, *([1] * (features.dim() - 2)))
    combined = (features * shaped).sum(1, keepdim=True)
    return combined.view(len(images), 1, *(combined.shape[2:] or (1, 1)))


def gradient_importance(model: nn.Module, layer: LayerSpec, images: Tensor, y, batch_size: int = 32,
                        attribute_to_layer_input: bool = False) -> Tensor:
    """The gradient baseline (TCAV-style): mean over the images of ``d Z[y] / d f_l``, negatives zeroed.

    ``attribute_to_layer_input``: with respect to the layer's input (as for :func:`feature_importance`).
    """
    check_image_batch(images, "images")
    leaves = class_leaves(y)

    def score(x):
        return concept_logit(model(x), leaves)[:, None]

    with evaluation_mode(model, "gradient_importance", "images"):
        gradient = mean_layer_gradient(score, resolve_layer(model, layer), images, batch_size,
                                       attribute_to_layer_input)
    return gradient.clamp_min(0)


def _bandwidth(x: Tensor, y: Tensor) -> float:
    """The median heuristic: the median pairwise Euclidean distance of the pooled sample."""
    pooled = torch.cat([x, y])
    distances = torch.cdist(pooled, pooled)
    off = distances[~torch.eye(len(pooled), dtype=torch.bool)]
    median = float(off.median()) if off.numel() else 1.0
    return median if median > 0 else 1.0


def mmd_unbiased(x: Tensor, y: Tensor, bandwidth: Optional[float] = None) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012) with ``k(a, b) = exp(-|a - b|^2 / (2 sigma^2))``.

    ``1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j) - 2/(mn) sum k(x_i, y_j)``;
    ``sigma`` defaults to the median heuristic (:func:`_bandwidth`). Can be slightly negative.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: expected m x d and n x d samples, got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"x, y: the unbiased estimator needs at least 2 samples each, got {len(x)} and {len(y)}")
    check_finite("x", x)
    check_finite("y", y)
    x, y = x.double(), y.double()
    sigma = bandwidth if bandwidth is not None else _bandwidth(x, y)
    check_number("bandwidth", sigma, low=0.0, low_open=True)

    def kernel(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * sigma**2))

    m, n = len(x), len(y)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def concept_importance(model: nn.Module, weights: Mapping[str, Tensor], probes: Mapping[str, Tensor],
                       benchmark: Tensor, bandwidth: Optional[float] = None) -> Dict[str, object]:
    """Sec. 3.2: each concept's importance to the class, from its probe images vs a benchmark set.

    Every concept's MMD at a layer uses the same Gaussian bandwidth, so that
    the concepts' MMDs compare: by default the median heuristic over the
    benchmark and all probe sets pooled (a bandwidth per concept would put
    each MMD on its own scale).

    Args:
        weights: layer name -> channel importance ``w`` of that layer (Eq. 8).
        probes: concept name -> images showing the concept (at least 2).
        benchmark: images of irrelevant concepts (the paper's "benchmark ones
            with irrelevant concept tags"): leave the class's own images out.
        bandwidth: the kernel's bandwidth at every layer (default: per layer,
            the median heuristic described above).

    Returns:
        A dict: ``"importance"``, concept -> normalized score (sums to 1);
        ``"mmd"``, concept -> layer -> MMD^2; ``"bandwidth"``, layer -> the
        bandwidth used.
    """
    empty = [name for name, images in probes.items() if len(images) < 2]
    if empty:
        raise ValueError(f"probes: {', '.join(empty)} need at least 2 images each (an empty probe set has no MMD)")
    if len(benchmark) < 2:
        raise ValueError("benchmark: needs at least 2 images")
    if bandwidth is not None:
        check_number("bandwidth", bandwidth, low=0.0, low_open=True)
    reference = {layer: meta_detector(model, layer, w, benchmark).flatten(1) for layer, w in weights.items()}
    outputs = {name: {layer: meta_detector(model, layer, w, images).flatten(1) for layer, w in weights.items()}
               for name, images in probes.items()}
    bandwidths = {layer: float(bandwidth) if bandwidth is not None
                  else _bandwidth(torch.cat([outputs[name][layer] for name in probes]), reference[layer])
                  for layer in weights}
    mmd = {name: {layer: mmd_unbiased(outputs[name][layer], reference[layer], bandwidths[layer]) for layer in weights}
           for name in probes}
    raw = {name: max(sum(values.values()), 0.0) for name, values in mmd.items()}
    total = sum(raw.values())
    importance = {name: (value / total if total > 0 else 0.0) for name, value in raw.items()}
    return {"importance": importance, "mmd": mmd, "bandwidth": bandwidths}


def distillation_test(model: nn.Module, layer: LayerSpec, weights: Tensor, positives: Tensor, negatives: Tensor,
                      hidden: Tuple[int, int] = (32, 16), epochs: int = 200, lr: float = 0.01,
                      holdout: float = 0.3, seed: int = 0, attribute_to_layer_input: bool = False
                      ) -> Dict[str, float]:
    """Sec. 4.2: held-out accuracy of a student MLP (hidden sizes 32, 16; 2 outputs) on meta-detector outputs.

    Positives are images of class y, negatives of other classes; both are split
    (seeded) into training and held-out parts. The student is trained with
    Adam on the standardized, flattened meta-detector outputs (at the
    layer's input with ``attribute_to_layer_input``); its weights come from
    a private generator.

    Returns:
        ``{"accuracy", "n_train", "n_test"}``.
    """
    check_fraction("holdout", holdout, allow_one=False)
    check_positive_int("epochs", epochs)
    for name, images in (("positives", positives), ("negatives", negatives)):
        if isinstance(images, Tensor) and images.dim() == 4 and len(images) < 2:  # every held-out answer right
            raise ValueError(f"{name}: expected at least 2 images (the student learns positives vs negatives), "
                             f"got {len(images)}")
        check_image_batch(images, name)
    features = torch.cat([meta_detector(model, layer, weights, images, attribute_to_layer_input).flatten(1)
                          for images in (positives, negatives)]).float().cpu()
    targets = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).long()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(features), generator=generator)
    n_test = max(1, round(holdout * len(features)))
    test, train = order[:n_test], order[n_test:]
    mean, std = features[train].mean(0), features[train].std(0).clamp_min(1e-6)
    features = (features - mean) / std
    sizes = [features.shape[1], *hidden, 2]
    parameters = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        parameters += [((torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound).requires_grad_(),
                       torch.zeros(fan_out, requires_grad=True)]

    def student(x):
        for i in range(0, len(parameters), 2):
            x = x @ parameters[i].T + parameters[i + 1]
            if i + 2 < len(parameters):
                x = torch.relu(x)
        return x

    optimizer = torch.optim.Adam(parameters, lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        nn.functional.cross_entropy(student(features[train]), targets[train]).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (student(features[test]).argmax(1) == targets[test]).float().mean().item()
    return {"accuracy": accuracy, "n_train": len(train), "n_test": len(test)}


def class_impression(occluder: GlobalFeatureOccluder, layer: LayerSpec, weights: Tensor,
                     shape: Sequence[int] = (3, 224, 224), steps: int = 200, lr: float = 0.05,
                     tv_weight: float = 0.05, seed: int = 0, attribute_to_layer_input: bool = False) -> Tensor:
    """An input maximizing the meta-detector's total activation, with a total-variation penalty.

    Starts from small seeded noise; stays in the model's valid input range.
    ``attribute_to_layer_input``: the meta-detector reads the layer's input
    (as for :func:`feature_importance`).
    Returns 1 x C x H x W (normalized for the model).
    """
    check_positive_int("steps", steps)
    check_number("tv_weight", tv_weight, low=0.0)
    model = occluder.model
    module = resolve_layer(model, layer)
    generator = torch.Generator().manual_seed(seed)
    image = (0.1 * torch.randn(1, *shape, generator=generator)).requires_grad_()
    optimizer = torch.optim.Adam([image], lr=lr)
    shaped = weights.view(1, -1, 1, 1)
    with evaluation_mode(model, "class_impression", "shape"):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for _ in range(steps):
            optimizer.zero_grad()
            valid = occlude(image, torch.zeros(()), occluder.valid_range)
            features = check_spatial(layer, layer_output(model, module, valid, attribute_to_layer_input, grad=True),
                                     "class_impression")
            activation = (features * shaped.to(features.dtype)).sum(1).mean()
            tv = (valid[..., 1:, :] - valid[..., :-1, :]).abs().mean() + (valid[..., 1:] - valid[..., :-1]).abs().mean()
            (-activation + tv_weight * tv).backward()
            optimizer.step()
    return occlude(image.detach(), torch.zeros(()), occluder.valid_range)

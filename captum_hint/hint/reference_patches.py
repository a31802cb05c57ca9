"""Reference patches: the image crops of a data set that activate a neuron most (as NetDissect and CRP show them).

For each chosen neuron (channel) of a layer, the data are streamed once; per
image the neuron's peak position is found, and a bounded top-k (k entries
per neuron, never all activations) keeps the images where that peak is
highest, with a crop of the image around the peak of the layer's
receptive-field size.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..attr._base import check_image_batch, resolve_layer
from ..attr.activation_propagation import layer_output
from ..core.checks import check_fraction, check_positive_int
from ..core.model_state import evaluation_mode
from ..datasets.samples import split_batch

__all__ = ["receptive_field", "top_activating_patches"]


def _spatial_output(model: nn.Module, layer, images: Tensor, grad: bool = False) -> Tensor:
    output = layer_output(model, resolve_layer(model, layer), images, grad=grad)
    if not isinstance(output, Tensor) or output.dim() != 4:
        raise ValueError(f"layer: expected an output N x D x h x w, got {getattr(output, 'shape', type(output))}")
    return output


def receptive_field(model: nn.Module, layer, input_shape: Sequence[int], mass: float = 0.9, device=None) -> int:
    """Side in pixels of the centred square holding ``mass`` of the input gradient of the layer's central position.

    An *effective* receptive field (Luo et al., NeurIPS 2016): one backward
    pass from the centre position (all channels summed) on a zero image; the
    theoretical field is usually much larger and mostly inert.
    """
    check_fraction("mass", mass)
    image = torch.zeros(1, *input_shape, device=device, requires_grad=True)
    with evaluation_mode(model, "receptive_field", "input_shape"), torch.enable_grad():  # callers may be under no_grad
        output = _spatial_output(model, layer, image, grad=True)
        h, w = output.shape[-2:]
        (gradient,) = torch.autograd.grad(output[0, :, h // 2, w // 2].sum(), image)
    weight = gradient[0].abs().sum(0)  # H x W
    height, width = weight.shape
    cy, cx = int((h // 2 + 0.5) * height / h), int((w // 2 + 0.5) * width / w)
    ys, xs = torch.arange(height, device=weight.device), torch.arange(width, device=weight.device)
    chebyshev = torch.maximum((ys[:, None] - cy).abs(), (xs[None] - cx).abs())
    by_radius = torch.zeros(int(chebyshev.max()) + 1, device=weight.device).index_add_(0, chebyshev.flatten(), weight.flatten())
    cumulative = by_radius.cumsum(0) / by_radius.sum().clamp_min(1e-30)
    radius = int((cumulative < mass).sum())
    return min(2 * radius + 1, max(height, width))


def _crops(images: Tensor, rows: Tensor, cols: Tensor, owners: Tensor, size: int) -> Tensor:
    """M x C x size x size crops centred on (rows, cols) pixels of ``images[owners]`` (zero padding)."""
    half = size // 2
    padded = F.pad(images, (half, half, half, half))
    offsets = torch.arange(size, device=images.device)
    r = (rows[:, None] + offsets)[:, None, :, None]
    c = (cols[:, None] + offsets)[:, None, None, :]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[owners[:, None, None, None], channels, r, c]


def top_activating_patches(model: nn.Module, layer, dataloader: Iterable, neurons: Sequence[int], k: int = 6,
                           patch_size: Optional[int] = None, device=None, progress: bool = False) -> Dict[str, Tensor]:
    """The ``k`` images (and crops) where each neuron's peak activation is highest.

    Args:
        model, layer: the network and the layer (module or dotted name).
        dataloader: images, ``(images, labels)`` or sample dicts; streamed once.
        neurons: U channel indices.
        k: entries kept per neuron.
        patch_size: crop side in pixels (default: :func:`receptive_field`).

    Returns:
        A dict with ``"values"``, U x k peak activations (descending);
        ``"image_index"``, U x k positions in the stream; ``"centre"``,
        U x k x 2 pixel (y, x) of the peaks; ``"patches"``, U x k x C x P x P
        crops (input space, zero padded). Fewer than k entries when the data
        hold fewer images.
    """
    check_positive_int("k", k)
    neurons = torch.as_tensor(list(neurons), dtype=torch.long)
    if neurons.numel() == 0:
        raise ValueError("neurons: expected at least one channel index")
    best = None
    seen = 0
    with evaluation_mode(model, "top_activating_patches", "dataloader"), torch.no_grad():
        for batch in tqdm(dataloader, desc="reference patches", disable=not progress):
            images, _ = split_batch(batch)
            check_image_batch(images, "images")
            images = images.to(device) if device is not None else images
            if patch_size is None:
                patch_size = receptive_field(model, layer, tuple(images.shape[1:]), device=images.device)
            output = _spatial_output(model, layer, images)
            if int(neurons.max()) >= output.shape[1] or int(neurons.min()) < 0:
                raise ValueError(f"neurons: expected channel indices in [0, {output.shape[1]}), got {neurons.tolist()}")
            h, w = output.shape[-2:]
            peaks = output[:, neurons.to(output.device)].flatten(2).max(2)  # N x U
            values, where = peaks.values.T.float().cpu(), peaks.indices.T.cpu()  # U x N
            centre = torch.stack([((where // w).float() + 0.5) * images.shape[-2] / h,
                                  ((where % w).float() + 0.5) * images.shape[-1] / w], -1).long()  # U x N x 2
            owners = torch.arange(len(images)).expand_as(values)
            candidate = {"values": values, "image_index": owners + seen, "centre": centre}
            kept = 0 if best is None else best["values"].shape[1]
            if best is not None:  # merge with the kept entries, then keep the top k
                candidate = {key: torch.cat([best[key], candidate[key]], 1) for key in candidate}
            order = candidate["values"].topk(min(k, candidate["values"].shape[1]), dim=1).indices  # U x k'
            chosen = {key: value.gather(1, order.view(*order.shape, *([1] * (value.dim() - 2))).expand(
                *order.shape, *value.shape[2:])) for key, value in candidate.items()}
            # crop only the entries that come from this batch
            fresh = order >= kept
            centres = chosen["centre"][fresh].to(images.device)
            crops = _crops(images, centres[:, 0], centres[:, 1], (chosen["image_index"][fresh] - seen).to(images.device),
                           patch_size).cpu()
            patches = torch.zeros(*order.shape, *crops.shape[1:], dtype=crops.dtype)
            if best is not None:
                old = order.clamp(max=kept - 1)
                patches = best["patches"].gather(1, old.view(*old.shape, 1, 1, 1).expand(*old.shape, *crops.shape[1:]))
            patches[fresh] = crops
            best = {**chosen, "patches": patches}
            seen += len(images)
    if best is None:
        raise ValueError("dataloader: no data")
    return best

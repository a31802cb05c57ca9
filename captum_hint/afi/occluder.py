"""The global feature occluder of Attacking for Interpretability (AfI, CVPR 2020, Sec. 3.1.1, Eq. 4-5).

One input-space perturbation ``delta`` for a whole class y, found with Adam by
minimizing

    1/N sum_i ( Z(x_i - delta)[y] + Z(t(x_i - delta))[y] ) + lambda * mean|delta|

where ``t`` adds uniform noise within +-``noise`` of each channel's input range
and rotates within +-``rotation`` degrees (both batched and drawn from a
private generator), until every constraint of Eq. 4 holds — the model no
longer predicts y on any ``x_i - delta`` nor on ``t(x_i - delta)`` — or
``max_iterations`` is reached. Only images the model classifies as y, also
after one draw of ``t``, are used (Eq. 4's third condition; ``used_`` marks
them, so that feature importance averages over the same images); the others
are counted in ``n_dropped_``.

``y`` is a class index or a concept (a set of leaf classes): "classified as
y" then means a top-1 class among the leaves, and ``Z[y]`` is the concept's
logit ``log sum_{c in y} exp Z_c`` (the class logit for one class).

The valid range: images are normalized as ``(p - mean) / std`` from pixels
``p`` in [0, 1], so channel c's valid values are
``[-mean_c / std_c, (1 - mean_c) / std_c]``; ``x - delta`` is clamped into it.
The l1 term is the mean absolute value of ``delta`` (so lambda does not
depend on the image size).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..attr._base import check_image_batch
from ..attr.feature_occlusion import occlude
from ..core.checks import check_finite, check_number, check_positive_int
from ..core.model_state import evaluation_mode

__all__ = ["GlobalFeatureOccluder", "valid_input_range", "class_leaves"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def valid_input_range(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """Per-channel (low, high) of normalized inputs whose pixels lie in [0, 1]."""
    tensors = {}
    for name, values in (("mean", mean), ("std", std)):
        try:
            tensors[name] = torch.as_tensor(values, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name}: expected one number per channel, got {values!r}") from None
        if tensors[name].dim() != 1 or not len(tensors[name]):
            raise ValueError(f"{name}: expected one number per channel, got {values!r}")
        check_finite(name, tensors[name])
    mean, std = tensors["mean"], tensors["std"]
    if len(mean) != len(std):
        raise ValueError(f"mean, std: expected as many values, got {len(mean)} and {len(std)}")
    if (std <= 0).any():
        raise ValueError(f"std: expected positive values, got {std.tolist()}")
    return -mean / std, (1 - mean) / std


def class_leaves(y: Union[int, set, frozenset]) -> Tensor:
    """The class indices that count as y."""
    if isinstance(y, bool) or not isinstance(y, (int, set, frozenset)):
        raise TypeError(f"y: expected a class index or a concept (set of leaf indices), got {y!r}")
    leaves = sorted(y) if isinstance(y, (set, frozenset)) else [y]
    if not leaves:
        raise ValueError("y: the concept has no leaf class")
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in leaves):
        raise ValueError(f"y: expected class indices >= 0, got {y!r} (a negative index is not read from the end)")
    return torch.tensor(leaves)


def check_leaves_fit(leaves: Tensor, logits: Tensor) -> None:
    """Raise, naming ``y``, unless every class of ``leaves`` is an output of the N x C ``logits``."""
    if int(leaves.max()) >= logits.shape[1]:
        raise ValueError(f"y: class index {int(leaves.max())} is out of range for a model with {logits.shape[1]} "
                         f"outputs (expected 0..{logits.shape[1] - 1})")


def concept_logit(logits: Tensor, leaves: Tensor) -> Tensor:
    """``log sum_{c in leaves} exp logits_c`` (the class logit for a single class)."""
    check_leaves_fit(leaves, logits)
    return torch.logsumexp(logits[:, leaves.to(logits.device)], dim=1)


class GlobalFeatureOccluder:
    """One class-wide input occluder (AfI, Eq. 4-5); see the module docstring.

    Args:
        model: the classifier (run in eval mode; left as it was).
        lam: weight of the l1 term.
        lr: Adam's learning rate.
        max_iterations: at most this many Adam steps.
        noise: ``t``'s uniform noise, as a fraction of each channel's input range (0.04 in the paper).
        rotation: ``t``'s largest rotation in degrees (5 in the paper).
        use_transform: False drops ``t`` (the paper's ablation "AfI without t").
        mean, std: the model's input normalization (for the valid range).
        batch_size: images per forward pass (gradients accumulate over the class).
        seed: seeds every draw of ``t`` (a private generator).
        progress: show a tqdm bar.

    Fitted attributes: ``delta_`` (C x H x W), ``success_rate_`` (share of the used images no longer
    classified as y), ``transform_success_rate_`` (the same after ``t``), ``n_iterations_``,
    ``history_`` (``loss`` and ``success_rate`` per step), ``used_`` (N booleans: the images fitted on),
    ``n_used_``, ``n_dropped_``, ``y_``.
    """

    def __init__(self, model: nn.Module, lam: float = 0.05, lr: float = 0.01, max_iterations: int = 300,
                 noise: float = 0.04, rotation: float = 5.0, use_transform: bool = True,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, batch_size: int = 32,
                 seed: int = 0, progress: bool = True):
        self.model = model
        self.lam = check_number("lam", lam, low=0.0)
        self.lr = check_number("lr", lr, low=0.0, low_open=True)
        self.max_iterations = check_positive_int("max_iterations", max_iterations)
        self.noise = check_number("noise", noise, low=0.0)
        self.rotation = check_number("rotation", rotation, low=0.0)
        self.use_transform = use_transform
        self.valid_range = valid_input_range(mean, std)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed, self.progress = seed, progress

    # ------------------------------------------------------------------ t
    def transform(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """``t``: uniform noise within +-noise of each channel's range, then a rotation within +-rotation."""
        low, high = (v.to(images.device, images.dtype).view(1, -1, 1, 1) for v in self.valid_range)
        draw = torch.rand(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        noisy = images + (2 * draw - 1) * self.noise * (high - low)
        angles = (2 * torch.rand(len(images), generator=generator, dtype=images.dtype) - 1) * math.radians(self.rotation)
        cos, sin = angles.cos(), angles.sin()
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).to(images.device)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        rotated = F.grid_sample(noisy, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return torch.maximum(torch.minimum(rotated, high), low)

    def _device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def _predicted_in(self, images: Tensor, leaves: Tensor) -> Tensor:
        with torch.no_grad():
            logits = [self.model(images[s : s + self.batch_size]) for s in range(0, len(images), self.batch_size)]
        check_leaves_fit(leaves, logits[0])
        predicted = torch.cat([part.argmax(1) for part in logits])
        return torch.isin(predicted, leaves.to(predicted.device))

    # ------------------------------------------------------------------ fit
    def fit(self, images: Tensor, y: Union[int, set, frozenset], labels: Optional[Tensor] = None
            ) -> "GlobalFeatureOccluder":
        """Learn ``delta_`` for the images of class y; returns self.

        Args:
            images: N x C x H x W images of class y (normalized for the model).
            y: the class index or concept.
            labels: optional N labels; every one must be y (or under the concept y).

        Raises:
            ValueError: labels not all of class y, or no image is classified as y (also after t).
        """
        check_image_batch(images, "images")
        leaves = class_leaves(y)
        if len(self.valid_range[0]) != images.shape[1]:
            raise ValueError(f"images, mean, std: the images have {images.shape[1]} channel(s), mean and std "
                             f"{len(self.valid_range[0])}")
        if labels is not None:
            labels = torch.as_tensor(labels).reshape(-1)
            if len(labels) != len(images):
                raise ValueError(f"labels: expected one per image ({len(images)}), got {len(labels)}")
            outside = (~torch.isin(labels.cpu(), leaves)).nonzero().flatten().tolist()
            if len(labels) != len(images) or outside:
                raise ValueError(f"images: not all of class y (labels at positions {outside[:10]} are not y); "
                                 "give only images of the class")
        device = self._device()
        images = images.to(device)
        generator = torch.Generator().manual_seed(self.seed)
        with evaluation_mode(self.model, "GlobalFeatureOccluder", "images"):
            for parameter in self.model.parameters():
                parameter.requires_grad_(False)  # only delta is learned; flags are restored on exit
            keep = self._predicted_in(images, leaves)
            if self.use_transform:
                keep &= self._predicted_in(self.transform(images, generator), leaves)
            used = images[keep]
            self.used_ = keep.cpu()
            self.n_used_, self.n_dropped_, self.y_ = int(keep.sum()), int((~keep).sum()), y
            if self.n_used_ == 0:
                raise ValueError(f"images: none of the {len(images)} images is classified as y"
                                 f"{' (also after t)' if self.use_transform else ''}; the occluder needs some")
            self._optimize(used, leaves, generator)
            self.success_rate_ = float((~self._predicted_in(occlude(used, self.delta_, self.valid_range), leaves))
                                       .float().mean())
            transformed = self.transform(occlude(used, self.delta_, self.valid_range), generator)
            self.transform_success_rate_ = float((~self._predicted_in(transformed, leaves)).float().mean())
        self.delta_ = self.delta_.cpu()
        return self

    def _optimize(self, images: Tensor, leaves: Tensor, generator: torch.Generator) -> None:
        delta = torch.zeros(images.shape[1:], device=images.device, requires_grad=True)
        optimizer = torch.optim.Adam([delta], lr=self.lr)
        history: Dict[str, List[float]] = {"loss": [], "success_rate": []}
        n = len(images)
        bar = tqdm(range(self.max_iterations), desc="AfI occluder", disable=not self.progress, leave=False)
        for step in bar:
            optimizer.zero_grad()
            total, fooled = 0.0, torch.zeros(n, dtype=torch.bool, device=images.device)
            for start in range(0, n, self.batch_size):
                batch = images[start : start + self.batch_size]
                occluded = occlude(batch, delta, self.valid_range)
                views: Tuple[Tensor, ...] = (occluded, self.transform(occluded, generator)) if self.use_transform \
                    else (occluded,)
                loss = 0.0
                hits = torch.ones(len(batch), dtype=torch.bool, device=images.device)
                for view in views:
                    logits = self.model(view)
                    loss = loss + concept_logit(logits, leaves).sum() / n
                    hits &= ~torch.isin(logits.argmax(1), leaves.to(logits.device))
                loss.backward()
                total += loss.detach().item()
                fooled[start : start + len(batch)] = hits
            penalty = self.lam * delta.abs().mean()
            penalty.backward()
            history["loss"].append(total + penalty.detach().item())
            history["success_rate"].append(float(fooled.float().mean()))
            bar.set_postfix(success=history["success_rate"][-1])
            if bool(fooled.all()):  # every constraint of Eq. 4 holds for the current delta
                break
            optimizer.step()
        self.n_iterations_ = step + 1
        self.history_ = history
        self.delta_ = delta.detach()

"""Models whose answer is known: a small classifier with *planted* concept channels.

An auxiliary loss ties channel ``planted_[k]`` of the layer ``concept_relu``
to the mask of concept ``k`` (its pre-activation is trained as a per-position
logit of the downsampled mask); the layer's other channels are free. Two
variants bound what the decision may use: ``"all"`` (the layers above see
every channel) and ``"bottleneck"`` (they see only the planted channels, so
the free ones feed nothing downstream). :func:`check_planted_truth` tests that
the truth holds before anything is scored against it.

::

    planted = train_planted_model(variant="all", seed=0)      # cached after the first run
    planted.model, planted.layer, planted.planted_            # module, "concept_relu", K channel indices
    checks = check_planted_truth(planted, PlantedScenes(96, seed=1000))
"""

from __future__ import annotations

import hashlib
import math
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..concepts.hierarchy import ConceptHierarchy
from ..core.assets import cache_dir
from ..core.checks import check_positive_int
from ..core.model_state import evaluation_mode
from ..core.seeding import seeded_globals
from .stamps import StampScenes, stamp_table

__all__ = ["PLANTED_CLASSES", "PlantedConceptNet", "PlantedModel", "PlantedScenes", "check_planted_truth",
           "planted_hierarchy", "train_planted_model", "VARIANTS"]

#: The planted model's classes: a stamp folder each, with its place in the hierarchy.
PLANTED_CLASSES = {
    "bird": ("animals/birds", "whole/animal/bird"),
    "mammal": ("animals/mammals", "whole/animal/mammal"),
    "fruit": ("food/fruit", "whole/food/fruit"),
    "vehicle": ("vehicles", "whole/artifact/vehicle"),
}
VARIANTS = ("all", "bottleneck")


def planted_hierarchy() -> ConceptHierarchy:
    """whole → animal (bird, mammal), food (fruit), artifact (vehicle); leaves in class order."""
    return ConceptHierarchy.from_paths([path for _, path in PLANTED_CLASSES.values()])


class PlantedScenes(Dataset):
    """Stamp scenes of the planted classes, labelled with the planted model's class indices.

    Every scene draws from all stamps of the classes (no split by stamp):
    the truth to be checked is what the model does on scenes it was not
    trained on, not how far it generalizes to unseen objects. Scenes with
    another ``seed`` are other scenes.

    The samples are those of :class:`StampScenes` (``image``, ``label`` of the
    largest object, ``labels``, ``masks``, ``boxes`` of every object) with the
    labels mapped to :data:`PLANTED_CLASSES` order, plus ``concept_masks``
    (K x S x S, the union of each class's objects) and ``present`` (K bools).
    """

    def __init__(self, n_scenes: int = 512, size: int = 64, objects: Tuple[int, int] = (1, 3), seed: int = 0,
                 scale: Tuple[float, float] = (0.35, 0.65)):
        self.scenes = StampScenes("train", n_scenes, test_fraction=0.0, objects=objects, size=size, seed=seed, scale=scale,
                                  feather=1.5 * size / 224,  # the 224-pixel scenes' edge, scaled
                                  categories=[folder for folder, _ in PLANTED_CLASSES.values()])
        folders = [folder for folder, _ in PLANTED_CLASSES.values()]
        # an ImageNet label of these stamps belongs to exactly one planted class
        self._class_of = {row["label"]: next(k for k, f in enumerate(folders) if row["path"].startswith(f))
                          for row in stamp_table() if row["path"].startswith(tuple(folders))}
        self.n_classes, self.size = len(folders), size

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> Dict:
        sample = self.scenes[index]
        labels = torch.tensor([self._class_of[int(label)] for label in sample["labels"]])
        owner = F.one_hot(labels, self.n_classes).T.float()  # K x objects
        concept_masks = (owner @ sample["masks"].flatten(1).float() > 0).view(self.n_classes, self.size, self.size)
        return {**sample, "label": self._class_of[sample["label"]], "labels": labels,
                "concept_masks": concept_masks, "present": concept_masks.flatten(1).any(1)}


class PlantedConceptNet(nn.Module):
    """A small CNN: ``features`` → ``concept_conv`` → ``concept_relu`` (the explained layer) → ``above`` → ``head``.

    ``above`` (a 3 x 3 convolution and ReLU) keeps the explained layer two
    steps from global average pooling, so its gradients vary over positions.
    In the ``"bottleneck"`` variant ``above`` reads only the ``planted``
    channels.
    """

    def __init__(self, n_classes: int, planted: Sequence[int], width: int = 16, variant: str = "all"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.register_buffer("planted", torch.tensor(list(planted), dtype=torch.long))
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        )
        self.concept_conv = nn.Conv2d(64, width, 3, padding=1)
        self.concept_relu = nn.ReLU()
        n_in = len(planted) if variant == "bottleneck" else width
        self.above = nn.Sequential(nn.Conv2d(n_in, 48, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(48, n_classes)

    def forward_with_concept_logits(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(class logits N x K, the explained layer's pre-activation N x D x h x w)."""
        pre = self.concept_conv(self.features(x))
        h = self.concept_relu(pre)
        if self.variant == "bottleneck":
            h = h[:, self.planted]
        return self.head(self.above(h).mean(dim=(2, 3))), pre

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, N x K."""
        return self.forward_with_concept_logits(x)[0]


@dataclass
class PlantedModel:
    """A planted model and what is known of it."""

    model: nn.Module
    planted_: List[int]  #: the channel of each class, in class order
    hierarchy: ConceptHierarchy
    config: Dict = field(default_factory=dict)
    history_: List[float] = field(default_factory=list)  #: the mean training loss of each epoch
    layer: str = "concept_relu"
    multimodal_: Dict[int, List[str]] = field(default_factory=dict)  #: channel -> the concepts it answers to

    @property
    def concepts(self) -> List[str]:
        """The classes, in class order (each is a concept of :attr:`hierarchy`)."""
        return list(self.hierarchy.leaves)


def _stack(scenes: Sequence[Dict]) -> Tuple[Tensor, Tensor, Tensor]:
    samples = [scenes[i] for i in range(len(scenes))]
    return (torch.stack([s["image"] for s in samples]), torch.stack([s["concept_masks"] for s in samples]),
            torch.stack([s["present"] for s in samples]))


def train_planted_model(variant: str = "all", seed: int = 0, n_scenes: int = 1536, epochs: int = 40,
                        width: int = 16, size: int = 64, aux_weight: float = 1.0, lr: float = 3e-3,
                        batch_size: int = 64, cache: bool = True, progress: bool = False,
                        multimodal: Optional[Sequence[str]] = None) -> PlantedModel:
    """Train (or load from ``$CAPTUM_HINT_CACHE``) a planted model.

    The planted channels are drawn without replacement from the ``width``
    channels with ``seed``; the loss is the multi-label binary cross-entropy
    of the classes plus ``aux_weight`` times that of each planted channel's
    pre-activation against its class's mask, average-pooled to the layer's
    grid. Seeded throughout (torch's global generator is left as it was).

    ``multimodal``, two class names, plants one more channel (the next of
    the seeded draw; the others stay as without it) tied to the union of
    both classes' masks: a planted *multimodal* neuron
    (``PlantedModel.multimodal_``). The bottleneck's head reads it too.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    for name, value in (("n_scenes", n_scenes), ("epochs", epochs), ("width", width), ("size", size),
                        ("batch_size", batch_size)):
        check_positive_int(name, value)
    n_classes = len(PLANTED_CLASSES)
    if width < n_classes:
        raise ValueError(f"width: expected at least one channel per class ({n_classes}), got {width}")
    config = {"variant": variant, "seed": seed, "n_scenes": n_scenes, "epochs": epochs, "width": width, "size": size,
              "aux_weight": aux_weight, "lr": lr, "batch_size": batch_size, "format": 1}
    names = list(PLANTED_CLASSES)
    pair: List[int] = []
    if multimodal is not None:
        if len(multimodal) != 2 or len(set(multimodal)) != 2 or not set(multimodal) <= set(names):
            raise ValueError(f"multimodal: expected two different class names of {names}, got {multimodal!r}")
        if width < n_classes + 1:
            raise ValueError(f"width: a multimodal channel needs at least {n_classes + 1} channels, got {width}")
        config["multimodal"] = list(multimodal)  # only then: models cached without it keep their key
        pair = [names.index(name) for name in multimodal]
    order = torch.randperm(width, generator=torch.Generator().manual_seed(seed)).tolist()
    planted, extra = order[:n_classes], order[n_classes : n_classes + 1] if pair else []
    path = cache_dir() / "planted" / (hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16])
    with seeded_globals(seed):  # the initial weights, without touching the user's global generator
        model = PlantedConceptNet(n_classes, planted + extra, width, variant)
    result = PlantedModel(model, planted, planted_hierarchy(), config,
                          multimodal_={extra[0]: list(multimodal)} if extra else {})
    if cache and (path / "weights.pt").is_file():
        model.load_state_dict(torch.load(path / "weights.pt", weights_only=True))
        result.history_ = json.loads((path / "meta.json").read_text())["history"]
        model.eval()
        return result
    images, masks, present = _stack(PlantedScenes(n_scenes, size=size, seed=seed))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(epochs), desc="planted model", disable=not progress):
        total = 0.0
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            logits, pre = model.forward_with_concept_logits(images[batch])
            targets = masks[batch]
            if extra:  # the multimodal channel's target: either class's objects
                targets = torch.cat([targets, targets[:, pair].any(1, keepdim=True)], 1)
            grid = F.adaptive_avg_pool2d(targets.float(), pre.shape[-2:])
            loss = F.binary_cross_entropy_with_logits(logits, present[batch].float()) + aux_weight * (
                F.binary_cross_entropy_with_logits(pre[:, planted + extra], grid))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        result.history_.append(total / len(images))
    model.eval()
    if cache:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path / "weights.pt")
        (path / "meta.json").write_text(json.dumps({"config": config, "planted": planted, "history": result.history_}))
    return result


def _ablated_logits(model: nn.Module, layer: nn.Module, images: Tensor, channels: Optional[Tensor]) -> Tensor:
    """Logits with each of ``channels`` zeroed at ``layer`` in turn: (C or 1) x N x K, in one batched pass."""
    n = len(images)
    with torch.no_grad():
        if channels is None:
            return model(images)[None]

        def zero_one_channel_per_copy(module, inputs, output):
            copies = output.view(len(channels), n, *output.shape[1:]).clone()
            copies[torch.arange(len(channels)), :, channels] = 0
            return copies.view_as(output)

        handle = layer.register_forward_hook(zero_one_channel_per_copy)
        try:
            return model(images.repeat(len(channels), 1, 1, 1)).view(len(channels), n, -1)
        finally:
            handle.remove()


def check_planted_truth(planted: PlantedModel, scenes: Sequence[Dict], min_auc: float = 0.8, min_pxap: float = 0.5,
                        min_ablation_ratio: float = 2.0) -> Dict:
    """Does the planted truth hold on held-out ``scenes``? A model failing it must not be used to score anything.

    ``scenes``: a :class:`PlantedScenes` or a list of its samples.

    For each class ``k``: the planted channel's map (its pre-activation's
    sigmoid, upsampled) against the class's masks on the scenes that hold it
    (PxAP and the IoU of the map above 1/2), the head's ROC-AUC, and the
    causal check: the mean drop of logit ``k`` over those scenes when the
    planted channel is zeroed, against the largest drop from zeroing any
    free channel (``ablation_ratio``; the free channels of the bottleneck
    variant feed nothing, so their drops are 0 and the ratio infinite).
    A planted multimodal channel (not free) is checked against the union of
    its classes' masks on the scenes holding either (PxAP, IoU).

    Returns:
        A dict: ``classes`` (name → its figures and ``holds``), ``multimodal``
        (channel → ``concepts``, ``mask_pxap``, ``mask_iou``, ``holds``),
        ``passed`` (True when the truth holds for every class and multimodal
        channel), ``failures`` (the reasons) and ``images`` (N).
    """
    from sklearn.metrics import roc_auc_score

    model, planted_ = planted.model, planted.planted_
    images, masks, present = _stack(scenes)
    layer = model.concept_relu
    width = model.concept_conv.out_channels
    with evaluation_mode(model, "check_planted_truth"), torch.no_grad():
        logits, pre = model.forward_with_concept_logits(images)
        ablated = _ablated_logits(model, layer, images, torch.arange(width))  # D x N x K
        maps = torch.sigmoid(F.interpolate(pre[:, planted_], size=masks.shape[-2:], mode="bilinear",
                                           align_corners=False))
    drops = logits[None] - ablated  # D x N x K: positive where zeroing the channel lowers the logit
    free = [c for c in range(width) if c not in planted_ and c not in planted.multimodal_]
    classes, failures = {}, []
    for k, name in enumerate(planted.concepts):
        holds = present[:, k]
        if holds.sum() == 0 or (~holds).sum() == 0:
            raise ValueError(f"scenes: class {name!r} needs scenes with and without it, got {int(holds.sum())} "
                             f"of {len(holds)} holding it")
        mask_scores = _mask_agreement(masks[holds, k], maps[holds, k])
        planted_drop = float(drops[planted_[k], holds, k].mean())
        free_drop = float(drops[free][:, holds, k].mean(1).max()) if free else 0.0
        entry = {
            "channel": planted_[k],
            **mask_scores,
            "roc_auc": float(roc_auc_score(holds.numpy(), logits[:, k].numpy())),
            "ablation_drop": planted_drop,
            "largest_free_drop": free_drop,
            # with no free channel that matters, the planted one passes if it matters at all
            "ablation_ratio": planted_drop / free_drop if free_drop > 0 else (math.inf if planted_drop > 0 else 0.0),
        }
        missed = [f"{name}: {key} {entry[key]:.3f} < {low}" for key, low in
                  (("roc_auc", min_auc), ("mask_pxap", min_pxap), ("ablation_ratio", min_ablation_ratio))
                  if not entry[key] >= low]
        classes[name] = {**entry, "holds": not missed}
        failures += missed
    multimodal = {}
    for channel, names in planted.multimodal_.items():
        pair = [planted.concepts.index(name) for name in names]
        either = present[:, pair].any(1)
        channel_map = torch.sigmoid(F.interpolate(pre[either, channel : channel + 1], size=masks.shape[-2:],
                                                  mode="bilinear", align_corners=False))[:, 0]
        entry = _mask_agreement(masks[either][:, pair].any(1), channel_map)
        multimodal[channel] = {"concepts": list(names), **entry, "holds": entry["mask_pxap"] >= min_pxap}
        if not multimodal[channel]["holds"]:
            failures.append(f"multimodal channel {channel}: mask_pxap {entry['mask_pxap']:.3f} < {min_pxap}")
    return {"classes": classes, "multimodal": multimodal, "passed": not failures, "failures": failures,
            "images": len(images)}


def _mask_agreement(masks: Tensor, maps: Tensor) -> Dict[str, float]:
    """PxAP of ``maps`` (N x H x W in [0, 1]) against ``masks``, and the IoU of the maps above 1/2."""
    from sklearn.metrics import average_precision_score

    truth, scores = masks.flatten(), maps.flatten()
    predicted = scores > 0.5
    return {"mask_pxap": float(average_precision_score(truth.numpy(), scores.numpy())),
            "mask_iou": float((predicted & truth).sum() / (predicted | truth).sum().clamp_min(1))}

"""The sample structure every data set of captum_hint yields, and its collate function.

Each sample is a dict:

* ``image``: 3 x S x S float tensor, normalized for the model;
* ``label``: the image's ImageNet-1k class index (its main object), or -1;
* ``boxes``: K x 4 float ``(x1, y1, x2, y2)`` in pixels of the S x S image;
* ``masks``: K x S x S bool object masks (all False where the format has none);
* ``labels``: K ImageNet-1k class indices of the objects.

:func:`collate_samples` batches them for a ``DataLoader`` (images and labels
stacked, the rest as lists).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["MEAN", "STD", "collate_samples", "object_classes", "split_batch", "to_input", "scaled_boxes"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_input(pixels: np.ndarray, size: int, mean=MEAN, std=STD) -> Tensor:
    """H x W x 3 uint8 -> normalized 3 x size x size."""
    image = Image.fromarray(pixels).convert("RGB").resize((size, size), Image.BILINEAR)
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    return (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def scaled_boxes(boxes: Sequence[Sequence[float]], width: int, height: int, size: int) -> Tensor:
    boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
    return boxes * torch.tensor([size / width, size / height, size / width, size / height])


def collate_samples(samples: List[Dict]) -> Dict:
    """Batch samples: ``image`` N x 3 x S x S and ``label`` N stacked; the rest as lists."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.tensor([s["label"] for s in samples]),
        "boxes": [s["boxes"] for s in samples],
        "masks": [s["masks"] for s in samples],
        "labels": [s["labels"] for s in samples],
    }



def split_batch(batch) -> Tuple[Tensor, Optional[Tensor]]:
    """(images, labels or None) from a tensor, an (images, labels, ...) tuple or a sample dict batch."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, dict):
        return batch["image"], batch.get("label")
    if isinstance(batch, (list, tuple)):
        return batch[0], batch[1] if len(batch) > 1 else None
    raise TypeError(f"dataloader: expected batches of images, (images, labels) or dicts, got {type(batch).__name__}")


def object_classes(batch, num_classes: int) -> Tensor:
    """N x ``num_classes`` booleans: the classes of every object of each image of a :func:`collate_samples` batch.

    The several-leaves-per-image labels of a scene with objects of several
    classes (its ``labels`` field), where ``label`` names one object only.
    """
    if not isinstance(batch, dict) or not isinstance(batch.get("labels"), (list, tuple)):
        raise ValueError("labels: 'objects' reads each image's object classes from dict batches with a 'labels' list "
                         f"(collate_samples); got {type(batch).__name__} batches")
    parts = [torch.as_tensor(labels, dtype=torch.long).view(-1) for labels in batch["labels"]]
    classes = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    if classes.numel() and (classes.min() < 0 or classes.max() >= num_classes):
        bad = classes[(classes < 0) | (classes >= num_classes)][0].item()
        raise ValueError(f"labels: object class {bad} is out of range (expected 0..{num_classes - 1})")
    image = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor([len(p) for p in parts], dtype=torch.long))
    indicator = torch.zeros(len(parts), num_classes, dtype=torch.bool)
    indicator[image, classes] = True
    return indicator

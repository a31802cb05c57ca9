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

__all__ = ["MEAN", "STD", "collate_samples", "split_batch", "to_input", "scaled_boxes"]

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

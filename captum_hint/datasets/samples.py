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

import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = ["MEAN", "STD", "collate_samples", "concept_cells", "object_classes", "read_image", "split_batch",
           "to_input", "scaled_boxes"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def read_image(path: Union[str, Path], name: str = "image", mode: Optional[str] = "RGB", size: Optional[int] = None
               ) -> np.ndarray:
    """The image file at ``path`` as pixels: H x W x 3 uint8 (``mode="RGB"``), or the file's own values
    (``mode=None``: e.g. a palette PNG's class indices), resized to ``size`` x ``size`` (nearest) if given.

    Raises:
        ValueError: naming ``name`` and the file, for anything PIL cannot
            decode whole: no image, an empty, corrupt or truncated file, or
            more pixels than PIL's decompression-bomb limit
            (``PIL.Image.MAX_IMAGE_PIXELS``; its warning zone is refused too:
            such an image would take gigabytes once decoded).
        FileNotFoundError, IsADirectoryError, PermissionError: as ``open`` raises them.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image = image.convert(mode) if mode is not None else image
                return np.array(image if size is None else image.resize((size, size), Image.NEAREST))
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # PIL signals undecodable data with OSError (also UnidentifiedImageError), SyntaxError or ValueError
        reason = str(error).split(", could be decompression bomb")[0].replace(f"{path!s}", "").strip(" '")
        raise ValueError(f"{name}: cannot read {path} as an image ({type(error).__name__}: {reason})") from None


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
    """(images, labels or None) from a tensor, an (images, labels, ...) tuple or a sample dict batch.

    Raises:
        ValueError: the batch has another number of labels than of images.
    """
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, dict):
        images, labels = batch["image"], batch.get("label")
    elif isinstance(batch, (list, tuple)) and batch:
        images, labels = batch[0], batch[1] if len(batch) > 1 else None
    else:
        raise TypeError(f"dataloader: expected batches of images, (images, labels) or dicts, got "
                        f"{type(batch).__name__}")
    try:
        counts = (len(images), len(labels)) if labels is not None else None
    except TypeError:  # not sized (a 0-d tensor, say): the image and label checks that follow say what is wrong
        counts = None
    if counts is not None and counts[0] != counts[1]:
        raise ValueError(f"dataloader: a batch has {counts[0]} images and {counts[1]} labels")
    return images, labels


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


def concept_cells(batch, membership: Tensor, size: Tuple[int, int]) -> Tensor:
    """N x K x h x w booleans: the cells of an h x w grid that hold a pixel of an object under concept k.

    Args:
        batch: a :func:`collate_samples` batch (its ``masks`` and ``labels`` lists).
        membership: K x C booleans, concept k's leaves (``ConceptHierarchy.membership``).
        size: the grid (a layer's ``(h, w)``); a cell counts when any pixel of the object falls in it.
    """
    if not isinstance(batch, dict) or not isinstance(batch.get("masks"), (list, tuple)):
        raise ValueError("batch: the object cells (HINT's regions='saliency_on_objects') need dict batches with "
                         f"'masks' and 'labels' lists (collate_samples); got {type(batch).__name__} batches")
    labels = [torch.as_tensor(labels, dtype=torch.long).view(-1) for labels in batch["labels"]]
    if any(len(masks) != len(parts) for masks, parts in zip(batch["masks"], labels)):
        raise ValueError("batch: every image needs one mask per object label")
    n, k = len(labels), membership.shape[0]
    cells = torch.zeros(n, k, *size)
    if sum(len(parts) for parts in labels):
        masks = torch.cat([torch.as_tensor(m).view(-1, *m.shape[-2:]) for m in batch["masks"]]).float()
        pooled = torch.nn.functional.adaptive_max_pool2d(masks[:, None], size)[:, 0]  # objects x h x w
        under = membership[:, torch.cat(labels)].T.float()  # objects x K
        image = torch.repeat_interleave(torch.arange(n), torch.tensor([len(p) for p in labels]))
        cells.index_add_(0, image, under[:, :, None, None] * pooled[:, None])
    return cells > 0

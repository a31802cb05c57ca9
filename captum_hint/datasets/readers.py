"""Readers of real data sets in their own on-disk formats: ImageNet validation
boxes, CUB-200-2011, PASCAL VOC2007, and ImageNet-style wnid folders.

Objects that are not ImageNet classes (CUB's birds, VOC's classes) get the
first ImageNet class under the nearest concept of the ImageNet hierarchy that
covers them, so every concept at or above that one is exact.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..concepts.hierarchy import ConceptHierarchy
from .samples import MEAN, STD, read_image, scaled_boxes, to_input

__all__ = ["ImageNetBoxes", "CUB200", "VOC2007", "WnidImageFolder", "VOC_CONCEPTS", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

#: PASCAL VOC class -> the concept of the ImageNet hierarchy that covers it.
VOC_CONCEPTS = {
    "aeroplane": "airplane.n.01", "bicycle": "bicycle.n.01", "bird": "bird.n.01", "boat": "boat.n.01",
    "bottle": "bottle.n.01", "bus": "bus.n.01", "car": "car.n.01", "cat": "domestic_cat.n.01",
    "chair": "chair.n.01", "cow": "cattle.n.01", "diningtable": "dining_table.n.01", "dog": "dog.n.01",
    "horse": "horse.n.01", "motorbike": "motor_scooter.n.01", "person": "person.n.01", "pottedplant": "pot.n.04",
    "sheep": "sheep.n.01", "sofa": "studio_couch.n.01", "train": "train.n.01", "tvmonitor": "television.n.02",
}


def _voc_objects(xml_path: Path) -> Tuple[List[str], List[List[float]]]:
    root = ElementTree.parse(xml_path).getroot()
    names, boxes = [], []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        names.append(obj.findtext("name").strip())
        # VOC-style coordinates are 1-based and inclusive
        boxes.append([float(box.findtext(k)) - 1 for k in ("xmin", "ymin", "xmax", "ymax")])
    return names, boxes


class _ImageSamples(Dataset):
    """Shared reading and resizing for the real-format loaders."""

    def __init__(self, size: int, mean, std):
        self.size, self.mean, self.std = size, mean, std

    def _sample(self, image_path: Path, label: int, boxes, labels: Sequence[int], masks: Optional[Tensor] = None):
        pixels = read_image(image_path)
        height, width = pixels.shape[:2]
        if masks is None:
            masks = torch.zeros(len(labels), self.size, self.size, dtype=torch.bool)
        return {
            "image": to_input(pixels, self.size, self.mean, self.std),
            "label": int(label),
            "boxes": scaled_boxes(boxes, width, height, self.size),
            "masks": masks,
            "labels": torch.tensor(list(labels), dtype=torch.long),
        }

    def _resized_mask(self, path: Path, keep) -> Tensor:
        return keep(read_image(path, "mask", mode=None, size=self.size))


class ImageNetBoxes(_ImageSamples):
    """ImageNet images with their PASCAL-style XML box files (the ILSVRC val layout).

    ``root`` holds ``NAME.JPEG`` files with ``NAME.xml`` beside them (or in
    ``annotations``); each ``<object><name>`` is a wnid.
    """

    def __init__(self, root, wnids: Sequence[str], annotations=None, size: int = 224, mean=MEAN, std=STD):
        super().__init__(size, mean, std)
        self.root = Path(root)
        self.annotations = Path(annotations) if annotations is not None else self.root
        self.index = {w: i for i, w in enumerate(wnids)}
        self.images = sorted(p for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise ValueError(f"root: no images in {self.root}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict:
        path = self.images[index]
        names, boxes = _voc_objects(self.annotations / f"{path.stem}.xml")
        unknown = [n for n in names if n not in self.index]
        if unknown:
            raise ValueError(f"{path.stem}.xml: wnids {unknown} are not classes of the model")
        labels = [self.index[n] for n in names]
        return self._sample(path, labels[0], boxes, labels)


class CUB200(_ImageSamples):
    """CUB-200-2011 from its own files: ``images.txt``, ``bounding_boxes.txt``,
    ``train_test_split.txt`` and ``segmentations/`` (PNG, object > 127).

    Args:
        root: the folder holding ``CUB_200_2011/`` and ``segmentations/``.
        split: ``"train"``, ``"test"`` or ``"all"``.
    Every bird gets the ImageNet class under ``bird.n.01`` chosen by the
    hierarchy (the concept ``bird`` and those above it are exact).
    """

    def __init__(self, root, split: str = "test", hierarchy: Optional[ConceptHierarchy] = None,
                 size: int = 224, mean=MEAN, std=STD):
        super().__init__(size, mean, std)
        base = Path(root) / "CUB_200_2011"
        self.images_dir, self.segmentations = base / "images", Path(root) / "segmentations"
        paths = dict(line.split() for line in (base / "images.txt").read_text().splitlines() if line.strip())
        boxes = {i: [float(v) for v in rest] for i, *rest in
                 (line.split() for line in (base / "bounding_boxes.txt").read_text().splitlines() if line.strip())}
        is_train = dict(line.split() for line in (base / "train_test_split.txt").read_text().splitlines() if line.strip())
        if split not in ("train", "test", "all"):
            raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
        keep = {"train": "1", "test": "0"}.get(split)
        self.items = [(paths[i], boxes[i]) for i in sorted(paths, key=int) if keep is None or is_train[i] == keep]
        if not self.items:
            raise ValueError(f"root: {base / 'images.txt'} lists no {split} images")
        self.label = (hierarchy or ConceptHierarchy.imagenet()).leaves_under("bird.n.01")[0]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict:
        relative, (x, y, w, h) = self.items[index]
        segmentation = self.segmentations / Path(relative).with_suffix(".png")
        mask = self._resized_mask(segmentation, lambda a: torch.from_numpy((a[..., 0] if a.ndim == 3 else a) > 127))
        return self._sample(self.images_dir / relative, self.label, [[x, y, x + w, y + h]], [self.label], mask[None])


class VOC2007(_ImageSamples):
    """PASCAL VOC 2007 from ``Annotations/*.xml``, ``JPEGImages/`` and ``SegmentationClass/``.

    Args:
        root: the ``VOC2007`` folder.
        image_set: a file of ``ImageSets/Main`` or ``ImageSets/Segmentation``
            (e.g. ``"Segmentation/val"``); default every annotation.
    Masks come from ``SegmentationClass`` (palette indices: class i + 1) when
    the image has one, per class (objects of one class share its mask).
    """

    CLASSES = tuple(sorted(VOC_CONCEPTS))

    def __init__(self, root, image_set: Optional[str] = None, hierarchy: Optional[ConceptHierarchy] = None,
                 size: int = 224, mean=MEAN, std=STD):
        super().__init__(size, mean, std)
        self.root = Path(root)
        if image_set is not None:
            ids = (self.root / "ImageSets" / f"{image_set}.txt").read_text().split()
        else:
            ids = sorted(p.stem for p in (self.root / "Annotations").glob("*.xml"))
        if not ids:
            raise ValueError(f"root: no images in {self.root} (expected Annotations/*.xml"
                             f"{' listed in ImageSets/' + image_set + '.txt' if image_set else ''})")
        self.ids = ids
        hierarchy = hierarchy or ConceptHierarchy.imagenet()
        self.class_label = {name: hierarchy.leaves_under(concept)[0] for name, concept in VOC_CONCEPTS.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Dict:
        name = self.ids[index]
        names, boxes = _voc_objects(self.root / "Annotations" / f"{name}.xml")
        labels = [self.class_label[n] for n in names]
        segmentation = self.root / "SegmentationClass" / f"{name}.png"
        masks = None
        if segmentation.exists():
            classes = self._resized_mask(segmentation, torch.from_numpy)
            masks = torch.stack([classes == self.CLASSES.index(n) + 1 for n in names])
        return self._sample(self.root / "JPEGImages" / f"{name}.jpg", labels[0], boxes, labels, masks)


class WnidImageFolder(_ImageSamples):
    """An ImageNet-style folder: one sub-folder per wnid holding its images (no boxes)."""

    def __init__(self, root, wnids: Sequence[str], size: int = 224, mean=MEAN, std=STD):
        super().__init__(size, mean, std)
        index = {w: i for i, w in enumerate(wnids)}
        root = Path(root)
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        unknown = [p.name for p in folders if p.name not in index]
        if unknown:
            raise ValueError(f"data: sub-folders {unknown[:5]} are not wnids of the model's classes")
        self.items = [(f, index[d.name]) for d in folders for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.items:
            raise ValueError(f"data: no images under {root}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict:
        path, label = self.items[index]
        return self._sample(path, label, [], [])

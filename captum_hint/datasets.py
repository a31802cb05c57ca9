"""Data sets for HINT and weakly supervised localization, one sample structure for all.

Each sample is a dict:

* ``image``: 3 x S x S float tensor, normalized for the model;
* ``label``: the image's ImageNet-1k class index (its main object), or -1;
* ``boxes``: K x 4 float ``(x1, y1, x2, y2)`` in pixels of the S x S image;
* ``masks``: K x S x S bool object masks (all False where the format has none);
* ``labels``: K ImageNet-1k class indices of the objects.

:func:`collate_samples` batches them for a ``DataLoader`` (images and labels
stacked, the rest as lists). Objects that are not ImageNet classes (CUB's
birds, VOC's classes, most stamps) get the first ImageNet class under the
nearest concept of the ImageNet hierarchy that covers them, so every concept at
or above that one is exact.

* :class:`StampScenes`: real photographs (Debian's ``tuxpaint-stamps-default``,
  alpha-cut) pasted on real background photos: exact masks and boxes.
* :class:`ImageNetBoxes`, :class:`CUB200`, :class:`VOC2007`: readers of those
  data sets' own on-disk formats.
* :class:`WnidImageFolder`: an ImageNet-style folder of wnid sub-folders.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .boxes import masks_to_boxes
from .debian import cache_dir, download_and_unpack
from .hierarchy import ConceptHierarchy

__all__ = [
    "StampScenes",
    "ImageNetBoxes",
    "CUB200",
    "VOC2007",
    "WnidImageFolder",
    "collate_samples",
    "fetch_stamps",
    "stamp_table",
    "VOC_CONCEPTS",
]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
STAMP_PACKAGE = "tuxpaint-stamps-default"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

#: PASCAL VOC class -> the concept of the ImageNet hierarchy that covers it.
VOC_CONCEPTS = {
    "aeroplane": "airplane.n.01", "bicycle": "bicycle.n.01", "bird": "bird.n.01", "boat": "boat.n.01",
    "bottle": "bottle.n.01", "bus": "bus.n.01", "car": "car.n.01", "cat": "domestic_cat.n.01",
    "chair": "chair.n.01", "cow": "cattle.n.01", "diningtable": "dining_table.n.01", "dog": "dog.n.01",
    "horse": "horse.n.01", "motorbike": "motor_scooter.n.01", "person": "person.n.01", "pottedplant": "pot.n.04",
    "sheep": "sheep.n.01", "sofa": "studio_couch.n.01", "train": "train.n.01", "tvmonitor": "television.n.02",
}


def _to_input(pixels: np.ndarray, size: int, mean=MEAN, std=STD) -> Tensor:
    """H x W x 3 uint8 -> normalized 3 x size x size."""
    image = Image.fromarray(pixels).convert("RGB").resize((size, size), Image.BILINEAR)
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    return (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _scaled_boxes(boxes: Sequence[Sequence[float]], width: int, height: int, size: int) -> Tensor:
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


# ---------------------------------------------------------------------- stamps
def stamp_table() -> List[Dict]:
    """The curated stamps: path, WordNet synset, the covering ImageNet concept, class label."""
    text = resources.files("captum_hint").joinpath("data", "stamps.json").read_text(encoding="utf-8")
    return json.loads(text)


def fetch_stamps(root: Optional[Path] = None) -> Path:
    """The curated stamp photos, fetched from Debian once and cached.

    Only the curated PNGs are kept (a few MB of the 161 MB package).
    """
    root = Path(root) if root is not None else cache_dir() / "tuxpaint-stamps"
    paths = [row["path"] for row in stamp_table()]
    if all((root / p).is_file() for p in paths):
        return root
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = download_and_unpack([STAMP_PACKAGE], Path(tmp))
        source = unpacked / "usr" / "share" / "tuxpaint" / "stamps"
        for p in paths:
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / p, root / p)
    return root


def _backgrounds() -> List[np.ndarray]:
    """Real background photos bundled with scikit-image and scikit-learn."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    pictures = [data.grass(), data.gravel(), data.brick()] + list(load_sample_images().images)
    return [np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3] for p in pictures]


class StampScenes(Dataset):
    """Scenes of real cut-out photographs on real backgrounds, with exact masks.

    Each scene pastes ``objects`` (1 to 3 by default) stamps at random scale
    and position onto a random crop of a background photo (stamps drawn so
    that each top-level category, such as animals or vehicles, is equally likely); later stamps
    occlude earlier ones and the masks account for it. The ``label`` is the
    largest visible object's class. Deterministic for ``seed``; the split is
    by stamp (``split_seed``), so no stamp appears in both ``train`` and ``test``.

    Args:
        split: ``"train"`` or ``"test"``.
        n_scenes: number of scenes.
        objects: ``(min, max)`` stamps per scene.
        size: image side S.
        categories: keep stamps whose path starts with one of these
            (e.g. ``("animals/mammals", "vehicles")``); default all.
        test_fraction: share of each category's stamps in the test split.
        root: stamp folder (default: fetched with :func:`fetch_stamps`).
        mean, std: input normalization.
    """

    def __init__(self, split: str = "train", n_scenes: int = 100, objects: Tuple[int, int] = (1, 3),
                 size: int = 224, seed: int = 0, split_seed: int = 0, categories: Optional[Sequence[str]] = None,
                 test_fraction: float = 0.3, root: Optional[Path] = None, mean=MEAN, std=STD):
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"objects: expected (min, max) with 1 <= min <= max, got {objects}")
        self.split, self.n_scenes, self.objects, self.size = split, n_scenes, objects, size
        self.seed, self.mean, self.std = seed, mean, std
        self.root = fetch_stamps(root)
        rows = [r for r in stamp_table() if categories is None or r["path"].startswith(tuple(categories))]
        if not rows:
            raise ValueError(f"categories: no stamp matches {categories}")
        self.stamps = self._split(rows, split, split_seed, test_fraction)
        # Each top-level category (animals, vehicles, ...) is drawn equally often.
        top = [r["path"].split("/")[0] for r in self.stamps]
        self._weights = np.array([1.0 / top.count(t) for t in top]) / len(set(top))
        self._cutouts: Dict[str, Image.Image] = {}
        self._backgrounds = _backgrounds()

    @staticmethod
    def _split(rows, split, split_seed, test_fraction):
        groups: Dict[str, List[Dict]] = {}
        for row in rows:
            groups.setdefault("/".join(row["path"].split("/")[:2]), []).append(row)
        chosen = []
        rng = np.random.default_rng(split_seed)
        for key in sorted(groups):
            group = groups[key]
            order = rng.permutation(len(group))
            n_test = int(round(test_fraction * len(group))) if len(group) > 1 else 0
            picked = order[:n_test] if split == "test" else order[n_test:]
            chosen += [group[i] for i in sorted(picked)]
        return chosen

    def __len__(self) -> int:
        return self.n_scenes

    def _cutout(self, path: str) -> Image.Image:
        if path not in self._cutouts:
            self._cutouts[path] = Image.open(self.root / path).convert("RGBA")
        return self._cutouts[path]

    def __getitem__(self, index: int) -> Dict:
        if not 0 <= index < self.n_scenes:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index, self.split == "test"])
        size = self.size
        background = self._backgrounds[rng.integers(len(self._backgrounds))]
        side = int(min(background.shape[:2]) * rng.uniform(0.5, 1.0))
        top = rng.integers(background.shape[0] - side + 1)
        left = rng.integers(background.shape[1] - side + 1)
        canvas = Image.fromarray(background[top : top + side, left : left + side]).resize((size, size)).convert("RGBA")
        n_objects = int(rng.integers(self.objects[0], self.objects[1] + 1))
        picks = rng.choice(len(self.stamps), size=min(n_objects, len(self.stamps)), replace=False, p=self._weights)
        masks, labels = [], []
        for pick in picks:
            stamp = self._cutout(self.stamps[pick]["path"])
            longest = size * rng.uniform(0.35, 0.65) * (0.8 if n_objects > 1 else 1.0)
            scale = longest / max(stamp.size)
            cutout = stamp.resize((max(1, round(stamp.width * scale)), max(1, round(stamp.height * scale))), Image.BILINEAR)
            x = int(rng.integers(0, size - cutout.width + 1))
            y = int(rng.integers(0, size - cutout.height + 1))
            layer = Image.new("RGBA", (size, size))
            layer.paste(cutout, (x, y))
            canvas = Image.alpha_composite(canvas, layer)
            mask = torch.from_numpy(np.array(layer.split()[3]) > 127)
            masks = [m & ~mask for m in masks] + [mask]
            labels.append(self.stamps[pick]["label"])
        visible = [i for i, m in enumerate(masks) if m.any()]
        masks = torch.stack([masks[i] for i in visible])
        labels = torch.tensor([labels[i] for i in visible])
        pixels = np.array(canvas.convert("RGB"))
        return {
            "image": _to_input(pixels, size, self.mean, self.std),
            "label": int(labels[masks.flatten(1).sum(1).argmax()]),
            "boxes": masks_to_boxes(masks),
            "masks": masks,
            "labels": labels,
        }


# ---------------------------------------------------------------------- real formats
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
        pixels = np.array(Image.open(image_path).convert("RGB"))
        height, width = pixels.shape[:2]
        if masks is None:
            masks = torch.zeros(len(labels), self.size, self.size, dtype=torch.bool)
        return {
            "image": _to_input(pixels, self.size, self.mean, self.std),
            "label": int(label),
            "boxes": _scaled_boxes(boxes, width, height, self.size),
            "masks": masks,
            "labels": torch.tensor(list(labels), dtype=torch.long),
        }

    def _resized_mask(self, path: Path, keep) -> Tensor:
        mask = Image.open(path)
        mask = mask.resize((self.size, self.size), Image.NEAREST)
        return keep(np.array(mask))


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

"""Stamp scenes: real cut-out photographs (Debian's ``tuxpaint-stamps-default``)
pasted on real background photos, with exact masks and boxes.

Stamps whose synset is not an ImageNet class get the first ImageNet class
under the nearest concept of the ImageNet hierarchy that covers them, so
every concept at or above that one is exact.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..core.assets import cache_dir, download_and_unpack
from ..core.boxes import masks_to_boxes
from .samples import MEAN, STD, to_input

__all__ = ["StampScenes", "fetch_stamps", "stamp_table"]

STAMP_PACKAGE = "tuxpaint-stamps-default"


def stamp_table() -> List[Dict]:
    """The curated stamps: path, WordNet synset, the covering ImageNet concept, class label."""
    text = resources.files(__package__).joinpath("stamps.json").read_text(encoding="utf-8")
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
            "image": to_input(pixels, size, self.mean, self.std),
            "label": int(labels[masks.flatten(1).sum(1).argmax()]),
            "boxes": masks_to_boxes(masks),
            "masks": masks,
            "labels": labels,
        }



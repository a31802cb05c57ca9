"""Stamp scenes: real cut-out photographs (Debian's ``tuxpaint-stamps-default``)
blended into photographed textures, with distractor objects, exact masks and boxes.

Stamps whose synset is not an ImageNet class get the first ImageNet class
under the nearest concept of the ImageNet hierarchy that covers them, so
every concept at or above that one is exact.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

from ..core.assets import cache_dir, download_and_unpack
from ..core.boxes import masks_to_boxes
from ..core.checks import check_number
from .samples import MEAN, STD, to_input

__all__ = ["StampScenes", "concept_scenes", "fetch_stamps", "stamp_table", "DISTRACTOR_CATEGORIES",
           "RECOGNIZED_SCENES"]

STAMP_PACKAGE = "tuxpaint-stamps-default"
#: Stamp folders outside the animal and vehicle concepts: food, plants, tools, dishes, instruments, balls.
DISTRACTOR_CATEGORIES = ("food", "plants", "household", "hobbies", "sports")
#: ``StampScenes`` settings whose single-object test scenes EfficientNet-Lite0 recognizes (top-1 class under the
#: object's concept) 84-100 % of the time for animal, mammal, bird and artifact (the demo's settings: 33-78 %):
#: one large object on the normalization's mean colour, no distractor (``benchmarks/recognition_testbed.py``).
RECOGNIZED_SCENES = {"categories": ("animals", "vehicles"), "n_distractors": (0, 0), "scale": (0.6, 0.9),
                     "background": "mean"}


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
    """Photographed textures bundled with scikit-image (grass, gravel, brick, moon surface), grey.

    Photos of places (scikit-learn's palace and flower) are left out: their
    own ImageNet content outweighed the pasted objects in the model's output.
    """
    from skimage import data

    return [data.grass(), data.gravel(), data.brick(), data.moon()]


def _feathered(alpha: Image.Image, radius: float) -> Image.Image:
    """The alpha channel blurred at the edge only (an opaque interior stays opaque)."""
    return alpha.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else alpha


class StampScenes(Dataset):
    """Scenes of real cut-out photographs blended into photographed textures, with exact masks.

    Each scene tints a random crop of a texture photo, pastes ``distractors``
    stamps (objects outside the main categories: fruit, tools, flowers, ...),
    then ``objects`` main stamps (1 to 3 by default), each at random scale,
    position and horizontal flip, drawn so that each top-level category
    (animals, vehicles) is equally likely. Stamps are blended: their alpha
    is feathered and their brightness moved halfway to the background's, so
    that a pasted edge or a brightness jump is not itself a cue. Later
    stamps occlude earlier ones and the masks account for it (a pixel
    belongs to an object where its feathered alpha exceeds 1/2).

    ``label`` is the largest visible main object's class; ``labels``,
    ``masks`` and ``boxes`` cover every visible object, distractors
    included. Deterministic for ``seed``; the split is by stamp
    (``split_seed``), so no stamp appears in both ``train`` and ``test``.

    Args:
        split: ``"train"`` or ``"test"``.
        n_scenes: number of scenes.
        objects: ``(min, max)`` main stamps per scene.
        size: image side S.
        categories: main stamps are those whose path starts with one of
            these (e.g. ``("animals/mammals", "vehicles")``); default all
            but the distractors.
        distractors: path prefixes of the distractor stamps, e.g.
            :data:`DISTRACTOR_CATEGORIES` (default none).
        n_distractors: ``(min, max)`` distractor stamps per scene.
        scale: ``(min, max)`` of an object's longest side, as a share of S.
        feather: blur radius of the alpha edge in pixels (0: hard paste).
        background: ``"texture"`` (a tinted crop of a texture photo) or
            ``"mean"`` (the normalization's mean colour, which the model
            reads as zero input: no competing evidence).
        test_fraction: share of each category's stamps in the test split.
        root: stamp folder (default: fetched with :func:`fetch_stamps`).
        mean, std: input normalization.
    """

    def __init__(self, split: str = "train", n_scenes: int = 100, objects: Tuple[int, int] = (1, 3),
                 size: int = 224, seed: int = 0, split_seed: int = 0, categories: Optional[Sequence[str]] = None,
                 distractors: Sequence[str] = (), n_distractors: Tuple[int, int] = (0, 2),
                 scale: Tuple[float, float] = (0.35, 0.65), feather: float = 1.5, test_fraction: float = 0.3,
                 root: Optional[Path] = None, mean=MEAN, std=STD, background: str = "texture"):
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"objects: expected (min, max) with 1 <= min <= max, got {objects}")
        if not 0 <= n_distractors[0] <= n_distractors[1]:
            raise ValueError(f"n_distractors: expected (min, max) with 0 <= min <= max, got {n_distractors}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale: expected (min, max) with 0 < min <= max <= 1, got {scale}")
        check_number("feather", feather, low=0.0)
        if background not in ("texture", "mean"):
            raise ValueError(f"background: expected 'texture' or 'mean', got {background!r}")
        self.background = background
        self.split, self.n_scenes, self.objects, self.size = split, n_scenes, objects, size
        self.n_distractors, self.scale, self.feather = n_distractors, scale, feather
        self.seed, self.mean, self.std = seed, mean, std
        self.root = fetch_stamps(root)
        table = stamp_table()
        others = [r for r in table if r["path"].startswith(tuple(distractors))] if distractors else []
        if distractors and not others:
            raise ValueError(f"distractors: no stamp matches {distractors}")
        main = [r for r in table if (categories is None or r["path"].startswith(tuple(categories))) and r not in others]
        if not main:
            raise ValueError(f"categories: no stamp matches {categories} outside the distractors")
        self.stamps = self._split(main, split, split_seed, test_fraction)
        self.distractor_stamps = self._split(others, split, split_seed, test_fraction) if others else []
        # Each top-level category (animals, vehicles, ...) is drawn equally often.
        self._weights = self._category_weights(self.stamps)
        self._distractor_weights = self._category_weights(self.distractor_stamps)
        self._cutouts: Dict[str, Image.Image] = {}
        self._backgrounds = _backgrounds()

    @staticmethod
    def _category_weights(rows: List[Dict]) -> np.ndarray:
        top = [r["path"].split("/")[0] for r in rows]
        return np.array([1.0 / top.count(t) for t in top]) / max(1, len(set(top)))

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

    def _background(self, rng: np.random.Generator) -> Image.Image:
        if self.background == "mean":
            colour = tuple(int(round(255 * m)) for m in self.mean)
            return Image.new("RGBA", (self.size, self.size), (*colour, 255))
        texture = self._backgrounds[rng.integers(len(self._backgrounds))]
        side = int(min(texture.shape[:2]) * rng.uniform(0.4, 1.0))
        top = rng.integers(texture.shape[0] - side + 1)
        left = rng.integers(texture.shape[1] - side + 1)
        crop = texture[top : top + side, left : left + side].astype(np.float32)[..., None]
        tint = rng.uniform(0.55, 1.15, size=3) * rng.uniform(0.7, 1.2)  # colour and brightness
        pixels = np.clip(crop * tint, 0, 255).astype(np.uint8)
        return Image.fromarray(pixels).resize((self.size, self.size)).convert("RGBA")

    def _paste(self, canvas: Image.Image, stamp: Image.Image, longest: float, rng: np.random.Generator):
        """(canvas with the stamp blended in, the stamp's mask)."""
        size = self.size
        scale = longest / max(stamp.size)
        cutout = stamp.resize((max(1, round(stamp.width * scale)), max(1, round(stamp.height * scale))), Image.BILINEAR)
        if rng.random() < 0.5:
            cutout = cutout.transpose(Image.FLIP_LEFT_RIGHT)
        x = int(rng.integers(0, size - cutout.width + 1))
        y = int(rng.integers(0, size - cutout.height + 1))
        layer = Image.new("RGBA", (size, size))
        layer.paste(cutout, (x, y))
        alpha = np.array(_feathered(layer.split()[3], self.feather))
        rgb = np.array(layer.convert("RGB"), dtype=np.float32)
        below = np.array(canvas.convert("RGB"), dtype=np.float32)
        inside = alpha > 127
        if inside.any():  # brightness halfway to the background's under the object
            gain = np.sqrt((below[inside].mean() + 1) / (rgb[inside].mean() + 1))
            rgb = np.clip(rgb * np.clip(gain, 0.7, 1.4), 0, 255)
        weight = alpha[..., None].astype(np.float32) / 255
        blended = (rgb * weight + below * (1 - weight)).astype(np.uint8)
        return Image.fromarray(blended).convert("RGBA"), torch.from_numpy(inside)

    def __iter__(self) -> Iterator[Dict]:
        """The scenes in order (``list(scenes)``), rendered a few ahead by torch's thread count.

        PIL, numpy and torch release the GIL in most of a scene's work; each
        scene is seeded by its index, so the scenes equal ``scenes[i]``.
        """
        workers = max(1, torch.get_num_threads())
        with ThreadPoolExecutor(workers) as pool:
            ahead: Deque[Future] = deque()
            for index in range(self.n_scenes):
                ahead.append(pool.submit(self.__getitem__, index))
                if len(ahead) > 2 * workers:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def __getitem__(self, index: int) -> Dict:
        if not 0 <= index < self.n_scenes:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index, self.split == "test"])
        canvas = self._background(rng)
        n_objects = int(rng.integers(self.objects[0], self.objects[1] + 1))
        picks = rng.choice(len(self.stamps), size=min(n_objects, len(self.stamps)), replace=False, p=self._weights)
        n_extra = int(rng.integers(self.n_distractors[0], self.n_distractors[1] + 1)) if self.distractor_stamps else 0
        extra = rng.choice(len(self.distractor_stamps), size=min(n_extra, len(self.distractor_stamps)), replace=False,
                           p=self._distractor_weights) if n_extra else []
        placed = [(self.distractor_stamps[i], False) for i in extra] + [(self.stamps[i], True) for i in picks]
        masks, labels, is_main = [], [], []
        crowd = 0.8 if len(placed) > 1 else 1.0
        for row, main in placed:  # distractors first: main objects are never hidden by them
            longest = self.size * rng.uniform(*self.scale) * crowd * (1.0 if main else 0.6)
            canvas, mask = self._paste(canvas, self._cutout(row["path"]), longest, rng)
            masks = [m & ~mask for m in masks] + [mask]
            labels.append(row["label"])
            is_main.append(main)
        visible = [i for i, m in enumerate(masks) if m.any()]
        if not visible:
            raise ValueError(f"feather: scene {index} keeps no pixel of any object above half opacity at size "
                             f"{self.size} with feather {self.feather}; use a smaller feather (e.g. 1.5 x size / 224), "
                             f"a larger size or a larger scale (now {self.scale})")
        masks = torch.stack([masks[i] for i in visible])
        main_area = torch.tensor([float(masks[j].sum()) if is_main[i] else -1.0 for j, i in enumerate(visible)])
        labels = torch.tensor([labels[i] for i in visible])
        pixels = np.array(canvas.convert("RGB"))
        return {
            "image": to_input(pixels, self.size, self.mean, self.std),
            "label": int(labels[main_area.argmax()]),
            "boxes": masks_to_boxes(masks),
            "masks": masks,
            "labels": labels,
        }


def concept_scenes(hierarchy, concept: str, n: int, seed: int, exclude: bool = False, argument: str = "concept"):
    """Single-object stamp scenes of the stamps whose object is under ``concept`` (or, with
    ``exclude``, of all the others): ``n`` scenes on random backgrounds, scales and positions.

    Returns:
        A list of ``n`` :class:`StampScenes` samples (dicts; ``"image"``: 3 x 224 x 224,
        normalized for the model).

    Raises:
        ValueError: no stamp photo is under ``concept`` (with ``exclude``: all are), naming ``argument``.
    """
    leaves = set(hierarchy.leaves_under(concept))
    paths = tuple(row["path"] for row in stamp_table() if (row["label"] in leaves) != exclude)
    if not paths:
        raise ValueError(f"{argument}: every stamp photo shows {concept}, none is left for other concepts" if exclude
                         else f"{argument}: no stamp photo shows {concept}")
    return list(StampScenes("train", n, objects=(1, 1), seed=seed, categories=paths, test_fraction=0.0))

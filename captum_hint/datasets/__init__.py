"""Data sets and models: stamp scenes, readers of real data-set formats, the model zoo.

Every data set yields the sample dicts of :mod:`captum_hint.datasets.samples`.
"""

from .models import MODELS, ModelSpec, load_model
from .readers import CUB200, VOC2007, VOC_CONCEPTS, ImageNetBoxes, WnidImageFolder
from .samples import collate_samples
from .stamps import DISTRACTOR_CATEGORIES, StampScenes, fetch_stamps, stamp_table

__all__ = [
    "CUB200",
    "ImageNetBoxes",
    "MODELS",
    "ModelSpec",
    "DISTRACTOR_CATEGORIES",
    "StampScenes",
    "VOC2007",
    "VOC_CONCEPTS",
    "WnidImageFolder",
    "collate_samples",
    "fetch_stamps",
    "load_model",
    "stamp_table",
]

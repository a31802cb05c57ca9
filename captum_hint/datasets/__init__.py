"""Data sets and models: stamp scenes, readers of real data-set formats, the model zoo, planted-concept models.

Every data set yields the sample dicts of :mod:`captum_hint.datasets.samples`.
"""

from .constructed import MaskCopyNet, constructed_planted_model, mask_scenes
from .models import MODELS, ModelSpec, load_model
from .planted import (PLANTED_CLASSES, PlantedConceptNet, PlantedModel, PlantedScenes, check_planted_truth,
                      planted_hierarchy, train_planted_model)
from .readers import CUB200, VOC2007, VOC_CONCEPTS, ImageNetBoxes, WnidImageFolder
from .samples import collate_samples, concept_cells, object_classes
from .stamps import DISTRACTOR_CATEGORIES, RECOGNIZED_SCENES, StampScenes, concept_scenes, fetch_stamps, stamp_table

__all__ = [
    "CUB200",
    "ImageNetBoxes",
    "MODELS",
    "ModelSpec",
    "DISTRACTOR_CATEGORIES",
    "RECOGNIZED_SCENES",
    "MaskCopyNet",
    "PLANTED_CLASSES",
    "PlantedConceptNet",
    "PlantedModel",
    "PlantedScenes",
    "StampScenes",
    "VOC2007",
    "VOC_CONCEPTS",
    "WnidImageFolder",
    "check_planted_truth",
    "collate_samples",
    "concept_scenes",
    "constructed_planted_model",
    "fetch_stamps",
    "load_model",
    "mask_scenes",
    "concept_cells",
    "object_classes",
    "planted_hierarchy",
    "stamp_table",
    "train_planted_model",
]

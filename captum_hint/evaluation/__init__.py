"""Evaluation: localization metrics, Captum baselines, and the WSOL benchmark."""

from .baselines import conductance_ranking, gradcam_maps
from .benchmark import concept_ground_truth, evaluate_localization
from .statistics import bootstrap_mean
from .metrics import (energy_pointing_game, localization_hits, map_to_boxes, mask_area, mask_coverage, mask_iou,
                      normalize_maps, pointing_game)

__all__ = [
    "bootstrap_mean",
    "concept_ground_truth",
    "conductance_ranking",
    "energy_pointing_game",
    "evaluate_localization",
    "gradcam_maps",
    "localization_hits",
    "map_to_boxes",
    "mask_area",
    "mask_coverage",
    "mask_iou",
    "normalize_maps",
    "pointing_game",
]

"""Evaluation: localization metrics, baselines, bootstrap intervals, and the WSOL benchmark."""

from .baselines import (center_gaussian_maps, conductance_ranking, full_image_maps, gradcam_channel_ranking,
                        gradcam_maps, gradcam_pass, netdissect_ranking, tcav_channel_ranking)
from .benchmark import (METRIC_NAMES, compare_records, concept_ground_truth, evaluate_localization, localization_record,
                        localization_table, merge_records, other_objects, summarize_record)
from .metrics import (WSOL_THRESHOLDS, box_hits_over_thresholds, box_ious_over_thresholds, boxes_to_masks, energy_pointing_game,
                      localization_hits, map_to_boxes, mask_area, mask_coverage, mask_iou, mass_share,
                      max_box_accuracy, normalize_maps, pixel_average_precision, pixel_histograms, pointing_game)
from .selectivity import presence_auc, weighted_roc_auc
from .recognition import recognition_rates, recognition_summary, recognized_indices, top1_classes
from .statistics import bootstrap_mean, bootstrap_statistic, bootstrap_weights, paired_bootstrap_mean

__all__ = [
    "METRIC_NAMES",
    "WSOL_THRESHOLDS",
    "bootstrap_mean",
    "bootstrap_statistic",
    "bootstrap_weights",
    "box_hits_over_thresholds",
    "box_ious_over_thresholds",
    "boxes_to_masks",
    "center_gaussian_maps",
    "compare_records",
    "concept_ground_truth",
    "conductance_ranking",
    "gradcam_channel_ranking",
    "energy_pointing_game",
    "evaluate_localization",
    "full_image_maps",
    "gradcam_maps",
    "gradcam_pass",
    "localization_hits",
    "localization_record",
    "localization_table",
    "map_to_boxes",
    "mask_area",
    "mask_coverage",
    "mask_iou",
    "mass_share",
    "max_box_accuracy",
    "merge_records",
    "netdissect_ranking",
    "tcav_channel_ranking",
    "normalize_maps",
    "other_objects",
    "paired_bootstrap_mean",
    "pixel_average_precision",
    "pixel_histograms",
    "pointing_game",
    "presence_auc",
    "recognition_rates",
    "recognition_summary",
    "recognized_indices",
    "summarize_record",
    "top1_classes",
    "weighted_roc_auc",
]

"""AfI, Attacking for Interpretability (CVPR 2020): a class-wide input occluder, then feature,
channel and concept importance from what it switches off.

The per-image layer attribution, :class:`~captum_hint.attr.LayerFeatureOcclusion`,
lives in :mod:`captum_hint.attr`.
"""

from .importance import (channel_importance, class_impression, concept_importance, distillation_test,
                         feature_importance, gradient_importance, meta_detector, mmd_unbiased)
from .occluder import GlobalFeatureOccluder, valid_input_range

__all__ = [
    "GlobalFeatureOccluder",
    "channel_importance",
    "class_impression",
    "concept_importance",
    "distillation_test",
    "feature_importance",
    "gradient_importance",
    "meta_detector",
    "mmd_unbiased",
    "valid_input_range",
]

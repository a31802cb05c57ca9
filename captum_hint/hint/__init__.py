"""HINT (Wang et al., CVPR 2022): responsible regions -> concept classifiers ->
Shapley values of neurons -> associations and localization."""

from .classifiers import IGNORE, ConceptClassifier, fit_concept_classifiers
from .explainer import HINT, fit_layers
from .regions import AGGREGATIONS, RegionBank, Regions, aggregate_saliency, normalize_saliency, responsible_regions
from .shapley import NeuronConceptShapley, exact_shapley

__all__ = [
    "AGGREGATIONS",
    "ConceptClassifier",
    "HINT",
    "IGNORE",
    "NeuronConceptShapley",
    "RegionBank",
    "Regions",
    "aggregate_saliency",
    "exact_shapley",
    "fit_concept_classifiers",
    "fit_layers",
    "normalize_saliency",
    "responsible_regions",
]

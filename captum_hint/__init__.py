"""captum_hint: HINT, the Hierarchical Neuron Concept Explainer, as a Captum plugin."""

from . import attr
from .concepts import ConceptScore, concept_scores
from .classifiers import ConceptClassifier
from .hierarchy import ConceptHierarchy
from .hint import HINT
from .regions import RegionBank, Regions, aggregate_saliency, normalize_saliency, responsible_regions
from .shapley import NeuronConceptShapley

__version__ = "0.1.0"

__all__ = [
    "attr",
    "ConceptClassifier",
    "ConceptHierarchy",
    "HINT",
    "NeuronConceptShapley",
    "RegionBank",
    "ConceptScore",
    "concept_scores",
    "Regions",
    "aggregate_saliency",
    "normalize_saliency",
    "responsible_regions",
]

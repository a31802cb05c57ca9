"""captum_hint: HINT, the Hierarchical Neuron Concept Explainer, as a Captum plugin."""

from . import attr
from .concepts import ConceptScore, concept_scores
from .hierarchy import ConceptHierarchy
from .regions import Regions, aggregate_saliency, normalize_saliency, responsible_regions

__version__ = "0.1.0"

__all__ = [
    "attr",
    "ConceptHierarchy",
    "ConceptScore",
    "concept_scores",
    "Regions",
    "aggregate_saliency",
    "normalize_saliency",
    "responsible_regions",
]

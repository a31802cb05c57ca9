"""captum_hint: explaining what a vision network's neurons and decisions stand for,
in terms of a hierarchy of human concepts, as a Captum plugin.

The package is layered; imports only point down (checked by import-linter in
``make test``):

* ``app``: the ``captum-hint`` command line, the report, plotting helpers;
* ``hint``: the systems (HINT; gAP, SeVec and AfI join beside it);
* ``evaluation`` and ``datasets``: localization metrics and baselines; data
  sets and models;
* ``attr``: every Captum attribution of every system;
* ``concepts``: concept scores, hierarchies, WordNet;
* ``core``: argument checks, the model-state guard, box maths, asset fetching.
"""

from . import attr
from .app.plotting import to_hwc
from .concepts import ConceptHierarchy, ConceptScore, concept_scores
from .hint import (HINT, ConceptClassifier, NeuronConceptShapley, RegionBank, Regions, aggregate_saliency,
                   fit_layers, normalize_saliency, responsible_regions)

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
    "fit_layers",
    "normalize_saliency",
    "responsible_regions",
    "to_hwc",
]

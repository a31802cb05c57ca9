"""Concepts and their hierarchy: concept scores, :class:`ConceptHierarchy`, WordNet offline."""

from .hierarchy import ConceptHierarchy
from .scores import CONCEPT_SCORES, ConceptScore, concept_scores, is_concept, is_concept_list

__all__ = ["CONCEPT_SCORES", "ConceptHierarchy", "ConceptScore", "concept_scores", "is_concept", "is_concept_list"]

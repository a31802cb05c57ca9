"""SeVec (Gu & Tresp): semantic vectors, concept directions in feature space, for global and local
interpretation. The semantic attributions live in :mod:`captum_hint.attr`
(:class:`~captum_hint.attr.SemanticGuidedBackprop`, :class:`~captum_hint.attr.SemanticGradientXInput`)."""

from .analysis import accuracy_correlation, neuron_vs_vector_test
from .vectors import SemanticVectors, layer_representation

__all__ = ["SemanticVectors", "accuracy_correlation", "layer_representation", "neuron_vs_vector_test"]

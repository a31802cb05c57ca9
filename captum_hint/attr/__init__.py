"""HINT's modified saliency methods, stopped at a hidden layer, as Captum attributions.

Each takes ``(forward_func, layer)`` with ``layer`` a module or a dotted name,
and ``attribute(inputs, target=...)`` returns a tensor shaped like the layer
output (N x C x H x W). ``target`` may be a class index, per-sample indices, a
concept (a ``set`` of leaf class indices) or a per-sample list of concepts.
"""

from typing import Dict, Type, Union

from ._base import LayerSaliency, resolve_layer
from .activation_propagation import LayerActivationPropagation, Propagation
from .gradient import LayerGradient, LayerGradientXActivation, LayerIntegratedGradients, mean_layer_gradient
from .feature_occlusion import LayerFeatureOcclusion, occlude
from .guided_backprop import LayerGuidedBackprop
from .semantic import SemanticGradientXInput, SemanticGuidedBackprop, semantic_mask
from .shared_pass import SHARED_PASS_METHODS, PairedSaliency, SharedPassSaliency
from .smoothgrad import LayerSmoothGrad

#: HINT's five saliency methods by the names the paper and the CLI use.
SALIENCY_METHODS: Dict[str, Type[LayerSaliency]] = {
    "gradient": LayerGradient,
    "gradient_x_input": LayerGradientXActivation,
    "guided_backprop": LayerGuidedBackprop,
    "integrated_gradients": LayerIntegratedGradients,
    "smoothgrad": LayerSmoothGrad,
}


def saliency_method(method: Union[str, Type[LayerSaliency]]) -> Type[LayerSaliency]:
    """The saliency class for a name in :data:`SALIENCY_METHODS` (or a class, returned as is)."""
    if isinstance(method, type) and issubclass(method, LayerSaliency):
        return method
    try:
        return SALIENCY_METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(
            f"saliency: unknown method {method!r}; expected one of "
            f"{', '.join(SALIENCY_METHODS)} or a LayerSaliency subclass"
        ) from None


__all__ = [
    "LayerSaliency",
    "LayerGradient",
    "LayerGradientXActivation",
    "LayerIntegratedGradients",
    "mean_layer_gradient",
    "LayerSmoothGrad",
    "LayerGuidedBackprop",
    "LayerActivationPropagation",
    "Propagation",
    "SemanticGuidedBackprop",
    "SemanticGradientXInput",
    "semantic_mask",
    "LayerFeatureOcclusion",
    "SharedPassSaliency",
    "PairedSaliency",
    "SHARED_PASS_METHODS",
    "occlude",
    "SALIENCY_METHODS",
    "saliency_method",
    "resolve_layer",
]

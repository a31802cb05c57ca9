"""Guided Backpropagation stopped at a layer.

Captum has input-space ``GuidedBackprop`` only; this reuses its ReLU-hook
machinery (``ModifiedReluGradientAttribution``) and stops the backward pass at
the layer with ``compute_layer_gradients_and_eval``.

Which rectifiers are guided (negative gradients zeroed on the way back):

* ``nn.ReLU`` and ``nn.ReLU6`` modules, in-place or not, also a module reused
  several times in one forward (torchvision's ResNet, EfficientNet-Lite) —
  through Captum's module hooks;
* functional calls outside such modules: ``torch.relu``, ``torch.relu_``,
  ``F.relu`` (also ``inplace=True``), ``F.relu_``, ``F.relu6``,
  ``Tensor.relu``, ``Tensor.relu_`` — through a ``TorchFunctionMode`` that
  hooks their outputs, only for calls made after the layer has run (after
  its forward, or its forward pre-hook with ``attribute_to_layer_input``):
  a functional ReLU that produces the layer's own output (or input) is below
  the attribution and must not clamp it.

Not supported (gradients pass through them unguided): rectifiers written as
``clamp``/``maximum``/``where``, ``nn.LeakyReLU``, ``nn.Hardtanh``, smooth
activations (GELU, SiLU/Swish) and ReLUs inside TorchScript or compiled
graphs. A warning is raised when no guided ReLU runs at all, since the result
then equals :class:`LayerGradient`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from captum._utils.common import _format_output, _register_backward_hook
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr._core.guided_backprop_deconvnet import ModifiedReluGradientAttribution
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ._base import LayerSaliency, LayerSpec, _root_module

__all__ = ["LayerGuidedBackprop", "GUIDED_MODULES", "guide_relus_in_graph"]

#: Module types whose backward pass is guided.
GUIDED_MODULES = (nn.ReLU, nn.ReLU6)

_FUNCTIONAL_RELUS = frozenset(
    {torch.relu, torch.relu_, F.relu, F.relu_, F.relu6, Tensor.relu, Tensor.relu_}
)


def _drop_negative(grad: Tensor) -> Tensor:
    return grad.clamp(min=0)


class _GuideFunctionalReLUs(TorchFunctionMode):
    """Guides ReLUs called as functions outside the hooked ReLU modules."""

    def __init__(self, owner: "LayerGuidedBackprop"):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if (
            func in _FUNCTIONAL_RELUS
            and self.owner._above_layer
            and self.owner._module_depth == 0
            and isinstance(out, Tensor)
            and out.requires_grad
        ):
            # A hook on the ReLU's output clamps the gradient before the ReLU's
            # own backward masks it: relu(g) * (x > 0), the guided rule. It
            # also holds for in-place calls, whose output is the updated input.
            # Only ReLUs that run once the layer has produced its output (or
            # received its input) are above it: a ReLU whose output *is* the
            # layer's tensor would otherwise clamp the attribution itself.
            out.register_hook(_drop_negative)
            self.owner._guided_count += 1
        return out


class _InGraphGuide:
    """Guides every ReLU whose output is in the autograd graph; see :func:`guide_relus_in_graph`."""

    _above_layer = True

    def __init__(self):
        self._module_depth = 0
        self._guided_count = 0

    def enter(self, module, inputs) -> None:
        self._module_depth += 1

    def leave(self, module, inputs, output) -> None:
        self._module_depth -= 1
        if isinstance(output, Tensor) and output.requires_grad:
            output.register_hook(_drop_negative)
            self._guided_count += 1


@contextlib.contextmanager
def guide_relus_in_graph(model: nn.Module):
    """Guide every ReLU of ``model`` whose output is in the autograd graph, inside the block.

    For forward passes whose graph starts at the layer (the layers below run
    without gradients) this is guided backprop down to that layer: a ReLU
    below the layer has no graph and is skipped. Module ReLUs are guided by a
    hook on their output (``nn.ReLU6`` calls ``hardtanh``, so the functional
    hooks alone would miss it), functional ones as in :class:`LayerGuidedBackprop`.
    All hooks are removed on exit.
    """
    guide = _InGraphGuide()
    handles = []
    try:
        for module in model.modules():
            if isinstance(module, GUIDED_MODULES):
                handles.append(module.register_forward_pre_hook(guide.enter))
                handles.append(module.register_forward_hook(guide.leave))
        with _GuideFunctionalReLUs(guide):
            yield guide
    finally:
        for handle in handles:
            handle.remove()


class LayerGuidedBackprop(LayerSaliency, ModifiedReluGradientAttribution):
    """Guided Backprop from the target score down to the layer output.

    The gradient at the layer, with every ReLU between the layer and the output
    passing only positive gradients backwards (Springenberg et al., 2015). See
    the module docstring for which rectifiers are guided.

    ``attribute(inputs, target)`` returns N x C x h x w. All hooks are removed
    when it returns, also when the forward raises.
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        layer: LayerSpec,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        ModifiedReluGradientAttribution.__init__(
            self, _root_module(forward_func), use_relu_grad_output=False
        )
        LayerSaliency.__init__(self, forward_func, layer, device_ids)
        self._module_depth = 0
        self._guided_count = 0
        self._above_layer = False

    def _register_hooks(self, module: nn.Module) -> None:
        if not isinstance(module, GUIDED_MODULES):
            return
        self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))
        # Track when a module ReLU is running, so its internal F.relu call is
        # not guided a second time by the functional mode.
        self.backward_hooks.append(module.register_forward_pre_hook(self._enter_module))
        self.backward_hooks.append(module.register_forward_hook(self._leave_module))

    def _enter_module(self, module, inputs) -> None:
        self._module_depth += 1
        self._guided_count += 1

    def _leave_module(self, module, inputs, output) -> None:
        self._module_depth -= 1

    def _reach_layer(self, *_) -> None:
        self._above_layer = True

    @contextlib.contextmanager
    def guiding(self, start_at_layer: bool = True, attribute_to_layer_input: bool = False):
        """Guide the model's ReLUs inside the block; every hook is removed on exit, also on errors.

        Args:
            start_at_layer: guide functional ReLUs only once the layer has run
                (its output, or its input with ``attribute_to_layer_input``);
                False guides every ReLU, as for an input-space attribution.
        """
        self._module_depth = 0
        self._guided_count = 0
        self._above_layer = not start_at_layer
        try:
            self.model.apply(self._register_hooks)
            if start_at_layer:
                reach = self.layer.register_forward_pre_hook if attribute_to_layer_input else \
                    self.layer.register_forward_hook
                self.backward_hooks.append(reach(self._reach_layer))
            with _GuideFunctionalReLUs(self):
                yield self
        finally:
            self._remove_hooks()

    def _remove_hooks(self) -> None:
        super()._remove_hooks()
        self.backward_hooks.clear()

    def attribute(
        self,
        inputs: Tensor,
        target=None,
        additional_forward_args: Optional[object] = None,
        attribute_to_layer_input: bool = False,
    ) -> Tensor:
        """Guided gradient at the layer for ``inputs`` (N x C x H x W).

        Arguments as in :meth:`LayerGradient.attribute`.
        """
        forward, target = self._prepare(inputs, target)
        with self.guiding(start_at_layer=True, attribute_to_layer_input=attribute_to_layer_input):
            gradients, _ = compute_layer_gradients_and_eval(
                forward,
                self.layer,
                inputs,
                target,
                additional_forward_args,
                device_ids=self.device_ids,
                attribute_to_layer_input=attribute_to_layer_input,
            )
        if self._guided_count == 0:
            warnings.warn(
                "LayerGuidedBackprop: no supported ReLU ran in the forward pass, "
                "so the result equals LayerGradient",
                stacklevel=2,
            )
        return _format_output(len(gradients) > 1, gradients)

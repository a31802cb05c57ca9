"""Layer saliency of many targets per image, at several layers, from shared passes.

HINT explains every concept an image falls under (husky: dog, canine, mammal,
animal, ...). Calling a Captum layer method once per (image, target) pair
re-runs the forward pass per pair; this module runs **one forward pass per
batch** and one backward pass per *slot* (the j-th target of every image at
once), all sharing that forward (``retain_graph``). The gradient of the sum of
the selected scores with respect to the layer equals each image's own
gradient, because the images of an eval-mode batch do not interact.

Further savings:

* the autograd graph starts at the lowest requested layer: the forward runs
  without gradients until that layer, whose output becomes a leaf, so the
  layers below it keep no activations for the backward pass (their
  parameters' ``requires_grad`` flags are not touched);
* several layers are read from the same backward passes (``layer`` may be a
  list, as in Captum's multi-layer attributions);
* SmoothGrad evaluates the noisy copies of a batch in passes of at most
  ``max_rows`` rows, each shared by all targets; Integrated Gradients shares
  each chunk of path points the same way (one path per layer, since moving
  one layer's activation changes the layers above). The modules wholly below
  the layer run once per chunk of images, not once per path point: the path
  passes replay their outputs (:mod:`captum_hint.attr.replay`).

The results equal Captum's per-target methods up to float rounding (tested):
``gradient`` (``LayerGradientXActivation(multiply_by_inputs=False)``),
``gradient_x_input``, ``guided_backprop``, ``integrated_gradients``
(``LayerIntegratedGradients``) and ``smoothgrad`` (for the same noise).
"""

from __future__ import annotations

import contextlib
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from captum.attr import GradientAttribution, LayerAttribution
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import Tensor, nn

from ..concepts.scores import ConceptScore
from ..core.checks import check_finite, check_number, check_positive_int
from ..core.model_state import evaluation_mode
from ._base import GuardsModel, LayerSpec, _root_module, check_image_batch, resolve_layer
from .guided_backprop import guide_relus_in_graph
from .replay import ReplayBelow, modules_wholly_below

__all__ = ["SHARED_PASS_METHODS", "PairedSaliency", "SharedPassSaliency", "target_slots"]

#: The saliency methods with a shared-pass implementation.
SHARED_PASS_METHODS = ("gradient", "gradient_x_input", "guided_backprop", "integrated_gradients", "smoothgrad")

#: ``select(logits, first) -> (pair_image P, pair_column P)``: the pairs to explain among images
#: ``first .. first + len(logits) - 1`` (pair images counted from ``first``), chosen once their logits are known.
PairSelector = Callable[[Tensor, int], Tuple[Tensor, Tensor]]


class PairedSaliency(NamedTuple):
    """What :meth:`SharedPassSaliency.collect` gives.

    Attributes:
        logits: N x C class logits of the clean images.
        activations: one N x D x h x w layer output per layer (clean images).
        saliency: one P x D x h x w saliency per layer, row p for pair p.
        pair_image: P image indices of the pairs.
        pair_column: P score columns of the pairs.
    """

    logits: Tensor
    activations: List[Tensor]
    saliency: List[Tensor]
    pair_image: Tensor
    pair_column: Tensor


def target_slots(pair_image: Tensor) -> Tensor:
    """Slot of each pair: its rank among the pairs of the same image (0, 1, 2, ... in given order)."""
    order = torch.sort(pair_image, stable=True).indices
    sorted_image = pair_image[order]
    first = torch.searchsorted(sorted_image, sorted_image)  # first position of each image's group
    slots = torch.empty_like(pair_image)
    slots[order] = torch.arange(len(pair_image), device=pair_image.device) - first
    return slots


class _LayerTap:
    """Forward hooks that make the first requested layer's output an autograd leaf and record every layer.

    The forward runs under ``no_grad``; the first of the layers to run turns
    gradients on, so the graph (and the memory it holds) starts there.
    ``replace`` (one layer only) substitutes that layer's output, for the
    path points of Integrated Gradients.
    """

    def __init__(self, layers: Sequence[nn.Module], names: Sequence[str], replace: Optional[Tensor] = None):
        self.layers, self.names = list(layers), list(names)
        self.replace = replace
        self.outputs: List[Optional[Tensor]] = [None] * len(self.layers)

    def _hook(self, index: int):
        def hook(module, args, output):
            if self.outputs[index] is not None:
                return None  # a module reused later in the forward: its first call is the layer
            if not isinstance(output, Tensor):
                raise ValueError(f"layer: expected a layer whose output is a tensor, got {type(output).__name__}")
            if not torch.is_grad_enabled():
                torch.set_grad_enabled(True)
                output = output.detach()
            if self.replace is not None:
                output = self.replace.to(output.dtype)
            if not output.requires_grad:
                output.requires_grad_()
            self.outputs[index] = output
            # A clone, so an in-place operation above the layer cannot change the recorded tensor.
            return output.clone()

        return hook

    def run(self, model: nn.Module, inputs: Tensor) -> Tuple[Tensor, List[Tensor]]:
        handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]
        grad_mode = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(False)
            logits = model(inputs)
        finally:
            torch.set_grad_enabled(grad_mode)
            for handle in handles:
                handle.remove()
        missing = [name for name, out in zip(self.names, self.outputs) if out is None]
        if missing:
            raise ValueError(f"layer: {', '.join(map(repr, missing))} did not run in the model's forward pass")
        for name, out in zip(self.names, self.outputs):
            check_finite(f"layer {name!r} output", out.detach(), "the model's activations must be finite")
        return logits, self.outputs


class SharedPassSaliency(GuardsModel, LayerAttribution, GradientAttribution):
    """Layer saliency of several targets per image (and several layers) from shared passes.

    Args:
        forward_func: the model (N x 3 x H x W -> N x C logits). Images of a
            batch must not interact (eval mode; :meth:`attribute` and
            :meth:`collect` run it in eval mode and restore it).
        layer: a layer (module or dotted name) or a list of them.
        method: one of :data:`SHARED_PASS_METHODS`.
        concepts: optional K concepts (iterables of leaf class indices); the
            targets are then concept indices and the scores
            :func:`~captum_hint.concepts.concept_scores` (as with
            :class:`~captum_hint.concepts.ConceptScore`); by default the
            targets are class indices of the logits.
        concept_score: ``"log_probability"`` or ``"logit"`` (see
            :func:`~captum_hint.concepts.concept_scores`).

    Method settings (keyword arguments of :meth:`attribute` and
    :meth:`collect`): ``n_samples``, ``noise_level``, ``generator`` (or
    ``seed``) for SmoothGrad (as :class:`LayerSmoothGrad`); ``n_steps``,
    ``integration`` (Captum's rule name) and ``baselines`` (images: a scalar
    or a tensor like the inputs; default zeros) for Integrated Gradients.
    ``max_rows`` bounds the rows (images, noisy copies or path points) of
    each forward pass, so peak memory does not grow with the number of
    targets or of noise samples.
    """

    def __init__(self, forward_func: nn.Module, layer: Union[LayerSpec, Sequence[LayerSpec]],
                 method: str = "gradient", concepts: Optional[Sequence[Sequence[int]]] = None,
                 concept_score: str = "log_probability"):
        self.single_layer = not isinstance(layer, (list, tuple))
        modules = [resolve_layer(forward_func, spec) for spec in ([layer] if self.single_layer else layer)]
        if not modules:
            raise ValueError("layer: expected a layer or a non-empty list of layers")
        LayerAttribution.__init__(self, forward_func, modules if not self.single_layer else modules[0])
        GradientAttribution.__init__(self, forward_func)
        if method not in SHARED_PASS_METHODS:
            raise ValueError(f"method: expected one of {', '.join(SHARED_PASS_METHODS)}, got {method!r}")
        self.layers = modules
        names = {module: name for name, module in _root_module(forward_func).named_modules()}
        self.layer_names = [names.get(module, type(module).__name__) for module in modules]
        self.method = method
        # ConceptScore keeps the K x C leaf membership, built once per class count and device.
        self._concept_score = None if concepts is None else ConceptScore(forward_func, concepts, concept_score)
        self.concepts = None if concepts is None else self._concept_score.concepts

    # ------------------------------------------------------------------ public
    def attribute(self, inputs: Tensor, target: Sequence[Sequence[int]], **kwargs) -> Union[Tensor, List[Tensor]]:
        """Saliency of every (image, target) pair.

        Args:
            inputs: N x 3 x H x W.
            target: N sequences: the targets (class indices, or concept
                indices when ``concepts`` is given) of each image; an image
                may have none.
            kwargs: the method settings (see the class docstring).

        Returns:
            P x D x h x w (a list of them for a list of layers), the pairs in
            image-major order: image 0's targets, then image 1's, ...
        """
        check_image_batch(inputs)
        if not isinstance(target, (list, tuple)) or len(target) != len(inputs):
            raise ValueError(f"target: expected one sequence of targets per image ({len(inputs)}), got {target!r}")
        counts = torch.tensor([len(t) for t in target], dtype=torch.long)
        pair_image = torch.repeat_interleave(torch.arange(len(inputs)), counts)
        pair_column = torch.tensor([int(c) for t in target for c in t], dtype=torch.long)

        def select(logits: Tensor, first: int) -> Tuple[Tensor, Tensor]:
            chosen = (pair_image >= first) & (pair_image < first + len(logits))
            return pair_image[chosen] - first, pair_column[chosen]

        result = self.collect(inputs, select, **kwargs)
        return result.saliency[0] if self.single_layer else result.saliency

    def collect(self, inputs: Tensor, select: PairSelector, max_rows: Optional[int] = None, n_samples: int = 16,
                noise_level: float = 0.15, seed: Optional[int] = None, generator: Optional[torch.Generator] = None,
                n_steps: int = 32, integration: str = "gausslegendre",
                baselines: Union[None, int, float, Tensor] = None) -> PairedSaliency:
        """Logits, layer activations and the saliency of the pairs ``select`` picks from the logits.

        Args:
            inputs: N x 3 x H x W.
            select: ``(logits n x C, first) -> (pair_image P, pair_column P)``,
                long tensors: the pairs among images ``first .. first + n - 1``
                (image indices counted from ``first``), e.g. every concept
                each image's predicted class falls under. Called once per
                pass of at most ``max_rows`` images.
            max_rows: rows per forward pass (default: N).
            Other arguments: the method settings (see the class docstring).

        Returns:
            :class:`PairedSaliency`.
        """
        check_image_batch(inputs)
        max_rows = len(inputs) if max_rows is None else check_positive_int("max_rows", max_rows)
        check_positive_int("n_samples", n_samples)
        check_number("noise_level", noise_level, low=0.0)
        check_positive_int("n_steps", n_steps)
        if seed is not None and generator is not None:
            raise ValueError("seed, generator: give one of them, not both")
        with evaluation_mode(self.forward_func, type(self).__name__):
            if self.method in ("gradient", "gradient_x_input", "guided_backprop"):
                return self._gradient_type(inputs, select, max_rows)
            logits, activations = self._clean_forward(inputs, max_rows)
            pair_image, pair_column = self._checked_pairs(select(logits, 0), logits)
            if self.method == "smoothgrad":
                if generator is None:
                    generator = torch.Generator(device=inputs.device)
                    generator.manual_seed(seed) if seed is not None else generator.seed()
                saliency = self._smoothgrad(inputs, pair_image, pair_column, max_rows, n_samples, noise_level, generator)
            else:
                saliency = self._integrated(inputs, activations, pair_image, pair_column, max_rows, n_steps,
                                            integration, baselines)
        return PairedSaliency(logits, activations, saliency, pair_image, pair_column)

    # ------------------------------------------------------------------ pieces
    def _scores(self, logits: Tensor) -> Tensor:
        if self.concepts is None:
            return logits
        return self._concept_score.from_logits(logits)

    def _checked_pairs(self, pairs: Tuple[Tensor, Tensor], logits: Tensor) -> Tuple[Tensor, Tensor]:
        pair_image, pair_column = (torch.as_tensor(t, dtype=torch.long).cpu() for t in pairs)
        if pair_image.shape != pair_column.shape or pair_image.dim() != 1:
            raise ValueError("select: expected two equally long 1-D tensors (pair_image, pair_column)")
        n_columns = logits.shape[1] if self.concepts is None else len(self.concepts)
        if len(pair_image) and not (0 <= int(pair_image.min()) and int(pair_image.max()) < len(logits)):
            raise ValueError(f"select: pair image indices must lie in 0..{len(logits) - 1}")
        if len(pair_column) and not (0 <= int(pair_column.min()) and int(pair_column.max()) < n_columns):
            raise ValueError(f"target: indices must lie in 0..{n_columns - 1} (the model's classes or the concepts)")
        return pair_image, pair_column

    def _backward_slots(self, logits: Tensor, outputs: List[Tensor], pair_image: Tensor,
                        pair_column: Tensor) -> List[Tensor]:
        """P x D x h x w gradients per layer: one backward pass per slot, sharing the forward."""
        scores = self._scores(logits)
        check_finite("scores", scores.detach(), "check the model's outputs")
        grads = [out.new_zeros((len(pair_image), *out.shape[1:])) for out in outputs]
        if len(pair_image) == 0:
            return grads
        slots = target_slots(pair_image)
        n_slots = int(slots.max()) + 1
        for slot in range(n_slots):
            chosen = (slots == slot).nonzero().flatten()
            images, columns = pair_image[chosen].to(scores.device), pair_column[chosen].to(scores.device)
            grad_outputs = torch.zeros_like(scores)
            grad_outputs[images, columns] = 1.0
            layer_grads = torch.autograd.grad(scores, outputs, grad_outputs, retain_graph=slot < n_slots - 1)
            for grad, layer_grad in zip(grads, layer_grads):
                grad[chosen.to(grad.device)] = layer_grad[images]
        return grads

    def _gradient_type(self, inputs: Tensor, select: PairSelector, max_rows: int) -> PairedSaliency:
        logits_parts, activation_parts, saliency_parts, images_parts, columns_parts = [], [], [], [], []
        for start in range(0, len(inputs), max_rows):
            chunk = inputs[start : start + max_rows]
            tap = _LayerTap(self.layers, self.layer_names)
            guided = self.method == "guided_backprop"
            with guide_relus_in_graph(_root_module(self.forward_func)) if guided else contextlib.nullcontext():
                logits, outputs = tap.run(self.forward_func, chunk)
                pair_image, pair_column = self._checked_pairs(select(logits.detach(), start), logits)
                grads = self._backward_slots(logits, outputs, pair_image, pair_column)
            if self.method == "gradient_x_input":
                grads = [grad * out.detach()[pair_image.to(out.device)] for grad, out in zip(grads, outputs)]
            logits_parts.append(logits.detach())
            activation_parts.append([out.detach() for out in outputs])
            saliency_parts.append(grads)
            images_parts.append(pair_image + start)
            columns_parts.append(pair_column)
        return PairedSaliency(
            torch.cat(logits_parts),
            [torch.cat(parts) for parts in zip(*activation_parts)],
            [torch.cat(parts) for parts in zip(*saliency_parts)],
            torch.cat(images_parts),
            torch.cat(columns_parts),
        )

    def _clean_forward(self, inputs: Tensor, max_rows: int) -> Tuple[Tensor, List[Tensor]]:
        """Logits and activations without gradients (SmoothGrad and IG read the clean ones)."""
        logits_parts, activation_parts = [], []
        for start in range(0, len(inputs), max_rows):
            logits, outputs = _LayerTap(self.layers, self.layer_names).run(self.forward_func, inputs[start : start + max_rows])
            logits_parts.append(logits.detach())
            activation_parts.append([out.detach() for out in outputs])
        return torch.cat(logits_parts), [torch.cat(parts) for parts in zip(*activation_parts)]

    def _pairs_in(self, pair_image: Tensor, first: int, count: int) -> Tuple[Tensor, Tensor]:
        """Indices of the pairs whose image lies in [first, first + count), and those images relative to first."""
        chosen = ((pair_image >= first) & (pair_image < first + count)).nonzero().flatten()
        return chosen, pair_image[chosen] - first

    def _replicated_backward(self, logits: Tensor, outputs: List[Tensor], local: Tensor, columns: Tensor,
                             copies: int, n_images: int) -> List[Tensor]:
        """Gradients (copies x P x ...) per layer of a pass over ``copies`` copies of ``n_images`` images, copy-major."""
        offsets = torch.arange(copies).repeat_interleave(len(local)) * n_images
        grads = self._backward_slots(logits, outputs, local.repeat(copies) + offsets, columns.repeat(copies))
        return [grad.view(copies, len(local), *grad.shape[1:]) for grad in grads]

    def _smoothgrad(self, inputs, pair_image, pair_column, max_rows, n_samples, noise_level, generator):
        flat = inputs.flatten(1)
        stdev = noise_level * (flat.max(dim=1).values - flat.min(dim=1).values)
        totals = None
        images_per_pass = min(len(inputs), max_rows)
        copies_per_pass = max(1, max_rows // images_per_pass)
        for first in range(0, len(inputs), images_per_pass):
            images = inputs[first : first + images_per_pass]
            chosen, local = self._pairs_in(pair_image, first, len(images))
            std = stdev[first : first + len(images)].view(1, -1, *([1] * (inputs.dim() - 1)))
            for copy in range(0, n_samples, copies_per_pass):
                copies = min(copies_per_pass, n_samples - copy)
                noise = torch.randn((copies, *images.shape), generator=generator, dtype=inputs.dtype,
                                    device=inputs.device)
                noisy = (images[None] + noise * std).flatten(0, 1)
                logits, outputs = _LayerTap(self.layers, self.layer_names).run(self.forward_func, noisy)
                grads = self._replicated_backward(logits, outputs, local, pair_column[chosen], copies, len(images))
                if totals is None:
                    totals = [g.new_zeros((len(pair_image), *g.shape[2:])) for g in grads]
                for total, grad in zip(totals, grads):
                    total[chosen.to(total.device)] += grad.sum(0)
        return [total / n_samples for total in totals]

    def _integrated(self, inputs, activations, pair_image, pair_column, max_rows, n_steps, integration, baselines):
        step_sizes, alphas = approximation_parameters(integration)
        step_sizes, alphas = step_sizes(n_steps), alphas(n_steps)
        if baselines is None or isinstance(baselines, (int, float)):
            # one constant image: its activations serve every image
            constant = torch.full_like(inputs[:1], float(baselines or 0.0))
            baseline_activations = [z.expand(len(inputs), *z.shape[1:]) for z in self._clean_forward(constant, 1)[1]]
        elif isinstance(baselines, Tensor) and baselines.shape in (inputs.shape, inputs.shape[1:]):
            baseline_images = check_finite("baselines", baselines.to(inputs.device, inputs.dtype)).expand_as(inputs)
            _, baseline_activations = self._clean_forward(baseline_images, max_rows)
        else:
            raise ValueError(f"baselines: expected None, a number or images shaped {tuple(inputs.shape)}")
        # as many path points per pass as max_rows allows, then as many images: the modules wholly
        # below the layer run once per chunk of images and are replayed in its path passes
        points_per_pass = min(n_steps, max_rows)
        images_per_pass = max(1, min(len(inputs), max_rows // points_per_pass))
        root = _root_module(self.forward_func)
        saliency = []
        for layer, name, start_z, end_z in zip(self.layers, self.layer_names, baseline_activations, activations):
            total = end_z.new_zeros((len(pair_image), *end_z.shape[1:]))
            below = ReplayBelow(modules_wholly_below(root, layer, inputs[:1]))
            for first in range(0, len(inputs), images_per_pass):
                images = inputs[first : first + images_per_pass]
                chosen, local = self._pairs_in(pair_image, first, len(images))
                if len(chosen) == 0:
                    continue
                below.record(self.forward_func, layer, images)
                low, high = start_z[first : first + len(images)], end_z[first : first + len(images)]
                for point in range(0, n_steps, points_per_pass):
                    alpha = torch.tensor(alphas[point : point + points_per_pass], dtype=low.dtype, device=low.device)
                    weight = torch.tensor(step_sizes[point : point + points_per_pass], dtype=low.dtype,
                                          device=low.device)
                    path = (low[None] + alpha.view(-1, 1, 1, 1, 1) * (high - low)[None]).flatten(0, 1)
                    repeated = images.repeat(len(alpha), 1, 1, 1)
                    try:
                        with below.replaying(len(alpha)):
                            logits, outputs = _LayerTap([layer], [name], replace=path).run(self.forward_func, repeated)
                    except RuntimeError:  # the model calls its lower modules otherwise than recorded: run them
                        below = ReplayBelow([])
                        logits, outputs = _LayerTap([layer], [name], replace=path).run(self.forward_func, repeated)
                    (grad,) = self._replicated_backward(logits, outputs, local, pair_column[chosen], len(alpha),
                                                        len(images))
                    total[chosen.to(total.device)] += (weight.view(-1, 1, 1, 1, 1) * grad).sum(0)
            saliency.append(total * (end_z - start_z)[pair_image.to(end_z.device)])
        return saliency

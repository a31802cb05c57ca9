"""Replaying the modules below a layer: path points of Integrated Gradients without the lower network.

Layer Integrated Gradients moves one layer's output along a path; every
path point re-runs the network, though below the layer it computes the same
thing each time. The modules that run *wholly* below the layer (every call
ends before the layer's first call starts: EfficientNet's stem and first
blocks below ``_blocks.10``) are recorded once for a chunk of images and, in
the path passes, return their recorded outputs instead of computing them.
What is not a module (functional ops between them) and the modules used
both below and above the layer still run, on the recorded tensors, so the
path passes compute exactly what full passes compute.
"""

from __future__ import annotations

import contextlib
from typing import Dict, List

import torch
from torch import Tensor, nn

__all__ = ["modules_wholly_below", "ReplayBelow"]


class _Stop(Exception):
    """Ends a recording pass once the layer starts: nothing above it is needed."""


def modules_wholly_below(model: nn.Module, layer: nn.Module, example: Tensor) -> List[nn.Module]:
    """The outermost modules whose every call ends before ``layer`` first starts, in one forward of ``example``.

    Modules holding the layer, the layer's own and those also called at or
    after it (a shared activation module) are left out; so are all of them
    when one returns something other than a tensor (nothing is replayed).

    Args:
        model: the network (its root module).
        layer: one of its modules.
        example: an input batch, e.g. 1 x 3 x H x W (one image is enough).

    Returns:
        The modules, in ``model.modules()`` order; empty when the layer does
        not run or a module to replay returns something other than a tensor.
    """
    events: List[tuple] = []  # (module, "start" / "end", whether the call returned a tensor)
    layer_started = []

    def start(module, args):
        if module is layer and not layer_started:
            layer_started.append(len(events))
        events.append((module, "start", True))

    def end(module, args, output):
        events.append((module, "end", isinstance(output, Tensor)))

    modules = [m for m in model.modules() if m is not model]
    handles = [m.register_forward_pre_hook(start) for m in modules] + [m.register_forward_hook(end) for m in modules]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    if not layer_started:
        return []
    cut = layer_started[0]
    before, late, non_tensor = set(), set(), set()
    for position, (module, kind, returned_tensor) in enumerate(events):
        if position < cut and kind == "end":
            before.add(module)
            if not returned_tensor:
                non_tensor.add(module)
        elif position >= cut:
            late.add(module)
    wholly = before - late
    parents = {child: parent for parent in model.modules() for child in parent.children()}
    outermost = [m for m in modules if m in wholly and parents.get(m) not in wholly]
    return [] if non_tensor.intersection(outermost) else outermost


class ReplayBelow:
    """Records what ``modules`` (from :func:`modules_wholly_below`) return for a chunk of images, and replays it.

    ``record(model, layer, images)`` runs the chunk (N x 3 x H x W) up to the
    layer; inside ``replaying(copies)`` each module returns its recorded
    outputs (N x ...), in call order, repeated ``copies`` times along the
    batch (copies·N x ..., point-major, as ``images.repeat(copies, 1, 1, 1)``
    would give them), without running. A module called more often than when
    recorded raises ``RuntimeError``; the modules' own ``forward`` is back
    when the ``with`` block ends.
    """

    def __init__(self, modules: List[nn.Module]):
        self.modules = list(modules)
        self.outputs: Dict[nn.Module, List[Tensor]] = {}

    def record(self, model: nn.Module, layer: nn.Module, images: Tensor) -> None:
        """Run ``images`` (N x 3 x H x W) through ``model`` up to ``layer``, keeping each module's outputs (N x ...)."""
        self.outputs = {m: [] for m in self.modules}

        def keep(module, args, output):
            self.outputs[module].append(output.detach())

        def stop(module, args):
            raise _Stop

        handles = [m.register_forward_hook(keep) for m in self.modules] + [layer.register_forward_pre_hook(stop)]
        try:
            with torch.no_grad():
                model(images)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()

    @contextlib.contextmanager
    def replaying(self, copies: int):
        """Within the block, each module returns its recorded outputs repeated ``copies`` times (copies·N x ...)."""
        calls = {m: 0 for m in self.modules}

        def replay(module):
            def forward(*args, **kwargs):
                recorded = self.outputs[module]
                if calls[module] >= len(recorded):
                    raise RuntimeError("replay: a module below the layer ran more often than when recorded")
                calls[module] += 1
                out = recorded[calls[module] - 1]
                return out.repeat(copies, *([1] * (out.dim() - 1)))

            return forward

        shadowed = {m: m.__dict__["forward"] for m in self.modules if "forward" in m.__dict__}
        for module in self.modules:
            module.forward = replay(module)
        try:
            yield
        finally:
            for module in self.modules:
                if module in shadowed:
                    module.forward = shadowed[module]
                else:
                    del module.forward

"""Leave the user's model exactly as it was: mode, ``requires_grad`` flags and so BatchNorm statistics.

Explainers run the model in eval mode (a model in train mode would update its
BatchNorm running statistics and use batch statistics, changing both the
model and the explanation) and restore every module's mode and every
parameter's ``requires_grad`` flag afterwards, also when an error is raised.

One model explains one call at a time: the mode, the hooks and the masks an
explanation puts on a model are the model's, not the thread's, so a call
from a second thread waits until the first has restored the model (a server
explaining requests in threads gets each request's own answer; to explain
in parallel, give each thread its own ``copy.deepcopy(model)``). Calls
nested in one thread go ahead.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import warnings
import weakref
from typing import Iterator, Optional

import torch
from torch import nn

__all__ = ["evaluation_mode", "model_device"]

_locks: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _model_lock(model: nn.Module) -> threading.RLock:
    """The model's own re-entrant lock (made on first use, gone with the model)."""
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


@contextlib.contextmanager
def evaluation_mode(model: nn.Module, owner: str = "captum_hint", inputs: str = "inputs") -> Iterator[nn.Module]:
    """Run ``model`` in eval mode inside the block, alone; restore its state on exit.

    A block on the same model in another thread waits until this one exits
    (see the module's note). Warns once per block when the model came in train mode. Each module's
    ``training`` flag and each parameter's ``requires_grad`` are restored as
    they were, so a model with a mix of modes comes back with the same mix.

    A ``RuntimeError`` raised inside the model's own ``forward`` (torch's
    answer to inputs of the wrong channel count, size or dtype) leaves the
    block as a ``ValueError`` naming the inputs, the original chained.

    Args:
        model: the user's model.
        owner: the name used in the warning.
        inputs: the caller's name for what the model runs on (``images``,
            ``dataloader``), used in that error.
    """
    with _model_lock(model):
        training = [(module, module.training) for module in model.modules()]
        requires_grad = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
        if any(flag for _, flag in training):
            warnings.warn(
                f"{owner}: the model is in train mode; it runs in eval mode here (BatchNorm and "
                "dropout as at inference) and is put back in train mode afterwards",
                stacklevel=3,
            )
        model.eval()
        try:
            yield model
        except RuntimeError as error:
            if isinstance(error, torch.OutOfMemoryError) or not _raised_in_forward(model, error):
                raise
            raise ValueError(f"{inputs}: {owner} could not run the model on them ({type(error).__name__}: "
                             f"{(str(error).splitlines() or [''])[0]})") from error
        finally:
            for module, flag in training:
                module.training = flag
            for parameter, flag in requires_grad:
                parameter.requires_grad_(flag)


def _raised_in_forward(model: nn.Module, error: BaseException) -> bool:
    """Whether ``error`` passed through the ``forward`` of one of ``model``'s modules."""
    modules = {id(module) for module in model.modules()}
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code.co_name == "forward" and id(frame.f_locals.get("self")) in modules:
            return True
        trace = trace.tb_next
    return False


def model_device(model: nn.Module, device=None) -> torch.device:
    """``device`` if given, else the device of the model's first parameter or buffer (the CPU for none)."""
    if device is not None:
        return torch.device(device)
    tensor: Optional[torch.Tensor] = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")

"""The model-state guard: eval mode inside, the user's exact state outside."""

import pytest
import torch
from torch import nn

from captum_hint.core.model_state import evaluation_mode


def _mixed_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Conv2d(4, 2, 1))
    model.train()
    model[2].eval()  # a mix of modes must come back as it was
    model[0].weight.requires_grad_(False)
    return model


def test_runs_in_eval_mode_and_restores_modes_and_flags():
    model = _mixed_model()
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(UserWarning, match="probe: the model is in train mode"):
        with evaluation_mode(model, "probe"):
            assert not any(m.training for m in model.modules())
            model(torch.randn(2, 3, 5, 5))
            for p in model.parameters():
                p.requires_grad_(True)  # whatever happens inside is undone
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_restores_on_error_and_is_silent_for_eval_models(recwarn):
    model = _mixed_model().eval()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluation_mode(model):
            raise RuntimeError("boom")
    assert not any(m.training for m in model.modules()) and not recwarn.list


def test_an_error_inside_the_models_forward_names_the_inputs_and_others_pass_unchanged():
    model = _mixed_model().eval()
    with pytest.raises(ValueError, match=r"inputs: probe could not run the model on them \(RuntimeError: .*channels") \
            as raised:
        with evaluation_mode(model, "probe"):
            model(torch.randn(2, 5, 4, 4))  # 5 channels for a 3-channel convolution
    assert isinstance(raised.value.__cause__, RuntimeError)
    with pytest.raises(torch.OutOfMemoryError):  # not the inputs' fault: passes as it is
        with evaluation_mode(model, "probe"):
            raise torch.OutOfMemoryError("no memory")

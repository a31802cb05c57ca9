"""Box maths: torchvision.ops where it imports, the same formulas in torch otherwise."""

import pytest
import torch

from captum_hint.core import boxes as box_module


def test_box_maths_without_torchvision_equals_torchvision(monkeypatch):
    pytest.importorskip("torchvision")
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(5, 2, generator=generator).repeat(1, 2) + torch.tensor([0, 0, 0.5, 0.3])
    b = torch.rand(4, 2, generator=generator).repeat(1, 2) + torch.tensor([0, 0, 0.4, 0.6])
    masks = torch.rand(3, 7, 9, generator=generator) > 0.7
    with_tv = box_module.box_iou(a, b), box_module.masks_to_boxes(masks)
    monkeypatch.setattr(box_module, "_ops", lambda: None)
    without = box_module.box_iou(a, b), box_module.masks_to_boxes(masks)
    torch.testing.assert_close(with_tv[0], without[0])
    torch.testing.assert_close(with_tv[1], without[1])
    with pytest.raises(ValueError, match="every mask needs at least one pixel"):
        box_module.masks_to_boxes(torch.zeros(1, 3, 3, dtype=torch.bool))

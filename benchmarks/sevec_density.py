"""How dense is SeVec's binarization 1[phi > 0] where the paper's global analysis runs? (issue 22, SeVec)

The paper's global analysis and Table 1 use a pooled, rectified
representation (VGG16's fc1). The closest analogue here is the pooled
output of a rectified layer: EfficientNet-Lite0's head ReLU6 (the input of
``_avg_pooling``), averaged over its 7 x 7 positions. The binarization only
carries meaning if it is sparse: a unit counts as active wherever any of
its 49 positions is. Printed: the share of (image, unit) pairs with
``phi > 0``, pooled and per position, and the share of units active in
every image, on the demo's training scenes and on the recognized testbed
(``RECOGNIZED_SCENES``), 96 scenes each, seed 0.

    .venv/bin/python benchmarks/sevec_density.py
"""

import torch

from captum_hint.app.demo import DEMO_SCENES
from captum_hint.datasets import RECOGNIZED_SCENES, StampScenes, load_model
from captum_hint.evaluation import bootstrap_mean
from captum_hint.sevec import layer_representation


def main():
    spec = load_model("efficientnet-lite0")
    layer = spec.model._avg_pooling
    for name, kwargs in (("demo training scenes", DEMO_SCENES), ("recognized testbed", RECOGNIZED_SCENES)):
        images = torch.stack([s["image"] for s in StampScenes("train", 96, objects=(1, 1), seed=0, **kwargs)])
        spatial = torch.cat([layer_representation(spec.model, layer, images[s : s + 32], "spatial", True)
                             for s in range(0, len(images), 32)])
        pooled = torch.cat([layer_representation(spec.model, layer, images[s : s + 32], "pooled", True)
                            for s in range(0, len(images), 32)])
        per_image = {"pooled": (pooled > 0).float().mean(1), "spatial": (spatial > 0).float().mean(1)}
        always = float((pooled > 0).all(0).float().mean())
        print(f"{name} ({len(images)} scenes, {pooled.shape[1]} units): share of units with phi > 0, mean [95 % "
              "bootstrap over images]")
        for representation, share in per_image.items():
            mean, low, high = bootstrap_mean(share.numpy())
            print(f"  {representation:8s} {mean:.3f} [{low:.3f}, {high:.3f}]  (min {float(share.min()):.3f}, "
                  f"max {float(share.max()):.3f})")
        print(f"  units active (pooled) in every image: {always:.3f}; median pooled activation "
              f"{float(pooled.median()):.3f}")


if __name__ == "__main__":
    main()

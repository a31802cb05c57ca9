"""Which stamp scenes does the model recognize? Recognition rates across scene settings (issue 22).

A scene recognizes a concept when its top-1 class lies under it
(:func:`captum_hint.evaluation.recognition_rates`). Single-object test
scenes (stamps the demo never trains on), EfficientNet-Lite0, for the
demo's settings and for settings that take competing evidence away:
no distractor stamps, larger objects, the mean colour as background. Every
setting renders ``--scenes`` scenes of seed ``--seed``; intervals: 95 %
bootstrap over scenes.

    .venv/bin/python benchmarks/recognition_testbed.py [--scenes 192] [--seed 5]
"""

import argparse
import time

from captum_hint.app.demo import DEMO_SCENES
from captum_hint.concepts import ConceptHierarchy
from captum_hint.core.allocator import reuse_freed_memory
from captum_hint.datasets import StampScenes, load_model
from captum_hint.evaluation import recognition_rates, top1_classes

CONCEPTS = ["animal.n.01", "mammal.n.01", "bird.n.01", "artifact.n.01"]
SETTINGS = {
    "demo (texture, 0-2 distractors, scale 0.4-0.75)": DEMO_SCENES,
    "texture, no distractor, scale 0.4-0.75": {**DEMO_SCENES, "n_distractors": (0, 0)},
    "texture, no distractor, scale 0.6-0.9": {**DEMO_SCENES, "n_distractors": (0, 0), "scale": (0.6, 0.9)},
    "mean colour, no distractor, scale 0.4-0.75": {**DEMO_SCENES, "n_distractors": (0, 0), "background": "mean"},
    "mean colour, no distractor, scale 0.6-0.9": {**DEMO_SCENES, "n_distractors": (0, 0), "scale": (0.6, 0.9),
                                                  "background": "mean"},
}


def main(n_scenes, seed):
    reuse_freed_memory()
    spec = load_model("efficientnet-lite0")
    hierarchy = ConceptHierarchy.imagenet()
    print(f"EfficientNet-Lite0, {n_scenes} single-object test scenes per setting, seed {seed}; "
          "rate [95 % bootstrap] (scenes holding the concept)")
    print(f"{'setting':48s}" + "".join(f"{hierarchy.label(c).split(',')[0]:>22s}" for c in CONCEPTS))
    for name, kwargs in SETTINGS.items():
        started = time.time()
        samples = list(StampScenes("test", n_scenes, objects=(1, 1), seed=seed, **kwargs))
        rows = recognition_rates(spec.model, samples, hierarchy, CONCEPTS, top1=top1_classes(spec.model, samples))
        print(f"{name:48s}" + "".join(f"{r['rate']:8.2f} [{r['low']:.2f}, {r['high']:.2f}] ({r['n']:3d})"
                                      for r in rows) + f"   {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=192)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    main(args.scenes, args.seed)

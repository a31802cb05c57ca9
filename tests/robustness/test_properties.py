"""Generated bad input at every public entry point (issue 23), with Hypothesis.

Each entry point gets ``EXAMPLES`` generated bad values of one argument
(derandomized: the same examples on every run) and must, for each:

* raise ``ValueError`` or ``TypeError`` (the documented types) whose message
  starts by naming the argument (``"target: ..."``);
* leave the model exactly as it was: parameters, buffers (BatchNorm
  statistics), every module's mode, ``requires_grad`` flags and hooks (the
  model is in train mode, the hardest case);
* leave torch's global random state untouched.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captum_hint.afi import (GlobalFeatureOccluder, channel_importance, distillation_test, gradient_importance,
                             meta_detector, mmd_unbiased)
from captum_hint.attr import (LayerActivationPropagation, LayerFeatureOcclusion, LayerGradient,
                              LayerGradientXActivation, LayerGuidedBackprop, LayerIntegratedGradients,
                              LayerSmoothGrad, SemanticGradientXInput, SemanticGuidedBackprop, SharedPassSaliency,
                              occlude, semantic_mask)
from captum_hint import HINT, ConceptHierarchy
from captum_hint.app.explore import write_site
from captum_hint.gap import HierarchicalDecomposition, load_tree, select_children
from captum_hint.gap.diagnostics import ablation_contributions
from captum_hint.hint.regions import RegionBank
from captum_hint.sevec import SemanticVectors
from nets import BatchNormNet

#: generated bad values per entry point
EXAMPLES = 40
NET = BatchNormNet().train()  # built once: its seeding is not the call's
X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
VECTOR = torch.rand(320, generator=torch.Generator().manual_seed(1))
LAYERS = {name for name, _ in NET.named_modules()}
HIERARCHY = ConceptHierarchy.from_paths(["a/x", "a/y", "a/z", "b/u", "b/v", "b/w"])


def _fitted():
    """A HINT and semantic vectors fitted on the train-mode net (which they leave as it was)."""
    import warnings

    data = [(torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(s)), torch.arange(12) % 6)
            for s in (3, 4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hint = HINT(NET, "features.3", HIERARCHY, concepts=["a", "b"], saliency="gradient", n_regions=32,
                    shapley_kwargs={"n_permutations": 4}, progress=False).fit(data)
        sevec = SemanticVectors(NET, "features.4", ["a", "b"], HIERARCHY, progress=False).fit(data)
    return hint, sevec


FITTED_HINT, FITTED_SEVEC = _fitted()

# ---------------------------------------------------------------- bad values by kind


def _poisoned(where):
    n, c, i, j, value = where
    images = X.clone()
    images[n, c, i, j] = value
    return images


BAD_IMAGES = st.one_of(
    st.sampled_from([None, "images", 3.0, [[0.0]], np.zeros((2, 3, 8, 8), dtype=np.float32)]),
    st.lists(st.integers(1, 4), max_size=5).filter(lambda s: len(s) != 4).map(lambda s: torch.zeros(s)),
    st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 8), st.integers(0, 8))
    .filter(lambda s: 0 in s).map(lambda s: torch.zeros(s)),
    st.sampled_from([torch.int64, torch.uint8, torch.bool]).map(lambda d: torch.zeros(2, 3, 8, 8, dtype=d)),
    st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 7), st.integers(0, 7),
              st.sampled_from([math.nan, math.inf, -math.inf])).map(_poisoned),
    st.sampled_from([1, 2, 4, 6]).map(lambda c: torch.zeros(2, c, 8, 8)),  # the wrong channel count
)
BAD_CLASSES = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=6, max_value=10**6),
    st.floats(), st.text(max_size=3), st.just(torch.tensor([True, False])), st.just(torch.tensor([0.5, 1.0])),
    st.lists(st.integers(0, 5), min_size=3, max_size=4),  # a target per image, for 3 or 4 images of 2
    st.just(set()), st.sets(st.integers(-5, -1), min_size=1, max_size=2), st.just([[0], [1]]),
)
BAD_Y = st.one_of(st.integers(max_value=-1), st.integers(min_value=6, max_value=10**6), st.floats(), st.text(max_size=3),
                  st.just(set()), st.sets(st.integers(-5, 8), min_size=1, max_size=3).filter(
                      lambda s: min(s) < 0 or max(s) > 5), st.lists(st.integers(0, 5), max_size=2), st.none())
BAD_NAMES = st.one_of(st.text(alphabet="abcfx._01234", min_size=1, max_size=10).filter(lambda s: s not in LAYERS),
                      st.integers(), st.none(), st.floats())
BAD_COUNTS = st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2), st.booleans(), st.none())
BAD_FRACTIONS = st.one_of(st.floats().filter(lambda v: not 0 < v <= 1), st.text(max_size=2), st.booleans())


def _tensor_with(value, shape=(6,)):
    tensor = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    tensor.view(-1)[0] = value
    return tensor


BAD_VECTORS = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]).map(_tensor_with),
                        st.just(torch.zeros(320)), st.just(-torch.rand(320)), st.just(torch.rand(2, 3, 4)),
                        st.sampled_from([None, "v", 1.0]))
BAD_OCCLUDERS = st.one_of(st.sampled_from([math.nan, math.inf]).map(lambda v: _tensor_with(v, (3, 8, 8))),
                          st.just(torch.zeros(3, 4, 4)), st.just(torch.zeros(2, 8, 8)))
BAD_RANGES = st.tuples(st.floats(-2, 2, width=32), st.floats(-2, 2, width=32)).filter(lambda r: r[0] > r[1]).map(
    lambda r: (torch.tensor([r[0]] * 3), torch.tensor([r[1]] * 3)))
BAD_SAMPLES = st.one_of(st.sampled_from([math.nan, math.inf]).map(lambda v: _tensor_with(v, (4, 2))),
                        st.just(torch.zeros(1, 2)), st.just(torch.zeros(4)), st.just(torch.zeros(4, 3)))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=4), max_leaves=12)
TREE_FIELDS = st.fixed_dictionaries({"layer": JSON_VALUES, "channel": JSON_VALUES, "contribution": JSON_VALUES,
                                     "share": JSON_VALUES, "peak": JSON_VALUES, "peak_pixel": JSON_VALUES,
                                     "activation_map": JSON_VALUES, "merged": JSON_VALUES, "concepts": JSON_VALUES,
                                     "children": JSON_VALUES})
#: a wrong value per field of a saved tree node: a generated node gets at least one, so it is never valid
WRONG_FIELDS = [(field, value) for field, values in {
    "layer": [7, "", None], "channel": ["1", 1.5, -2, None], "contribution": ["x", None, [1]],
    "share": [-0.5, 2, "1", None], "peak": ["p", [1], [-1, 0]], "peak_pixel": ["p", [1.0]],
    "activation_map": ["m", [], [[]], [[1.0], [1.0, 2.0]]], "merged": ["m", [-1], ["a"]],
    "concepts": ["c", [["a"]], [[1, 2]]], "children": ["c", None, {}]}.items() for value in values]
BAD_TREES = st.tuples(TREE_FIELDS, st.sampled_from(WRONG_FIELDS)).map(lambda t: {**t[0], t[1][0]: t[1][1]})
BAD_BANK_STATES = st.one_of(JSON_VALUES, st.fixed_dictionaries({
    key: st.one_of(st.just(torch.zeros(2, 2)), st.just(torch.zeros(3, dtype=torch.long)),
                   st.just(torch.ones(2, 2, dtype=torch.bool)), st.just(torch.tensor([1.0, math.nan])), JSON_VALUES)
    for key in ("vectors", "buckets", "under", "images", "seen", "capacity")}))


def _hierarchy_like(value) -> bool:
    """Whether ``value`` is one of the forms ``ConceptHierarchy.from_dict`` takes (then it is no bad input)."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(path, str) and path.strip("/") for path in value)
    if isinstance(value, dict):
        return bool(value) and all(name.strip() and (sub is None or _hierarchy_like(sub)) for name, sub in value.items())
    return False


def _json_text(value) -> str:
    import json

    return json.dumps(value)


def _written(text, name):
    """``text`` in a fresh file (Hypothesis runs many examples per test: no pytest tmp_path)."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="captum_hint_properties_"))
    (folder / name).write_text(text)
    return folder / name


def _folder():
    """A fresh output folder per example (a refused call must write nothing there)."""
    import tempfile

    return tempfile.mkdtemp(prefix="captum_hint_site_")


def _targets_for(images):
    n = len(images) if isinstance(images, torch.Tensor) and images.dim() else 2
    return [[0]] * n


# ---------------------------------------------------------------- entry point -> (call, names, bad values)
ENTRY_POINTS = {
    "LayerGradient.attribute inputs": (
        lambda bad: LayerGradient(NET, "features.3").attribute(bad, target=1), ("inputs",), BAD_IMAGES),
    "LayerGradientXActivation.attribute inputs": (
        lambda bad: LayerGradientXActivation(NET, "features.3").attribute(bad, target=1), ("inputs",), BAD_IMAGES),
    "LayerSmoothGrad.attribute inputs": (
        lambda bad: LayerSmoothGrad(NET, "features.3").attribute(bad, target=1, n_samples=2, seed=0), ("inputs",),
        BAD_IMAGES),
    "LayerGuidedBackprop.attribute inputs": (
        lambda bad: LayerGuidedBackprop(NET, "features.3").attribute(bad, target=1), ("inputs",), BAD_IMAGES),
    "LayerIntegratedGradients.attribute inputs": (
        lambda bad: LayerIntegratedGradients(NET, "features.3").attribute(bad, target=1, n_steps=4), ("inputs",),
        BAD_IMAGES),
    "LayerActivationPropagation.propagate inputs": (
        lambda bad: LayerActivationPropagation(NET, "features.3").propagate(bad, target=1), ("inputs",), BAD_IMAGES),
    "SemanticGuidedBackprop.attribute inputs": (
        lambda bad: SemanticGuidedBackprop(NET, "features.4").attribute(bad, target=1, semantic_vector=VECTOR),
        ("inputs",), BAD_IMAGES),
    "LayerFeatureOcclusion.attribute inputs": (
        lambda bad: LayerFeatureOcclusion(NET, "features.3").attribute(bad, X[0] * 0.1), ("inputs",), BAD_IMAGES),
    "SharedPassSaliency.attribute inputs": (
        lambda bad: SharedPassSaliency(NET, "features.3").attribute(bad, _targets_for(bad)), ("inputs",), BAD_IMAGES),
    "HierarchicalDecomposition.decompose images": (
        lambda bad: HierarchicalDecomposition(NET, ["features.2", "features.4"], (3, 8, 8)).decompose(bad),
        ("images", "inputs"), BAD_IMAGES),
    "gradient_importance images": (
        lambda bad: gradient_importance(NET, "features.3", bad, y=1), ("images", "inputs"), BAD_IMAGES),
    "meta_detector images": (
        lambda bad: meta_detector(NET, "features.3", torch.ones(5), bad), ("images", "inputs"), BAD_IMAGES),
    "GlobalFeatureOccluder.fit images": (
        lambda bad: GlobalFeatureOccluder(NET, max_iterations=1, progress=False).fit(bad, 1), ("images", "inputs"),
        BAD_IMAGES),
    "LayerGradient.attribute target": (
        lambda bad: LayerGradient(NET, "features.3").attribute(X, target=bad), ("target",), BAD_CLASSES),
    "LayerActivationPropagation.propagate target": (
        lambda bad: LayerActivationPropagation(NET, "features.3").propagate(X, target=bad), ("target",), BAD_CLASSES),
    "HierarchicalDecomposition.decompose target": (
        lambda bad: HierarchicalDecomposition(NET, ["features.2", "features.4"], (3, 8, 8)).decompose(X, target=bad),
        ("target",), BAD_CLASSES),
    "gradient_importance y": (lambda bad: gradient_importance(NET, "features.3", X, y=bad), ("y",), BAD_Y),
    "GlobalFeatureOccluder.fit y": (
        lambda bad: GlobalFeatureOccluder(NET, max_iterations=1, progress=False).fit(X, bad), ("y",), BAD_Y),
    "LayerGradient layer": (lambda bad: LayerGradient(NET, bad), ("layer",), BAD_NAMES),
    "HierarchicalDecomposition layers": (
        lambda bad: HierarchicalDecomposition(NET, ["features.2", bad], (3, 8, 8)), ("layers",),
        st.one_of(BAD_NAMES, st.just("fc"))),
    "meta_detector layer": (lambda bad: meta_detector(NET, bad, torch.ones(5), X), ("layer",), BAD_NAMES),
    "LayerSmoothGrad.attribute n_samples": (
        lambda bad: LayerSmoothGrad(NET, "features.3").attribute(X, target=1, n_samples=bad), ("n_samples",),
        BAD_COUNTS),
    "HierarchicalDecomposition.decompose top_k": (
        lambda bad: HierarchicalDecomposition(NET, ["features.2", "features.4"], (3, 8, 8)).decompose(X, top_k=bad),
        ("top_k",), BAD_COUNTS),
    "HierarchicalDecomposition.decompose min_share": (
        lambda bad: HierarchicalDecomposition(NET, ["features.2", "features.4"], (3, 8, 8)).decompose(
            X, min_share=bad), ("min_share",), BAD_FRACTIONS),
    "GlobalFeatureOccluder lam": (
        lambda bad: GlobalFeatureOccluder(NET, lam=bad), ("lam",), st.one_of(st.floats(max_value=-1e-9), BAD_COUNTS
                                                                            .filter(lambda v: v is None or
                                                                                    isinstance(v, (str, bool))))),
    "RegionBank n_concepts": (lambda bad: RegionBank(bad), ("n_concepts",), BAD_COUNTS),
    "semantic_mask semantic_vector": (lambda bad: semantic_mask(bad), ("semantic_vector",), BAD_VECTORS),
    "SemanticGradientXInput.attribute semantic_vector": (
        lambda bad: SemanticGradientXInput(NET, "features.4").attribute(X, target=1, semantic_vector=bad),
        ("semantic_vector",), BAD_VECTORS.filter(lambda v: v is not None)),  # None: no mask, plain saliency
    "occlude delta": (lambda bad: occlude(X, bad), ("delta",), BAD_OCCLUDERS.filter(lambda d: d.shape == (3, 8, 8))),
    "LayerFeatureOcclusion.attribute delta": (
        lambda bad: LayerFeatureOcclusion(NET, "features.3").attribute(X, bad), ("delta",), BAD_OCCLUDERS),
    "occlude valid_range": (lambda bad: occlude(X, torch.zeros(3, 8, 8), bad), ("valid_range",), BAD_RANGES),
    "channel_importance scores": (
        lambda bad: channel_importance(bad), ("scores",),
        st.one_of(st.sampled_from([math.nan, math.inf, -1.0]).map(_tensor_with), st.just(torch.rand(2, 3)))),
    "mmd_unbiased x": (lambda bad: mmd_unbiased(bad, X.view(4, -1)[:, :2]), ("x",), BAD_SAMPLES),
    "mmd_unbiased bandwidth": (
        lambda bad: mmd_unbiased(X.view(4, -1)[:, :2], X.view(4, -1)[:, 2:4], bandwidth=bad), ("bandwidth",),
        st.one_of(st.floats().filter(lambda v: not v > 0), st.text(max_size=2), st.booleans())),
    "select_children maps": (
        lambda bad: select_children(bad, top_k=2), ("maps",),
        st.sampled_from([math.nan, math.inf, -math.inf]).map(lambda v: _tensor_with(v, (1, 4, 3, 3)))),
    "distillation_test negatives": (
        lambda bad: distillation_test(NET, "features.3", torch.ones(5), X, bad, epochs=1), ("negatives", "images"),
        st.one_of(st.just(X[:0]), st.just(X[:1]), BAD_IMAGES.filter(lambda b: not isinstance(b, torch.Tensor) or
                                                                    b.dim() != 4 or len(b) < 2))),
    "HINT.localize images": (lambda bad: FITTED_HINT.localize(bad, "a"), ("images", "inputs"), BAD_IMAGES),
    "HINT.localize concept": (
        lambda bad: FITTED_HINT.localize(X, bad), ("concept",),
        st.one_of(st.text(max_size=4).filter(lambda c: c.strip().lower() not in ("a", "b")), st.integers(),
                  st.none())),
    "HINT.localize top_fraction": (lambda bad: FITTED_HINT.localize(X, "a", top_fraction=bad), ("top_fraction",),
                                   BAD_FRACTIONS),
    "HINT.layer_features images": (lambda bad: FITTED_HINT.layer_features(bad), ("images",), BAD_IMAGES),
    "write_site images": (lambda bad: write_site(_folder(), FITTED_HINT, bad, progress=False), ("images",),
                          BAD_IMAGES),
    "write_site labels": (
        lambda bad: write_site(_folder(), FITTED_HINT, X, bad, progress=False), ("labels",),
        st.one_of(st.lists(st.lists(st.integers(0, 5), max_size=2), max_size=4).filter(lambda rows: len(rows) != 2),
                  st.lists(st.lists(st.integers(6, 10**6) | st.integers(max_value=-1), min_size=1, max_size=2),
                           min_size=2, max_size=2))),
    "write_site afi_importance": (
        lambda bad: write_site(_folder(), FITTED_HINT, X, afi_importance={"a": bad}, progress=False),
        ("afi_importance",),
        st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]).map(lambda v: _tensor_with(v, (5,))),
                  st.integers(1, 12).filter(lambda n: n != 5).map(torch.ones), st.just(torch.ones(5, 2)),
                  st.sampled_from([None, "v", 1.0]))),
    "write_site top_n": (lambda bad: write_site(_folder(), FITTED_HINT, X, top_n=bad, progress=False), ("top_n",),
                         BAD_COUNTS),
    "SemanticVectors.similarity images": (lambda bad: FITTED_SEVEC.similarity(bad), ("images", "inputs"),
                                          BAD_IMAGES),
    "SemanticVectors.fit dataloader": (
        lambda bad: SemanticVectors(NET, "features.4", ["a"], HIERARCHY, progress=False).fit([(bad, torch.zeros(2))]),
        ("images", "inputs", "dataloader"), BAD_IMAGES.filter(lambda b: isinstance(b, torch.Tensor))),
    "ablation_contributions images": (
        lambda bad: ablation_contributions(NET, bad, "features.3", target=1), ("images", "inputs"), BAD_IMAGES),
    "load_tree path": (lambda bad: load_tree(_written(bad, "tree.json")), ("path",),
                       st.one_of(st.text(max_size=20), JSON_VALUES.map(_json_text),
                                 BAD_TREES.map(lambda tree: _json_text({"format": "captum_hint.gap.EvidenceTree/1",
                                                                        "tree": tree})))),
    "ConceptHierarchy.from_json path": (
        lambda bad: ConceptHierarchy.from_json(_written(bad, "hierarchy.json")), ("path",),
        st.one_of(st.text(max_size=20).filter(lambda t: not t.strip().startswith(("[", "{"))),
                  JSON_VALUES.filter(lambda v: not _hierarchy_like(v)).map(_json_text))),
    "RegionBank.from_state_dict state": (lambda bad: RegionBank.from_state_dict(bad), ("state",), BAD_BANK_STATES),
}


def _model_state():
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                + len(m._backward_pre_hooks) for m in NET.modules())
    return ({k: v.clone() for k, v in NET.state_dict().items()}, [m.training for m in NET.modules()],
            [p.requires_grad for p in NET.parameters()], hooks, torch.get_rng_state())


@pytest.mark.filterwarnings("ignore:.*train mode")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_bad_input_is_refused_by_name_and_changes_nothing(entry, data):
    call, names, values = ENTRY_POINTS[entry]
    bad = data.draw(values, label=names[0])
    tensors, modes, flags, hooks, rng = _model_state()
    with pytest.raises((ValueError, TypeError)) as raised:
        call(bad)
    head = str(raised.value).split(":")[0]
    assert any(name in head for name in names), f"{entry}: {type(raised.value).__name__}: {raised.value}"
    after_tensors, after_modes, after_flags, after_hooks, after_rng = _model_state()
    assert all(torch.equal(v, tensors[k]) for k, v in after_tensors.items()), f"{entry}: the model's tensors changed"
    assert (after_modes, after_flags, after_hooks) == (modes, flags, hooks), f"{entry}: mode, flags or hooks changed"
    assert torch.equal(after_rng, rng), f"{entry}: torch's global random state changed"

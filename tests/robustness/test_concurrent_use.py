"""The user's model left as it was, also when threads explain it at once (issue 23).

Every attribution runs a train-mode model in eval mode and restores it; a
second thread's call on the same model waits for the first, so each call
gets its own answer: the answers of calls made from threads at once equal
those made one after another.
"""

import copy
import threading
import time

import pytest
import torch

from captum_hint import HINT, ConceptHierarchy
from captum_hint.attr import (LayerActivationPropagation, LayerFeatureOcclusion, LayerGradient,
                              LayerGradientXActivation, LayerGuidedBackprop, LayerIntegratedGradients,
                              LayerSmoothGrad, SemanticGradientXInput, SemanticGuidedBackprop, SharedPassSaliency)
from captum_hint.gap import HierarchicalDecomposition
from nets import BatchNormNet


X = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
VECTOR = torch.rand(5 * 8 * 8, generator=torch.Generator().manual_seed(1))
CALLS = {
    "LayerGradient": lambda net: LayerGradient(net, "features.3").attribute(X, target=1),
    "LayerGradientXActivation": lambda net: LayerGradientXActivation(net, "features.3").attribute(X, target=1),
    "LayerSmoothGrad": lambda net: LayerSmoothGrad(net, "features.3").attribute(X, target=1, n_samples=2, seed=0),
    "LayerGuidedBackprop": lambda net: LayerGuidedBackprop(net, "features.3").attribute(X, target=1),
    "LayerIntegratedGradients": lambda net: LayerIntegratedGradients(net, "features.3").attribute(X, target=1),
    "LayerActivationPropagation": lambda net: LayerActivationPropagation(net, "features.3").attribute(X, target=1),
    "LayerActivationPropagation.propagate": lambda net: LayerActivationPropagation(net, "features.3").propagate(
        X, target=1).maps,
    "SemanticGradientXInput": lambda net: SemanticGradientXInput(net, "features.4").attribute(
        X, target=1, semantic_vector=VECTOR),
    "SemanticGuidedBackprop": lambda net: SemanticGuidedBackprop(net, "features.4").attribute(
        X, target=1, semantic_vector=VECTOR),
    "LayerFeatureOcclusion": lambda net: LayerFeatureOcclusion(net, "features.3").attribute(X, X[0] * 0.5),
    "SharedPassSaliency": lambda net: SharedPassSaliency(net, "features.3").attribute(X, [[0, 1]] * 3),
}


def _state(net):
    return ({k: v.clone() for k, v in net.state_dict().items()}, [m.training for m in net.modules()],
            [p.requires_grad for p in net.parameters()])


def _assert_unchanged(net, state):
    tensors, modes, flags = state
    assert all(torch.equal(v, tensors[k]) for k, v in net.state_dict().items())
    assert [m.training for m in net.modules()] == modes and [p.requires_grad for p in net.parameters()] == flags
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in net.modules())


@pytest.mark.parametrize("name", list(CALLS))
def test_attributions_leave_a_train_mode_model_as_it_was(name):
    """Each ran a train-mode model in train mode: BatchNorm statistics changed, and the answer with them."""
    net = BatchNormNet().train()
    net.features[0].weight.requires_grad_(False)
    expected = CALLS[name](copy.deepcopy(net).eval())
    state = _state(net)
    with pytest.warns(UserWarning, match="the model is in train mode"):
        got = CALLS[name](net)
    _assert_unchanged(net, state)
    assert torch.allclose(got, expected, atol=1e-6)


def _at_once(calls):
    """Run the calls in threads started 10 ms apart (each next one while the first is inside the model's
    forward pass); their results in order (a thread's error is raised)."""
    results, errors = [None] * len(calls), []
    start = threading.Barrier(len(calls))

    def run(i):
        start.wait()
        time.sleep(0.01 * i)
        try:
            results[i] = calls[i]()
        except Exception as error:  # raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _assert_each_gets_its_own_answer(calls):
    """Calls with different answers alone give the same answers when made from threads at once."""
    alone = [call() for call in calls]
    assert not torch.allclose(alone[0], alone[1])
    for got, expected in zip(_at_once(calls), alone):
        assert torch.equal(got, expected)


def test_semantic_masks_of_two_threads_stay_their_own():
    """Two SemanticGuidedBackprop calls at once swapped their masks."""
    net = BatchNormNet(hold=0.05).eval()
    vectors = [torch.rand(320, generator=torch.Generator().manual_seed(s)) for s in (2, 3)]
    calls = [lambda v=v: SemanticGuidedBackprop(net, "features.4").attribute(X, target=1, semantic_vector=v)
             for v in vectors]
    _assert_each_gets_its_own_answer(calls)


def test_guided_relus_do_not_reach_a_concurrent_gradient():
    """Guided Backprop's ReLU guiding leaked into a LayerGradient of another thread."""
    net = BatchNormNet(hold=0.05).eval()
    calls = [lambda: LayerGuidedBackprop(net, "features.0").attribute(X, target=1),
             lambda: LayerGradient(net, "features.0").attribute(X, target=1)]
    _assert_each_gets_its_own_answer(calls)


def test_two_threads_leave_a_train_mode_model_as_it_was():
    """Two threads' hint.layer_features left a train-mode model in eval mode with its statistics updated."""
    net = BatchNormNet(hold=0.05).train()
    hint = HINT(net, "features.3", ConceptHierarchy.from_paths(["a/x", "a/y", "b/z", "b/u", "b/v", "b/w"]),
                concepts=["a"], progress=False)
    state = _state(net)
    with pytest.warns(UserWarning, match="train mode"):
        features = _at_once([lambda: hint.layer_features(X)] * 2)
    _assert_unchanged(net, state)
    assert torch.equal(features[0], features[1])


def test_two_decompositions_at_once_equal_their_answers_alone():
    """gAP's private stop-forward exception escaped into the other thread's decomposition."""
    net = BatchNormNet(hold=0.02).eval()
    decomposition = HierarchicalDecomposition(net, ["features.2", "features.4"], input_shape=(3, 8, 8))
    calls = [lambda t=t: [tree.to_dict() for tree in decomposition.decompose(X, target=t, top_k=2)] for t in (1, 4)]
    alone = [call() for call in calls]
    assert _at_once(calls) == alone

"""NeuronConceptShapley against brute force, Shapley axioms, and the naive path."""

import pytest
import torch

from captum_hint.hint.classifiers import ConceptClassifier
from captum_hint.hint.shapley import NeuronConceptShapley, _shuffled_orders, exact_shapley


def linear_classifier(coef, intercept=0.0, dtype=torch.float64):
    classifier = ConceptClassifier()
    classifier.coef_ = torch.as_tensor(coef, dtype=dtype)
    classifier.intercept_ = torch.tensor(intercept, dtype=dtype)
    return classifier


@pytest.fixture
def problem():
    generator = torch.Generator().manual_seed(0)
    regions = torch.randn(12, 6, generator=generator, dtype=torch.float64) + 1.0
    coef = torch.tensor([1.5, -0.8, 0.0, 0.6, 0.6, 2.0], dtype=torch.float64)  # neuron 2 is a dummy
    regions[:, 4] = regions[:, 3]  # neurons 3 and 4 are symmetric
    return regions, linear_classifier(coef, 0.3)


@pytest.mark.parametrize("absolute", [False, True])
def test_monte_carlo_converges_to_exact_within_its_error(problem, absolute):
    regions, classifier = problem
    exact = exact_shapley(classifier, regions, regions.mean(0), absolute=absolute)
    values, errors = NeuronConceptShapley(classifier).attribute(
        regions, baseline="mean", n_permutations=400, absolute=absolute, seed=1, return_standard_error=True
    )
    assert values.shape == errors.shape == (6,)
    assert (errors[[0, 1, 3, 4, 5]] > 0).all()
    assert ((values - exact).abs() <= 4 * errors + 1e-12).all(), (values, exact, errors)


def test_exact_shapley_by_hand_for_two_neurons():
    # v(S) = sigmoid(sum_{d in S} x_d) with baseline 0; two neurons x = (1, 2)
    classifier = linear_classifier([1.0, 1.0])
    s = torch.sigmoid
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    phi0 = 0.5 * (s(torch.tensor(1.0)) - s(torch.tensor(0.0))) + 0.5 * (s(torch.tensor(3.0)) - s(torch.tensor(2.0)))
    phi1 = 0.5 * (s(torch.tensor(2.0)) - s(torch.tensor(0.0))) + 0.5 * (s(torch.tensor(3.0)) - s(torch.tensor(1.0)))
    got = exact_shapley(classifier, x, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(got, torch.stack([phi0, phi1]).double())


def test_efficiency_of_signed_values(problem):
    regions, classifier = problem
    values = NeuronConceptShapley(classifier).attribute(regions, baseline="mean", n_permutations=7, absolute=False, seed=3)
    full = classifier.predict_proba(regions).mean()
    empty = classifier.predict_proba(regions.mean(0))
    torch.testing.assert_close(values.sum(), full - empty)


def test_efficiency_with_marginal_baselines(problem):
    regions, classifier = problem
    pool = regions.flip(0) * 0.5 - 1.0  # baselines drawn from other rows
    # Per region and permutation, contributions telescope to L(r) - L(r~), r~ a
    # random pool row; averaged they approach mean L(regions) - mean L(pool).
    values = NeuronConceptShapley(classifier).attribute(
        regions, baseline="marginal", pool=pool, n_permutations=4000, absolute=False, seed=3
    )
    gap = classifier.predict_proba(regions).mean() - classifier.predict_proba(pool).mean()
    assert gap.abs() > 0.1
    torch.testing.assert_close(values.sum(), gap, atol=0.01, rtol=0)


def test_dummy_neuron_gets_zero(problem):
    regions, classifier = problem
    for baseline in ["mean", "marginal"]:
        values = NeuronConceptShapley(classifier).attribute(regions, baseline=baseline, n_permutations=20, seed=0)
        assert values[2] == 0


def test_symmetric_neurons(problem):
    regions, classifier = problem
    exact = exact_shapley(classifier, regions, regions.mean(0))
    torch.testing.assert_close(exact[3], exact[4])
    values, errors = NeuronConceptShapley(classifier).attribute(
        regions, baseline="mean", n_permutations=400, seed=2, return_standard_error=True
    )
    assert (values[3] - values[4]).abs() <= 4 * (errors[3] ** 2 + errors[4] ** 2).sqrt()


@pytest.mark.parametrize("baseline", ["mean", "marginal"])
def test_fast_path_equals_naive_path_on_the_same_draws(baseline):
    generator = torch.Generator().manual_seed(5)
    regions = torch.randn(9, 7, generator=generator, dtype=torch.float64)
    classifiers = [linear_classifier(torch.randn(7, generator=generator, dtype=torch.float64), b) for b in (0.1, -0.4)]
    shapley = NeuronConceptShapley(classifiers)
    kwargs = dict(baseline=baseline, n_permutations=11, absolute=False, return_standard_error=True)
    fast, fast_error = shapley.attribute(regions, fast=True, seed=9, **kwargs)
    naive, naive_error = shapley.attribute(regions, fast=False, seed=9, **kwargs)
    assert fast.shape == (7, 2)
    torch.testing.assert_close(fast, naive, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fast_error, naive_error, rtol=1e-9, atol=1e-14)
    # Where the naive path must split regions into smaller chunks it still sees the same draws.
    small_chunks, _ = shapley.attribute(regions, fast=False, seed=9, chunk_elements=2000, **kwargs)
    torch.testing.assert_close(small_chunks, fast, rtol=1e-12, atol=1e-14)
    # A plain callable goes through the naive path and agrees too.
    as_callable = NeuronConceptShapley(lambda x: torch.stack([c.predict_proba(x) for c in classifiers], -1))
    torch.testing.assert_close(as_callable.attribute(regions, seed=9, **kwargs)[0], fast, rtol=1e-12, atol=1e-14)


def test_chunked_regions_are_assembled_right(problem):
    regions, classifier = problem
    # 60 elements per chunk: one region of 6 neurons x 5 permutations at a time
    chunked = NeuronConceptShapley(classifier).attribute(
        regions, baseline="mean", n_permutations=5, absolute=False, seed=4, chunk_elements=60
    )
    again = NeuronConceptShapley(classifier).attribute(
        regions, baseline="mean", n_permutations=5, absolute=False, seed=4, chunk_elements=60
    )
    torch.testing.assert_close(chunked, again, rtol=0, atol=0)
    full = classifier.predict_proba(regions).mean() - classifier.predict_proba(regions.mean(0))
    torch.testing.assert_close(chunked.sum(), full)


def test_target_error_stops_when_reached(problem):
    regions, classifier = problem
    shapley = NeuronConceptShapley(classifier)
    values, errors = shapley.attribute(
        regions, n_permutations=16, target_error=2e-3, max_permutations=4096, seed=0, return_standard_error=True
    )
    assert errors.max() <= 2e-3
    assert 16 < shapley.n_permutations_ <= 4096 and shapley.n_permutations_ % 16 == 0
    capped = NeuronConceptShapley(classifier)
    capped.attribute(regions, n_permutations=16, target_error=1e-9, max_permutations=64, seed=0)
    assert capped.n_permutations_ == 64


def test_seeded_results_repeat(problem):
    regions, classifier = problem
    a = NeuronConceptShapley(classifier).attribute(regions, seed=11, n_permutations=8)
    b = NeuronConceptShapley(classifier).attribute(regions, seed=11, n_permutations=8)
    c = NeuronConceptShapley(classifier).attribute(regions, seed=12, n_permutations=8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_retrain_variant_runs_and_telescopes(problem):
    regions, classifier = problem
    targets = (regions @ classifier.coef_ + classifier.intercept_ > 0).to(torch.int8)
    shapley = NeuronConceptShapley([classifier])
    values, errors = shapley.attribute(
        regions, baseline="mean", n_permutations=3, absolute=False, retrain=True,
        training_data=(regions, targets), retrain_steps=5, seed=0, return_standard_error=True,
    )
    assert values.shape == errors.shape == (6, 1)
    assert torch.isfinite(values).all() and (errors >= 0).all()
    with pytest.raises(ValueError, match="training_data: retrain=True needs"):
        shapley.attribute(regions, retrain=True)


def test_bad_inputs(problem):
    regions, classifier = problem
    shapley = NeuronConceptShapley(classifier)
    with pytest.raises(ValueError, match="regions: expected R x C"):
        shapley.attribute(regions[0])
    with pytest.raises(ValueError, match="regions: the classifiers take 6 neurons, got 5"):
        shapley.attribute(regions[:, :5])
    nan = regions.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="regions: contains NaN"):
        shapley.attribute(nan)
    with pytest.raises(ValueError, match="baseline: expected 'marginal', 'mean' or a tensor"):
        shapley.attribute(regions, baseline="zero")


# ---------------------------------------------------------------- review defects
def test_unseeded_attribution_leaves_the_global_rng_alone(problem):
    """Defect 2: without a seed, attribute reseeded torch's global RNG (torch.seed())."""
    regions, classifier = problem
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = NeuronConceptShapley(classifier).attribute(regions, n_permutations=4)
    assert torch.equal(torch.get_rng_state(), state)
    second = NeuronConceptShapley(classifier).attribute(regions, n_permutations=4)
    assert not torch.equal(first, second), "two unseeded calls drew the same permutations"


@pytest.mark.parametrize("kwargs, message", [
    ({"n_permutations": 0}, "n_permutations: expected an integer >= 1, got 0"),
    ({"pool": torch.zeros(0, 6)}, r"pool: expected M x 6 rows with M >= 1 \(as wide as regions\), got \(0, 6\)"),
    ({"pool": torch.zeros(5, 4)}, r"pool: expected M x 6 rows .* got \(5, 4\)"),
    ({"baseline": torch.zeros(4)}, r"baseline: expected 6 values \(one per neuron\), got shape \(4,\)"),
    ({"target_error": float("nan")}, "target_error: expected a finite number, got nan"),
])
def test_bad_arguments_are_named(problem, kwargs, message):
    """Defect 7: n_permutations=0 raised ZeroDivisionError; empty or narrow pools/baselines failed obscurely."""
    regions, classifier = problem
    with pytest.raises(ValueError, match=message):
        NeuronConceptShapley(classifier).attribute(regions, seed=0, **kwargs)


def test_inf_or_no_regions_are_named(problem):
    """Defect 7: Inf regions gave NaN values; zero regions gave NaN means."""
    regions, classifier = problem
    infinite = regions.clone()
    infinite[3, 1] = float("inf")
    with pytest.raises(ValueError, match=r"regions: contains Inf \(rows \[3\]\)"):
        NeuronConceptShapley(classifier).attribute(infinite, seed=0)
    with pytest.raises(ValueError, match=r"regions: expected R x C feature vectors with R >= 1, got \(0, 6\)"):
        NeuronConceptShapley(classifier).attribute(regions[:0], seed=0)


def test_exact_shapley_has_the_shape_of_attribute():
    """Defect 8: exact_shapley returned C x 1 for one classifier where attribute returns C."""
    regions = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    one = linear_classifier([1.0, -2.0, 0.5, 0.0])
    two = [one, linear_classifier([0.0, 1.0, 1.0, -1.0])]
    baseline = regions.mean(0)
    for classifiers, shape in ((one, (4,)), (two, (4, 2))):
        exact = exact_shapley(classifiers, regions, baseline, absolute=True)
        sampled = NeuronConceptShapley(classifiers).attribute(regions, baseline=baseline, n_permutations=8, seed=0)
        assert exact.shape == sampled.shape == shape


def test_target_error_holds_when_each_block_stops_on_its_own(problem):
    regions, classifier = problem
    shapley = NeuronConceptShapley(classifier)
    # 6 neurons x 16 permutations x 1 concept per region: 2 regions per block, 6 blocks
    values, errors = shapley.attribute(regions, n_permutations=16, target_error=3e-3, seed=0, chunk_elements=192,
                                       return_standard_error=True)
    assert errors.max() <= 3e-3
    exact = exact_shapley(classifier, regions, regions.mean(0), absolute=True)
    values_mean = shapley.attribute(regions, baseline="mean", n_permutations=16, target_error=3e-3, seed=0,
                                    chunk_elements=192)
    assert ((values_mean - exact).abs() <= 4 * 3e-3 + 1e-9).all()


def test_antithetic_orders_halve_the_error_at_equal_permutations():
    generator = torch.Generator().manual_seed(0)
    classifiers = [linear_classifier(torch.randn(10, generator=generator), -0.5) for _ in range(3)]
    regions = 1.5 * torch.randn(16, 10, generator=generator, dtype=torch.float64)
    exact = exact_shapley(classifiers, regions, torch.zeros(10), absolute=False)
    shapley = NeuronConceptShapley(classifiers)

    def mean_squared_error(antithetic):
        return torch.stack([
            ((shapley.attribute(regions, baseline=torch.zeros(10), n_permutations=8, absolute=False, seed=seed,
                                antithetic=antithetic) - exact) ** 2).mean()
            for seed in range(30)
        ]).mean()

    # measured: the antithetic error variance is about half the plain one
    assert mean_squared_error(True) < 0.7 * mean_squared_error(False)
    values, errors = shapley.attribute(regions, baseline=torch.zeros(10), n_permutations=64, absolute=False, seed=1,
                                       antithetic=True, return_standard_error=True)
    assert ((values - exact).abs() <= 4 * errors + 1e-9).all() and shapley.n_permutations_ == 64
    with pytest.raises(ValueError, match="antithetic: needs an even n_permutations"):
        shapley.attribute(regions, n_permutations=5, antithetic=True)


@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("baseline", ["marginal", "fixed"])
def test_compiled_walk_equals_the_tensor_and_naive_paths(antithetic, baseline):
    dtype = torch.float32  # the compiled walk's precision (float64 takes the tensor path)
    generator = torch.Generator().manual_seed(3)
    n_perm, n_regions, n_neurons = 6, 4, 30
    regions = torch.randn(n_regions, n_neurons, generator=generator, dtype=dtype)
    # coefficients large enough that some logits pass +-88, where float32's exp saturates
    classifiers = [linear_classifier(scale * torch.randn(n_neurons, generator=generator, dtype=dtype), bias, dtype)
                   for scale, bias in ((0.5, 0.2), (3.0, -1.0), (40.0, 0.5))]
    shapley = NeuronConceptShapley(classifiers)
    pool = torch.randn(16, n_neurons, generator=generator, dtype=dtype)
    seeds, rows = shapley._draw(n_perm, n_regions, len(pool), generator)
    orders = torch.from_numpy(_shuffled_orders(seeds, n_regions, n_neurons))
    baselines = pool[rows] if baseline == "marginal" else pool[0].expand(n_perm, n_regions, n_neurons)
    sums = {path: shapley._gain_sums(regions, baselines, orders, antithetic, path) for path in ("tensors", "naive")}
    # the compiled walk draws the same orders from the seeds as it goes
    coef, intercept = torch.stack([c.coef_ for c in classifiers]), torch.stack([c.intercept_ for c in classifiers])
    baseline_rows = pool if baseline == "marginal" else pool[:1]
    total, square = shapley._gain_sums_compiled(regions, [n_regions], baseline_rows, baseline_rows @ coef.T + intercept,
                                                seeds[None], rows if baseline == "marginal" else None, antithetic)
    sums["compiled"] = (total, square[0])
    tolerance = {"rtol": 1e-4, "atol": 1e-5}
    for path in ("tensors", "naive"):
        for compiled, other in zip(sums["compiled"], sums[path]):
            assert compiled.dtype == dtype and compiled.shape == other.shape
            torch.testing.assert_close(compiled, other, **tolerance)
    # efficiency: a region's gains over one order add up to v(all) - v(none), so their sum over orders does too
    logits_all = regions @ torch.stack([c.coef_ for c in classifiers]).T + torch.stack([c.intercept_ for c in classifiers])
    logits_none = baselines @ torch.stack([c.coef_ for c in classifiers]).T + torch.stack([c.intercept_ for c in classifiers])
    expected = (torch.sigmoid(logits_all)[None] - torch.sigmoid(logits_none)).sum(0)  # r x K
    torch.testing.assert_close(sums["compiled"][0].sum(1), expected, **tolerance)


@pytest.mark.parametrize("antithetic", [False, True])
def test_grouped_compiled_blocks_equal_the_tensor_path_block_by_block(antithetic):
    """float32 on a CPU walks several blocks per compiled call, the threads sharing them out; float64 takes the
    tensor path one block at a time. Both see the same draws, so values and errors agree to float32's precision."""
    generator = torch.Generator().manual_seed(8)
    n_regions, n_neurons = 23, 20
    regions = torch.randn(n_regions, n_neurons, generator=generator, dtype=torch.float64)
    shapley = NeuronConceptShapley([linear_classifier(torch.randn(n_neurons, generator=generator), bias)
                                    for bias in (0.3, -0.2)])
    # 4 permutations x 20 neurons x 2 concepts a region: blocks of 2 regions (the last of 1), groups of 2 blocks
    kwargs = dict(n_permutations=4, chunk_elements=400, antithetic=antithetic, seed=2, return_standard_error=True)
    by_block = shapley.attribute(regions, **kwargs)
    threads = torch.get_num_threads()
    try:
        grouped = {count: (torch.set_num_threads(count), shapley.attribute(regions.float(), **kwargs))[1]
                   for count in (1, 2)}
    finally:
        torch.set_num_threads(threads)
    for got, expected in zip(grouped[2], by_block):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-6)
    # each block is walked by one thread from start to end, so the thread count changes nothing
    for two, one in zip(grouped[2], grouped[1]):
        assert torch.equal(two, one)


def test_shuffled_orders_are_uniform_permutations():
    orders = _shuffled_orders(torch.arange(60000).numpy() * 7919, 2, 4)  # 120,000 orders of 4 neurons
    assert orders.shape == (60000, 2, 4)
    assert (torch.from_numpy(orders).sort(-1).values == torch.arange(4)).all()
    # each of the 24 orders about equally often: a chi-squared test (23 degrees of freedom; p = 1e-6 at 63)
    codes = torch.from_numpy(orders.reshape(-1, 4)) @ torch.tensor([64, 16, 4, 1])
    counts = torch.bincount(codes, minlength=256)[torch.bincount(codes, minlength=256) > 0].double()
    assert len(counts) == 24
    expected = len(codes) / 24
    assert ((counts - expected) ** 2 / expected).sum() < 63
    # the same seed gives the same orders, another seed other ones
    again = _shuffled_orders(torch.arange(3).numpy() * 7919, 2, 50)
    assert (again == _shuffled_orders(torch.arange(3).numpy() * 7919, 2, 50)).all()
    assert not (again == _shuffled_orders(torch.arange(3).numpy() * 7919 + 1, 2, 50)).all()

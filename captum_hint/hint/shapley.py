"""Monte-Carlo Shapley values of neurons for concept classifiers (HINT, Eq. 2).

For a classifier ``L`` and a region ``r`` (a C-dim feature vector), the value
of a coalition ``S`` of neurons is ``v_r(S) = L(r_S, r~_{not S})``: the neurons
outside ``S`` take *baseline* values ``r~``. A neuron's Shapley value for ``r``
is its mean marginal contribution ``v_r(S u d) - v_r(S)`` over random orders
of the neurons. HINT's score (Eq. 2) averages over regions the *absolute
value of the per-region Monte-Carlo mean*::

    phi_d = 1/|R| sum_r | 1/M sum_i (L(S_i u d) - L(S_i)) |

``absolute=False`` gives the signed values (which satisfy efficiency:
``sum_d phi_d = mean_r [v_r(all) - v_r(none)]``).

Paths:

* fast (linear classifiers): walking a permutation adds ``alpha_d (r_d - r~_d)``
  to the logit, so all prefixes of a permutation come from one cumulative sum:
  ``O(C)`` per permutation and region. On a CPU one compiled walk (numba)
  draws each order and adds each gain to its neuron's sums as it goes, over a
  group of region blocks that torch's threads share out (or one block's
  permutations); elsewhere (a GPU) the same sums come from tensor operations
  over permutations, regions and concepts;
* naive (any classifier callable, or ``fast=False``): re-evaluates the
  classifier on every prefix coalition, ``O(C^2)``;
* ``retrain=True`` (the paper's variant): for each permutation, one classifier
  per prefix coalition is re-fitted with the other neurons randomized,
  warm-started from the given classifier and trained as one batched problem.
  This is slow: ``O(steps * rows * C^2 * K)`` per permutation.

Every draw (permutations, baseline rows) comes from one generator, so equal
seeds give equal results and the fast and naive paths see the same draws.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple, Union

import numba
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.checks import check_finite, check_number, check_positive_int
from ..core.threads import map_row_ranges
from .classifiers import IGNORE, ConceptClassifier

__all__ = ["NeuronConceptShapley", "exact_shapley"]

ClassifierLike = Union[ConceptClassifier, Sequence[ConceptClassifier], Callable[[Tensor], Tensor]]


_U64 = np.uint64


@numba.njit(cache=True, nogil=True, inline="always")
def _splitmix64(state):
    """(next state, 64 random bits): Steele, Lea and Flood's SplitMix64."""
    state = state + _U64(0x9E3779B97F4A7C15)
    bits = (state ^ (state >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    bits = (bits ^ (bits >> _U64(27))) * _U64(0x94D049BB133111EB)
    return state, bits ^ (bits >> _U64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _shuffle(order, state):
    """Fill ``order`` with a uniformly random order of ``range(len(order))``; returns the generator's next state.

    Fisher-Yates; the index of each swap is Lemire's unbiased bounded draw.
    About 4 ns an element here, where numpy's ``Generator.permuted`` over the
    last axis takes about 30.
    """
    for i in range(order.shape[0]):
        order[i] = i
    low = _U64(0xFFFFFFFF)
    for i in range(order.shape[0] - 1, 0, -1):
        bound = _U64(i + 1)
        state, bits = _splitmix64(state)
        product = (bits >> _U64(32)) * bound  # its top 32 bits are the draw
        if (product & low) < bound:  # rejection keeps the draw exactly uniform
            threshold = (_U64(0x100000000) - bound) % bound
            while (product & low) < threshold:
                state, bits = _splitmix64(state)
                product = (bits >> _U64(32)) * bound
        j = product >> _U64(32)
        order[i], order[j] = order[j], order[i]
    return state


@numba.njit(cache=True, nogil=True)
def _shuffled_orders(seeds, n_regions, n_neurons):
    """P x R x C random orders of ``range(C)``: permutation p's from ``seeds[p]``, region after region (:func:`_shuffle`)."""
    orders = np.empty((len(seeds), n_regions, n_neurons), np.int64)
    for p in range(len(seeds)):
        state = _U64(seeds[p])
        for r in range(n_regions):
            state = _shuffle(orders[p, r], state)
    return orders


_F32 = np.float32


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _sigmoid_float32(values, scratch):
    """``values`` (float32) through the sigmoid in place; ``scratch``: as many int32.

    ``exp`` is Cephes' single-precision polynomial (error under 2e-7 relative),
    written out so that the loops compile to SIMD: the C library's ``expf``
    is called one value at a time.
    """
    for i in range(values.shape[0]):
        power = min(max(-values[i], _F32(-87.0)), _F32(88.0))
        n = np.floor(power * _F32(1.44269504) + _F32(0.5))
        r = power - n * _F32(0.693359375) + n * _F32(2.12194440e-4)  # power - n ln 2, in two parts
        p = _F32(1.9875691500e-4) * r + _F32(1.3981999507e-3)
        p = p * r + _F32(8.3334519073e-3)
        p = p * r + _F32(4.1665795894e-2)
        p = p * r + _F32(1.6666665459e-1)
        p = p * r + _F32(5.0000001201e-1)
        values[i] = p * r * r + r + _F32(1.0)  # exp(r)
        scratch[i] = (np.int32(n) + np.int32(127)) << np.int32(23)  # the bits of the float 2^n
    two_to_n = scratch.view(np.float32)
    for i in range(values.shape[0]):
        values[i] = _F32(1.0) / (_F32(1.0) + values[i] * two_to_n[i])


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _prefix_values(walk, neuron_moves, coef_t, start, values, scratch, logit):
    """The classifiers' outputs after each prefix of the order ``walk`` into ``values`` ((C + 1) x K, flat).

    ``neuron_moves`` (C): each neuron's move from its baseline; ``start`` (K):
    the logits with every neuron at its baseline. The logit is summed in
    float64 and rounded to float32, as torch's ``cumsum`` does, then goes
    through :func:`_sigmoid_float32`.
    """
    n_neurons, n_concepts = coef_t.shape
    prefix = values.reshape((n_neurons + 1, n_concepts))
    for k in range(n_concepts):  # torch adds the start to the first step in the input's precision
        prefix[0, k] = start[k]  # element by element: a row assignment compiles numba's string formatting (~2 s)
        prefix[1, k] = coef_t[walk[0], k] * neuron_moves[walk[0]] + start[k]
        logit[k] = prefix[1, k]
    for j in range(1, n_neurons):
        move = neuron_moves[walk[j]]
        steps = coef_t[walk[j]]
        for k in range(n_concepts):
            logit[k] += steps[k] * move
            prefix[j + 1, k] = logit[k]
    _sigmoid_float32(values, scratch)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _walk_blocks(regions, pool, rows, seeds, start, coef_t, bounds, blocks, permutations, antithetic, total, square):
    """Walk blocks ``blocks[0]:blocks[1]``'s permutations ``permutations[0]:permutations[1]``, drawing each order as it goes.

    ``regions`` (G x C): a group of blocks' regions, block b's at rows
    ``bounds[b]:bounds[b + 1]``; ``seeds`` (B x P): block b's permutation p's
    orders come region after region from ``seeds[b, p]``, as
    :func:`_shuffled_orders` draws them; ``rows`` (P x G): each region's
    baseline row of ``pool``; ``start`` (P x G x K): those rows' logits;
    ``coef_t`` (C x K); all float32. Each neuron's gains are added to
    ``total`` (G x C x K) and their squares to ``square`` (B x C x K). With
    ``antithetic`` each order is walked forwards and backwards and a neuron's
    gain is the mean of the two. (float64 inputs take the tensor path: a
    float64 variant of this kernel took several seconds more to compile than
    it saved.)
    """
    n_neurons, n_concepts = coef_t.shape
    logit = np.empty(n_concepts, np.float64)
    values = np.empty(((n_neurons + 1) * n_concepts,), np.float32)  # after each prefix of the walk, by position
    prefix = values.reshape((n_neurons + 1, n_concepts))
    scratch = np.empty(values.shape[0], np.int32)
    pair = np.empty((n_neurons, n_concepts), np.float64)  # antithetic: the forward walk's gains, by neuron
    order = np.empty(n_neurons, np.int64)
    neuron_moves = np.empty(n_neurons, np.float32)
    for b in range(blocks[0], blocks[1]):
        for p in range(permutations[0], permutations[1]):
            state = _U64(seeds[b, p])
            for i in range(bounds[b], bounds[b + 1]):
                state = _shuffle(order, state)
                baseline = pool[rows[p, i]]
                for c in range(n_neurons):
                    neuron_moves[c] = regions[i, c] - baseline[c]
                for backwards in range(2 if antithetic else 1):
                    walk = order[::-1] if backwards else order
                    _prefix_values(walk, neuron_moves, coef_t, start[p, i], values, scratch, logit)
                    if antithetic and not backwards:  # keep the gains until the reverse walk
                        for j in range(n_neurons):
                            kept = pair[walk[j]]
                            for k in range(n_concepts):
                                kept[k] = prefix[j + 1, k] - prefix[j, k]
                        continue
                    for j in range(n_neurons):
                        neuron = walk[j]
                        summed, squared, kept = total[i, neuron], square[b, neuron], pair[neuron]
                        for k in range(n_concepts):
                            gain = np.float64(prefix[j + 1, k] - prefix[j, k])
                            if antithetic:
                                gain = 0.5 * (kept[k] + gain)
                            summed[k] += gain
                            squared[k] += gain * gain


def _as_linear(classifiers) -> Optional[Tuple[Tensor, Tensor]]:
    """(K x C coef, K intercept) if the classifiers are linear ConceptClassifiers."""
    items = [classifiers] if isinstance(classifiers, ConceptClassifier) else classifiers
    if isinstance(items, (list, tuple)) and items and all(isinstance(c, ConceptClassifier) for c in items):
        return torch.stack([c.coef_ for c in items]), torch.stack([c.intercept_ for c in items])
    return None


def _coalition_value_fn(classifiers) -> Callable[[Tensor], Tensor]:
    """A function mapping ... x C features to ... x K classifier outputs."""
    linear = _as_linear(classifiers)
    if linear is not None:
        coef, intercept = linear
        return lambda x: torch.sigmoid(x @ coef.T.to(x) + intercept.to(x))
    if callable(classifiers):
        return lambda x: _ensure_concept_dim(classifiers(x), x)
    raise TypeError(
        "classifiers: expected a ConceptClassifier, a list of them, or a callable "
        "mapping R x C features to R (or R x K) probabilities"
    )


def _ensure_concept_dim(out: Tensor, x: Tensor) -> Tensor:
    return out.unsqueeze(-1) if out.dim() == x.dim() - 1 else out


def exact_shapley(
    classifiers: ClassifierLike, regions: Tensor, baseline: Tensor, absolute: bool = False
) -> Tensor:
    """Exact Shapley values by enumerating all ``2^C`` coalitions (C <= 16).

    Args:
        classifiers: as for :class:`NeuronConceptShapley`.
        regions: R x C.
        baseline: C (the values of neurons outside a coalition).
        absolute: average ``|phi_r|`` over regions (Eq. 2) instead of ``phi_r``.

    Returns:
        C (one :class:`ConceptClassifier` given) or C x K.
    """
    if regions.dim() != 2 or len(regions) == 0:
        raise ValueError(f"regions: expected R x C feature vectors with R >= 1, got shape {tuple(regions.shape)}")
    n_neurons = regions.shape[1]
    if baseline.numel() != n_neurons:
        raise ValueError(f"baseline: expected {n_neurons} values (one per neuron), got shape {tuple(baseline.shape)}")
    if n_neurons > 16:
        raise ValueError(f"regions: exact Shapley enumerates 2^C coalitions; C = {n_neurons} is too many (max 16)")
    value = _coalition_value_fn(classifiers)
    coalitions = (torch.arange(2**n_neurons)[:, None] >> torch.arange(n_neurons)) & 1  # 2^C x C
    inputs = torch.where(coalitions[None].bool(), regions[:, None], baseline.reshape(-1))  # R x 2^C x C
    values = value(inputs)  # R x 2^C x K
    sizes = coalitions.sum(1)
    weights = torch.tensor(
        [math.factorial(s) * math.factorial(n_neurons - s - 1) / math.factorial(n_neurons) for s in range(n_neurons)],
        dtype=values.dtype,
    )
    phi = torch.zeros(regions.shape[0], n_neurons, values.shape[-1], dtype=values.dtype)
    for d in range(n_neurons):
        without = coalitions[:, d] == 0
        with_d = torch.nonzero(without).flatten() + (1 << d)
        gain = values[:, with_d] - values[:, without]  # R x 2^(C-1) x K
        phi[:, d] = (gain * weights[sizes[without]][None, :, None]).sum(1)
    values = (phi.abs() if absolute else phi).mean(0)
    # One classifier gives C values, as NeuronConceptShapley.attribute does.
    return values[:, 0] if isinstance(classifiers, ConceptClassifier) else values


class NeuronConceptShapley:
    """Shapley value of each neuron for concept classifiers, Captum style.

    Args:
        classifiers: a :class:`~captum_hint.ConceptClassifier`, a list of K of
            them (fast path), or any callable mapping R x C features to R or
            R x K probabilities (naive path).

    After :meth:`attribute`, ``standard_error_`` holds the Monte-Carlo
    standard error of each value and ``n_permutations_`` the number used.
    """

    def __init__(self, classifiers: ClassifierLike):
        self.classifiers = classifiers
        self._linear = _as_linear(classifiers)
        self._value = _coalition_value_fn(classifiers)
        self._single = isinstance(classifiers, ConceptClassifier)

    # ------------------------------------------------------------------ draws
    @staticmethod
    def _draw(n_perm: int, n_regions: int, pool_size: int, generator) -> Tuple[np.ndarray, Optional[Tensor]]:
        """One seed per permutation (P) and baseline rows (P x R; None without a pool), drawn from ``generator``.

        Permutation p's orders of the neurons come from ``seeds[p]``, region
        after region (:func:`_shuffled_orders`; the compiled walk draws the
        same ones as it goes), so every path sees the same orders.
        """
        seeds = torch.randint(2**62, (n_perm,), generator=generator).numpy()
        rows = torch.randint(pool_size, (n_perm, n_regions), generator=generator) if pool_size else None
        return seeds, rows

    # ------------------------------------------------------------------ paths
    def _contributions_fast(self, regions: Tensor, baselines: Tensor, orders: Tensor) -> Tensor:
        """Marginal contributions P x R x C x K in permutation order, via cumulative logits (linear classifiers).

        Position j of permutation p holds the gain of neuron ``orders[p, r, j]``.
        Every step runs in place on one P x R x C x K buffer: the coefficients
        in permutation order, times the neurons' moves from the baseline,
        summed from the baseline's logit, through the sigmoid; the gains are
        their differences.
        """
        coef, intercept = (t.to(regions) for t in self._linear)
        n_perm, n_regions, n_neurons = baselines.shape
        orders = orders.expand(n_perm, n_regions, -1)
        moves = (regions - baselines).gather(-1, orders)  # P x R x C, in permutation order
        logits = coef.T.contiguous().index_select(0, orders.reshape(-1)).view(n_perm, n_regions, n_neurons, -1)
        logits.mul_(moves[..., None])
        start = baselines @ coef.T + intercept  # P x R x K: every neuron at its baseline
        logits[:, :, 0].add_(start)
        values = logits.cumsum_(-2).sigmoid_()  # the classifier after each prefix of the permutation
        gains = torch.empty_like(values)
        torch.sub(values[:, :, 1:], values[:, :, :-1], out=gains[:, :, 1:])
        torch.sub(values[:, :, 0], torch.sigmoid(start), out=gains[:, :, 0])
        return gains

    def _contributions_naive(self, regions: Tensor, baselines: Tensor, orders: Tensor) -> Tensor:
        """Same as the fast path, by evaluating the classifier on every prefix coalition."""
        n_perm, n_regions, n_neurons = baselines.shape
        orders = orders.expand(n_perm, n_regions, -1)
        rank = orders.argsort(-1)  # position of each neuron in its order
        sizes = torch.arange(n_neurons + 1, device=regions.device)
        member = rank[:, :, None, :] < sizes[None, None, :, None]  # P x R x (C+1) x C
        inputs = torch.where(member, regions[None, :, None, :], baselines[:, :, None, :])
        return self._value(inputs).diff(dim=2)  # P x R x C x K: the gain at each position

    def _gain_sums(self, regions: Tensor, baselines: Tensor, orders: Tensor, antithetic: bool,
                   path: str) -> Tuple[Tensor, Tensor]:
        """Each neuron's gains summed over the permutations per region (r x C x K), and their squares summed (C x K).

        ``path``: ``"tensors"`` (linear classifiers, any device) or
        ``"naive"``. With ``antithetic`` each order also runs reversed on the
        same baselines, and a neuron's gain is the mean over the pair.
        """
        both = torch.cat([orders, orders.flip(-1)]) if antithetic else orders
        paired = torch.cat([baselines, baselines]) if antithetic else baselines
        contributions = self._contributions_fast if path == "tensors" else self._contributions_naive
        gains = contributions(regions, paired, both)  # P x r x C x K, permutation order
        if antithetic:  # a reversed order's position j is its pair's position C - 1 - j
            half = len(orders)
            gains = gains[:half].add_(gains[half:].flip(2)).mul_(0.5)
        # back to neuron order (a scatter is several times faster than index_add_ on a CPU)
        gains = torch.empty_like(gains).scatter_(2, orders[..., None].expand_as(gains), gains)
        return gains.sum(0), gains.square_().sum((0, 1))

    def _gain_sums_compiled(self, regions: Tensor, sizes: Sequence[int], baseline_rows: Tensor,
                            baseline_logits: Tensor, seeds: np.ndarray, rows: Optional[Tensor],
                            antithetic: bool) -> Tuple[Tensor, Tensor]:
        """:meth:`_gain_sums` of a group of blocks in one compiled walk (linear classifiers, float32 on a CPU).

        ``regions``: the group's rows, ``sizes[b]`` of them for block b in
        turn; ``seeds`` (B x P) and ``rows`` (P x G; None: row 0 for all):
        each block's draws from :meth:`_draw`, side by side; ``baseline_rows``
        (M x C) and ``baseline_logits`` (M x K): the rows the baselines come
        from and their logits (a fixed baseline: one row). Returns the gains
        summed per region (G x C x K) and their squares summed per block
        (B x C x K). Torch's threads share out the blocks, or a lone block's
        permutations; no torch operation runs between the walks, whose
        threads would then share the cores with torch's spinning ones.
        """
        n_blocks, n_perm = seeds.shape
        if rows is None:
            rows = torch.zeros(n_perm, len(regions), dtype=torch.long)
        arrays = (regions.numpy(), baseline_rows.numpy(), rows.numpy(), seeds, baseline_logits[rows].numpy(),
                  self._linear[0].T.to(regions).contiguous().numpy(), np.cumsum([0, *sizes]))
        n_neurons, n_concepts = regions.shape[1], len(self._linear[0])
        total = np.zeros((len(regions), n_neurons, n_concepts))
        square = np.zeros((n_blocks, n_neurons, n_concepts))
        if n_blocks > 1:  # each thread walks whole blocks, writing only their rows
            map_row_ranges(lambda first, stop: _walk_blocks(*arrays, (first, stop), (0, n_perm), antithetic,
                                                            total, square), n_blocks)
        else:  # the threads share out the permutations, each summing into its own arrays

            def walk(first: int, stop: int) -> Tuple[np.ndarray, np.ndarray]:
                own_total, own_square = np.zeros_like(total), np.zeros_like(square)
                _walk_blocks(*arrays, (0, 1), (first, stop), antithetic, own_total, own_square)
                return own_total, own_square

            totals, squares = zip(*map_row_ranges(walk, n_perm))
            total, square = np.sum(totals, 0), np.sum(squares, 0)
        return torch.from_numpy(total).to(regions.dtype), torch.from_numpy(square).to(regions.dtype)

    # ------------------------------------------------------------------ main
    def attribute(
        self,
        regions: Tensor,
        baseline: Union[str, Tensor] = "marginal",
        pool: Optional[Tensor] = None,
        n_permutations: int = 64,
        target_error: Optional[float] = None,
        max_permutations: int = 4096,
        absolute: bool = True,
        fast: bool = True,
        retrain: bool = False,
        training_data: Optional[Tuple[Tensor, Tensor]] = None,
        retrain_steps: int = 30,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        chunk_elements: int = 1 << 22,
        antithetic: bool = False,
        return_standard_error: bool = False,
        progress: bool = False,
        device=None,
    ):
        """Shapley values of every neuron for every concept classifier.

        Args:
            regions: R x C region feature vectors ``r`` (Eq. 2 averages over them).
            baseline: ``"marginal"`` (neurons outside a coalition take the values
                of a random row of ``pool``, drawn per permutation and region;
                the default), ``"mean"`` (the mean row of ``pool``;
                deterministic), or a C tensor.
            pool: rows to draw marginal baselines from / average for the mean
                (default: ``regions``).
            n_permutations: permutations per region (per round when
                ``target_error`` is set).
            target_error: keep adding rounds of ``n_permutations`` to a block
                of regions until the block's standard error of every value is
                below this (then so is the overall one), or
                ``max_permutations`` is reached.
            absolute: Eq. 2 (mean over regions of the absolute per-region value); False
                gives signed values.
            fast: use the cumulative-logit path for linear classifiers.
            retrain: the paper's variant with classifiers re-fitted per
                coalition; needs ``training_data=(features M x C, targets M x K)``
                with targets 1/0/:data:`~captum_hint.hint.classifiers.IGNORE`. Slow.
            retrain_steps: Adam steps per re-fit.
            seed / generator: reproducible draws.
            chunk_elements: bound on the P x R x K x C work tensor (the naive
                path's P x R x (C+1) x K is bounded alike). Regions are
                processed in blocks of about ``chunk_elements / (C K P)`` rows,
                each through all its permutations (and ``target_error``
                rounds), keeping only per-block sums: memory does not grow
                with R. Results depend on it only through the block size.
                On a CPU (float32) the compiled walk takes several blocks a
                call, its threads sharing them out; their float64 sums stay
                within a float32 tensor of ``chunk_elements``.
            antithetic: pair every random order with its reverse (same
                baseline rows) and average each pair: a variance reduction
                at the same number of permutations (``n_permutations`` must be
                even); standard errors are taken over the pairs.
            return_standard_error: also return the standard errors.
            device: where to compute (default: ``regions``' device); the
                draws come from ``generator`` on the CPU, so a seed gives the
                same orders on every device.

        Returns:
            C (one classifier given) or C x K values; with
            ``return_standard_error``, a pair (values, standard errors).
        """
        if not isinstance(regions, Tensor) or regions.dim() != 2 or len(regions) == 0:
            shape = tuple(regions.shape) if isinstance(regions, Tensor) else type(regions).__name__
            raise ValueError(f"regions: expected R x C feature vectors with R >= 1, got {shape}")
        check_finite("regions", regions, "check the layer's activations")
        check_positive_int("n_permutations", n_permutations)
        check_positive_int("max_permutations", max_permutations)
        check_positive_int("chunk_elements", chunk_elements)
        check_positive_int("retrain_steps", retrain_steps)
        if antithetic and (n_permutations % 2 or retrain):
            raise ValueError("antithetic: needs an even n_permutations (orders come in pairs) and retrain=False")
        if target_error is not None:
            check_number("target_error", target_error, low=0.0, low_open=True)
        if seed is not None and generator is not None:
            raise ValueError("seed, generator: give one of them, not both")
        if generator is None:
            generator = torch.Generator()
            # No seed: a fresh random one, drawn without touching torch's global RNG.
            generator.manual_seed(seed) if seed is not None else generator.seed()
        n_neurons = regions.shape[1]
        if self._linear is not None and self._linear[0].shape[1] != n_neurons:
            raise ValueError(
                f"regions: the classifiers take {self._linear[0].shape[1]} neurons, got {n_neurons}"
            )
        dtype = regions.dtype if regions.is_floating_point() and regions.dtype != torch.float16 else torch.float32
        device = torch.device(device) if device is not None else regions.device
        regions = regions.to(device, dtype)
        if pool is None:
            pool = regions
        elif not isinstance(pool, Tensor) or pool.dim() != 2 or len(pool) == 0 or pool.shape[1] != n_neurons:
            shape = tuple(pool.shape) if isinstance(pool, Tensor) else type(pool).__name__
            raise ValueError(f"pool: expected M x {n_neurons} rows with M >= 1 (as wide as regions), got {shape}")
        else:
            pool = check_finite("pool", pool).to(device, dtype)
        if isinstance(baseline, Tensor):
            if baseline.numel() != n_neurons:
                raise ValueError(f"baseline: expected {n_neurons} values (one per neuron), got shape {tuple(baseline.shape)}")
            fixed = check_finite("baseline", baseline).to(device, dtype).reshape(-1)
        elif baseline == "mean":
            fixed = pool.mean(0)
        elif baseline == "marginal":
            fixed = None
        else:
            raise ValueError(f"baseline: expected 'marginal', 'mean' or a tensor, got {baseline!r}")
        if retrain:
            values, errors = self._attribute_retrained(
                regions, pool, fixed, training_data, n_permutations, retrain_steps, absolute, generator, progress
            )
        else:
            values, errors = self._attribute_sampled(
                regions, pool, fixed, n_permutations, target_error, max_permutations, absolute, fast,
                generator, chunk_elements, antithetic, progress,
            )
        if self._single:
            values, errors = values[:, 0], errors[:, 0]
        self.standard_error_ = errors
        return (values, errors) if return_standard_error else values

    def _attribute_sampled(self, regions, pool, fixed, n_perm, target_error, max_perm, absolute, fast,
                           generator, chunk_elements, antithetic, progress):
        n_regions, n_neurons = regions.shape
        n_concepts = self._linear[0].shape[0] if self._linear is not None else self._value(regions[:1]).shape[-1]
        use_fast = fast and self._linear is not None
        compiled = regions.device.type == "cpu" and regions.dtype == torch.float32
        path = ("compiled" if compiled else "tensors") if use_fast else "naive"
        # Draws are taken per block of regions sized by the fast path's cost, so
        # both paths see the same draws; the naive path computes in sub-blocks.
        rows_per_block = max(1, chunk_elements // (n_neurons * n_concepts * n_perm))
        per_row = n_neurons * n_concepts * (1 if use_fast else n_neurons + 1)
        rows_per_chunk = max(1, chunk_elements // (per_row * n_perm))
        # The compiled walk takes a group of blocks per call (its threads share them out), as many as keep
        # the group's per-region float64 sums within the bytes of a float32 work tensor of chunk_elements;
        # elsewhere, and while rounds of target_error decide each block's draws, a group is one block.
        blocks_per_group = 1
        if path == "compiled":
            if target_error is None:
                blocks_per_group = max(1, chunk_elements // (2 * rows_per_block * n_neurons * n_concepts))
            coef, intercept = (t.to(regions) for t in self._linear)
            baseline_rows = pool if fixed is None else fixed[None]
            baseline_logits = baseline_rows @ coef.T + intercept  # the logit with every neuron at its baseline
        # Only per-block sums are kept, so memory does not grow with the number of regions.
        value_sum = regions.new_zeros(n_neurons, n_concepts)
        variance_sum = torch.zeros_like(value_sum)
        used = 0
        half = n_perm // 2 if antithetic else n_perm  # sampling units per round
        max_units = max_perm // 2 if antithetic else max_perm
        blocks = range(0, n_regions, rows_per_block)
        with tqdm(total=len(blocks), desc="Shapley region blocks", disable=not progress, leave=False) as bar:
            for first_block in range(0, len(blocks), blocks_per_group):
                group = blocks[first_block : first_block + blocks_per_group]
                sizes = [min(rows_per_block, n_regions - block) for block in group]
                group_regions = regions[group[0] : group[0] + sum(sizes)]
                total = regions.new_zeros(len(group_regions), n_neurons, n_concepts)  # per region and neuron
                square_sum = regions.new_zeros(len(group), n_neurons, n_concepts)  # per block, over its regions
                done = 0  # sampling units: permutations, or antithetic pairs of them
                while True:
                    draws = [self._draw(half, size, len(pool) if fixed is None else 0, generator) for size in sizes]
                    if path == "compiled":
                        rows = None if fixed is not None else torch.cat([block_rows for _, block_rows in draws], 1)
                        group_total, group_square = self._gain_sums_compiled(
                            group_regions, sizes, baseline_rows, baseline_logits,
                            np.stack([seeds for seeds, _ in draws]), rows, antithetic)
                        total += group_total
                        square_sum += group_square
                    else:
                        (seeds, rows), = draws  # one block
                        orders = torch.from_numpy(_shuffled_orders(seeds, sizes[0], n_neurons)).to(regions.device)
                        for start in range(0, sizes[0], rows_per_chunk):
                            part = slice(start, start + rows_per_chunk)
                            chunk = group_regions[part]
                            baselines = (pool[rows[:, part].to(regions.device)] if fixed is None
                                         else fixed.expand(half, len(chunk), n_neurons))
                            chunk_total, chunk_square = self._gain_sums(chunk, baselines, orders[:, part], antithetic,
                                                                        path)
                            total[part] += chunk_total
                            square_sum[0] += chunk_square
                    done += half
                    mean = total / done
                    # each block's summed per-region variances of the sampling units (unbiased)
                    mean_squares = torch.stack([block_mean.square().sum(0) for block_mean in mean.split(sizes)])
                    variance = ((square_sum / done - mean_squares) * (done / max(done - 1, 1))).clamp_min(0)
                    block_error = (variance / done).sqrt() / torch.tensor(sizes, device=regions.device)[:, None, None]
                    if target_error is None or done + half > max_units or block_error.max() <= target_error:
                        break
                for block_mean, block_variance in zip(mean.split(sizes), variance):
                    value_sum += (block_mean.abs() if absolute else block_mean).sum(0)
                    # first-order: |.| does not change a mean's variance; regions are independent
                    variance_sum += block_variance / done
                used = max(used, 2 * done if antithetic else done)
                bar.update(len(group))
        self.n_permutations_ = used
        return value_sum / n_regions, variance_sum.sqrt() / n_regions

    def _attribute_retrained(self, regions, pool, fixed, training_data, n_perm, steps, absolute, generator, progress):
        if self._linear is None:
            raise ValueError("retrain: needs linear ConceptClassifier(s) to warm-start from")
        if training_data is None:
            raise ValueError("training_data: retrain=True needs (features M x C, targets M x K)")
        features, targets = training_data
        targets = (targets[:, None] if targets.dim() == 1 else targets).to(regions.device)
        coef, intercept = (t.to(regions) for t in self._linear)
        n_concepts, n_neurons = coef.shape
        if targets.shape[1] != n_concepts:
            raise ValueError(f"training_data: expected targets with {n_concepts} columns, got {targets.shape[1]}")
        features = features.to(regions)
        n_regions = len(regions)
        total = regions.new_zeros(n_regions, n_concepts, n_neurons)
        per_permutation = []
        for _ in tqdm(range(n_perm), desc="Shapley (retrained)", disable=not progress, leave=False):
            seeds, _ = self._draw(1, 1, 0, generator)
            rank = torch.from_numpy(_shuffled_orders(seeds, 1, n_neurons))[0, 0].to(regions.device).argsort()
            member = (rank[None, :] < torch.arange(n_neurons + 1, device=regions.device)[:, None]).to(regions.dtype)  # (C+1) x C
            train_rows = torch.randint(len(pool), (len(features),), generator=generator).to(regions.device) if fixed is None else None
            train_base = pool[train_rows] if fixed is None else fixed.expand_as(features)
            eval_rows = torch.randint(len(pool), (n_regions,), generator=generator).to(regions.device) if fixed is None else None
            eval_base = pool[eval_rows] if fixed is None else fixed.expand_as(regions)
            weight, bias = self._refit_prefix_models(features, train_base, targets, member, coef, intercept, steps)
            logits = (regions @ (weight * member[:, None]).reshape(-1, n_neurons).T
                      + eval_base @ (weight * (1 - member[:, None])).reshape(-1, n_neurons).T)
            values = torch.sigmoid(logits.view(n_regions, n_neurons + 1, n_concepts) + bias)  # R x (C+1) x K
            gains = values.diff(dim=1).gather(1, rank[None, :, None].expand(n_regions, -1, n_concepts))
            gains = gains.permute(0, 2, 1)  # R x K x C
            total += gains
            per_permutation.append(gains.mean(0).T)  # C x K (signed, averaged over regions)
        mean = total / n_perm
        values = (mean.abs() if absolute else mean).mean(0).T
        stacked = torch.stack(per_permutation)
        errors = stacked.std(0, unbiased=True) / math.sqrt(n_perm) if n_perm > 1 else torch.full_like(values, float("nan"))
        self.n_permutations_ = n_perm
        return values, errors

    @staticmethod
    def _refit_prefix_models(features, baseline, targets, member, coef, intercept, steps):
        """Fit one linear model per prefix coalition (rows of ``member``) and concept.

        A model for coalition S sees ``x_S`` and baseline values elsewhere;
        all (C+1) x K models train together, warm-started from the full classifier.
        """
        n_models = member.shape[0]
        weight = coef[None].repeat(n_models, 1, 1).clone().requires_grad_()  # (C+1) x K x C
        bias = intercept[None].repeat(n_models, 1).clone().requires_grad_()  # (C+1) x K
        labels = (targets == 1).to(features.dtype)
        mask = (targets != IGNORE).to(features.dtype)
        scale = features.std(0).clamp_min(1e-6)
        optimizer = torch.optim.Adam([weight, bias], lr=0.01 / scale.mean().item())
        for _ in range(steps):
            logits = (features @ (weight * member[:, None]).reshape(-1, features.shape[1]).T
                      + baseline @ (weight * (1 - member[:, None])).reshape(-1, features.shape[1]).T)
            logits = logits.view(len(features), n_models, -1) + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels[:, None].expand_as(logits), weight=mask[:, None].expand_as(logits), reduction="sum"
            ) / mask.sum().clamp_min(1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return weight.detach(), bias.detach()

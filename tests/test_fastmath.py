"""The engine's own exponential and logarithm (sim.fastmath), its Poisson draws, and where its
arrays lie in memory."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import each

from sim import fastmath, rules
from sim.population import SPREAD_BYTES, allocate


@rules.jit
def _power(x, y):
    out = x.copy()
    fastmath.power_each(out, y, out.size)
    return out


def _ulps(got, expected):
    return np.abs(got - expected) / np.spacing(np.abs(expected))


def test_exp_is_within_one_ulp_of_the_library_over_its_range():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708, 709, 200_000), rng.uniform(-1, 1, 100_000), rng.uniform(-1e-8, 1e-8, 1_000)])
    assert _ulps(each(fastmath.exp, x), np.exp(x)).max() <= 1.0
    assert each(fastmath.exp, np.array([0.0, 1.0, -np.inf, -800.0])).tolist() == [1.0, np.e, 0.0, 0.0]


def test_log_is_within_one_ulp_of_the_library_over_its_range():
    rng = np.random.default_rng(2)
    x = np.exp(np.concatenate([rng.uniform(-700, 700, 200_000), rng.uniform(-1e-3, 1e-3, 100_000)]))
    assert _ulps(each(fastmath.log, x), np.log(x)).max() <= 1.0
    tiny = np.finfo(np.float64).tiny
    assert each(fastmath.log, np.array([1.0, 2.0, 0.5, tiny, 0.0])).tolist() == [0.0, np.log(2.0), np.log(0.5), np.log(tiny), -np.inf]


def test_power_matches_the_library_in_the_range_the_kernels_use():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(0, 1, 100_000), [0.0, 1.0]])
    for y in (1 / 12, 30 / 365, 12.0, 365 / 30):
        np.testing.assert_allclose(_power(x, y), x**y, rtol=5e-14, atol=0.0)


def test_the_step_chance_of_a_yearly_probability_composes_to_the_year():
    yearly = np.array([0.0, 0.03, 0.2, 0.8, 0.99, 1.0])
    step = yearly.copy()
    rules.per_step_of_yearly_each(step, step.size, 1 / 12)
    np.testing.assert_allclose(1 - (1 - step) ** 12, yearly, rtol=1e-13, atol=1e-15)


def test_arrays_of_state_start_at_different_places_in_a_memory_page():
    arrays = [allocate(100_000, np.float32, slot, 0.0) for slot in range(30)]
    offsets = [a.ctypes.data % 4096 for a in arrays]
    assert offsets == [slot * SPREAD_BYTES % 4096 for slot in range(30)]
    assert len(set(offsets)) == 30 and all(o % 64 == 0 for o in offsets)
    buzz = allocate((1_000, 3), np.float32, 5, 1.5)
    assert buzz.shape == (1_000, 3) and buzz.flags.c_contiguous and buzz.flags.writeable and np.all(buzz == 1.5)


def test_a_model_places_its_arrays_apart(tmp_path):
    from conftest import make_scenario

    from sim.model import LoyaltyModel

    model = LoyaltyModel(make_scenario(market={"population": 5_000, "steps": 2}))
    arrays = [*model._pop, model._choice, model._reason, model._margin]
    assert len({a.ctypes.data % 4096 for a in arrays}) == len(arrays)


@pytest.mark.parametrize("rate", [0.0, 0.4, 3.0])
def test_poisson_count_is_the_inverse_distribution_function_of_its_uniform(rate):
    key = rules.stream_key(8, 1)
    for i in range(200):
        u = rules.uniform(key, i, 0)
        k = rules.poisson(rate, key, i, 0)
        cdf = sum(np.exp(-rate) * rate**j / np.prod(np.arange(1, j + 1)) for j in range(k + 1))
        below = cdf - np.exp(-rate) * rate**k / np.prod(np.arange(1, k + 1))
        assert (rate == 0 and k == 0) or below < u <= cdf + 1e-12

"""Unit tests of the pure behaviour rules in sim.rules (no model, no randomness unless seeded)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from conftest import each, make_scenario
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sim import rules
from sim.offers import build_offers
from sim.scenario import Behaviour

BEHAVIOUR = Behaviour()
MONTH = rules.StepRates.of(BEHAVIOUR, 30.0, 0.10)
YEAR = rules.StepRates.of(BEHAVIOUR, 365.0, 0.10)
CURVE = np.array(BEHAVIOUR.search.curve)


def f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


# --------------------------------------------------------------------------- per_step and rates


def test_per_step_is_the_chance_of_at_least_one_event():
    assert rules.per_step(0.0, 1.0) == 0.0
    assert rules.per_step(1.0, 1.0) == pytest.approx(1 - np.exp(-1.0))
    assert rules.per_step(2.0, 0.5) == pytest.approx(1 - np.exp(-1.0))
    rates = np.array([0.0, 0.5, 1.0, 5.0, 50.0])
    p = rules.per_step(rates, 1 / 12)
    assert np.all(np.diff(p) > 0) and np.all((p >= 0) & (p < 1))


def test_per_step_composes_over_steps():
    """Twelve monthly steps carry the same chance as one yearly step."""
    monthly = rules.per_step(0.8, 1 / 12)
    assert 1 - (1 - monthly) ** 12 == pytest.approx(rules.per_step(0.8, 1.0))


def test_step_rates_scale_with_the_step_length():
    assert MONTH.step_years == pytest.approx(30 / 365)
    assert 0 < MONTH.trust_gain < YEAR.trust_gain < 1
    assert 0 < MONTH.satisfaction_weight < YEAR.satisfaction_weight <= 1
    assert MONTH.buzz_decay > YEAR.buzz_decay
    assert (1 + MONTH.discount_per_step) ** (365 / 30) == pytest.approx(1.10)


# --------------------------------------------------------------------------- satisfaction and expectation


def test_satisfaction_is_perceived_over_expected():
    c = rules.satisfaction(f32(1.0, 1.2, 0.9), f32(1.0, 1.0, 1.0))
    np.testing.assert_allclose(c, [1.0, 1.2, 0.9], rtol=1e-6)


def test_satisfaction_falls_when_expectation_rises_at_equal_perceived_value():
    perceived = np.full(5, 1.1, dtype=np.float32)
    expectation = f32(0.8, 0.9, 1.0, 1.2, 1.5)
    c = rules.satisfaction(perceived, expectation)
    assert np.all(np.diff(c) < 0)
    # and rises with perception at equal expectation
    assert np.all(np.diff(rules.satisfaction(f32(0.8, 1.0, 1.2), np.ones(3, np.float32))) > 0)


def test_satisfaction_levels_follow_the_thresholds():
    s = BEHAVIOUR.satisfaction
    c = f32(0.5, s.generally_satisfied - 0.01, s.generally_satisfied, s.fairly_satisfied + 0.01, s.highly_satisfied, 3.0)
    np.testing.assert_array_equal(rules.satisfaction_level(c, BEHAVIOUR), [0, 0, 1, 2, 3, 3])


def test_expectation_moves_toward_experience_promise_market_and_standard():
    a, one = f32(1.0, 1.0, 1.0), f32(1.0, 1.0, 1.0)
    up = rules.update_expectation(a, f32(1.3, 1.0, 1.3), f32(1.0, 1.3, 1.3), one, one, MONTH)
    assert up[0] > 1.0 and up[1] > 1.0 and up[2] > max(up[0], up[1])
    assert np.all(up < 1.3)  # partial adjustment within one month
    down = rules.update_expectation(a, f32(0.7), f32(0.7), f32(1.0), f32(1.0), MONTH)
    assert down[0] < 1.0
    # the comparison level and the standard pull on their own
    assert rules.update_expectation(f32(1.0), f32(1.0), f32(1.0), f32(1.3), f32(1.0), MONTH)[0] > 1.0
    assert rules.update_expectation(f32(1.0), f32(1.0), f32(1.0), f32(1.0), f32(0.7), MONTH)[0] < 1.0
    # a fixed point: every anchor == expectation
    np.testing.assert_allclose(rules.update_expectation(f32(1.1), f32(1.1), f32(1.1), f32(1.1), f32(1.1), MONTH), [1.1], rtol=1e-6)


def test_a_firm_better_than_the_market_keeps_satisfaction_above_one():
    """Iterated to its steady state, the expectation update leaves c = b / a above 1 for a firm
    that delivers more than the market's comparison level and below 1 for one that delivers less:
    the difference between firms does not wash out (it would with experience and promise alone)."""
    def steady(b, norm):
        a = f32(1.0)
        for _ in range(600):
            a = rules.update_expectation(a, f32(b), f32(b), f32(norm), f32(1.0), MONTH)
        return float(b / a[0])

    assert steady(1.15, 1.0) > 1.03
    assert steady(0.85, 1.0) < 0.97
    assert steady(1.0, 1.0) == pytest.approx(1.0, abs=1e-4)
    # with only experience and the firm's own promise, both would settle at c = 1
    alone = rules.StepRates.of(Behaviour.model_validate({"expectation": {"market_rate": 0, "standard_rate": 0}}), 30.0, 0.1)
    a = f32(1.0)
    for _ in range(600):
        a = rules.update_expectation(a, f32(1.15), f32(1.15), f32(1.0), f32(1.0), alone)
    assert float(1.15 / a[0]) == pytest.approx(1.0, abs=1e-3)


def test_reference_price_adapts_to_the_market_but_keeps_the_fair_price():
    fair, level = 10.0, 10.0
    for _ in range(200):
        level = rules.adapted_price_level(level, 12.0, MONTH.reference_weight)
    assert level == pytest.approx(12.0, rel=1e-3)  # the adaptive part follows the prices seen
    assert rules.reference_price(fair, level, 0.5) == pytest.approx(math.sqrt(10.0 * 12.0), rel=1e-3)
    assert rules.reference_price(fair, level, 1.0) == pytest.approx(10.0)
    one_step = rules.adapted_price_level(10.0, 12.0, MONTH.reference_weight)
    assert 10.0 < one_step < 10.5  # and it moves slowly


def test_trusting_customers_forgive_failures_more():
    assert rules.felt_share(0.0, 0.5) == 1.0
    assert rules.felt_share(1.0, 0.5) == pytest.approx(0.5)
    assert rules.felt_share(0.9, 0.5) < rules.felt_share(0.3, 0.5)
    assert rules.felt_share(0.9, 0.0) == 1.0


# --------------------------------------------------------------------------- trust and attachment


def test_update_trust_grows_when_met_and_decays_when_not():
    trust = f32(0.5, 0.5, 0.5, 0.5)
    met = BEHAVIOUR.trust.met_threshold
    c = f32(met + 0.1, met, met - 0.01, 0.5)
    new = rules.update_trust(trust, c, np.zeros(4, bool), BEHAVIOUR, MONTH)
    assert new[0] > 0.5 and new[1] > 0.5
    assert new[2] < 0.5 and new[3] < 0.5
    assert new[0] == pytest.approx(0.5 + MONTH.trust_gain * 0.5, rel=1e-5)
    assert new[2] == pytest.approx(0.5 * (1 - MONTH.trust_loss), rel=1e-5)


def test_update_trust_loses_a_share_at_an_unrecovered_failure():
    trust = f32(0.8, 0.8)
    c = f32(1.2, 1.2)
    new = rules.update_trust(trust, c, np.array([False, True]), BEHAVIOUR, MONTH)
    felt = 1 - BEHAVIOUR.trust.forgiveness * 0.8  # trust forgives part of the loss
    assert new[1] == pytest.approx(new[0] * (1 - BEHAVIOUR.trust.failure_loss * felt), rel=1e-5)
    assert new[1] < 0.8 < new[0]  # a failure outweighs a month of met expectations
    # a new customer loses a larger share of its trust than a loyal one
    low = rules.update_trust(f32(0.3, 0.3), f32(1.2, 1.2), np.array([False, True]), BEHAVIOUR, MONTH)
    assert 1 - low[1] / low[0] > 1 - new[1] / new[0]


def test_trust_approaches_one_but_stays_in_unit_interval():
    trust = f32(0.0, 0.3, 1.0)
    for _ in range(200):
        trust = rules.update_trust(trust, f32(1.5, 1.5, 1.5), np.zeros(3, bool), BEHAVIOUR, MONTH)
    assert np.all(trust <= 1.0) and np.all(trust > 0.99)
    for _ in range(200):
        trust = rules.update_trust(trust, f32(0.1, 0.1, 0.1), np.ones(3, bool), BEHAVIOUR, MONTH)
    assert np.all(trust >= 0.0) and np.all(trust < 0.01)


def test_attachment_grows_with_trust_and_community_and_decays_without():
    a0 = f32(0.2, 0.2, 0.2, 0.2)
    trust = f32(0.0, 1.0, 1.0, 0.0)
    drive = f32(0.0, 0.0, 0.6, 0.0)
    new = rules.update_attachment(a0, trust, drive, BEHAVIOUR, MONTH)
    assert new[0] < 0.2  # no trust, no community: decay
    assert new[1] > 0.2  # trust builds attachment
    assert new[2] > new[1]  # the community adds to it
    for _ in range(600):
        a0 = rules.update_attachment(a0, trust, f32(50, 50, 50, 50), BEHAVIOUR, MONTH)
    assert np.all((a0 >= 0) & (a0 <= 1))


# --------------------------------------------------------------------------- search


def test_search_probability_follows_the_curve_at_its_points_and_between():
    rates = YEAR  # one-year steps: the per-step chance is the yearly one
    xs, ps = CURVE.T
    at_points = rules.search_probability(xs.astype(np.float32), np.zeros(len(xs), np.float32), BEHAVIOUR, rates)
    np.testing.assert_allclose(at_points, ps, atol=1e-6)
    mid = (xs[:-1] + xs[1:]) / 2
    between = rules.search_probability(mid.astype(np.float32), np.zeros(len(mid), np.float32), BEHAVIOUR, rates)
    np.testing.assert_allclose(between, (ps[:-1] + ps[1:]) / 2, atol=1e-5)


def test_search_probability_is_flat_beyond_the_ends_and_non_increasing():
    c = np.linspace(0.2, 2.0, 400).astype(np.float32)
    p = rules.search_probability(c, np.zeros_like(c), BEHAVIOUR, YEAR)
    assert p[0] == pytest.approx(CURVE[0, 1]) and p[-1] == pytest.approx(CURVE[-1, 1])
    assert np.all(np.diff(p) <= 1e-7)
    # the non-linear shape: the dissatisfied search far more than the middle zone, the delighted hardly
    low, middle, high = rules.search_probability(f32(0.75, 1.0, 1.3), np.zeros(3, np.float32), BEHAVIOUR, YEAR)
    assert low > 3 * middle > 3 * high


def test_search_probability_converts_a_yearly_chance_to_the_step():
    c = f32(0.8, 1.0)
    yearly = rules.search_probability(c, np.zeros(2, np.float32), BEHAVIOUR, YEAR)
    monthly = rules.search_probability(c, np.zeros(2, np.float32), BEHAVIOUR, MONTH)
    np.testing.assert_allclose(1 - (1 - monthly) ** (365 / 30), yearly, rtol=1e-4)
    assert np.all(monthly < yearly)


def test_search_probability_is_damped_by_inertia():
    c = np.full(4, 0.8, dtype=np.float32)
    inertia = f32(0.0, 0.3, 0.9, 1.0)
    p = rules.search_probability(c, inertia, BEHAVIOUR, MONTH)
    np.testing.assert_allclose(p, p[0] * (1 - inertia), rtol=1e-5)
    assert p[-1] == 0.0


# --------------------------------------------------------------------------- choice


def test_choice_probabilities_rows_sum_to_one_with_outside_last():
    u = np.array([[0.0, 0.1, -0.2], [0.5, 0.5, 0.5]], dtype=np.float32)
    p = rules.choice_probabilities(u, -0.3, 0.1)
    assert p.shape == (2, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert p[0, 1] > p[0, 0] > p[0, 2] > p[0, 3]
    expected = np.exp(np.array([0.0, 0.1, -0.2, -0.3]) / 0.1)
    np.testing.assert_allclose(p[0], expected / expected.sum(), rtol=1e-5)


def test_choice_probabilities_respect_minus_infinity():
    u = np.array([[-np.inf, 0.2, 0.0], [-np.inf, -np.inf, -np.inf]], dtype=np.float32)
    p = rules.choice_probabilities(u, -0.3, 0.1)
    assert p[0, 0] == 0.0
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(p[1], [0.0, 0.0, 0.0, 1.0])  # nothing available: leave the category


def test_choice_probabilities_take_one_outside_value_per_row():
    u = np.zeros((2, 2), dtype=np.float32)
    p = rules.choice_probabilities(u, np.array([0.0, -1.0], dtype=np.float32), 0.1)
    np.testing.assert_allclose(p[0], [1 / 3, 1 / 3, 1 / 3], rtol=1e-5)
    assert p[1, 2] < 1e-4  # a costly exit (e.g. a switching cost on leaving) is rarely chosen
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


def test_choice_probabilities_sharpen_as_the_scale_falls():
    u = np.array([[0.1, 0.0]], dtype=np.float32)
    soft = rules.choice_probabilities(u, -5.0, 1.0)
    sharp = rules.choice_probabilities(u, -5.0, 0.01)
    assert 0.5 < soft[0, 0] < 0.6
    assert sharp[0, 0] > 0.999


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=st.one_of(st.floats(-50, 50, width=32), st.just(-np.inf))),
    st.floats(-5, 5),
    st.floats(0.01, 10),
)
def test_choice_probabilities_are_a_distribution_for_any_utilities(u, outside, scale):
    p = rules.choice_probabilities(u, outside, scale)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(p[:, :-1][np.isneginf(u)] == 0)


def test_draw_choice_matches_the_probabilities():
    rng = np.random.default_rng(0)
    p = np.tile(np.array([0.1, 0.6, 0.0, 0.3]), (40_000, 1))
    chosen = rules.draw_choice(p, rng)
    freq = np.bincount(chosen, minlength=4) / chosen.size
    np.testing.assert_allclose(freq, [0.1, 0.6, 0.0, 0.3], atol=0.01)
    assert freq[2] == 0.0


# --------------------------------------------------------------------------- word of mouth and NPS


def test_recommend_score_is_monotone_in_satisfaction_trust_and_attachment():
    c = np.linspace(0.5, 1.6, 200).astype(np.float32)
    half = np.full_like(c, 0.5)
    zero = np.zeros_like(c)
    score = rules.recommend_score(c, half, zero, BEHAVIOUR)
    assert np.all(np.diff(score.astype(int)) >= 0)
    assert score[0] <= 2 and score[-1] == 10  # detractor when very dissatisfied, promoter when delighted
    assert score.min() >= 0 and score.max() <= 10
    by_trust = rules.recommend_score(f32(1, 1, 1), f32(0, 0.5, 1), f32(0, 0, 0), BEHAVIOUR)
    by_attachment = rules.recommend_score(f32(1, 1, 1), f32(0.5, 0.5, 0.5), f32(0, 0.5, 1), BEHAVIOUR)
    assert np.all(np.diff(by_trust.astype(int)) >= 0) and by_trust[2] > by_trust[0]
    assert np.all(np.diff(by_attachment.astype(int)) >= 0) and by_attachment[2] > by_attachment[0]


# --------------------------------------------------------------------------- random numbers


def test_uniforms_are_uniform_and_independent_across_customers_and_slots():
    u = rules.uniforms(rules.stream_key(7, 3), 50_000, 4)
    assert u.min() >= 0.0 and u.max() < 1.0
    for slot in range(4):
        counts = np.histogram(u[:, slot], bins=20, range=(0, 1))[0]
        chi2 = ((counts - 2500.0) ** 2 / 2500.0).sum()
        assert chi2 < 45  # 19 degrees of freedom: p < 0.001 beyond 43.8
    corr = np.corrcoef(u.T)
    assert np.abs(corr[np.triu_indices(4, 1)]).max() < 0.02
    lagged = np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]  # neighbouring customers
    assert abs(lagged) < 0.02


def test_draws_depend_only_on_seed_step_customer_and_slot():
    a = rules.uniforms(rules.stream_key(1, 5), 100, 3)
    np.testing.assert_array_equal(a, rules.uniforms(rules.stream_key(1, 5), 100, 3))
    np.testing.assert_array_equal(a[:10], rules.uniforms(rules.stream_key(1, 5), 10, 3))  # customer i's draw ignores the others
    assert not np.array_equal(a, rules.uniforms(rules.stream_key(2, 5), 100, 3))
    assert not np.array_equal(a, rules.uniforms(rules.stream_key(1, 6), 100, 3))


@rules.jit
def _normals(key, n):
    return np.array([rules.normal(key, i, 0) for i in range(n)])


@rules.jit
def _poissons(rate, key, n):
    return np.array([rules.poisson(rate, key, i, 0) for i in range(n)])


def test_normal_draws_have_mean_zero_and_unit_variance():
    z = _normals(rules.stream_key(3, 1), 100_000)
    assert abs(z.mean()) < 0.015 and z.std() == pytest.approx(1.0, abs=0.015)
    assert np.mean(np.abs(z) > 1.96) == pytest.approx(0.05, abs=0.004)


def test_squash_is_tanh():
    x = np.concatenate([np.linspace(-25.0, 25.0, 200_001), np.geomspace(1e-300, 1.0, 2_000), -np.geomspace(1e-300, 1.0, 2_000)])
    np.testing.assert_allclose(each(rules.squash, x), np.tanh(x), rtol=0.0, atol=3e-16)
    assert each(rules.squash, np.array([40.0, -40.0, 0.0])).tolist() == [1.0, -1.0, 0.0]


def test_normal_draws_are_the_inverse_distribution_function_of_their_uniform():
    key = rules.stream_key(3, 2)
    u = rules.uniforms(key, 20_000, 1)[:, 0] + 0.5 / 2**53
    z = _normals(key, 20_000)
    expected = np.array([statistics.NormalDist().inv_cdf(p) for p in u])
    np.testing.assert_allclose(z, expected, rtol=1e-14, atol=1e-14)
    # every branch of the algorithm, the far tails included
    tails = np.array([1e-300, 1e-20, 1e-9, 0.01, 0.074, 0.075, 0.5, 0.925, 0.99, 1 - 1e-12])
    assert all(
        _normal_at(p) == pytest.approx(statistics.NormalDist().inv_cdf(p), rel=1e-14, abs=1e-14) for p in tails
    )


def _normal_at(p):
    """The quantile :func:`rules.normal` applies to its uniform, at a chosen probability."""
    return float(rules.normal_quantile(p))


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0, 1.7, 12.0, 45.0])
def test_poisson_draws_have_the_rate_as_mean_and_variance(rate):
    k = _poissons(rate, rules.stream_key(4, 2), 60_000)
    assert k.min() >= 0
    if rate == 0:
        assert k.max() == 0
        return
    tolerance = 4 * np.sqrt(rate / k.size)
    assert k.mean() == pytest.approx(rate, abs=tolerance)
    assert k.var() == pytest.approx(rate, rel=0.05)


@rules.jit
def _poissons_from_table(table, most, key, n):
    return np.array([rules.poisson_at(table, most, rules.uniform(key, i, 0)) for i in range(n)])


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0, 1.7, 12.0, 30.0])
def test_poisson_counts_from_a_table_are_the_counts_of_poisson(rate):
    """speak draws its conversations from tables of cumulative probabilities: the same counts,
    draw for draw, as poisson's own search (other rates in the tables do not matter)."""
    rates = np.array([2.5, rate, 0.7])
    tables, most = rules.poisson_tables(rates, np.exp(-rates))
    key = rules.stream_key(6, 1)
    drawn = _poissons_from_table(tables[1], most[1], key, 60_000)
    assert np.array_equal(drawn, _poissons(rate, key, 60_000))
    assert rate == 0 or drawn.max() > rate  # the upper tail was reached
    # the table is poisson's recurrence, to the last bit
    p = cumulative = math.exp(-rate)
    expected = [cumulative]
    for k in range(1, math.ceil(rate + 40 * math.sqrt(rate) + 40) + 1):
        p *= rate / k
        cumulative += p
        expected.append(cumulative)
    assert tables[1, : len(expected)].tolist() == expected


@pytest.mark.parametrize("rate", [0.4, 1.7, 12.0])
def test_poisson_counts_follow_the_poisson_distribution(rate):
    """Each count is the distribution function inverted at its uniform: the frequencies of the
    counts match the Poisson probabilities, the tail included."""
    n = 60_000
    k = _poissons(rate, rules.stream_key(5, 3), n)
    top = int(rate + 4 * np.sqrt(rate)) + 2
    pmf = np.array([math.exp(-rate) * rate**j / math.factorial(j) for j in range(top)])
    expected = np.append(pmf, 1.0 - pmf.sum()) * n
    observed = np.bincount(np.minimum(k, top), minlength=top + 1)
    sd = np.sqrt(expected * (1 - expected / n))
    assert np.all(np.abs(observed - expected) <= 4.5 * sd + 1)


# --------------------------------------------------------------------------- perceived value and purchases


def _offers(**firms):
    scenario = make_scenario(firms=firms)
    return build_offers(scenario, 1, 10.0)


def test_offer_values_rise_with_quality_and_fall_with_price():
    offers = _offers(focal={"product": {"quality": 1.2}, "price": {"list": 10.0}}, rival={"price": {"list": 12.0}})

    def value(quality_sens, service_sens, price_sens, f):
        return rules.offer_value(quality_sens, service_sens, price_sens, offers.log_quality[f], offers.log_service[f], offers.log_price[f], 0.0)

    assert value(1.0, 1.0, 1.0, 0) == pytest.approx(np.log(1.2), rel=1e-5)  # quality-sensitive: focal's quality counts
    assert value(1.0, 1.0, 1.0, 1) == pytest.approx(-np.log(1.2), rel=1e-5)  # the rival's higher price costs value
    assert value(0.0, 1.0, 2.0, 0) == pytest.approx(0.0, abs=1e-6)  # quality-blind customer
    assert value(0.0, 1.0, 2.0, 1) == pytest.approx(-2 * np.log(1.2), rel=1e-5)  # twice as price-sensitive


def test_tenure_value_grows_with_personalisation_learning():
    offers = _offers(focal={"product": {"personalisation": 0.2, "personalisation_days": 180}})
    econ = make_scenario().market.loyalty_economics
    days = np.array([0.0, 90.0, 180.0, 720.0])
    v = rules.tenure_value(days, 1.0, offers.personalisation[0], offers.personalisation_days[0])
    assert v[0] == 0.0 and 0 < v[1] < v[2] == v[3]
    assert v[2] == pytest.approx(np.log1p(0.2), rel=1e-5)


def test_tenure_gives_back_part_of_the_price_term():
    econ = make_scenario().market.loyalty_economics
    years = np.array([0.0, 1.0, 2.0, 100.0])
    v = rules.price_tolerance(years * 365.0, 1.5, np.log(1.2), econ.max_years, econ.price_tolerance_per_year)
    expected = 1.5 * np.minimum(np.minimum(years, econ.max_years) * econ.price_tolerance_per_year, 1.0) * np.log(1.2)
    np.testing.assert_allclose(v, expected, rtol=1e-9)


@rules.jit
def _outcomes(key, n, availability, failure_rate, recovery_rate, noise, penalty, boost):
    shock, bought = np.empty(n), np.empty(n, np.bool_)
    unrecovered, recovered = np.empty(n, np.bool_), np.empty(n, np.bool_)
    for i in range(n):
        shock[i], bought[i], unrecovered[i], recovered[i] = rules.purchase_outcome(
            rules.uniform(key, i, 0), rules.uniform(key, i, 1), rules.uniform(key, i, 2), rules.normal(key, i, 3),
            availability, failure_rate, recovery_rate, noise, penalty, boost,
        )
    return shock, bought, unrecovered, recovered


def test_purchase_outcomes_book_stockouts_failures_and_recoveries():
    key = rules.stream_key(0, 1)
    shock, bought, unrecovered, recovered = _outcomes(key, 5000, 0.8, 0.0, 0.3, 0.0, np.log(0.6), np.log(1.05))
    assert (~bought).mean() == pytest.approx(0.2, abs=0.02)
    np.testing.assert_array_equal(unrecovered, ~bought)  # a stock-out is a failed purchase
    assert not recovered.any()
    shock, bought, unrecovered, recovered = _outcomes(key, 5000, 1.0, 0.5, 0.4, 0.0, np.log(0.5), np.log(1.1))
    assert bought.all()
    assert unrecovered.mean() == pytest.approx(0.5 * 0.6, abs=0.03)
    assert recovered.mean() == pytest.approx(0.5 * 0.4, abs=0.03)
    np.testing.assert_allclose(shock[unrecovered], np.log(0.5), rtol=1e-9)
    np.testing.assert_allclose(shock[recovered], np.log(1.1), rtol=1e-9)
    assert np.all(shock[~unrecovered & ~recovered] == 0)
    noisy = _outcomes(key, 20_000, 1.0, 0.0, 0.0, 0.1, 0.0, 0.0)[0]
    assert noisy.std() == pytest.approx(0.1, rel=0.03)


# --------------------------------------------------------------------------- the course's decision rules


def test_marketing_reach_has_diminishing_returns():
    reach = [rules.marketing_reach(c, 1000.0, 0.1) for c in (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)]
    assert reach[0] == 0.0
    assert all(b > a for a, b in zip(reach, reach[1:]))
    gains = np.diff(reach)
    assert np.all(np.diff(gains[1:] / np.array([250.0, 500.0, 1000.0, 2000.0])) < 0)  # per contact, each gain smaller
    assert reach[-1] < 0.1  # never more than the response rate
    assert rules.marketing_reach(100.0, 0.0, 0.1) == 0.0


def test_points_are_valued_net_of_breakage():
    heavy, light = rules.points_value_share(200.0, 20.0, 365.0), rules.points_value_share(10.0, 20.0, 365.0)
    assert 0.9 < heavy < 1.0  # reaches the threshold in five weeks: little is lost
    assert 0.0 < light < 0.5  # two years to the threshold of points that expire in one
    assert rules.points_value_share(10.0, 20.0, np.inf) == 1.0
    assert rules.points_value_share(0.0, 20.0, 365.0) == 0.0
    x = (20.0 / 10.0) / 1.0
    assert light == pytest.approx((1 - math.exp(-x)) / x)


def test_a_grudge_comes_from_leaving_dissatisfied_and_fades_with_a_better_offer():
    assert rules.grudge_at_leaving(1.05, 1.0) == 0.0
    assert rules.grudge_at_leaving(0.8, 1.0) == pytest.approx(-math.log(0.8))
    assert rules.grudge_against(0.2, 0.0, 0.0) == pytest.approx(0.2)  # the same offer: the whole grudge
    assert rules.grudge_against(0.2, 0.15, 0.0) == pytest.approx(0.05)  # improved by 0.15
    assert rules.grudge_against(0.2, 0.3, 0.0) == 0.0  # improved by more than the grudge
    assert rules.grudge_against(0.2, -0.1, 0.0) == pytest.approx(0.2)  # worse: no more than the grudge


@rules.jit
def _switching(points, stamps, learning, ecosystem, fee, purchase, per_year, horizon, psychological):
    return rules.switching_cost(points, stamps, learning, ecosystem, fee, purchase, per_year, horizon, psychological)


def test_switching_cost_is_money_at_stake_over_the_horizon_spend():
    base = _switching(0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 24.0, 1.0, 0.02)
    assert base == pytest.approx(0.02)  # only the psychological cost
    with_points = _switching(24.0, 0.0, 0.0, 0.0, 0.0, 10.0, 24.0, 1.0, 0.02)
    assert with_points == pytest.approx(0.02 + 24.0 / 240.0)
    assert _switching(0.0, 0.0, 0.0, 48.0, 0.0, 10.0, 24.0, 1.0, 0.02) > with_points
    assert _switching(0.0, 0.5, 0.0, 0.0, 0.0, 10.0, 24.0, 1.0, 0.02) == pytest.approx(0.02 + 5.0 / 240.0)
    assert _switching(24.0, 0.0, 0.0, 0.0, 0.0, 10.0, 24.0, 2.0, 0.02) < with_points  # a longer horizon weighs it less


@rules.jit
def _stay(own, experience, rs, rate, tw, trust, aw, attachment, ww, heard):
    return rules.stay_utility(own, experience, rs, rate, tw, trust, aw, attachment, ww, heard)


def test_utility_of_staying_rises_with_each_of_its_terms():
    base = _stay(0.0, 0.0, 1.0, 0.0, 0.15, 0.5, 0.5, 0.2, 0.1, 0.0)
    for k, bump in ((0, 0.1), (1, 0.1), (3, 0.05), (5, 0.2), (7, 0.2), (9, 0.5)):
        args = [0.0, 0.0, 1.0, 0.0, 0.15, 0.5, 0.5, 0.2, 0.1, 0.0]
        args[k] += bump
        assert _stay(*args) > base, k


@rules.jit
def _reason(c, generally, held_before, to_rival, price, reward, bond):
    return rules.churn_reason(c, generally, held_before, to_rival, price, reward, bond)


def test_churn_reasons_follow_the_course_order():
    from sim.measures import CHURN_REASONS
    from sim.population import HELD

    name = lambda *a: CHURN_REASONS[_reason(*a)]  # noqa: E731
    assert name(0.8, 0.9, HELD["rewards"], True, -0.2, 0.0, 0.0) == "rewards"  # its programme held it
    assert name(1.0, 0.9, HELD["rewards_lost"], False, 0.0, 0.0, 0.0) == "rewards"  # also when it leaves the category
    assert name(1.0, 0.9, HELD["trust"], True, -0.2, 0.0, 0.1) == "price"  # the rival is cheaper
    assert name(0.8, 0.9, HELD["trust"], True, -0.2, 0.0, 0.1) == "price"  # dissatisfied, but lured by the price
    assert name(1.0, 0.9, HELD["trust"], True, 0.1, -0.1, 0.0) == "rewards"  # the rival rewards more
    assert name(0.8, 0.9, HELD["trust"], True, -0.05, 0.0, -0.2) == "dissatisfied"  # the rival is better value, not cheaper
    assert name(1.0, 0.9, HELD["price"], True, 0.1, 0.0, -0.2) == "price"  # undercut in value where price held it
    assert name(1.0, 0.9, HELD["trust"], True, 0.1, 0.1, -0.2) == "value"
    assert name(1.0, 0.9, HELD["trust"], False, -0.2, 0.0, 0.0) == "value"  # leaves the category satisfied


@rules.jit
def _held(advantage, switching, price, reward, bond, searched, trust, attachment):
    return rules.held_by(advantage, switching, price, reward, bond, searched, trust, attachment, 0.6, 0.3)


def test_loyalty_type_is_the_shallowest_necessary_term():
    from sim.population import HELD_BY

    name = lambda *a: HELD_BY[_held(*a)]  # noqa: E731
    # the switching cost alone keeps it: locked in
    assert name(0.03, 0.05, -0.02, 0.0, 0.0, False, 0.9, 0.9) == "switching_cost"
    # price is pivotal although the bond is larger
    assert name(0.10, 0.0, 0.12, 0.0, 0.2 - 0.22, False, 0.9, 0.9) == "price"
    assert name(0.05, 0.0, 0.0, 0.06, -0.01, False, 0.9, 0.9) == "rewards"
    # held by the bond: trust only with high trust and attachment, else the value alone (none)
    assert name(0.10, 0.0, 0.0, 0.0, 0.10, False, 0.9, 0.5) == "trust"
    assert name(0.10, 0.0, 0.0, 0.0, 0.10, False, 0.5, 0.5) == "value"
    assert name(0.10, 0.0, 0.0, 0.0, 0.10, False, 0.9, 0.1) == "value"
    # no advantage: inertia if it did not look, nothing if it did
    assert name(-0.1, 0.0, 0.0, 0.0, -0.1, False, 0.9, 0.9) == "not_looking"
    assert name(-0.1, 0.0, 0.0, 0.0, -0.1, True, 0.9, 0.9) == "none"
    # a customer its rewards held, whose programme ended, stays by inertia until it looks: rewards lost
    assert HELD_BY[rules_held_after_rewards(-0.1, False)] == "rewards_lost"
    assert HELD_BY[rules_held_after_rewards(-0.1, True)] == "none"
    assert HELD_BY[rules_held_after_rewards(0.1, False)] == "value"


@rules.jit
def rules_held_after_rewards(advantage, searched):
    from_rewards = 4  # HELD["rewards"]
    return rules.held_by(advantage, 0.0, 0.0, 0.0, advantage, searched, 0.5, 0.1, 0.6, 0.3, from_rewards)

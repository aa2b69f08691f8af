"""The behaviour laws of :mod:`sim.laws` hold on shipped and generated markets.

Each law is a direction ("lever L moves measure M of firm F up / down / not up / not down"),
checked as paired replications with common random numbers and a 95% Student-t interval of
the mean difference. The default run checks every law on three shipped scenarios and two
generated markets; the other shipped scenarios and two more generated markets are ``slow``
(CI runs both; generated-3, a market of price seekers only where two laws fail (none_share_where_dissatisfied, monopoly_price_up_retention_falls_less), is left out: known findings). ``LAWS_REPLICATIONS`` (default 4) sets the replications per law and market,
times the law's statistical power multiple (``sim.laws.power``).

The harness itself is tested too: the verdicts on synthetic numbers, a deliberately
inverted law that must fail, a law whose key or column does not exist (skipped, not
crashed), the generator's markets, and the levers' scenarios.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import pytest
from scipy import stats

from sim import laws as L

REPLICATIONS = int(os.environ.get("LAWS_REPLICATIONS", "4"))
#: Markets of the tests are at most this large (laws are about directions, not sizes).
MAX_POPULATION, MAX_STEPS = 3000, 40
FAST_MARKETS = ("starter", "price_led", "service_led", "generated-1", "generated-2")
SLOW_MARKETS = ("rewards_led", "community_led", "generated-4")


@functools.cache
def market(name: str) -> L.Market:
    if name.startswith("generated-"):
        scenario = L.generate_market(int(name.split("-")[1]))
    else:
        scenario = L.load_market(L.SCENARIO_DIR / f"{name}.yaml").scenario
    size = {"market.population": min(scenario.market.population, MAX_POPULATION), "market.steps": min(scenario.market.steps, MAX_STEPS)}
    return L.Market(name, L.shrink(scenario, size))


def _cases(names, *marks):
    return [
        pytest.param(name, law.id, id=f"{law.id}-{name}", marks=marks)
        for name in names
        for law in L.LAWS
        if not isinstance(law, L.Micro)
    ]


# --------------------------------------------------------------------------- the laws


@pytest.mark.parametrize(("market_name", "law_id"), _cases(FAST_MARKETS) + _cases(SLOW_MARKETS, pytest.mark.slow))
def test_law(market_name, law_id):
    result = L.check(L.LAWS_BY_ID[law_id], market(market_name), REPLICATIONS)
    if result.status == "skip":
        pytest.skip(result.message)
    assert result.status == "pass", result.message


@pytest.mark.parametrize("law_id", [law.id for law in L.LAWS if isinstance(law, L.Micro)])
def test_micro_law(law_id):
    result = L.check(L.LAWS_BY_ID[law_id], None)
    if result.status == "skip":
        pytest.skip(result.message)
    assert result.status == "pass", result.message


# --------------------------------------------------------------------------- the table


def test_law_table_is_complete_and_well_formed():
    assert len(L.LAWS) >= 25
    assert len({law.id for law in L.LAWS}) == len(L.LAWS)
    for law in L.LAWS:
        assert law.statement.strip() and law.family.strip(), law.id
        assert getattr(law, "direction", L.UP) in L.DIRECTIONS, law.id
    families = {law.family for law in L.LAWS}
    assert {"price", "value", "service", "promise", "word of mouth", "acquisition", "rewards", "lock-in", "community", "monopoly",
            "competition", "cost of value", "memory", "loyalty types"} <= families
    columns = {c for law in L.LAWS for m in law.measures() for c in m.columns()}
    for family in ("satisfaction_avg_mean", "nps", "trust_mean", "retention_rate", "acquisitions", "churn_price", "churn_rewards",
                   "churn_dissatisfied", "share_incentive", "share_trust", "share_none", "word_of_mouth_negative", "cumulative_profit",
                   "reward_cost", "community_cost", "acquisition_cost", "clv"):
        assert family in columns, f"no law measures {family}"
    # every lever family of the schema is pulled by some law
    keys = {path for law in L.LAWS for lever in law.levers() for path in lever.sets}
    for section in ("price.", "product.quality", "product.promise", "service.", "rewards.", "community.", "lock_in.", "acquisition.", "behaviour.word_of_mouth"):
        assert any(section in k for k in keys), f"no law pulls a {section} lever"


def test_one_cost_law_per_value_lever():
    for name, key, low, high, account in L.VALUE_LEVERS:
        law = L.LAWS_BY_ID[f"{name}_raises_cost_per_customer"]
        assert law.direction == L.UP and law.measure is account
        assert dict(law.change.sets) == {L.F(key): high} and dict(law.base.sets) == {L.F(key): low}


# --------------------------------------------------------------------------- verdicts on synthetic numbers


def test_interval_and_verdicts_on_synthetic_numbers():
    values = np.array([1.0, 1.2, 0.8, 1.1])
    c = L.check_values("diff", values, L.UP)
    half = stats.t.ppf(0.975, 3) * values.std(ddof=1) / 2.0
    assert c.mean == pytest.approx(1.025) and c.low == pytest.approx(1.025 - half) and c.high == pytest.approx(1.025 + half)
    assert c.n == 4 and c.passed
    assert not L.check_values("diff", values, L.DOWN).passed
    assert not L.check_values("diff", values, L.NOT_UP).passed  # significantly positive
    assert L.check_values("diff", values, L.NOT_DOWN).passed
    noise = np.array([-0.1, 0.1, 0.05, -0.05])  # a difference that is not significant either way
    assert not L.check_values("d", noise, L.UP).passed and not L.check_values("d", noise, L.DOWN).passed
    assert L.check_values("d", noise, L.NOT_UP).passed and L.check_values("d", noise, L.NOT_DOWN).passed
    assert L.check_values("d", -values, L.DOWN).passed and not L.check_values("d", -values, L.NOT_DOWN).passed
    small = np.array([0.020, 0.021, 0.019, 0.020])  # significantly positive, but within a tolerance of 0.03
    assert not L.check_values("d", small, L.NOT_UP).passed
    assert L.check_values("d", small, L.NOT_UP, tolerance=0.03).passed
    assert L.check_values("d", -small, L.NOT_DOWN, tolerance=0.03).passed and not L.check_values("d", -small, L.NOT_DOWN).passed
    # the bounds themselves: strict for up / down, inclusive for not up / not down
    assert not L.verdict(L.UP, 0.0, 1.0) and L.verdict(L.UP, 1e-12, 1.0)
    assert not L.verdict(L.DOWN, -1.0, 0.0) and L.verdict(L.NOT_UP, 0.0, 1.0) and L.verdict(L.NOT_DOWN, -1.0, 0.0)
    # missing values are left out; none at all is no evidence
    assert L.check_values("d", [1.0, math.nan, 1.2, 0.8, 1.1], L.UP).n == 4
    assert not L.check_values("d", [math.nan, math.nan], L.UP).passed
    with pytest.raises(ValueError):
        L.verdict("sideways", 0.0, 1.0)


def test_shape_judge_wants_an_interior_best_that_beats_both_ends():
    law = L.LAWS_BY_ID["promise_profit_inverted_u"]
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.1, 6)  # noqa: E731
    inverted_u = {"0.7": 1 + noise(), "1": 3 + noise(), "1.15": 4 + noise(), "1.5": 2 + noise(), "2": 0 + noise()}
    assert law.passes(law.judge(inverted_u))
    rising = {k: v + i for i, (k, v) in enumerate({"0.7": noise(), "1": noise(), "1.15": noise(), "1.5": noise(), "2": noise()}.items())}
    checks = law.judge(rising)
    assert not law.passes(checks) and "1.5" in checks[0].label  # the best interior level, beaten by the top end


def test_any_of_passes_when_one_part_passes():
    law = L.LAWS_BY_ID["rival_entry_takes_dissatisfied_first"]
    good, bad = L.check_values("a", [1.0, 1.1, 0.9], L.UP), L.check_values("b", [-1.0, 1.1, 0.9], L.UP)
    assert law.passes([bad, good]) and not law.passes([bad, bad])


# --------------------------------------------------------------------------- the harness can fail


def test_an_inverted_law_fails():
    """A law stated the wrong way round must fail, with a message that names it, the market
    and the measured difference with its interval: the harness is not trivially passable."""
    m = market("starter")
    inverted = L.Paired("inverted_own_price_up_customers_up", "Raising the own list price by 50% raises the own customers (WRONG on purpose).",
                        "price", L.Lever("own list price x1.5", {L.F("price.list"): L.times(1.5)}), L.CUSTOMERS, L.UP, base=L.PIN_REFERENCE)
    result = L.check(inverted, m, 3)
    assert result.status == "fail", result.message
    assert result.message.startswith(f"inverted_own_price_up_customers_up on starter (seed {m.seed}): diff -")
    assert "expected up" in result.message and "[" in result.message and "WRONG on purpose" in result.message


def test_a_law_whose_key_or_column_does_not_exist_is_skipped_not_crashed():
    m = market("generated-1")
    no_key = L.Paired("no_such_key", "A key that does not exist.", "test", L.Lever("x", {L.F("price.no_such_key"): 1.0}), L.CUSTOMERS, L.UP)
    result = L.check(no_key, m, 2)
    assert result.status == "skip" and "price.no_such_key" in result.reason
    no_column = L.Paired("no_such_column", "A column that does not exist.", "test", L.OWN_PRICE_UP, L.mean("no_such_column"), L.UP)
    result = L.check(no_column, m, 2)
    assert result.status == "skip" and "no_such_column" in result.reason
    assert "no_such_key" in L.requirements([no_key]) and "no_such_column" in L.requirements([no_column])
    lonely = L.Paired("needs_rival", "needs a rival", "test", L.RIVAL_PRICE_CUT, L.CUSTOMERS, L.DOWN)
    single = L.Market("alone", L.MONOPOLY.apply(m.scenario, m.scenario))
    assert L.check(lonely, single, 2).status == "skip"


# --------------------------------------------------------------------------- markets and levers


def test_generated_markets_are_valid_varied_and_reproducible():
    markets = [L.generate_market(seed) for seed in range(40)]
    for s in markets:
        assert 1 <= len(s.firms) <= 4 and sum(f.role == "focal" for f in s.firms.values()) == 1
        assert 1 <= len(s.segments) <= 3 and abs(sum(seg.share for seg in s.segments) - 1) < 1e-6
        assert 2000 <= s.market.population <= 5000 and 36 <= s.market.steps <= 60
        for f in s.firms.values():
            assert 6 <= f.price.list <= 14 and 0.8 <= f.product.quality <= 1.25 and 0.8 <= f.service.quality <= 1.25
            assert 0.02 <= f.service.failure_rate <= 0.1 and f.costs.unit_cost < f.price.list
    assert {len(s.firms) for s in markets} == {1, 2, 3, 4}
    assert {len(s.segments) for s in markets} == {1, 2, 3}
    assert any(f.rewards.enabled for s in markets for f in s.firms.values())
    assert any(f.community.enabled for s in markets for f in s.firms.values())
    assert L.generate_market(7).digest() == L.generate_market(7).digest() != L.generate_market(8).digest()


def test_shrink_scales_money_per_market_and_drops_late_events():
    full = L.load_market(L.SCENARIO_DIR / "rewards_led.yaml").scenario
    small = L.shrink(full, {"market.population": full.market.population // 4, "market.steps": 40})
    assert small.market.steps == 40 and small.timeline == []  # the programme's end at step 48 is after the run
    for name, firm in full.firms.items():
        assert small.firms[name].acquisition.budget_per_year == pytest.approx(firm.acquisition.budget_per_year / 4)
        assert small.firms[name].price.list == firm.price.list


def test_levers_change_what_they_say():
    m = market("starter").scenario
    mid = m.market.steps // 2
    later = L.OWN_PRICE_UP_MID.apply(m, m)
    assert later.timeline[-1].at == mid
    assert later.timeline[-1].set == {f"firms.{m.focal_firm}.price.list": pytest.approx(m.firms[m.focal_firm].price.list * 1.2)}
    assert later.firms[m.focal_firm].price.list == m.firms[m.focal_firm].price.list
    cut = L.RIVAL_PRICE_CUT.apply(m, m)
    rival = L.main_rival(m)
    assert cut.firms[rival].price.list == pytest.approx(0.8 * m.firms[rival].price.list)
    ended = L.REWARDS_END.apply(L.REWARDS_ON.apply(m, m), m)
    assert ended.firms[m.focal_firm].rewards.enabled and ended.firms[m.focal_firm].rewards.end_step == mid
    alone = L.MONOPOLY.apply(m, m)
    assert list(alone.firms) == [m.focal_firm]
    twins = L.TWINS.apply(m, m)
    assert set(twins.firms) == {m.focal_firm, L.TWIN}
    a, b = twins.firms[m.focal_firm], twins.firms[L.TWIN]
    assert (a.product.quality, b.product.quality, a.service.quality, b.service.quality) == (1.2, 0.85, 1.2, 0.85)
    assert a.price == b.price and a.rewards == b.rewards and a.initial_share == b.initial_share
    entered = L.ENTRY_MID.apply(L.ADD_ENTRANT.apply(m, m), m)
    assert not entered.firms[L.ENTRANT].active and entered.timeline[-1].set == {f"firms.{L.ENTRANT}.active": True}
    pinned = L.PIN_REFERENCE.apply(m, m)
    prices = [f.price.list * (1 - f.price.discount) for f in m.firms.values() if f.active]
    assert pinned.market.reference_price == pytest.approx(np.mean(prices))


def test_paired_runs_share_random_numbers_until_the_change():
    """The premise of every law: the base and the changed scenario, run with the same seed,
    are identical until the change takes effect."""
    m = market("generated-2").scenario
    changed = L.OWN_PRICE_UP_MID.apply(m, m)
    mid = m.market.steps // 2
    base, later = L.simulate(m, 11).frame, L.simulate(changed, 11).frame
    before = lambda f: f[f["step"] < mid].drop(columns=["step"]).reset_index(drop=True)  # noqa: E731
    assert before(base).equals(before(later))
    assert not base[base["step"] >= mid].reset_index(drop=True).equals(later[later["step"] >= mid].reset_index(drop=True))


# --------------------------------------------------------------------------- the command


def test_laws_command(tmp_path):
    from typer.testing import CliRunner

    from sim.cli import app

    runner = CliRunner()
    starter = str(L.SCENARIO_DIR / "starter.yaml")
    result = runner.invoke(app, ["laws", starter, "--law", "own_price_up_customers_down", "-n", "2", "--population", "2000", "--steps", "24"])
    assert result.exit_code in (0, 1), result.output
    assert "own_price_up_customers_down" in result.output and "starter" in result.output
    assert ("1 passed" in result.output) == (result.exit_code == 0)
    assert runner.invoke(app, ["laws"]).exit_code == 2  # no market
    assert runner.invoke(app, ["laws", "--generated", "1", "--law", "no_such_law"]).exit_code == 2
    listing = runner.invoke(app, ["laws", "--list"])
    assert listing.exit_code == 0 and all(law.id in listing.output for law in L.LAWS)

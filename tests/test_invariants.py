"""Invariants that must hold after every step, and reproducibility.

The market used here switches on nearly every mechanism at once (tiers, punch card,
coalition points, profit sharing, volume discounts, community, lock-in, marketing, a
firm entering, a rival cutting its price and later leaving, a segment one firm does not
serve), so a bookkeeping slip anywhere shows up as a broken identity.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from sim.ledger import COSTS
from sim.measures import (
    ATTITUDE_THRESHOLD,
    EMOTIONAL_THRESHOLD,
    REPEAT_THRESHOLD,
    SATISFACTION_LEVELS,
    STICKINESS,
    repeat_purchase_rate,
    year_steps,
)
from sim.model import LoyaltyModel
from sim.population import HELD, HELD_BY, LOYALTY_OF_HELD_BY, LOYALTY_TYPES, PROSPECT
from sim.rules import satisfaction_level

from conftest import make_scenario

RICH = dict(
    market={"population": 3000, "steps": 30, "seed": 5},
    segments=[
        {"preset": "price_seekers", "share": 0.3},
        {"preset": "service_seekers", "share": 0.3},
        {"preset": "community_minded", "share": 0.2},
        {"preset": "b2b_distributor", "share": 0.2},
    ],
    firms={
        "focal": {
            "initial_share": 0.25,
            "rewards": {
                "enabled": True,
                "end_step": 20,
                "tiers": [
                    {"name": "silver", "min_annual_spend": 200, "discount": 0.02, "points_multiplier": 1.5},
                    {"name": "gold", "min_annual_spend": 600, "discount": 0.05, "points_multiplier": 2.0},
                ],
                "punch_card": {"enabled": True, "stamps": 8},
                "profit_sharing": {"enabled": True, "share": 0.1, "period_days": 180},
                "volume_discounts": [{"min_annual_spend": 1000, "discount": 0.05}],
                "coalition": {"enabled": True, "fee_per_point": 0.01},
            },
            "community": {"enabled": True, "event_cost": 500, "co_creation": 0.3},
            "lock_in": {"learning_cost": 20, "ecosystem_per_year": 10, "contract_days": 365, "exit_fee": 30},
            "acquisition": {"budget_per_year": 20000},
            "costs": {"fixed_per_year": 10000},
            "product": {"personalisation": 0.2, "promise": 1.2},
        },
        "rival": {
            "initial_share": 0.25,
            "price": {"list": 8.5},
            "service": {"failure_rate": 0.1, "availability": 0.9},
            "serves": ["price_seekers", "b2b_distributor", "service_seekers"],
        },
        "entrant": {"initial_share": 0.0, "active": False, "price": {"list": 11.0}, "product": {"quality": 1.2}},
    },
    timeline=[
        {"at": 6, "set": {"firms.entrant.active": True}},
        {"at": 12, "set": {"firms.rival.price.list": 7.5}},
        {"at": 18, "set": {"firms.focal.service.quality": 0.8, "firms.rival.active": False}},
    ],
)


@pytest.fixture(scope="module")
def rich_scenario():
    return make_scenario(**RICH)


def check_step(model: LoyaltyModel) -> None:
    """Every invariant, on the state and the metrics row of the step just finished."""
    t = model.steps
    pop = model.population
    n_firms = len(model.firm_names)
    frame = model.metrics_frame()
    row = frame[frame["step"] == t].set_index("firm").loc[list(model.firm_names)]
    where = f"after step {t}"

    # customers are conserved
    customers = np.bincount(pop.firm[pop.firm >= 0], minlength=n_firms)
    np.testing.assert_array_equal(row["customers"].to_numpy(), customers, err_msg=where)
    prospects = int((pop.firm == PROSPECT).sum())
    assert customers.sum() + prospects == pop.size, where
    assert (row["prospects"] == prospects).all(), where
    assert np.all((pop.firm >= PROSPECT) & (pop.firm < n_firms)), where

    # shares of firms with customers sum to 1
    has = row["customers"] > 0
    for family in (
        [f"share_{lvl}" for lvl in SATISFACTION_LEVELS],
        [f"share_{t_}" for t_ in LOYALTY_TYPES],
        ["share_promoters", "share_passives", "share_detractors"],
        ["quadrant_true", "quadrant_latent", "quadrant_spurious", "quadrant_none"],
        ["stickiness_high", "stickiness_medium", "stickiness_low"],
    ):
        sums = row.loc[has, family].sum(axis=1).to_numpy()
        np.testing.assert_allclose(sums, 1.0, atol=1e-9, err_msg=f"{where}: {family}")
        assert (row[family] >= 0).all().all(), where
    if has.any():
        assert row.loc[has, "market_share"].sum() == pytest.approx(1.0), where

    # money: profit is revenue minus every cost; cumulative profit adds up
    costs = row[list(COSTS)].sum(axis=1)
    np.testing.assert_allclose(row["profit"], row["revenue"] - costs, rtol=1e-12, atol=1e-6, err_msg=where)
    for account in ("revenue", *COSTS):
        assert (row[account] >= -1e-9).all(), f"{where}: negative {account}"
    cumulative = frame.groupby("firm")["profit"].sum().loc[list(model.firm_names)]
    np.testing.assert_allclose(row["cumulative_profit"], cumulative, rtol=1e-9, atol=1e-6, err_msg=where)
    ledger_profit = model.ledger.profit(t)[t]
    np.testing.assert_allclose(row["profit"], ledger_profit, rtol=1e-12, err_msg=where)

    # flows are consistent with stocks
    assert (row["churned"] >= row["lost_to_rivals"]).all(), where
    assert row["won_from_rivals"].sum() == row["lost_to_rivals"].sum(), where
    assert ((row["retention_rate"] >= 0) & (row["retention_rate"] <= 1)).all(), where

    # no NaN or inf anywhere
    numeric = frame.drop(columns=["firm"]).to_numpy(dtype=float)
    assert np.isfinite(numeric).all(), f"{where}: non-finite metrics in {list(frame.columns[1:][~np.isfinite(numeric).all(axis=0)])}"
    for f in fields(pop):
        values = getattr(pop, f.name)
        if values.dtype.kind == "f":
            assert np.isfinite(values).all(), f"{where}: non-finite population.{f.name}"

    # states in range
    assert (pop.tenure >= 0).all(), where
    assert ((pop.trust >= 0) & (pop.trust <= 1)).all(), where
    assert ((pop.attachment >= 0) & (pop.attachment <= 1)).all(), where
    assert ((pop.repurchase >= 0) & (pop.repurchase <= 1)).all(), where
    assert (pop.recommend <= 10).all(), where
    assert (pop.points >= 0).all() and (pop.stamps >= 0).all(), where
    assert (pop.expectation > 0).all() and (pop.perceived_value > 0).all(), where
    assert (pop.held_by < len(HELD_BY)).all(), where
    mine = pop.firm >= 0
    assert (pop.switching_cost[mine] >= 0).all(), where
    # prospects hold nothing of a firm's
    assert (pop.points[~mine] == 0).all() and (~pop.member[~mine]).all() and (pop.tier[~mine] == 0).all(), where
    # members only of firms that run a community; customers only of active firms that serve them
    offers = model.offers
    assert (~pop.member[mine] | offers.community[pop.firm[mine]]).all(), where
    assert offers.serves[pop.segment[mine], pop.firm[mine]].all(), f"{where}: a customer of a firm that does not serve its segment"
    assert offers.active[pop.firm[mine]].all(), f"{where}: a customer of a firm that left the market"


def test_invariants_hold_after_every_step(rich_scenario):
    model = LoyaltyModel(rich_scenario, seed=3)
    check_step(model)  # the initial state (step 0)
    while model.steps < model.n_steps:
        model.step()
        check_step(model)
    assert model.steps == rich_scenario.market.steps
    frame = model.metrics_frame()
    # the scenario exercised what it meant to: the entrant won customers, the rival lost all of its own
    entrant = frame[frame["firm"] == "entrant"].set_index("step")
    rival = frame[frame["firm"] == "rival"].set_index("step")
    focal = frame[frame["firm"] == "focal"].set_index("step")
    assert entrant.loc[5, "customers"] == 0 and entrant.loc[12, "customers"] > 0
    assert rival.loc[17, "customers"] > 0 and rival.loc[18, "customers"] == 0
    assert focal["reward_cost"].loc[1:19].gt(0).all() and focal["community_cost"].loc[1:].gt(0).all()
    assert focal["points_outstanding"].loc[20:].eq(0).all()  # the programme ended at step 20
    assert focal["members"].max() > 0


@pytest.mark.parametrize("population,steps", [(0, 3), (1, 3), (50, 5)])
def test_invariants_hold_in_tiny_markets(population, steps):
    scenario = make_scenario(market={"population": population, "steps": steps})
    model = LoyaltyModel(scenario)
    check_step(model)
    while model.steps < model.n_steps:
        model.step()
        check_step(model)


def test_invariants_hold_with_no_initial_customers_and_weekly_steps():
    scenario = make_scenario(
        market={"population": 2000, "steps": 20, "step_days": 7.0},
        firms={"focal": {"initial_share": 0.0}, "rival": {"initial_share": 0.0}},
    )
    model = LoyaltyModel(scenario, seed=2)
    while model.steps < model.n_steps:
        model.step()
        check_step(model)
    assert model.metrics_frame()["customers"].iloc[-2:].sum() > 0


# --------------------------------------------------------------------------- reproducibility


def _tables(scenario, seed=None):
    model = LoyaltyModel(scenario, seed=seed).run()
    return model.metrics_frame(), model.customers_frame()


def test_measures_of_customer_state_are_what_the_customers_hold(rich_scenario):
    """Every measure the tally sums or counts, against the same measure computed here from
    the population's arrays, per firm, after each step; on two threads, so that the second
    range's customers are tallied apart from the first's."""
    model = LoyaltyModel(rich_scenario, seed=4, threads=2)
    names = list(model.firm_names)
    behaviour = model.config.behaviour
    for _ in range(16):
        model.step()
        t, pop = model.steps, model.population
        frame = model.metrics_frame()
        row = frame[frame["step"] == t].set_index("firm").loc[names]
        customer_history = frame.pivot(index="step", columns="firm", values="customers")[names].to_numpy()
        for f, name in enumerate(names):
            mine = pop.firm == f
            n = mine.sum()
            got = row.loc[name]
            where = f"after step {t}, {name}"
            assert got["customers"] == n, where
            if n == 0:
                continue

            def share(flags, mine=mine, n=n):
                return np.count_nonzero(flags[mine]) / n

            def mean(values, mine=mine, n=n):
                return values[mine].astype(np.float64).sum() / n

            expected = {
                "satisfaction_mean": mean(pop.satisfaction),
                "satisfaction_avg_mean": mean(pop.satisfaction_avg),
                "expectation_mean": mean(pop.expectation),
                "perceived_value_mean": mean(pop.perceived_value),
                "trust_mean": mean(pop.trust),
                "attachment_mean": mean(pop.attachment),
                "switching_cost_mean": mean(pop.switching_cost),
                "repurchase_probability": mean(pop.repurchase),
                "points_outstanding": pop.points[mine].astype(np.float64).sum(),
                "members": np.count_nonzero(pop.member[mine]),
                "share_promoters": share(pop.recommend >= 9),
                "share_detractors": share(pop.recommend <= 6),
                "share_locked_in": share(pop.held_by == HELD["switching_cost"]),
                "layer_behavioural": share(pop.repurchase >= REPEAT_THRESHOLD),
                "layer_attitudinal": share(pop.recommend >= ATTITUDE_THRESHOLD),
                "layer_emotional": share(pop.attachment >= EMOTIONAL_THRESHOLD),
            }
            levels = satisfaction_level(pop.satisfaction_avg, behaviour)
            for code, level in enumerate(SATISFACTION_LEVELS):
                expected[f"share_{level}"] = share(levels == code)
            loyalty = LOYALTY_OF_HELD_BY[pop.held_by]
            for code, kind in enumerate(LOYALTY_TYPES):
                expected[f"share_{kind}"] = share(loyalty == code)
            favourable, repeat = pop.recommend >= ATTITUDE_THRESHOLD, pop.repurchase >= REPEAT_THRESHOLD
            expected["quadrant_true"] = share(favourable & repeat)
            expected["quadrant_latent"] = share(favourable & ~repeat)
            expected["quadrant_spurious"] = share(~favourable & repeat)
            expected["quadrant_none"] = share(~favourable & ~repeat)
            (_, high), (_, medium), _ = STICKINESS
            expected["stickiness_high"] = share(pop.repurchase >= high)
            expected["stickiness_medium"] = share((pop.repurchase >= medium) & (pop.repurchase < high))
            expected["stickiness_low"] = share(pop.repurchase < medium)
            for measure, value in expected.items():
                assert got[measure] == pytest.approx(value, rel=1e-9, abs=1e-12), f"{where}: {measure}"
            # kept: customers with a tenure above the repeat-purchase window
            window = min(t, year_steps(model.steps_per_year))
            kept = np.zeros(len(names))
            kept[f] = np.count_nonzero(mine & (pop.tenure > window))
            rate = repeat_purchase_rate(kept, customer_history, t, model.steps_per_year)[f]
            assert got["repeat_purchase_rate"] == pytest.approx(rate, rel=1e-12), f"{where}: repeat_purchase_rate"


def test_same_scenario_and_seed_give_identical_tables(rich_scenario):
    metrics_a, customers_a = _tables(rich_scenario)
    metrics_b, customers_b = _tables(rich_scenario)
    pd.testing.assert_frame_equal(metrics_a, metrics_b, check_exact=True)
    pd.testing.assert_frame_equal(customers_a, customers_b, check_exact=True)
    # the seed argument and market.seed are the same thing
    metrics_c, customers_c = _tables(rich_scenario, seed=rich_scenario.market.seed)
    pd.testing.assert_frame_equal(metrics_a, metrics_c, check_exact=True)
    pd.testing.assert_frame_equal(customers_a, customers_c, check_exact=True)


def test_a_different_seed_gives_different_tables(rich_scenario):
    metrics_a, customers_a = _tables(rich_scenario, seed=11)
    metrics_b, customers_b = _tables(rich_scenario, seed=12)
    assert not metrics_a.equals(metrics_b)
    assert not customers_a.equals(customers_b)
    # different in substance, not only in a column or two
    assert not np.allclose(metrics_a["customers"], metrics_b["customers"])
    assert (customers_a["firm"] != customers_b["firm"]).mean() > 0.1

"""The model's mechanisms show the direction MODEL.md claims for them.

Each test changes one scenario key (or watches one group of customers) and checks the
direction of the effect with a margin, over several seeds or with common random numbers
(paired runs that differ only in that key), so a pass is not luck. Each is written so
that deleting or inverting the mechanism turns it red.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.model import LoyaltyModel
from sim.population import LOYALTY_TYPES, PROSPECT

from conftest import DELETE, firm_rows, make_scenario, mean_over, metrics_of, paired, run_model, total

SEEDS = range(4)
INCENTIVE = LOYALTY_TYPES.index("incentive")
TRUST = LOYALTY_TYPES.index("trust")
PRICE = LOYALTY_TYPES.index("price")


def step_to(model: LoyaltyModel, step: int) -> LoyaltyModel:
    while model.steps < step:
        model.step()
    return model


# --------------------------------------------------------------------------- 1. expectation


def test_demanding_segment_is_less_satisfied_with_the_same_offer():
    """Two segments identical but for `expectation`: same perceived value, lower c = b / a."""
    scenario = make_scenario(
        segments=[{"name": "easy", "share": 0.5, "expectation": 1.0}, {"name": "demanding", "share": 0.5, "expectation": 1.3}]
    )
    for seed in range(3):
        customers = run_model(scenario, seed).customers_frame()
        customers = customers[customers["firm"] != ""]
        by = customers.groupby("segment")[["satisfaction_avg", "satisfaction", "perceived_value", "expectation"]].mean()
        # equal perceived value (within 5%: the demanding customers who stay are more often those whose
        # last purchases went well, the others having left, which lifts their mean by 1-3% over seeds 0-7) ...
        assert by.loc["demanding", "perceived_value"] == pytest.approx(by.loc["easy", "perceived_value"], rel=0.05)
        # ... higher expectation, lower satisfaction
        assert by.loc["demanding", "expectation"] > by.loc["easy", "expectation"] * 1.05
        assert by.loc["demanding", "satisfaction_avg"] < by.loc["easy", "satisfaction_avg"] - 0.04
        assert by.loc["demanding", "satisfaction"] < by.loc["easy", "satisfaction"] - 0.04


def test_raising_expectation_lowers_market_satisfaction_same_seed():
    def market(expectation):
        return make_scenario(segments=[{"name": "mainstream", "share": 1.0, "expectation": expectation}])

    sat = paired(market, (1.0, 1.25), SEEDS, lambda f: mean_over(f, "focal", "satisfaction_avg_mean"))
    assert np.all(sat[:, 1] < sat[:, 0] - 0.04), sat


# --------------------------------------------------------------------------- 2. expectation management


def _promise(level):
    return make_scenario(sets={"firms.focal.product.promise": level})


def test_over_promising_wins_early_sales_then_loses_satisfaction():
    """promise 1.3 vs an honest 1.0, same seed: more acquisitions in the first six months,
    lower satisfaction in the second year."""
    early = paired(_promise, (1.0, 1.3), SEEDS, lambda f: total(f, "focal", "acquisitions", slice(1, 6)))
    assert np.all(early[:, 1] > early[:, 0] * 1.05), early
    late = paired(_promise, (1.0, 1.3), SEEDS, lambda f: mean_over(f, "focal", "satisfaction_avg_mean", slice(13, 24)))
    assert np.all(late[:, 1] < late[:, 0] - 0.02), late


def test_over_promising_then_loses_repeat_purchase():
    churn = paired(_promise, (1.0, 1.3), SEEDS, lambda f: mean_over(f, "focal", "churn_rate", slice(13, 24)))
    assert np.all(churn[:, 1] > churn[:, 0] * 1.5), churn


def test_under_promising_keeps_customers_satisfied_but_sells_less():
    early = paired(_promise, (1.0, 0.8), SEEDS, lambda f: total(f, "focal", "acquisitions", slice(1, 6)))
    assert np.all(early[:, 1] < early[:, 0]), early
    sat = paired(_promise, (1.0, 0.8), SEEDS, lambda f: mean_over(f, "focal", "satisfaction_avg_mean", slice(13, 24)))
    assert np.all(sat[:, 1] > sat[:, 0]), sat


# --------------------------------------------------------------------------- 3. switching cost


LOCK_IN = {
    "exit_fee": lambda v: {"firms.focal.lock_in.contract_days": 730.0, "firms.focal.lock_in.exit_fee": v},
    "learning_cost": lambda v: {"firms.focal.lock_in.learning_cost": v},
    "ecosystem_per_year": lambda v: {"firms.focal.lock_in.ecosystem_per_year": v},
}


def _chosen_churn(frame) -> float:
    """The focal firm's churn by its customers' choice, per customer and step: every leaver but
    those who left the category for reasons no firm controls (which no switching cost holds back)."""
    rows = firm_rows(frame, "focal").loc[1:]
    return float(((rows["churned"] - rows["churn_left_category"]) / rows["customers"].clip(lower=1)).mean())


@pytest.mark.parametrize("lever", sorted(LOCK_IN))
def test_higher_switching_cost_lowers_churn(lever):
    def market(value):
        return make_scenario(sets=LOCK_IN[lever](value))

    levels = (0.0, 20.0, 80.0)
    churn = paired(market, levels, SEEDS, _chosen_churn)
    assert np.all(churn[:, 2] < churn[:, 0] * 0.7), churn  # each seed: a large cost cuts churn clearly
    mean = churn.mean(axis=0)
    assert mean[0] > mean[1] > mean[2], mean  # and more cost, less churn
    # the cost is what the model reports as switching cost
    cost = paired(market, levels, SEEDS[:1], lambda f: mean_over(f, "focal", "switching_cost_mean"))[0]
    assert cost[0] < cost[1] < cost[2], cost


def test_switching_cost_lowers_losses_to_rivals():
    def market(value):
        return make_scenario(sets=LOCK_IN["learning_cost"](value))

    lost = paired(market, (0.0, 80.0), SEEDS, lambda f: total(f, "focal", "lost_to_rivals"))
    assert np.all(lost[:, 1] < lost[:, 0] * 0.6), lost


# --------------------------------------------------------------------------- 4. a rewards programme ends


def _rewards_market(how: str | None, end: int = 12):
    rewards = {"enabled": True, "points_rate": 0.1, "redemption_threshold": 10}
    data = {
        "market": {"population": 5000},
        "segments": [{"preset": "price_seekers", "share": 0.5}, {"preset": "service_seekers", "share": 0.5}],
        "firms": {"focal": {"rewards": rewards}},
    }
    if how == "end_step":
        rewards["end_step"] = end
    elif how == "timeline":
        data["timeline"] = [{"at": end, "set": {"firms.focal.rewards.enabled": False}}]
    return make_scenario(**data)


def _kept_by_type(scenario, seed, before: int, after: int, types: tuple[int, ...]) -> list[float]:
    """Fraction of the focal firm's customers of each loyalty type just before step ``before + 1``
    who are still its customers after step ``after``."""
    model = step_to(LoyaltyModel(scenario, seed=seed), before)
    pop, focal = model.population, model.focal_index
    mine = pop.firm == focal
    groups = [np.flatnonzero(mine & (pop.loyalty_type == t)) for t in types]
    assert all(g.size >= 100 for g in groups), [g.size for g in groups]
    step_to(model, after)
    return [float((pop.firm[g] == focal).mean()) for g in groups]


@pytest.mark.parametrize("how", ["end_step", "timeline"])
def test_incentive_loyal_leave_faster_than_trust_loyal_when_rewards_end(how):
    """Rewards end at step 12. Over the next six steps the focal firm's incentive-loyal
    customers (held by the programme) leave clearly faster than its trust-loyal ones, and the
    end raises their departures far more (same seeds with the programme running on as the
    baseline). Stated as ratios of departure rates, so the test does not hang on the overall
    churn level."""
    rise = np.zeros(2)
    for seed in range(4):
        inc_end, trust_end = (1 - k for k in _kept_by_type(_rewards_market(how), seed, 11, 17, (INCENTIVE, TRUST)))
        inc_on, trust_on = (1 - k for k in _kept_by_type(_rewards_market(None), seed, 11, 17, (INCENTIVE, TRUST)))
        assert inc_end > 1.3 * trust_end, (seed, inc_end, trust_end)
        # the end is what drives them away (both include the category exits no firm controls, about
        # 7% in six months at the default rate, so the ratio is smaller than that of the rises)
        assert inc_end > 1.4 * inc_on, (seed, inc_end, inc_on)
        rise += (inc_end - inc_on, trust_end - trust_on)
    assert rise[0] > 1.5 * rise[1], rise


def test_rewards_hold_incentive_loyal_customers_while_they_run():
    """While a programme runs, some customers are classified incentive-loyal; once it has
    ended and points are gone, none are."""
    model = step_to(LoyaltyModel(_rewards_market("end_step", end=6), seed=0), 5)
    frame = firm_rows(model.metrics_frame(), "focal")
    assert frame.loc[5, "share_incentive"] > 0.2
    step_to(model, 12)
    frame = firm_rows(model.metrics_frame(), "focal")
    assert frame.loc[12, "share_incentive"] < 0.02
    assert frame.loc[12, "points_outstanding"] == 0


# --------------------------------------------------------------------------- 5. monopoly


def test_single_firm_customers_are_monopoly_loyal():
    scenario = make_scenario(firms={"rival": DELETE})
    for seed in range(2):
        focal = firm_rows(metrics_of(scenario, seed), "focal")
        assert (focal.loc[1:, "customers"] > 0).all()
        np.testing.assert_allclose(focal.loc[1:, "share_monopoly"], 1.0)


def test_segment_no_rival_serves_is_monopoly_loyal_and_the_other_is_not():
    scenario = make_scenario(
        segments=[{"name": "contested", "share": 0.5}, {"name": "captive", "share": 0.5}],
        firms={"rival": {"serves": ["contested"]}},
    )
    for seed in range(2):
        customers = run_model(scenario, seed).customers_frame()
        focal = customers[customers["firm"] == "focal"]
        captive, contested = focal[focal["segment"] == "captive"], focal[focal["segment"] == "contested"]
        assert len(captive) > 300 and len(contested) > 300
        assert (captive["loyalty_type"] == "monopoly").all()
        assert (contested["loyalty_type"] == "monopoly").mean() == 0.0
        rival = customers[customers["firm"] == "rival"]
        assert set(rival["segment"]) == {"contested"}


def test_monopoly_ends_when_a_rival_enters():
    scenario = make_scenario(
        firms={"rival": {"active": False, "initial_share": 0.0}},
        timeline=[{"at": 7, "set": {"firms.rival.active": True}}],
        market={"steps": 12},
    )
    focal = firm_rows(run_model(scenario, 0).metrics_frame(), "focal")
    assert focal.loc[6, "share_monopoly"] == 1.0
    assert focal.loc[8, "share_monopoly"] == 0.0


# --------------------------------------------------------------------------- 6. a rival cuts its price


def _price_cut_market(cut: float | None):
    data = {
        "market": {"population": 5000},
        "segments": [{"preset": "price_seekers", "share": 0.5}, {"preset": "service_seekers", "share": 0.5}],
        "firms": {"focal": {"price": {"list": 9.5}}, "rival": {"price": {"list": 10.0}}},
    }
    if cut is not None:
        data["timeline"] = [{"at": 12, "set": {"firms.rival.price.list": cut}}]
    return make_scenario(**data)


def test_rival_price_cut_moves_price_loyal_customers_first():
    """The rival (10.0) undercuts the focal firm (9.5) at step 12 with 9.2. Over the next
    three steps the focal firm's price-loyal customers (held by its price advantage) leave at
    a clearly higher rate than its trust-loyal ones, and the cut raises their departures far
    more than those of the trust-loyal (same seeds without the cut as the baseline)."""
    rise = np.zeros(2)
    for seed in range(5):
        price_cut, trust_cut = (1 - k for k in _kept_by_type(_price_cut_market(9.2), seed, 11, 14, (PRICE, TRUST)))
        price_no, trust_no = (1 - k for k in _kept_by_type(_price_cut_market(None), seed, 11, 14, (PRICE, TRUST)))
        assert price_cut > 1.1 * trust_cut, (seed, price_cut, trust_cut)
        # the cut is what moved them (both include the category exits no firm controls, about 4% in
        # three steps at the default rate, so the ratio is smaller than that of the rises)
        assert price_cut > 1.2 * price_no, (seed, price_cut, price_no)
        rise += (price_cut - price_no, trust_cut - trust_no)
    assert rise[0] > 1.5 * rise[1], rise


def test_price_loyalty_needs_a_price_advantage():
    """The focal firm is cheaper: price-loyal customers; dearer: (almost) none."""
    cheap = run_model(_price_cut_market(None), 0).metrics_frame()
    dear = run_model(make_scenario(
        segments=[{"preset": "price_seekers", "share": 0.5}, {"preset": "service_seekers", "share": 0.5}],
        firms={"focal": {"price": {"list": 10.5}}, "rival": {"price": {"list": 10.0}}},
    ), 0).metrics_frame()
    assert mean_over(cheap, "focal", "share_price") > 0.15
    assert mean_over(dear, "focal", "share_price") < 0.02
    assert mean_over(dear, "rival", "share_price") > 0.15


# --------------------------------------------------------------------------- 7. word of mouth


def _wom_market(negative_reach: float, word_weight: float = 0.10):
    return make_scenario(
        behaviour={
            "word_of_mouth": {"negative_reach_per_year": negative_reach},
            "choice": {"word_of_mouth_weight": word_weight},
        },
        firms={
            "focal": {"service": {"failure_rate": 0.5, "recovery_rate": 0.0}},  # makes detractors
            "rival": {"service": {"failure_rate": 0.02}},
        },
    )


def _focal_share_of_new_customers(frame) -> float:
    focal, rival = total(frame, "focal", "acquired_prospects"), total(frame, "rival", "acquired_prospects")
    return focal / (focal + rival)


def test_negative_word_of_mouth_lowers_acquisition_of_the_firm_talked_about():
    """A firm with many detractors wins a smaller share of new customers when detractors talk
    (negative_reach_per_year 20) than when they keep quiet (0)."""
    share = paired(_wom_market, (0.0, 20.0), range(5), _focal_share_of_new_customers)
    drop = share[:, 0] - share[:, 1]
    assert np.all(drop > 0.02), share
    assert drop.mean() > 0.03, share
    # the talk happened
    heard = total(metrics_of(_wom_market(20.0), 0), "focal", "word_of_mouth_negative")
    assert heard > 1000


def test_prospects_who_heard_bad_things_choose_the_firm_less():
    """Among prospects who started buying, those who had heard net negative word of mouth about
    the focal firm chose it much less often than those who had heard nothing."""
    counts = np.zeros((2, 2))  # rows: heard bad, heard nothing; cols: chose focal, bought at all
    for seed in range(2):
        model = LoyaltyModel(_wom_market(20.0), seed=seed)
        pop, focal = model.population, model.focal_index
        while model.steps < model.n_steps:
            prospects = np.flatnonzero(pop.firm == PROSPECT)
            heard = pop.buzz[prospects, focal].copy()
            model.step()
            now = pop.firm[prospects]
            bought = now >= 0
            for row, group in enumerate([heard < -0.5, np.abs(heard) < 0.05]):  # heard bad things; (almost) nothing
                counts[row] += [(bought & group & (now == focal)).sum(), (bought & group).sum()]
    assert counts[:, 1].min() > 200, counts
    rate_bad, rate_nothing = counts[:, 0] / counts[:, 1]
    assert rate_bad < rate_nothing - 0.05, counts


def test_positive_word_of_mouth_brings_referrals():
    """Promoters talking (positive reach 12/yr vs 0) bring more prospects into the market."""

    def market(reach):
        return make_scenario(
            behaviour={"word_of_mouth": {"positive_reach_per_year": reach}},
            firms={"focal": {"product": {"quality": 1.3}}},  # delighted customers: promoters
        )

    acquired = paired(market, (0.0, 12.0), SEEDS, lambda f: total(f, "focal", "acquired_prospects"))
    assert np.all(acquired[:, 1] > acquired[:, 0] * 1.1), acquired

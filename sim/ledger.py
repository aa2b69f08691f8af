"""All money, in one place: per firm and step, every revenue and cost account.

Accounts are booked with :meth:`Ledger.book` from per-customer amounts (summed by
firm) or firm-level amounts; profit is revenue minus every booked cost, so the
identity ``profit == revenue - sum(costs)`` holds by construction and is tested.
"""

from __future__ import annotations

import numpy as np

REVENUE = "revenue"
COSTS = ("cost_of_goods", "service_cost", "reward_cost", "community_cost", "acquisition_cost", "fixed_cost")
#: Costs that scale with the customers served (used for the contribution margin in CLV).
VARIABLE_COSTS = ("cost_of_goods", "service_cost", "reward_cost", "community_cost")
ACCOUNTS = (REVENUE, *COSTS)


class Ledger:
    """Per-step, per-firm accounts. Rows are steps 0..steps (step 0 books nothing)."""

    def __init__(self, steps: int, n_firms: int, step_years: float, discount_rate: float):
        self.n_firms = n_firms
        self.accounts = {name: np.zeros((steps + 1, n_firms)) for name in ACCOUNTS}
        self.discount = (1.0 + discount_rate) ** (-step_years * np.arange(steps + 1))

    def book(self, step: int, account: str, amount: np.ndarray, firm: np.ndarray | None = None) -> None:
        """Add ``amount`` to ``account`` at ``step``: per customer (summed over ``firm``) or per firm."""
        if firm is None:
            self.accounts[account][step] += amount
        else:
            self.accounts[account][step] += np.bincount(firm, weights=amount, minlength=self.n_firms)

    def profit(self, upto: int | None = None) -> np.ndarray:
        """(steps + 1, F) profit: revenue minus every cost."""
        rows = slice(None, None if upto is None else upto + 1)
        return self.accounts[REVENUE][rows] - sum(self.accounts[c][rows] for c in COSTS)

    def contribution(self, step: int | slice) -> np.ndarray:
        """Revenue minus the costs of serving customers, per firm, at ``step`` (or each step of a slice)."""
        return self.accounts[REVENUE][step] - sum(self.accounts[c][step] for c in VARIABLE_COSTS)

"""How much memory a scenario needs, and a clear refusal when the machine has less.

The schema caps ``market.population`` (50 million) and ``market.steps`` (100,000), but a
market well inside those caps can still need more memory than the machine has. Rather
than let the operating system kill the process halfway through a run, the command line
estimates the peak memory of a run before starting it and stops with the estimate.

The figures below were measured with ``tracemalloc`` on the engine (peak of building,
running and writing a run, populations of 100,000 and 400,000, the difference divided by
300,000 people; ``python benchmarks/memory_per_customer.py`` repeats the measurement):

* about 300 bytes per person of state (traits, satisfaction, trust, tenure, points, the
  customers table written at the end ...);
* about 9 bytes per social tie (``market.network.mean_degree`` ties per person: 4 bytes
  of neighbour index plus the temporaries of building the network);
* 8 bytes per value of the metrics table: (steps + 1) x firms rows of about 80 measures,
  counted twice (the table and its frame);
* about 250 MB for the interpreter and libraries.

The estimate is compared with the memory available now (``MemAvailable`` in
``/proc/meminfo``, else the physical memory), or with ``LOYALTY_SIM_MAX_MEMORY`` (e.g.
``8GB``, ``500MB``) when that is set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

BYTES_PER_PERSON = 300
BYTES_PER_TIE = 9
METRIC_COLUMNS = 80
BASE_BYTES = 250 * 1024**2
ENV_LIMIT = "LOYALTY_SIM_MAX_MEMORY"

_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3, "T": 1024**4, "TB": 1024**4}


@dataclass(frozen=True)
class Estimate:
    """Peak memory of one run, in bytes, and its parts."""

    people: int
    ties: int
    metrics: int

    @property
    def total(self) -> int:
        return BASE_BYTES + self.people + self.ties + self.metrics


def estimate(scenario) -> Estimate:
    """The peak memory one run of ``scenario`` needs (see the module docstring)."""
    market = scenario.market
    population = market.population
    return Estimate(
        people=population * BYTES_PER_PERSON,
        ties=int(population * market.network.mean_degree * BYTES_PER_TIE),
        metrics=(market.steps + 1) * len(scenario.firms) * METRIC_COLUMNS * 8 * 2,
    )


def human(n: float) -> str:
    """Bytes as text: 1.5 GB, 300 MB."""
    for unit, size in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def parse_size(text: str) -> int:
    """'8GB', '500 MB', '1e9' -> bytes; ValueError if unreadable."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"{ENV_LIMIT}={text!r}: expected a size such as 8GB or 500MB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def available_memory() -> tuple[int | None, str]:
    """(bytes, where the figure comes from): the configured limit, else what the machine has free."""
    configured = os.environ.get(ENV_LIMIT)
    if configured:
        return parse_size(configured), f"the limit {ENV_LIMIT}={configured}"
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "the memory available on this machine"
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the memory of this machine"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def resource_problem(scenario, available: int | None = None, where: str | None = None, copies: int = 1) -> str | None:
    """A one-line explanation if one run of ``scenario`` would need more memory than is
    available (``available`` bytes, default: :func:`available_memory`), else None. It is
    about ``market.population`` (the biggest part), which callers name as the key.
    ``copies``: runs held in memory at once (one per worker process of an experiment)."""
    if available is None:
        try:
            available, where = available_memory()
        except ValueError as exc:
            return str(exc)
    if available is None:
        return None
    need = estimate(scenario)
    copies = max(1, copies)
    if need.total * copies <= available:
        return None
    market = scenario.market
    workers = f" a run, {human(need.total * copies)} for {copies} worker processes at once" if copies > 1 else ""
    return (
        f"{market.population:,} people with {market.network.mean_degree:g} ties each over "
        f"{market.steps:,} steps need about {human(need.total)} of memory{workers} ({human(need.people)} for the people at "
        f"{BYTES_PER_PERSON} B each, {human(need.ties)} for the social ties at {BYTES_PER_TIE} B each, "
        f"{human(need.metrics)} for the metrics, {human(BASE_BYTES)} for the program), more than "
        f"{where or 'available'} ({human(available)}); lower market.population, market.network.mean_degree or market.steps"
        + (", or use fewer worker processes (--jobs)" if copies > 1 else "")
    )

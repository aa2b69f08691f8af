"""Charts of an experiment folder: replications, comparisons, sweeps, the retention effect.

The charts are drawn only from the files an experiment writes (see
:mod:`sim.experiments`): ``experiment.json``, the resolved scenarios in
``scenarios/`` (step length, firm roles, title), and the tables ``bands.csv``,
``summary.csv``, ``differences.csv``, ``runs.csv``, ``best.json`` and
``retention_effect.csv``.  Nothing is re-run and the model is never imported.
:func:`plot_experiment` writes, by the experiment's kind:

``replications``
    ``bands.png`` (per firm, the mean path of the key measures with its 95%
    band) and ``loyalty_types.png`` (per firm, the mean loyalty-type shares);
``compare``
    ``comparison.png`` (the variants' focal firm overlaid), ``loyalty_mix.png``
    (the end-of-run loyalty-type mix of each variant) and ``differences.png``
    (a forest plot of the paired differences from the baseline);
``sweep``
    ``sweep.png`` (one key, or more than two: outcome against each key) or
    ``sweep_heatmap.png`` (two keys);
``retention-effect``
    ``retention_effect.png`` (profit uplift against the retention gain, with the
    published band, and the achieved against the targeted retention change) and
    ``uplift_sources.png`` (per gain, a stacked bar of where the change in cumulative
    profit comes from; only for folders whose ``retention_effect.csv`` has the
    ``source_*`` columns).

Every band and error bar is the 95% confidence interval of a mean over runs, and
each title says how many runs a line, bar or cell averages.  Figures are built the
pyplot-free way of :mod:`sim.charts`, with its colours; importing this module does
not import matplotlib or pandas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sim.charts import LOYALTY_TYPES, firm_colors

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["KINDS", "Experiment", "load_experiment", "plot_experiment"]

KINDS = ("replications", "compare", "sweep", "retention-effect")

#: Measures over time in bands.png and comparison.png (columns of bands.csv).
REPLICATION_MEASURES = ("customers", "profit", "cumulative_profit", "retention_rate", "satisfaction_avg_mean")
COMPARISON_MEASURES = ("profit", "cumulative_profit", "retention_rate", "satisfaction_avg_mean")
#: Outcomes of the forest plot (columns of differences.csv).
DIFFERENCE_OUTCOMES = ("cumulative_profit", "npv", "retention_rate_annual", "satisfaction_avg_mean", "nps", "clv")
#: Outcomes of the retention-effect uplift panel (columns of retention_effect.csv).
UPLIFT_OUTCOMES = ("profit_last_year", "cumulative_profit", "npv", "customer_equity")
#: Parts of the change in cumulative profit in uplift_sources.png (source_<part> columns of
#: retention_effect.csv, sim.experiments.UPLIFT_SOURCES): label and colour.
UPLIFT_SOURCES = {
    "kept_margin": ("customers kept (their margin)", "#1f77b4"),
    "word_of_mouth": ("customers won, net (word of mouth vs. fewer to win)", "#2ca02c"),
    "tenure_growth": ("margin per customer (tenure, mix)", "#ff7f0e"),
    "other": ("acquisition and fixed costs", "#7f7f7f"),
}
MONEY_MEASURES = frozenset({"profit", "cumulative_profit", "profit_last_year", "npv", "clv", "customer_equity"})

INTERVAL_NOTE = "shaded: 95% interval of the mean"


# --------------------------------------------------------------------------- measures


class Measure(NamedTuple):
    """How a measure is named on a chart. A unit of ``%`` marks a rate stored as a fraction."""

    title: str
    unit: str = ""

    @property
    def scale(self) -> float:
        return 100.0 if self.unit == "%" else 1.0

    @property
    def label(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit else self.title

    @property
    def difference_label(self) -> str:
        unit = "points" if self.unit == "%" else self.unit
        return f"difference ({unit})" if unit else "difference"


MEASURES: dict[str, Measure] = {
    "customers": Measure("Customers", "count"),
    "market_share": Measure("Market share", "%"),
    "profit": Measure("Profit per step", "money units"),
    "cumulative_profit": Measure("Cumulative profit", "money units"),
    "profit_last_year": Measure("Profit in the last year", "money units"),
    "npv": Measure("NPV of profit", "money units"),
    "retention_rate": Measure("Retention rate per step", "%"),
    "retention_rate_annual": Measure("Annual retention (last year)", "%"),
    "retention_rate_run": Measure("Annual retention (whole run)", "%"),
    "repeat_purchase_rate": Measure("Repeat-purchase rate", "%"),
    "satisfaction_avg_mean": Measure("Mean satisfaction c = b/a", "ratio"),
    "nps": Measure("NPS", "points"),
    "clv": Measure("CLV per customer", "money units"),
    "customer_equity": Measure("Customer equity", "money units"),
}


def measure(name: str) -> Measure:
    """The chart name and unit of an outcome or measure column."""
    if name in MEASURES:
        return MEASURES[name]
    if name.startswith("share_"):
        return Measure(f"Share {name.removeprefix('share_').replace('_', ' ')}", "%")
    return Measure(name.replace("_", " "))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Experiment:
    """An experiment folder: its ``experiment.json`` and resolved scenarios; tables on demand."""

    folder: Path
    info: dict[str, Any]
    scenarios: dict[str, dict[str, Any]]  # variant -> resolved scenario

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @property
    def variants(self) -> list[str]:
        return list(self.info.get("variants") or self.scenarios)

    @property
    def baseline(self) -> str:
        return self.info.get("baseline") or self.variants[0]

    def scenario(self, variant: str | None = None) -> dict[str, Any]:
        return self.scenarios.get(variant or self.variants[0]) or {}

    def firms(self, variant: str | None = None, present: Iterable[str] = ()) -> list[str]:
        """The variant's firms in scenario order, focal first, then any others in ``present``."""
        names = list(self.scenario(variant).get("firms") or {})
        names += [f for f in dict.fromkeys(present) if f not in names]
        focal = self.focal(variant, names)
        return sorted(names, key=lambda f: f != focal)  # stable

    def focal(self, variant: str | None = None, names: Sequence[str] = ()) -> str:
        """The focal firm: ``role: focal`` in the scenario, else its first firm."""
        firms = self.scenario(variant).get("firms") or {}
        for name, firm in firms.items():
            if (firm or {}).get("role") == "focal":
                return name
        return next(iter(firms), names[0] if names else "")

    @property
    def step_days(self) -> float:
        return float((self.scenario().get("market") or {}).get("step_days") or 1.0)

    @property
    def step_label(self) -> str:
        return f"step ({self.step_days:g} days)"

    @property
    def title(self) -> str:
        if self.kind == "compare":
            return " vs ".join(self.variants)
        scenario = self.scenario()
        return str(scenario.get("title") or scenario.get("name") or self.info.get("name") or self.folder.name)

    def table(self, stem: str) -> pd.DataFrame:
        import pandas as pd

        path = self.folder / f"{stem}.csv"
        if not path.is_file():
            raise ValueError(f"{self.folder} has no {path.name}: is this {self.kind} experiment complete?")
        return pd.read_csv(path, dtype={"variant": str, "firm": str, "baseline": str})

    def json(self, name: str) -> dict[str, Any] | None:
        path = self.folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_experiment(folder: str | Path) -> Experiment:
    """Read ``experiment.json`` and the resolved scenarios of an experiment folder."""
    import yaml

    from sim.results import safe_component

    folder = Path(folder)
    path = folder / "experiment.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not an experiment folder: it has no experiment.json")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind not in KINDS:
        raise ValueError(f"{path}: unknown experiment kind {kind!r}; expected one of {', '.join(KINDS)}")
    scenarios = {}
    for variant in info.get("variants") or {}:
        scenario_path = folder / "scenarios" / f"{safe_component(variant)}.yaml"
        if scenario_path.is_file():
            scenarios[variant] = yaml.safe_load(scenario_path.read_text(encoding="utf-8")) or {}
    return Experiment(folder, info, scenarios)


# --------------------------------------------------------------------------- figure helpers


class Series(NamedTuple):
    """One line with its band: a label, a colour and the rows to draw (ordered)."""

    label: str
    color: str
    frame: pd.DataFrame
    emphasised: bool = True


def _figure(n: int, ncols: int, panel: tuple[float, float], **subplots: Any) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels, ``ncols`` to a row, unused slots hidden."""
    from sim.charts import new_figure

    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    fig = new_figure((panel[0] * ncols + 0.8, panel[1] * nrows + 1.6))
    grid = fig.subplots(nrows, ncols, squeeze=False, **subplots).ravel()
    for ax in grid[n:]:
        ax.set_visible(False)
    return fig, list(grid[:n])


def _title(fig: Figure, experiment: Experiment, headline: str, detail: str) -> None:
    fig.suptitle(f"{headline}\n{experiment.title}\n{detail}", fontsize=12)


def _n_text(values: Iterable[Any], what: str = "runs per line") -> str:
    """``n = 4 runs per line`` (or ``n = 3-4 ...`` when the counts differ)."""
    counts = sorted({int(v) for v in values if v == v})  # v == v drops NaN
    if not counts:
        return f"n = ? {what}"
    span = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"n = {span} {what}"


def _interval(frame: pd.DataFrame, name: str, centre: str | None = None, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """(centre, ci_low, ci_high) arrays of ``name``; the centre column is ``name_centre`` or ``name``."""
    column = f"{name}_{centre}" if centre else name
    return tuple(frame[c].to_numpy(dtype=float) * scale for c in (column, f"{name}_ci_low", f"{name}_ci_high"))


def _feasible(bounds: Sequence[Any], m: Measure) -> list[Any]:
    """``bounds`` scaled for drawing; a rate's interval clipped to 0-100%."""
    import numpy as np

    scaled = [np.asarray(b, dtype=float) * m.scale for b in bounds]
    return [np.clip(b, 0.0, 100.0) for b in scaled] if m.unit == "%" else scaled


def _band(ax: Axes, x: Any, bounds: Sequence[Any], *, color: str, label: str | None, emphasised: bool = True, marker: str | None = None) -> None:
    """A mean line with its shaded interval."""
    mean, low, high = bounds
    ax.fill_between(x, low, high, color=color, alpha=0.22 if emphasised else 0.12, linewidth=0)
    ax.plot(
        x, mean, color=color, label=label, marker=marker or ("o" if len(mean) == 1 else None),
        linewidth=2.6 if emphasised else 1.5, zorder=3 if emphasised else 2,
    )


def _format_steps(ax: Axes, experiment: Experiment) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(experiment.step_label)
    ax.grid(True, alpha=0.3)


def _percent_axis(ax: Axes, m: Measure) -> None:
    if m.unit == "%":
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(xmax=100.0))


def _legend(fig: Figure, handles: list[Any], ncols: int = 6, band: bool = True) -> None:
    """The figure's legend below the panels, with an entry for the shaded interval."""
    from matplotlib.patches import Patch

    from sim.charts import figure_legend

    if band:
        handles = [*handles, Patch(color="grey", alpha=0.3, label="95% interval of the mean")]
    figure_legend(fig, handles, ncols)


def _text_color(rgba: Sequence[float]) -> str:
    """Black or white text, whichever reads better on ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def _time_panels(experiment: Experiment, headline: str, detail: str, series: Sequence[Series], measures: Sequence[str]) -> Figure:
    """One panel per measure of bands.csv over the steps, one band per series."""
    from sim.charts import zero_line

    fig, axes = _figure(len(measures), 2 if len(measures) == 4 else 3, (5.2, 3.5))
    for ax, name in zip(axes, measures):
        m = measure(name)
        for s in series:
            bounds = _feasible(_interval(s.frame, name, "mean"), m)
            _band(ax, s.frame["step"], bounds, color=s.color, label=s.label, emphasised=s.emphasised)
        if name in MONEY_MEASURES:
            zero_line(ax)
        ax.set_title(m.title)
        ax.set_ylabel(m.label)
        _percent_axis(ax, m)
        _format_steps(ax, experiment)
    _title(fig, experiment, headline, f"{detail}; {INTERVAL_NOTE}")
    _legend(fig, axes[0].get_legend_handles_labels()[0])
    return fig


Builders = dict[str, Callable[[], "Figure"]]


# --------------------------------------------------------------------------- replications


def _replication_charts(experiment: Experiment) -> Builders:
    bands = experiment.table("bands")
    firms = experiment.firms(present=bands["firm"])
    focal = experiment.focal(names=firms)
    colors = firm_colors(firms)
    series = [
        Series(f"{f} (focal)" if f == focal else f, colors[f], bands[bands["firm"] == f].sort_values("step"), f == focal)
        for f in firms
    ]
    n = _n_text(bands["n"])
    return {
        "bands.png": lambda: _time_panels(experiment, "Key measures per firm over time (mean of replications)", n, series, REPLICATION_MEASURES),
        "loyalty_types.png": lambda: _loyalty_types(experiment, bands, firms, focal, _n_text(bands["n"], "runs per firm")),
    }


def _loyalty_types(experiment: Experiment, bands: pd.DataFrame, firms: list[str], focal: str, n: str) -> Figure:
    """The single-run loyalty chart of :mod:`sim.charts`, drawn from the mean shares."""
    from sim.charts import RunData, loyalty_chart

    shares = bands.rename(columns={f"{t.column}_mean": t.column for t in LOYALTY_TYPES})
    run = RunData(shares, firms, frozenset({focal}), f"{experiment.title}; mean shares, {n}", experiment.step_days)
    return loyalty_chart(run)


# --------------------------------------------------------------------------- compare


def _compare_charts(experiment: Experiment) -> Builders:
    bands, summary, differences = (experiment.table(t) for t in ("bands", "summary", "differences"))
    variants = experiment.variants
    colors = firm_colors(variants)
    labels = {v: f"{v} (baseline)" if v == experiment.baseline else v for v in variants}

    def own(frame: pd.DataFrame, variant: str) -> pd.DataFrame:
        return frame[(frame["variant"] == variant) & (frame["firm"] == experiment.focal(variant))]

    series = [Series(labels[v], colors[v], own(bands, v).sort_values("step")) for v in variants]
    n = _n_text(bands["n"])
    headline = "Strategies compared: the focal firm in each variant"
    return {
        "comparison.png": lambda: _time_panels(experiment, headline, n, series, COMPARISON_MEASURES),
        "loyalty_mix.png": lambda: _loyalty_mix(experiment, [own(summary, v) for v in variants], [labels[v] for v in variants]),
        "differences.png": lambda: _differences(experiment, differences, colors),
    }


def _loyalty_mix(experiment: Experiment, rows: list[pd.DataFrame], labels: list[str]) -> Figure:
    """One stacked bar per variant: the focal firm's mean loyalty-type shares at the end."""
    import numpy as np
    from matplotlib.colors import to_rgba
    from matplotlib.ticker import PercentFormatter

    fig, (ax,) = _figure(1, 1, (max(5.0, 1.5 * len(labels) + 2.5), 4.8))
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for t in LOYALTY_TYPES:
        share = np.array([float(r[f"{t.column}_mean"].iloc[0]) if len(r) else 0.0 for r in rows])
        share = np.nan_to_num(share)
        ax.bar(x, share, bottom=bottom, width=0.6, color=t.color, label=t.label)
        for xi, low, h in zip(x, bottom, share):
            if h >= 0.05:
                ax.text(xi, low + h / 2, f"{h:.0%}", ha="center", va="center", fontsize=9, color=_text_color(to_rgba(t.color)))
        bottom += share
    ax.set_xticks(x, labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylim(0.0, 1.0)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_ylabel("share of the focal firm's customers (%)")
    ax.set_xlabel("variant")
    n = _n_text((r["n"].iloc[0] for r in rows if len(r)), "runs per bar")
    _title(fig, experiment, "Loyalty types of the focal firm's customers at the end of the run", f"mean shares, {n}")
    _legend(fig, ax.get_legend_handles_labels()[0], ncols=3 if len(labels) < 4 else 6, band=False)
    return fig


def _differences(experiment: Experiment, differences: pd.DataFrame, colors: dict[str, str]) -> Figure:
    """Forest plot: per outcome, each variant's mean paired difference from the baseline."""
    import numpy as np
    from matplotlib.lines import Line2D

    focal = experiment.focal(experiment.baseline)
    own = differences[differences["firm"] == focal]
    own = own.set_index("variant").reindex([v for v in experiment.variants if v in set(own["variant"])])
    variants = list(own.index)
    y = np.arange(len(variants))[::-1]  # first variant on top
    fig, axes = _figure(len(DIFFERENCE_OUTCOMES), 3, (4.4, 0.45 * len(variants) + 1.7), sharey=True)
    for ax, name in zip(axes, DIFFERENCE_OUTCOMES):
        m = measure(name)
        mean, low, high = _interval(own, name, "diff", m.scale)
        significant = own[f"{name}_significant"].astype(bool).to_numpy()
        for yi, variant, mu, lo, hi, sig in zip(y, variants, mean, low, high, significant):
            ax.errorbar(
                mu, yi, xerr=[[max(mu - lo, 0.0)], [max(hi - mu, 0.0)]], fmt="o", color=colors[variant],
                markerfacecolor=colors[variant] if sig else "white", markersize=9, capsize=4, linewidth=2,
            )
        ax.axvline(0.0, color="black", linewidth=0.9, zorder=1)
        ax.set_yticks(y, variants)
        ax.set_ylim(-0.7, len(variants) - 0.3)
        ax.set_title(m.title)
        ax.set_xlabel(m.difference_label)
        ax.grid(True, axis="x", alpha=0.3)
    marker = {"marker": "o", "color": "black", "linestyle": "none", "markersize": 8}
    handles = [
        Line2D([], [], markerfacecolor="black", label="significant: 95% interval excludes 0", **marker),
        Line2D([], [], markerfacecolor="white", label="not significant: interval includes 0", **marker),
    ]
    n = _n_text(own["n"], "paired runs per variant")
    _title(fig, experiment, f"Paired differences from the baseline '{experiment.baseline}' (focal firm '{focal}')", f"{n}; bars: 95% intervals")
    _legend(fig, handles, band=False)
    return fig


# --------------------------------------------------------------------------- sweep


def _grid_positions(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """x positions of a key's values: the values when numeric, else 0, 1, ... with labels."""
    import numpy as np

    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float), None
    return np.arange(len(values), dtype=float), [str(v) for v in values]


def _set_key_axis(ax: Axes, key: str, values: Sequence[Any]) -> np.ndarray:
    x, labels = _grid_positions(values)
    if labels is not None or len(values) <= 12:
        ax.set_xticks(x, labels if labels is not None else [f"{v:g}" for v in x])
    ax.set_xlabel(key)
    ax.grid(True, alpha=0.3)
    return x


def _mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval of the mean (a point when fewer than two values)."""
    import numpy as np
    from scipy import stats

    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return mean, mean - half, mean + half


def _sweep_charts(experiment: Experiment) -> Builders:
    import itertools

    grid: dict[str, list[Any]] = experiment.info.get("grid") or {}
    if not grid:
        raise ValueError(f"{experiment.folder / 'experiment.json'} has no grid of swept values")
    keys = list(grid)
    points = dict(zip(experiment.variants, itertools.product(*grid.values())))  # variant p<i> is the i-th point
    firm = experiment.info.get("firm") or experiment.focal()
    outcome = experiment.info.get("outcome") or "npv"
    summary = experiment.table("summary")
    own = summary[summary["firm"] == firm].set_index("variant")
    best = (experiment.json("best.json") or {}).get("variant") or own[f"{outcome}_mean"].idxmax()
    best_point = points[best]
    sweep = _Sweep(experiment, grid, points, firm, outcome, best_point)
    if len(keys) == 1:
        return {"sweep.png": lambda: sweep.one_key(own)}
    if len(keys) == 2:
        return {"sweep_heatmap.png": lambda: sweep.heatmap(own)}
    runs = experiment.table("runs")
    return {"sweep.png": lambda: sweep.each_key(runs[runs["firm"] == firm])}


@dataclass(frozen=True)
class _Sweep:
    experiment: Experiment
    grid: dict[str, list[Any]]
    points: dict[str, tuple[Any, ...]]  # variant -> parameter values
    firm: str
    outcome: str
    best: tuple[Any, ...]

    def _panel(self, ax: Axes, key: str, bounds: Sequence[np.ndarray], name: str) -> None:
        """``name`` against the values of ``key``, with its band and the best point marked."""
        from sim.charts import zero_line

        values = self.grid[key]
        x = _set_key_axis(ax, key, values)
        m = measure(name)
        bounds = _feasible(bounds, m)
        _band(ax, x, bounds, color=firm_colors([self.firm])[self.firm], label=None, marker="o")
        i = values.index(self.best[list(self.grid).index(key)])
        ax.axvline(x[i], color="black", linestyle=":", linewidth=1.2, zorder=1)
        if name == self.outcome:
            ax.plot(x[i], bounds[0][i], marker="*", markersize=18, color="gold", markeredgecolor="black", zorder=4, label=f"best {m.title}")
        if name in MONEY_MEASURES:
            zero_line(ax)
        ax.set_title(m.title)
        ax.set_ylabel(m.label)
        _percent_axis(ax, m)

    def _best_text(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in zip(self.grid, self.best))

    def one_key(self, own: pd.DataFrame) -> Figure:
        (key,) = self.grid
        names = list(dict.fromkeys((self.outcome, "cumulative_profit", "retention_rate_annual")))
        rows = own.reindex(list(self.points))
        fig, axes = _figure(len(names), 3, (4.6, 3.8))
        for ax, name in zip(axes, names):
            self._panel(ax, key, _interval(rows, name, "mean"), name)
        n = _n_text(rows["n"], "runs per point")
        _title(fig, self.experiment, f"Sweep of {key}: outcomes of firm '{self.firm}'", f"{n}; {INTERVAL_NOTE}")
        _legend(fig, self._best_handles(axes))
        return fig

    def each_key(self, runs: pd.DataFrame) -> Figure:
        """More than two keys: the outcome against each key. Within each replication the runs
        at every value of the other keys are averaged first; the band is over replications."""
        import numpy as np

        name = self.outcome
        fig, axes = _figure(len(self.grid), 3, (4.6, 3.8))
        counts = []
        for k, (ax, key) in enumerate(zip(axes, self.grid)):
            values = self.grid[key]
            position = runs["variant"].map(lambda v, k=k, values=values: values.index(self.points[v][k]))
            averaged = runs[name].groupby([position, runs["replication"]]).mean()
            by_value = {i: group.to_numpy() for i, group in averaged.groupby(level=0)}
            groups = [by_value.get(i, np.array([])) for i in range(len(values))]
            counts += [len(g) for g in groups]
            bounds = np.array([_mean_interval(g) if len(g) else (np.nan,) * 3 for g in groups]).T
            self._panel(ax, key, bounds, name)
        n = _n_text(counts, "replications per point")
        headline = f"Sweep of {len(self.grid)} keys: {measure(name).title} of firm '{self.firm}' against each key, averaged over the other keys"
        _title(fig, self.experiment, headline, f"{n}, each the average over the other keys' values; {INTERVAL_NOTE}")
        _legend(fig, self._best_handles(axes))
        return fig

    def _best_handles(self, axes: list[Axes]) -> list[Any]:
        from matplotlib.lines import Line2D

        stars = [h for ax in axes for h in ax.get_legend_handles_labels()[0]][:1]
        line = Line2D([], [], color="black", linestyle=":", label=f"best point: {self._best_text()}")
        return [*stars, line]

    def heatmap(self, own: pd.DataFrame) -> Figure:
        """Two keys: the outcome's mean in each cell, the best cell outlined."""
        import numpy as np
        from matplotlib.patches import Rectangle

        (xkey, xvalues), (ykey, yvalues) = self.grid.items()
        m = measure(self.outcome)
        grid = np.full((len(yvalues), len(xvalues)), np.nan)
        half = np.full_like(grid, np.nan)
        for variant, (xv, yv) in self.points.items():
            if variant in own.index:
                mean, low, high = (float(own.at[variant, f"{self.outcome}_{c}"]) * m.scale for c in ("mean", "ci_low", "ci_high"))
                grid[yvalues.index(yv), xvalues.index(xv)] = mean
                half[yvalues.index(yv), xvalues.index(xv)] = (high - low) / 2
        fig, (ax,) = _figure(1, 1, (max(6.0, 1.3 * len(xvalues) + 2.5), max(4.0, 0.8 * len(yvalues) + 2.0)))
        image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis")
        fig.colorbar(image, ax=ax, label=f"mean {m.label}")
        ax.set_xticks(range(len(xvalues)), [str(v) for v in xvalues])
        ax.set_yticks(range(len(yvalues)), [str(v) for v in yvalues])
        ax.set_xlabel(xkey)
        ax.set_ylabel(ykey)
        size = max(6.0, min(10.0, 60.0 / max(len(xvalues), len(yvalues))))
        for (i, j), value in np.ndenumerate(grid):
            if value == value:
                text = f"{_short(value, m)}\n±{_short(half[i, j], m)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=_text_color(image.cmap(image.norm(value))))
        bx, by = xvalues.index(self.best[0]), yvalues.index(self.best[1])
        ax.add_patch(Rectangle((bx - 0.5, by - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=3, zorder=3))
        n = _n_text(own.reindex(list(self.points))["n"], "runs per cell")
        headline = f"Sweep: mean {m.title} of firm '{self.firm}' (± half the 95% interval)"
        _title(fig, self.experiment, headline, f"{n}; best cell outlined in red")
        return fig


def _short(value: float, m: Measure) -> str:
    """A compact number for a heatmap cell."""
    if m.unit == "%":
        return f"{value:.1f}%"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


# --------------------------------------------------------------------------- retention effect


def _retention_charts(experiment: Experiment) -> Builders:
    effect = experiment.table("retention_effect").sort_values("retention_gain_points")
    builders: Builders = {"retention_effect.png": lambda: _retention_effect(experiment, effect)}
    if all(f"source_{name}" in effect for name in UPLIFT_SOURCES):
        builders["uplift_sources.png"] = lambda: _uplift_sources(experiment, effect)
    return builders


def _retention_effect(experiment: Experiment, effect: pd.DataFrame) -> Figure:
    gains = effect["retention_gain_points"].to_numpy(dtype=float)
    fig, (uplift, achieved) = _figure(2, 2, (5.4, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    names = [n for n in UPLIFT_OUTCOMES if f"{n}_uplift" in effect]
    colors = firm_colors(names)
    for name in names:
        _band(uplift, gains, _interval(effect, f"{name}_uplift", scale=100.0), color=colors[name], label=measure(name).title, marker="o")

    low, high = (100.0 * v for v in experiment.info.get("published_band") or (0.25, 0.95))
    headline = float(experiment.info.get("headline", 5.0))
    span = max(gains.max() - gains.min(), 1.0)
    uplift.bar(
        headline, high - low, bottom=low, width=0.06 * span, color="gold", alpha=0.45, edgecolor="darkgoldenrod",
        zorder=1, label=f"published: {low:g}-{high:g}% at {headline:g} points",
    )
    uplift.axhline(0.0, color="black", linewidth=0.9, zorder=1)
    uplift.set_title("Uplift from keeping more customers")
    uplift.set_ylabel("uplift over the baseline (%)")

    change = _interval(effect, "retention_rate_run_change", scale=100.0)
    _band(achieved, gains, change, color="dimgrey", label="achieved retention change", marker="o")
    achieved.plot(gains, gains, color="black", linestyle="--", linewidth=1.2, label="achieved = target")
    achieved.set_title("Retention change achieved")
    achieved.set_ylabel("change in annual retention (points)")
    for ax in (uplift, achieved):
        ax.set_xlabel("target retention gain (points per year)")
        ax.grid(True, alpha=0.3)

    focal = experiment.info.get("focal_firm") or experiment.focal()
    n = _n_text(effect["n"] if "n" in effect else [experiment.info.get("replications")], "paired runs per point")
    _title(fig, experiment, f"Retention effect: profit uplift of firm '{focal}' from higher retention", f"{n}; {INTERVAL_NOTE}")
    handles = [h for ax in (uplift, achieved) for h in ax.get_legend_handles_labels()[0]]
    _legend(fig, handles, ncols=4)
    return fig


def _uplift_sources(experiment: Experiment, effect: pd.DataFrame) -> Figure:
    """One stacked bar per gain: the mean parts of the focal firm's change in cumulative profit
    (gains above zero stacked up, losses down), the total with its interval, and beside it the
    acquisition spending a firm would save (a counterfactual, not in the profit)."""
    import numpy as np
    from matplotlib.patches import Patch

    rows = effect[effect["retention_gain_points"] > 0]
    gains = rows["retention_gain_points"].to_numpy(dtype=float)
    x = np.arange(len(gains), dtype=float)
    fig, (ax,) = _figure(1, 1, (max(8.5, 1.3 * len(gains) + 3.5), 5.0))
    up, down = np.zeros(len(gains)), np.zeros(len(gains))
    handles = []
    for name, (label, color) in UPLIFT_SOURCES.items():
        value = np.nan_to_num(rows[f"source_{name}"].to_numpy(dtype=float))
        bottom = np.where(value >= 0, up, down)
        ax.bar(x - 0.17, value, bottom=bottom, width=0.34, color=color)
        up, down = up + np.maximum(value, 0.0), down + np.minimum(value, 0.0)
        handles.append(Patch(color=color, label=label))
    if "source_acquisition_saved" in rows:
        saved = np.nan_to_num(rows["source_acquisition_saved"].to_numpy(dtype=float))
        ax.bar(x + 0.19, saved, width=0.26, facecolor="none", edgecolor="dimgrey", hatch="//", linewidth=1.2)
        handles.append(Patch(facecolor="none", edgecolor="dimgrey", hatch="//", label="not in profit: acquisition spending saved (counterfactual)"))
        up = np.maximum(up, saved)
    mean, low, high = _interval(rows, "cumulative_profit_change")
    ax.errorbar(
        x - 0.17, mean, yerr=[np.maximum(mean - low, 0.0), np.maximum(high - mean, 0.0)], fmt="D", color="black",
        markersize=7, capsize=5, linewidth=1.6, zorder=4,
    )
    handles.append(_total_handle())
    ax.axhline(0.0, color="black", linewidth=0.9, zorder=1)
    top, bottom = max(float(np.max(up, initial=0.0)), float(np.max(high, initial=0.0))), min(float(np.min(down, initial=0.0)), float(np.min(low, initial=0.0)))
    pad = 0.06 * max(top - bottom, 1.0)
    ax.set_ylim(bottom - pad, top + pad)
    ax.set_xticks(x, [f"{g:g}" for g in gains])
    ax.set_xlim(-0.7, len(gains) - 0.3)
    ax.set_xlabel("target retention gain (points per year)")
    ax.set_ylabel("change in cumulative profit (money units)")
    ax.grid(True, axis="y", alpha=0.3)
    focal = experiment.info.get("focal_firm") or experiment.focal()
    n = _n_text(rows["n"] if "n" in rows else [experiment.info.get("replications")], "paired runs per bar")
    _title(fig, experiment, f"Where the retention effect comes from: change in cumulative profit of firm '{focal}'", f"{n}; mean parts; bars: 95% interval of the total")
    _legend(fig, handles, ncols=2, band=False)
    return fig


def _total_handle() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="D", color="black", linestyle="none", markersize=7, label="total change (95% interval)")


# --------------------------------------------------------------------------- output

KIND_CHARTS: dict[str, Callable[[Experiment], Builders]] = {
    "replications": _replication_charts,
    "compare": _compare_charts,
    "sweep": _sweep_charts,
    "retention-effect": _retention_charts,
}


def plot_experiment(folder: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw the charts of the experiment in ``folder`` (its kind from experiment.json) into
    out_dir (default folder/charts); return the written PNG paths."""
    from sim.charts import save_atomic

    experiment = load_experiment(folder)
    builders = KIND_CHARTS[experiment.kind](experiment)  # reads the tables: a missing one fails before any output
    out = Path(out_dir) if out_dir is not None else experiment.folder / "charts"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for filename, build in builders.items():
        fig = build()
        try:
            save_atomic(fig, out / filename)
            written.append(out / filename)
        finally:
            fig.clear()
    return written

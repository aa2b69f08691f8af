"""Standard charts of one simulation run.

The charts are drawn from the files a run writes into its results folder,
``RUN_DIR/metrics.csv`` (one row per step and firm) and ``RUN_DIR/summary.json``;
the model itself is never imported.  :func:`plot_run` writes four PNGs:

``satisfaction.png``
    per firm, the stacked shares of the four satisfaction levels with the mean
    satisfaction ``c = b/a`` on a twin axis;
``loyalty_types.png``
    per firm, the stacked shares of the six loyalty types;
``customers.png``
    customers per firm, and acquisitions / churn per step;
``profit.png``
    profit per step and cumulative profit.

Importing this module is cheap: matplotlib and pandas are imported inside the
functions that need them, figures are built as :class:`matplotlib.figure.Figure`
objects on an Agg canvas, and pyplot (with its global figure registry and
backend selection) is never touched.

:func:`firm_colors`, :data:`LOYALTY_TYPES` and :data:`SATISFACTION_LEVELS` are
shared with the comparison charts so that colours mean the same everywhere.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "LOYALTY_TYPES",
    "SATISFACTION_LEVELS",
    "Category",
    "RunData",
    "firm_colors",
    "load_run",
    "plot_run",
]

DPI = 110


class Category(NamedTuple):
    """A named share category (a satisfaction level or a loyalty type) and its colour."""

    name: str
    color: str

    @property
    def column(self) -> str:
        """The ``metrics.csv`` column holding this category's share of customers."""
        return f"share_{self.name}"

    @property
    def label(self) -> str:
        """Human-readable name for legends."""
        return self.name.replace("_", " ")


#: The four satisfaction levels, from worst to best (red-ish to green-ish).
SATISFACTION_LEVELS: tuple[Category, ...] = (
    Category("dissatisfied", "#d7301f"),
    Category("generally_satisfied", "#fdae61"),
    Category("fairly_satisfied", "#a6d96a"),
    Category("highly_satisfied", "#1a9641"),
)

#: The six loyalty types, each with a fixed colour.
LOYALTY_TYPES: tuple[Category, ...] = (
    Category("monopoly", "#6a3d9a"),
    Category("inertia", "#969696"),
    Category("price", "#ff7f00"),
    Category("incentive", "#e7298a"),
    Category("trust", "#1f78b4"),
    Category("none", "#d9d9d9"),
)

# Firm palette: the first firm (the focal one, by convention) gets the first colour.
_FIRM_PALETTE: tuple[str, ...] = (
    "#1f77b4",  # blue
    "#ff7f0e",  # orange
    "#2ca02c",  # green
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#17becf",  # cyan
    "#bcbd22",  # olive
    "#7f7f7f",  # grey
)

_MEETS_EXPECTATION = 1.0  # c = b/a at which performance exactly meets expectation


def firm_colors(firms: Sequence[str]) -> dict[str, str]:
    """Map firm names to colours by position (pass the focal firm first).

    The same ordered list always gives the same colours, so charts of one run,
    and comparison charts across runs of one scenario, agree.  More firms than
    palette colours cycle through the palette.
    """
    return {firm: _FIRM_PALETTE[i % len(_FIRM_PALETTE)] for i, firm in enumerate(firms)}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class RunData:
    """What the charts need from one run's results folder."""

    metrics: pd.DataFrame
    firms: list[str]  # focal firm(s) first
    focal: frozenset[str]
    title: str
    step_days: float
    seed: int | None = None

    @property
    def colors(self) -> dict[str, str]:
        return firm_colors(self.firms)

    @property
    def xlabel(self) -> str:
        return f"step ({self.step_days:g} days)"

    @property
    def n_steps(self) -> int:
        return int(self.metrics["step"].nunique())

    def firm_frame(self, firm: str) -> pd.DataFrame:
        """The rows of one firm, ordered by step."""
        frame = self.metrics[self.metrics["firm"] == firm]
        return frame.sort_values("step")

    def firm_label(self, firm: str) -> str:
        return f"{firm} (focal)" if firm in self.focal else firm


def load_run(run_dir: str | Path) -> RunData:
    """Read ``metrics.csv`` and ``summary.json`` of a results folder."""
    import pandas as pd

    run_dir = Path(run_dir)
    metrics = pd.read_csv(run_dir / "metrics.csv", dtype={"firm": str})
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = (
        json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    )

    scenario = summary.get("scenario") or {}
    run = summary.get("run") or {}
    roles = {f["name"]: f.get("role", "competitor") for f in summary.get("firms") or []}
    focal = frozenset(name for name, role in roles.items() if role == "focal")

    # Summary order (focal first), then any firm only present in the metrics.
    present = list(dict.fromkeys(metrics["firm"]))
    ordered = [f for f in roles if f in present] + [f for f in present if f not in roles]
    ordered.sort(key=lambda f: f not in focal)  # stable: keeps order otherwise

    return RunData(
        metrics=metrics,
        firms=ordered,
        focal=focal,
        title=str(scenario.get("title") or scenario.get("name") or run_dir.name),
        step_days=float(run.get("step_days") or 1.0),
        seed=run.get("seed"),
    )


# --------------------------------------------------------------------------- figure helpers


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free figure on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _suptitle(fig: Figure, run: RunData, chart_title: str) -> None:
    subtitle = run.title if run.seed is None else f"{run.title} (seed {run.seed})"
    fig.suptitle(f"{chart_title}\n{subtitle}", fontsize=13)


def _format_step_axis(ax: Axes, run: RunData, *, label: bool = True) -> None:
    """Integer step ticks, a grid, and (if ``label``) the "step (N days)" label."""
    from matplotlib.ticker import MaxNLocator

    steps = run.metrics["step"].unique()
    if len(steps) == 1:
        ax.set_xlim(steps[0] - 1, steps[0] + 1)
        ax.set_xticks([steps[0]])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if label:
        ax.set_xlabel(run.xlabel)
    ax.grid(True, alpha=0.3)


def _line_style(run: RunData, firm: str) -> dict[str, Any]:
    """Line keywords for a firm: its colour, the focal firm drawn emphasised."""
    style: dict[str, Any] = {"color": run.colors[firm]}
    if run.n_steps == 1:
        style["marker"] = "o"  # a single point would otherwise be invisible
    if firm in run.focal:
        style.update(linewidth=2.8, alpha=1.0, zorder=3)
    else:
        style.update(linewidth=1.5, alpha=0.85, zorder=2)
    return style


def _plot_firm_lines(
    ax: Axes, run: RunData, column: str, *, linestyle: str = "-", label: bool = True
) -> None:
    """One line per firm of ``column`` over the steps."""
    for firm in run.firms:
        frame = run.firm_frame(firm)
        ax.plot(
            frame["step"],
            frame[column],
            linestyle=linestyle,
            label=run.firm_label(firm) if label else None,
            **_line_style(run, firm),
        )


def zero_line(ax: Axes) -> None:
    ax.axhline(0.0, color="black", linewidth=0.9, zorder=1)


def _stacked_shares(ax: Axes, frame: pd.DataFrame, categories: Sequence[Category]) -> None:
    """Stack the shares of ``categories`` (area, or bars when there is a single step)."""
    x = frame["step"].to_numpy()
    ys = [frame[c.column].fillna(0.0).to_numpy() for c in categories]
    colors = [c.color for c in categories]
    labels = [c.label for c in categories]
    if len(x) > 1:
        ax.stackplot(x, ys, colors=colors, labels=labels, alpha=0.9, linewidth=0)
        ax.set_xlim(x.min(), x.max())
    else:
        bottom = 0.0
        for y, color, label in zip(ys, colors, labels):
            ax.bar(x, y, bottom=bottom, width=0.6, color=color, label=label, alpha=0.9)
            bottom = bottom + y
    ax.set_ylim(0.0, 1.0)


_PANEL_COLUMNS = 3  # at most this many firm panels per row


def _panel_grid(run: RunData, chart_title: str) -> tuple[Figure, list[Axes]]:
    """A figure with one panel per firm (at most three per row), focal first.

    The step axis is labelled under the lowest panel of each column and the
    y label is set on the first column only (the caller gives its text).
    """
    n = len(run.firms)
    ncols = min(n, _PANEL_COLUMNS)
    nrows = math.ceil(n / ncols)
    fig = new_figure((max(7.5, 4.8 * ncols + 0.8), 3.4 * nrows + 1.8))
    grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax in grid[n:]:
        ax.set_visible(False)
    axes = list(grid[:n])
    for i, ax in enumerate(axes):
        lowest_in_column = i + ncols >= n
        _format_step_axis(ax, run, label=lowest_in_column)
        if lowest_in_column:  # also when the panel below is an unused slot
            ax.xaxis.set_tick_params(labelbottom=True)
    _suptitle(fig, run, chart_title)
    return fig, axes


def _mark_panel(ax: Axes, run: RunData, firm: str) -> None:
    """Title a firm's panel in its colour; the focal firm's panel is emphasised."""
    focal = firm in run.focal
    ax.set_title(
        run.firm_label(firm), color=run.colors[firm], fontweight="bold" if focal else "normal"
    )
    if focal:
        for spine in ax.spines.values():
            spine.set_edgecolor(run.colors[firm])
            spine.set_linewidth(2.0)


def _share_panels(
    run: RunData,
    chart_title: str,
    categories: Sequence[Category],
    decorate: Callable[[Axes, pd.DataFrame], list[Any]] | None = None,
) -> Figure:
    """Per-firm panels of stacked category shares with one shared legend.

    ``decorate(ax, frame)`` may draw more on each panel and return extra legend
    handles (taken from the first panel).
    """
    from matplotlib.ticker import PercentFormatter

    fig, axes = _panel_grid(run, chart_title)
    extra_handles: list[Any] = []
    for i, (ax, firm) in enumerate(zip(axes, run.firms)):
        frame = run.firm_frame(firm)
        _stacked_shares(ax, frame, categories)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        if i % _PANEL_COLUMNS == 0:
            ax.set_ylabel("share of customers (%)")
        _mark_panel(ax, run, firm)
        handles = decorate(ax, frame) if decorate else []
        if i == 0:
            extra_handles = handles

    category_handles, _ = axes[0].get_legend_handles_labels()
    figure_legend(fig, category_handles + extra_handles, ncols=2 * min(len(axes), _PANEL_COLUMNS))
    return fig


def figure_legend(fig: Figure, handles: list[Any], ncols: int) -> None:
    """One legend for the whole figure, below the panels."""
    fig.legend(
        handles, [h.get_label() for h in handles],
        loc="outside lower center", ncols=max(1, min(len(handles), ncols)),
    )


# --------------------------------------------------------------------------- charts


def _satisfaction_line(ax: Axes, frame: pd.DataFrame, top: float) -> list[Any]:
    """Mean satisfaction c = b/a on a twin axis (0 to ``top``), with the c = 1 reference."""
    twin = ax.twinx()
    marker = "o" if len(frame) == 1 else None
    (line,) = twin.plot(
        frame["step"], frame["satisfaction_mean"], color="black", linewidth=2.0,
        marker=marker, label="mean satisfaction c = b/a",
    )
    ref = twin.axhline(
        _MEETS_EXPECTATION, color="black", linestyle=":", linewidth=1.2,
        label="c = 1: meets expectation",
    )
    twin.set_ylim(0.0, top)
    twin.set_ylabel("mean satisfaction c = b/a (ratio)")
    return [line, ref]


def _satisfaction_chart(run: RunData) -> Figure:
    # One c-axis range for all panels, so that the firms compare at a glance.
    highest = float(run.metrics["satisfaction_mean"].max())  # NaN if never defined
    top = 1.5 if math.isnan(highest) else max(1.5, 1.1 * highest)
    return _share_panels(
        run,
        "Customer satisfaction levels",
        SATISFACTION_LEVELS,
        decorate=partial(_satisfaction_line, top=top),
    )


def loyalty_chart(run: RunData) -> Figure:
    return _share_panels(run, "Loyalty types of customers", LOYALTY_TYPES)


def _two_panel_figure(run: RunData, chart_title: str) -> tuple[Figure, Axes, Axes]:
    """Two stacked panels over the steps; the step axis labelled under the lower one."""
    fig = new_figure((10.0, 8.0))
    top, bottom = fig.subplots(2, 1, sharex=True)
    _format_step_axis(top, run, label=False)
    _format_step_axis(bottom, run)
    _suptitle(fig, run, chart_title)
    return fig, top, bottom


def _customers_chart(run: RunData) -> Figure:
    from matplotlib.lines import Line2D

    fig, top, bottom = _two_panel_figure(run, "Customers, acquisitions and churn")

    _plot_firm_lines(top, run, "customers")
    top.set_title("Customers per firm")
    top.set_ylabel("customers (count)")
    top.set_ylim(bottom=0)

    _plot_firm_lines(bottom, run, "acquisitions", linestyle="-", label=False)
    _plot_firm_lines(bottom, run, "churned", linestyle="--", label=False)
    bottom.set_title("Acquisitions (solid) and churn (dashed) per step")
    bottom.set_ylabel("customers per step (count)")
    bottom.set_ylim(bottom=0)

    style_handles = [
        Line2D([], [], color="black", linestyle="-", label="acquisitions"),
        Line2D([], [], color="black", linestyle="--", label="churned"),
    ]
    firm_handles, _ = top.get_legend_handles_labels()
    figure_legend(fig, firm_handles + style_handles, ncols=8)
    return fig


def _profit_chart(run: RunData) -> Figure:
    fig, top, bottom = _two_panel_figure(run, "Profit")
    panels = (
        (top, "profit", "Profit per step", "profit per step (money units)"),
        (bottom, "cumulative_profit", "Cumulative profit", "cumulative profit (money units)"),
    )
    for ax, column, title, ylabel in panels:
        _plot_firm_lines(ax, run, column)
        zero_line(ax)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
    firm_handles, _ = top.get_legend_handles_labels()
    figure_legend(fig, firm_handles, ncols=6)
    return fig


#: Output file name -> chart builder, in drawing order.
CHARTS: dict[str, Callable[[RunData], Figure]] = {
    "satisfaction.png": _satisfaction_chart,
    "loyalty_types.png": loyalty_chart,
    "customers.png": _customers_chart,
    "profit.png": _profit_chart,
}


# --------------------------------------------------------------------------- output


def save_atomic(fig: Figure, path: Path) -> None:
    """Write ``fig`` as PNG to a temporary file beside ``path``, then rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=DPI)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw the standard charts of one run from RUN_DIR/metrics.csv and summary.json into out_dir (default RUN_DIR/charts); return the written PNG paths."""
    run = load_run(run_dir)
    if not run.firms:
        raise ValueError(f"{Path(run_dir) / 'metrics.csv'} has no rows to plot")
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "charts"
    out.mkdir(parents=True, exist_ok=True)

    written: list[Path] = []
    for filename, build in CHARTS.items():
        fig = build(run)
        try:
            path = out / filename
            save_atomic(fig, path)
            written.append(path)
        finally:
            fig.clear()  # pyplot-free figures are not registered anywhere; free the artists
    return written

"""The classroom dashboard: Mesa's own SolaraViz over a live LoyaltyModel.

Pick a scenario or a lesson, move the focal firm's strategy levers (price, points rate,
service quality, community care, promise, switching cost) with sliders, then Reset to
build the market with them, and Step or play: the charts (satisfaction and its levels,
loyalty-type mix, customers and retention, profit) and a sample of the social network
coloured by loyalty type follow the model as it runs.

Start it with ``loyalty-sim dashboard [SCENARIO] [--lesson NAME] [--host H] [--port P]``
(needs the ``dashboard`` extra). That command runs the Solara server on this module's
``page``; the server reads its starting scenario from the environment variables below,
and serves the browser assets from the local copy installed by ``solara-assets`` (no CDN).

The levers set the focal firm's values; they start at the values of the scenario the
dashboard was started with and apply to whichever scenario is picked. A lever acts when
the model is built, that is at Reset, exactly as a ``--set`` of the same key would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.model import LoyaltyModel

ENV_SCENARIO = "LOYALTY_SIM_DASHBOARD_SCENARIO"
ENV_POPULATION = "LOYALTY_SIM_DASHBOARD_POPULATION"
NETWORK_SAMPLE = 90  # people shown in the network view
#: Settings of the Solara server: browser assets from the local copy that the solara-assets
#: package installs (the server's assets proxy reads it before any CDN), and no telemetry.
SERVER_ENV = {
    "SOLARA_ASSETS_PROXY": "True",
    "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
    "SOLARA_THEME_SHOW_BANNER": "False",
}


@dataclass(frozen=True)
class Lever:
    """A strategy lever of the focal firm, shown as a slider."""

    name: str
    label: str
    key: str  # dotted scenario key under firms.<focal>.
    low: float
    high: float
    step: float
    switch: str | None = None  # key switched on when the lever is above 0 (off at 0)

    def read(self, firm: dict[str, Any]) -> float:
        node: Any = firm
        for part in self.key.split("."):
            node = node[part]
        value = float(node)
        if self.switch is not None:
            enabled: Any = firm
            for part in self.switch.split("."):
                enabled = enabled[part]
            value = value if enabled else 0.0
        return value


LEVERS: tuple[Lever, ...] = (
    Lever("price", "Price", "price.list", 4.0, 20.0, 0.1),
    Lever("points_rate", "Points rate", "rewards.points_rate", 0.0, 0.2, 0.005, "rewards.enabled"),
    Lever("service_quality", "Service quality", "service.quality", 0.5, 1.5, 0.05),
    Lever("community", "Community care", "community.care", 0.0, 1.0, 0.05, "community.enabled"),
    Lever("promise", "Promise", "product.promise", 0.5, 2.0, 0.05),
    Lever("switching_cost", "Switching cost", "lock_in.ecosystem_per_year", 0.0, 100.0, 1.0),
)


def scenario_choices() -> dict[str, Path]:
    """The scenarios a trainer can pick: the shipped scenarios, then the lessons' scenarios."""
    root = Path(__file__).resolve().parent.parent / "scenarios"
    if not root.is_dir():
        root = Path("scenarios")
    choices = {p.stem: p for p in sorted(root.glob("*.yaml"))}
    try:
        from sim.lessons import load_lessons

        for name, lesson in load_lessons(root / "lessons").items():
            choices[f"lesson: {name}"] = lesson.scenario
    except Exception:  # noqa: BLE001 - a broken lessons index must not stop the dashboard
        pass
    return choices


def lever_overrides(scenario, values: dict[str, float]) -> dict[str, Any]:
    """The ``--set`` style overrides that give the focal firm of ``scenario`` the lever ``values``."""
    focal = scenario.focal_firm
    overrides: dict[str, Any] = {}
    for lever in LEVERS:
        if lever.name not in values:
            continue
        value = float(values[lever.name])
        if lever.switch is not None:
            overrides[f"firms.{focal}.{lever.switch}"] = value > 0
            if value <= 0:
                continue
        overrides[f"firms.{focal}.{lever.key}"] = value
    return overrides


def lever_defaults(scenario) -> dict[str, float]:
    """The lever values of the focal firm of ``scenario``."""
    firm = scenario.model_dump(mode="python")["firms"][scenario.focal_firm]
    return {lever.name: lever.read(firm) for lever in LEVERS}


def build_scenario(path: str | Path, levers: dict[str, float], population: int | None = None, seed: int | None = None):
    """The scenario in ``path`` with the lever values (and population, seed) applied."""
    from sim.api import load_scenario

    base = load_scenario(path)
    overrides = lever_overrides(base, levers)
    if population:
        overrides["market.population"] = int(population)
    if seed is not None:
        overrides["market.seed"] = int(seed)
    return load_scenario(path, overrides)


class ClassroomModel(LoyaltyModel):
    """A LoyaltyModel built from a scenario file and the dashboard's lever values.

    Every argument has a default, as Mesa's dashboard re-creates the model from keyword
    arguments at Reset."""

    def __init__(
        self,
        scenario_name: str = "starter",
        price: float = 10.0,
        points_rate: float = 0.05,
        service_quality: float = 1.0,
        community: float = 0.6,
        promise: float = 1.0,
        switching_cost: float = 0.0,
        population: int = 5000,
        seed: int = 42,
    ):
        choices = scenario_choices()
        path = choices.get(scenario_name, Path(scenario_name))
        levers = {
            "price": price, "points_rate": points_rate, "service_quality": service_quality,
            "community": community, "promise": promise, "switching_cost": switching_cost,
        }
        super().__init__(build_scenario(path, levers, population, seed), seed=seed)
        self.scenario_name = scenario_name
        self.dashboard_sample = _network_sample(self.network.ties, NETWORK_SAMPLE)

    def step(self) -> None:
        """One step; past the scenario's last step nothing happens (Mesa's Step button steps
        by the render interval whether or not the model is still running)."""
        if self.steps > self.n_steps:  # Mesa counted this step before calling us
            self.steps = self.n_steps
            self.running = False
            return
        super().step()


def _network_sample(ties: np.ndarray, size: int) -> tuple[np.ndarray, list[tuple[int, int]], dict[int, tuple[float, float]]]:
    """A connected sample of the social network: breadth-first from person 0 until ``size``
    people; the ties among them, and a fixed layout (spring layout, seed 0)."""
    import networkx as nx

    if ties.size == 0:
        people = np.arange(min(size, ties.shape[0]))
    else:
        seen: list[int] = [0]
        known = {0}
        head = 0
        while head < len(seen) and len(seen) < size:
            for other in ties[seen[head]]:
                if int(other) not in known and len(seen) < size:
                    known.add(int(other))
                    seen.append(int(other))
            head += 1
        people = np.array(seen)
    members = set(people.tolist())
    edges = sorted({(min(int(a), int(b)), max(int(a), int(b))) for a in people for b in (ties[a] if ties.size else []) if int(b) in members and int(a) != int(b)})
    graph = nx.Graph()
    graph.add_nodes_from(people.tolist())
    graph.add_edges_from(edges)
    layout = nx.spring_layout(graph, seed=0)
    return people, edges, {int(k): (float(v[0]), float(v[1])) for k, v in layout.items()}


# --------------------------------------------------------------------------- charts (matplotlib)


def _frame(model: LoyaltyModel):
    frame = model.metrics_frame()
    return frame[frame["active"] > 0] if "active" in frame.columns else frame


def _firm_order(model: LoyaltyModel) -> list[str]:
    focal = model.spec.focal_firm
    return [focal, *(f for f in model.firm_names if f != focal)]


def satisfaction_figure(model: LoyaltyModel):
    """Mean satisfaction of every firm's customers, and the focal firm's satisfaction levels."""
    from sim.charts import SATISFACTION_LEVELS, firm_colors, new_figure

    frame = _frame(model)
    firms = _firm_order(model)
    colors = firm_colors(firms)
    fig = new_figure((7.5, 3.0))
    left, right = fig.subplots(1, 2)
    for firm in firms:
        own = frame[frame["firm"] == firm]
        left.plot(own["step"], own["satisfaction_avg_mean"], color=colors[firm], lw=2 if firm == firms[0] else 1.2, label=firm)
    left.axhline(1.0, color="0.6", lw=0.8, ls="--")
    left.set_title("satisfaction c = b / a (mean)", fontsize=9)
    left.legend(fontsize=7, frameon=False)
    own = frame[frame["firm"] == firms[0]]
    right.stackplot(own["step"], *(own[c.column] for c in SATISFACTION_LEVELS), colors=[c.color for c in SATISFACTION_LEVELS], labels=[c.label for c in SATISFACTION_LEVELS])
    right.set_ylim(0, 1)
    right.set_title(f"satisfaction levels: {firms[0]}", fontsize=9)
    right.legend(fontsize=6, frameon=False, loc="lower left")
    for ax in (left, right):
        ax.set_xlabel(f"step ({model.step_days:g} days)", fontsize=8)
        ax.tick_params(labelsize=7)
    return fig


def loyalty_figure(model: LoyaltyModel):
    """The loyalty-type mix of the focal firm's customers over time."""
    from sim.charts import LOYALTY_TYPES, new_figure

    frame = _frame(model)
    focal = model.spec.focal_firm
    own = frame[frame["firm"] == focal]
    fig = new_figure((7.5, 3.0))
    ax = fig.subplots()
    ax.stackplot(own["step"], *(own[c.column] for c in LOYALTY_TYPES), colors=[c.color for c in LOYALTY_TYPES], labels=[c.label for c in LOYALTY_TYPES])
    ax.set_ylim(0, 1)
    ax.set_title(f"loyalty types of {focal}'s customers", fontsize=9)
    ax.set_xlabel(f"step ({model.step_days:g} days)", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.tick_params(labelsize=7)
    return fig


def _firm_lines(model: LoyaltyModel, panels):
    """One figure of two panels, a line per firm in each (the focal firm drawn thicker).
    ``panels``: (column, title, first step, tick format or None) of the left and right panel."""
    from sim.charts import firm_colors, new_figure

    frame = _frame(model)
    firms = _firm_order(model)
    colors = firm_colors(firms)
    fig = new_figure((7.5, 3.0))
    axes = fig.subplots(1, 2)
    for ax, (column, title, first, tick) in zip(axes, panels):
        for firm in firms:
            own = frame[(frame["firm"] == firm) & (frame["step"] >= first)]
            ax.plot(own["step"], own[column], color=colors[firm], lw=2 if firm == firms[0] else 1.2, label=firm)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"step ({model.step_days:g} days)", fontsize=8)
        ax.tick_params(labelsize=7)
        if tick is not None:
            ax.yaxis.set_major_formatter(tick)
    axes[0].legend(fontsize=7, frameon=False)
    return fig, axes


def retention_figure(model: LoyaltyModel):
    """Customers and annual retention of every firm."""
    fig, _ = _firm_lines(model, (
        ("customers", "customers", 0, None),
        ("retention_rate_annual", "retention (annualised)", 1, lambda v, _: f"{v:.0%}"),
    ))
    return fig


def profit_figure(model: LoyaltyModel):
    """Profit per step and cumulative profit of every firm."""
    money = lambda v, _: f"{v:,.0f}"  # noqa: E731
    fig, (left, _) = _firm_lines(model, (
        ("profit", "profit per step", 1, money),
        ("cumulative_profit", "cumulative profit", 1, money),
    ))
    left.axhline(0, color="0.6", lw=0.8)
    return fig


def network_figure(model: LoyaltyModel):
    """A sample of the social network, each person coloured by loyalty type (grey ring: a prospect)."""
    from sim.charts import LOYALTY_TYPES, new_figure
    from sim.population import LOYALTY_TYPES as TYPE_CODES

    sample = getattr(model, "dashboard_sample", None) or _network_sample(model.network.ties, NETWORK_SAMPLE)
    people, edges, layout = sample
    pop = model.population
    colors = {c.name: c.color for c in LOYALTY_TYPES}
    codes = pop.loyalty_type[people]
    firm = pop.firm[people]
    fig = new_figure((4.2, 4.0))
    ax = fig.subplots()
    for a, b in edges:
        ax.plot([layout[a][0], layout[b][0]], [layout[a][1], layout[b][1]], color="0.8", lw=0.5, zorder=1)
    xy = np.array([layout[int(p)] for p in people])
    face = [colors[TYPE_CODES[int(c)]] if f >= 0 else "white" for c, f in zip(codes, firm)]
    edge = ["0.3" if f >= 0 else "0.6" for f in firm]
    sizes = [60 if f == model.focal_index else 30 for f in firm]
    ax.scatter(xy[:, 0], xy[:, 1], c=face, edgecolors=edge, s=sizes, linewidths=0.6, zorder=2)
    ax.set_title(f"{len(people)} people and their ties, step {model.steps}\n(large: {model.spec.focal_firm}'s customers; white: prospects)", fontsize=8)
    ax.set_axis_off()
    handles = [ax.scatter([], [], c=c.color, s=25, label=c.label) for c in LOYALTY_TYPES if c.name != "none"]
    ax.legend(handles=handles, fontsize=6, frameon=False, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=3)
    return fig


def figure_png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    fig.clear()
    return buffer.getvalue()


# --------------------------------------------------------------------------- the Solara page


def _start_settings() -> tuple[str, dict[str, float], int]:
    """Scenario, lever values and population the dashboard starts with (from the environment)."""
    from sim.api import load_scenario

    choices = scenario_choices()
    wanted = os.environ.get(ENV_SCENARIO, "starter")
    path = choices.get(wanted, Path(wanted))
    name = wanted if wanted in choices else next((k for k, v in choices.items() if v.resolve() == path.resolve()), str(path))
    choices.setdefault(name, path)
    scenario = load_scenario(path)
    population = int(os.environ.get(ENV_POPULATION, min(scenario.market.population, 5000)))
    return name, lever_defaults(scenario), population


def make_page():
    """The dashboard page: Mesa's SolaraViz with the levers, the live charts and the network view."""
    import solara
    from mesa.visualization import SolaraViz
    from mesa.visualization.utils import update_counter

    def chart(build, name: str):
        @solara.component
        def Chart(model):
            update_counter.get()
            with solara.Card(style={"padding": "4px"}, classes=[f"loyalty-chart-{name}"]):
                solara.FigureMatplotlib(build(model), format="png", bbox_inches="tight", dependencies=[model.steps, id(model)])

        Chart.__name__ = f"{name.title()}Chart"
        return Chart

    @solara.component
    def Levers(model):
        update_counter.get()
        firm = model.config.firms[model.spec.focal_firm]
        text = (
            f"{model.spec.title or model.spec.name}: step {model.steps} of {model.n_steps}, {model.population.size:,} people. "
            f"Focal firm {model.spec.focal_firm}: price {firm.price.list:g}, points rate "
            f"{firm.rewards.points_rate if firm.rewards.enabled else 0:g}, service quality {firm.service.quality:g}, "
            f"member care {firm.community.care if firm.community.enabled else 0:g}, promise {firm.product.promise:g}, "
            f"ecosystem {firm.lock_in.ecosystem_per_year:g} a year."
        )
        # plain text, not Markdown: Solara's Markdown loads KaTeX, which solara-assets does not ship
        with solara.Card(style={"padding": "8px"}):
            solara.Text(text, style={"font-size": "0.9em"})

    name, defaults, population = _start_settings()
    choices = list(scenario_choices())
    if name not in choices:
        choices.insert(0, name)
    params: dict[str, Any] = {
        "scenario_name": {"type": "Select", "value": name, "values": choices, "label": "Scenario or lesson"},
    }
    for lever in LEVERS:
        params[lever.name] = {
            "type": "SliderFloat", "value": round(float(np.clip(defaults[lever.name], lever.low, lever.high)), 6),
            "min": lever.low, "max": lever.high, "step": lever.step, "label": lever.label,
        }
    params["population"] = {"type": "SliderInt", "value": population, "min": 500, "max": 50000, "step": 500, "label": "People"}
    params["seed"] = 42
    model = ClassroomModel(name, **{lever.name: params[lever.name]["value"] for lever in LEVERS}, population=population, seed=42)
    components = [
        (Levers, 0),
        (chart(satisfaction_figure, "satisfaction"), 0),
        (chart(loyalty_figure, "loyalty"), 0),
        (chart(retention_figure, "retention"), 0),
        (chart(profit_figure, "profit"), 0),
        (chart(network_figure, "network"), 0),
    ]
    return SolaraViz(model, components=components, model_params=params, name="loyalty-sim classroom", play_interval=150)


def __getattr__(name: str):
    # ``page`` is built when the Solara server asks for it, not when this module is imported.
    if name == "page":
        return make_page()
    raise AttributeError(name)

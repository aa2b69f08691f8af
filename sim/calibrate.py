"""Calibration: fit chosen scenario parameters to the KPIs a firm observes.

A KPI file (YAML, e.g. ``scenarios/calibration/observed.kpi``) names the scenario, the firm whose KPIs were observed, the KPIs with
their observed values (and, optionally, their standard errors), and the parameters to fit
with their ranges::

    scenario: market.yaml          # relative to this file
    firm: focal                    # default: the scenario's focal firm
    window_steps: 12               # KPIs are means over the last window of steps (default: a year)
    replications: 4                # runs per evaluation, common seeds everywhere
    kpis:
      retention_rate_annual: 0.80
      nps: {value: 15.0, sd: 2.0}
      average_tenure_years: 2.1
    parameters:
      segments[0].category_exit_per_year: {min: 0.01, max: 0.40}
      behaviour.nps.offset: {min: -1.0, max: 3.0}

KPIs are metrics columns (``sim.measures.COLUMNS``: ``retention_rate_annual``,
``repeat_purchase_rate``, ``nps``, ``csat``, ``market_share`` ...) averaged over the window
for the firm, and ``average_tenure_years`` (mean tenure of the firm's customers at the end).

The search is simulation-based (sample average approximation): every evaluation runs the
scenario ``replications`` times with the same seeds (common random numbers), so the
objective is a smooth-enough deterministic function of the parameters. It minimises the
weighted residuals ``(simulated mean - observed) / sigma`` with
``sigma^2 = sd_observed^2 + sd_simulated^2 / replications``, where ``sd_simulated`` is the
spread of the simulated KPI over replications (the median over the screened points, held
fixed during the search: a noise that moved with the parameters would favour the noisiest
points) and ``sd_observed`` defaults to it (the observed market counts as one more run of
the model):
first a scrambled Sobol screen of the parameter box, then bounded least squares
(``scipy.optimize.least_squares``) from the best screened point, with a central-difference
Jacobian. Uncertainty is the Gauss-Newton covariance ``(J^T J)^-1`` at the optimum; the
remaining misfit is reported per KPI.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sim.loader import Problem, ScenarioError, line_of, load_yaml
from sim.measures import COLUMNS
from sim.scenario import Scenario, set_key_path, split_key_path

EXTRA_KPIS = ("average_tenure_years",)
KPIS = (*COLUMNS, *EXTRA_KPIS)
KEYS = ("scenario", "firm", "window_steps", "replications", "seed", "kpis", "parameters")


@dataclass
class Parameter:
    path: str
    low: float
    high: float


@dataclass
class Kpi:
    name: str
    value: float
    sd: float | None = None


@dataclass
class CalibrationSpec:
    """A validated KPI file."""

    source: str
    scenario_path: Path
    scenario: Scenario
    raw_scenario: dict[str, Any]  # the scenario file as written (the calibrated file keeps its shape)
    firm: str
    window_steps: int
    replications: int
    seed: int
    kpis: list[Kpi]
    parameters: list[Parameter]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_spec(path: str | Path) -> CalibrationSpec:
    """Read and check a KPI file; every problem is reported at once as a ScenarioError
    naming the file, the key, what was expected, and the line."""
    from sim.api import load_scenario

    source = str(path)
    data, lines = load_yaml(path)
    problems: list[Problem] = []

    def problem(where: tuple, message: str, hint: str | None = None) -> None:
        problems.append(Problem(source, ".".join(str(p) for p in where), message, line_of(lines, where), hint))

    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            problem((key,), f"unknown key; expected one of {', '.join(KEYS)}", f"did you mean '{close[0]}'?" if close else None)
    scenario = raw = None
    scenario_path = Path()
    if not isinstance(data.get("scenario"), str):
        problem(("scenario",), "expected the path of the scenario file (relative to this file), e.g. scenario: market.yaml")
    else:
        scenario_path = (Path(path).parent / data["scenario"]).resolve() if not Path(data["scenario"]).is_absolute() else Path(data["scenario"])
        if not scenario_path.is_file():
            problem(("scenario",), f"scenario file '{data['scenario']}' not found (looked for {scenario_path})")
        else:
            scenario = load_scenario(scenario_path)  # its own problems are reported with its own file name
            raw, _ = load_yaml(scenario_path)
    firm = data.get("firm", scenario.focal_firm if scenario else "")
    if scenario is not None and firm not in scenario.firms:
        problem(("firm",), f"unknown firm '{firm}'; the scenario's firms are {', '.join(scenario.firms)}")
    window = data.get("window_steps", None)
    if window is not None and not (isinstance(window, int) and not isinstance(window, bool) and window >= 1):
        problem(("window_steps",), f"expected a whole number of steps >= 1, got {window!r}")
    replications = data.get("replications", 4)
    if not (isinstance(replications, int) and not isinstance(replications, bool) and 2 <= replications <= 1000):
        problem(("replications",), f"expected a whole number from 2 to 1000, got {replications!r}")
    seed = data.get("seed", scenario.market.seed if scenario else 1)
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        problem(("seed",), f"expected a whole number >= 0, got {seed!r}")

    kpis: list[Kpi] = []
    raw_kpis = data.get("kpis")
    if not isinstance(raw_kpis, dict) or not raw_kpis:
        problem(("kpis",), "expected a mapping of observed KPIs, e.g. kpis: {retention_rate_annual: 0.8, nps: 15}")
    else:
        for name, value in raw_kpis.items():
            where = ("kpis", name)
            if name not in KPIS:
                close = difflib.get_close_matches(str(name), KPIS, n=1)
                problem(where, "unknown KPI; expected a metrics column (see docs/model.md 7.16) or average_tenure_years", f"did you mean '{close[0]}'?" if close else None)
                continue
            sd = None
            if isinstance(value, dict):
                extra = set(value) - {"value", "sd"}
                if extra:
                    problem(where, f"unknown key(s) {', '.join(map(str, extra))}; expected value and optionally sd")
                sd = value.get("sd")
                value = value.get("value")
                if sd is not None and not (_number(sd) and sd > 0):
                    problem((*where, "sd"), f"expected a positive number (the standard error of the observed value), got {sd!r}")
                    continue
            if not _number(value):
                problem(where, f"expected a number (the observed value) or {{value: ..., sd: ...}}, got {value!r}")
                continue
            kpis.append(Kpi(str(name), float(value), None if sd is None else float(sd)))

    parameters: list[Parameter] = []
    raw_params = data.get("parameters")
    if not isinstance(raw_params, dict) or not raw_params:
        problem(("parameters",), "expected a mapping of scenario keys to fit with their ranges, e.g. parameters: {behaviour.nps.offset: {min: 0, max: 3}}")
    else:
        resolved = scenario.model_dump(mode="python") if scenario else None
        for key, bounds in raw_params.items():
            where = ("parameters", key)
            if resolved is not None:
                try:
                    probe = copy.deepcopy(resolved)
                    split_key_path(str(key))
                    set_key_path(probe, str(key), 0.0)
                    current = _get(resolved, str(key))
                    if not _number(current) or isinstance(current, int):
                        kind = "a whole number" if _number(current) else repr(current)
                        problem(where, f"the scenario key holds {kind}; only keys with real-number values can be fitted")
                        continue
                except KeyError as exc:
                    problem(where, f"not a scenario key: {str(exc.args[0]).split(': ', 1)[-1]}")
                    continue
            if not (isinstance(bounds, dict) and set(bounds) == {"min", "max"} and _number(bounds["min"]) and _number(bounds["max"])):
                problem(where, f"expected the range to search as {{min: number, max: number}}, got {bounds!r}")
                continue
            if not bounds["min"] < bounds["max"]:
                problem(where, f"min ({bounds['min']}) must be below max ({bounds['max']})")
                continue
            parameters.append(Parameter(str(key), float(bounds["min"]), float(bounds["max"])))
        if scenario is not None:
            for p in parameters:  # both ends of each range must give a valid scenario
                for end in (p.low, p.high):
                    try:
                        with_values(scenario, {p.path: end})
                    except ScenarioError as exc:
                        problem(("parameters", p.path), f"the value {end:g} is not allowed: {exc.problems[0].message}")
                        break
    if problems:
        raise ScenarioError(problems)
    assert scenario is not None and raw is not None
    steps_per_year = 365.0 / scenario.market.step_days
    return CalibrationSpec(
        source, scenario_path, scenario, raw, firm, int(window or max(1, round(steps_per_year))), int(replications), int(seed), kpis, parameters
    )


def _get(data: Any, path: str) -> Any:
    for part in split_key_path(path):
        data = data[part]
    return data


def with_values(scenario: Scenario, values: dict[str, float]) -> Scenario:
    """The scenario with ``values`` (dotted key -> number) set, validated."""
    from sim.api import scenario_from_dict

    data = scenario.model_dump(mode="python")
    for path, value in values.items():
        set_key_path(data, path, float(value))
    return scenario_from_dict(data, source="<calibration>")


def simulate_kpis(scenario: Scenario, kpis: list[str], firm: str, window_steps: int, seeds: list[int]) -> np.ndarray:
    """(replications, KPIs): each KPI of ``firm`` in each run, averaged over the last
    ``window_steps`` steps (``average_tenure_years``: at the end)."""
    from sim.model import LoyaltyModel

    f = list(scenario.firms).index(firm)
    out = np.zeros((len(seeds), len(kpis)))
    for r, seed in enumerate(seeds):
        model = LoyaltyModel(scenario, seed=seed).run()
        table = model.metrics.table
        first = max(1, scenario.market.steps - window_steps + 1)
        for k, name in enumerate(kpis):
            if name == "average_tenure_years":
                pop = model.population
                mine = pop.firm == f
                out[r, k] = float(pop.tenure[mine].mean()) * scenario.market.step_days / 365.0 if mine.any() else 0.0
            else:
                out[r, k] = float(table[name][first:, f].mean())
    return out


@dataclass
class CalibrationResult:
    spec: CalibrationSpec
    fitted: dict[str, float]
    sd: dict[str, float]
    correlation: list[list[float]]
    kpis: list[dict[str, float]]  # per KPI: observed, simulated mean, sd, sigma, z
    evaluations: int
    chi2: float
    scenario_file: Path | None = None
    report_file: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kpi_file": self.spec.source,
            "scenario": str(self.spec.scenario_path),
            "firm": self.spec.firm,
            "replications": self.spec.replications,
            "seed": self.spec.seed,
            "window_steps": self.spec.window_steps,
            "parameters": [
                {"key": p.path, "min": p.low, "max": p.high, "fitted": self.fitted[p.path], "sd": self.sd[p.path]} for p in self.spec.parameters
            ],
            "correlation": self.correlation,
            "kpis": self.kpis,
            "chi2": self.chi2,
            "evaluations": self.evaluations,
            "calibrated_scenario": str(self.scenario_file) if self.scenario_file else None,
        }


def calibrate(spec: CalibrationSpec, *, screen: int = 8, max_evaluations: int = 40, progress: Callable[[int], None] | None = None) -> CalibrationResult:
    """Fit ``spec.parameters`` to ``spec.kpis`` (see the module docstring)."""
    from scipy.optimize import least_squares
    from scipy.stats import qmc

    from sim.experiments import replication_seeds

    seeds = replication_seeds(spec.seed, spec.replications)
    names = [k.name for k in spec.kpis]
    observed = np.array([k.value for k in spec.kpis])
    low = np.array([p.low for p in spec.parameters])
    high = np.array([p.high for p in spec.parameters])
    cache: dict[tuple, np.ndarray] = {}
    history: list[dict[str, Any]] = []

    def values(u: np.ndarray) -> dict[str, float]:
        return {p.path: float(low[i] + np.clip(u[i], 0, 1) * (high[i] - low[i])) for i, p in enumerate(spec.parameters)}

    def runs(u: np.ndarray) -> np.ndarray:
        key = tuple(np.round(np.clip(u, 0, 1), 12))
        if key not in cache:
            cache[key] = simulate_kpis(with_values(spec.scenario, values(u)), names, spec.firm, spec.window_steps, seeds)
            history.append({"values": values(u), "kpis": cache[key].mean(axis=0).tolist()})
            if progress is not None:
                progress(len(cache))
        return cache[key]

    start = np.array([(float(_get(spec.scenario.model_dump(mode="python"), p.path)) - p.low) / (p.high - p.low) for p in spec.parameters])
    floor = 1e-3 * np.maximum(np.abs(observed), 1.0)
    given = np.array([np.nan if k.sd is None else k.sd for k in spec.kpis])

    candidates = [np.clip(start, 0, 1)]
    if screen > 0:
        candidates += list(qmc.Sobol(d=len(spec.parameters), scramble=True, seed=spec.seed).random(screen))
    # the noise of each KPI: its spread over replications (the median over the screened points,
    # then held fixed: a noise that moved with the parameters would favour the noisiest points).
    # Without a given sd, the observed market counts as one more run of the model.
    spread = np.median([runs(u).std(axis=0, ddof=1) for u in candidates], axis=0)
    sd_obs = np.where(np.isnan(given), spread, given)
    sigma = np.maximum(np.sqrt(sd_obs**2 + spread**2 / len(seeds)), floor)

    def residuals(u: np.ndarray) -> np.ndarray:
        return (runs(u).mean(axis=0) - observed) / sigma

    h = 0.04

    def jacobian(u: np.ndarray) -> np.ndarray:
        cols = []
        for i in range(u.size):
            up, down = u.copy(), u.copy()
            up[i] = min(1.0, u[i] + h)
            down[i] = max(0.0, u[i] - h)
            cols.append((residuals(up) - residuals(down)) / (up[i] - down[i]))
        return np.array(cols).T

    best = min(candidates, key=lambda u: float(np.sum(residuals(u) ** 2)))
    budget = max(1, max_evaluations // (2 * len(spec.parameters) + 1))
    fit = least_squares(residuals, best, jac=jacobian, bounds=(0.0, 1.0), max_nfev=budget, x_scale=1.0, diff_step=None)
    u = fit.x
    J = jacobian(u)
    scale = high - low
    try:
        cov_u = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        cov_u = np.linalg.pinv(J.T @ J)
    cov = cov_u * np.outer(scale, scale)
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    corr = cov / np.outer(np.maximum(sd, 1e-300), np.maximum(sd, 1e-300))
    sims = runs(u)
    res = residuals(u)
    sigma = (sims.mean(axis=0) - observed) / np.where(res == 0, 1.0, res)
    fitted = values(u)
    return CalibrationResult(
        spec=spec,
        fitted=fitted,
        sd={p.path: float(sd[i]) for i, p in enumerate(spec.parameters)},
        correlation=np.round(corr, 4).tolist(),
        kpis=[
            {"kpi": n, "observed": float(observed[k]), "simulated": float(sims[:, k].mean()), "simulated_sd": float(sims[:, k].std(ddof=1)),
             "sigma": float(abs(sigma[k])), "z": float(res[k])}
            for k, n in enumerate(names)
        ],
        evaluations=len(cache),
        chi2=float(np.sum(res**2)),
        history=history,
    )


def write_outputs(result: CalibrationResult, out: str | Path) -> CalibrationResult:
    """Write the calibrated scenario (the scenario file with the fitted values set) and
    ``calibration.json`` into ``out``; both are written whole or not at all."""
    import yaml

    from sim.api import scenario_from_dict

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = copy.deepcopy(result.spec.raw_scenario)
    for path, value in result.fitted.items():
        set_key_path(data, path, round(float(value), 6))
    name = str(data.get("name", result.spec.scenario_path.stem))
    data["name"] = f"{name}_calibrated"[:64]
    scenario_from_dict(copy.deepcopy(data), source="<calibrated scenario>")  # it must load
    header = "# Calibrated by loyalty-sim calibrate from " + result.spec.source + "\n" + "".join(
        f"#   {k} = {v:.6g} (sd {result.sd[k]:.2g})\n" for k, v in result.fitted.items()
    )
    scenario_file = out / f"{result.spec.scenario_path.stem}.calibrated.yaml"
    report_file = out / "calibration.json"
    result.scenario_file, result.report_file = scenario_file, report_file
    for target, text in (
        (scenario_file, header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)),
        (report_file, json.dumps(result.as_dict(), indent=2)),
    ):
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    return result

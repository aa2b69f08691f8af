"""Calibration: fitting scenario parameters to observed KPIs recovers known values; mistakes
in a KPI file are reported clearly (file, key, expected; exit 2)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sim.api import load_scenario
from sim.calibrate import calibrate, load_spec, simulate_kpis, with_values, write_outputs
from sim.cli import app
from sim.loader import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenarios" / "calibration"
runner = CliRunner()

TINY_MARKET = """
name: tiny
market: {population: 1500, steps: 24, step_days: 30, seed: 3}
segments:
  - {name: mainstream, share: 1.0, inertia: {mean: 0.3, sd: 0.1}, expectation: {mean: 1.0, sd: 0.05}}
firms:
  focal: {role: focal, initial_share: 0.4, service: {quality: 1.1}}
  rival: {initial_share: 0.4, price: {list: 9.0}, product: {quality: 0.95}}
"""
TRUE = {"segments[0].category_exit_per_year": 0.15, "behaviour.nps.offset": 0.4}
KPIS = ["retention_rate_annual", "nps", "average_tenure_years"]


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A tiny market and a KPI file whose observations come from a run with TRUE parameters."""
    _write(tmp_path, "market.yaml", TINY_MARKET)
    observed = simulate_kpis(with_values(load_scenario(tmp_path / "market.yaml"), TRUE), KPIS, "focal", 12, [99, 100]).mean(axis=0)
    kpis = {k: round(float(v), 4) for k, v in zip(KPIS, observed)}
    spec = {
        "scenario": "market.yaml", "replications": 3, "seed": 5, "kpis": kpis,
        "parameters": {"segments[0].category_exit_per_year": {"min": 0.01, "max": 0.5}, "behaviour.nps.offset": {"min": -1.0, "max": 3.0}},
    }
    return _write(tmp_path, "observed.yaml", yaml.safe_dump(spec, sort_keys=False))


def test_calibration_recovers_known_parameters(tiny, tmp_path):
    result = write_outputs(calibrate(load_spec(tiny), screen=4, max_evaluations=25), tmp_path / "out")
    for key, true in TRUE.items():
        fitted, sd = result.fitted[key], result.sd[key]
        assert sd > 0
        assert abs(fitted - true) < max(4 * sd, 0.1 * abs(true)), (key, fitted, sd, true)
    assert all(abs(k["z"]) < 3 for k in result.kpis), result.kpis
    # the calibrated scenario loads and holds the fitted values; the report says what was done
    calibrated = load_scenario(result.scenario_file)
    assert calibrated.segments[0].category_exit_per_year == pytest.approx(result.fitted["segments[0].category_exit_per_year"], abs=1e-6)
    assert calibrated.behaviour.nps.offset == pytest.approx(result.fitted["behaviour.nps.offset"], abs=1e-6)
    report = json.loads(result.report_file.read_text())
    assert [p["key"] for p in report["parameters"]] == list(TRUE)
    assert {k["kpi"] for k in report["kpis"]} == set(KPIS)


def test_calibration_moves_away_from_a_wrong_start(tiny):
    # the scenario's own values (defaults 0.03 and 1.2) misfit the observations badly
    spec = load_spec(tiny)
    start = simulate_kpis(spec.scenario, KPIS, "focal", 12, [5, 6]).mean(axis=0)
    observed = [k.value for k in spec.kpis]
    assert abs(start[1] - observed[1]) > 10  # NPS far off at the defaults


def test_shipped_example_is_valid_and_its_truth_reproduces_its_kpis():
    spec = load_spec(EXAMPLE / "observed.kpi")
    assert [p.path for p in spec.parameters] == ["segments[0].category_exit_per_year", "behaviour.nps.offset"]
    truth = with_values(spec.scenario, {"segments[0].category_exit_per_year": 0.12, "behaviour.nps.offset": 0.5})
    sims = simulate_kpis(truth, [k.name for k in spec.kpis], spec.firm, spec.window_steps, [2024])[0]
    for kpi, sim in zip(spec.kpis, sims):
        assert sim == pytest.approx(kpi.value, abs=0.01 * max(1.0, abs(kpi.value)))


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ("scenario: nowhere.yaml\nkpis: {nps: 1}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n", "scenario", "not found"),
        ("scenario: market.yaml\nkpis: {npss: 1}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n", "kpis.npss", "did you mean 'nps'"),
        ("scenario: market.yaml\nkpis: {nps: high}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n", "kpis.nps", "expected a number"),
        ("scenario: market.yaml\nkpis: {nps: {value: 1, sd: -1}}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n", "kpis.nps.sd", "positive number"),
        ("scenario: market.yaml\nkpis: {nps: 1}\nparameters: {behaviour.nps.ofset: {min: 0, max: 1}}\n", "parameters.behaviour.nps.ofset", "did you mean 'offset'"),
        ("scenario: market.yaml\nkpis: {nps: 1}\nparameters: {behaviour.nps.offset: {min: 2, max: 1}}\n", "parameters.behaviour.nps.offset", "must be below"),
        ("scenario: market.yaml\nkpis: {nps: 1}\nparameters: {behaviour.nps.offset: [0, 1]}\n", "parameters.behaviour.nps.offset", "{min: number, max: number}"),
        ("scenario: market.yaml\nkpis: {nps: 1}\nparameters: {market.population: {min: 5, max: 10}}\n", "parameters.market.population", "real-number values"),
        ("scenario: market.yaml\nkpis: {nps: 1}\nparameters: {market.discount_rate: {min: -1, max: 0.2}}\n", "parameters.market.discount_rate", "not allowed"),
        ("scenario: market.yaml\nfirm: nobody\nkpis: {nps: 1}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n", "firm", "unknown firm"),
        ("scenario: market.yaml\nkpis: {nps: 1}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\nreplications: 1\n", "replications", "from 2 to 1000"),
        ("scenario: market.yaml\nkpi: {nps: 1}\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n", "kpi", "did you mean 'kpis'"),
    ],
)
def test_kpi_file_mistakes_are_clear(tmp_path, body, key, words):
    _write(tmp_path, "market.yaml", TINY_MARKET)
    path = _write(tmp_path, "observed.yaml", body)
    with pytest.raises(ScenarioError) as info:
        load_spec(path)
    messages = [str(p) for p in info.value.problems]
    assert any(f": {key}: " in m and words in m and str(path) in m for m in messages), messages
    result = runner.invoke(app, ["calibrate", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists(), "nothing is written for a bad KPI file"


def test_kpi_file_problem_gives_its_line(tmp_path):
    _write(tmp_path, "market.yaml", TINY_MARKET)
    path = _write(tmp_path, "observed.yaml", "scenario: market.yaml\nkpis:\n  nps: 1\n  retention: 0.8\nparameters: {behaviour.nps.offset: {min: 0, max: 1}}\n")
    with pytest.raises(ScenarioError) as info:
        load_spec(path)
    assert info.value.problems[0].line == 4


def test_calibrate_command_end_to_end(tiny, tmp_path):
    out = tmp_path / "cal"
    result = runner.invoke(app, ["calibrate", str(tiny), "--out", str(out), "--max-evaluations", "6", "--screen", "0"])
    assert result.exit_code == 0, result.output
    assert "segments[0].category_exit_per_year" in result.output and "chi2" in result.output
    assert (out / "calibration.json").exists() and (out / "market.calibrated.yaml").exists()
    load_scenario(out / "market.calibrated.yaml")


def test_validate_model_command_writes_report(tmp_path):
    out = tmp_path / "validation"
    result = runner.invoke(app, ["validate-model", "--quick", "--only", "survival", "--only", "word_of_mouth", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["survival", "word_of_mouth"] and report["passed"]
    assert (out / "charts" / "survival.png").stat().st_size > 1000
    assert "| survival |" in (out / "report.md").read_text()
    bad = runner.invoke(app, ["validate-model", "--only", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown check" in bad.output

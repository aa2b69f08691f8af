"""The command line, end to end in a subprocess: clear errors for every class of bad input
(exit code 2, file, key path and line, never a traceback, no results folder), and the
results folder and customer view of a good run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim.api import load_scenario
from sim.model import LoyaltyModel

from conftest import write_yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "sim", *map(str, args)], capture_output=True, text=True, cwd=cwd or REPO_ROOT, env=env, timeout=120
    )


GOOD_HEAD = """\
name: tiny
market: {population: 500, steps: 3, seed: 7}
"""
FIRMS = """\
firms:
  focal: {role: focal, initial_share: 0.3}
  rival: {initial_share: 0.3, price: {list: 9.0}}
"""

# id: (file text, key path expected in the message or None, line expected, other text expected)
BAD_INPUTS = {
    "unknown_key": (
        "name: t\nmarket:\n  population: 500\n  steps: 3\n  sead: 4\n",
        "market.sead", 5, ["unknown key 'sead'", "did you mean 'seed'"],
    ),
    "wrong_type": (
        "name: t\nmarket:\n  population: many\n  steps: 3\n",
        "market.population", 3, ["expected an integer", "many"],
    ),
    "out_of_range": (
        "name: t\nmarket: {population: 500, steps: 3}\nfirms:\n  focal:\n    price:\n      list: -3\n",
        "firms.focal.price.list", 6, ["> 0", "-3"],
    ),
    "out_of_range_probability": (
        "name: t\nmarket: {population: 500, steps: 3}\nfirms:\n  focal:\n    service:\n      failure_rate: 1.5\n",
        "firms.focal.service.failure_rate", 6, ["1.5"],
    ),
    "yaml_syntax": (
        "name: t\nmarket:\n  population: 500\n   steps: 3\n",
        None, 4, ["invalid YAML"],
    ),
    "duplicate_key": (
        "name: t\nmarket:\n  population: 500\n  steps: 3\n  population: 600\n",
        "market.population", 5, ["duplicate key 'population'", "line 3"],
    ),
    "python_tag": (
        "name: t\nmarket:\n  population: !!python/object/apply:os.system [\"touch PWNED\"]\n  steps: 3\n",
        "market.population", 3, ["!!python/object/apply:os.system", "not allowed"],
    ),
    "segment_shares": (
        "name: t\nmarket: {population: 500, steps: 3}\nsegments:\n  - {name: a, share: 0.5}\n  - {name: b, share: 0.3}\n",
        "segments", 3, ["sum to 1", "0.8"],
    ),
    "unknown_segment_in_serves": (
        "name: t\nmarket: {population: 500, steps: 3}\nsegments:\n  - {name: retail, share: 1.0}\n"
        "firms:\n  focal:\n    role: focal\n    serves: [retial]\n",
        "firms.focal.serves[0]", 8, ["unknown segment 'retial'", "retail"],
    ),
    "timeline_unknown_key": (
        "name: t\nmarket: {population: 500, steps: 3}\n" + FIRMS + "timeline:\n  - at: 1\n    set:\n      firms.focal.price.lst: 9\n",
        "timeline[0].set['firms.focal.price.lst']", 9, ["unknown key 'lst'", "did you mean 'list'"],
    ),
    "timeline_value_out_of_range": (
        "name: t\nmarket: {population: 500, steps: 3}\n" + FIRMS + "timeline:\n  - at: 1\n    set:\n      firms.focal.price.list: -9\n",
        "timeline[0].set['firms.focal.price.list']", 9, ["> 0", "-9", "step 1"],
    ),
    "timeline_after_last_step": (
        "name: t\nmarket: {population: 500, steps: 3}\n" + FIRMS + "timeline:\n  - at: 7\n    set:\n      firms.focal.price.list: 9\n",
        "timeline[0].at", 7, ["step 7", "after the last step (3)"],
    ),
    "timeline_fixed_key": (
        "name: t\nmarket: {population: 500, steps: 3}\n" + FIRMS + "timeline:\n  - at: 1\n    set:\n      market.population: 900\n",
        "timeline[0].set['market.population']", 9, ["cannot change during a run"],
    ),
}


def _check_clear_error(result: subprocess.CompletedProcess, path: Path, key: str | None, line: int | None, texts: list[str]) -> None:
    err = result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err and "Traceback" not in result.stdout, err
    assert str(path) in err, err
    if line is not None:
        assert f"{path}:{line}:" in err, err
    if key is not None:
        assert f": {key}:" in err, err
    for text in texts:
        assert text in err, (text, err)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_validate_reports_each_bad_input_clearly(case, tmp_path):
    text, key, line, texts = BAD_INPUTS[case]
    path = write_yaml(tmp_path, f"{case}.yaml", text)
    result = cli("validate", path, cwd=tmp_path)
    _check_clear_error(result, path, key, line, texts)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_run_reports_each_bad_input_and_writes_nothing(case, tmp_path):
    text, key, line, texts = BAD_INPUTS[case]
    path = write_yaml(tmp_path, f"{case}.yaml", text)
    out = tmp_path / "results"
    result = cli("run", path, "--out", out, cwd=tmp_path)
    _check_clear_error(result, path, key, line, texts)
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("command", ["validate", "run"])
def test_missing_file_is_a_clear_error(command, tmp_path):
    path = tmp_path / "nowhere.yaml"
    out = tmp_path / "results"
    result = cli(command, path, *(["--out", out] if command == "run" else []), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr and "not found" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_validate_lists_every_problem_of_every_file(tmp_path):
    good = write_yaml(tmp_path, "good.yaml", GOOD_HEAD + FIRMS)
    bad = write_yaml(tmp_path, "bad.yaml", "name: t\nmarket:\n  population: -5\n  sead: 4\n")
    result = cli("validate", good, bad, cwd=tmp_path)
    assert result.returncode == 2
    assert f"ok: {good}" in result.stdout
    assert f"{bad}:3: market.population" in result.stderr and f"{bad}:4: market.sead" in result.stderr
    assert "2 problems" in result.stderr


def test_run_with_a_bad_override_is_a_clear_error(tmp_path):
    path = write_yaml(tmp_path, "tiny.yaml", GOOD_HEAD + FIRMS)
    out = tmp_path / "results"
    result = cli("run", path, "--out", out, "--set", "firms.focal.price.lst=9", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "did you mean 'list'" in result.stderr and str(path) in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_timeline_may_change_keys_the_file_leaves_at_their_defaults(tmp_path):
    """A timeline on the default firm (no `firms:` in the file) and on keys the file never
    sets is valid, and a bad value there is still reported at the event's line."""
    head = "name: t\nmarket: {population: 500, steps: 3}\ntimeline:\n  - at: 1\n    set:\n"
    good = write_yaml(tmp_path, "default_firm.yaml", head + "      firms.focal.price.list: 9\n      firms.focal.rewards.enabled: true\n")
    result = cli("validate", good, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    bad = write_yaml(tmp_path, "default_firm_bad.yaml", head + "      firms.focal.service.failure_rate: 2\n")
    _check_clear_error(cli("validate", bad, cwd=tmp_path), bad, "timeline[0].set['firms.focal.service.failure_rate']", 6, ["2"])


# --------------------------------------------------------------------------- a good run


@pytest.mark.slow
def test_run_writes_the_results_folder(tmp_path):
    path = write_yaml(tmp_path, "tiny.yaml", GOOD_HEAD + FIRMS)
    out = tmp_path / "results"
    result = cli("run", path, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    runs = list((out / "tiny").iterdir())
    assert len(runs) == 1 and runs[0].is_dir()
    folder = runs[0]
    assert str(folder) in result.stdout
    for name in ("scenario.yaml", "metrics.csv", "customers.csv", "summary.json"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    charts = sorted((folder / "charts").glob("*.png"))
    assert charts, "no charts"
    for chart in charts:
        assert chart.read_bytes()[:8] == PNG_SIGNATURE, chart
    assert not [p for p in (out / "tiny").iterdir() if p.name.startswith(".")], "staging folder left behind"

    metrics = pd.read_csv(folder / "metrics.csv")
    assert len(metrics) == (3 + 1) * 2 and set(metrics["firm"]) == {"focal", "rival"}
    customers = pd.read_csv(folder / "customers.csv")
    assert len(customers) == 500
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["run"]["seed"] == 7 and summary["run"]["steps"] == 3 and summary["run"]["population"] == 500
    assert [f["name"] for f in summary["firms"]] == ["focal", "rival"]

    # the folder reproduces the run: its scenario.yaml is the same scenario, and running it again
    # in process gives the same tables
    original = load_scenario(path)
    saved = load_scenario(folder / "scenario.yaml")
    assert saved.digest() == original.digest()
    again = LoyaltyModel(saved).run()
    pd.testing.assert_frame_equal(
        again.metrics_frame()[["step", "firm", "customers", "acquisitions", "churned"]],
        metrics[["step", "firm", "customers", "acquisitions", "churned"]],
        check_dtype=False,
    )

    # a second run with the same --run-id is refused without touching the first
    rid = folder.name
    second = cli("run", path, "--out", out, "--run-id", rid, "--no-charts", cwd=tmp_path)
    assert second.returncode == 2 and "already exists" in second.stderr and "Traceback" not in second.stderr


def test_customer_command_prints_the_customers_state(tmp_path):
    path = write_yaml(tmp_path, "tiny.yaml", GOOD_HEAD + FIRMS)
    model = LoyaltyModel(load_scenario(path))
    model.step()
    model.step()
    customer_id = int(next(i for i in range(500) if model.population.firm[i] >= 0))
    expected = model.customer(customer_id)

    result = cli("customer", path, str(customer_id), "--step", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "after step 2" in out
    assert f"customer {customer_id} " in out and f"buys from {expected.firm}" in out
    for field in ("expectation", "perceived_value", "satisfaction", "trust", "attachment", "switching_cost", "points"):
        assert f"{field:<17} {getattr(expected, field):.3f}" in out, field
    assert f"{expected.loyalty_type} (held by {expected.held_by})" in out
    assert str(expected) in out  # exactly the in-process view

    bad = cli("customer", path, "500", cwd=tmp_path)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    late = cli("customer", path, "0", "--step", "9", cwd=tmp_path)
    assert late.returncode == 2 and "after the last step" in late.stderr and "Traceback" not in late.stderr


def test_run_gives_the_same_files_on_any_number_of_threads(tmp_path):
    path = write_yaml(tmp_path, "threads.yaml", GOOD_HEAD.replace("population: 500", "population: 9000") + FIRMS)
    folders = {}
    for threads in ("1", "2"):
        result = cli("run", path, "--out", tmp_path / threads, "--run-id", "r", "--threads", threads, "--no-charts", "--quiet", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        folders[threads] = tmp_path / threads / "tiny" / "r"
    for name in ("metrics.csv", "customers.csv"):
        assert (folders["1"] / name).read_bytes() == (folders["2"] / name).read_bytes(), name
    for wrong in (["--threads", "-1"], ["--threads", "2", "--replications", "3"]):
        refused = cli("run", path, *wrong, cwd=tmp_path)
        assert refused.returncode == 2 and "--threads" in refused.stderr and "Traceback" not in refused.stderr, wrong

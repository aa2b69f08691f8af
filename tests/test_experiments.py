"""Experiments (sim.experiments) through the API and the command line: intervals that shrink
with more replications, byte-identical results whatever the executor (in process, worker
processes, a Dask cluster), common random numbers in comparisons, the retention effect,
seeds, sweeps, the streamed results folder, and clear errors (exit 2, no traceback).

Markets are small (400-1,500 people, 6-24 steps): a run takes a fraction of a second, so an
experiment of a few dozen runs takes a second or two."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_scenario, write_yaml
from scipy import stats

from sim.api import load_scenario
from sim.experiments import (
    OUTCOMES,
    ExperimentError,
    compare,
    parse_grid,
    replicate,
    replication_seeds,
    retention_effect,
    sweep,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLES = ("metrics.csv", "runs.csv", "summary.csv", "bands.csv")
#: The experiment charts are drawn by sim.experiment_charts; without it the CLI tests pass --no-charts.
HAS_CHARTS = importlib.util.find_spec("sim.experiment_charts") is not None
NO_ECONOMICS = {"basket_growth_per_year": 0.0, "serve_cost_decline_per_year": 0.0, "price_tolerance_per_year": 0.0}

TINY = """\
name: tiny
market: {population: 600, steps: 6, seed: 7}
firms:
  focal: {role: focal, initial_share: 0.3}
  rival: {initial_share: 0.3, price: {list: 9.0}}
"""


def small(steps: int = 12, population: int = 800, **market):
    """The test market at 800 people and 12 monthly steps."""
    return make_scenario(market={"population": population, "steps": steps, **market})


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sim", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


def folder_in(stdout: str) -> Path:
    """The results folder a command printed last (``results: PATH`` or, with --quiet, ``PATH``)."""
    return Path(stdout.strip().splitlines()[-1].removeprefix("results: ").strip())


def focal_row(frame: pd.DataFrame, **match) -> pd.Series:
    rows = frame[frame["firm"] == "focal"]
    for column, value in match.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def experiment_folders(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*") if p.is_dir()] if root.exists() else []


# --------------------------------------------------------------------------- seeds and the folder


def test_replication_seeds_are_distinct_and_derived_from_the_scenario_seed(tmp_path):
    seeds = replication_seeds(7, 20)
    assert len(set(seeds)) == 20 and all(0 <= s < 2**63 for s in seeds)
    assert replication_seeds(7, 20) == seeds  # same seed, same list
    assert replication_seeds(7, 5) == seeds[:5]  # more replications extend the list
    assert set(replication_seeds(8, 20)).isdisjoint(seeds)  # another seed, other seeds

    scenario = small(steps=6, population=400, seed=7)
    result = replicate(scenario, 3, out=tmp_path, exp_id="a")
    info = json.loads((result.folder / "experiment.json").read_text())
    assert info["seeds"] == replication_seeds(7, 3) and info["base_seed"] == 7
    assert sorted(set(result.runs["seed"])) == sorted(replication_seeds(7, 3))
    other = replicate(small(steps=6, population=400, seed=8), 3, out=tmp_path, exp_id="b")
    assert json.loads((other.folder / "experiment.json").read_text())["seeds"] == replication_seeds(8, 3)
    override = replicate(scenario, 2, out=tmp_path, exp_id="c", seed=99)
    assert json.loads((override.folder / "experiment.json").read_text())["seeds"] == replication_seeds(99, 2)


def test_runs_are_streamed_one_file_each_and_combined(tmp_path):
    scenario = small(steps=6, population=400)
    result = replicate(scenario, 3, out=tmp_path, exp_id="stream")
    folder = result.folder
    assert folder == tmp_path / scenario.name / "stream"
    run_files = sorted((folder / "runs").glob("*.csv"))
    assert [p.stem for p in run_files] == sorted(result.runs["run_id"].unique()) and len(run_files) == 3
    metrics = pd.read_csv(folder / "metrics.csv")
    firms = len(scenario.firms)
    assert len(metrics) == 3 * (scenario.market.steps + 1) * firms
    for path in run_files:  # metrics.csv is the run files one after another
        assert len(pd.read_csv(path)) == (scenario.market.steps + 1) * firms
    assert len(pd.read_csv(folder / "runs.csv")) == 3 * firms
    bands = pd.read_csv(folder / "bands.csv")
    assert len(bands) == (scenario.market.steps + 1) * firms and set(bands["n"]) == {3}
    for name in ("experiment.json", "summary.csv", "scenarios/test_market.yaml"):
        assert (folder / name).is_file(), name
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "staging folder left behind"


# --------------------------------------------------------------------------- intervals


def test_intervals_shrink_with_more_replications(tmp_path):
    """The 95% interval is the mean +- Student's t times the standard error s / sqrt(n) of the runs'
    outcomes, so for the same spread it narrows by sqrt(16 / 4) = 2 from 4 to 16 runs, and by about
    3 with t falling from 3.18 to 2.13. (Comparing the two widths directly would also compare two
    estimates of the spread, and one from 4 runs is too noisy for that.)"""
    scenario = small()
    per_spread = {}
    for n in (4, 16):
        result = replicate(scenario, n, out=tmp_path / str(n))
        row = focal_row(result.summary)
        assert row["n"] == n
        assert row["cumulative_profit_ci_low"] < row["cumulative_profit_mean"] < row["cumulative_profit_ci_high"]
        values = result.runs[result.runs["firm"] == "focal"]["cumulative_profit"]
        assert len(values) == n
        s = values.std(ddof=1)
        half = (row["cumulative_profit_ci_high"] - row["cumulative_profit_ci_low"]) / 2
        assert half == pytest.approx(stats.t.ppf(0.975, n - 1) * s / np.sqrt(n), rel=1e-6)  # the summary is rounded
        assert row["cumulative_profit_mean"] == pytest.approx(values.mean(), rel=1e-6)
        per_spread[n] = half / s
    assert per_spread[4] / per_spread[16] == pytest.approx(2 * 3.182 / 2.131, rel=0.01)


# --------------------------------------------------------------------------- executors


@pytest.mark.slow
def test_results_are_identical_serial_in_processes_and_on_dask(tmp_path):
    from distributed import LocalCluster

    base = small(steps=8, population=600)
    scenarios = [("base", base), ("cheap", make_scenario(market={"population": 600, "steps": 8}, firms={"focal": {"price": {"list": 8.0}}}))]
    serial = compare(scenarios, 3, out=tmp_path / "serial", exp_id="x", jobs=1)
    processes = compare(scenarios, 3, out=tmp_path / "processes", exp_id="x", jobs=2)
    path = write_yaml(tmp_path, "tiny.yaml", TINY)
    reference = replicate(load_scenario(path), 3, out=tmp_path / "reference", exp_id="x")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = compare(scenarios, 3, out=tmp_path / "dask", exp_id="x", scheduler=cluster.scheduler_address)
        result = cli("run", path, "--replications", 3, "--scheduler", cluster.scheduler_address, "--out", tmp_path / "cli", "--id", "x", "--no-charts", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in (*TABLES, "differences.csv"):
        expected = (serial.folder / name).read_bytes()
        assert (processes.folder / name).read_bytes() == expected, name
        assert (dask.folder / name).read_bytes() == expected, name
    assert folder_in(result.stdout) == tmp_path / "cli" / "tiny" / "x"
    for name in TABLES:
        assert (tmp_path / "cli" / "tiny" / "x" / name).read_bytes() == (reference.folder / name).read_bytes(), name


# --------------------------------------------------------------------------- compare


def test_compare_with_itself_shows_no_difference_and_a_far_higher_price_does(tmp_path):
    scenario = small(steps=12, population=800)
    pricey = make_scenario(market={"population": 800, "steps": 12}, firms={"focal": {"price": {"list": 20.0}}})
    result = compare([("base", scenario), ("same", scenario), ("pricey", pricey)], 5, out=tmp_path)
    differences = pd.read_csv(result.folder / "differences.csv")
    assert set(differences["baseline"]) == {"base"} and set(differences["n"]) == {5}
    same = differences[differences["variant"] == "same"]
    for name in OUTCOMES:
        assert (same[f"{name}_diff"] == 0).all(), name
        assert (same[f"{name}_ci_low"] == 0).all() and (same[f"{name}_ci_high"] == 0).all(), name
        assert not same[f"{name}_significant"].any(), name
    far = focal_row(differences, variant="pricey")
    assert far["customers_diff"] < 0 and far["customers_significant"]
    assert far["market_share_diff"] < 0 and far["market_share_significant"]
    assert far["cumulative_profit_significant"]
    # common random numbers: replication r has the same seed in every variant
    seeds = result.runs.pivot_table(index="replication", columns="variant", values="seed", aggfunc="first")
    assert (seeds.nunique(axis=1) == 1).all()


# --------------------------------------------------------------------------- retention effect


@pytest.mark.slow
def test_retention_effect_grows_with_the_gain_and_with_profitable_tenure(tmp_path):
    """More retention earns more, the more so the larger the gain; and it earns more (in money:
    relative uplifts depend on the baseline's profit) where loyal customers buy more, cost less
    to serve and tolerate a premium as their tenure grows (market.loyalty_economics)."""
    gains = (0, 5, 10)
    market = {"population": 1500, "steps": 18}
    tenure_pays = retention_effect(make_scenario(market=market), 5, gains=gains, out=tmp_path / "a")
    flat = retention_effect(make_scenario(market={**market, "loyalty_economics": NO_ECONOMICS}), 5, gains=gains, out=tmp_path / "b")
    seeds = [json.loads((r.folder / "experiment.json").read_text())["seeds"] for r in (tenure_pays, flat)]
    assert seeds[0] == seeds[1]  # the same seeds: the difference comes from the economics

    for result in (tenure_pays, flat):
        curve = result.extra["effect"].set_index("retention_gain_points")
        assert curve.loc[0.0, "profit_last_year_change"] == 0
        for g in (5.0, 10.0):
            achieved = 100 * curve.loc[g, "retention_rate_run_change"]
            assert abs(achieved - g) < 1.5, (g, achieved)
    curve = tenure_pays.extra["effect"].set_index("retention_gain_points")
    for name in ("profit_last_year", "cumulative_profit", "npv", "customer_equity"):
        assert curve.loc[5.0, f"{name}_change_ci_low"] > 0, name
        assert curve.loc[10.0, f"{name}_change"] > curve.loc[5.0, f"{name}_change"] > 0, name
        assert curve.loc[10.0, f"{name}_uplift"] > curve.loc[5.0, f"{name}_uplift"] > 0, name
    flat_curve = flat.extra["effect"].set_index("retention_gain_points")
    for g in (5.0, 10.0):
        assert 0 < flat_curve.loc[g, "profit_last_year_change"] < curve.loc[g, "profit_last_year_change"], g
    saved = pd.read_csv(tenure_pays.folder / "retention_effect.csv")
    assert list(saved["retention_gain_points"]) == [0, 5, 10]


def test_retention_effect_says_where_the_uplift_comes_from(tmp_path):
    """The change in the focal firm's cumulative profit is split, pair by pair, into the margin
    of the customers kept, the customers won, the margin per customer and the other costs:
    the parts add up to the change of every pair (read independently from runs.csv); the
    customers kept carry a margin, so their part is positive; the files have the columns."""
    from sim.experiments import COUNTERFACTUAL_SOURCES, SOURCE_COUNTS, UPLIFT_SOURCES, uplift_sources

    scenario = make_scenario(market={"population": 800, "steps": 12}, firms={"focal": {"acquisition": {"budget_per_year": 3000.0, "cost_per_contact": 2.0}}})
    result = retention_effect(scenario, 3, gains=(0, 10), headline=10, out=tmp_path)
    sources = pd.read_csv(result.folder / "uplift_sources.csv")
    assert list(sources["retention_gain_points"]) == [10, 10, 10] and list(sources["replication"]) == [0, 1, 2]
    assert set(sources["firm"]) == {"focal"}
    for name in ("run_id", "baseline_run_id", "cumulative_profit_change", *UPLIFT_SOURCES, *COUNTERFACTUAL_SOURCES, *SOURCE_COUNTS):
        assert name in sources.columns, name

    # (a) the parts add up to the change in cumulative profit, per replication
    runs = pd.read_csv(result.folder / "runs.csv").set_index("run_id")
    runs = runs[runs["firm"] == "focal"]
    for _, row in sources.iterrows():
        change = runs.at[row["run_id"], "cumulative_profit"] - runs.at[row["baseline_run_id"], "cumulative_profit"]
        parts = sum(row[name] for name in UPLIFT_SOURCES)
        assert parts == pytest.approx(change, rel=1e-6, abs=1e-3), (row["replication"], parts, change)
        assert row["cumulative_profit_change"] == pytest.approx(change, rel=1e-6, abs=1e-3)
        assert row["other"] == 0  # budgets and fixed costs are the same in both runs

    # the split matches its closed forms (the stock-flow identity and served1 * (m1 - m0))
    metrics = pd.read_csv(result.folder / "metrics.csv")
    metrics = metrics[metrics["firm"] == "focal"]
    row = sources.iloc[0]
    base, gain = (metrics[metrics["run_id"] == row[c]].sort_values("step") for c in ("baseline_run_id", "run_id"))
    assert uplift_sources(base, gain) == pytest.approx({k: row[k] for k in ("cumulative_profit_change", *UPLIFT_SOURCES, *COUNTERFACTUAL_SOURCES, *SOURCE_COUNTS)})

    def col(frame, name):
        return frame[name].to_numpy(dtype=float)

    def served_and_margin(frame):
        served = col(frame, "customers")[:-1] + col(frame, "acquired_prospects")[1:]
        contribution = col(frame, "revenue") - sum(col(frame, c) for c in ("cost_of_goods", "service_cost", "reward_cost", "community_cost"))
        return served, contribution[1:] / served

    (served0, m0), (served1, m1) = served_and_margin(base), served_and_margin(gain)
    assert (col(gain, "customers")[1:] == col(gain, "customers")[:-1] + col(gain, "acquisitions")[1:] - col(gain, "churned")[1:]).all()
    won = np.cumsum(col(gain, "acquisitions")[1:] - col(base, "acquisitions")[1:])
    won_before = np.concatenate(([0.0], won[:-1]))
    extra_prospects = col(gain, "acquired_prospects")[1:] - col(base, "acquired_prospects")[1:]
    assert row["word_of_mouth"] == pytest.approx(np.sum((won_before + extra_prospects) * m0), rel=1e-6, abs=1e-3)
    assert row["tenure_growth"] == pytest.approx(np.sum(served1 * (m1 - m0)), rel=1e-6, abs=1e-3)
    assert row["customers_won"] == won[-1]
    cost_per_acquisition = col(base, "acquisition_cost")[1:].sum() / col(base, "acquisitions")[1:].sum()
    assert row["acquisition_saved"] == pytest.approx(row["customers_kept"] * cost_per_acquisition)

    # (b) more retention keeps customers who carry a margin: their part is positive
    assert (sources["customers_kept"] > 0).all()
    assert (sources["kept_margin"] > 0).all() and (sources["acquisition_saved"] > 0).all()

    # (c) the summary columns of retention_effect.csv: mean, interval and share per part
    curve = pd.read_csv(result.folder / "retention_effect.csv").set_index("retention_gain_points")
    top = curve.loc[10.0]
    for name in (*UPLIFT_SOURCES, *COUNTERFACTUAL_SOURCES, *SOURCE_COUNTS):
        assert top[f"source_{name}_ci_low"] <= top[f"source_{name}"] <= top[f"source_{name}_ci_high"], name
        assert top[f"source_{name}"] == pytest.approx(sources[name].mean()), name
        assert curve.loc[0.0, f"source_{name}"] == 0, name
    assert top["source_kept_margin_ci_low"] > 0
    assert sum(top[f"source_{name}"] for name in UPLIFT_SOURCES) == pytest.approx(top["cumulative_profit_change"], rel=1e-6, abs=1e-3)
    assert sum(top[f"source_{name}_share"] for name in UPLIFT_SOURCES) == pytest.approx(1.0)
    assert top["source_kept_margin_share"] == pytest.approx(top["source_kept_margin"] / top["cumulative_profit_change"])
    assert "source_customers_kept_share" not in curve.columns
    assert result.extra["effect"].columns.tolist() == curve.reset_index().columns.tolist()


# --------------------------------------------------------------------------- sweep


def test_parse_grid_reads_ranges_and_lists():
    grid = parse_grid(["a.b=0.01:0.10:10", "c=1:5:5", "d=9,10.5,x", "e=true,false", "f=3"])
    assert grid["a.b"] == pytest.approx([0.01 * k for k in range(1, 11)]) and len(grid["a.b"]) == 10
    assert grid["c"] == [1, 2, 3, 4, 5] and all(isinstance(v, int) for v in grid["c"])
    assert grid["d"] == [9, 10.5, "x"] and grid["e"] == [True, False] and grid["f"] == [3]
    assert parse_grid(["k=2:4:1"]) == {"k": [2]}
    assert list(parse_grid(["z=1,2", "a=3,4"])) == ["z", "a"]  # the order given


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["firms.focal.price.list"], "expected KEY=START:STOP:COUNT"),
        (["=1,2"], "expected KEY=START:STOP:COUNT"),
        (["k="], "expected KEY=START:STOP:COUNT"),
        (["k=1:2"], "START:STOP:COUNT"),
        (["k=1:2:0"], "COUNT >= 1"),
        (["k=1:2:3:4"], "START:STOP:COUNT"),
        (["k=a:b:3"], "START:STOP:COUNT"),
        (["k=1:2:2.5"], "START:STOP:COUNT"),
        (["k=1,2", "j=3", "k=4,5"], "given twice"),
        ([], "at least one"),
    ],
)
def test_parse_grid_rejects_malformed_specs(items, message):
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(")):
        parse_grid(items)


def test_sweep_writes_the_best_point(tmp_path):
    scenario = small(steps=6, population=600)
    result = sweep(scenario, parse_grid(["firms.focal.price.list=8:14:4"]), 2, outcome="cumulative_profit", out=tmp_path)
    summary = pd.read_csv(result.folder / "summary.csv")
    own = summary[summary["firm"] == "focal"]
    assert list(own["firms.focal.price.list"]) == [8, 10, 12, 14] and set(own["n"]) == {2}
    top = own.loc[own["cumulative_profit_mean"].idxmax()]
    best = json.loads((result.folder / "best.json").read_text())
    assert best["outcome"] == "cumulative_profit" and best["firm"] == "focal" and best["n"] == 2
    assert best["variant"] == top["variant"]
    assert best["parameters"] == {"firms.focal.price.list": top["firms.focal.price.list"]}
    assert best["mean"] == pytest.approx(top["cumulative_profit_mean"])
    assert best["ci_low"] <= best["mean"] <= best["ci_high"]
    # another firm and outcome
    rival = sweep(scenario, {"firms.focal.price.list": [8, 14]}, 2, outcome="customers", firm="rival", out=tmp_path, exp_id="rival")
    theirs = rival.summary[rival.summary["firm"] == "rival"]
    assert rival.extra["best"].iloc[0]["mean"] == pytest.approx(theirs["customers_mean"].max())


@pytest.mark.parametrize(
    ("grid", "kwargs", "message"),
    [
        ({"firms.focal.price.lst": [9, 10]}, {}, r"firms\.focal\.price\.lst.*did you mean 'list'"),
        ({"market.populaton": [500]}, {}, r"populaton.*did you mean 'population'"),
        ({"firms.focal.price.list": [9, -1]}, {}, r"firms\.focal\.price\.list.*> 0"),
        ({"firms.focal.price.list": [9]}, {"outcome": "profitt"}, "unknown outcome 'profitt'"),
        ({"firms.focal.price.list": [9]}, {"firm": "nobody"}, "unknown firm 'nobody'"),
    ],
)
def test_sweep_errors_name_the_problem_and_write_nothing(tmp_path, grid, kwargs, message):
    with pytest.raises(ExperimentError, match=message):
        sweep(small(steps=6, population=400), grid, 1, out=tmp_path, **kwargs)
    assert not experiment_folders(tmp_path)


# --------------------------------------------------------------------------- the command line

#: command: (arguments after the scenario file, texts the output must contain, the folder's name under --out)
COMMANDS = {
    "run": (["--replications", "3"], ["n = 3 runs", "customers", "retention", "NPV", "CLV", "loyalty-type mix", "focal *"], "tiny"),
    "compare": (
        ["--variant", "cheap:firms.focal.price.list=8,firms.focal.rewards.enabled=true", "--replications", "3"],
        ["tiny (baseline)", "cheap", "cum.profit", "NPV", "retention", "satisf.", "NPS", "CLV", "loyalty-type mix", "paired difference from tiny", "significant"],
        "compare-tiny-vs-cheap",
    ),
    "sweep": (
        ["--set", "firms.focal.price.list=8:12:3", "--replications", "2", "--outcome", "cumulative_profit"],
        ["firms.focal.price.list", "cum.profit", "best point", "firms.focal.price.list = "],
        "sweep-tiny",
    ),
    "retention-effect": (
        ["--gain", "5", "--curve", "0,5,10", "--replications", "3"],
        [
            "retention achieved", "profit (last year)", "cumulative profit", "NPV", "customer equity", "published: +25% to +95%", "uplift by retention gain",
            "where the uplift comes from (5 points", "customers kept (their margin)", "total: change in cumulative profit", "acquisition spending saved",
        ],
        "retention-tiny",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_experiment_command_writes_its_folder_and_prints_its_table(command, tmp_path):
    """End to end in a subprocess (as a user runs it), charts included; compare on two worker processes."""
    args, texts, name = COMMANDS[command]
    path = write_yaml(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "results"
    jobs = ["--jobs", "2"] if command == "compare" else []
    result = cli(command, path, *args, *jobs, "--out", out, "--id", "e1", *(() if HAS_CHARTS else ("--no-charts",)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for text in texts:
        assert text in result.stdout, (text, result.stdout)
    folder = out / name / "e1"
    assert folder_in(result.stdout) == folder
    for table in (*TABLES, "experiment.json"):
        assert (folder / table).is_file(), table
    if HAS_CHARTS:
        assert list((folder / "charts").glob("*.png")), "no charts"


def invoke(*args: str | Path):
    """The command line in this process (fast): exit code, stdout and stderr apart."""
    from typer.testing import CliRunner

    from sim.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no traceback
    return result


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_quiet_prints_only_the_folder_and_a_taken_id_is_refused(command, tmp_path):
    args, _, name = COMMANDS[command]
    path = write_yaml(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "results"
    first = invoke(command, path, *args, "--out", out, "--id", "x", "--no-charts", "--quiet")
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{out / name / 'x'}\n"
    again = invoke(command, path, *args, "--out", out, "--id", "x", "--no-charts")
    assert again.exit_code == 2 and again.stdout == ""
    assert again.stderr.startswith("error: ") and "already exists" in again.stderr and "choose another --id" in again.stderr
    assert len(again.stderr.splitlines()) == 1
    assert sorted(p.name for p in (out / name).iterdir()) == ["x"]


@pytest.mark.slow
def test_progress_goes_to_stderr_when_it_is_a_terminal(tmp_path):
    """With stderr on a terminal the command draws "runs done/total" and the time left there;
    stdout keeps only the tables."""
    pty = pytest.importorskip("pty")
    path = write_yaml(tmp_path, "tiny.yaml", TINY)
    master, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120"}
    command = [sys.executable, "-m", "sim", "run", str(path), "-n", "4", "--out", str(tmp_path / "results"), "--no-charts"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal, cwd=tmp_path, env=env)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    stdout = process.stdout.read().decode()
    assert process.wait(timeout=120) == 0, shown
    os.close(master)
    shown = shown.decode(errors="replace")
    assert "runs" in shown and "4/4" in shown and "time left" in shown, shown
    assert "\x1b" not in stdout and "n = 4 runs" in stdout


# arguments after the scenario file, texts the error must contain
BAD_ARGUMENTS = {
    "sweep_range": (["sweep", "--set", "firms.focal.price.list=8:12"], ["--set", "START:STOP:COUNT"]),
    "sweep_no_equals": (["sweep", "--set", "firms.focal.price.list"], ["--set", "KEY=START:STOP:COUNT"]),
    "sweep_unknown_key": (["sweep", "--set", "firms.focal.price.lst=8,9"], ["firms.focal.price.lst", "did you mean 'list'"]),
    "sweep_bad_value": (["sweep", "--set", "firms.focal.price.list=8,-1"], ["firms.focal.price.list", "> 0", "-1"]),
    "sweep_outcome": (["sweep", "--set", "firms.focal.price.list=8,9", "--outcome", "profitt"], ["unknown outcome 'profitt'", "npv"]),
    "sweep_firm": (["sweep", "--set", "firms.focal.price.list=8,9", "--firm", "nobody"], ["unknown firm 'nobody'"]),
    "variant_no_name": (["compare", "--variant", "firms.focal.price.list=9"], ["--variant", "NAME:KEY=VALUE"]),
    "variant_no_value": (["compare", "--variant", "cheap:firms.focal.price.list"], ["--variant cheap:", "KEY=VALUE"]),
    "variant_unknown_key": (["compare", "--variant", "cheap:firms.focal.price.lst=9"], ["--variant cheap:", "did you mean 'list'"]),
    "variant_bad_value": (["compare", "--variant", "cheap:firms.focal.price.list=-9"], ["--variant cheap:", "firms.focal.price.list", "> 0"]),
    "variant_twice": (["compare", "--variant", "a:firms.focal.price.list=9", "--variant", "a:firms.focal.price.list=8"], ["variant names must differ"]),
    "compare_alone": (["compare"], ["compare needs two or more"]),
    "curve": (["retention-effect", "--curve", "0,five"], ["--curve", "0,five"]),
    "gains": (["retention-effect", "--curve", "0,150"], ["between 0 and 100"]),
    "set": (["retention-effect", "--set", "firms.focal.price.lst=9"], ["did you mean 'list'"]),
    "run_set": (["run", "--replications", "2", "--set", "firms.focal.price.lst=9"], ["did you mean 'list'"]),
    "scheduler_address": (["run", "--replications", "2", "--scheduler", "nonsense"], ["--scheduler", "nonsense"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_experiment_arguments_are_clear_errors(case, tmp_path):
    args, texts = BAD_ARGUMENTS[case]
    path = write_yaml(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "results"
    result = invoke(args[0], path, *args[1:], "--out", out, "--no-charts")
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith("error: "), result.stderr
    for text in texts:
        assert text in result.stderr, (text, result.stderr)
    assert not experiment_folders(out), list(out.rglob("*"))


def test_a_bad_scenario_file_in_an_experiment_is_reported_like_run(tmp_path):
    good = write_yaml(tmp_path, "tiny.yaml", TINY)
    bad = write_yaml(tmp_path, "bad.yaml", "name: t\nmarket:\n  population: -5\n  sead: 4\n")
    out = tmp_path / "results"
    result = cli("compare", good, bad, tmp_path / "nowhere.yaml", "--out", out, cwd=tmp_path)  # a real process: no traceback
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}:3: market.population" in result.stderr and f"{bad}:4: market.sead" in result.stderr
    assert "nowhere.yaml" in result.stderr and "not found" in result.stderr
    for command, args in (("sweep", ["--set", "firms.focal.price.list=9,10"]), ("retention-effect", []), ("run", ["-n", "2"])):
        result = invoke(command, bad, *args, "--out", out)
        assert result.exit_code == 2, result.output
        assert f"{bad}:3: market.population" in result.stderr and "2 problems" in result.stderr, result.stderr
    assert not experiment_folders(out)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    path = write_yaml(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "results"
    result = invoke("compare", path, "--variant", "b:firms.focal.price.list=8", "--scheduler", "tcp://127.0.0.1:9", "--out", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "tcp://127.0.0.1:9" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not experiment_folders(out)

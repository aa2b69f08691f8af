"""Tests of sim.experiment_charts on small real experiment folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim.experiment_charts import plot_experiment
from sim.experiments import compare, parse_grid, replicate, retention_effect, sweep

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = {"market.population": 300, "market.steps": 4}


def _starter(**sets):
    return sim.load_scenario(REPO_ROOT / "scenarios" / "starter.yaml", {**TINY, **sets})


@pytest.fixture(scope="module")
def experiments(tmp_path_factory) -> dict[str, Path]:
    """One folder per kind (and per number of swept keys), run in-process at a tiny size."""
    out = tmp_path_factory.mktemp("experiments")
    scenario = _starter()
    grids = {
        "sweep-1": ["firms.focal.price.list=8:12:3"],
        "sweep-2": ["firms.focal.price.list=8:12:3", "firms.focal.rewards.points_rate=0.02,0.08"],
        "sweep-3": ["firms.focal.price.list=9,11", "firms.focal.rewards.points_rate=0.02,0.08", "firms.focal.community.enabled=true,false"],
    }
    folders = {
        "replications": replicate(scenario, 3, out=out, exp_id="replications").folder,
        "compare": compare([("base", scenario), ("cheaper", _starter(**{"firms.focal.price.list": 9}))], 3, out=out, exp_id="compare").folder,
        "retention-effect": retention_effect(scenario, 3, gains=(0, 5, 10), out=out, exp_id="retention").folder,
    }
    for name, grid in grids.items():
        folders[name] = sweep(scenario, parse_grid(grid), 2, out=out, exp_id=name).folder
    return folders


def assert_png(path: Path) -> None:
    from matplotlib import image

    assert path.is_file(), f"{path.name} was not written"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    height, width = pixels.shape[:2]
    assert height >= 300 and width >= 400, (path.name, pixels.shape)
    assert pixels.std() > 0.01, f"{path.name} is blank"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("replications", ["bands.png", "loyalty_types.png"]),
        ("compare", ["comparison.png", "loyalty_mix.png", "differences.png"]),
        ("sweep-1", ["sweep.png"]),
        ("sweep-2", ["sweep_heatmap.png"]),
        ("sweep-3", ["sweep.png"]),
        ("retention-effect", ["retention_effect.png", "uplift_sources.png"]),
    ],
)
def test_plot_experiment_writes_the_charts_of_each_kind(experiments, name, expected):
    folder = experiments[name]
    written = plot_experiment(folder)
    assert [p.name for p in written] == expected
    assert all(p.parent == folder / "charts" for p in written)
    for path in written:
        assert_png(path)
    assert not [p for p in (folder / "charts").iterdir() if p.suffix != ".png"], "temporary files left behind"


def test_plot_experiment_writes_into_out_dir(experiments, tmp_path):
    out = tmp_path / "elsewhere" / "charts"
    written = plot_experiment(str(experiments["compare"]), out)
    assert written and all(p.parent == out and p.is_file() for p in written)


def test_importing_the_module_does_not_load_matplotlib_or_pandas():
    code = "import sys, sim.experiment_charts; print(sorted(m for m in ('matplotlib', 'pandas') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_a_folder_without_experiment_json_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not an experiment folder.*experiment.json"):
        plot_experiment(tmp_path)


@pytest.mark.parametrize("content", ['{"kind": "lottery"}', "{}", "[1, 2]"])
def test_an_unknown_kind_is_a_clear_error(tmp_path, content):
    (tmp_path / "experiment.json").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="unknown experiment kind"):
        plot_experiment(tmp_path)


def test_invalid_json_is_a_clear_error(tmp_path):
    (tmp_path / "experiment.json").write_text("{kind: ", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        plot_experiment(tmp_path)


def test_a_missing_table_is_a_clear_error_and_writes_nothing(experiments, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(experiments["compare"], folder, ignore=shutil.ignore_patterns("charts"))
    (folder / "differences.csv").unlink()
    with pytest.raises(ValueError, match="differences.csv"):
        plot_experiment(folder)
    assert not (folder / "charts").exists()


def test_step_length_and_focal_firm_come_from_the_resolved_scenario(experiments):
    from sim.experiment_charts import load_experiment

    experiment = load_experiment(experiments["replications"])
    assert experiment.kind == "replications"
    assert experiment.step_label == "step (30 days)"
    assert experiment.firms()[0] == experiment.focal() == "focal"
    info = json.loads((experiments["sweep-2"] / "experiment.json").read_text())
    assert load_experiment(experiments["sweep-2"]).focal() == info["firm"]

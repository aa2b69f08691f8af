"""Tests of sim.charts on small synthetic results folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import charts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED = ("satisfaction.png", "loyalty_types.png", "customers.png", "profit.png")
REPO_ROOT = Path(__file__).resolve().parents[1]


def _metrics(firms: list[str], steps: int, seed: int = 0) -> pd.DataFrame:
    """Plausible tidy metrics: shares sum to 1, one row per (step, firm)."""
    rng = np.random.default_rng(seed)
    rows = []
    for firm in firms:
        cumulative = 0.0
        for step in range(steps):
            sat = rng.dirichlet(np.ones(len(charts.SATISFACTION_LEVELS)))
            loy = rng.dirichlet(np.ones(len(charts.LOYALTY_TYPES)))
            profit = float(rng.normal(5.0, 20.0))
            cumulative += profit
            row = {
                "step": step,
                "day": step * 7.0,
                "firm": firm,
                "customers": int(rng.integers(50, 200)),
                "prospects": int(rng.integers(0, 100)),
                "market_share": 1.0 / len(firms),
                "acquisitions": int(rng.integers(0, 20)),
                "churned": int(rng.integers(0, 20)),
                "lost_to_rivals": 0,
                "left_category": 0,
                "retention_rate": 0.9,
                "churn_rate": 0.1,
                "satisfaction_mean": float(rng.uniform(0.6, 1.4)),
                "nps": float(rng.uniform(-50, 50)),
                "trust_mean": 0.5,
                "attachment_mean": 0.5,
                "revenue": 100.0,
                "profit": profit,
                "cumulative_profit": cumulative,
                "npv": cumulative * 0.9,
            }
            row |= {c.column: float(v) for c, v in zip(charts.SATISFACTION_LEVELS, sat)}
            row |= {c.column: float(v) for c, v in zip(charts.LOYALTY_TYPES, loy)}
            rows.append(row)
    return pd.DataFrame(rows)


def _make_run_dir(
    path: Path, firms: list[str], steps: int, focal: str | None = None, emptied: str | None = None
) -> Path:
    """A results folder; firm ``emptied`` has no customers from step 2 on (NaN means, 0 shares)."""
    path.mkdir(parents=True, exist_ok=True)
    metrics = _metrics(firms, steps)
    if emptied is not None:
        gone = (metrics["firm"] == emptied) & (metrics["step"] >= 2)
        shares = [c.column for c in (*charts.SATISFACTION_LEVELS, *charts.LOYALTY_TYPES)]
        metrics.loc[gone, ["customers", *shares]] = 0
        metrics.loc[gone, "satisfaction_mean"] = np.nan
    metrics.to_csv(path / "metrics.csv", index=False)
    focal = firms[0] if focal is None else focal
    summary = {
        "scenario": {"name": "test", "title": "Synthetic test scenario"},
        "firms": [{"name": f, "role": "focal" if f == focal else "competitor"} for f in firms],
        "run": {"seed": 7, "steps": steps - 1, "step_days": 7.0},
    }
    (path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return path


def _assert_valid_pngs(paths: list[Path], out_dir: Path) -> None:
    import matplotlib.image as mpimg

    assert sorted(p.name for p in paths) == sorted(EXPECTED)
    for path in paths:
        assert path.parent == out_dir
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = mpimg.imread(path)
        height, width = image.shape[:2]
        assert 300 <= width <= 4000 and 300 <= height <= 4000, (path.name, image.shape)
    leftovers = [p.name for p in out_dir.iterdir() if p.name not in EXPECTED]
    assert leftovers == [], "temporary files left behind"


@pytest.mark.parametrize("firms", [["Solo"], ["Focal", "Rival A", "Rival B"]])
def test_plot_run_writes_four_pngs(tmp_path: Path, firms: list[str]) -> None:
    run_dir = _make_run_dir(tmp_path / "run", firms, steps=6, emptied=firms[-1])
    paths = charts.plot_run(run_dir)
    _assert_valid_pngs(paths, run_dir / "charts")


def test_plot_run_single_step_custom_out_dir_and_overwrite(tmp_path: Path) -> None:
    run_dir = _make_run_dir(tmp_path / "run", ["Focal", "Rival"], steps=1)
    out_dir = tmp_path / "elsewhere" / "charts"
    first = charts.plot_run(str(run_dir), str(out_dir))
    _assert_valid_pngs(first, out_dir)
    second = charts.plot_run(run_dir, out_dir)  # replaces the files in place
    assert second == first
    _assert_valid_pngs(second, out_dir)


def test_load_run_puts_focal_first_and_colours_are_stable(tmp_path: Path) -> None:
    firms = ["Rival A", "Focal", "Rival B"]
    run_dir = _make_run_dir(tmp_path / "run", firms, steps=2, focal="Focal")
    run = charts.load_run(run_dir)
    assert run.firms == ["Focal", "Rival A", "Rival B"]
    assert run.focal == {"Focal"}
    assert run.xlabel == "step (7 days)"
    assert run.title == "Synthetic test scenario"
    assert run.colors == charts.firm_colors(run.firms)


def test_firm_colors_distinct_for_six_firms() -> None:
    firms = [f"F{i}" for i in range(6)]
    colors = charts.firm_colors(firms)
    assert list(colors) == firms
    assert len(set(colors.values())) == 6
    assert charts.firm_colors(firms[:2]) == {f: colors[f] for f in firms[:2]}


def test_category_constants() -> None:
    assert [c.name for c in charts.SATISFACTION_LEVELS] == [
        "dissatisfied", "generally_satisfied", "fairly_satisfied", "highly_satisfied",
    ]
    assert [c.name for c in charts.LOYALTY_TYPES] == [
        "monopoly", "inertia", "price", "incentive", "trust", "none",
    ]
    for name, color in (*charts.SATISFACTION_LEVELS, *charts.LOYALTY_TYPES):
        assert isinstance(name, str) and color.startswith("#")
    assert charts.LOYALTY_TYPES[0].column == "share_monopoly"


def test_import_and_plotting_do_not_load_pyplot(tmp_path: Path) -> None:
    run_dir = _make_run_dir(tmp_path / "run", ["Focal", "Rival"], steps=3)
    code = (
        "import sys\n"
        "import sim.charts as charts\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'\n"
        "assert 'pandas' not in sys.modules, 'pandas imported at import time'\n"
        f"charts.plot_run({str(run_dir)!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported by plot_run'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr

"""loyalty-sim report: one self-contained HTML page per results folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sim.cli import app
from sim.report import ReportError, render_report

SMALL = ["--set", "market.population=800", "--set", "market.steps=12"]


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def _images(page: str) -> list[str]:
    return re.findall(r'<img[^>]*src="([^"]+)"', page)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = _invoke("run", "scenarios/starter.yaml", *SMALL, "--out", str(out), "--run-id", "r", "-q")
    assert result.exit_code == 0, result.output
    return out / "starter" / "r"


def test_run_report_has_the_figures_and_embedded_charts(run_folder: Path):
    result = _invoke("report", str(run_folder))
    assert result.exit_code == 0, result.output
    page = (run_folder / "report.html").read_text()
    summary = json.loads((run_folder / "summary.json").read_text())
    for firm in summary["firms"]:  # every firm's customers and cumulative profit, as in summary.json
        assert f"<td>{firm['customers']:,.0f}</td>" in page
        assert f"<td>{firm['cumulative_profit']:,.0f}</td>" in page
    images = _images(page)
    charts = sorted((run_folder / "charts").glob("*.png"))
    assert len(images) == len(charts) >= 4
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    assert not list(run_folder.glob(".*.tmp"))


def test_comparison_and_lesson_reports(tmp_path: Path):
    compare = _invoke("compare", "scenarios/starter.yaml", "--variant", "cheap:firms.focal.price.list=9", "-n", "2", "-j", "1", *SMALL, "--out", str(tmp_path), "--id", "c", "-q", "--no-charts")
    assert compare.exit_code == 0, compare.output
    folder = Path(compare.output.strip())
    out = tmp_path / "handout" / "compare.html"
    assert _invoke("report", str(folder), "-o", str(out)).exit_code == 0
    page = out.read_text()
    assert "cheap" in page and "Paired difference from starter" in page
    assert len(_images(page)) >= 2  # the charts were drawn for the report

    lesson = _invoke("lesson", "case_hotel", "-n", "2", "-j", "1", "--set", "market.population=600", "--out", str(tmp_path), "--id", "l", "-q", "--no-charts")
    assert lesson.exit_code == 0, lesson.output
    page = render_report(Path(lesson.output.strip())).read_text()
    assert "For the class" in page and "The punch card raises retention" in page
    assert "loyalty-sim lesson case_hotel -n 2" in page


def test_report_errors_are_user_errors(tmp_path: Path):
    missing = _invoke("report", str(tmp_path / "nothing"))
    assert missing.exit_code == 2 and "no such results folder" in missing.output
    not_results = _invoke("report", str(tmp_path))
    assert not_results.exit_code == 2 and "not a results folder" in not_results.output
    (tmp_path / "experiment.json").write_text('{"kind": "compare"}')
    with pytest.raises(ReportError, match="summary.csv is missing"):
        render_report(tmp_path)
    assert not (tmp_path / "report.html").exists()

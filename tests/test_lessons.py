"""The teaching kit's lessons: the index is checked, and every lesson's claims hold.

Each lesson is run as written (its variants, its step windows; for the retention effect
only the gains its claims name) on a smaller market (2,000 people) with 8 paired
replications per variant; every claim must hold, that is
the 95% interval of its mean paired difference must lie above zero. The reverse of each
claim must then not hold, so the check can fail. Claims are directions, never values.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sim.cli import app
from sim.lessons import Claim, check_claim, load_lessons, run_lesson
from sim.loader import ScenarioError

LESSONS = load_lessons()
SMALL = {"market.population": 2000}
REPLICATIONS = 8
REQUIRED = {
    "expectations", "satisfied_not_loyal", "rewards_end", "switching_costs", "community", "word_of_mouth", "retention_effect",
    "case_starbucks", "case_apple", "case_haier", "case_airline", "case_hotel", "case_profit_sharing",
}


def test_the_course_lessons_are_shipped():
    assert REQUIRED <= set(LESSONS)
    for lesson in LESSONS.values():
        assert lesson.show and lesson.ask and lesson.reveal and lesson.claims
        assert lesson.scenario.is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LESSONS))
def test_lesson_claims_hold(name: str, tmp_path: Path):
    lesson = LESSONS[name]
    if lesson.kind == "retention-effect":  # the gains the claims name, not the whole curve
        lesson = replace(lesson, gains=(0.0, 5.0, 10.0))
    result = run_lesson(lesson, replications=REPLICATIONS, overrides=SMALL, out=tmp_path, jobs=1, charts=False)
    failed = [f"{c.claim.says}: {c.difference:+.4g} [{c.ci_low:+.4g}, {c.ci_high:+.4g}]" for c in result.claims if not c.holds]
    assert not failed, f"lesson {name}: claims not shown: {failed}"
    assert all(c.n == REPLICATIONS for c in result.claims)
    record = json.loads((result.folder / "lesson.json").read_text())
    assert [c["holds"] for c in record["claims"]] == [True] * len(lesson.claims)
    # the reverse of every claim between variants must fail on the same runs
    import pandas as pd

    metrics = pd.read_csv(result.folder / "metrics.csv")
    for claim in lesson.claims:
        if claim.than.constant is None:
            reverse = Claim("reverse", claim.than, claim.higher)
            assert not check_claim(reverse, metrics, result.experiment.runs, "focal").holds


def test_claim_checker_uses_the_runs(tmp_path: Path):
    """Ending the programme and keeping it swap roles: the claim that the end raises retention fails."""
    lesson = LESSONS["rewards_end"]
    swapped = replace(lesson, variants={"programme_ends": {"timeline": []}, "programme_kept": {}})
    result = run_lesson(swapped, replications=4, overrides={"market.population": 1000}, out=tmp_path, jobs=1, charts=False)
    assert not all(c.holds for c in result.claims)


def _index(tmp_path: Path, text: str) -> Path:
    (tmp_path / "index.lessons").write_text(text)
    (tmp_path / "m.yaml").write_text("name: m\nmarket: {population: 500, steps: 6}\nfirms: {a: {role: focal}, b: {}}\n")
    return tmp_path


GOOD = """\
demo:
  title: Demo
  kind: compare
  scenario: m.yaml
  variants: {base: {}, cheap: {firms.a.price.list: 8}}
  show: s
  ask: a
  reveal: r
  claims:
    - says: cheaper sells more
      higher: {variant: cheap, measure: customers}
      than: {variant: base}
"""


def test_index_mistakes_name_file_key_and_line(tmp_path: Path):
    text = GOOD.replace("  ask: a\n", "  aks: a\n").replace("variant: base}", "variant: bsae}")
    with pytest.raises(ScenarioError) as err:
        load_lessons(_index(tmp_path, text))
    messages = [str(p) for p in err.value.problems]
    assert any("index.lessons:7: demo.aks: unknown key 'aks'" in m for m in messages), messages
    assert any("demo.ask: expected a non-empty text" in m for m in messages), messages
    assert any("unknown variant 'bsae'" in m and ":12:" in m for m in messages), messages


def test_lesson_variant_with_a_bad_key_is_a_scenario_error(tmp_path: Path):
    lessons = load_lessons(_index(tmp_path, GOOD.replace("price.list: 8", "price.lst: 8")))
    with pytest.raises(ScenarioError, match="lesson demo, variant cheap.*unknown key 'lst'"):
        run_lesson(lessons["demo"], replications=2, out=tmp_path / "out", charts=False)


def test_cli_lesson_list_run_and_errors(tmp_path: Path):
    runner = CliRunner()
    listed = runner.invoke(app, ["lesson", "--list"])
    assert listed.exit_code == 0 and "expectations" in listed.output and "case_hotel" in listed.output
    unknown = runner.invoke(app, ["lesson", "expectation"])
    assert unknown.exit_code == 2 and "did you mean 'expectations'" in unknown.output
    ran = runner.invoke(app, ["lesson", "case_hotel", "-n", "2", "-j", "1", "--set", "market.population=600", "--out", str(tmp_path)])
    assert ran.exit_code == 0, ran.output
    assert "Ask the class:" in ran.output and "The punch card raises retention" in ran.output
    folder = Path(ran.output.strip().splitlines()[-1].removeprefix("results: "))
    assert (folder / "lesson.json").is_file() and (folder / "charts" / "comparison.png").is_file()
    bad = runner.invoke(app, ["lesson", "case_hotel", "--set", "market.populaton=5", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "populaton" in bad.output

"""The corpus of nasty scenario files (``tests/corpus/``), each through the real command line:
exit code 2, one ``error:`` line per problem naming the file, the line and the key path,
never a traceback, no results folder, and no code run from a YAML tag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.api import load_scenario
from sim.loader import ScenarioError

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT / "tests" / "corpus"

# file: (key path named, or None for a problem with the whole file; texts the message holds)
EXPECTED: dict[str, tuple[str | None, list[str]]] = {
    "python_object_apply.yaml": ("market.population", ["!!python/object/apply:os.system", "not allowed", "data only"]),
    "python_name_tag.yaml": ("title", ["!!python/name:os.system", "not allowed"]),
    "custom_tag.yaml": ("market", ["'!market' is not allowed"]),
    "alias_bomb.yaml": (None, ["alias bomb"]),
    "recursive_alias.yaml": (None, ["recursive"]),
    "deep_nesting.yaml": (None, ["nested more than 100 levels"]),
    "duplicate_keys.yaml": ("market.population", ["duplicate key 'population'", "line 4"]),
    "norway_firm_key.yaml": ("firms.no", ["read by YAML as the boolean false", "quote it"]),
    "bool_word_as_text.yaml": ("segments[0].name", ["YAML reads 'off' as false"]),
    "octal_number.yaml": ("market.population", ["octal number 64", "write 100"]),
    "sexagesimal_number.yaml": ("market.step_days", ["1:30", "base-60", "90"]),
    "exponent_as_text.yaml": ("market.population", ["'1e6'", "1.0e+6"]),
    "non_finite_numbers.yaml": ("firms.focal.price.list", ["finite number", "nan"]),
    "huge_integer.yaml": ("market.population", ["<= 50000000", "(400 digits)"]),
    "wrong_types.yaml": ("market.seed", ["expected an integer, got a list", "got a mapping", "'forty-two'"]),
    "unknown_keys.yaml": ("market.populaton", ["did you mean 'population'", "unknown key 'firmz'"]),
    "empty.yaml": (None, ["file is empty"]),
    "only_comments.yaml": (None, ["file is empty"]),
    "top_level_list.yaml": (None, ["top level must be a mapping"]),
    "control_character.yaml": (None, ["'\\x07' is not allowed"]),
    "nul_bytes.yaml": (None, ["'\\x00' is not allowed"]),
    "binary_junk.yaml": (None, ["not valid UTF-8"]),
    "utf16_encoded.yaml": (None, ["not valid UTF-8", "UTF-16"]),
    "latin1_encoded.yaml": (None, ["not valid UTF-8", "byte 0xe9"]),
    "traversal_scenario_name.yaml": ("name", ["letters, digits, - and _", "../../../tmp/escaped"]),
    "traversal_firm_name.yaml": ("firms['../../evil']", ["invalid key", "letters, digits"]),
    "traversal_segment_name.yaml": ("segments[0].name", ["letters, digits"]),
    "bad_merge_key.yaml": ("market", ["merge key"]),
    "timeline_hostile.yaml": ("timeline[0].at", ["after the last step", "cannot change during a run"]),
    "memory_exhaustion.yaml": (None, ["market.population: 50,000,000 people", "GB of memory", "LOYALTY_SIM_MAX_MEMORY=4GB"]),
}


def test_the_corpus_is_complete():
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.iterdir())


#: Run through ``loyalty-sim run`` one process each (the rest go through one ``validate``).
RUN_EACH = ("python_object_apply.yaml", "alias_bomb.yaml", "deep_nesting.yaml", "binary_junk.yaml", "utf16_encoded.yaml",
            "octal_number.yaml", "traversal_scenario_name.yaml", "timeline_hostile.yaml", "memory_exhaustion.yaml")
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg", "COLUMNS": "400", "LOYALTY_SIM_MAX_MEMORY": "4GB"}


def _check_lines(err: str, name: str, key: str | None, texts: list[str]) -> None:
    problems = [line for line in err.splitlines() if line.startswith("error: ") and str(CORPUS / name) in line]
    assert problems, err
    if key is not None:
        assert any(f": {key}: " in line for line in problems), err
    for text in texts:
        assert any(text in line for line in problems), (text, err)


@pytest.fixture(scope="module")
def run_results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """``loyalty-sim run FILE`` for the files of RUN_EACH, all started at once."""
    running = {}
    for name in RUN_EACH:
        cwd = tmp_path_factory.mktemp(name.replace(".", "_"))
        proc = subprocess.Popen([sys.executable, "-m", "sim", "run", str(CORPUS / name), "--out", "out"],
                                cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running[name] = (proc, cwd)
    results = {}
    for name, (proc, cwd) in running.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), cwd)
    return results


@pytest.mark.parametrize("name", RUN_EACH)
def test_nasty_files_are_clear_errors_of_run_that_write_nothing(name, run_results):
    result, cwd = run_results[name]
    key, texts = EXPECTED[name]
    err = result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err + result.stdout, err
    lines = err.splitlines()
    assert all(line.startswith("error: ") or " problem" in line for line in lines), err
    _check_lines(err, name, key, texts)
    assert not (cwd / "out").exists(), "a results folder was created"
    assert not (cwd / "PWNED").exists(), "code in a YAML tag ran"


def test_every_nasty_file_is_a_clear_error_of_validate(tmp_path):
    """One ``loyalty-sim validate`` of the whole corpus: every file refused with its own lines."""
    names = [n for n in EXPECTED if n != "memory_exhaustion.yaml"]  # valid schema: refused by run only
    result = subprocess.run([sys.executable, "-m", "sim", "validate", *(str(CORPUS / n) for n in names)],
                            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    err = result.stderr
    assert result.returncode == 2 and "Traceback" not in err + result.stdout, err
    assert all(line.startswith("error: ") or " problem" in line for line in err.splitlines()), err
    for name in names:
        _check_lines(err, name, *EXPECTED[name])
    assert not list(tmp_path.iterdir()), "validate wrote something"


@pytest.mark.parametrize("name", [n for n in EXPECTED if n != "memory_exhaustion.yaml"])
def test_each_nasty_file_is_refused_by_the_api_with_its_key_path(name):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(CORPUS / name)
    key = EXPECTED[name][0]
    paths = [p.path for p in caught.value.problems]
    assert (key in paths) if key else ("" in paths), paths
    assert all(p.line is not None or not p.path for p in caught.value.problems)

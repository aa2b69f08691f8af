"""Manifests and ``loyalty-sim verify``: every results folder is sealed by a manifest with the
sha256 of each file; a damaged or partial folder is reported, never silently read; a stored
run or experiment re-runs to the same bytes, whatever the number of workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sim.experiments as ex
import sim.manifest as mf
from sim.manifest import MANIFEST, FolderError, check_folder, read_manifest, write_manifest
from sim.model import LoyaltyModel
from sim.results import write_run
from sim.verify import verify

from conftest import make_scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = {"market": {"population": 300, "steps": 5, "seed": 4}}


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    monkeypatch.setattr(mf, "FSYNC", False)


def stored_run(out: Path, charts: bool = False) -> Path:
    spec = make_scenario(**TINY)
    return write_run(LoyaltyModel(spec, seed=9).run(), out, rid="r1", charts=charts, source="tiny.yaml", timings={"run_seconds": 0.1})


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg", "LOYALTY_SIM_FSYNC": "0"}
    return subprocess.run([sys.executable, "-m", "sim", *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_a_run_folder_carries_a_manifest_of_every_file(tmp_path):
    folder = stored_run(tmp_path)
    manifest = read_manifest(folder)
    as_run = make_scenario(market={**TINY["market"], "seed": 9})  # the scenario with the seed it ran with
    assert manifest["kind"] == "run" and manifest["seed"] == 9 and manifest["scenario_sha256"] == as_run.digest()
    assert manifest["python"] and manifest["platform"] and manifest["numpy"] == np.__version__ and manifest["package_version"]
    assert manifest["timings"] == {"run_seconds": 0.1}
    assert set(manifest["files"]) == {"scenario.yaml", "metrics.csv", "customers.csv", "summary.json"}
    assert check_folder(folder) == []
    # what changes from run to run lives only in the manifest
    summary = json.loads((folder / "summary.json").read_text())
    assert "created_utc" not in json.dumps(summary) and "run_seconds" not in json.dumps(summary)


def test_the_same_scenario_and_seed_give_identical_bytes(tmp_path):
    a, b = stored_run(tmp_path / "a"), stored_run(tmp_path / "b")
    assert read_manifest(a)["files"] == read_manifest(b)["files"]


@pytest.mark.parametrize("damage, expected", [
    (lambda f: (f / "metrics.csv").write_text("step,firm\n"), "metrics.csv: changed since it was written"),
    (lambda f: (f / "customers.csv").unlink(), "customers.csv: missing"),
    (lambda f: (f / "notes.txt").write_text("mine"), "notes.txt: not in the manifest"),
    (lambda f: (f / ".metrics.csv.abc.tmp").write_text("half"), ".metrics.csv.abc.tmp: a half-written temporary file"),
    (lambda f: (f / MANIFEST).unlink(), "no manifest.json: the folder is incomplete"),
    (lambda f: (f / MANIFEST).write_text("{\"format\": "), "manifest.json cannot be read"),
    (lambda f: (f / MANIFEST).write_text(json.dumps({"format": mf.FORMAT, "files": {"../../etc/passwd": "0"}})), "names files outside the folder"),
])
def test_a_damaged_folder_is_reported_and_never_verified(tmp_path, damage, expected):
    folder = stored_run(tmp_path)
    damage(folder)
    problems = check_folder(folder)
    assert any(expected in p for p in problems), problems
    with pytest.raises(FolderError, match=expected.split(":")[0].replace(".", r"\.")):
        verify(folder)


def test_a_stored_run_reproduces_and_a_changed_number_is_found(tmp_path):
    folder = stored_run(tmp_path)
    result = verify(folder)
    assert result.reproduces and sorted(result.same) == sorted(read_manifest(folder)["files"])
    # a folder whose numbers differ (another engine, say) but that is consistently sealed
    text = (folder / "metrics.csv").read_text().splitlines()
    text[3] = text[3].replace(",", ",1", 1)
    (folder / "metrics.csv").write_text("\n".join(text) + "\n")
    write_manifest(folder, kind="run", seed=9, scenario_sha256=make_scenario(**TINY).digest())
    result = verify(folder)
    assert not result.reproduces and result.different == ["metrics.csv"]


@pytest.mark.parametrize("kind", ["replications", "compare", "sweep", "retention-effect"])
def test_stored_experiments_reproduce_with_any_number_of_workers(tmp_path, kind):
    spec = make_scenario(**TINY)
    run = {
        "replications": lambda: ex.replicate(spec, 3, out=tmp_path, exp_id="e"),
        "compare": lambda: ex.compare([("a", spec), ("b", make_scenario(sets={"firms.focal.price.list": 12.0}, **TINY))], 2, out=tmp_path, exp_id="e"),
        "sweep": lambda: ex.sweep(spec, {"firms.focal.price.list": [9.0, 11.0], "firms.rival.price.list": [10.0, 10.5]}, 2, out=tmp_path, exp_id="e"),
        "retention-effect": lambda: ex.retention_effect(spec, 2, gains=(0, 5), out=tmp_path, exp_id="e"),
    }[kind]
    folder = run().folder
    result = verify(folder, jobs=2 if kind == "replications" else 1)  # made in one process, re-run on two workers
    assert result.reproduces, (result.different, result.missing, result.extra)
    assert len(result.same) == len(read_manifest(folder)["files"]) >= 8


def test_verify_command_exit_codes(tmp_path):
    folder = stored_run(tmp_path, charts=True)
    ok = cli("verify", folder)
    assert ok.returncode == 0 and "reproduced" in ok.stdout and "8 files identical" in ok.stdout, ok.stderr
    assert cli("verify", "--check-only", folder).returncode == 0
    (folder / "charts" / "profit.png").write_bytes(b"not a png")
    bad = cli("verify", folder)
    assert bad.returncode == 1 and "charts/profit.png: changed since it was written" in bad.stderr
    for target in (tmp_path / "nowhere", tmp_path):
        user = cli("verify", target)
        assert user.returncode == 2 and user.stderr.startswith("error: ") and len(user.stderr.splitlines()) == 1, user.stderr
    for result in (ok, bad, user):
        assert "Traceback" not in result.stderr + result.stdout

"""Interrupted experiments lose nothing: killed at any moment (SIGKILL of the parent, of a
worker, or of both), an experiment resumed with ``resume=True`` / ``--resume`` runs only
its missing runs and ends byte-identical to an uninterrupted one.

Crash points: the experiment runs in a forked child that kills itself with SIGKILL at the
k-th file write (after writing half of a temporary file, the worst moment) or just before
the folder is renamed into place, for every k up to the number of writes the experiment
makes; the parent then resumes it and compares every byte with a reference run.
``pytest tests/test_resume.py -s`` prints how many crash points were tried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import sim.experiments as ex
import sim.manifest as mf
from sim.api import load_scenario
from sim.manifest import FolderError, MANIFEST, check_folder

from conftest import make_scenario

REPO_ROOT = Path(__file__).resolve().parents[1]
# The forked children run one experiment in this process's single thread of interest and
# exit; the test runner's helper threads are never used in them.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
TINY = {"market": {"population": 300, "steps": 5, "seed": 11}}


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    """Durability against power cuts is not what these tests are about; skip the disk flushes."""
    monkeypatch.setattr(mf, "FSYNC", False)


def tiny():
    return make_scenario(**TINY)


EXPERIMENTS = {
    "replications": lambda out, **kw: ex.replicate(tiny(), 3, out=out, exp_id="x", **kw),
    "sweep": lambda out, **kw: ex.sweep(tiny(), {"firms.focal.price.list": [9.0, 11.0]}, 2, out=out, exp_id="x", **kw),
    "retention-effect": lambda out, **kw: ex.retention_effect(tiny(), 2, gains=(0, 5), out=out, exp_id="x", **kw),
    "compare": lambda out, **kw: ex.compare([("a", tiny()), ("b", make_scenario(sets={"firms.focal.price.list": 12.0}, **TINY))], 2, out=out, exp_id="x", **kw),
}


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the manifest (its time differs); plus the manifest's file table."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    files["<manifest files>"] = json.dumps(json.loads((folder / MANIFEST).read_text())["files"], sort_keys=True).encode()
    return files


@contextmanager
def crash_at(k: int | None, counter: list[int]):
    """Count file writes; with ``k``, SIGKILL this process at write k (leaving a half-written
    temporary file) or, for k = writes + 1, just before the finished folder is renamed."""
    real_open, real_replace = mf.atomic_open, os.replace

    @contextmanager
    def dying_open(path, mode="wb", **kwargs):
        counter[0] += 1
        if counter[0] == k:
            fd, _ = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=mf.TMP_SUFFIX, dir=Path(path).parent)
            os.write(fd, b"step,firm,custo")
            os.kill(os.getpid(), signal.SIGKILL)
        with real_open(path, mode, **kwargs) as fh:
            yield fh

    def dying_replace(src, dst, *args, **kwargs):
        if str(src).endswith(ex.PARTIAL_SUFFIX):
            counter[0] += 1
            if counter[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    mf.atomic_open, ex.atomic_open, os.replace = dying_open, dying_open, dying_replace
    try:
        yield
    finally:
        mf.atomic_open, ex.atomic_open, os.replace = real_open, real_open, real_replace


def killed_child(kind: str, out: Path, k: int) -> int:
    """Run the experiment in a forked child that dies at crash point k; its wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            with crash_at(k, [0]):
                EXPERIMENTS[kind](out)
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    return _wait(pid)


def _wait(pid: int, timeout: float = 120) -> int:
    """The child's wait status; a child that hangs is killed (and the test fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked experiment hung")


def _resume_and_compare(kind: str, out: Path, k: int, expected: dict[str, bytes], writes: int) -> None:
    status = killed_child(kind, out, k)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, status)
    parents = list(out.glob("*"))
    assert len(parents) == 1 and not (parents[0] / "x").exists(), "a killed experiment must not leave a finished-looking folder"
    resumed = EXPERIMENTS[kind](out, resume=True).folder
    assert resumed == parents[0] / "x"
    assert folder_bytes(resumed) == expected, f"crash point {k} of {writes}"
    assert check_folder(resumed) == []
    assert not list(resumed.parent.glob(".*")), "the partial folder is gone once resumed"


def _reference(kind: str, out: Path) -> tuple[dict[str, bytes], int]:
    counter = [0]
    with crash_at(None, counter):
        reference = EXPERIMENTS[kind](out).folder
    return folder_bytes(reference), counter[0]


@pytest.mark.parametrize("kind", ["replications", "retention-effect"])
def test_killed_at_every_write_resumes_byte_identical(kind, tmp_path):
    """Every file write (plan, each run, each table, the manifest) and the final rename."""
    expected, writes = _reference(kind, tmp_path / "reference")
    assert writes >= 8
    for k in range(1, writes + 1):
        _resume_and_compare(kind, tmp_path / f"k{k}", k, expected, writes)
    print(f"\n{kind}: {writes} crash points tried, each resumed byte-identical")


@pytest.mark.parametrize("kind", ["sweep", "compare"])
def test_killed_mid_runs_and_while_finishing_resumes_byte_identical(kind, tmp_path):
    """The same machinery: one crash point among the runs, one in the tables, one at the rename."""
    expected, writes = _reference(kind, tmp_path / "reference")
    points = (3, writes - 3, writes)
    for k in points:
        _resume_and_compare(kind, tmp_path / f"k{k}", k, expected, writes)
    print(f"\n{kind}: {len(points)} crash points tried, each resumed byte-identical")


def test_only_the_missing_runs_are_run_again(tmp_path, monkeypatch):
    status = killed_child("replications", tmp_path, 3)  # writes: plan, r0000, r0001 <- dies here
    assert os.WTERMSIG(status) == signal.SIGKILL
    ran: list[str] = []
    real = ex.execute
    monkeypatch.setattr(ex, "execute", lambda spec: (ran.append(spec.run_id), real(spec))[1])
    EXPERIMENTS["replications"](tmp_path, resume=True)
    assert ran == ["r0001", "r0002"]


def test_a_damaged_run_file_is_run_again_with_a_warning(tmp_path, caplog):
    killed_child("replications", tmp_path, 4)  # plan and two runs written
    partial = next(tmp_path.glob("*/.x.partial"))
    run_file = partial / "runs" / "r0000.csv"
    run_file.write_text(run_file.read_text()[:200])  # cut short by hand
    reference = EXPERIMENTS["replications"](tmp_path / "reference").folder
    resumed = EXPERIMENTS["replications"](tmp_path, resume=True).folder
    assert "runs/r0000.csv" in caplog.text and "running it again" in caplog.text
    assert folder_bytes(resumed) == folder_bytes(reference)


def test_resume_refuses_a_different_experiment_and_a_plain_start_refuses_a_partial_one(tmp_path):
    killed_child("replications", tmp_path, 3)
    with pytest.raises(ex.ExperimentError, match="interrupted experiment x.*--resume"):
        EXPERIMENTS["replications"](tmp_path)
    with pytest.raises(ex.ExperimentError, match="different experiment.*replications"):
        ex.replicate(tiny(), 5, out=tmp_path, exp_id="x", resume=True)
    with pytest.raises(ex.ExperimentError, match="different experiment.*(seed|runs)"):
        ex.replicate(tiny(), 3, out=tmp_path, exp_id="x", seed=99, resume=True)
    with pytest.raises(ex.ExperimentError, match="nothing to resume"):
        ex.replicate(tiny(), 3, out=tmp_path, exp_id="never", resume=True)


def test_resume_without_an_id_finds_the_one_interrupted_experiment(tmp_path):
    pid = os.fork()
    if pid == 0:
        with crash_at(3, [0]):
            ex.replicate(tiny(), 3, out=tmp_path)
        os._exit(0)
    _wait(pid)
    resumed = ex.replicate(tiny(), 3, out=tmp_path, resume=True).folder
    assert resumed.name.endswith("-replications-s11") and check_folder(resumed) == []
    with pytest.raises(ex.ExperimentError, match="nothing to resume"):
        ex.replicate(tiny(), 3, out=tmp_path, resume=True)


def test_resuming_a_finished_experiment_checks_it_and_returns_it(tmp_path):
    done = EXPERIMENTS["replications"](tmp_path).folder
    again = EXPERIMENTS["replications"](tmp_path, resume=True)
    assert again.folder == done and len(again.runs) == 6
    (done / "summary.csv").write_text("tampered\n")
    with pytest.raises(FolderError, match="summary.csv: changed"):
        EXPERIMENTS["replications"](tmp_path, resume=True)


# --------------------------------------------------------------------------- real processes


def _cli(*args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "MPLBACKEND": "Agg", "LOYALTY_SIM_FSYNC": "0"}
    return subprocess.Popen([sys.executable, "-m", "sim", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, **kwargs)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for_runs(partial: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((partial / "runs").glob("r*.csv"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"the experiment ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.02)
    pytest.fail("no runs written in time")


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(), reason="needs /proc/PID/task/PID/children to find the worker processes")
def test_killing_a_worker_then_the_parent_and_its_workers_loses_nothing(tmp_path):
    scenario = tmp_path / "market.yaml"
    scenario.write_text("name: market\nmarket: {population: 3000, steps: 24, seed: 5}\n"
                        "firms:\n  focal: {role: focal, initial_share: 0.3}\n  rival: {initial_share: 0.3}\n")
    common = ("run", scenario, "-n", "8", "--no-charts", "-q", "--out", tmp_path / "out", "--id", "x")
    partial = tmp_path / "out" / "market" / ".x.partial"

    # 1. SIGKILL one worker: the parent stops with a clear message and keeps the finished runs
    proc = _cli(*common, "--jobs", "2")
    _wait_for_runs(partial, 1, proc)
    workers = [c for c in _children(proc.pid) if "spawn" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "worker process died" in err and "--resume" in err and "Traceback" not in err, err
    kept = len(list((partial / "runs").glob("r*.csv")))
    assert 1 <= kept < 8

    # 2. resume, and SIGKILL the parent and every worker at once part-way
    proc = _cli(*common, "--jobs", "2", "--resume")
    _wait_for_runs(partial, kept + 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (tmp_path / "out" / "market" / "x").exists()

    # 3. resume in this process (one worker): identical to an uninterrupted run in one process
    spec = load_scenario(scenario)
    resumed = ex.replicate(spec, 8, out=tmp_path / "out", exp_id="x", resume=True).folder
    reference = ex.replicate(spec, 8, out=tmp_path / "ref", exp_id="x").folder
    assert folder_bytes(resumed).keys() == folder_bytes(reference).keys()
    assert folder_bytes(resumed) == folder_bytes(reference)

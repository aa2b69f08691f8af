"""Experiments: replications, strategy comparisons, sweeps and the retention effect.

Every experiment is a list of runs (:class:`RunSpec`): a scenario, a seed, and the
labels that say which variant, replication and parameter values it is. Runs go to an
executor (in-process, local worker processes, or a Dask cluster) and come back in any
order; each run's metrics are written to ``runs/<run_id>.csv`` as soon as it arrives,
so memory stays bounded. Tables and intervals are then computed by reading those files
in run order, which makes the results byte-identical whatever the executor and the
number of workers.

Replication ``r`` uses the same seed in every variant of an experiment (common random
numbers), so differences between variants come from strategy, not luck. Seeds are
spawned from the scenario's seed with numpy's ``SeedSequence``.

Folder layout (``results/<name>/<experiment-id>/``)::

    experiment.json   kind, variants, seeds, parameters, package version, scenario hashes
    plan.json         what identifies the experiment (every run's id, seed, scenario hash): --resume checks it
    manifest.json     versions, platform, time and the sha256 of every other file (sim.manifest)
    scenarios/        the resolved scenario of each variant
    runs/             one metrics table per run
    metrics.csv       every run's metrics, one row per run, step and firm
    runs.csv          one row per run and firm: the run's outcomes
    summary.csv       per variant (and parameter point) and firm: mean and 95% interval of each outcome
    bands.csv         per variant, firm and step: mean and 95% interval of the key measures over time

The folder is assembled in a hidden sibling ``.<experiment-id>.partial`` and renamed into
place when complete; an interrupted experiment is finished with ``resume=True`` (see
:func:`run_experiment`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sim import __version__
from sim.manifest import TMP_SUFFIX, atomic_csv, atomic_open, atomic_write_json, atomic_write_text, fsync_dir, require_intact, write_manifest
from sim.scenario import Scenario, set_key_path

#: Per-run outcomes (one value per run and firm) and how each is read off the metrics table.
OUTCOMES = (
    "customers",
    "market_share",
    "profit_last_year",
    "cumulative_profit",
    "npv",
    "retention_rate_annual",
    "retention_rate_run",
    "repeat_purchase_rate",
    "satisfaction_avg_mean",
    "nps",
    "clv",
    "customer_equity",
    "share_monopoly",
    "share_inertia",
    "share_price",
    "share_incentive",
    "share_trust",
    "share_none",
)
#: Measures whose mean path over time (with its interval) is kept for charts.
BAND_MEASURES = (
    "customers",
    "acquisitions",
    "churned",
    "profit",
    "cumulative_profit",
    "retention_rate",
    "satisfaction_avg_mean",
    "nps",
    "share_dissatisfied",
    "share_generally_satisfied",
    "share_fairly_satisfied",
    "share_highly_satisfied",
    "share_monopoly",
    "share_inertia",
    "share_price",
    "share_incentive",
    "share_trust",
    "share_none",
)
ID_COLUMNS = ("run_id", "variant", "replication", "seed")
CONFIDENCE = 0.95
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment."""

    run_id: str
    variant: str
    replication: int
    seed: int
    scenario: Scenario
    params: tuple[tuple[str, Any], ...] = ()
    retention_floor: tuple[float, ...] | None = None  # the retention-effect counterfactual


def replication_seeds(base_seed: int, replications: int) -> list[int]:
    """Independent seeds for ``replications`` runs, spawned from ``base_seed``."""
    children = np.random.SeedSequence(base_seed).spawn(replications)
    return [int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for child in children]


def execute(spec: RunSpec, threads: int | None = None) -> tuple[str, pd.DataFrame]:
    """Run one spec to the end and return its metrics with the run's labels as columns;
    ``threads`` share each step (default: :func:`sim.parallel.default_threads`)."""
    from sim.model import LoyaltyModel

    floor = None if spec.retention_floor is None else np.array(spec.retention_floor)
    model = LoyaltyModel(spec.scenario, seed=spec.seed, retention_floor=floor, threads=threads)
    model.run()
    metrics = model.metrics_frame()
    labels = {"run_id": spec.run_id, "variant": spec.variant, "replication": spec.replication, "seed": spec.seed, **dict(spec.params)}
    for position, (name, value) in enumerate(labels.items()):
        metrics.insert(position, name, value)
    return spec.run_id, metrics


# --------------------------------------------------------------------------- executors


class Executor:
    """Runs specs and yields (run_id, metrics) as they finish, in any order."""

    workers = 1

    def map(self, specs: Sequence[RunSpec]) -> Iterator[tuple[str, pd.DataFrame]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs in this process, one after another."""

    def map(self, specs):
        for spec in specs:
            yield execute(spec)


class ProcessExecutor(Executor):
    """Local worker processes (``jobs`` of them), which share the cores: each runs its steps
    on cores / jobs threads (at least one)."""

    def __init__(self, jobs: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from sim.parallel import available_cores, set_default_threads

        self.workers = jobs
        self._pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=set_default_threads, initargs=(max(1, available_cores() // jobs),),
        )

    def map(self, specs):
        from concurrent.futures import as_completed

        futures = [self._pool.submit(execute, spec) for spec in specs]
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class DaskExecutor(Executor):
    """An existing Dask cluster, reached through its scheduler address (needs the `dask` extra)."""

    def __init__(self, address: str, timeout: float = 10.0):
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ExperimentError("running on a Dask cluster needs the dask extra: pip install 'loyalty-sim[dask]'") from exc
        try:
            self._client = Client(address, timeout=f"{timeout}s")
        except (OSError, ValueError, TimeoutError) as exc:
            raise ExperimentError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
        self.workers = max(1, sum(self._client.nthreads().values()))

    def map(self, specs):
        from distributed import as_completed

        futures = self._client.map(execute, list(specs), pure=False, threads=1)  # a Dask worker runs a task per thread
        for future in as_completed(futures):
            yield future.result()

    def close(self) -> None:
        self._client.close()


def make_executor(jobs: int = 1, scheduler: str | None = None) -> Executor:
    if scheduler:
        return DaskExecutor(scheduler)
    if jobs <= 1:
        return SerialExecutor()
    return ProcessExecutor(jobs)


class ExperimentError(Exception):
    """A user-facing problem with an experiment (bad grid, unreachable scheduler ...)."""


# --------------------------------------------------------------------------- outcomes and intervals


def run_outcomes(metrics: pd.DataFrame, steps_per_year: float) -> pd.DataFrame:
    """One row per firm of a run's metrics: the outcomes of :data:`OUTCOMES`."""
    last = int(metrics["step"].max())
    window = max(1, int(round(steps_per_year)))
    rows = []
    for firm, own in metrics.groupby("firm", sort=False):
        own = own.sort_values("step")
        end = own.iloc[-1]
        recent = own[own["step"] > max(0, last - window)]
        stepped = own[own["step"] >= 1]
        row = {c: end[c] for c in own.columns[: own.columns.get_loc("step")]}  # run id, variant, replication, seed, parameters
        row["firm"] = firm
        row["customers"] = end["customers"]
        row["market_share"] = end["market_share"]
        row["profit_last_year"] = recent["profit"].sum()
        row["cumulative_profit"] = end["cumulative_profit"]
        row["npv"] = end["npv"]
        row["retention_rate_annual"] = recent["retention_rate"].mean() ** steps_per_year if len(recent) else 1.0
        row["retention_rate_run"] = stepped["retention_rate"].mean() ** steps_per_year if len(stepped) else 1.0
        for name in ("repeat_purchase_rate", "satisfaction_avg_mean", "nps", "clv", "customer_equity"):
            row[name] = end[name]
        for name in OUTCOMES:
            if name.startswith("share_"):
                row[name] = end[name]
        rows.append(row)
    return pd.DataFrame(rows)


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and the 95% confidence interval of the mean (Student's t)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    n = values.size
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half


def summarise(runs: pd.DataFrame, by: Sequence[str], outcomes: Sequence[str] = OUTCOMES) -> pd.DataFrame:
    """Per group: n, and mean / ci_low / ci_high of each outcome."""
    rows = []
    for key, group in runs.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n"] = len(group)
        for name in outcomes:
            mean, low, high = interval(group[name].to_numpy())
            row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = mean, low, high
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the experiment folder


@dataclass
class ExperimentResult:
    """What an experiment produced: its folder and its tables (pandas)."""

    folder: Path
    kind: str
    runs: pd.DataFrame
    summary: pd.DataFrame
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def metrics(self) -> pd.DataFrame:
        """Every run's per-step metrics (read from disk)."""
        return pd.read_csv(self.folder / "metrics.csv")

    def bands(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "bands.csv")


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_csv(frame, path, float_format="%.10g")


def experiment_id(kind: str, seed: int) -> str:
    """A folder name that sorts by time (to the microsecond) and names the kind and base seed."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S-%f}-{kind}-s{seed}"


PARTIAL_SUFFIX = ".partial"
PLAN = "plan.json"


def partial_folder(final: Path) -> Path:
    """Where the experiment that will end up in ``final`` is assembled (a hidden sibling)."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


def _plan(kind: str, name: str, specs: Sequence[RunSpec], meta: dict[str, Any] | None) -> dict[str, Any]:
    """What identifies an experiment: a resumed one must have exactly the same plan."""
    return json.loads(json.dumps({
        "kind": kind,
        "name": name,
        "meta": meta or {},
        "runs": [
            {"run_id": s.run_id, "variant": s.variant, "replication": s.replication, "seed": s.seed,
             "scenario_sha256": s.scenario.digest(), "params": [list(p) for p in s.params]}
            for s in specs
        ],
    }, default=str))


def _plan_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The first key path where two plans differ, as text."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in old or key not in new:
                return f"{path}{key}"
            found = _plan_difference(old[key], new[key], f"{path}{key}.")
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return f"{path.rstrip('.')} (had {len(old)} entries, now {len(new)})"
        for i, (a, b) in enumerate(zip(old, new)):
            found = _plan_difference(a, b, f"{path.rstrip('.')}[{i}].")
            if found:
                return found
        return None
    return None if old == new else f"{path.rstrip('.')} (was {old!r}, now {new!r})"


def _find_partial(parent: Path, kind: str, base_seed: Any) -> Path:
    """The one interrupted experiment of this kind and seed under ``parent`` (resume without --id)."""
    found = sorted(parent.glob(f".*-{kind}-s{base_seed}{PARTIAL_SUFFIX}")) if parent.is_dir() else []
    if not found:
        raise ExperimentError(f"nothing to resume: no interrupted {kind} experiment with seed {base_seed} under {parent} (run it without --resume)")
    if len(found) > 1:
        names = ", ".join(p.name[1 : -len(PARTIAL_SUFFIX)] for p in found)
        raise ExperimentError(f"several interrupted {kind} experiments under {parent}: {names}; choose one with --id")
    return found[0]


def _complete_run_file(path: Path, spec: RunSpec) -> bool:
    """Is ``path`` the whole metrics table of ``spec`` (its run id and seed, every step of every firm)?"""
    try:
        metrics = pd.read_csv(path)
    except Exception:  # noqa: BLE001 - any unreadable file is simply run again
        return False
    expected_rows = (spec.scenario.market.steps + 1) * len(spec.scenario.firms)
    return (
        len(metrics) == expected_rows
        and {"run_id", "seed", "step", "firm"} <= set(metrics.columns)
        and bool((metrics["run_id"].astype(str) == spec.run_id).all())
        and bool((metrics["seed"] == spec.seed).all())
    )


def run_experiment(
    kind: str,
    specs: list[RunSpec],
    out_root: str | Path,
    name: str,
    *,
    executor: Executor | None = None,
    exp_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    meta: dict[str, Any] | None = None,
    then: Callable[[Path], tuple[list[RunSpec], dict[str, Any]]] | None = None,
    total: int | None = None,
    finish: Callable[[Path, pd.DataFrame], dict[str, pd.DataFrame]] | None = None,
    resume: bool = False,
) -> tuple[Path, pd.DataFrame]:
    """Run every spec on ``executor``, stream each run's metrics to disk, and write the
    experiment's tables. Returns the folder and the per-run outcomes table.

    ``then``, if given, is called with the folder of the finished runs' metrics once the
    first specs are done and returns a second pass of specs (and extra metadata); ``total``
    is the number of runs in both passes, for progress. ``finish``, if given, writes the
    experiment's own tables into the folder (called with it and the outcomes table).

    The folder is assembled in a hidden sibling ``.<id>.partial`` (with ``plan.json``, what
    identifies the experiment) and renamed into place, sealed by ``manifest.json``, when
    complete. If the process dies, the partial folder keeps every finished run; with
    ``resume=True`` the same experiment (same plan; ``exp_id`` may be left out when one
    interrupted experiment of this kind and seed exists) runs only its missing runs and ends
    byte-identical to an uninterrupted one. Resuming a finished experiment checks its folder
    and returns it. The caller closes the executor."""
    from sim.results import safe_component

    executor = executor or SerialExecutor()
    parent = Path(out_root) / safe_component(name)
    base_seed = (meta or {}).get("base_seed", specs[0].seed if specs else 0)
    plan = _plan(kind, name, specs, meta)
    if resume and exp_id is None:
        partial = _find_partial(parent, kind, base_seed)
        final = partial.with_name(partial.name[1 : -len(PARTIAL_SUFFIX)])
    else:
        final = parent / safe_component(exp_id or experiment_id(kind, base_seed))
        partial = partial_folder(final)
    if final.exists():
        if not resume:
            raise FileExistsError(f"results folder {final} already exists")
        require_intact(final)
        _check_plan(final, plan)
        return final, pd.read_csv(final / "runs.csv")
    if partial.exists() and not resume:
        raise ExperimentError(f"an interrupted experiment {final.name} is in {partial}: add --resume to finish it, or delete that folder to start again")
    if resume and not partial.exists():
        raise ExperimentError(f"nothing to resume: {final} was never started (no {partial.name}); run it without --resume")
    variants: dict[str, Scenario] = {}
    for spec in specs:
        variants.setdefault(spec.variant, spec.scenario)
    from sim.limits import resource_problem

    at_once = max(1, min(getattr(executor, "workers", 1), len(specs))) if isinstance(executor, ProcessExecutor) else 1
    for variant, scenario in variants.items():
        problem = resource_problem(scenario, copies=at_once)
        if problem is not None:
            raise ExperimentError(f"{variant}: market.population: {problem}")
    files = [safe_component(v) for v in variants]
    if len(set(files)) < len(files):
        raise ExperimentError(f"variant names {list(variants)} do not give distinct file names; use letters, digits, - and _")
    parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir(exist_ok=True)
    if (partial / PLAN).is_file():
        _check_plan(partial, plan)
    else:
        atomic_write_json(partial / PLAN, plan)
    for leftover in partial.rglob(f".*{TMP_SUFFIX}"):
        leftover.unlink()
    (partial / "runs").mkdir(exist_ok=True)
    (partial / "scenarios").mkdir(exist_ok=True)
    total = total or len(specs)
    done = 0

    def run_pass(batch: list[RunSpec]) -> None:
        nonlocal done
        todo = []
        for spec in batch:
            path = partial / "runs" / f"{spec.run_id}.csv"
            if path.exists() and _complete_run_file(path, spec):
                done += 1
                continue
            if path.exists():
                log.warning("runs/%s.csv in %s is damaged or incomplete: running it again", spec.run_id, partial)
                path.unlink()
            todo.append(spec)
        if progress is not None and done:
            progress(done, total)
        for run_id, metrics in executor.map(todo):
            _atomic_csv(metrics, partial / "runs" / f"{run_id}.csv")
            done += 1
            if progress is not None:
                progress(done, total)

    run_pass(specs)
    if then is not None:
        more, extra = then(partial / "runs")
        run_pass(more)
        specs = [*specs, *more]
        meta = {**(meta or {}), **extra}
        for spec in more:
            variants.setdefault(spec.variant, spec.scenario)
    for variant, scenario in variants.items():
        atomic_write_text(partial / "scenarios" / f"{safe_component(variant)}.yaml", yaml.safe_dump(scenario.resolved(), sort_keys=False, allow_unicode=True))
    runs = _collect(specs, partial)
    info = {
        "kind": kind,
        "name": name,
        "package_version": __version__,
        "runs": len(specs),
        "variants": {v: {"scenario": s.name, "sha256": s.digest()} for v, s in variants.items()},
        "seeds": sorted({spec.seed for spec in specs}, key=[spec.seed for spec in specs].index),
        **(meta or {}),
    }
    atomic_write_json(partial / "experiment.json", info)
    if finish is not None:
        finish(partial, runs)
    write_manifest(partial, kind=kind, seed=base_seed, scenario_sha256={v: s.digest() for v, s in variants.items()})
    fsync_dir(partial)
    os.replace(partial, final)
    fsync_dir(parent)
    return final, runs


def _check_plan(folder: Path, plan: dict[str, Any]) -> None:
    try:
        old = json.loads((folder / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"{folder / PLAN} cannot be read ({exc}): the folder is damaged; delete it to start again") from None
    where = _plan_difference(old, plan)
    if where is not None:
        raise ExperimentError(f"{folder} holds a different experiment: it differs at {where}; give another --id to start a new one")


def _collect(specs: list[RunSpec], folder: Path) -> pd.DataFrame:
    """Combine the per-run files in run order: metrics.csv, runs.csv, bands.csv."""
    outcome_rows = []
    bands: dict[tuple[str, str], dict[str, Any]] = {}
    param_names = [name for name, _ in specs[0].params] if specs else []
    with atomic_open(folder / "metrics.csv", "w", encoding="utf-8", newline="") as combined:
        for position, spec in enumerate(specs):
            path = folder / "runs" / f"{spec.run_id}.csv"
            text = path.read_text(encoding="utf-8")
            combined.write(text if position == 0 else text.split("\n", 1)[1])
            metrics = pd.read_csv(path)
            steps_per_year = 365.0 / spec.scenario.market.step_days
            outcome_rows.append(run_outcomes(metrics, steps_per_year))
            for firm, own in metrics.groupby("firm", sort=False):
                values = own.sort_values("step")[list(BAND_MEASURES)].to_numpy(dtype=np.float64)
                acc = bands.setdefault((spec.variant, firm), {"n": 0, "sum": np.zeros_like(values), "sq": np.zeros_like(values), "steps": own["step"].to_numpy()})
                acc["n"] += 1
                acc["sum"] += values
                acc["sq"] += values**2
    runs = pd.concat(outcome_rows, ignore_index=True)
    _atomic_csv(runs, folder / "runs.csv")
    _atomic_csv(summarise(runs, ["variant", *param_names, "firm"]), folder / "summary.csv")
    _atomic_csv(_bands_frame(bands), folder / "bands.csv")
    return runs


def _bands_frame(bands: dict[tuple[str, str], dict[str, Any]]) -> pd.DataFrame:
    from scipy import stats

    frames = []
    for (variant, firm), acc in bands.items():
        n = acc["n"]
        mean = acc["sum"] / n
        var = np.maximum(acc["sq"] / n - mean**2, 0.0) * (n / (n - 1) if n > 1 else 0.0)
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.sqrt(var / n) if n > 1 else np.zeros_like(mean)
        frame = pd.DataFrame({"variant": variant, "firm": firm, "step": acc["steps"], "n": n})
        for j, name in enumerate(BAND_MEASURES):
            frame[f"{name}_mean"] = mean[:, j]
            frame[f"{name}_ci_low"] = mean[:, j] - half[:, j]
            frame[f"{name}_ci_high"] = mean[:, j] + half[:, j]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- the four experiments


def _run_ids(n: int) -> list[str]:
    width = max(4, len(str(n - 1)))
    return [f"r{i:0{width}d}" for i in range(n)]


def replicate(
    scenario: Scenario,
    replications: int,
    *,
    out: str | Path = "results",
    jobs: int = 1,
    scheduler: str | None = None,
    seed: int | None = None,
    exp_id: str | None = None,
    progress=None,
    resume: bool = False,
) -> ExperimentResult:
    """``replications`` independent runs of one scenario: intervals on every outcome."""
    if replications < 1:
        raise ExperimentError("replications must be at least 1")
    seeds = replication_seeds(scenario.market.seed if seed is None else seed, replications)
    ids = _run_ids(replications)
    specs = [RunSpec(ids[r], scenario.name, r, seeds[r], scenario) for r in range(replications)]
    with make_executor(jobs, scheduler) as executor:
        folder, runs = run_experiment(
            "replications", specs, out, scenario.name, executor=executor, exp_id=exp_id, progress=progress, resume=resume,
            meta={"base_seed": scenario.market.seed if seed is None else seed, "replications": replications},
        )
    return ExperimentResult(folder, "replications", runs, pd.read_csv(folder / "summary.csv"))


def paired_differences(runs: pd.DataFrame, baseline: str, outcomes: Sequence[str] = OUTCOMES, relative: bool = False) -> pd.DataFrame:
    """Per variant other than ``baseline`` and per firm: the mean difference from the baseline
    (or relative uplift) of each outcome over paired replications, with its 95% interval and
    whether the interval excludes zero."""
    base = runs[runs["variant"] == baseline].set_index(["replication", "firm"])
    rows = []
    for variant, group in runs[runs["variant"] != baseline].groupby("variant", sort=False):
        paired = group.set_index(["replication", "firm"]).join(base[list(outcomes)].add_suffix("__base"), how="inner")
        for firm, own in paired.groupby(level="firm", sort=False):
            row = {"variant": variant, "baseline": baseline, "firm": firm, "n": len(own)}
            for name in outcomes:
                diff = own[name].to_numpy(dtype=float) - own[f"{name}__base"].to_numpy(dtype=float)
                if relative:
                    diff = diff / np.maximum(np.abs(own[f"{name}__base"].to_numpy(dtype=float)), 1e-12)
                mean, low, high = interval(diff)
                row[f"{name}_diff"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = mean, low, high
                row[f"{name}_significant"] = bool(low > 0 or high < 0)
            rows.append(row)
    return pd.DataFrame(rows)


def compare(
    scenarios: Sequence[tuple[str, Scenario]],
    replications: int,
    *,
    out: str | Path = "results",
    jobs: int = 1,
    scheduler: str | None = None,
    seed: int | None = None,
    exp_id: str | None = None,
    progress=None,
    resume: bool = False,
) -> ExperimentResult:
    """Two or more (label, scenario) variants run with common random numbers: replication r
    uses the same seed in every variant. The first variant is the baseline of the differences."""
    if len(scenarios) < 2:
        raise ExperimentError("compare needs at least two scenarios or variants")
    labels = [label for label, _ in scenarios]
    if len(set(labels)) != len(labels):
        raise ExperimentError(f"variant names must differ, got {labels}")
    base_seed = scenarios[0][1].market.seed if seed is None else seed
    seeds = replication_seeds(base_seed, replications)
    ids = _run_ids(len(scenarios) * replications)
    specs = [
        RunSpec(ids[v * replications + r], label, r, seeds[r], scenario)
        for v, (label, scenario) in enumerate(scenarios)
        for r in range(replications)
    ]
    name = "compare-" + "-vs-".join(labels)[:48]
    with make_executor(jobs, scheduler) as executor:
        folder, runs = run_experiment(
            "compare", specs, out, name, executor=executor, exp_id=exp_id, progress=progress, resume=resume,
            meta={"base_seed": base_seed, "replications": replications, "baseline": labels[0]},
            finish=lambda folder, runs: _atomic_csv(paired_differences(runs, labels[0]), folder / "differences.csv"),
        )
    differences = pd.read_csv(folder / "differences.csv")
    return ExperimentResult(folder, "compare", runs, pd.read_csv(folder / "summary.csv"), {"differences": differences})


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """``KEY=START:STOP:COUNT`` (evenly spaced, both ends included) or ``KEY=V1,V2,...``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, spec = item.partition("=")
        key = key.strip()
        if not sep or not key or not spec.strip():
            raise ExperimentError(f"--set {item!r}: expected KEY=START:STOP:COUNT or KEY=V1,V2,...")
        if key in grid:
            raise ExperimentError(f"--set {key} is given twice")
        if ":" in spec:
            parts = spec.split(":")
            try:
                start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
                if len(parts) != 3 or count < 1:
                    raise ValueError
            except (ValueError, IndexError):
                raise ExperimentError(f"--set {item!r}: a range is START:STOP:COUNT with COUNT >= 1, e.g. 0.01:0.10:10") from None
            values = np.linspace(start, stop, count)
            whole = float(start).is_integer() and float(stop).is_integer() and np.allclose(values, np.round(values))
            grid[key] = [int(round(v)) if whole else float(round(v, 12)) for v in values]
        else:
            grid[key] = [_grid_value(item, key, v) for v in spec.split(",")]
    if not grid:
        raise ExperimentError("a sweep needs at least one --set KEY=... to vary")
    return grid


def _grid_value(item: str, key: str, text: str) -> Any:
    """One listed value of a --set KEY=V1,V2,... (read like a value in a scenario file)."""
    from sim.loader import ScenarioError, read_value

    if not text.strip():
        return None
    try:
        return read_value(text, f"--set {key}")
    except ScenarioError as exc:
        if any("YAML 1.1" in p.message or "not allowed" in p.message for p in exc.problems):
            raise ExperimentError(f"--set {item!r}: {exc.problems[0].message}") from None
        return text


def _with_overrides(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """The scenario with dotted keys changed, validated again (errors name the key)."""
    from sim.api import scenario_from_dict
    from sim.loader import ScenarioError

    data = scenario.model_dump(mode="python")
    try:
        for key, value in overrides.items():
            set_key_path(data, key, value)
    except KeyError as exc:
        raise ExperimentError(str(exc.args[0])) from None
    try:
        return scenario_from_dict(data, source=f"{scenario.name} with {overrides}")
    except ScenarioError as exc:
        raise ExperimentError("; ".join(f"{p.path}: {p.message}" for p in exc.problems)) from None


def sweep(
    scenario: Scenario,
    grid: dict[str, list[Any]],
    replications: int,
    *,
    outcome: str = "npv",
    firm: str | None = None,
    out: str | Path = "results",
    jobs: int = 1,
    scheduler: str | None = None,
    seed: int | None = None,
    exp_id: str | None = None,
    progress=None,
    resume: bool = False,
) -> ExperimentResult:
    """Every combination of the ``grid`` values, ``replications`` runs each (the same seeds at
    every point). Reports the best point by ``outcome`` for ``firm`` (default: the focal firm)."""
    import itertools

    if outcome not in OUTCOMES:
        raise ExperimentError(f"unknown outcome {outcome!r}; choose one of {', '.join(OUTCOMES)}")
    firm = firm or scenario.focal_firm
    if firm not in scenario.firms:
        raise ExperimentError(f"unknown firm {firm!r}; firms are {list(scenario.firms)}")
    keys = list(grid)
    points = list(itertools.product(*(grid[k] for k in keys)))
    base_seed = scenario.market.seed if seed is None else seed
    seeds = replication_seeds(base_seed, replications)
    ids = _run_ids(len(points) * replications)
    width = max(3, len(str(len(points) - 1)))
    specs = []
    for p, values in enumerate(points):
        variant = f"p{p:0{width}d}"
        varied = _with_overrides(scenario, dict(zip(keys, values)))
        params = tuple(zip(keys, values))
        specs += [RunSpec(ids[p * replications + r], variant, r, seeds[r], varied, params) for r in range(replications)]
    def write_best(folder: Path, runs: pd.DataFrame) -> None:
        summary = pd.read_csv(folder / "summary.csv")
        own = summary[summary["firm"] == firm]
        best = own.loc[own[f"{outcome}_mean"].idxmax()]
        best_point = {
            "outcome": outcome,
            "firm": firm,
            "variant": best["variant"],
            "parameters": {k: best[k].item() if hasattr(best[k], "item") else best[k] for k in keys},
            "mean": float(best[f"{outcome}_mean"]),
            "ci_low": float(best[f"{outcome}_ci_low"]),
            "ci_high": float(best[f"{outcome}_ci_high"]),
            "n": int(best["n"]),
        }
        atomic_write_text(folder / "best.json", json.dumps(best_point, indent=2))

    with make_executor(jobs, scheduler) as executor:
        folder, runs = run_experiment(
            "sweep", specs, out, f"sweep-{scenario.name}", executor=executor, exp_id=exp_id, progress=progress, resume=resume,
            meta={"base_seed": base_seed, "replications": replications, "grid": grid, "outcome": outcome, "firm": firm},
            finish=write_best,
        )
    summary = pd.read_csv(folder / "summary.csv")
    best_point = json.loads((folder / "best.json").read_text(encoding="utf-8"))
    return ExperimentResult(folder, "sweep", runs, summary, {"best": pd.DataFrame([best_point])})


#: Uplift outcomes of the retention effect.
UPLIFT_OUTCOMES = ("profit_last_year", "cumulative_profit", "npv", "customer_equity")
PUBLISHED_BAND = (0.25, 0.95)  # profit uplift from 5 points more retention, as the course reports it


def retention_effect(
    scenario: Scenario,
    replications: int,
    *,
    gains: Sequence[float] = (0, 2.5, 5, 7.5, 10),
    headline: float = 5.0,
    out: str | Path = "results",
    jobs: int = 1,
    scheduler: str | None = None,
    seed: int | None = None,
    exp_id: str | None = None,
    progress=None,
    resume: bool = False,
) -> ExperimentResult:
    """The 5%-retention-to-profit effect (MODEL.md s.10) for the focal firm.

    Pass 1 runs the scenario as it is, ``replications`` times (these are the gain-0 runs),
    and records the focal firm's retention at every step; ``r_t`` is its mean over the
    replications. Pass 2 re-runs the same market with the same seeds once per gain ``g`` (in
    retention points per year), keeping the focal firm's retention at step t at least at
    ``floor_t = min(1, r_t ** Y + g / 100) ** (1 / Y)`` (Y steps a year): just enough of its
    would-be defectors are held back to meet the floor; nothing else is touched. The floor
    binds only when retention would fall below it, so the achieved gain is at least ``g``
    and is reported beside every uplift. The uplift in profit, cumulative profit, NPV and
    customer equity comes from the model's economics alone: more customers kept, who buy
    more and cost less as their tenure grows, and who keep talking to their ties.

    Where the change in cumulative profit comes from is decomposed pair by pair
    (:func:`uplift_sources`): ``uplift_sources.csv`` holds one row per gain and replication,
    and ``retention_effect.csv`` the mean, 95% interval and share of each part
    (``source_<part>``, ``source_<part>_ci_low``, ``_ci_high``, ``_share``)."""
    gains = sorted({float(g) for g in (*gains, 0.0, headline)})
    if any(not 0 <= g <= 100 for g in gains):
        raise ExperimentError("retention gains must lie between 0 and 100 points")
    base_seed = scenario.market.seed if seed is None else seed
    seeds = replication_seeds(base_seed, replications)
    from sim.results import safe_component

    focal = scenario.focal_firm
    per_year = 365.0 / scenario.market.step_days
    ids = _run_ids(len(gains) * replications)
    baseline = [RunSpec(ids[r], "g0", r, seeds[r], scenario, (("retention_gain", 0.0),)) for r in range(replications)]

    def second_pass(runs_dir: Path) -> tuple[list[RunSpec], dict[str, Any]]:
        paths = []
        for spec in baseline:
            metrics = pd.read_csv(runs_dir / f"{spec.run_id}.csv")
            paths.append(metrics.loc[metrics["firm"] == focal].sort_values("step")["retention_rate"].to_numpy(dtype=np.float64))
        mean_path = np.mean(paths, axis=0)
        specs = [
            RunSpec(
                ids[k * replications + r], f"g{g:g}", r, seeds[r], scenario, (("retention_gain", g),),
                tuple(np.minimum(1.0, mean_path**per_year + g / 100.0) ** (1.0 / per_year)),
            )
            for k, g in enumerate(gains) if g > 0
            for r in range(replications)
        ]
        return specs, {"baseline_retention_annual": float(np.mean(mean_path[1:]) ** per_year) if len(mean_path) > 1 else 1.0}

    def write_curve(folder: Path, runs: pd.DataFrame) -> None:
        changes = paired_differences(runs, "g0", (*UPLIFT_OUTCOMES, "retention_rate_run"), relative=False)
        relative = paired_differences(runs, "g0", UPLIFT_OUTCOMES, relative=True)
        sources = _uplift_sources_table(folder / "runs", runs, focal, gains)
        _atomic_csv(sources, folder / "uplift_sources.csv")
        _atomic_csv(_effect_curve(changes, relative, focal, gains, sources), folder / "retention_effect.csv")

    with make_executor(jobs, scheduler) as executor:
        folder, runs = run_experiment(
            "retention-effect", baseline, out, f"retention-{safe_component(scenario.name)}", executor=executor, exp_id=exp_id, progress=progress,
            meta={"base_seed": base_seed, "replications": replications, "focal_firm": focal, "gains": gains, "headline": headline, "published_band": PUBLISHED_BAND},
            then=second_pass, total=len(ids), resume=resume, finish=write_curve,
        )
    curve = pd.read_csv(folder / "retention_effect.csv")
    return ExperimentResult(folder, "retention-effect", runs, pd.read_csv(folder / "summary.csv"), {"effect": curve})


def _effect_curve(
    changes: pd.DataFrame, relative: pd.DataFrame, focal: str, gains: Sequence[float], sources: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per retention gain: the focal firm's change in retention and each outcome
    (absolute, and relative to the baseline), with 95% intervals over paired replications;
    with ``sources`` (:func:`_uplift_sources_table`) also where the change in cumulative profit
    comes from (:func:`_source_columns`)."""
    rows = []
    for g in gains:
        row: dict[str, Any] = {"retention_gain_points": g}
        if g == 0:
            for name in ("retention_rate_run", *UPLIFT_OUTCOMES):
                row[f"{name}_change"] = row[f"{name}_change_ci_low"] = row[f"{name}_change_ci_high"] = 0.0
            for name in UPLIFT_OUTCOMES:
                row[f"{name}_uplift"] = row[f"{name}_uplift_ci_low"] = row[f"{name}_uplift_ci_high"] = 0.0
            if sources is not None:
                row.update(_source_columns(None))
            rows.append(row)
            continue
        a = changes[(changes["variant"] == f"g{g:g}") & (changes["firm"] == focal)].iloc[0]
        r = relative[(relative["variant"] == f"g{g:g}") & (relative["firm"] == focal)].iloc[0]
        row["n"] = int(a["n"])
        for name in ("retention_rate_run", *UPLIFT_OUTCOMES):
            row[f"{name}_change"], row[f"{name}_change_ci_low"], row[f"{name}_change_ci_high"] = a[f"{name}_diff"], a[f"{name}_ci_low"], a[f"{name}_ci_high"]
        for name in UPLIFT_OUTCOMES:
            row[f"{name}_uplift"], row[f"{name}_uplift_ci_low"], row[f"{name}_uplift_ci_high"] = r[f"{name}_diff"], r[f"{name}_ci_low"], r[f"{name}_ci_high"]
        if sources is not None:
            row.update(_source_columns(sources[sources["retention_gain_points"] == g]))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- where the uplift comes from

#: The parts of the focal firm's change in cumulative profit (they add up to it exactly; MODEL.md s.7.17).
UPLIFT_SOURCES = ("kept_margin", "word_of_mouth", "tenure_growth", "other")
#: A counterfactual reported beside the parts; it is NOT in the simulated profit.
COUNTERFACTUAL_SOURCES = ("acquisition_saved",)
#: Customer counts behind the parts: extra customers kept (fewer defections) and won, by the end of the run.
SOURCE_COUNTS = ("customers_kept", "customers_won")


def uplift_sources(base: pd.DataFrame, gain: pd.DataFrame) -> dict[str, float]:
    """Where one firm's change in cumulative profit between a gain run and its paired gain-0
    run (the same seed) comes from, from the two runs' per-step metrics of that firm.

    For steps ``t >= 1``: ``served_t = customers_{t-1} + acquired_prospects_t`` (the CLV
    denominator, MODEL.md 7.15), contribution ``C_t = revenue - cost_of_goods - service_cost -
    reward_cost - community_cost``, margin ``m_t = C_t / served_t`` (0 when nobody is served);
    base run ``0``, gain run ``1``, ``d`` the gain run minus the base run. With
    ``K_t = -sum_{s<=t} d churned_s`` (extra customers kept) and
    ``W_t = sum_{s<=t} d acquisitions_s`` (extra customers won), the stock-flow identity
    ``customers_t = customers_{t-1} + acquisitions_t - churned_t`` gives
    ``d served_t = K_{t-1} + W_{t-1} + d acquired_prospects_t``, and::

        kept_margin   = sum_t K_{t-1} * m0_t
        word_of_mouth = sum_t (d served_t - K_{t-1}) * m0_t      (= (W_{t-1} + d acquired_prospects_t) * m0_t)
        tenure_growth = sum_t (d C_t - d served_t * m0_t)        (= served1_t * (m1_t - m0_t) where served0_t > 0)
        other         = -d sum_t (acquisition_cost_t + fixed_cost_t)

    add up to ``d sum_t profit_t``, the change in cumulative profit, exactly (up to the
    rounding of the metrics files). ``acquisition_saved`` is a counterfactual, not in the
    simulated profit: what the firm would not spend on acquisition if it only replaced the
    customers it loses, ``K_T * (base run's sum of acquisition_cost / sum of acquisitions)``
    (0 when the base run acquired nobody). ``customers_kept = K_T`` and ``customers_won = W_T``."""
    from sim.ledger import COSTS, REVENUE, VARIABLE_COSTS

    base, gain = base.sort_values("step"), gain.sort_values("step")
    if list(base["step"]) != list(gain["step"]):
        raise ExperimentError("paired runs must have the same steps")

    def column(frame: pd.DataFrame, name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64)

    def contribution(frame: pd.DataFrame) -> np.ndarray:
        return (column(frame, REVENUE) - sum(column(frame, c) for c in VARIABLE_COSTS))[1:]

    def overhead(frame: pd.DataFrame) -> float:  # acquisition and fixed costs, every step
        return float(sum(column(frame, c).sum() for c in COSTS if c not in VARIABLE_COSTS))

    def served(frame: pd.DataFrame) -> np.ndarray:
        return column(frame, "customers")[:-1] + column(frame, "acquired_prospects")[1:]

    c0, c1 = contribution(base), contribution(gain)
    served0, served1 = served(base), served(gain)
    m0 = np.divide(c0, served0, out=np.zeros_like(c0), where=served0 > 0)
    kept = np.cumsum(column(base, "churned")[1:] - column(gain, "churned")[1:])  # K_t
    won = np.cumsum(column(gain, "acquisitions")[1:] - column(base, "acquisitions")[1:])  # W_t
    kept_before = np.concatenate(([0.0], kept[:-1]))  # K_{t-1}
    d_served = served1 - served0
    acquired = column(base, "acquisitions")[1:].sum()
    cost_per_acquisition = column(base, "acquisition_cost")[1:].sum() / acquired if acquired > 0 else 0.0
    customers_kept = float(kept[-1]) if len(kept) else 0.0
    return {
        "cumulative_profit_change": float(column(gain, "profit").sum() - column(base, "profit").sum()),
        "kept_margin": float(np.sum(kept_before * m0)),
        "word_of_mouth": float(np.sum((d_served - kept_before) * m0)),
        "tenure_growth": float(np.sum(c1 - c0 - d_served * m0)),
        "other": -(overhead(gain) - overhead(base)),
        "acquisition_saved": customers_kept * cost_per_acquisition,
        "customers_kept": customers_kept,
        "customers_won": float(won[-1]) if len(won) else 0.0,
    }


def _uplift_sources_table(runs_dir: Path, runs: pd.DataFrame, focal: str, gains: Sequence[float]) -> pd.DataFrame:
    """``uplift_sources.csv``: one row per gain above 0 and replication, the focal firm's
    :func:`uplift_sources` between the gain run and the gain-0 run of the same replication."""
    own = runs[runs["firm"] == focal]
    base_ids = own[own["variant"] == "g0"].set_index("replication")["run_id"]
    rows = []
    for g in gains:
        if g == 0:
            continue
        for _, run in own[own["variant"] == f"g{g:g}"].sort_values("replication").iterrows():
            base_id = base_ids[run["replication"]]
            metrics = [pd.read_csv(runs_dir / f"{run_id}.csv") for run_id in (base_id, run["run_id"])]
            parts = uplift_sources(*(m[m["firm"] == focal] for m in metrics))
            rows.append({"retention_gain_points": g, "replication": run["replication"], "run_id": run["run_id"], "baseline_run_id": base_id, "firm": focal, **parts})
    columns = ["retention_gain_points", "replication", "run_id", "baseline_run_id", "firm", "cumulative_profit_change", *UPLIFT_SOURCES, *COUNTERFACTUAL_SOURCES, *SOURCE_COUNTS]
    return pd.DataFrame(rows, columns=columns)


def _source_columns(rows: pd.DataFrame | None) -> dict[str, float]:
    """``source_<part>`` (mean), ``_ci_low``, ``_ci_high`` and ``_share`` (the part's mean over the
    mean change in cumulative profit; NaN when that is 0) of each part, the counterfactual and
    the customer counts (no share) over the replications in ``rows``; zeros (and NaN shares)
    for the gain-0 row (``rows`` None)."""
    out: dict[str, float] = {}
    total = float(rows["cumulative_profit_change"].mean()) if rows is not None and len(rows) else 0.0
    for name in (*UPLIFT_SOURCES, *COUNTERFACTUAL_SOURCES, *SOURCE_COUNTS):
        mean, low, high = interval(rows[name].to_numpy()) if rows is not None and len(rows) else (0.0, 0.0, 0.0)
        out[f"source_{name}"], out[f"source_{name}_ci_low"], out[f"source_{name}_ci_high"] = mean, low, high
        if name not in SOURCE_COUNTS:
            out[f"source_{name}_share"] = mean / total if total != 0 else float("nan")
    return out

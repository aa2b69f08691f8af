"""Writing a run's results folder.

``results/<scenario>/<run-id>/`` holds:

* ``scenario.yaml`` the resolved scenario (every default filled in);
* ``metrics.csv`` tidy per-step metrics, one row per step and firm;
* ``customers.csv`` the final state of every person;
* ``summary.json`` run metadata (id, seed, package version, scenario hash) and the
  per-firm summary shown in the terminal;
* ``charts/*.png`` drawn from the files above;
* ``manifest.json`` versions, platform, time, timings and the sha256 of every other file
  (see :mod:`sim.manifest`).

Every file but the manifest is byte-identical for the same scenario, seed and version.
The folder is assembled under a temporary name and renamed into place when every
file is written, so a failed or interrupted run never leaves a half-written folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim import __version__
from sim.manifest import atomic_csv, atomic_table_csv, atomic_write_json, atomic_write_text, fsync_dir, write_manifest

SUMMARY_COLUMNS = (
    ("customers", "customers", "{:,.0f}"),
    ("retention_rate_annual", "retention", "{:.1%}"),
    ("satisfaction_avg_mean", "satisf.", "{:.3f}"),
    ("nps", "NPS", "{:+.0f}"),
    ("profit", "profit/step", "{:,.0f}"),
    ("cumulative_profit", "cum.profit", "{:,.0f}"),
    ("clv", "CLV", "{:,.0f}"),
)
LOYALTY_MIX = ("monopoly", "inertia", "price", "incentive", "trust", "none")


def run_id(seed: int, digest: str) -> str:
    """A run id that sorts by time and names the seed and scenario."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-s{seed}-{digest[:8]}"


def firm_summary(metrics, firm_roles: dict[str, str], steps_per_year: float) -> list[dict[str, Any]]:
    """Per-firm figures at the end of the run (retention averaged over the last year of steps)."""
    last_step = int(metrics["step"].max())
    window = max(1, int(round(steps_per_year)))
    rows = []
    for firm, role in firm_roles.items():
        own = metrics[metrics["firm"] == firm]
        end = own[own["step"] == last_step].iloc[0]
        recent = own[(own["step"] > max(0, last_step - window)) & (own["step"] >= 1)]
        retention = float(np.mean(recent["retention_rate"])) if len(recent) else 1.0
        row = {"name": firm, "role": role}
        for column, _, _ in SUMMARY_COLUMNS:
            row[column] = float(end[column])
        row["retention_rate_annual"] = retention ** steps_per_year
        row["loyalty_mix"] = {t: float(end[f"share_{t}"]) for t in LOYALTY_MIX}
        row["npv"] = float(end["npv"])
        rows.append(row)
    return rows


def safe_component(name: str) -> str:
    """A folder name that cannot leave the results folder."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name).strip("_") or "scenario"
    return cleaned[:64]


def write_run(model, out_root: str | Path, *, rid: str | None = None, charts: bool = True, source: str | None = None, timings: dict | None = None) -> Path:
    """Write the results folder of a finished ``model`` under ``out_root/<scenario>/``; return its path."""
    spec = model.spec
    if spec.market.seed != model.seed:  # the scenario as run (and as stored): with the seed used
        spec = spec.model_copy(update={"market": spec.market.model_copy(update={"seed": model.seed})})
    digest = spec.digest()
    rid = safe_component(rid or run_id(model.seed, digest))
    parent = Path(out_root) / safe_component(spec.name)
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / rid
    if final.exists():
        raise FileExistsError(f"results folder {final} already exists")
    staging = Path(tempfile.mkdtemp(prefix=f".{rid}.", suffix=".partial", dir=parent))
    try:
        resolved = spec.resolved()
        atomic_write_text(staging / "scenario.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
        metrics = model.metrics_frame()
        atomic_csv(metrics, staging / "metrics.csv", float_format="%.6g")
        atomic_table_csv(model.customers_table(), staging / "customers.csv")
        roles = {name: ("focal" if name == spec.focal_firm else "competitor") for name in model.firm_names}
        summary = {
            "scenario": {"name": spec.name, "title": spec.title or spec.name, "description": spec.description, "source": source, "sha256": digest},
            "run": {
                "id": rid,
                "seed": model.seed,
                "steps": model.n_steps,
                "step_days": model.step_days,
                "population": model.population.size,
                "package_version": __version__,
            },
            "firms": firm_summary(metrics, roles, model.steps_per_year),
        }
        atomic_write_json(staging / "summary.json", summary)
        if charts:
            from sim.charts import plot_run

            plot_run(staging)
        write_manifest(staging, kind="run", seed=model.seed, scenario_sha256=digest, timings=timings)
        fsync_dir(staging)
        os.replace(staging, final)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final

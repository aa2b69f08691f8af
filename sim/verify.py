"""Re-run a stored results folder and check that every file reproduces.

A run folder is re-run from its resolved ``scenario.yaml`` (which holds the seed), with
the same run id and source, and charts if it had them. An experiment folder is re-run
from its ``experiment.json`` (kind, base seed, replications, grid or gains) and the
resolved scenario of each variant in ``scenarios/``. The new folder is written to a
temporary place and every file listed in the original manifest is compared byte for
byte (by sha256). The folder itself is checked against its manifest first: a damaged
folder is reported, never re-run.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.manifest import FolderError, read_manifest, require_intact


class VerifyError(Exception):
    """The folder cannot be verified (not a results folder, scenario unreadable ...)."""


@dataclass
class Verification:
    """The outcome of :func:`verify`: the files that reproduce, differ or are missing."""

    folder: Path
    kind: str
    same: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # listed in the manifest, not produced by the re-run
    extra: list[str] = field(default_factory=list)  # produced by the re-run, not in the manifest
    environment: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # what differs: (then, now)

    @property
    def reproduces(self) -> bool:
        return not (self.different or self.missing or self.extra)


def verify(folder: str | Path, jobs: int = 1) -> Verification:
    """Check ``folder`` against its manifest, re-run it and compare every file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VerifyError(f"{folder}: not a folder")
    if not (folder / "manifest.json").exists() and not (folder / "summary.json").exists() and not (folder / "experiment.json").exists():
        raise VerifyError(f"{folder}: not a results folder (no manifest.json, summary.json or experiment.json)")
    manifest = require_intact(folder)  # FolderError if damaged or incomplete
    kind = manifest.get("kind")
    with tempfile.TemporaryDirectory(prefix="loyalty-sim-verify-") as tmp:
        if kind == "run":
            fresh = _rerun_run(folder, manifest, Path(tmp))
        elif kind in ("replications", "compare", "sweep", "retention-effect"):
            fresh = _rerun_experiment(folder, manifest, Path(tmp), jobs)
        else:
            raise VerifyError(f"{folder}/manifest.json: unknown kind {kind!r}")
        new = read_manifest(fresh)
    result = Verification(folder, kind)
    old_files, new_files = manifest["files"], new["files"]
    for rel, digest in old_files.items():
        if rel not in new_files:
            result.missing.append(rel)
        elif new_files[rel] == digest:
            result.same.append(rel)
        else:
            result.different.append(rel)
    result.extra = [rel for rel in new_files if rel not in old_files]
    for key in ("package_version", "python", "numpy", "platform"):
        if manifest.get(key) != new.get(key):
            result.environment[key] = (manifest.get(key), new.get(key))
    return result


def _load_stored(path: Path):
    from sim.api import load_scenario
    from sim.loader import ScenarioError

    try:
        return load_scenario(path)
    except ScenarioError as exc:
        raise VerifyError(f"{path}: the stored scenario cannot be read: {exc.problems[0]}") from None


def _rerun_run(folder: Path, manifest: dict[str, Any], tmp: Path) -> Path:
    from sim.model import LoyaltyModel
    from sim.results import write_run

    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        rid, source = summary["run"]["id"], summary["scenario"].get("source")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerifyError(f"{folder}/summary.json cannot be read: {exc}") from None
    spec = _load_stored(folder / "scenario.yaml")
    model = LoyaltyModel(spec, seed=spec.market.seed).run()
    charts = any(rel.startswith("charts/") for rel in manifest["files"])
    return write_run(model, tmp, rid=rid, charts=charts, source=source)


def _rerun_experiment(folder: Path, manifest: dict[str, Any], tmp: Path, jobs: int) -> Path:
    from sim import experiments as ex
    from sim.results import safe_component

    try:
        info = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
        kind, variants, base_seed = info["kind"], list(info["variants"]), info["base_seed"]
        replications = int(info["replications"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerifyError(f"{folder}/experiment.json cannot be read: {exc}") from None
    scenarios = {v: _load_stored(folder / "scenarios" / f"{safe_component(v)}.yaml") for v in variants}
    common = {"out": tmp, "jobs": jobs, "seed": base_seed, "exp_id": folder.name}
    try:
        if kind == "replications":
            result = ex.replicate(scenarios[variants[0]], replications, **common)
        elif kind == "compare":
            result = ex.compare(list(scenarios.items()), replications, **common)
        elif kind == "sweep":
            # every point sets every swept key, so any point's scenario is a valid base
            result = ex.sweep(scenarios[variants[0]], info["grid"], replications, outcome=info["outcome"], firm=info["firm"], **common)
        else:
            gains = [g for g in info["gains"]]
            result = ex.retention_effect(scenarios["g0"], replications, gains=gains, headline=info["headline"], **common)
    except ex.ExperimentError as exc:
        raise VerifyError(f"{folder}: cannot re-run the experiment: {exc}") from None
    if any(rel.startswith("charts/") for rel in manifest["files"]):
        from sim.experiment_charts import plot_experiment
        from sim.manifest import refresh_manifest

        plot_experiment(result.folder)
        refresh_manifest(result.folder)
    return result.folder


__all__ = ["FolderError", "Verification", "VerifyError", "verify"]

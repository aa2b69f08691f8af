"""One-page reports for class: a results folder as a self-contained HTML page.

``loyalty-sim report RESULTS_DIR`` reads a run folder (``summary.json``, ``metrics.csv``)
or an experiment folder (``experiment.json`` and its tables: replications, a comparison,
a sweep, the retention effect, or a lesson) and writes ``report.html`` into it: the
title and description, the key figures as tables, the trainer's note and claims of a
lesson, and the folder's charts embedded as PNG (drawn first when the folder has none).
The page needs nothing else: it can be mailed, printed or handed out.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

REPORT_NAME = "report.html"


class ReportError(Exception):
    """A folder that cannot be reported on (missing, not a results folder, tables missing)."""


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.4em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; } table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { padding: 3px 9px; text-align: right; border-bottom: 1px solid #eee; } th:first-child, td:first-child { text-align: left; }
th { background: #f4f6f8; } tr.focal td { font-weight: 600; } .holds { color: #1a7f37; } .not { color: #b42318; }
img { max-width: 100%; margin: 6px 0; border: 1px solid #eee; } .note p { margin: 0.3em 0; }
@media print { body { margin: 0; } img { page-break-inside: avoid; } }
"""


def render_report(folder: str | Path, output: str | Path | None = None) -> Path:
    """Write the one-page HTML report of the results ``folder`` (default: ``folder/report.html``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such results folder")
    if (folder / "experiment.json").is_file():
        title, sections, charts_dir = _experiment_sections(folder)
    elif (folder / "summary.json").is_file():
        title, sections, charts_dir = _run_sections(folder)
    else:
        raise ReportError(f"{folder}: not a results folder (it has neither summary.json, written by loyalty-sim run, nor experiment.json, written by the experiment and lesson commands)")
    charts = sorted(charts_dir.glob("*.png")) if charts_dir.is_dir() else []
    body = [f"<h1>{_e(title)}</h1>", *sections]
    if charts:
        body.append("<h2>Charts</h2>")
        body += [f'<figure><img alt="{_e(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode("ascii")}"></figure>' for p in charts]
    from sim import __version__

    body.append(f'<p class="meta">loyalty-sim {_e(__version__)}; results folder {_e(str(folder))}. Repeat with the command shown above.</p>')
    page = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n' + "\n".join(body) + "\n</body></html>\n"
    target = Path(output) if output is not None else folder / REPORT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------- a run


def _run_sections(folder: Path) -> tuple[str, list[str], Path]:
    from sim.results import LOYALTY_MIX, SUMMARY_COLUMNS

    summary = _json(folder / "summary.json")
    scenario, run = summary.get("scenario", {}), summary.get("run", {})
    charts = folder / "charts"
    if not charts.is_dir() or not any(charts.glob("*.png")):
        if (folder / "metrics.csv").is_file():
            from sim.charts import plot_run

            plot_run(folder)
    title = scenario.get("title") or scenario.get("name") or folder.name
    meta = (
        f'<p class="meta">{run.get("steps")} steps of {run.get("step_days", 0):g} days, {run.get("population", 0):,} people, seed {run.get("seed")}; '
        f'run {_e(str(run.get("id")))} of {_e(str(run.get("created_utc", "")))} from {_e(str(scenario.get("source") or "a scenario"))}. '
        f'To repeat it: <code>loyalty-sim run {_e(str(folder / "scenario.yaml"))}</code> (the scenario as run, seed included)</p>'
    )
    sections = [meta]
    if scenario.get("description"):
        sections.append(f"<p>{_e(scenario['description'])}</p>")
    firms = summary.get("firms", [])
    rows = [[f["name"] + (" (focal)" if f.get("role") == "focal" else ""), *(fmt.format(f[key]) for key, _, fmt in SUMMARY_COLUMNS)] for f in firms]
    focal = [f.get("role") == "focal" for f in firms]
    sections.append("<h2>Key figures at the end of the run</h2>" + _table(["firm", *(label for _, label, _ in SUMMARY_COLUMNS)], rows, focal))
    mix = [[f["name"], *(f"{f['loyalty_mix'][t]:.0%}" for t in LOYALTY_MIX)] for f in firms]
    sections.append("<h2>Loyalty-type mix (share of each firm's customers)</h2>" + _table(["firm", *LOYALTY_MIX], mix, focal))
    sections.append('<p class="meta">retention: per year, over the last year; satisf.: mean satisfaction c = b / a; CLV: customer lifetime value.</p>')
    return title, sections, charts


# --------------------------------------------------------------------------- an experiment


_OUTCOMES = (
    ("customers", "customers", "count"),
    ("retention_rate_annual", "retention", "pct"),
    ("satisfaction_avg_mean", "satisf.", "score"),
    ("nps", "NPS", "nps"),
    ("cumulative_profit", "cum.profit", "money"),
    ("npv", "NPV", "money"),
    ("clv", "CLV", "money"),
)
_MIX = tuple(f"share_{t}" for t in ("monopoly", "inertia", "price", "incentive", "trust", "none"))


def _experiment_sections(folder: Path) -> tuple[str, list[str], Path]:
    info = _json(folder / "experiment.json")
    kind = info.get("kind", "")
    summary = _csv(folder, "summary.csv")
    lesson = _json(folder / "lesson.json") if (folder / "lesson.json").is_file() else None
    charts = folder / "charts"
    if not charts.is_dir() or not any(charts.glob("*.png")):
        from sim.experiment_charts import plot_experiment

        plot_experiment(folder)
    n = int(summary["n"].iloc[0]) if len(summary) else 0
    focal = _focal_firm(folder, info)
    title = lesson["title"] if lesson else f"{kind.replace('-', ' ').capitalize()}: {info.get('name', folder.name)}"
    command = _lesson_command(lesson, info) if lesson else _experiment_command(kind, info, folder)
    sections = [
        f'<p class="meta">{_e(kind)} of {len(info.get("variants", {}))} variant(s), n = {n} runs each, base seed {info.get("base_seed")}; '
        f"{_e(str(info.get('created_utc', '')))}. Command: <code>{_e(command)}</code>. "
        "Values: mean with the half-width of its 95% interval (±).</p>"
    ]
    if lesson:
        note = lesson["note"]
        sections.append(
            '<div class="note"><h2>For the class</h2>'
            f"<p><b>Show:</b> {_e(note['show'])}</p><p><b>Ask:</b> {_e(note['ask'])}</p><p><b>What the charts reveal:</b> {_e(note['reveal'])}</p></div>"
        )
        rows = [
            [c["says"], f'<span class="{"holds" if c["holds"] else "not"}">{"shown" if c["holds"] else "not shown"}</span>', _num(c["difference"]), f"[{_num(c['ci_low'])}, {_num(c['ci_high'])}]", str(c["n"])]
            for c in lesson["claims"]
        ]
        sections.append("<h2>The lesson's claims, checked on these runs</h2>" + _table(["claim", "", "difference", "95% interval", "n"], rows, raw=True))
    if kind == "retention-effect" and (folder / "retention_effect.csv").is_file():
        sections.append(_retention_table(_csv(folder, "retention_effect.csv"), info))
    own = summary[summary["firm"] == focal] if focal else summary
    label = "variant" if "variant" in own.columns else "firm"
    rows = [[str(r[label]) if kind != "replications" else str(r["firm"]), *(_interval(r, key, kind_) for key, _, kind_ in _OUTCOMES)] for _, r in (summary if kind == "replications" else own).iterrows()]
    first = "firm" if kind == "replications" else "variant"
    heading = "Key figures per firm" if kind == "replications" else f"Key figures of the focal firm ({_e(str(focal))}) in each variant"
    sections.append(f"<h2>{heading}</h2>" + _table([first, *(h for _, h, _ in _OUTCOMES)], rows))
    mix_rows = [[str(r["firm"] if kind == "replications" else r[label]), *(f"{r[f'{m}_mean']:.0%}" for m in _MIX)] for _, r in (summary if kind == "replications" else own).iterrows()]
    sections.append("<h2>Loyalty-type mix</h2>" + _table([first, *(m.removeprefix("share_") for m in _MIX)], mix_rows))
    if kind == "compare" and (folder / "differences.csv").is_file():
        diff = _csv(folder, "differences.csv")
        diff = diff[diff["firm"] == focal] if focal else diff
        rows = [[str(r["variant"]), *(_difference(r, key, kind_) for key, _, kind_ in _OUTCOMES[1:])] for _, r in diff.iterrows()]
        sections.append(f"<h2>Paired difference from {_e(str(info.get('baseline', '')))} (* the 95% interval excludes 0)</h2>" + _table(["variant", *(h for _, h, _ in _OUTCOMES[1:])], rows))
    if kind == "sweep" and (folder / "best.json").is_file():
        best = _json(folder / "best.json")
        point = ", ".join(f"{k} = {v}" for k, v in best.get("parameters", {}).items())
        sections.append(f"<h2>Best point</h2><p>{_e(point)}: {_e(best.get('outcome', ''))} {_num(best.get('mean', 0))} [{_num(best.get('ci_low', 0))}, {_num(best.get('ci_high', 0))}]</p>")
    return title, sections, charts


def _retention_table(curve: pd.DataFrame, info: dict[str, Any]) -> str:
    rows = []
    for _, r in curve.iterrows():
        cells = [f"{r['retention_gain_points']:g}", f"{r['retention_rate_run_change'] * 100:+.1f} pt"]
        for name in ("profit_last_year", "cumulative_profit", "npv", "customer_equity"):
            cells.append(f"{r[f'{name}_uplift']:+.1%} [{r[f'{name}_uplift_ci_low']:+.1%}, {r[f'{name}_uplift_ci_high']:+.1%}]")
        rows.append(cells)
    low, high = info.get("published_band", (0.25, 0.95))
    return (
        "<h2>What more retention is worth (uplift over the same market without the gain)</h2>"
        + _table(["gain (points)", "retention achieved", "profit (last year)", "cum. profit", "NPV", "customer equity"], rows)
        + f'<p class="meta">published: {low:+.0%} to {high:+.0%} profit from 5 points more retention (for reference).</p>'
    )


def _lesson_command(lesson: dict[str, Any], info: dict[str, Any]) -> str:
    sets = "".join(f" --set {k}={v}" for k, v in (lesson.get("overrides") or {}).items())
    return f"loyalty-sim lesson {lesson['lesson']} -n {info.get('replications', 'N')} --seed {info.get('base_seed')}{sets}"


def _experiment_command(kind: str, info: dict[str, Any], folder: Path) -> str:
    """The command that repeats the experiment from the resolved scenarios kept in its folder."""
    from sim.results import safe_component

    n, seed = info.get("replications", "N"), info.get("base_seed")
    files = [str(folder / "scenarios" / f"{safe_component(v)}.yaml") for v in info.get("variants", {})]
    if kind == "retention-effect":
        gains = ",".join(f"{g:g}" for g in info.get("gains", []))
        return f"loyalty-sim retention-effect {files[0] if files else 'SCENARIO'} -n {n} --seed {seed} --gain {info.get('headline', 5):g} --curve {gains}"
    if kind == "compare":
        return f"loyalty-sim compare {' '.join(files)} -n {n} --seed {seed}"
    if kind == "sweep":
        grid = " ".join(f"--set {k}={','.join(map(str, v))}" for k, v in info.get("grid", {}).items())
        base = files[0] if files else "SCENARIO"
        return f"loyalty-sim sweep {base} {grid} -n {n} --seed {seed} --outcome {info.get('outcome', 'npv')} (from the first point's scenario; the swept keys are set at every point)"
    return f"loyalty-sim run {files[0] if files else 'SCENARIO'} --replications {n} --seed {seed}"


def _focal_firm(folder: Path, info: dict[str, Any]) -> str | None:
    if info.get("focal_firm"):
        return str(info["focal_firm"])
    import yaml

    for path in sorted((folder / "scenarios").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        firms = data.get("firms") or {}
        for name, firm in firms.items():
            if (firm or {}).get("role") == "focal":
                return str(name)
        return next(iter(firms), None)
    return None


# --------------------------------------------------------------------------- helpers


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read it ({exc})") from None


def _csv(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise ReportError(f"{folder}: {name} is missing (an incomplete or trimmed results folder)")
    return pd.read_csv(path)


def _e(text: Any) -> str:
    return html.escape(str(text))


_FORMATS = {"count": "{:,.0f}", "money": "{:,.0f}", "pct": "{:.1%}", "score": "{:.3f}", "nps": "{:+.0f}"}


def _interval(row: pd.Series, key: str, kind: str) -> str:
    mean, low, high = row[f"{key}_mean"], row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    text = _FORMATS[kind].format(mean)
    half = (high - low) / 2
    if half > 0:
        text += f" ±{half * 100:.1f}" if kind == "pct" else " ±" + _FORMATS[kind].format(half).lstrip("+")
    return text


def _difference(row: pd.Series, key: str, kind: str) -> str:
    diff, low, high = row[f"{key}_diff"], row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    if kind == "pct":
        text = f"{diff * 100:+.1f} pt ±{(high - low) * 50:.1f}"
    else:
        fmt = _FORMATS[kind] if kind != "count" else "{:+,.0f}"
        text = ("{:+,.0f}" if kind == "money" else fmt).format(diff) + " ±" + _FORMATS[kind].format((high - low) / 2).lstrip("+")
    return text + (" *" if bool(row.get(f"{key}_significant", False)) else "")


def _num(value: float) -> str:
    value = float(value)
    return f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.3g}"


def _table(headers: list[str], rows: list[list[str]], focal: list[bool] | None = None, raw: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    lines = []
    for i, row in enumerate(rows):
        cls = ' class="focal"' if focal and i < len(focal) and focal[i] else ""
        cells = "".join(f"<td>{c if raw and j == 1 else _e(c)}</td>" for j, c in enumerate(row))
        lines.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"

"""The command line: parses arguments, hands off to the API, and turns user mistakes into
clear messages with exit code 2 (never a traceback).

``run`` plays one scenario (or replicates it); ``compare``, ``sweep`` and
``retention-effect`` are the experiments of :mod:`sim.experiments`; ``calibrate`` fits
parameters to observed KPIs (:mod:`sim.calibrate`) and ``validate-model`` runs the
validation suite (:mod:`sim.validation`). The experiment commands share their
options (replications, jobs, scheduler, out, id, seed, charts, quiet), one way to run
(:func:`_experiment`, with a progress bar) and one way to print tables of means with
their 95% intervals (:func:`_interval_table`)."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(
    name="loyalty-sim",
    help="Agent-based customer-loyalty strategy simulator: run a scenario file, get satisfaction, loyalty types, retention and profit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

EXIT_USER_ERROR = 2


def _version(value: bool) -> None:
    if value:
        from sim import __version__

        typer.echo(f"loyalty-sim {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Agent-based customer-loyalty strategy simulator: run a scenario file, get satisfaction, loyalty types, retention and profit."""

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario file (YAML).", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: the scenario's market.seed).", min=0)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a scenario key before running, e.g. --set firms.focal.price.list=9 (repeatable).", metavar="KEY=VALUE"),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder under which the results folder (<out>/<name>/<id>/) is written.")]
ChartsOpt = Annotated[bool, typer.Option("--charts/--no-charts", help="Draw the PNG charts.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the results folder.")]
ReplicationsOpt = Annotated[
    int, typer.Option("--replications", "-n", min=1, help="Runs of each scenario, variant or point, each with its own seed spawned from --seed.")
]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=0, help="Worker processes on this machine (0, the default: one per CPU core; 1: run in this process).")]
SchedulerOpt = Annotated[
    Optional[str],
    typer.Option("--scheduler", metavar="ADDRESS", help="Run on a Dask cluster instead: its scheduler address, e.g. tcp://10.0.0.5:8786 (needs the dask extra)."),
]
IdOpt = Annotated[Optional[str], typer.Option("--id", help="Name of the experiment folder (default: time, kind and seed).")]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Finish an interrupted experiment (the one with this --id, or the only interrupted one of this kind and seed): only its missing runs are run, and the result is identical to an uninterrupted one.",
    ),
]


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str) -> None:
    """A user mistake: one line on stderr and exit code 2."""
    _err(f"error: {message}")
    raise typer.Exit(EXIT_USER_ERROR)


def _fail_problems(exc, context: str = "") -> None:
    for problem in exc.problems:
        _err(f"error: {context}{problem}")
    sources = sorted({p.source for p in exc.problems})
    n = len(exc.problems)
    _err(f"{n} problem{'s' if n != 1 else ''} in {', '.join(sources)}")
    raise typer.Exit(EXIT_USER_ERROR)


def _parse_sets(items: Sequence[str] | None, option: str = "--set") -> dict[str, Any]:
    """KEY=VALUE items as overrides (values read as YAML scalars)."""
    from sim.loader import ScenarioError, read_value

    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            _fail(f"{option} {item!r}: expected KEY=VALUE, e.g. {option} firms.focal.price.list=9")
        try:
            overrides[key.strip()] = read_value(raw, f"{option} {key.strip()}") if raw.strip() else None
        except ScenarioError as exc:
            if any("YAML 1.1" in p.message or "not allowed" in p.message for p in exc.problems):
                _fail(f"{option} {item!r}: {exc.problems[0].message}")
            overrides[key.strip()] = raw
    return overrides


def _load(path: Path, sets: list[str] | dict[str, Any] | None = None, context: str = ""):
    """The scenario in ``path`` with ``sets`` applied; problems end the command (exit 2)."""
    from sim.api import load_scenario
    from sim.loader import ScenarioError

    try:
        spec = load_scenario(path, sets if isinstance(sets, dict) else _parse_sets(sets))
    except ScenarioError as exc:
        _fail_problems(exc, context)
    _check_resources(spec, path)
    return spec


@app.command()
def run(
    scenario: ScenarioArg,
    seed: SeedOpt = None,
    set_: SetOpt = None,
    replications: ReplicationsOpt = 1,
    jobs: JobsOpt = 0,
    scheduler: SchedulerOpt = None,
    out: OutOpt = Path("results"),
    run_id: Annotated[Optional[str], typer.Option("--run-id", "--id", help="Name of the run folder (default: time, seed and scenario hash).")] = None,
    charts: ChartsOpt = True,
    quiet: QuietOpt = False,
    resume: ResumeOpt = False,
    threads: Annotated[int, typer.Option("--threads", min=0, help="Threads that share a step of a single run (0, the default: one per CPU core). The results do not depend on it.")] = 0,
) -> None:
    """Run a scenario and write its results folder (tables, summary, charts).

    With --replications N > 1 the scenario runs N times, each with its own seed, and each firm's outcomes are shown with their 95% intervals.

    Example: [bold]loyalty-sim run scenarios/starter.yaml --seed 7 --set firms.focal.price.list=9[/bold]

    Example: [bold]loyalty-sim run scenarios/starter.yaml --replications 20 --jobs 0[/bold]
    """
    spec = _load(scenario, set_)
    if resume and replications == 1:
        _fail("--resume finishes an interrupted replication set (--replications N > 1); a single run is simply run again")
    if replications > 1 and threads:
        _fail("--threads sets the threads of a single run; replications share the cores among their --jobs worker processes")
    if replications > 1:
        from sim.experiments import replicate

        opts = _Options(out, run_id, seed, jobs, scheduler, charts, quiet, resume)
        result = _experiment(opts, replicate, spec, replications)
        _finish(opts, result, lambda: _print_replications(result, spec))
        return
    from sim.model import LoyaltyModel
    from sim.results import write_run

    started = time.perf_counter()
    model = LoyaltyModel(spec, seed=seed, threads=threads or None)
    built = time.perf_counter()
    _run_with_progress(model, quiet)
    ran = time.perf_counter()
    try:
        folder = write_run(
            model, out, rid=run_id, charts=charts, source=str(scenario),
            timings={"build_seconds": round(built - started, 3), "run_seconds": round(ran - built, 3)},
        )
    except FileExistsError as exc:
        _fail(f"{exc}; choose another --run-id")
    if quiet:
        typer.echo(str(folder))
        return
    _print_summary(folder)
    typer.echo(f"results: {folder}  ({ran - started:.1f} s simulated, {time.perf_counter() - ran:.1f} s writing)")


def _run_with_progress(model, quiet: bool) -> None:
    if quiet or not sys.stderr.isatty():
        model.run()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("simulating"), BarColumn(), TextColumn("step {task.completed}/{task.total}"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("run", total=model.n_steps)
        model.run(lambda step: bar.update(task, completed=step))


def _print_summary(folder: Path) -> None:
    """Two compact tables: the key figures per firm, then the loyalty-type mix."""
    import json

    from rich.console import Console
    from rich.table import Table

    from sim.results import LOYALTY_MIX, SUMMARY_COLUMNS

    summary = json.loads((folder / "summary.json").read_text())
    run_info = summary["run"]
    console = Console(soft_wrap=False)
    console.print(
        f"[bold]{summary['scenario']['title']}[/bold]\n{run_info['steps']} steps of {run_info['step_days']:g} days, "
        f"{run_info['population']:,} people, seed {run_info['seed']}"
    )
    figures = Table(box=None, pad_edge=False)
    mix = Table(box=None, pad_edge=False, title="loyalty-type mix (share of each firm's customers)", title_justify="left")
    figures.add_column("firm")
    mix.add_column("firm")
    for _, label, _ in SUMMARY_COLUMNS:
        figures.add_column(label, justify="right")
    for loyalty in LOYALTY_MIX:
        mix.add_column(loyalty, justify="right")
    for firm in summary["firms"]:
        name = firm["name"] + (" *" if firm["role"] == "focal" else "")
        figures.add_row(name, *(fmt.format(firm[key]) for key, _, fmt in SUMMARY_COLUMNS))
        mix.add_row(name, *(f"{firm['loyalty_mix'][t]:.0%}" for t in LOYALTY_MIX))
    console.print(figures)
    console.print(mix)
    console.print("* focal firm. retention: per year, over the last year. satisf.: mean running c = b/a.\nCLV: expected discounted margin of a customer. Money per step of the scenario.")


# --------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class _Options:
    """The options every experiment command shares."""

    out: Path
    exp_id: str | None
    seed: int | None
    jobs: int
    scheduler: str | None
    charts: bool
    quiet: bool
    resume: bool = False


_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?\S+:\d+$")


def _experiment(opts: _Options, runner: Callable[..., Any], *args: Any, **kwargs: Any):
    """Call an experiment runner of :mod:`sim.experiments` with the shared options and a
    progress bar; its user-facing failures end the command with one line and exit 2."""
    from concurrent.futures.process import BrokenProcessPool

    from sim.experiments import ExperimentError
    from sim.manifest import FolderError

    scheduler = opts.scheduler.strip() if opts.scheduler else None
    if scheduler is not None and not _ADDRESS.match(scheduler):
        _fail(f"--scheduler {opts.scheduler!r}: expected a scheduler address such as tcp://10.0.0.5:8786")
    jobs = opts.jobs if opts.jobs > 0 else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with _progress(opts.quiet) as progress:
            with _warnings_to_stderr():
                return runner(*args, out=opts.out, jobs=jobs, scheduler=scheduler, seed=opts.seed, exp_id=opts.exp_id, progress=progress, resume=opts.resume, **kwargs)
    except FileExistsError as exc:
        _fail(f"{exc}; choose another --id")
    except ExperimentError as exc:
        _fail(str(exc))
    except FolderError as exc:
        _fail_folder(exc)
    except BrokenProcessPool:
        _err("error: a worker process died before finishing its run; the finished runs are kept: run the same command with --resume to complete the rest")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _err("interrupted; the finished runs are kept: run the same command with --resume to complete the rest")
        raise typer.Exit(130) from None


def _fail_folder(exc) -> None:
    """A damaged or incomplete results folder: one line per problem, exit 1."""
    for problem in exc.problems:
        _err(f"error: {exc.folder}: {problem}")
    raise typer.Exit(1)


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show the experiments' warnings (e.g. a damaged run file being run again) on stderr."""
    import logging

    logger = logging.getLogger("sim")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _check_resources(spec, path: Path | None = None) -> None:
    """Refuse a market too large for this machine's memory, with the estimate (exit 2)."""
    from sim.limits import resource_problem

    problem = resource_problem(spec)
    if problem is not None:
        _fail(f"{path}: market.population: {problem}" if path else f"market.population: {problem}")


def _finish(opts: _Options, result, show: Callable[[], None]) -> None:
    """Print the tables (unless --quiet), draw the charts (unless --no-charts), print the folder."""
    if not opts.quiet:
        show()
    if opts.charts:
        from sim.experiment_charts import plot_experiment
        from sim.manifest import refresh_manifest

        plot_experiment(result.folder)
        refresh_manifest(result.folder)
    typer.echo(str(result.folder) if opts.quiet else f"results: {result.folder}")


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback (runs done, total) drawing a bar on stderr when it is a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TextColumn("time left"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("runs", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


_LOYALTY_TYPES = ("monopoly", "inertia", "price", "incentive", "trust", "none")
# How each outcome is shown: header and kind (count, money, pct: a rate or share, score, nps).
_OUTCOME_VIEW: dict[str, tuple[str, str]] = {
    "customers": ("customers", "count"),
    "market_share": ("share", "pct"),
    "profit_last_year": ("profit/yr", "money"),
    "cumulative_profit": ("cum.profit", "money"),
    "npv": ("NPV", "money"),
    "retention_rate_annual": ("retention", "pct"),
    "retention_rate_run": ("retention (run)", "pct"),
    "repeat_purchase_rate": ("repeat", "pct"),
    "satisfaction_avg_mean": ("satisf.", "score"),
    "nps": ("NPS", "nps"),
    "clv": ("CLV", "money"),
    "customer_equity": ("cust.equity", "money"),
    **{f"share_{t}": (t, "pct") for t in _LOYALTY_TYPES},
}
_KEY_OUTCOMES = ("customers", "retention_rate_annual", "satisfaction_avg_mean", "nps", "cumulative_profit", "npv", "clv")
_COMPARED_OUTCOMES = ("cumulative_profit", "npv", "retention_rate_annual", "satisfaction_avg_mean", "nps", "clv")
_LOYALTY_MIX = tuple(f"share_{t}" for t in _LOYALTY_TYPES)
_FORMATS = {"count": ",.0f", "money": ",.0f", "pct": ".1%", "score": ".3f", "nps": ".0f", "pt": ".1f", "rel": ".1%"}
_INTERVAL_NOTE = "±: half-width of the 95% interval of the mean (of a percentage: in points)"


@dataclass(frozen=True)
class _Col:
    """An interval column: the row fields holding the estimate and its 95% interval.
    Kinds: count, money, pct (a rate or share), score, nps, pt (a change of a rate, in
    points), rel (a relative change)."""

    header: str
    kind: str
    mean: str
    low: str
    high: str
    signed: bool = False
    significant: str | None = None
    long: bool = False  # "mean [low, high]" instead of "mean ±half"

    @classmethod
    def of(cls, outcome: str, long: bool = False) -> _Col:
        """An outcome's mean and interval in a summary table."""
        header, kind = _OUTCOME_VIEW[outcome]
        return cls(header, kind, f"{outcome}_mean", f"{outcome}_ci_low", f"{outcome}_ci_high", long=long)

    @classmethod
    def diff(cls, outcome: str) -> _Col:
        """A paired difference from the baseline (rates in points), marked when significant."""
        header, kind = _OUTCOME_VIEW[outcome]
        return cls(header, "pt" if kind == "pct" else kind, f"{outcome}_diff", f"{outcome}_ci_low", f"{outcome}_ci_high", True, f"{outcome}_significant")

    @classmethod
    def effect(cls, outcome: str, measure: str, header: str | None = None, long: bool = False) -> _Col:
        """A column of the retention-effect curve: ``change`` (absolute) or ``uplift`` (relative)."""
        default_header, kind = _OUTCOME_VIEW[outcome]
        kind = "rel" if measure == "uplift" else ("pt" if kind == "pct" else kind)
        stem = f"{outcome}_{measure}"
        return cls(header or default_header, kind, stem, f"{stem}_ci_low", f"{stem}_ci_high", True, long=long)


def _number(kind: str, value: float, signed: bool = False) -> str:
    value = float(value)
    if value != value:  # NaN
        return "n/a"
    return format(value * 100 if kind == "pt" else value, ("+" if signed or kind == "nps" else "") + _FORMATS[kind])


def _estimate(col: _Col, row: Mapping[str, Any]) -> str:
    """``mean ±half`` or ``mean [low, high]``, with `` *`` when marked significant."""
    mean, low, high = (float(row[f]) for f in (col.mean, col.low, col.high))
    text = _number(col.kind, mean, col.signed)
    if col.long:
        text += (" pt" if col.kind == "pt" else "") + f" [{_number(col.kind, low, col.signed)}, {_number(col.kind, high, col.signed)}]"
    elif high > low:
        half = (high - low) / 2
        text += f" ±{half * 100:.1f}" if col.kind in ("pct", "rel", "pt") else f" ±{half:{_FORMATS[col.kind]}}"
    if col.significant and bool(row[col.significant]):
        text += " *"
    return text


def _interval_table(labels: Sequence[str], rows: Sequence[tuple[Sequence[str], Mapping[str, Any]]], cols: Sequence[_Col], title: str | None = None):
    """A rich table: the label columns, then one "mean ±half" cell per interval column."""
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, title=title and Text(title), title_justify="left")
    for label in labels:
        table.add_column(Text(label))
    for col in cols:
        table.add_column(Text(col.header), justify="right")
    for texts, row in rows:
        table.add_row(*map(Text, texts), *(Text(_estimate(col, row)) for col in cols))
    return table


def _find(frame, **match):
    """The first row of ``frame`` whose columns equal ``match``, or None."""
    if frame.empty or not set(match) <= set(frame.columns):
        return None
    hit = frame
    for column, value in match.items():
        hit = hit[hit[column] == value]
    return hit.iloc[0] if len(hit) else None


def _console():
    """The console for tables: wide enough not to wrap them when the output is not a terminal."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 0)) or 200
    return Console(soft_wrap=False, width=width, markup=False, highlight=False)


def _market_line(scenario) -> str:
    market = scenario.market
    return f"{market.steps} steps of {market.step_days:g} days, {market.population:,} people"


def _print_replications(result, scenario) -> None:
    summary = result.summary
    n = int(summary["n"].iloc[0])
    console = _console()
    console.print(f"{scenario.title or scenario.name}\n{_market_line(scenario)}; n = {n} runs", style="bold")
    rows = [([row["firm"] + (" *" if row["firm"] == scenario.focal_firm else "")], row) for _, row in summary.iterrows()]
    console.print(_interval_table(["firm"], rows, [_Col.of(o) for o in _KEY_OUTCOMES]))
    console.print(_interval_table(["firm"], rows, [_Col.of(o) for o in _LOYALTY_MIX], "loyalty-type mix"))
    console.print(f"* focal firm. {_INTERVAL_NOTE}. retention: per year, over the last year.")


@app.command()
def compare(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files (YAML); the first is the baseline.", show_default=False)],
    variant: Annotated[
        Optional[list[str]],
        typer.Option(
            "--variant", metavar="NAME:KEY=VALUE[,KEY=VALUE...]",
            help="A variant of the first scenario with some keys changed, e.g. --variant cheap:firms.focal.price.list=9 (repeatable).",
        ),
    ] = None,
    replications: ReplicationsOpt = 10,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    jobs: JobsOpt = 0,
    scheduler: SchedulerOpt = None,
    out: OutOpt = Path("results"),
    exp_id: IdOpt = None,
    charts: ChartsOpt = True,
    quiet: QuietOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Compare strategies: two or more scenarios, or one scenario and named variants.

    Every variant runs with the same seeds (paired runs). Shows each variant's outcomes for its focal firm with 95% intervals, and the paired differences from the first (the baseline), marked when significant.

    Example: [bold]loyalty-sim compare scenarios/starter.yaml scenarios/service_led.yaml -n 20[/bold]

    Example: [bold]loyalty-sim compare scenarios/starter.yaml --variant cheap:firms.focal.price.list=9,firms.focal.rewards.enabled=false[/bold]
    """
    overrides = _parse_sets(set_)
    variants = [_parse_variant(item) for item in variant or []]
    loaded = _load_all(scenarios, overrides)
    labelled = list(zip(_labels(scenarios, loaded), loaded))
    for name, changes in variants:
        labelled.append((name, _load(scenarios[0], {**overrides, **changes}, context=f"--variant {name}: ")))
    if len(labelled) < 2:
        _fail("compare needs two or more scenario files, or one and a --variant NAME:KEY=VALUE")
    from sim.experiments import compare as run_compare

    opts = _Options(out, exp_id, seed, jobs, scheduler, charts, quiet, resume)
    result = _experiment(opts, run_compare, labelled, replications)
    _finish(opts, result, lambda: _print_comparison(result, {label: s.focal_firm for label, s in labelled}))


def _load_all(paths: Sequence[Path], overrides: dict[str, Any]) -> list:
    """Every scenario in ``paths``; the problems of all of them are reported at once (exit 2)."""
    from sim.api import load_scenario
    from sim.loader import ScenarioError

    loaded, problems = [], []
    for path in paths:
        try:
            loaded.append(load_scenario(path, overrides))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        _fail_problems(ScenarioError(problems))
    for path, spec in zip(paths, loaded):
        _check_resources(spec, path)
    return loaded


def _parse_variant(item: str) -> tuple[str, dict[str, Any]]:
    """``NAME:KEY=VALUE[,KEY=VALUE...]`` (a comma starts a new pair only before ``KEY=``)."""
    name, sep, rest = item.partition(":")
    name = name.strip()
    if not sep or not name or "=" in name or not rest.strip():
        _fail(f"--variant {item!r}: expected NAME:KEY=VALUE[,KEY=VALUE...], e.g. --variant cheap:firms.focal.price.list=9")
    pairs = re.split(r",(?=\s*[A-Za-z_][\w.\[\]'\"-]*\s*=)", rest)
    return name, _parse_sets(pairs, option=f"--variant {name}:")


def _labels(paths: Sequence[Path], scenarios: Sequence[Any]) -> list[str]:
    """Variant labels for scenario files: the scenario names, made unique by file name, then by position."""
    labels = [s.name for s in scenarios]
    if len(set(labels)) < len(labels):
        labels = [p.stem for p in paths]
    if len(set(labels)) < len(labels):
        labels = [f"{label}-{i + 1}" for i, label in enumerate(labels)]
    return labels


def _print_comparison(result, focal: dict[str, str]) -> None:
    summary, differences = result.summary, result.extra["differences"]
    baseline = next(iter(focal))
    n = int(summary["n"].iloc[0])
    own = {v: _find(summary, variant=v, firm=firm) for v, firm in focal.items()}
    rows = [([v + (" (baseline)" if v == baseline else ""), focal[v]], row) for v, row in own.items() if row is not None]
    paired = {v: _find(differences, variant=v, firm=firm) for v, firm in focal.items() if v != baseline}
    console = _console()
    console.print(f"Comparison of {len(focal)} strategies (the focal firm of each); n = {n} runs each, the same seeds in every variant", style="bold")
    console.print(_interval_table(["variant", "firm"], rows, [_Col.of(o) for o in _COMPARED_OUTCOMES]))
    console.print(_interval_table(["variant", "firm"], rows, [_Col.of(o) for o in _LOYALTY_MIX], "loyalty-type mix"))
    title = f"paired difference from {baseline} (* significant: the 95% interval excludes 0)"
    diff_rows = [([v, focal[v]], row) for v, row in paired.items() if row is not None]
    console.print(_interval_table(["variant", "firm"], diff_rows, [_Col.diff(o) for o in _COMPARED_OUTCOMES], title))
    missing = [v for v, row in paired.items() if row is None]
    if missing:
        console.print(f"no paired difference for {', '.join(missing)}: its focal firm is not a firm of {baseline}")
    console.print(f"{_INTERVAL_NOTE}; differences of rates in points.")


@app.command()
def sweep(
    scenario: ScenarioArg,
    grid: Annotated[
        list[str],
        typer.Option(
            "--set", metavar="KEY=START:STOP:COUNT|KEY=V1,V2",
            help="A key to vary: COUNT evenly spaced values from START to STOP, or a list of values (repeatable: every combination is run).",
            show_default=False,
        ),
    ],
    outcome: Annotated[str, typer.Option("--outcome", help="The outcome that picks the best point, e.g. npv, cumulative_profit, customers, retention_rate_annual.")] = "npv",
    firm: Annotated[Optional[str], typer.Option("--firm", help="Whose outcome (default: the focal firm).")] = None,
    replications: ReplicationsOpt = 10,
    seed: SeedOpt = None,
    jobs: JobsOpt = 0,
    scheduler: SchedulerOpt = None,
    out: OutOpt = Path("results"),
    exp_id: IdOpt = None,
    charts: ChartsOpt = True,
    quiet: QuietOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """Sweep scenario keys over a grid of values and find the best point.

    Every combination of the values runs with the same seeds. Shows the outcome at each point with its 95% interval, and the best point.

    Example: [bold]loyalty-sim sweep scenarios/starter.yaml --set firms.focal.rewards.points_rate=0.01:0.10:10 --outcome npv[/bold]

    Example: [bold]loyalty-sim sweep scenarios/starter.yaml --set firms.focal.price.list=9,10,11 --set firms.focal.community.enabled=true,false[/bold]
    """
    from sim.experiments import ExperimentError, parse_grid
    from sim.experiments import sweep as run_sweep

    spec = _load(scenario)
    try:
        values = parse_grid(grid)
    except ExperimentError as exc:
        _fail(str(exc))
    opts = _Options(out, exp_id, seed, jobs, scheduler, charts, quiet, resume)
    result = _experiment(opts, run_sweep, spec, values, replications, outcome=outcome, firm=firm)
    _finish(opts, result, lambda: _print_sweep(result, list(values), outcome, firm or spec.focal_firm))


def _print_sweep(result, keys: list[str], outcome: str, firm: str) -> None:
    own = result.summary[result.summary["firm"] == firm]
    best = result.extra["best"].iloc[0]
    rows = [([*(str(row[k]) for k in keys), row["variant"] + (" *" if row["variant"] == best["variant"] else "")], row) for _, row in own.iterrows()]
    console = _console()
    console.print(f"Sweep of {', '.join(keys)}: {outcome} of {firm}; n = {int(own['n'].iloc[0])} runs per point, the same seeds at every point", style="bold")
    console.print(_interval_table([*keys, "point"], rows, [_Col.of(outcome, long=True)]))
    point = ", ".join(f"{k} = {v}" for k, v in best["parameters"].items())
    console.print(f"best point (*): {point}: {outcome} {_estimate(_Col(outcome, _OUTCOME_VIEW[outcome][1], 'mean', 'ci_low', 'ci_high', long=True), best)}")
    console.print("[low, high]: the 95% interval of the mean")


@app.command("retention-effect")
def retention_effect(
    scenario: ScenarioArg,
    gain: Annotated[float, typer.Option("--gain", min=0, max=100, help="The headline retention gain, in points of annual retention.")] = 5.0,
    curve: Annotated[str, typer.Option("--curve", metavar="G1,G2,...", help="Retention gains (points) for the curve.")] = "0,2.5,5,7.5,10",
    replications: ReplicationsOpt = 10,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    jobs: JobsOpt = 0,
    scheduler: SchedulerOpt = None,
    out: OutOpt = Path("results"),
    exp_id: IdOpt = None,
    charts: ChartsOpt = True,
    quiet: QuietOpt = False,
    resume: ResumeOpt = False,
) -> None:
    """The retention effect: how much more the focal firm earns when it keeps a few more points of its customers.

    The market runs with and without the gain with the same seeds (paired runs). Shows the uplift in profit, NPV and customer equity with 95% intervals, against the published 25%-95% profit uplift for 5 points, the uplift curve over the gains, and where the headline gain's cumulative-profit uplift comes from (customers kept, customers won, margin per customer, costs).

    Example: [bold]loyalty-sim retention-effect scenarios/starter.yaml --gain 5 --curve 0,2.5,5,7.5,10 -n 20[/bold]
    """
    from sim.experiments import retention_effect as run_effect

    gains = []
    for item in curve.split(","):
        try:
            gains.append(float(item))
        except ValueError:
            _fail(f"--curve {curve!r}: expected retention gains in points separated by commas, e.g. 0,2.5,5,7.5,10")
    spec = _load(scenario, set_)
    opts = _Options(out, exp_id, seed, jobs, scheduler, charts, quiet, resume)
    result = _experiment(opts, run_effect, spec, replications, gains=gains, headline=gain)
    _finish(opts, result, lambda: _print_retention_effect(result, spec, gain))


_UPLIFTS = (("profit_last_year", "profit (last year)"), ("cumulative_profit", "cumulative profit"), ("npv", "NPV"), ("customer_equity", "customer equity"))


def _print_retention_effect(result, scenario, gain: float) -> None:
    from rich.table import Table
    from rich.text import Text

    from sim.experiments import PUBLISHED_BAND

    curve = result.extra["effect"]
    row = _find(curve, retention_gain_points=gain)
    n = int(result.summary["n"].iloc[0])
    console = _console()
    console.print(f"Retention effect for {scenario.focal_firm} in {scenario.title or scenario.name}", style="bold")
    console.print(f"{_market_line(scenario)}; {gain:g} points more retention a year; n = {n} paired runs (the same seeds with and without)")
    achieved = _Col.effect("retention_rate_run", "change", long=True)
    console.print(f"retention achieved: {_estimate(achieved, row)} a year, over the run (asked: {gain:+g} pt)")
    table = Table(box=None, pad_edge=False, highlight=False)
    for header in ("focal firm", "change", "uplift"):
        table.add_column(header, justify="right" if table.columns else "left")
    for name, label in _UPLIFTS:
        table.add_row(label, *(Text(_estimate(_Col.effect(name, measure, long=True), row)) for measure in ("change", "uplift")))
    console.print(table)
    low, high = PUBLISHED_BAND
    console.print(f"published: {low:+.0%} to {high:+.0%} profit from 5 points more retention (for reference)")
    cols = [_Col.effect("retention_rate_run", "change", "retention")] + [_Col.effect(name, "uplift", label) for name, label in _UPLIFTS]
    rows = [([f"{r['retention_gain_points']:g}"], r) for _, r in curve.iterrows()]
    console.print(_interval_table(["gain (points)"], rows, cols, "uplift by retention gain"))
    console.print("[low, high] and ±: the 95% interval of the mean paired difference. retention: in points a year; the rest relative to the run without the gain.")
    _print_uplift_sources(console, row, gain)


#: The parts of the change in cumulative profit (retention_effect.csv, source_<part>), as printed.
_UPLIFT_SOURCES = (
    ("kept_margin", "customers kept (their margin)"),
    ("word_of_mouth", "customers won, net (word of mouth vs. fewer to win)"),
    ("tenure_growth", "margin per customer (tenure, mix)"),
    ("other", "acquisition and fixed costs"),
)


def _print_uplift_sources(console, row, gain: float) -> None:
    """Where the headline gain's change in cumulative profit comes from (sim.experiments.uplift_sources)."""
    from rich.table import Table
    from rich.text import Text

    if row is None or "source_kept_margin" not in row.index:  # a folder written before the decomposition
        return

    def money(name: str) -> _Col:
        return _Col(name, "money", f"source_{name}", f"source_{name}_ci_low", f"source_{name}_ci_high", True, long=True)

    table = Table(box=None, pad_edge=False, highlight=False, title=Text(f"where the uplift comes from ({gain:g} points; cumulative profit)"), title_justify="left")
    for header in ("source", "change", "share"):
        table.add_column(header, justify="right" if table.columns else "left")
    for name, label in _UPLIFT_SOURCES:
        table.add_row(label, Text(_estimate(money(name), row)), _number("pct", row[f"source_{name}_share"]))
    total = _Col("total", "money", "cumulative_profit_change", "cumulative_profit_change_ci_low", "cumulative_profit_change_ci_high", True, long=True)
    table.add_row("total: change in cumulative profit", Text(_estimate(total, row)), _number("pct", 1.0 if row["cumulative_profit_change"] else float("nan")))
    console.print(table)
    counts = {name: _number("count", row[f"source_{name}"], True) for name in ("customers_kept", "customers_won")}
    console.print(f"by the end of the run, against the run without the gain: {counts['customers_kept']} customers kept (fewer defections), {counts['customers_won']} won (net)")
    saved = money("acquisition_saved")
    console.print(
        f"not in the profit above (a counterfactual): acquisition spending saved if the firm only replaced the customers it loses: "
        f"{_estimate(saved, row)} ({_number('pct', row['source_acquisition_saved_share'])} of the uplift)"
    )
    console.print("share: of the mean change in cumulative profit; the four parts add up to it (docs/experiments.md).")


@app.command()
def lesson(
    name: Annotated[Optional[str], typer.Argument(help="The lesson to run (see --list).", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", "-l", help="List the lessons and exit.")] = False,
    replications: Annotated[Optional[int], typer.Option("--replications", "-n", min=2, help="Runs of each variant (default: the lesson's own).")] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    jobs: JobsOpt = 0,
    scheduler: SchedulerOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder under which the lesson's results (<out>/lessons/<lesson>/...) are written.")] = Path("results"),
    exp_id: IdOpt = None,
    lessons_dir: Annotated[Optional[Path], typer.Option("--lessons", help="Folder holding index.lessons (default: the shipped scenarios/lessons).")] = None,
    charts: ChartsOpt = True,
    quiet: QuietOpt = False,
) -> None:
    """Run a lesson of the teaching kit: its scenarios, charts, the trainer's note and the lesson's claims checked.

    Example: [bold]loyalty-sim lesson --list[/bold]

    Example: [bold]loyalty-sim lesson expectations -n 20[/bold]
    """
    from sim.lessons import claim_line, load_lessons, run_lesson
    from sim.loader import ScenarioError

    try:
        lessons = load_lessons(lessons_dir)
    except ScenarioError as exc:
        _fail_problems(exc)
    if list_ or name is None:
        console = _console()
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for header in ("lesson", "course", "what it shows"):
            table.add_column(header)
        for key, chosen in lessons.items():
            table.add_row(key, chosen.sections, chosen.title)
        console.print(table)
        if name is None and not list_:
            console.print("run one with: loyalty-sim lesson NAME")
        return
    if name not in lessons:
        import difflib

        hint = difflib.get_close_matches(name, list(lessons), n=1)
        _fail(f"unknown lesson {name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + "; loyalty-sim lesson --list lists them")
    chosen = lessons[name]
    from sim.experiments import ExperimentError

    n_jobs = jobs if jobs > 0 else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with _progress(quiet) as progress:
            result = run_lesson(
                chosen, replications=replications, overrides=_parse_sets(set_), out=out, jobs=n_jobs, scheduler=scheduler,
                seed=seed, exp_id=exp_id, progress=progress, charts=charts,
            )
    except ScenarioError as exc:
        _fail_problems(exc)
    except FileExistsError as exc:
        _fail(f"{exc}; choose another --id")
    except (ExperimentError, KeyError) as exc:
        _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
    if quiet:
        typer.echo(str(result.folder))
        return
    typer.echo(f"{chosen.title}  ({chosen.sections})")
    typer.echo(chosen.note())
    typer.echo("Claims (paired differences, 95% intervals):")
    for claim in result.claims:
        typer.echo(f"  {claim_line(claim)}")
    charts_dir = result.folder / "charts"
    if charts and charts_dir.is_dir():
        typer.echo("charts: " + ", ".join(sorted(p.name for p in charts_dir.glob("*.png"))))
    typer.echo(f"results: {result.folder}")


@app.command()
def dashboard(
    scenario: Annotated[Optional[Path], typer.Argument(help="Scenario to start with (default: scenarios/starter.yaml).", show_default=False)] = None,
    lesson_name: Annotated[Optional[str], typer.Option("--lesson", help="Start with this lesson's scenario instead (see loyalty-sim lesson --list).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; 127.0.0.1 keeps the dashboard on this computer, 0.0.0.0 opens it to the room's network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8765,
    population: Annotated[Optional[int], typer.Option("--population", min=100, help="People in the market (default: the scenario's, at most 5,000, so steps stay quick).")] = None,
) -> None:
    """Start the classroom dashboard (Mesa SolaraViz) in the browser: levers as sliders, live charts, the social network.

    Needs the dashboard extra: pip install 'loyalty-sim[dashboard]'. Open the printed address in a browser; stop with Ctrl+C.

    Example: [bold]loyalty-sim dashboard --lesson rewards_end[/bold]

    Example: [bold]loyalty-sim dashboard scenarios/service_led.yaml --host 0.0.0.0 --port 8080[/bold]
    """
    import importlib.util
    import subprocess

    missing = [m for m in ("solara", "mesa.visualization", "solara_assets") if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        _fail(f"the dashboard needs the dashboard extra ({', '.join(missing)} not installed): pip install 'loyalty-sim[dashboard]'")
    if scenario is not None and lesson_name is not None:
        _fail("give a scenario file or --lesson NAME, not both")
    if lesson_name is not None:
        from sim.lessons import load_lessons
        from sim.loader import ScenarioError

        try:
            lessons = load_lessons()
        except ScenarioError as exc:
            _fail_problems(exc)
        if lesson_name not in lessons:
            _fail(f"unknown lesson {lesson_name!r}; loyalty-sim lesson --list lists them")
        scenario = lessons[lesson_name].scenario
    if scenario is None:
        from sim.dashboard import scenario_choices

        scenario = scenario_choices().get("starter", Path("scenarios/starter.yaml"))
    spec = _load(scenario)  # a broken file is reported here, before the server starts
    from sim import dashboard as board

    env = {
        **os.environ,
        board.ENV_SCENARIO: str(Path(scenario).resolve()),
        board.ENV_POPULATION: str(population or min(spec.market.population, 5000)),
        **board.SERVER_ENV,
    }
    app_file = Path(board.__file__).with_name("dashboard_app.py")
    command = [sys.executable, "-m", "solara", "run", str(app_file), "--host", host, "--port", str(port), "--production", "--no-open", "--log-level", "warning"]
    typer.echo(f"dashboard: http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{port}/  ({spec.title or spec.name}; Ctrl+C stops it)")
    sys.stdout.flush()
    if os.name == "posix":  # the server takes this process's place, so stopping this command stops the server
        os.execve(sys.executable, command, env)
    try:
        raise typer.Exit(subprocess.call(command, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A results folder: of a run, an experiment (compare, sweep, retention effect, replications) or a lesson.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the page here instead of RESULTS_DIR/report.html.")] = None,
) -> None:
    """Render a one-page HTML report of a results folder for class: key figures, charts, and a lesson's note and claims.

    The page is self-contained (charts embedded), ready to print or hand out.

    Example: [bold]loyalty-sim report results/starter/20260101-120000-s42-1a2b3c4d[/bold]
    """
    from sim.report import ReportError, render_report

    try:
        written = render_report(folder, output)
    except ReportError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {written}")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Scenario files to check.", show_default=False)]) -> None:
    """Check scenario files without running them; every problem is listed with its key path and line.

    Example: [bold]loyalty-sim validate scenarios/*.yaml[/bold]
    """
    from sim.api import load_scenario
    from sim.loader import ScenarioError

    failed: list = []
    for path in files:
        try:
            spec = load_scenario(path)
        except ScenarioError as exc:
            failed.extend(exc.problems)
            continue
        typer.echo(f"ok: {path} ({spec.name}: {len(spec.firms)} firms, {len(spec.segments)} segments, {spec.market.steps} steps)")
    if failed:
        _fail_problems(ScenarioError(failed))


@app.command()
def calibrate(
    kpi_file: Annotated[Path, typer.Argument(help="KPI file (YAML): the scenario, the observed KPIs and the parameters to fit with their ranges.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the calibrated scenario and calibration.json (default: results/calibrate/<scenario name>).")] = None,
    max_evaluations: Annotated[int, typer.Option("--max-evaluations", min=4, help="Upper bound on parameter points simulated in the least-squares search (each runs every replication).")] = 40,
    screen: Annotated[int, typer.Option("--screen", min=0, help="Points of the Sobol screen of the parameter box before the search.")] = 8,
    quiet: QuietOpt = False,
) -> None:
    """Fit scenario parameters to the KPIs a firm observes (retention, NPS, repeat purchase, tenure ...), by simulation with replications.

    Reports each fitted value with its standard error and the remaining misfit of every KPI, and writes the calibrated scenario file. The KPI file format is in docs/validation.md.

    Example: [bold]loyalty-sim calibrate scenarios/calibration/observed.kpi[/bold]
    """
    from sim.calibrate import calibrate as fit
    from sim.calibrate import load_spec, write_outputs
    from sim.loader import ScenarioError

    try:
        spec = load_spec(kpi_file)
    except ScenarioError as exc:
        _fail_problems(exc)
    folder = out or Path("results") / "calibrate" / spec.scenario.name
    if not quiet:
        _err(f"calibrating {len(spec.parameters)} parameter(s) to {len(spec.kpis)} KPI(s), {spec.replications} runs per point ...")
    progress = None if quiet else (lambda n: _err(f"  {n} points simulated"))
    result = write_outputs(fit(spec, screen=screen, max_evaluations=max_evaluations, progress=progress), folder)
    if quiet:
        typer.echo(str(result.scenario_file))
        return
    typer.echo(f"{'parameter':<40} {'fitted':>10} {'sd':>9} {'range':>18}")
    for p in spec.parameters:
        typer.echo(f"{p.path:<40} {result.fitted[p.path]:>10.4g} {result.sd[p.path]:>9.2g} {f'[{p.low:g}, {p.high:g}]':>18}")
    typer.echo(f"\n{'KPI':<28} {'observed':>10} {'simulated':>10} {'z':>6}")
    for k in result.kpis:
        typer.echo(f"{k['kpi']:<28} {k['observed']:>10.4g} {k['simulated']:>10.4g} {k['z']:>6.2f}")
    typer.echo(f"misfit chi2 = {result.chi2:.2f} over {len(result.kpis)} KPIs ({result.evaluations} points simulated)")
    typer.echo(f"calibrated scenario: {result.scenario_file}\nreport: {result.report_file}")


@app.command("validate-model")
def validate_model(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.md, report.json and charts/.")] = Path("results/validation"),
    quick: Annotated[bool, typer.Option("--quick", help="Smaller markets and fewer replications (about 8 s).")] = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only this check (repeatable), e.g. --only bass.")] = None,
) -> None:
    """Run the validation suite: closed-form verification (CLV, cohort survival, Bass diffusion) and the stylised facts; write a report with charts.

    Exit code 0 when every check passes, 1 when one fails.

    Example: [bold]loyalty-sim validate-model --out results/validation[/bold]
    """
    from sim.validation import CLOSED_FORMS, FACTS, run_suite

    known = [*CLOSED_FORMS, *FACTS]
    for name in only or []:
        if name not in known:
            _fail(f"--only {name!r}: unknown check; choose from {', '.join(known)}")
    checks = run_suite(out, quick=quick, only=only, progress=lambda name, c: _err(f"{'pass' if c.passed else 'FAIL'}  {name}: {c.claim}"))
    passed = sum(c.passed for c in checks)
    typer.echo(f"{passed} of {len(checks)} checks passed; report: {out / 'report.md'}")
    if passed < len(checks):
        raise typer.Exit(1)


@app.command("laws")
def laws_command(
    scenarios: Annotated[Optional[list[Path]], typer.Argument(help="Scenario files to run the laws on.", show_default=False)] = None,
    replications: Annotated[int, typer.Option("--replications", "-n", min=2, help="Paired replications per law and market.")] = 6,
    generated: Annotated[int, typer.Option("--generated", "-g", min=0, help="Also run on K generated markets (sim.laws.generate_market, seeds 1..K).")] = 0,
    population: Annotated[Optional[int], typer.Option("--population", min=1, help="Shrink every market to this many people (money per market scaled with it).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Shrink every market to this many steps.")] = None,
    law: Annotated[Optional[list[str]], typer.Option("--law", help="Run only this law (repeatable); default: every law.", metavar="ID")] = None,
    listing: Annotated[bool, typer.Option("--list", help="Print the table of laws and exit.")] = False,
) -> None:
    """Check the behaviour laws (sim.laws): each lever must move each measure in its stated direction, paired replications with common random numbers, 95% intervals.

    Exit code 0 when no law fails, 1 when one fails (or a run crashes), 2 on a usage mistake.

    Example: [bold]loyalty-sim laws scenarios/starter.yaml --generated 3 --population 4000 --steps 48[/bold]
    """
    from sim import laws as L
    from sim.loader import ScenarioError

    if listing:
        typer.echo(L.describe())
        return
    chosen = L.LAWS
    if law:
        unknown = [i for i in law if i not in L.LAWS_BY_ID]
        if unknown:
            _fail(f"--law {unknown[0]!r}: unknown law; see loyalty-sim laws --list")
        chosen = [L.LAWS_BY_ID[i] for i in law]
    if not scenarios and not generated:
        _fail("give scenario files and/or --generated K, e.g. loyalty-sim laws scenarios/starter.yaml --generated 3")
    sizes = {k: v for k, v in (("market.population", population), ("market.steps", steps)) if v is not None}
    markets = []
    try:
        for path in scenarios or []:
            markets.append(L.load_market(path, sizes or None))
        for seed in range(1, generated + 1):
            market = L.generated_markets([seed])[0]
            markets.append(L.Market(market.name, L.shrink(market.scenario, sizes)) if sizes else market)
    except ScenarioError as exc:
        _fail_problems(exc)
    typer.echo(f"{'law':<48} {'market':<16} {'verdict':<7} estimate [95% interval]")

    def show(result) -> None:
        estimate = "; ".join(f"{L.fmt(c.mean)} [{L.fmt(c.low)}, {L.fmt(c.high)}] {c.direction}" for c in result.checks) or result.reason
        typer.echo(f"{result.law.id:<48} {result.market:<16} {result.status:<7} {estimate}")

    results = L.check_all(chosen, markets, replications, progress=show)
    failed = [r for r in results if r.failed]
    for r in failed:
        _err(f"FAIL {r.message}")
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "error", "skip")}
    typer.echo(f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} crashed, {counts['skip']} skipped "
               f"({len(chosen)} laws, {len(markets)} markets, {replications} replications)")
    if failed:
        raise typer.Exit(1)


@app.command()
def verify(
    folder: Annotated[Path, typer.Argument(help="A results folder: a run (results/<name>/<run-id>) or an experiment.", show_default=False)],
    check_only: Annotated[bool, typer.Option("--check-only", help="Only check the files against the folder's manifest (no re-run).")] = False,
    jobs: JobsOpt = 1,
) -> None:
    """Re-run a stored run or experiment from its resolved scenario and seed, and report whether every file reproduces byte for byte.

    Exit code 0: every file reproduces (or, with --check-only, the folder matches its manifest); 1: a file differs or the folder is damaged; 2: not a results folder.

    Example: [bold]loyalty-sim verify results/starter/20261122-101500-s42-1a2b3c4d[/bold]
    """
    from sim.manifest import FolderError, require_intact
    from sim.verify import VerifyError, verify as run_verify

    if not folder.is_dir():
        _fail(f"{folder}: not a folder")
    try:
        if check_only:
            manifest = require_intact(folder)
            typer.echo(f"intact: {folder} ({len(manifest['files'])} files match manifest.json)")
            return
        result = run_verify(folder, jobs=jobs if jobs > 0 else (os.cpu_count() or 1))
    except FolderError as exc:
        if not (folder / "manifest.json").exists() and not (folder / "summary.json").exists() and not (folder / "experiment.json").exists():
            _fail(f"{folder}: not a results folder (no manifest.json, summary.json or experiment.json)")
        _fail_folder(exc)
    except VerifyError as exc:
        _fail(str(exc))
    for rel in result.different:
        _err(f"differs: {rel}")
    for rel in result.missing:
        _err(f"not produced by the re-run: {rel}")
    for rel in result.extra:
        _err(f"produced by the re-run but not in the folder: {rel}")
    for key, (then, now) in result.environment.items():
        _err(f"note: {key} was {then}, is now {now}")
    total = len(result.same) + len(result.different) + len(result.missing)
    if result.reproduces:
        typer.echo(f"reproduced: {folder} ({result.kind}, all {total} files identical)")
        return
    typer.echo(f"does not reproduce: {folder} ({len(result.same)} of {total} files identical)")
    raise typer.Exit(1)


@app.command()
def customer(
    scenario: ScenarioArg,
    customer_id: Annotated[int, typer.Argument(help="Customer number (0 .. population - 1).", min=0, show_default=False)],
    step: Annotated[Optional[int], typer.Option("--step", help="Show the customer after this step (default: the last).", min=0)] = None,
    seed: SeedOpt = None,
    set_: SetOpt = None,
) -> None:
    """Show one customer as an agent: expectation, perceived value, satisfaction, trust, attachment, switching cost, points, tenure, loyalty type.

    Example: [bold]loyalty-sim customer scenarios/starter.yaml 42 --step 12[/bold]
    """
    spec = _load(scenario, set_)
    if customer_id >= spec.market.population:
        _fail(f"customer {customer_id} does not exist: the population is {spec.market.population}")
    until = spec.market.steps if step is None else step
    if until > spec.market.steps:
        _fail(f"--step {until} is after the last step ({spec.market.steps})")
    from sim.model import LoyaltyModel

    model = LoyaltyModel(spec, seed=seed)
    while model.steps < until:
        model.step()
    typer.echo(f"after step {model.steps}:")
    typer.echo(str(model.customer(customer_id)))


@app.command()
def reference(output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of the terminal.")] = None) -> None:
    """Print the reference of every scenario key (default, unit, meaning), generated from the schema.

    Example: [bold]loyalty-sim reference -o docs/scenario-reference.md[/bold]
    """
    from sim.reference import markdown_reference

    _write_or_print(markdown_reference(), output)


@app.command()
def schema(output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of the terminal.")] = None) -> None:
    """Export the JSON Schema of scenario files, for editor completion and checks.

    Example: [bold]loyalty-sim schema -o scenario.schema.json[/bold]
    """
    from sim.reference import json_schema

    _write_or_print(json_schema(), output)


def _write_or_print(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    from sim.manifest import atomic_write_text

    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, text)
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The command line: parses arguments, hands off to the API, and turns user mistakes into
clear messages with exit code 2 (never a traceback)."""

from __future__ import annotations

import sys
import time
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


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _fail_problems(exc) -> None:
    for problem in exc.problems:
        _err(f"error: {problem}")
    sources = sorted({p.source for p in exc.problems})
    n = len(exc.problems)
    _err(f"{n} problem{'s' if n != 1 else ''} in {', '.join(sources)}")
    raise typer.Exit(EXIT_USER_ERROR)


def _parse_sets(items: list[str] | None) -> dict[str, Any]:
    import yaml

    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            _err(f"error: --set {item!r}: expected KEY=VALUE, e.g. --set firms.focal.price.list=9")
            raise typer.Exit(EXIT_USER_ERROR)
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            overrides[key.strip()] = raw
    return overrides


def _load(path: Path, sets: list[str] | None = None):
    from sim.api import load_scenario
    from sim.loader import ScenarioError

    try:
        return load_scenario(path, _parse_sets(sets))
    except ScenarioError as exc:
        _fail_problems(exc)


@app.command()
def run(
    scenario: ScenarioArg,
    seed: SeedOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder under which results/<scenario>/<run-id>/ is written.")] = Path("results"),
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Name of the run folder (default: time, seed and scenario hash).")] = None,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Draw the PNG charts.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the results folder.")] = False,
) -> None:
    """Run a scenario and write its results folder (tables, summary, charts).

    Example: [bold]loyalty-sim run scenarios/starter.yaml --seed 7 --set firms.focal.price.list=9[/bold]
    """
    spec = _load(scenario, set_)
    from sim.model import LoyaltyModel
    from sim.results import write_run

    started = time.perf_counter()
    model = LoyaltyModel(spec, seed=seed)
    built = time.perf_counter()
    _run_with_progress(model, quiet)
    ran = time.perf_counter()
    try:
        folder = write_run(
            model, out, rid=run_id, charts=charts, source=str(scenario),
            timings={"build_seconds": round(built - started, 3), "run_seconds": round(ran - built, 3)},
        )
    except FileExistsError as exc:
        _err(f"error: {exc}; choose another --run-id")
        raise typer.Exit(EXIT_USER_ERROR) from None
    if quiet:
        typer.echo(str(folder))
        return
    _print_summary(folder)
    typer.echo(f"results: {folder}  ({ran - started:.1f} s simulated, {time.perf_counter() - ran:.1f} s writing)")


def _run_with_progress(model, quiet: bool) -> None:
    if quiet or not sys.stderr.isatty():
        model.run()
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("step {task.completed}/{task.total}"), TimeRemainingColumn(), transient=True) as bar:
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
        _err(f"error: customer {customer_id} does not exist: the population is {spec.market.population}")
        raise typer.Exit(EXIT_USER_ERROR)
    until = spec.market.steps if step is None else step
    if until > spec.market.steps:
        _err(f"error: --step {until} is after the last step ({spec.market.steps})")
        raise typer.Exit(EXIT_USER_ERROR)
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
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    typer.echo(f"wrote {output}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

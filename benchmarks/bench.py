"""Performance benchmark: the array engine against an idiomatic Mesa baseline.

    .venv/bin/python benchmarks/bench.py [--sizes 10000,100000,1000000]
        [--baseline-sizes 10000,100000] [--threads 1,2] [--steps 120] [--quick]

Runs the reference market (``benchmarks/reference.yaml``) with the engine
(``sim.model.LoyaltyModel``) at each of ``--sizes`` customers, once on each number of
``--threads`` (default: one, and every available core), and with the
one-agent-per-customer Mesa implementation (``benchmarks/mesa_baseline.py``, one core
whatever the machine) at each of ``--baseline-sizes``, side by side in one invocation. Every run is a fresh
subprocess, so its peak memory is its own. Prints one table (see
``benchmarks/README.md`` for what each column means) and writes it as CSV to
``results/benchmarks/<timestamp>.csv``.

A baseline run predicted to take longer than ``--baseline-budget`` seconds runs fewer
steps (a multiple of 12, at least 12) and its run time is scaled up to ``--steps``;
the table marks it and says by how much. ``--quick`` is a smoke check: engine at 2k
and 10k, baseline at 2k, 12 steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
SCENARIO = HERE / "reference.yaml"
DEFAULT_OUT = REPO_ROOT / "results" / "benchmarks"
#: Customer-steps per second assumed for the baseline before any baseline run has been timed.
BASELINE_RATE_GUESS = 25_000.0

COLUMNS = (
    ("implementation", "implementation", "{}"),
    ("threads", "threads", "{}"),
    ("customers", "customers", "{:,}"),
    ("steps", "steps", "{}"),
    ("build_s", "build s", "{:.2f}"),
    ("run_s", "run s", "{:.1f}"),
    ("customer_steps_per_s", "customer-steps/s", "{:,.0f}"),
    ("state_bytes_per_customer", "bytes/customer state", "{:,.0f}"),
    ("peak_rss_bytes_per_customer", "peak RSS/customer", "{:,.0f}"),
    ("measures_ms_per_step", "measures ms/step", "{:.1f}"),
    ("write_s", "write s", "{:.1f}"),
    ("end_to_end_s", "end-to-end s", "{:.1f}"),
    ("ratio", "engine/baseline", "{}"),
)


# --------------------------------------------------------------------------- child processes


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def timed_method(cls: type, name: str, clock: dict) -> None:
    """Wrap ``cls.name`` so that the seconds spent in it add up in ``clock['seconds']``."""
    original = getattr(cls, name)

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            clock["seconds"] += time.perf_counter() - start
            clock["calls"] += 1

    setattr(cls, name, timed)


def timed_run(model_class: type, measures: str | None, size: int, steps: int, seed: int, warm_population: int, **options):
    """Load, build and run the reference market with ``model_class(scenario, **options)``, the
    method ``measures`` (the measures of a step; None: none timed) timed; returns the model and
    the figures so far.

    A small market is run first, so the compiled code (the engine's kernels, and the package's
    helpers the baseline uses to build its firms' offers) is loaded, from the on-disk cache or
    compiled on a first run, before any clock starts: a one-off cost per process, reported on
    its own."""
    from sim.api import load_scenario

    warm = time.perf_counter()
    model_class(load_scenario(SCENARIO, {"market.population": warm_population, "market.steps": 2}), **options).run()
    warmup_s = time.perf_counter() - warm
    rss_start = peak_rss_bytes()
    clock = {"seconds": 0.0, "calls": 0}
    if measures is not None:
        timed_method(model_class, measures, clock)
    start = time.perf_counter()
    scenario = load_scenario(SCENARIO, {"market.population": size, "market.steps": steps, "market.seed": seed})
    loaded = time.perf_counter()
    model = model_class(scenario, **options)
    built = time.perf_counter()
    clock.update(seconds=0.0, calls=0)  # count the measures of the steps only
    model.run()
    ran = time.perf_counter()
    return model, {
        "warmup_s": warmup_s,
        "start": start,
        "load_s": loaded - start,
        "build_s": built - loaded,
        "run_s": ran - built,
        "steps_run": steps,
        "measures_s": clock["seconds"],
        "rss_start": rss_start,
        "rss_peak_run": peak_rss_bytes(),
    }


def engine_child(size: int, steps: int, seed: int, threads: int) -> dict:
    from sim.model import LoyaltyModel
    from sim.results import write_run

    model, figures = timed_run(LoyaltyModel, None, size, steps, seed, warm_population=200, threads=threads)
    figures["measures_s"] = steps * engine_measures_seconds(model)  # timed on their own: the step tallies out of a clock's reach
    with tempfile.TemporaryDirectory() as tmp:
        write_start = time.perf_counter()
        write_run(model, tmp, charts=False)
        written = time.perf_counter()
    start = figures.pop("start")
    return {
        **figures,
        "write_s": written - write_start,
        "end_to_end_s": written - start,
        "state_bytes": model.nbytes,
        "rss_peak": peak_rss_bytes(),
        "threads": model._split.threads,
    }


def engine_measures_seconds(model, repeats: int = 5) -> float:
    """Seconds the engine's measures of one step take: the step tallies the customers' state
    in its closing pass (``sim.measures.tally``, inside the compiled ``sim.engine.close``), out
    of reach of a clock, so the measures are taken again on their own on the state the run
    left (the tally on the model's threads, then the rest in ``sim.measures.compute``), and
    the fastest of ``repeats`` counts. Nothing is recorded."""
    from sim.measures import StepFlows, compute

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compute(
            model.steps, model.population, StepFlows.empty(len(model.firm_names)), model.ledger, model.offers, model.config.behaviour,
            model.metrics.table, model.steps_per_year, model.rates.discount_per_step, model._split,
        )
        times.append(time.perf_counter() - start)
    return min(times)


def agent_state_bytes(customers: list, sample: int = 1000) -> float:
    """Mean bytes of one customer agent: the object, its attribute dict, the values it owns
    (floats, ints, lists and what they hold). Shared objects (the model, firms, segments,
    other agents, constants such as the 0.0 every new customer starts with, cached small
    ints, booleans, None) are not counted: each object is counted once over the sample."""
    step = max(1, len(customers) // sample)
    chosen = customers[::step][:sample]
    seen: set[int] = set()
    total = 0
    for agent in chosen:

        def size(value) -> int:
            if id(value) in seen or value is None or isinstance(value, bool):
                return 0
            if isinstance(value, int) and -5 <= value <= 256:
                return 0
            if isinstance(value, (float, int, list)):
                seen.add(id(value))
                own = sys.getsizeof(value)
                if isinstance(value, list):
                    own += sum(size(v) for v in value if isinstance(v, (float, int)))
                return own
            return 0

        total += sys.getsizeof(agent) + sys.getsizeof(agent.__dict__) + sum(size(v) for v in vars(agent).values())
    return total / max(len(chosen), 1)


def baseline_child(size: int, steps_run: int, seed: int) -> dict:
    sys.path.insert(0, str(HERE))
    from mesa_baseline import BaselineModel, Customer

    model, figures = timed_run(BaselineModel, "record", size, steps_run, seed, warm_population=50)
    ran = time.perf_counter()
    model.metrics_frame()  # the baseline's results, as a table (it writes no files)
    framed = time.perf_counter()
    start = figures.pop("start")
    return {
        **figures,
        "write_s": framed - ran,
        "end_to_end_s": framed - start,
        "state_bytes": agent_state_bytes(list(model.agents_by_type[Customer])) * size,
        "rss_peak": peak_rss_bytes(),
        "threads": 1,
    }


def run_child(implementation: str, size: int, steps: int, steps_run: int, seed: int, threads: int = 1) -> dict:
    """Run one measurement in a fresh Python process and return its figures."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", implementation,
        "--size", str(size), "--steps", str(steps), "--steps-run", str(steps_run), "--seed", str(seed), "--thread-count", str(threads),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{implementation} at {size:,} customers failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the table


def table_row(implementation: str, size: int, steps: int, figures: dict) -> dict:
    """One row of the table from a child's figures; run time scaled to ``steps`` if fewer ran."""
    steps_run = figures["steps_run"]
    scale = steps / steps_run
    run_s = figures["run_s"] * scale
    measures_s = figures["measures_s"] * scale
    return {
        "implementation": implementation,
        "threads": figures["threads"],
        "customers": size,
        "steps": steps,
        "steps_run": steps_run,
        "build_s": figures["build_s"],
        "run_s": run_s,
        "customer_steps_per_s": size * steps_run / figures["run_s"],
        "state_bytes_per_customer": figures["state_bytes"] / size,
        "peak_rss_bytes_per_customer": (figures["rss_peak_run"] - figures["rss_start"]) / size,
        "peak_rss_with_write_bytes_per_customer": (figures["rss_peak"] - figures["rss_start"]) / size,
        "measures_ms_per_step": 1000.0 * measures_s / steps,
        "write_s": figures["write_s"],
        "load_s": figures["load_s"],
        "end_to_end_s": figures["load_s"] + figures["build_s"] + run_s + figures["write_s"],
        "ratio": "",
    }


def add_ratios(rows: list[dict]) -> None:
    """Engine customer-steps per second over the baseline's at the same size, on each engine row."""
    baseline = {r["customers"]: r["customer_steps_per_s"] for r in rows if r["implementation"] == "mesa-baseline"}
    for row in rows:
        if row["implementation"] == "engine" and row["customers"] in baseline:
            row["ratio"] = f"{row['customer_steps_per_s'] / baseline[row['customers']]:.0f}x"


def format_table(rows: list[dict]) -> str:
    header = [title for _, title, _ in COLUMNS]
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row[key]
            text = fmt.format(value) if value != "" else ""
            if key == "steps" and row["steps_run"] != row["steps"]:
                text += "*"
            cells.append(text)
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)]
    for row in rows:
        if row["steps_run"] != row["steps"]:
            out.append(
                f"* {row['implementation']} at {row['customers']:,}: ran {row['steps_run']} of {row['steps']} steps; "
                f"run, measures and end-to-end times scaled by {row['steps'] / row['steps_run']:g}"
            )
    return "\n".join(out)


def machine() -> str:
    import mesa
    import numpy

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, mesa {mesa.__version__}"
    )


def write_csv(rows: list[dict], out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stamp}.csv"
    fields = list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, "machine"])
        writer.writeheader()
        info = machine()
        for row in rows:
            writer.writerow({**row, "machine": info})
    return path


# --------------------------------------------------------------------------- main


def thread_counts(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts, got '{text}'") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("thread counts must be at least 1")
    return values


def sizes(text: str) -> list[int]:
    try:
        values = [int(v.replace("_", "")) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated customer counts, got '{text}'") from None
    if any(v < 10 for v in values):
        raise argparse.ArgumentTypeError("sizes must be at least 10 customers")
    return values


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=sizes, default=[10_000, 100_000, 1_000_000], help="engine sizes (customers)")
    parser.add_argument("--baseline-sizes", type=sizes, default=[10_000, 100_000], help="Mesa baseline sizes (customers)")
    parser.add_argument("--threads", type=thread_counts, default=None, help="engine thread counts (default: 1 and every available core)")
    parser.add_argument("--steps", type=int, default=120, help="steps per run (default 120, ten years of months)")
    parser.add_argument("--baseline-budget", type=float, default=180.0, help="seconds a baseline run may take before it runs fewer steps")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="smoke check: engine 2k and 10k, baseline 2k, 12 steps")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the CSV (default results/benchmarks)")
    parser.add_argument("--child", choices=["engine", "mesa-baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--thread-count", dest="child_threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--steps-run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.quick:
        args.sizes, args.baseline_sizes, args.steps = [2_000, 10_000], [2_000], 12
    if args.threads is None:
        from sim.parallel import available_cores

        args.threads = sorted({1, available_cores()})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child == "engine":
        print(json.dumps(engine_child(args.size, args.steps, args.seed, args.child_threads)))
        return 0
    if args.child == "mesa-baseline":
        print(json.dumps(baseline_child(args.size, args.steps_run, args.seed)))
        return 0

    from sim.parallel import threads_for

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    print(f"benchmark {stamp}: reference market {SCENARIO.relative_to(REPO_ROOT)}, {args.steps} steps, seed {args.seed}")
    print(f"machine: {machine()}", flush=True)
    rows: list[dict] = []
    baseline_rate = BASELINE_RATE_GUESS
    for size in sorted(set(args.sizes) | set(args.baseline_sizes)):
        for threads in sorted({threads_for(size, t) for t in args.threads}) if size in args.sizes else ():
            figures = run_child("engine", size, args.steps, args.steps, args.seed, threads)
            rows.append(table_row("engine", size, args.steps, figures))
            print(f"  engine        {size:>10,} on {figures['threads']} thread(s): run {figures['run_s']:.1f} s", flush=True)
        if size in args.baseline_sizes:
            steps_run = args.steps
            predicted = size * args.steps / baseline_rate
            if predicted > args.baseline_budget:
                steps_run = max(12, int(args.baseline_budget * baseline_rate / size) // 12 * 12)
                steps_run = min(steps_run, args.steps)
            figures = run_child("mesa-baseline", size, args.steps, steps_run, args.seed)
            row = table_row("mesa-baseline", size, args.steps, figures)
            rows.append(row)
            baseline_rate = row["customer_steps_per_s"]
            print(f"  mesa-baseline {size:>10,}: run {figures['run_s']:.1f} s ({steps_run} steps)", flush=True)
    add_ratios(rows)
    print()
    print(format_table(rows))
    path = write_csv(rows, args.out, stamp)
    try:
        shown = path.relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    print(f"\nwritten: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``tensorgates sweep``: a block's area, Fmax and throughput over a grid of design points, on
Dask (docs/sweeps.md).

Every point is a set of Dask tasks: generate (its Verilog digest keys the others), then, each
independent of the others, the Verilator regression (``--regress``), the block's own benchmark
figure (``--bench``) and synthesis per target. The client looks every task's record up in the
job cache before submitting it and stores each record as it arrives, so an interrupted sweep
resumes where it stopped, a rerun computes nothing, and workers need no shared disk. A task
that fails (tool crash, mismatch) is recorded with its reason, not cached, and the sweep goes
on; Dask retries a lost worker's tasks elsewhere.

Results: ``build/sweep/<name>/points.{parquet,csv}`` (one row per point and target),
``index.md`` with a Pareto plot per target, and ``journal.jsonl`` (each task's key and whether
this run computed it or found it cached).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateware.jobs import cache_key, dask_client, lookup, package_versions, store

__all__ = ["BENCH_LEVELS", "SWEEP_DIR", "Sweep", "parse_grid", "run_sweep"]

SWEEP_DIR = Path("build") / "sweep"
BENCH_LEVELS = ("quick", "full", "none")
TARGETS = ("ecp5", "ice40", "generic")
REGRESSION_SEED = 1
_ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- the tasks (run on workers)

def _timed(compute) -> dict:
    began = time.perf_counter()
    record = compute()
    return {**record, "seconds": round(time.perf_counter() - began, 3)}


def generate_point(block: str, settings: dict[str, str]) -> dict:
    """Generate the point's Verilog; its digest keys every other task of the point."""
    from gateware.generate import generate
    from gateware.registry import get_block
    from sim.runner import design_dir

    def compute() -> dict:
        config = get_block(block).config(settings)
        design = generate(config, design_dir(config))
        return {"digest": design.digest, "design": config.slug(),
                "verilog_bytes": design.verilog.stat().st_size}
    return _timed(compute)


def regress_point(block: str, settings: dict[str, str], seed: int) -> dict:
    """The block's randomized regression on Verilator."""
    from gateware.registry import get_block
    from sim.runner import simulate

    def compute() -> dict:
        result = simulate(get_block(block).config(settings), "verilator", seed=seed)
        return {"verdict": "PASS" if result.passed else "FAIL", "tests": result.tests,
                "failures": result.failures, "seed": seed, "messages": result.messages,
                "tools": package_versions("cocotb", "verilator")}
    return _timed(compute)


def bench_point(block: str, settings: dict[str, str], quick: bool) -> dict:
    """The block's own throughput figure (its registry entry's ``sweep_point``)."""
    from gateware.registry import get_block, load
    entry = get_block(block)
    return _timed(lambda: {**load(entry.sweep_point)(entry.config(settings), quick),
                           "tools": package_versions("cocotb", "verilator")})


def synth_point(block: str, settings: dict[str, str], target: str) -> dict:
    """Synthesis (and placement on FPGA targets) for ``target``."""
    from gateware.registry import get_block
    from synth.run import synthesize_design
    return _timed(lambda: synthesize_design(get_block(block).config(settings), target))


#: What a benchmark figure depends on besides the block's Verilog: the self-driving tops, their
#: cocotb modules, the runner that builds them and the per-block point functions.
_BENCH_SOURCES = ("gateware/bench_harness.py", "sim/bench_*.py", "sim/runner.py",
                  "sim/streams.py", "sim/testbench.py", "sim/tb_*.py", "benchmarks/points.py",
                  "benchmarks/simulation.py", "benchmarks/pim.py")


def _sources_digest(*patterns: str) -> str:
    """A digest of the project's Python sources matching ``patterns``: results that depend on
    testbench or benchmark code (not only on the Verilog) are keyed by it too."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in patterns for p in _ROOT.glob(pattern)):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- grid and points

def parse_grid(config_class: Any, grid: list[str], fixed: dict[str, str]) -> dict[str, list[str]]:
    """``["rows=4,8", "cols=4"]`` → ``{"rows": ["4", "8"], "cols": ["4"]}``; ``ValueError``
    naming the key or value that is wrong (unknown key, empty list, value not allowed)."""
    axes: dict[str, list[str]] = {}
    for item in grid:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--grid expects key=v1,v2,..., got {item!r}")
        if key in axes or key in fixed:
            raise ValueError(f"--grid {key}: given twice (in --grid or --set)")
        values = [value.strip() for value in text.split(",") if value.strip()]
        if not values:
            raise ValueError(f"--grid {key}: empty list of values")
        for value in values:
            try:
                config_class.check_value(key, value)
            except ValueError as error:
                raise ValueError(f"--grid {error}") from None
        axes[key] = list(dict.fromkeys(values))
    if not axes:
        raise ValueError("give at least one --grid key=v1,v2,...")
    for key, value in fixed.items():
        try:
            config_class.check_value(key, value)
        except ValueError as error:
            raise ValueError(f"--set {error}") from None
    return axes


@dataclass
class Point:
    settings: dict[str, str]        # --set and this point's grid values
    grid: dict[str, str]            # its grid values only
    config: Any
    digest: str | None = None
    design: str | None = None
    records: dict[str, dict] = field(default_factory=dict)    # task name → record
    errors: dict[str, str] = field(default_factory=dict)      # task name → reason


def expand(entry: Any, axes: dict[str, list[str]], fixed: dict[str, str]
           ) -> tuple[list[Point], list[tuple[dict, str]]]:
    """The cross product: valid points, and the invalid ones with the reason."""
    points, skipped = [], []
    for values in itertools.product(*axes.values()):
        grid = dict(zip(axes, values, strict=True))
        settings = {**fixed, **grid}
        try:
            config = entry.config(settings)
            config.check_rtl()
        except ValueError as error:
            skipped.append((grid, str(error)))
            continue
        points.append(Point(settings, grid, config))
    return points, skipped


# ---------------------------------------------------------------- the client

@dataclass
class Sweep:
    """What one sweep run did."""
    name: str
    folder: Path
    rows: list[dict]
    skipped: list[tuple[dict, str]]
    computed: int = 0
    cached: int = 0
    failed: int = 0
    interrupted: bool = False


def run_sweep(block: str, grid: list[str], *, fixed: dict[str, str] | None = None,
              targets: tuple[str, ...] = ("ecp5", "generic"), bench: str = "quick",
              regress: bool = False, scheduler: str | None = None, workers: int = 2,
              name: str | None = None, log=print) -> Sweep:
    """Run the sweep (``ValueError`` for a bad grid, target or bench level)."""
    from gateware.registry import get_block
    entry = get_block(block)
    fixed = dict(fixed or {})
    for target in targets:
        if target not in TARGETS:
            raise ValueError(f"--targets {target!r} is not allowed; expected some of "
                             f"{', '.join(TARGETS)}")
    if bench not in BENCH_LEVELS:
        raise ValueError(f"--bench {bench!r} is not allowed; expected one of "
                         f"{', '.join(BENCH_LEVELS)}")
    if workers < 1:
        raise ValueError(f"--workers {workers} is not allowed; expected at least 1")
    axes = parse_grid(entry.config_class, grid, fixed)
    points, skipped = expand(entry, axes, fixed)
    name = name or "-".join([block, *axes])
    folder = SWEEP_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(name, folder, [], skipped)
    for grid_values, reason in skipped:
        log(f"skipping {_label(grid_values)}: {reason}")
    command = {"block": block, "grid": axes, "fixed": fixed, "targets": list(targets),
               "bench": bench, "regress": regress}
    (folder / "sweep.json").write_text(json.dumps(command, indent=2) + "\n")
    try:
        _run(entry, points, sweep, targets=targets, bench=bench, regress=regress,
             scheduler=scheduler, workers=workers, log=log)
    except KeyboardInterrupt:
        sweep.interrupted = True
    sweep.rows = [row for point in points for row in _rows(point, targets, bench, regress)]
    _write(sweep, command, targets)
    return sweep


def _task_keys(entry: Any, point: Point, *, targets, bench: str, regress: bool
               ) -> dict[str, tuple[str, Any, tuple]]:
    """Task name → (cache key, function, arguments) for one generated point."""
    from synth.run import clock_target_mhz, keep_hierarchy_of, synth_key
    tools = package_versions("cocotb", "verilator")
    tasks = {}
    if regress:
        key = cache_key(kind="sweep-regress", verilog=point.digest, seed=REGRESSION_SEED,
                        sources=_sources_digest("sim/*.py", "golden/*.py"), tools=tools)
        tasks["regress"] = (key, regress_point, (entry.name, point.settings, REGRESSION_SEED))
    if bench != "none":
        key = cache_key(kind="sweep-bench", verilog=point.digest, quick=bench == "quick",
                        sources=_sources_digest(*_BENCH_SOURCES), tools=tools)
        tasks["bench"] = (key, bench_point, (entry.name, point.settings, bench == "quick"))
    for target in targets:
        tasks[f"synth:{target}"] = (synth_key(point.digest, target,
                                              clock_mhz=clock_target_mhz(entry.name),
                                              keep_hierarchy=keep_hierarchy_of(entry.name)),
                                    synth_point,
                                    (entry.name, point.settings, target))
    return tasks


def _run(entry, points: list[Point], sweep: Sweep, *, targets, bench, regress, scheduler,
         workers, log) -> None:
    from distributed import as_completed
    from tqdm import tqdm
    run_id = uuid.uuid4().hex[:12]
    per_point = 1 + regress + (bench != "none") + len(targets)
    journal = (sweep.folder / "journal.jsonl").open("a")
    with dask_client(workers=workers, scheduler=scheduler) as client:
        log(f"Dask dashboard: {client.dashboard_link}")
        log(f"{len(points)} design points x {per_point} tasks on "
            f"{len(client.scheduler_info()['workers'])} workers"
            + (f" ({len(sweep.skipped)} invalid points skipped)" if sweep.skipped else ""))
        bar = tqdm(total=len(points) * per_point, unit="task", file=sys.stderr, disable=None)
        meta: dict[Any, tuple[Point, str, str | None]] = {}
        remaining = {id(point): per_point for point in points}
        futures = as_completed()
        for point in points:
            future = client.submit(generate_point, entry.name, point.settings, pure=False)
            meta[future] = (point, "generate", None)
            futures.add(future)

        def settle(point: Point, task: str, key: str | None, how: str,
                   record: dict | None = None, error: str | None = None) -> None:
            if record is not None:
                point.records[task] = record
            if error is not None:
                point.errors[task] = error
            if how == "computed":
                sweep.computed += 1
            elif how == "cached":
                sweep.cached += 1
            else:
                sweep.failed += 1
            journal.write(json.dumps({"run": run_id, "design": point.design, "task": task,
                                      "key": key, "how": how, "error": error}) + "\n")
            journal.flush()
            bar.update(1)
            remaining[id(point)] -= 1
            if not remaining[id(point)]:
                bar.write(_point_line(point, targets))

        for future in futures:
            point, task, key = meta.pop(future)
            if future.status == "error":
                error = f"{type(future.exception()).__name__}: {future.exception()}"
                settle(point, task, key, "failed", error=error)
                if task == "generate":   # nothing else of the point can run
                    for other in _task_keys(entry, point, targets=targets, bench=bench,
                                            regress=regress):
                        settle(point, other, None, "failed", error=f"generate failed: {error}")
                continue
            record = future.result()
            if task == "generate":
                point.digest, point.design = record["digest"], record["design"]
                point.records["generate"] = record
                bar.update(1)
                remaining[id(point)] -= 1
                tasks = _task_keys(entry, point, targets=targets, bench=bench, regress=regress)
                for name, (task_key, function, arguments) in tasks.items():
                    hit = lookup(task_key)
                    if hit is not None:
                        settle(point, name, task_key, "cached", record=hit)
                        continue
                    submitted = client.submit(function, *arguments, pure=False,
                                              priority=_priority(name, record))
                    meta[submitted] = (point, name, task_key)
                    futures.add(submitted)
                if not tasks and not remaining[id(point)]:
                    bar.write(_point_line(point, targets))
                continue
            store(key, record)
            settle(point, task, key, "computed", record=record)
        bar.close()
    journal.close()


#: Relative cost of a task per byte of Verilog: placing and routing dominates.
_TASK_WEIGHT = {"synth:ecp5": 8, "synth:ice40": 6, "regress": 4, "synth:generic": 2, "bench": 1}


def _priority(task: str, generated: dict) -> int:
    """Dask runs queued tasks of higher priority first: the longest first (estimated from the
    task kind and the size of the Verilog), so that no long task is left to run alone at the
    end of the sweep while the other workers idle."""
    return _TASK_WEIGHT.get(task, 1) * generated.get("verilog_bytes", 0)


# ---------------------------------------------------------------- rows, Pareto, files

def _label(grid: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in grid.items())


def _point_line(point: Point, targets) -> str:
    parts = [_label(point.grid)]
    bench = point.records.get("bench")
    if bench:
        parts.append(f"{bench['figure']} {bench['value']:.4g}")
    if "regress" in point.records:
        parts.append(f"regression {point.records['regress']['verdict']}")
    for target in targets:
        synth = point.records.get(f"synth:{target}")
        if synth and target == "generic":
            parts.append(f"generic {synth.get('transistors')} transistors")
        elif synth:
            fmax = synth.get("fmax_mhz")
            parts.append(f"{target} {synth.get('luts')} LUT"
                         + (f" {fmax:.1f} MHz" if fmax else "")
                         + ("" if synth.get("fits") is not False
                            else f" (does not fit: {synth.get('overflow')})"))
    if point.errors:
        parts.append("errors: " + "; ".join(f"{k}: {v}" for k, v in point.errors.items()))
    return "  " + ", ".join(parts)


def _rows(point: Point, targets, bench: str, regress: bool) -> list[dict]:
    """One row per target (all columns present even where a task failed)."""
    rows = []
    config = {f"{k}": v for k, v in point.config.to_dict().items() if k != "block"}
    bench_record = point.records.get("bench", {})
    regress_record = point.records.get("regress", {})
    for target in targets:
        synth = point.records.get(f"synth:{target}", {})
        errors = {k: v for k, v in point.errors.items()
                  if k in ("generate", "bench", "regress", f"synth:{target}")}
        fmax, luts = synth.get("fmax_mhz"), synth.get("luts")
        ops_per_cycle = bench_record.get("ops_per_cycle")
        ops_per_s = (ops_per_cycle * fmax * 1e6 if ops_per_cycle and fmax
                     and synth.get("fits") is not False else None)
        seconds = sum(point.records.get(task, {}).get("seconds", 0)
                      for task in ("generate", "bench", "regress", f"synth:{target}"))
        tools = {**bench_record.get("tools", {}), **regress_record.get("tools", {}),
                 **synth.get("tools", {})}
        rows.append({
            "block": point.config.block_name, "design": point.design or point.config.slug(),
            **{(k if k not in _ROW_COLUMNS else f"cfg_{k}"): v for k, v in config.items()},
            "target": target, "device": synth.get("device"), "luts": luts,
            "ffs": synth.get("ffs"), "dsps": synth.get("dsps"), "brams": synth.get("brams"),
            "cells": synth.get("cells"), "transistors": synth.get("transistors"),
            "multipliers": synth.get("multipliers"), "fmax_mhz": fmax,
            "fits": synth.get("fits"), "overflow": synth.get("overflow"),
            "figure": bench_record.get("figure"), "value": bench_record.get("value"),
            "workload": bench_record.get("workload"), "op": bench_record.get("op"),
            "ops_per_cycle": ops_per_cycle, "ops_per_s": ops_per_s,
            "ops_per_s_per_lut": ops_per_s / luts if ops_per_s and luts else None,
            "sim_cycles_per_s": bench_record.get("sim_cycles_per_s"),
            "regression": regress_record.get("verdict") if regress else None,
            "tools": json.dumps(tools, sort_keys=True), "wall_s": round(seconds, 2),
            "error": "; ".join(f"{k}: {v}" for k, v in errors.items()) or None,
            "verilog": point.digest,
        })
    return rows


_ROW_COLUMNS = ("block", "design", "target", "device", "luts", "ffs", "dsps", "brams", "cells",
                "transistors", "multipliers", "fmax_mhz", "fits", "overflow", "figure", "value",
                "workload", "op", "ops_per_cycle", "ops_per_s", "ops_per_s_per_lut",
                "sim_cycles_per_s", "regression", "tools", "wall_s", "error", "verilog")


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """Which (area, throughput) points are Pareto-optimal: no other point has less or equal
    area and more or equal throughput, one of them strictly."""
    return [not any(a2 <= a and t2 >= t and (a2 < a or t2 > t) for a2, t2 in points)
            for a, t in points]


def _axes(target: str) -> tuple[str, str, str, str]:
    """(area column, throughput column, their axis labels) of a target's Pareto plot."""
    if target == "generic":
        return "transistors", "ops_per_cycle", "transistors (CMOS estimate)", "{op}/cycle"
    return "luts", "ops_per_s", f"{target} LUTs", "{op}/s at Fmax"


def _plot(rows: list[dict], target: str, path: Path, title: str, axes: list[str]
          ) -> list[dict]:
    """The Pareto plot of one target, points coloured by the first grid key and the
    Pareto-optimal ones circled, joined and labelled; returns those rows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    area, throughput, xlabel, ylabel = _axes(target)
    usable = [r for r in rows if r["target"] == target and r.get(area) and r.get(throughput)]
    if not usable:
        return []
    flags = pareto([(r[area], r[throughput]) for r in usable])
    optimal = sorted((r for r, f in zip(usable, flags, strict=True) if f), key=lambda r: r[area])
    figure, axis = plt.subplots(figsize=(7.6, 4.6))
    key = axes[0]
    groups = list(dict.fromkeys(str(r.get(key, r.get(f"cfg_{key}"))) for r in usable))
    for index, value in enumerate(groups):
        members = [r for r in usable if str(r.get(key, r.get(f"cfg_{key}"))) == value]
        axis.scatter([r[area] for r in members], [r[throughput] for r in members],
                     color=f"C{index % 10}", label=f"{key}={value}", zorder=3)
    axis.plot([r[area] for r in optimal], [r[throughput] for r in optimal], "o--",
              color="black", markersize=11, markerfacecolor="none", label="Pareto-optimal",
              zorder=2)
    for index, r in enumerate(optimal):   # labels alternate below and above: neighbours
        axis.annotate(r["_label"], (r[area], r[throughput]), textcoords="offset points",
                      xytext=(6, -11 if index % 2 else 6), fontsize=7)
    unfit = [r for r in rows if r["target"] == target and r.get("fits") is False and r.get(area)]
    if unfit:
        axis.scatter([r[area] for r in unfit], [0] * len(unfit), marker="x", color="grey",
                     label="does not fit")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel.format(op=usable[0].get("op") or "op"))
    axis.set_title(title, fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return optimal


def _shown(row: dict, column: str):
    """A table cell: throughputs in G/s and k/s per LUT, so that they read at a glance."""
    if column == "G_ops_per_s":
        return row["ops_per_s"] / 1e9 if row.get("ops_per_s") else None
    if column == "k_ops_per_s_per_lut":
        return row["ops_per_s_per_lut"] / 1e3 if row.get("ops_per_s_per_lut") else None
    return row.get(column, row.get(f"cfg_{column}"))


def _write(sweep: Sweep, command: dict, targets) -> None:
    import pandas

    from synth.report import results_table_markdown
    rows = sweep.rows
    for row in rows:
        row["_label"] = _label({k: row.get(k, row.get(f"cfg_{k}")) for k in command["grid"]})
    frame = pandas.DataFrame([{k: v for k, v in r.items() if k != "_label"} for r in rows])
    frame.to_csv(sweep.folder / "points.csv", index=False)
    frame.to_parquet(sweep.folder / "points.parquet", index=False)
    grid_text = " ".join(f"--grid {k}={','.join(v)}" for k, v in command["grid"].items())
    fixed_text = " ".join(f"--set {k}={v}" for k, v in command["fixed"].items())
    lines = [f"# Sweep `{sweep.name}`", "",
             f"Regenerate with `tensorgates sweep {command['block']} {grid_text} {fixed_text} "
             f"--targets {','.join(targets)} --bench {command['bench']}"
             f"{' --regress' if command['regress'] else ''} --name {sweep.name}`"
             .replace("  ", " ") + " (cached records make a rerun free).", "",
             f"{len(rows) // max(len(targets), 1)} design points, "
             f"{len(sweep.skipped)} invalid points skipped; this run computed {sweep.computed} "
             f"tasks, found {sweep.cached} cached, {sweep.failed} failed"
             + (" — **interrupted**: rerun to resume." if sweep.interrupted else "."), ""]
    if sweep.skipped:
        lines += ["Skipped:", ""] + [f"- {_label(g)}: {reason}" for g, reason in sweep.skipped]
        lines.append("")
    for target in targets:
        title = f"{command['block']} on {target}: Pareto front"
        image = f"pareto_{target}.png"
        optimal = _plot(rows, target, sweep.folder / image, title, list(command["grid"]))
        _area, _throughput, xlabel, ylabel = _axes(target)
        lines += [f"## {target}", ""]
        if optimal:
            lines += [f"![{title}]({image})", "",
                      f"Pareto-optimal ({xlabel} against {ylabel.format(op=optimal[0]['op'])}):"
                      + " " + "; ".join(r["_label"] for r in optimal), ""]
        else:
            lines += ["No point has both an area and a throughput on this target.", ""]
        columns = [*command["grid"], "luts" if target != "generic" else "transistors",
                   *(("ffs", "dsps", "brams", "fmax_mhz", "fits") if target != "generic"
                     else ("cells",)), "figure", "value", "ops_per_cycle",
                   *(("G_ops_per_s", "k_ops_per_s_per_lut") if target != "generic" else ()),
                   *(("regression",) if command["regress"] else ()), "wall_s", "error"]
        table = [{c: _shown(row, c) for c in columns} for row in rows if row["target"] == target]
        lines += [results_table_markdown(table), ""]
    lines += ["Files: [points.csv](points.csv), `points.parquet`, `journal.jsonl` (each task: "
              "computed or cached, per run).", ""]
    (sweep.folder / "index.md").write_text("\n".join(lines))

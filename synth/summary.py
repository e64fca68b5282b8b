"""``tensorgates report``: gathers simulation, synthesis and benchmark results found under
``build/`` into ``build/report/index.md`` with PNG plots."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .report import results_table_markdown

__all__ = ["write_report"]


def _load(paths) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(paths)]


def _sim_rows(root: Path) -> list[dict]:
    rows = []
    for record in _load(root.glob("*/*/sim_*.json")):
        rows.append({"design": _slug(record["config"]),
                     "simulator": record["simulator"],
                     "result": "PASS" if record["passed"] else "FAIL",
                     "tests": f"{record['tests'] - record['failures']}/{record['tests']}",
                     "seed": record["seed"], "log": os.path.relpath(record["log"])})
    return rows


def _slug(config: dict) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k != "block")
    return f"{config['block']} ({settings})"


def _synth_rows(root: Path) -> list[dict]:
    rows = []
    for record in _load(root.glob("*/*/synth_*.json")):
        rows.append({"design": _slug(record["config"]), "target": record["target"],
                     "device": record.get("device"), "luts": record.get("luts"),
                     "ffs": record.get("ffs"), "dsps": record.get("dsps"),
                     "brams": record.get("brams"), "cells": record.get("cells"),
                     "transistors": record.get("transistors"),
                     "fmax_mhz": record.get("fmax_mhz"), "fits": record.get("fits")})
    return rows


def _plot_gemm_utilization(bench: dict, out: Path) -> str | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = bench["rows"]
    designs = sorted({(row["array"], row.get("dataflow", "OS")) for row in rows},
                     key=lambda d: (d[1], int(d[0].split("x")[0])))
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    for index, (array, dataflow) in enumerate(designs):
        points = [row for row in rows
                  if row["array"] == array and row.get("dataflow", "OS") == dataflow]
        sizes = [int(row["gemm"].split("x")[0]) for row in points]
        color = f"C{index}"
        axis.plot(sizes, [row["utilization"] for row in points], "o-", color=color,
                  label=f"{array} {dataflow} RTL")
        if all(row["fold_model"] is not None for row in points):
            axis.plot(sizes, [row["fold_model"] for row in points], "x--", color=color,
                      label=f"{array} fold-by-fold model")
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_xscale("log", base=2)
    ticks = sorted({int(row["gemm"].split("x")[0]) for row in rows})
    axis.set_xticks(ticks, [str(tick) for tick in ticks])
    axis.set_xlabel("square GEMM size (M = K = N)")
    axis.set_ylabel("MAC utilization")
    axis.set_title("systolic_gemm: measured utilization vs fold-by-fold model")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    path = out / "systolic_gemm_utilization.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path.name


PLOTS = {"systolic_gemm": _plot_gemm_utilization}


def write_report(root: Path = Path("build")) -> Path:
    """Write ``root/report/index.md`` (and plots) from what earlier commands left in ``root``."""
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# tensorgates report", "",
             "Gathered by `tensorgates report` from the results under `build/`; every number "
             "comes from a `tensorgates sim`, `synth`, `bench` or `sweep` run.", ""]
    sims = _sim_rows(root)
    parts += ["## Co-simulation against the golden models", "",
              results_table_markdown(sims) if sims else "No simulation results yet "
              "(`tensorgates sim BLOCK`).", ""]
    synths = _synth_rows(root)
    parts += ["## Synthesis", "",
              results_table_markdown(synths) if synths else "No synthesis results yet "
              "(`tensorgates synth BLOCK --target ecp5`).", ""]
    parts += ["## Benchmarks", ""]
    benches = sorted((root / "bench").glob("*.json"))
    if not benches:
        parts += ["No benchmark results yet (`tensorgates bench`).", ""]
    for path in benches:
        bench = json.loads(path.read_text())
        markdown = path.with_suffix(".md").read_text()
        parts += [markdown.replace("# ", "### ", 1), ""]
        plot = PLOTS.get(bench.get("benchmark"))
        if plot:
            name = plot(bench, out)
            if name:
                parts += [f"![{bench['benchmark']}]({name})", ""]
    parts += ["## Design-space sweeps", ""]
    sweeps = sorted((root / "sweep").glob("*/index.md"))
    if not sweeps:
        parts += ["No sweeps yet (`tensorgates sweep BLOCK --grid KEY=V1,V2 ...`).", ""]
    for path in sweeps:
        title = path.read_text().splitlines()[0].lstrip("# ")
        link = os.path.relpath(path, out)
        parts += [f"- [{title}]({link})"] + [
            f"  ![{plot.stem}]({os.path.relpath(plot, out)})"
            for plot in sorted(path.parent.glob("pareto_*.png"))]
    parts.append("")
    index = out / "index.md"
    index.write_text("\n".join(parts))
    return index

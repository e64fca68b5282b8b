"""``tensorgates report``: gathers simulation, synthesis, board and benchmark results found under
``build/`` into ``build/report/index.md`` with PNG plots.

Only current results are shown: a design folder is ``build/<block>/<slug>-<hash of the config>``,
so a record whose folder no longer matches its config under today's config class (a field was
added or a default changed) is stale and left out, and within a folder each simulator or target
has one record, the latest run's. ``tensorgates report --synth`` first synthesizes the registry's
report points that have no record yet (:func:`synthesize_points`; cached, so reruns are quick).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .report import results_table_markdown

__all__ = ["PLOTS", "report_points", "synthesize_points", "write_report"]

TARGETS = ("ecp5", "ice40", "generic")


# ---------------------------------------------------------------- records under build/

def _current_records(root: Path, pattern: str) -> list[tuple[Path, dict]]:
    """``(path, record)`` of every JSON record matching ``pattern`` under ``root`` whose folder
    is the one today's config class gives its config (others are stale)."""
    from gateware.registry import BLOCKS
    from sim.runner import design_dir
    found = []
    for path in sorted(root.glob(pattern)):
        try:
            record = json.loads(path.read_text())
            settings = dict(record["config"])
            entry = BLOCKS[settings.pop("block")]
            config = entry.config_class(**settings)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            continue
        if design_dir(config, root).name != path.parent.name:
            continue
        found.append((path, record))
    return found


def _when(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime))


def _sim_rows(root: Path) -> tuple[list[dict], int]:
    """The latest run of each design and simulator, and how many runs are left out because the
    design's Verilog changed after them (``generate`` rewrites ``top.v`` only when it changes,
    so a run older than the folder's ``top.v`` simulated an earlier design)."""
    rows, older = [], 0
    for path, record in _current_records(root, "*/*/sim_*.json"):
        verilog = path.parent / "top.v"
        if verilog.exists() and path.stat().st_mtime < verilog.stat().st_mtime:
            older += 1
            continue
        rows.append({"design": path.parent.name.rsplit("-", 1)[0],
                     "simulator": record["simulator"],
                     "result": "PASS" if record["passed"] else "FAIL",
                     "tests": f"{record['tests'] - record['failures']}/{record['tests']}",
                     "seed": record["seed"], "run (UTC)": _when(path),
                     "log": os.path.relpath(record["log"])})
    return rows, older


# ---------------------------------------------------------------- the area report

def report_points(entry) -> list[tuple[dict, tuple[tuple[str, bool], ...]]]:
    """The report's design points of a registry entry and, for each, ``(target, place)`` pairs:
    the ``synthesis`` points on ECP5 (placed: Fmax), iCE40 (area only: most do not fit the
    UP5K) and generic; the ``small`` point on all three, placed on the iCE40."""
    points = [(dict(point), (("ecp5", True), ("ice40", False), ("generic", False)))
              for point in entry.synthesis]
    if entry.small:
        small = (dict(entry.small), (("ecp5", True), ("ice40", True), ("generic", False)))
        points = [point for point in points if point[0] != small[0]] + [small]
    return points


def _label(block: str, config: dict) -> str:
    """A short name of a design point for plot axes and tables."""
    c = config
    if block in ("systolic_gemm",):
        return f"{c['rows']}×{c['cols']}" + (" WS" if c["dataflow"] != "output_stationary"
                                             else "")
    if block == "nm_sparse_gemm":
        return f"{c['rows']}×{c['cols']} {c['n']}:{c['m']}"
    if block == "nm_sparse_mac":
        return f"{c['n']}:{c['m']}"
    if block in ("mx_quant", "mx_dequant"):
        return f"{c['format']} ×{c['lanes']}" + (f" b{c['block_size']}"
                                                 if c.get("block_size") != 32 else "")
    if block == "kivi_quant":
        return f"{c['bits']}-bit ×{c['lanes']} g{c['group']}"
    if block == "attention":
        return f"{c['rows']}×{c['cols']} d{c['max_head_dim']}"
    if block == "pim":
        return f"{c['banks']} banks ×{c['lanes']} {c['unit']}"
    return ", ".join(f"{k}={v}" for k, v in c.items() if k != "block")


def _area_rows(root: Path) -> tuple[dict[str, list[dict]], int, int]:
    """Per block, one row per report point with its records per target; how many other
    current synthesis records (sweeps, benchmarks) exist; and how many records are of an
    earlier Verilog than the folder's ``top.v`` (left out)."""
    from gateware.registry import BLOCKS
    records: dict[tuple[str, str], dict[str, dict]] = {}
    older = 0
    for path, record in _current_records(root, "*/*/synth_*.json"):
        verilog = path.parent / "top.v"
        if verilog.exists() and record.get("verilog") != _digest(verilog):
            older += 1
            continue
        records.setdefault((record["block"], path.parent.name), {})[record["target"]] = record
    from sim.runner import design_dir
    blocks: dict[str, list[dict]] = {}
    shown = set()
    for entry in BLOCKS.values():
        for settings, _targets in report_points(entry):
            config = entry.config(settings)
            key = (entry.name, design_dir(config, root).name)
            shown.add(key)
            blocks.setdefault(entry.name, []).append(
                {"label": _label(entry.name, config.to_dict()), "config": config.to_dict(),
                 "small": settings == entry.small, "targets": records.get(key, {})})
    return blocks, len(set(records) - shown), older


def _digest(verilog: Path) -> str:
    """``gateware.generate``'s digest of a Verilog file (what synthesis records carry)."""
    return hashlib.sha256(verilog.read_text().encode()).hexdigest()[:16]


def _area_table(rows: list[dict]) -> list[dict]:
    table = []
    for row in rows:
        ecp5, ice40, generic = (row["targets"].get(t, {}) for t in TARGETS)
        table.append({
            "design": row["label"] + (" (iCE40 point)" if row["small"] else ""),
            "ECP5 LUT": ecp5.get("luts"), "FF": ecp5.get("ffs"), "DSP": ecp5.get("dsps"),
            "BRAM": ecp5.get("brams"), "mult": ecp5.get("multipliers"),
            "Fmax MHz": ecp5.get("fmax_mhz"),
            "ECP5-85F": _fit(ecp5),
            "iCE40 LUT": ice40.get("luts"), "iCE40 FF": ice40.get("ffs"),
            "iCE40 DSP": ice40.get("dsps"), "iCE40 BRAM": ice40.get("brams"),
            "UP5K": _fit(ice40),
            "cells": generic.get("cells"), "transistors": generic.get("transistors"),
        })
    return table


def _fit(record: dict) -> str | None:
    if not record:
        return None
    if record.get("fits") is None:
        return "not placed"
    return "fits" if record["fits"] else f"no: {record.get('overflow')}"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


_AXIS_NAMES = {"systolic_gemm": "array (rows × cols)", "nm_sparse_gemm": "array, N:M",
               "nm_sparse_mac": "N:M", "mx_quant": "format × lanes",
               "mx_dequant": "format × lanes", "kivi_quant": "bits × lanes, group",
               "attention": "array, max head dim", "pim": "banks × lanes, MAC unit"}


def _plot_block_area(block: str, rows: list[dict], out: Path) -> str | None:
    """Three panels over the block's report points: FPGA area (ECP5 LUT and FF, iCE40 LUT, log
    scale), ECP5 Fmax out of context, and the technology-neutral transistor count."""
    rows = [row for row in rows if row["targets"]]
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter
    labels = [row["label"] for row in rows]
    x = list(range(len(rows)))

    def values(target: str, key: str) -> list[float]:
        # NaN, not 0, where a record is missing: no bar rather than a misleading one
        return [row["targets"].get(target, {}).get(key) or float("nan") for row in rows]

    figure, (area, fmax, gates) = plt.subplots(1, 3, figsize=(12, 3.8))
    series = [("ECP5 LUT", "ecp5", "luts"), ("ECP5 FF", "ecp5", "ffs"),
              ("iCE40 LUT", "ice40", "luts")]
    width = 0.8 / len(series)
    for index, (name, target, key) in enumerate(series):
        area.bar([i + (index - 1) * width for i in x], values(target, key), width, label=name,
                 color=f"C{index}")
    area.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:,.0f}")
    area.yaxis.set_major_formatter(plain)
    area.yaxis.set_minor_formatter(plain)
    area.tick_params(axis="y", which="minor", labelsize=7)
    area.set_ylabel("cells (log scale)")
    area.set_title("FPGA area (after synthesis)")
    area.legend(fontsize=8)
    fmaxes = values("ecp5", "fmax_mhz")
    fmax.bar(x, fmaxes, 0.6, color="C3")
    for i, value in zip(x, fmaxes, strict=True):
        known = value == value
        fmax.annotate(f"{value:.0f}" if known else "none", (i, value if known else 0),
                      ha="center", va="bottom", fontsize=8)
    fmax.set_ylabel("MHz")
    fmax.set_title("ECP5-85F Fmax (out of context)")
    fmax.set_ylim(0, max([v for v in fmaxes if v == v] + [1]) * 1.18)
    transistors = [v / 1e3 for v in values("generic", "transistors")]
    gates.bar(x, transistors, 0.6, color="C4")
    gates.set_ylabel("thousand transistors")
    gates.set_title("technology-neutral (CMOS estimate)")
    for axis in (area, fmax, gates):
        axis.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        axis.set_xlabel(_AXIS_NAMES.get(block, "design point"))
    figure.suptitle(f"{block}: area and Fmax per design point", fontsize=11)
    figure.tight_layout()
    name = f"area_{block}.png"
    figure.savefig(out / name, dpi=110)
    plt.close(figure)
    return name


def _plot_area_overview(blocks: dict[str, list[dict]], out: Path) -> str | None:
    """Every block's ECP5 points: LUTs against Fmax, one colour per block."""
    points = [(block, row) for block, rows in blocks.items() for row in rows
              if row["targets"].get("ecp5", {}).get("luts")
              and row["targets"]["ecp5"].get("fmax_mhz")]
    if not points:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for index, block in enumerate(blocks):
        mine = [row for b, row in points if b == block]
        if not mine:
            continue
        xs = [row["targets"]["ecp5"]["luts"] for row in mine]
        ys = [row["targets"]["ecp5"]["fmax_mhz"] for row in mine]
        axis.scatter(xs, ys, color=f"C{index}", label=block, s=30)
        for row, x, y in zip(mine, xs, ys, strict=True):
            axis.annotate(row["label"], (x, y), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("ECP5 LUTs (log scale)")
    axis.set_ylabel("ECP5-85F Fmax, MHz (out of context)")
    axis.set_title("Area against clock: every block's report points")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    name = "area_overview.png"
    figure.savefig(out / name, dpi=110)
    plt.close(figure)
    return name


def synthesize_points(blocks: Iterable[str] | None = None, targets: Iterable[str] = TARGETS,
                      progress: Callable[[str], None] = print) -> list[dict]:
    """Synthesize every report point (:func:`report_points`) of ``blocks`` (default all) for
    ``targets``; cached by Verilog digest, so points already done cost nothing. A tool failure
    is reported and skipped, so one bad point does not stop the report."""
    from gateware.generate import generate
    from gateware.registry import BLOCKS, get_block
    from sim.runner import design_dir
    from synth.flow import SynthError
    from synth.run import synthesize_config
    entries = [get_block(name) for name in blocks] if blocks else list(BLOCKS.values())
    targets = tuple(targets)
    jobs = [(entry, entry.config(settings), target, place) for entry in entries
            for settings, pairs in report_points(entry) for target, place in pairs
            if target in targets]
    # Smallest designs (by Verilog size) first, so an interrupted run has covered the most
    # points; the large ECP5 runs take minutes each.
    configs = list(dict.fromkeys(config for _entry, config, _target, _place in jobs))
    progress(f"  generating {len(configs)} designs' Verilog ({len(jobs)} synthesis runs) ...")
    sizes = {config: generate(config, design_dir(config)).verilog.stat().st_size
             for config in configs}
    jobs.sort(key=lambda job: sizes[job[1]])
    records = []
    for index, (_entry, config, target, place) in enumerate(jobs, 1):
        started = time.monotonic()
        try:
            record = synthesize_config(config, target, place=place)
        except SynthError as error:
            progress(f"  [{index}/{len(jobs)}] {config.slug()} {target}: failed: "
                     f"{str(error).splitlines()[0]}")
            continue
        records.append(record)
        progress(f"  [{index}/{len(jobs)}] {config.slug()} {target}: "
                 f"{time.monotonic() - started:.0f} s")
    return records


# ---------------------------------------------------------------- benchmark headline plots

def _plot_gemm_utilization(bench: dict, out: Path) -> str | None:
    plt = _pyplot()
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
    return _save(figure, out, "systolic_gemm_utilization.png")


def _plot_sparse_gemm(bench: dict, out: Path) -> str | None:
    """Dense-equivalent MACs per multiplier per cycle for each N:M pattern, sparse and dense
    jobs on the same array, against the ideal (M/N sparse, 1 dense)."""
    rows = [row for row in bench["rows"] if row.get("n:m") not in (None, "—")]
    if not rows:
        return None
    array = rows[0]["array"]
    rows = [row for row in rows if row["array"] == array]
    patterns = list(dict.fromkeys(row["n:m"] for row in rows))
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 4.0))
    x = list(range(len(patterns)))
    for offset, mode, color in ((-0.2, "sparse", "C0"), (0.2, "dense", "C1")):
        mine = {row["n:m"]: row for row in rows if row["mode"] == mode}
        heights = [mine[p]["per_multiplier"] if p in mine else float("nan") for p in patterns]
        ideals = [mine[p]["ideal"] if p in mine else float("nan") for p in patterns]
        axis.bar([i + offset for i in x], heights, 0.38, color=color,
                 label=f"{mode} jobs (RTL)")
        axis.plot([i + offset for i in x], ideals, "_", color="black", markersize=18,
                  markeredgewidth=2, label="ideal" if mode == "sparse" else None)
    axis.set_xticks(x, patterns)
    axis.set_xlabel("N:M pattern of W")
    axis.set_ylabel("dense-equivalent MACs / multiplier / cycle")
    axis.set_title(f"nm_sparse_gemm {array}, GEMM {rows[0]['gemm']}: speedup from sparsity")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, out, "nm_sparse_gemm_speedup.png")


def _plot_sparse_mac(bench: dict, out: Path) -> str | None:
    """One N:M PE: dense-equivalent MACs per cycle against M (one group per cycle)."""
    rows = bench["rows"]
    if not rows:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.0, 3.8))
    labels = [row["n:m"] for row in rows]
    x = list(range(len(rows)))
    axis.bar(x, [row["dense_eq_macs_per_cycle"] for row in rows], 0.6, color="C0",
             label="RTL (busy cycles)")
    axis.plot(x, [int(label.split(":")[1]) for label in labels], "_", color="black",
              markersize=24, markeredgewidth=2, label="ideal: M per cycle")
    for i, row in zip(x, rows, strict=True):
        axis.annotate(f"{row['multipliers']} mult.", (i, 0), xytext=(0, 3),
                      textcoords="offset points", ha="center", fontsize=8, color="white")
    axis.set_xticks(x, labels)
    axis.set_xlabel("N:M pattern")
    axis.set_ylabel("dense-equivalent MACs / cycle")
    axis.set_title("nm_sparse_mac: one PE, one N:M group per cycle")
    axis.legend(fontsize=8)
    return _save(figure, out, "nm_sparse_mac_throughput.png")


def _plot_quantizers(bench: dict, out: Path) -> str | None:
    """Elements per cycle of each quantizer and format against its lanes (the physical limit)."""
    rows = [row for row in bench["rows"] if row.get("elements_per_cycle") is not None]
    if not rows:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.0, 3.8))
    labels = [f"{row['block']}\n{row['format']} ×{row['lanes']}" for row in rows]
    x = list(range(len(rows)))
    blocks = list(dict.fromkeys(row["block"] for row in rows))
    for index, block in enumerate(blocks):
        mine = [i for i, row in enumerate(rows) if row["block"] == block]
        axis.bar(mine, [rows[i]["elements_per_cycle"] for i in mine], 0.6,
                 color=f"C{index}", label=block)
    axis.plot(x, [row["physical_limit"] for row in rows], "_", color="black", markersize=24,
              markeredgewidth=2, label="lanes (limit)")
    axis.set_xticks(x, labels, fontsize=8)
    axis.set_ylabel("elements / cycle")
    axis.set_ylim(0, max(row["physical_limit"] for row in rows) * 1.25)
    axis.set_title("Quantizers: sustained elements per cycle, unimpeded streams")
    axis.legend(fontsize=8, ncol=len(blocks) + 1, loc="upper center")
    return _save(figure, out, "quantizers_throughput.png")


def _plot_attention(bench: dict, out: Path) -> str | None:
    """Array utilization against sequence length, full and causal, with the causal limit."""
    rows = bench["rows"]
    if not rows:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    series = sorted({(row["array"], row["d"], row["causal"]) for row in rows})
    for index, (array, d, causal) in enumerate(series):
        mine = sorted((row for row in rows if (row["array"], row["d"], row["causal"]) ==
                       (array, d, causal)), key=lambda row: row["n"])
        ns = [row["n"] for row in mine]
        name = f"{array} d={d} {'causal' if causal else 'full'}"
        axis.plot(ns, [row["utilization"] for row in mine], "o-", color=f"C{index}",
                  label=f"{name} RTL")
        if causal:
            axis.plot(ns, [row["physical_limit"] for row in mine], "x--", color=f"C{index}",
                      label=f"{name} limit (masked tiles skipped)")
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_xscale("log", base=2)
    ticks = sorted({row["n"] for row in rows})
    axis.set_xticks(ticks, [str(t) for t in ticks])
    axis.set_xlabel("sequence length (Nq = Nkv)")
    axis.set_ylabel("MAC utilization")
    axis.set_title("attention: array utilization (q·kᵀ and p·v)")
    axis.legend(fontsize=7)
    return _save(figure, out, "attention_utilization.png")


def _plot_pim(bench: dict, out: Path) -> str | None:
    """GEMV on the RTL sequencer: speedup over ordinary reads against the preset's ideal, and
    bytes of W per cycle against the internal bound."""
    rows = bench.get("gemv", [])
    if not rows:
        return None
    plt = _pyplot()
    figure, (speed, rate) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{row['gemv']} b{row['batch']}\n{row['channel'].split(' (')[0]}"
              for row in rows]
    x = list(range(len(rows)))
    speed.bar(x, [row["speedup_over_reads"] for row in rows], 0.6, color="C0", label="RTL")
    speed.plot(x, [row["ideal_ratio"] for row in rows], "_", color="black", markersize=24,
               markeredgewidth=2, label="ideal (internal / external bound)")
    speed.set_ylabel("× over ordinary reads")
    speed.set_title("speedup over reading W out")
    rate.bar(x, [row["bytes_per_cycle"] for row in rows], 0.6, color="C1", label="RTL")
    rate.plot(x, [row["bound"] for row in rows], "_", color="black", markersize=24,
              markeredgewidth=2, label="internal bound (refresh included)")
    rate.set_ylabel("bytes of W / DRAM cycle")
    rate.set_title("internal bandwidth used")
    for axis in (speed, rate):
        axis.set_xticks(x, labels, fontsize=7)
        axis.set_xlabel("GEMV (out×in), batch, channel")
        axis.set_ylim(0, axis.get_ylim()[1] * 1.3)   # room for the legend above the bars
        axis.legend(fontsize=7, loc="upper center", ncol=2)
    figure.suptitle("pim: GEMV on the RTL sequencer (golden-checked schedule)", fontsize=11)
    return _save(figure, out, "pim_gemv.png")


def _save(figure, out: Path, name: str) -> str:
    plt = _pyplot()
    figure.tight_layout()
    figure.savefig(out / name, dpi=120)
    plt.close(figure)
    return name


#: The headline plot of each benchmark (by its ``benchmark`` field, else its file's name).
PLOTS: dict[str, Callable[[dict, Path], str | None]] = {
    "systolic_gemm": _plot_gemm_utilization,
    "nm_sparse_gemm": _plot_sparse_gemm,
    "nm_sparse_mac": _plot_sparse_mac,
    "mx_quant": _plot_quantizers,
    "attention": _plot_attention,
    "pim": _plot_pim,
}


# ---------------------------------------------------------------- the page

def write_report(root: Path = Path("build")) -> Path:
    """Write ``root/report/index.md`` (and plots) from what earlier commands left in ``root``."""
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# tensorgates report", "",
             "Gathered by `tensorgates report` from the results under `build/`; every number "
             "comes from a `tensorgates sim`, `synth`, `build`, `bench` or `sweep` run. "
             "`tensorgates report --synth` first synthesizes the report's design points that "
             "have no record yet.", ""]
    parts += _benchmark_section(root, out)
    parts += _area_section(root, out)
    parts += _board_section(root, out)
    sims, older = _sim_rows(root)
    parts += ["## Co-simulation against the golden models", "",
              "The latest run of each design point and simulator"
              + (f"; {older} runs made before their design's Verilog last changed are left out"
                 " (rerun `tensorgates sim`)." if older else "."), "",
              results_table_markdown(sims) if sims else "No simulation results yet "
              "(`tensorgates sim BLOCK`).", ""]
    parts += _sweep_section(root, out)
    index = out / "index.md"
    index.write_text("\n".join(parts))
    return index


def _benchmark_section(root: Path, out: Path) -> list[str]:
    parts = ["## Benchmarks", ""]
    benches = sorted((root / "bench").glob("*.json"))
    if not benches:
        return [*parts, "No benchmark results yet (`tensorgates bench`).", ""]
    for path in benches:
        bench = json.loads(path.read_text())
        markdown = path.with_suffix(".md")
        if markdown.is_file():
            parts += [_demote(markdown.read_text()), ""]
        plot = PLOTS.get(bench.get("benchmark", path.stem))
        if plot:
            name = plot(bench, out)
            if name:
                parts += [f"![{path.stem}]({name})", ""]
    return parts


def _demote(markdown: str) -> str:
    """A benchmark page's headings two levels down, to sit under "Benchmarks"."""
    return "\n".join("##" + line if line.startswith("#") else line
                     for line in markdown.splitlines())


def _area_section(root: Path, out: Path) -> list[str]:
    blocks, others, older = _area_rows(root)
    parts = ["## Area and Fmax", "",
             "The registry's `synthesis` points of every block, plus its `small` point (the one "
             "that fits an iCE40 UP5K). ECP5: `synth_ecp5` and nextpnr on the LFE5U-85F out of "
             "context (LUT multipliers where the DSPs run out: `mult`); iCE40: `synth_ice40 "
             "-dsp` (placed on the UP5K for the small point only); technology-neutral: Yosys "
             "`abc -g cmos2` cells and CMOS transistor estimate. LUT counts are after synthesis "
             "(carry cells count as their LUTs).", ""]
    done = sum(1 for rows in blocks.values() for row in rows if row["targets"])
    if not done:
        return [*parts, "No synthesis results yet (`tensorgates report --synth`, or "
                        "`tensorgates synth BLOCK --target ecp5`).", ""]
    overview = _plot_area_overview(blocks, out)
    if overview:
        parts += [f"![area overview]({overview})", ""]
    for block, rows in blocks.items():
        parts += [f"### {block}", "", results_table_markdown(_area_table(rows))]
        plot = _plot_block_area(block, rows, out)
        if plot:
            parts += [f"![{block} area]({plot})", ""]
    if others:
        parts += [f"{others} more synthesized design points (sweeps, benchmarks) are under "
                  "`build/`; the sweeps' pages below tabulate theirs.", ""]
    if older:
        parts += [f"{older} synthesis records of an earlier Verilog of these designs are left "
                  "out (`tensorgates report --synth` redoes them).", ""]
    return parts


def _board_section(root: Path, out: Path) -> list[str]:
    from .boards import builds_table, collect_builds
    builds = collect_builds(root / "board")
    parts = ["## Board bitstreams", ""]
    if not builds:
        return [*parts, "No board builds yet (`tensorgates build BLOCK --board icebreaker`).",
                        ""]
    rows = builds_table(builds)
    for row, build in zip(rows, builds, strict=True):
        report = Path(build["folder"]) / "report.md"
        row["report"] = f"[report]({os.path.relpath(report, out)})"
    return [*parts, "The block behind the UART host bridge, placed and routed on the board's "
                    "device at its own clock (`tensorgates build`).", "",
                    results_table_markdown(rows), ""]


def _sweep_section(root: Path, out: Path) -> list[str]:
    parts = ["## Design-space sweeps", ""]
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
    return parts

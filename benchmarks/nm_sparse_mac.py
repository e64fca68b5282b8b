"""Benchmark of ``nm_sparse_mac`` (one sparse PE): groups per cycle when unimpeded (ideal 1,
so M dense-equivalent MACs per cycle on N multipliers) and ECP5 area and Fmax per M.

Groups per cycle come from the testbench's ``counters_exact_when_unimpeded`` run (RTL busy and
cycle counters, latency included). Writes ``build/bench/nm_sparse_mac.{json,md}``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gateware.jobs import run_all
from gateware.registry import get_block
from sim.runner import simulate
from synth.report import results_table_markdown

__all__ = ["main"]

POINTS = ({"n": "1", "m": "2"}, {"n": "2", "m": "4"}, {"n": "2", "m": "8"},
          {"n": "4", "m": "8"}, {"n": "2", "m": "16"})
OUT_DIR = Path("build") / "bench"


def _measure(settings: dict, skip_synth: bool) -> dict:
    config = get_block("nm_sparse_mac").config(settings)
    result = simulate(config, "verilator", seed=1, tests="counters_exact_when_unimpeded")
    if not result.passed:
        raise RuntimeError(f"nm_sparse_mac {settings}: simulation failed: {result.messages}")
    record = {"settings": settings, **result.records["counters_exact_when_unimpeded"]}
    if not skip_synth:
        from synth.run import synthesize_config
        record["synthesis"] = synthesize_config(config, "ecp5")
    return record


def main(*, quick: bool = False, workers: int = 2, skip_synth: bool = False) -> int:
    points = POINTS[:2] if quick else POINTS
    print(f"nm_sparse_mac: {len(points)} design points ...", flush=True)
    records = run_all(_measure, [{"settings": s, "skip_synth": skip_synth} for s in points],
                      workers=workers)
    rows = []
    for record in records:
        n, m = int(record["settings"]["n"]), int(record["settings"]["m"])
        area = record.get("synthesis", {})
        rows.append({
            "n:m": f"{n}:{m}", "multipliers": n, "groups": record["beats"],
            "busy_cycles": record["busy_cycles"], "cycles": record["cycles"],
            "groups_per_busy_cycle": record["beats"] / record["busy_cycles"],
            "dense_eq_macs_per_cycle": m * record["beats"] / record["busy_cycles"],
            "latency_and_drain_cycles": record["cycles"] - record["busy_cycles"],
            "ecp5_luts": area.get("luts"), "ecp5_ffs": area.get("ffs"),
            "ecp5_dsps": area.get("dsps"), "ecp5_fmax_mhz": area.get("fmax_mhz"),
            "sim_kcycles_per_s": _kcycles_per_s(record),
        })
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "nm_sparse_mac.json").write_text(json.dumps(
        {"benchmark": "nm_sparse_mac", "rows": rows, "records": records}, indent=2) + "\n")
    markdown = ("# nm_sparse_mac benchmark\n\nRegenerate with `tensorgates bench "
                "nm_sparse_mac`. One group of M activations per busy cycle is the ideal; "
                "latency_and_drain_cycles = cycles − busy cycles of the measured run; "
                "sim_kcycles_per_s: the cocotb testbench drives the PE from Python cycle by "
                "cycle, so this is the speed of that loop on a short run, not of Verilator.\n\n"
                + results_table_markdown(rows))
    (OUT_DIR / "nm_sparse_mac.md").write_text(markdown)
    print(markdown)
    return 0


def _kcycles_per_s(record: dict) -> float | None:
    """Simulated kilocycles per wall-clock second of the measured run."""
    if not record.get("sim_seconds"):
        return None
    return round(record["sim_cycles"] / record["sim_seconds"] / 1e3, 1)


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))

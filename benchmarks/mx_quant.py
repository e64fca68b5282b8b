"""Benchmark of the block quantizers (``mx_quant``, ``mx_dequant``, ``kivi_quant``):
sustained elements per cycle against ``lanes`` (the physical limit), latency, and ECP5 area
and Fmax per lane for each format.

Throughput comes from the testbench's ``full_rate_when_unimpeded`` run: input always valid,
output always ready; elements per cycle between the first and the last output beat, latency
from the first input beat to the first output beat. Writes ``build/bench/mx_quant.{json,md}``.
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

FORMATS = ("int8", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "bfp4", "bfp8")
LANES = "4"
OUT_DIR = Path("build") / "bench"


def _measure(block: str, settings: dict, skip_synth: bool) -> dict:
    config = get_block(block).config(settings)
    record = {"block": block, "settings": settings}
    if block in ("mx_quant", "kivi_quant"):
        result = simulate(config, "verilator", seed=1, tests="full_rate_when_unimpeded")
        if not result.passed:
            raise RuntimeError(f"{block} {settings}: simulation failed: {result.messages}")
        record.update(result.records["full_rate_when_unimpeded"])
    if not skip_synth:
        from synth.run import synthesize_config
        record["synthesis"] = synthesize_config(config, "ecp5")
    return record


def main(*, quick: bool = False, workers: int = 2, skip_synth: bool = False) -> int:
    formats = FORMATS[:2] if quick else FORMATS
    jobs = [{"block": block, "settings": {"format": f, "lanes": LANES}, "skip_synth": skip_synth}
            for f in formats for block in ("mx_quant", "mx_dequant")]
    jobs += [{"block": "kivi_quant", "settings": {"bits": str(bits), "lanes": LANES},
              "skip_synth": skip_synth} for bits in ((2,) if quick else (2, 4))]
    print(f"mx_quant: {len(jobs)} design points ...", flush=True)
    records = run_all(_measure, jobs, workers=workers, progress=lambda d, t, r: print(
        f"  [{d}/{t}] {r['block']} {_format(r['settings'])} done", flush=True))
    rows = []
    for record in records:
        area = record.get("synthesis", {})
        lanes = int(record["settings"]["lanes"])
        rows.append({
            "block": record["block"], "format": _format(record["settings"]), "lanes": lanes,
            "elements_per_cycle": record.get("elements_per_cycle"),
            "physical_limit": lanes, "latency_cycles": record.get("latency"),
            "ecp5_luts": area.get("luts"), "ecp5_ffs": area.get("ffs"),
            "ecp5_brams": area.get("brams"),
            "luts_per_lane": round(area["luts"] / lanes, 1) if area.get("luts") else None,
            "ecp5_fmax_mhz": area.get("fmax_mhz"),
            "melements_per_s": round(lanes * area["fmax_mhz"], 1)
            if area.get("fmax_mhz") else None,
            "sim_kcycles_per_s": round(record["sim_cycles"] / record["sim_seconds"] / 1e3, 1)
            if record.get("sim_seconds") else None,
        })
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "mx_quant.json").write_text(json.dumps(
        {"benchmark": "mx_quant", "definition": __doc__.strip().splitlines(), "rows": rows,
         "records": records}, indent=2) + "\n")
    markdown = ("# Block quantizer benchmark\n\nRegenerate with `tensorgates bench "
                "mx_quant`. elements_per_cycle: sustained, input always valid and output always "
                "ready (physical limit: lanes); latency: first input beat to first output beat "
                "(one block plus the pipeline); ECP5 LFE5U-85F out of context, blocks (KIVI "
                "groups) of 32; sim_kcycles_per_s: the cocotb testbench drives the block from "
                "Python cycle by cycle, so this is the speed of that loop on a short run, not "
                "of Verilator (mx_dequant is not simulated here).\n\n"
                + results_table_markdown(rows))
    (OUT_DIR / "mx_quant.md").write_text(markdown)
    print(markdown)
    return 0


def _format(settings: dict) -> str:
    return settings.get("format") or f"kivi{settings['bits']}"


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))

"""Benchmark of ``systolic_gemm``: utilization against the fold-by-fold model, area, Fmax.

Utilization = useful MACs / (R·C·cycles), cycles from the RTL's own counter (descriptor
accepted → last result taken), inputs always valid and the output always ready. The
fold-by-fold model is SCALE-Sim's output-stationary estimate: every R×C output tile costs
K + R + C − 2 cycles with nothing overlapped. Writes ``build/bench/systolic_gemm.{json,md}``.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from benchmarks.simulation import simulate_top
from gateware.bench_harness import GemmBenchHarness
from gateware.jobs import run_all
from gateware.registry import get_block
from synth.report import results_table_markdown

__all__ = ["fold_model_utilization", "main"]

#: Output-stationary at three sizes, and the weight-stationary dataflow at 8×8 beside it.
DESIGNS = (
    {"rows": "4", "cols": "4"},
    {"rows": "8", "cols": "8"},
    {"rows": "16", "cols": "16"},
    {"rows": "8", "cols": "8", "dataflow": "weight_stationary", "chunk": "64"},
)
SIZES = (64, 128, 256, 512)
QUICK_SIZES = (64, 128)
OUT_DIR = Path("build") / "bench"


def fold_model_utilization(rows: int, cols: int, m: int, k: int, n: int) -> float:
    folds = math.ceil(m / rows) * math.ceil(n / cols)
    return m * k * n / (rows * cols * folds * (k + rows + cols - 2))


def _simulate_array(settings: dict, sizes: list[int]) -> dict:
    config = get_block("systolic_gemm").config(settings)
    jobs = [[s, s, s] for s in sizes]
    return {"settings": settings,
            "jobs": simulate_top(GemmBenchHarness(config), config, "sim.bench_gemm", jobs)}


def _design_key(config: dict) -> tuple:
    return config["rows"], config["cols"], config["dataflow"]


def _synthesize(settings: dict) -> dict:
    """ECP5 area and Fmax (LUT multipliers where the device's DSPs run out)."""
    from synth.run import synthesize_config
    return synthesize_config(get_block("systolic_gemm").config(settings), "ecp5")


def main(*, quick: bool = False, workers: int = 2, skip_synth: bool = False) -> int:
    sizes = list(QUICK_SIZES if quick else SIZES)
    arrays = list(DESIGNS)
    print(f"systolic_gemm: simulating {len(arrays)} arrays x {len(sizes)} GEMM sizes ...",
          flush=True)
    sims = run_all(_simulate_array, [{"settings": s, "sizes": sizes} for s in arrays],
                   workers=workers, progress=lambda d, t, r: print(
                       f"  [{d}/{t}] {r['settings']['rows']}x{r['settings']['cols']} simulated",
                       flush=True))
    areas = {}
    if not skip_synth:
        print("systolic_gemm: ECP5 synthesis and place & route ...", flush=True)
        results = run_all(_synthesize, [{"settings": s} for s in arrays], workers=workers,
                          progress=lambda d, t, r: print(f"  [{d}/{t}] {r['design']} done",
                                                         flush=True))
        areas = {_design_key(r["config"]): r for r in results}

    rows = []
    for sim in sims:
        config = get_block("systolic_gemm").config(sim["settings"])
        r, c = config.rows, config.cols
        output_stationary = config.dataflow == "output_stationary"
        area = areas.get(_design_key(config.to_dict()), {})
        for job in sim["jobs"]:
            m, k, n = job["m"], job["k"], job["n"]
            rows.append({
                "array": f"{r}x{c}", "dataflow": "OS" if output_stationary else "WS",
                "gemm": f"{m}x{k}x{n}", "cycles": job["cycles"],
                "busy_cycles": job["busy_cycles"], "stall_cycles": job["stall_cycles"],
                "utilization": m * k * n / (r * c * job["cycles"]),
                "fold_model": (fold_model_utilization(r, c, m, k, n) if output_stationary
                               else None),
                "ideal": 1.0,
                "sim_kcycles_per_s": round(job["cycles"] / job["sim_seconds"] / 1e3, 1),
                "ecp5_luts": area.get("luts"), "ecp5_ffs": area.get("ffs"),
                "ecp5_dsps": area.get("dsps"), "ecp5_fmax_mhz": area.get("fmax_mhz"),
                "multipliers": area.get("multipliers"),
                "ecp5_fit": ("yes" if area.get("fits") else
                             f"no ({area.get('overflow')})" if area else None),
            })
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "systolic_gemm",
              "definition": __doc__.strip().splitlines()[2:5], "rows": rows,
              "synthesis": list(areas.values())}
    (OUT_DIR / "systolic_gemm.json").write_text(json.dumps(record, indent=2) + "\n")
    (OUT_DIR / "systolic_gemm.md").write_text(_markdown(rows))
    print(_markdown(rows))
    print(f"wrote {OUT_DIR / 'systolic_gemm.json'} and {OUT_DIR / 'systolic_gemm.md'}")
    return 0


def _markdown(rows: list[dict]) -> str:
    columns = ["array", "dataflow", "gemm", "cycles", "utilization", "fold_model", "ideal",
               "ecp5_luts", "ecp5_ffs", "ecp5_dsps", "multipliers", "ecp5_fmax_mhz",
               "ecp5_fit", "sim_kcycles_per_s"]
    return ("# systolic_gemm benchmark\n\n"
            "Regenerate with `tensorgates bench systolic_gemm`. Utilization = M·K·N / "
            "(R·C·cycles) from the RTL's cycle counter, inputs always valid, output always "
            "ready; fold_model = SCALE-Sim style K+R+C−2 cycles per output tile, no overlap "
            "(output-stationary rows). WS = weight-stationary with a 64-row accumulator.\n\n"
            + results_table_markdown([{c: _shown(c, row[c]) for c in columns} for row in rows]))


def _shown(column: str, value):
    """Utilizations with five decimals: 0.99998 must not read as 1."""
    if column in ("utilization", "fold_model") and value is not None:
        return f"{value:.5f}"
    return value


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))

"""Benchmark of ``nm_sparse_gemm``: dense-equivalent throughput per multiplier for each N:M
ratio and in dense mode, beside ``systolic_gemm`` with the same multiplier count; ECP5 area
and Fmax of each.

Dense-equivalent MACs/cycle = M·K·N (the dense GEMM's MACs) / cycles, cycles from the RTL's
own counter, inputs always valid and the output always ready. A sparse PE has ``n``
multipliers, so the ideal per multiplier is m/n (sparse) and dense_group/n (dense mode).
Writes ``build/bench/nm_sparse_gemm.{json,md}``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.simulation import simulate_top
from gateware.bench_harness import GemmBenchHarness
from gateware.jobs import run_all
from gateware.registry import get_block
from synth.report import results_table_markdown

__all__ = ["main"]

ARRAY = {"rows": "4", "cols": "4"}
#: The ratios of the issue; n multipliers per PE.
RATIOS = ((1, 4), (2, 4), (1, 8), (2, 8), (4, 8), (2, 16))
#: Dense arrays of the same multiplier count (rows × cols·n).
DENSE_PEERS = {1: {"rows": "4", "cols": "4"}, 2: {"rows": "4", "cols": "8"},
               4: {"rows": "8", "cols": "8"}}
SIZE, QUICK_SIZE = 256, 64
#: What the papers report, for the table's last column.
ANCHORS = {(2, 8): "SAT 1.75x (training, 2:8)", (2, 4): "VEGETA 2.20x",
           (1, 4): "VEGETA 3.74x"}
OUT_DIR = Path("build") / "bench"


def _simulate(block: str, settings: dict, jobs: list[list[int]]) -> dict:
    config = get_block(block).config(settings)
    return {"block": block, "settings": settings,
            "jobs": simulate_top(GemmBenchHarness(config), config, "sim.bench_gemm", jobs)}


def _synthesize(block: str, settings: dict) -> dict:
    from synth.run import synthesize_config
    return synthesize_config(get_block(block).config(settings), "ecp5")


def main(*, quick: bool = False, workers: int = 2, skip_synth: bool = False) -> int:
    size = QUICK_SIZE if quick else SIZE
    sparse_points = [("nm_sparse_gemm", {**ARRAY, "n": str(n), "m": str(m)})
                     for n, m in RATIOS]
    dense_points = [("systolic_gemm", peer) for peer in DENSE_PEERS.values()]
    sims = [{"block": b, "settings": s, "jobs": [[size, size, size, 0], [size, size, size, 1]]}
            for b, s in sparse_points]
    sims += [{"block": b, "settings": s, "jobs": [[size, size, size]]} for b, s in dense_points]
    print(f"nm_sparse_gemm: simulating {len(sims)} arrays at {size}^3 ...", flush=True)
    results = run_all(_simulate, sims, workers=workers, progress=lambda d, t, r: print(
        f"  [{d}/{t}] {r['block']} {r['settings']} simulated", flush=True))
    areas: dict[tuple, dict] = {}
    if not skip_synth:
        print("nm_sparse_gemm: ECP5 synthesis and place & route ...", flush=True)
        points = sparse_points + dense_points
        records = run_all(_synthesize, [{"block": b, "settings": s} for b, s in points],
                          workers=workers, progress=lambda d, t, r: print(
                              f"  [{d}/{t}] {r['design']} done", flush=True))
        areas = {(b, json.dumps(s, sort_keys=True)): r
                 for (b, s), r in zip(points, records, strict=True)}

    dense_rate = {}   # multipliers → MAC/cycle of systolic_gemm
    for result in results:
        if result["block"] == "systolic_gemm":
            s, job = result["settings"], result["jobs"][0]
            multipliers = int(s["rows"]) * int(s["cols"])
            dense_rate[multipliers] = job["m"] * job["k"] * job["n"] / job["cycles"]
    rows = []
    for result in results:
        block, s = result["block"], result["settings"]
        config = get_block(block).config(s)
        n = getattr(config, "n", 1)
        m = getattr(config, "m", 1)
        multipliers = config.rows * config.cols * n
        area = areas.get((block, json.dumps(s, sort_keys=True)), {})
        for job in result["jobs"]:
            dense = block == "systolic_gemm" or job["dense"]
            macs_per_cycle = job["m"] * job["k"] * job["n"] / job["cycles"]
            group = (config.dense_group if block == "nm_sparse_gemm" else 1) if dense else m
            ideal = group / n
            per_multiplier = macs_per_cycle / multipliers
            luts = area.get("luts")
            rows.append({
                "block": block, "array": f"{config.rows}x{config.cols}",
                "n:m": f"{n}:{m}" if block == "nm_sparse_gemm" else "—",
                "mode": "dense" if dense else "sparse", "multipliers": multipliers,
                "gemm": f"{job['m']}x{job['k']}x{job['n']}", "cycles": job["cycles"],
                "dense_eq_macs_per_cycle": round(macs_per_cycle, 2),
                "per_multiplier": per_multiplier, "ideal": ideal,
                "of_ideal": per_multiplier / ideal,
                "speedup_vs_dense": macs_per_cycle / dense_rate[multipliers]
                if multipliers in dense_rate else None,
                "paper": ANCHORS.get((n, m)) if block == "nm_sparse_gemm" and not dense
                else None,
                "ecp5_luts": luts, "ecp5_ffs": area.get("ffs"), "ecp5_dsps": area.get("dsps"),
                "ecp5_fmax_mhz": area.get("fmax_mhz"),
                "luts_per_mac_per_cycle": round(luts / macs_per_cycle, 1) if luts else None,
                "sim_kcycles_per_s": round(job["cycles"] / job["sim_seconds"] / 1e3, 1),
            })
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "nm_sparse_gemm", "definition": __doc__.strip().splitlines(),
              "rows": rows, "synthesis": list(areas.values())}
    (OUT_DIR / "nm_sparse_gemm.json").write_text(json.dumps(record, indent=2) + "\n")
    markdown = _markdown(rows)
    (OUT_DIR / "nm_sparse_gemm.md").write_text(markdown)
    print(markdown)
    print(f"wrote {OUT_DIR / 'nm_sparse_gemm.json'} and {OUT_DIR / 'nm_sparse_gemm.md'}")
    return 0


def _markdown(rows: list[dict]) -> str:
    shown = [{k: (f"{v:.4f}" if k in ("per_multiplier", "of_ideal", "speedup_vs_dense")
                  and v is not None else v) for k, v in row.items()} for row in rows]
    return ("# nm_sparse_gemm benchmark\n\n"
            "Regenerate with `tensorgates bench nm_sparse_gemm`. Dense-equivalent MACs per "
            "cycle = M·K·N / cycles (RTL cycle counter, inputs always valid, output always "
            "ready); per_multiplier divides by R·C·n; ideal = m/n sparse, dense_group/n dense; "
            "speedup_vs_dense compares with `systolic_gemm` of the same multiplier count "
            "(R × C·n). ECP5 = LFE5U-85F, out of context.\n\n"
            + results_table_markdown(shown))


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))

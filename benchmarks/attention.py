"""Benchmark of ``attention``: 2D-array utilization, causal savings, area, Fmax, buffers.

Utilization = useful multiply-accumulates (q·k and p·v of the unmasked query–key pairs, from
the RTL's ``useful_macs`` counter) / (R·C·cycles), exp/max work not counted as busy, one head,
Nq = Nkv = N, inputs always valid and the output always ready (self-driving top). The
physical limit is 1 for full attention and, under the causal mask, the unmasked share of the
blocks that a tile cannot skip. Writes ``build/bench/attention.{json,md}``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.simulation import simulate_top
from gateware.bench_harness import AttentionBenchHarness
from gateware.jobs import run_all
from gateware.registry import get_block
from hdl.attention.layout import work
from synth.report import results_table_markdown

__all__ = ["main"]

ARRAYS = ({"rows": "8", "cols": "8", "max_head_dim": "64"},
          {"rows": "16", "cols": "16", "max_head_dim": "64"})
SIZES = (64, 128, 256, 512, 1024)
HEAD_DIMS = (32, 64)
QUICK_SIZES = (64, 256)
QUICK_HEAD_DIMS = (64,)
#: ECP5 points: the two arrays of the issue, and a smaller d to show what the buffers follow.
SYNTHESIS = ({"rows": "4", "cols": "4", "max_head_dim": "64"},
             {"rows": "8", "cols": "8", "max_head_dim": "64"},
             {"rows": "4", "cols": "4", "max_head_dim": "32"})
#: Published references at d = 64 (utilization of the multipliers).
REFERENCES = {"FuseMax model, 1K tokens (exp/max counted busy)": 0.89,
              "H100 FlashAttention, N = 256": 0.22, "H100 FlashAttention, N = 1K": 0.35}
OUT_DIR = Path("build") / "bench"


def _simulate_array(settings: dict, jobs: list[list[int]]) -> dict:
    config = get_block("attention").config(settings)
    return {"settings": settings,
            "jobs": simulate_top(AttentionBenchHarness(config), config, "sim.bench_attention",
                                 jobs)}


def _synthesize(settings: dict) -> dict:
    from synth.run import synthesize_config
    return synthesize_config(get_block("attention").config(settings), "ecp5")


def main(*, quick: bool = False, workers: int = 2, skip_synth: bool = False) -> int:
    sizes, dims = (QUICK_SIZES, QUICK_HEAD_DIMS) if quick else (SIZES, HEAD_DIMS)
    arrays = ARRAYS[:1] if quick else ARRAYS
    jobs = [[n, d, causal] for d in dims for n in sizes for causal in (0, 1)]
    print(f"attention: simulating {len(arrays)} arrays x {len(jobs)} jobs ...", flush=True)
    sims = run_all(_simulate_array, [{"settings": s, "jobs": jobs} for s in arrays],
                   workers=workers, progress=lambda d, t, r: print(
                       f"  [{d}/{t}] {r['settings']['rows']}x{r['settings']['cols']} simulated",
                       flush=True))
    areas = []
    if not skip_synth:
        points = SYNTHESIS[:2] if quick else SYNTHESIS
        print("attention: ECP5 synthesis and place & route ...", flush=True)
        areas = run_all(_synthesize, [{"settings": s} for s in points], workers=workers,
                        progress=lambda d, t, r: print(f"  [{d}/{t}] {r['design']} done",
                                                       flush=True))
    rows = []
    for sim in sims:
        config = get_block("attention").config(sim["settings"])
        r, c = config.rows, config.cols
        full_cycles = {(j["n"], j["d"]): j["cycles"] for j in sim["jobs"] if not j["causal"]}
        for job in sim["jobs"]:
            n, d, causal = job["n"], job["d"], bool(job["causal"])
            beats, macs = work(config, 1, n, 1, n, d, causal)
            assert macs == job["useful_macs"], (job, macs)
            rows.append({
                "array": f"{r}x{c}", "n": n, "d": d, "causal": causal,
                "cycles": job["cycles"], "useful_macs": job["useful_macs"],
                "utilization": job["useful_macs"] / (r * c * job["cycles"]),
                "physical_limit": macs / (r * c * beats),
                "causal_over_full_cycles": (job["cycles"] / full_cycles[n, d]) if causal
                else None,
                "softmax_busy": job["softmax_busy_cycles"] / job["cycles"],
                "stall_cycles": job["stall_cycles"],
                "sim_kcycles_per_s": round(job["cycles"] / job["sim_seconds"] / 1e3, 1),
            })
    synthesis = [{
        "array": f"{a['config']['rows']}x{a['config']['cols']}",
        "max_head_dim": a["config"]["max_head_dim"],
        "ecp5_luts": a.get("luts"), "ecp5_ffs": a.get("ffs"), "ecp5_dsps": a.get("dsps"),
        "ecp5_brams": a.get("brams"), "memory_bits": a.get("memory_bits"),
        "ecp5_fmax_mhz": a.get("fmax_mhz"),
        "ecp5_fit": "yes" if a.get("fits") else f"no ({a.get('overflow')})",
    } for a in areas]
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "attention", "definition": __doc__.strip().splitlines()[2:7],
              "references": REFERENCES, "rows": rows, "synthesis": synthesis}
    (OUT_DIR / "attention.json").write_text(json.dumps(record, indent=2) + "\n")
    markdown = _markdown(rows, synthesis)
    (OUT_DIR / "attention.md").write_text(markdown)
    print(markdown)
    print(f"wrote {OUT_DIR / 'attention.json'} and {OUT_DIR / 'attention.md'}")
    return 0


def _markdown(rows: list[dict], synthesis: list[dict]) -> str:
    shown = [{k: (f"{v:.4f}" if isinstance(v, float) and k != "sim_kcycles_per_s" else v)
              for k, v in row.items()} for row in rows]
    text = ("# attention benchmark\n\n"
            "Regenerate with `tensorgates bench attention`. Utilization = useful q·k and p·v "
            "MACs of unmasked pairs / (R·C·cycles), exp/max work not counted; one head, "
            "Nq = Nkv = n, inputs always valid, output always ready. physical_limit: 1 for full "
            "attention; under the causal mask the unmasked share of the blocks that are not "
            "skipped. References at d = 64: "
            + "; ".join(f"{k}: {v}" for k, v in REFERENCES.items()) + ".\n\n"
            + results_table_markdown(shown))
    if synthesis:
        text += ("\n\n## ECP5 LFE5U-85F (out of context)\n\nn is a runtime value: the "
                 "synthesized design, and its memory bits, do not depend on it; they follow "
                 "the array and max_head_dim only.\n\n" + results_table_markdown(synthesis))
    return text + "\n"


if __name__ == "__main__":
    sys.exit(main(quick="--quick" in sys.argv))

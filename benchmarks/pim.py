"""Benchmark of ``pim``: GEMV throughput of the RTL sequencer against the internal bound and
against ordinary reads, GPT-2 decode per channel, normal reads beside a GEMV, area and Fmax.

* **GEMV** (self-driving top, Verilator): the sequencer runs each GEMV from reset; the DRAM
  cycles from its first to its last command are the RTL's and must equal the golden schedule's
  (``golden.pim.gemv_cycles``), which the golden checker accepts command by command, so the
  count of timing violations is the channel's ``rejected`` counter (0) over every command.
  Throughput = bytes of W per cycle (× passes for batches larger than one pass), against
  ``internal_bound`` (units × column bytes per tCCD_L, refresh included) and against the same
  W streamed by ordinary reads at the external bus rate (``external_read_cycles``).
* **GPT-2 decode** (golden cycle model, whose schedule the RTL reproduces cycle for cycle):
  every GEMV of one layer's decode step (context 128), tokens/s per channel for 12 layers
  (small) and 24 layers (medium) at the preset's clock, against ordinary reads.
* **Normal reads beside a GEMV** (dual row buffer): golden schedule with ``read_traffic``;
  the testbench's ``gemv_with_traffic`` test replays the same kind of schedule through the RTL.

Writes ``build/bench/pim.{json,md}``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.simulation import simulate_top
from gateware.bench_harness import PimBenchHarness
from gateware.jobs import run_all
from gateware.registry import get_block
from synth.report import results_table_markdown

__all__ = ["main"]

#: 16-bank channels: HBM-PIM-like (a unit per bank pair, hbm2); AiM-like (a unit per bank,
#: gddr6) at 128 columns (4 KiB rows) and at 32 columns (1 KiB rows, where per-bank units
#: cannot hide row switches: docs/pim.md, open question 1).
CHANNELS = (
    {"banks": "16", "rows": "512", "unit": "pair"},
    {"banks": "16", "rows": "128", "columns": "128", "timing": "gddr6"},
    {"banks": "16", "rows": "512", "timing": "gddr6"},
)
#: (out, in, batch): GPT-2 small/medium layer shapes, and a batch that reuses each opened row.
GEMVS = ((768, 768, 1), (3072, 768, 1), (768, 3072, 1), (4096, 1024, 1), (768, 768, 4))
QUICK_GEMVS = ((768, 768, 1), (768, 768, 4))
#: ECP5 points (small row counts; banks as block RAM).
SYNTHESIS = ({"banks": "4", "rows": "16", "column_bits": "64", "lanes": "8"},
             {"banks": "16", "rows": "16", "column_bits": "64", "lanes": "8", "unit": "pair"})
CONTEXT = 128
OUT_DIR = Path("build") / "bench"


def _jobs(config, gemvs) -> list[dict]:
    from golden.pim import plan_gemv
    from hdl.pim.sequencer import gemv_descriptor
    jobs = []
    for out, inputs, batch in gemvs:
        plan = plan_gemv(out, inputs, batch, config)
        ports = {k: int(v) for k, v in gemv_descriptor(plan, 0, False).items()}
        jobs.append({"name": f"{out}x{inputs}x{batch}", "ports": ports,
                     "limit": 64 * out * inputs * batch // config.column_bytes + 1_000_000})
    return jobs


def _simulate_channel(settings: dict, gemvs: list) -> dict:
    config = get_block("pim").config(settings)
    return {"settings": settings,
            "jobs": simulate_top(PimBenchHarness(config), config, "sim.bench_pim",
                                 _jobs(config, gemvs))}


def _synthesize(settings: dict) -> dict:
    from synth.run import synthesize_config
    return synthesize_config(get_block("pim").config(settings), "ecp5")


def _label(config) -> str:
    return (f"{config.timing} {config.unit} {config.banks} banks, {config.columns} columns "
            f"({config.units} units)")


def _decode_rows(config) -> list[dict]:
    from golden.gpt_decode import GPT2_MEDIUM, GPT2_SMALL, decode_gemvs
    from golden.pim import external_read_cycles, gemv_cycles
    rows = []
    models = (("GPT-2 small", GPT2_SMALL, 12), ("GPT-2 medium", GPT2_MEDIUM, 24))
    for name, dims, layers in models:
        pim = reads = 0.0
        for shape in decode_gemvs(dims, CONTEXT):
            cycles = gemv_cycles(shape.out, shape.inputs, config)["cycles"]
            pim += cycles * shape.count
            reads += external_read_cycles(shape.out * shape.inputs, config) * shape.count
        seconds = layers * config.tck_ns * 1e-9
        rows.append({"model": name, "channel": _label(config), "pim_cycles_per_layer": pim,
                     "read_cycles_per_layer": reads, "pim_tokens_per_s": 1 / (pim * seconds),
                     "read_tokens_per_s": 1 / (reads * seconds), "speedup": reads / pim})
    return rows


def _traffic_rows(config) -> list[dict]:
    """A 1024×768 GEMV beside ordinary reads of 60 other rows of every bank (golden schedule,
    tREFI raised so that neither refreshes: docs/pim.md, open question 2)."""
    import dataclasses

    from golden.pim import RD, Checker, _run_queues, plan_gemv, read_traffic, schedule_gemv
    config = dataclasses.replace(config, tREFI=65535)
    plan = plan_gemv(1024, 768, 1, config)
    rows = list(range(plan.rows_used, min(config.rows, plan.rows_used + 60)))
    alone, _ = schedule_gemv(plan, None, Checker(config))
    gemv_alone = alone[-1][0].cycle - alone[0][0].cycle + 1
    checker, issued = Checker(config), []
    _run_queues(checker, read_traffic(config, rows, checker), None, 0, issued)
    reads = [cmd.cycle for cmd, _ in issued if cmd.code == RD]
    rate_alone = len(reads) * config.column_bytes / (reads[-1] - reads[0] + 1)
    checker = Checker(config)
    both, _ = schedule_gemv(plan, None, checker, traffic=read_traffic(config, rows, checker))
    gemv = [cmd.cycle for cmd, _ in both if cmd.code not in (1, 2, 3, 4, 5)]
    gemv_both = gemv[-1] - gemv[0] + 1
    reads = [cmd.cycle for cmd, _ in both if cmd.code == RD and gemv[0] <= cmd.cycle <= gemv[-1]]
    rate_both = len(reads) * config.column_bytes / gemv_both
    return [{"channel": _label(config), "gemv_alone": gemv_alone, "gemv_beside_reads": gemv_both,
             "gemv_kept": gemv_alone / gemv_both, "reads_alone_B_per_cycle": rate_alone,
             "reads_beside_gemv_B_per_cycle": rate_both, "reads_kept": rate_both / rate_alone}]


def main(*, quick: bool = False, workers: int = 2, skip_synth: bool = False) -> int:
    from golden.pim import external_read_cycles, gemv_cycles
    gemvs = QUICK_GEMVS if quick else GEMVS
    channels = CHANNELS[:1] if quick else CHANNELS
    print(f"pim: simulating {len(channels)} channels x {len(gemvs)} GEMVs ...", flush=True)
    sims = run_all(_simulate_channel, [{"settings": s, "gemvs": gemvs} for s in channels],
                   workers=workers, progress=lambda d, t, r: print(
                       f"  [{d}/{t}] {r['settings']} simulated", flush=True))
    areas = []
    if not skip_synth:
        print("pim: ECP5 synthesis and place & route ...", flush=True)
        areas = run_all(_synthesize, [{"settings": s} for s in SYNTHESIS], workers=workers,
                        progress=lambda d, t, r: print(f"  [{d}/{t}] {r['design']} done",
                                                       flush=True))
    rows, decode, traffic = [], [], []
    total_commands = total_rejected = 0
    for sim in sims:
        config = get_block("pim").config(sim["settings"])
        for (out, inputs, batch), job in zip(gemvs, sim["jobs"], strict=True):
            cycles = job["last_cycle"] - job["first_cycle"] + 1
            golden = gemv_cycles(out, inputs, config, batch=batch)
            w_bytes = out * inputs
            # W bytes multiplied per cycle, every batch item counted (the MAC rate), against
            # ordinary reads that fetch W once for the whole batch
            rate = w_bytes * batch / cycles
            reads = external_read_cycles(w_bytes, config)
            total_commands += job["commands"]
            total_rejected += job["rejected"]
            rows.append({
                "channel": _label(config), "gemv": f"{out}×{inputs}", "batch": batch,
                "cycles": cycles, "golden_cycles": golden["cycles"],
                "matches_golden": cycles == golden["cycles"] and
                job["commands"] == golden["commands"],
                "commands": job["commands"], "rejected": job["rejected"],
                "refreshes": job["refreshes"], "bytes_per_cycle": rate,
                "bound": config.internal_bound, "of_bound": rate / config.internal_bound,
                "speedup_over_reads": reads / cycles, "ideal_ratio": config.ideal_ratio,
                "of_ideal_ratio": reads / cycles / config.ideal_ratio,
                "clocks": job["cycles"], "sim_seconds": job["sim_seconds"],
                "sim_clocks_per_s": job["cycles"] / max(job["sim_seconds"], 1e-9),
            })
        decode += _decode_rows(config)
        if config.dual_row_buffer:
            traffic += _traffic_rows(config)
    report = {"gemv": rows, "decode": decode, "traffic": traffic, "synthesis": areas,
              "commands": total_commands, "rejected": total_rejected}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "pim.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT_DIR / "pim.md").write_text(_markdown(report))
    print((OUT_DIR / "pim.md").read_text())
    bad = [r for r in rows if not r["matches_golden"]]
    if bad:
        print(f"pim: {len(bad)} GEMVs differ from the golden schedule", file=sys.stderr)
        return 1
    return 0


def _markdown(report: dict) -> str:
    lines = ["# `pim` benchmark", "",
             "GEMV on the RTL sequencer (self-driving top, Verilator). `B/cycle`: bytes of W "
             "multiplied per DRAM cycle, every batch item counted; `of bound` against units × "
             "column bytes / tCCD_L (refresh included); `× reads` against reading W once "
             "(for the whole batch) by ordinary reads at the external bus rate, `of ideal` "
             "that ratio over the preset's ideal (internal / external bound). `= golden`: the "
             "RTL's cycles and command count equal the golden schedule's.", "",
             "| channel | GEMV | batch | cycles | = golden | commands | refreshes | B/cycle | "
             "of bound | × reads | of ideal | sim clocks/s |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["gemv"]:
        lines.append(f"| {r['channel']} | {r['gemv']} | {r['batch']} | {r['cycles']} | "
                     f"{'yes' if r['matches_golden'] else 'NO'} | {r['commands']} | "
                     f"{r['refreshes']} | {r['bytes_per_cycle']:.1f} | {r['of_bound']:.3f} | "
                     f"{r['speedup_over_reads']:.2f}× | {r['of_ideal_ratio']:.3f} | "
                     f"{r['sim_clocks_per_s']:,.0f} |")
    lines += ["", f"Commands issued by the RTL sequencer: {report['commands']:,}; rejected "
              f"(timing or state violations): {report['rejected']}.", "",
              f"## GPT-2 decode, one channel (golden cycle model, context {CONTEXT}, "
              f"12 / 24 layers)",
              "", "| model | channel | PIM cycles/layer | read cycles/layer | PIM tokens/s | "
              "reads tokens/s | speedup |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in report["decode"]:
        lines.append(f"| {r['model']} | {r['channel']} | {r['pim_cycles_per_layer']:,.0f} | "
                     f"{r['read_cycles_per_layer']:,.0f} | {r['pim_tokens_per_s']:,.0f} | "
                     f"{r['read_tokens_per_s']:,.0f} | {r['speedup']:.2f}× |")
    if report["traffic"]:
        lines += ["", "## Normal reads beside a 1024×768 GEMV (dual row buffer, golden schedule)",
                  "", "| channel | GEMV alone | beside reads | GEMV kept | reads alone B/cycle | "
                  "beside GEMV | reads kept |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in report["traffic"]:
            lines.append(f"| {r['channel']} | {r['gemv_alone']} | {r['gemv_beside_reads']} | "
                         f"{r['gemv_kept']:.3f} | {r['reads_alone_B_per_cycle']:.1f} | "
                         f"{r['reads_beside_gemv_B_per_cycle']:.1f} | {r['reads_kept']:.3f} |")
    if report["synthesis"]:
        lines += ["", "## ECP5 (LFE5U-85F, out of context)", "",
                  results_table_markdown(report["synthesis"])]
    return "\n".join(lines) + "\n"

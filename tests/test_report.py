"""``tensorgates report``: latest runs only, the area section, board builds, every benchmark's
headline plot (drawn from records shaped like the benchmarks' own)."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from gateware.registry import BLOCKS, get_block
from sim.runner import design_dir
from synth.summary import PLOTS, report_points, write_report
from tensorgates.cli import main


def _write(path: Path, record: dict, age_s: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    if age_s:
        stamp = path.stat().st_mtime - age_s
        os.utime(path, (stamp, stamp))


def _sim(config, simulator: str, passed: bool, seed: int) -> dict:
    return {"block": config.block_name, "config": config.to_dict(), "simulator": simulator,
            "seed": seed, "passed": passed, "tests": 3, "failures": 0 if passed else 1,
            "log": "build/x/sim.log", "records": {}, "messages": [], "waves": []}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Path("build")


def test_only_current_runs_are_listed(in_tmp):
    config = get_block("systolic_gemm").config({"rows": "3", "cols": "5"})
    folder = design_dir(config, in_tmp)
    _write(folder / "sim_verilator.json", _sim(config, "verilator", True, 11))
    _write(folder / "sim_icarus.json", _sim(config, "icarus", False, 12))
    # the same slug under an old config schema (a folder whose hash today's config does not
    # give): stale, left out even though it is newer
    stale = folder.with_name(folder.name.rsplit("-", 1)[0] + "-00000000")
    _write(stale / "sim_verilator.json", _sim(config, "verilator", False, 13))
    # a run older than the design's current Verilog simulated an earlier design: left out
    other = get_block("systolic_gemm").config({"rows": "2", "cols": "7"})
    _write(design_dir(other, in_tmp) / "sim_icarus.json", _sim(other, "icarus", False, 14),
           age_s=60)
    (design_dir(other, in_tmp) / "top.v").write_text("module top; endmodule\n")
    text = write_report(in_tmp).read_text()
    assert "| 14 |" not in text and "1 runs made before their design's Verilog" in text
    rows = [line for line in text.splitlines() if line.startswith("| systolic_gemm-rows3")]
    assert len(rows) == 2
    assert "| verilator | PASS | 3/3 | 11 |" in rows[1] or "| verilator | PASS | 3/3 | 11 |" in \
        rows[0]
    assert any("| icarus | FAIL | 2/3 | 12 |" in row for row in rows)
    assert "| 13 |" not in text


def test_area_section_tables_and_plots(in_tmp):
    entry = get_block("nm_sparse_mac")
    base = {"block": "nm_sparse_mac", "tools": {}, "verilog": "0", "log_dir": "x",
            "memory_bits": 0}
    text = "module top; endmodule\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    for settings, targets in report_points(entry):
        config = entry.config(settings)
        folder = design_dir(config, in_tmp)
        folder.mkdir(parents=True)
        (folder / "top.v").write_text(text)
        n = config.n * config.m
        for target, place in targets:
            record = {**base, "config": config.to_dict(), "design": config.slug(),
                      "verilog": digest,
                      "target": target, "luts": 100 * n, "ffs": 90 * n, "dsps": config.n,
                      "brams": 0, "cells": 1000 * n, "transistors": 9000 * n,
                      "fmax_mhz": 150.0 - n if place else None, "device": target,
                      "fits": True if place else None, "overflow": None,
                      "multipliers": "DSP"}
            _write(folder / f"synth_{target}.json", record)
    # a record of an earlier Verilog of the 2:8 point: left out, counted
    stale = design_dir(entry.config({"n": "2", "m": "8"}), in_tmp) / "synth_generic.json"
    stale.write_text(stale.read_text().replace(digest, "0123456789abcdef"))
    text = write_report(in_tmp).read_text()
    assert "1 synthesis records of an earlier Verilog" in text
    section = text[text.index("### nm_sparse_mac\n"):]
    section = section[:section.index("\n### ", 5)]
    # 2:4 is both a synthesis point and the small one: listed once, as the iCE40 point
    assert section.count("| 2:4") == 1 and "| 2:4 (iCE40 point) | 800 | 720 | 2 |" in section
    assert "| 2:16 | 3200 | 2880 | 2 | 0 | DSP | 118.0 | fits |" in section
    assert "not placed" in section                     # iCE40 of the synthesis points
    assert (in_tmp / "report" / "area_nm_sparse_mac.png").stat().st_size > 10_000
    assert (in_tmp / "report" / "area_overview.png").is_file()
    assert "![nm_sparse_mac area](area_nm_sparse_mac.png)" in text


def test_board_builds_section(in_tmp):
    report = {"board": "icebreaker", "device": "iCE40UP5K", "block": "nm_sparse_mac",
              "design": "nm_sparse_mac-default", "baud": 115200,
              "config": get_block("nm_sparse_mac").config().to_dict(),
              "folder": "build/board/icebreaker/nm_sparse_mac-default", "multipliers": "DSP",
              "fits": True, "overflow": None,
              "utilization": {"LUT": {"used": 1234, "available": 5280},
                              "FF": {"used": 999, "available": 5280},
                              "DSP": {"used": 2, "available": 8},
                              "BRAM": {"used": 4, "available": 30}},
              "fmax_mhz": 31.5, "clock_mhz": 12.0, "timing_met": True,
              "bitstream": "top.bin", "seconds": {"synthesize": 5.0, "place and route": 7.25},
              "suggestion": None, "passed": True}
    _write(in_tmp / "board/icebreaker/nm_sparse_mac-default/report.json", report)
    text = write_report(in_tmp).read_text()
    assert ("| icebreaker | nm_sparse_mac-default | `tensorgates build nm_sparse_mac --board "
            "icebreaker` | PASS | "
            "1234/5280 | 999/5280 | 2/8 | 4/30 | 31.5 | 12 | 12.2 |") in text
    assert "(../board/icebreaker/nm_sparse_mac-default/report.md)" in text


_BENCHES = {
    "systolic_gemm": {"benchmark": "systolic_gemm", "rows": [
        {"array": "4x4", "dataflow": "OS", "gemm": f"{s}x{s}x{s}", "utilization": 0.99,
         "fold_model": 0.9} for s in (64, 128)]},
    "nm_sparse_gemm": {"benchmark": "nm_sparse_gemm", "rows": [
        {"array": "4x4", "n:m": nm, "mode": mode, "gemm": "64x64x64", "per_multiplier": v,
         "ideal": i} for nm, mode, v, i in (("1:4", "sparse", 3.98, 4.0),
                                            ("1:4", "dense", 0.99, 1.0),
                                            ("2:8", "sparse", 3.9, 4.0))] + [
        {"array": "4x4", "n:m": "—", "mode": "dense", "gemm": "64x64x64",
         "per_multiplier": 1.0, "ideal": 1.0}]},
    "nm_sparse_mac": {"benchmark": "nm_sparse_mac", "rows": [
        {"n:m": "2:4", "multipliers": 2, "dense_eq_macs_per_cycle": 4.0}]},
    "mx_quant": {"benchmark": "mx_quant", "rows": [
        {"block": "mx_quant", "format": "int8", "lanes": 4, "elements_per_cycle": 4.0,
         "physical_limit": 4},
        {"block": "mx_dequant", "format": "int8", "lanes": 4, "elements_per_cycle": None,
         "physical_limit": 4}]},
    "attention": {"benchmark": "attention", "rows": [
        {"array": "8x8", "n": n, "d": 64, "causal": causal, "utilization": 0.9,
         "physical_limit": 0.95 if causal else 1.0} for n in (64, 256)
        for causal in (False, True)]},
    "pim": {"gemv": [{"channel": "hbm2 pair 16 banks, 32 columns (8 units)",
                      "gemv": "768×768", "batch": 1, "speedup_over_reads": 3.9,
                      "ideal_ratio": 4.0, "bytes_per_cycle": 117.6, "bound": 119.5}]},
}


def test_every_benchmark_has_a_headline_plot(in_tmp):
    benchmarks = {get_block(name).benchmark.rsplit(".", 1)[1] for name in BLOCKS}
    assert benchmarks <= set(PLOTS) == set(_BENCHES)
    bench = in_tmp / "bench"
    for name, record in _BENCHES.items():
        _write(bench / f"{name}.json", record)
        (bench / f"{name}.md").write_text(f"# {name} benchmark\n\ntable\n")
    text = write_report(in_tmp).read_text()
    for name in _BENCHES:
        assert f"### {name} benchmark" in text
        image = text[text.index(f"### {name} benchmark"):].split("![", 1)[1]
        png = image[image.index("(") + 1:image.index(")")]
        assert (in_tmp / "report" / png).stat().st_size > 10_000, name


def test_report_usage_errors(capsys):
    assert main(["report", "--synth", "--targets", "vivado"]) == 2
    assert "vivado" in capsys.readouterr().err
    assert main(["report", "--synth", "--block", "nope"]) == 2
    assert "nope" in capsys.readouterr().err

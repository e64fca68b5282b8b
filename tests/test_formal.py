"""Formal proofs (docs/formal.md): the harness machinery bites, the command line's usage
errors, and (``full``) every block's formal point."""
from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gateware.formal import Harness, stream_rules
from gateware.registry import BLOCKS
from synth import prove
from tensorgates.cli import main

needs_tools = pytest.mark.skipif(prove.missing_tool() is not None,
                                 reason=str(prove.missing_tool()))


class StreamStage(wiring.Component):
    """The register slice of the stream docs; ``broken`` loads a new payload even while the
    output waits for ``ready`` (the payload changes under back-pressure)."""

    def __init__(self, *, broken: bool = False):
        self._broken = broken
        super().__init__({"i": In(stream.Signature(4)), "o": Out(stream.Signature(4))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
        load = self.i.valid if self._broken else self.i.valid & self.i.ready
        with m.If(load):
            m.d.sync += self.o.payload.eq(self.i.payload)
        return m


def _stage_harness(broken: bool) -> Harness:
    return Harness(lambda: StreamStage(broken=broken), None, [stream_rules])


@needs_tools
def test_stream_stage_proves(tmp_path: Path):
    record = prove.prove_harness(_stage_harness(False), 6, tmp_path)
    rows = {row["name"]: row for row in record["properties"]}
    assert rows["o_stream_hold"]["verdict"] == "proved", rows
    assert rows["o_stream_hold"]["cover"] == "reached", rows
    assert record["passed"]


@needs_tools
def test_broken_stream_stage_fails_with_a_trace(tmp_path: Path):
    record = prove.prove_harness(_stage_harness(True), 6, tmp_path)
    row = next(row for row in record["properties"] if row["name"] == "o_stream_hold")
    assert row["verdict"] == "fail", row
    trace = Path(row["trace"])
    assert trace.suffix == ".vcd" and trace.is_file() and trace.stat().st_size > 0
    assert not record["passed"]
    lines = prove.format_record(record)
    assert any("FAIL" in line and "o_stream_hold" in line for line in lines)
    assert any(str(trace) in line for line in lines)


def test_prove_missing_tool_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(prove, "missing_tool",
                        lambda: "z3 not found: install it with `pip install z3-solver`")
    assert main(["prove", "nm_sparse_mac"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install z3-solver" in err


@pytest.mark.parametrize("argv", [["prove"], ["prove", "nosuch"],
                                  ["prove", "nm_sparse_mac", "--set", "n=0"],
                                  ["prove", "nm_sparse_mac", "--depth", "0"],
                                  ["prove", "nm_sparse_mac", "--all"]])
def test_prove_usage_errors(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_every_block_has_a_harness_and_a_point():
    for name, entry in BLOCKS.items():
        assert entry.formal, name
        assert name in prove.POINTS, name


@needs_tools
def test_quick_block_proof(tmp_path):
    """One small block end to end in the default tier, at a small depth (about 20 s)."""
    entry, point = BLOCKS["mx_dequant"], prove.POINTS["mx_dequant"]
    record = prove.prove_harness(prove.harness_of(entry, entry.config(point.settings)), 8,
                                 tmp_path)
    failing = [prove.property_line(r) for r in record["properties"]
               if r["verdict"] == "fail" or r["cover"] != "reached"]
    assert not failing, failing
    assert {r["verdict"] for r in record["properties"]} == {"proved", "bmc"}


#: Block proofs quick enough for `make test` (about 10 s each on the 2-core machine); the
#: others run in the full tier.
QUICK_PROOFS = {"nm_sparse_mac", "mx_dequant"}


@needs_tools
@pytest.mark.parametrize("block", [
    block if block in QUICK_PROOFS else pytest.param(block, marks=pytest.mark.full)
    for block in sorted(set(BLOCKS) - {"pim"})])    # pim: see below
def test_block_proof(block, tmp_path):
    """The block's formal point at its quick depth: no property fails or times out, every
    cover is reached (directed runs included) but those the harness declares unreachable,
    with the reason (docs/formal.md)."""
    entry, point = BLOCKS[block], prove.POINTS[block]
    harness = prove.harness_of(entry, entry.config(point.settings))
    record = prove.prove_harness(harness, point.depth, tmp_path)
    failing = [prove.property_line(r) for r in record["properties"]
               if r["verdict"] in ("fail", "timeout")]
    assert not failing, failing
    unreached = {r["name"] for r in record["properties"] if r["cover"] != "reached"}
    assert unreached == set(harness.unreachable), unreached
    assert record["passed"]


# ---------------------------------------------------------------------------- PIM timing safety
#: Clocks for the broken channel's early REF: the units' register clear (four clocks), the
#: first REF's slot (six clocks) and the second REF's decision, seen one clock later.
PIM_BREAK_DEPTH = 13


def _pim_harness(only=None, **dut_overrides):
    """The PIM point's harness; ``dut_overrides`` build the channel with other timing values
    than the harness's record assumes (a channel that breaks the rules), ``only`` limits the
    asserts."""
    from dataclasses import replace

    from gateware.formal import Harness, reset_rules
    from gateware.formal_pim import timing_safety
    from hdl.pim.channel import PimChannel
    entry, point = BLOCKS["pim"], prove.POINTS["pim"]
    config = entry.config(point.settings)
    if not dut_overrides:
        return prove.harness_of(entry, config)
    broken = replace(config, **dut_overrides)
    return Harness(lambda: PimChannel(broken, with_sequencer=False), config,
                   (stream_rules, reset_rules, timing_safety), only=only)


def test_pim_harness_reaches_the_channel():
    """The harness finds the channel's row buffers, mode, bank and unit write ports, and states
    a timing property for every rule of docs/pim.md."""
    from hdl.pim.isa import RULES
    harness = _pim_harness()
    prove.harness_rtlil(harness)
    names = {p.name for p in harness.properties}
    timing = RULES[RULES.index("tRFC"):]
    assert {f"cmd_keeps_{rule}" for rule in timing} <= names
    assert {"buffers_never_share_a_row", "buffers_follow_accepted", "rejected_keeps_buffers",
            "rejected_keeps_banks", "rejected_keeps_units", "cmd_decided_once"} <= names


@needs_tools
def test_pim_harness_catches_a_channel_that_breaks_tRFC(tmp_path):
    """A channel built with tRFC = 1 accepts a REF one cycle after a REF; the harness's own
    record (tRFC = 2) finds it (about 10 s with Yices, 40 s with z3)."""
    harness = _pim_harness(frozenset({"cmd_keeps_tRFC"}), tRFC=1)
    found = prove._run_sby(tmp_path, prove.harness_rtlil(harness), "bmc", PIM_BREAK_DEPTH, 600)
    assert found["cmd_keeps_tRFC"]["status"] == "FAIL", found["cmd_keeps_tRFC"]


@pytest.mark.full
@needs_tools
def test_pim_timing_safety_proof(tmp_path):
    """The PIM point at its depth: no property fails; every cover is reached, those of the
    rules whose bound takes two or three command slots by the directed runs."""
    point = prove.POINTS["pim"]
    record = prove.prove_harness(_pim_harness(), point.depth, tmp_path)
    rows = {r["name"]: r for r in record["properties"]}
    failing = [prove.property_line(r) for r in rows.values()
               if r["verdict"] in ("fail", "timeout")]
    assert not failing, failing
    unreached = {name for name, r in rows.items() if r["cover"] != "reached"}
    assert not unreached, unreached
    directed = {name for name, r in rows.items() if r.get("cover_scenario")}
    assert {f"cmd_keeps_{rule}" for rule in ("tRP", "tRC", "tRAS", "tRTP", "tWR", "tRCD",
                                             "tCCD_L", "tCCD_S", "tFAW")} <= directed

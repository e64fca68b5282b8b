"""Synthesis flow: tiny Amaranth designs through Yosys and nextpnr on each target."""

import json
import re
from pathlib import Path

import pytest
from amaranth import Module, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from synth import SynthError, results_table_markdown, synthesize


class RegisteredMAC(wiring.Component):
    """acc <= acc + a * b on 8-bit signed operands."""

    a: In(signed(8))
    b: In(signed(8))
    acc: Out(signed(24))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.acc.eq(self.acc + self.a * self.b)
        return m


class ParallelMultipliers(wiring.Component):
    """``count`` independent registered 16x16 multipliers, one DSP block each."""

    def __init__(self, *, count: int):
        """``count`` multipliers, with ports ``a<i>``, ``b<i>`` and ``p<i>``."""
        self._count = count
        ports = {}
        for i in range(count):
            ports |= {f"a{i}": In(16), f"b{i}": In(16), f"p{i}": Out(32)}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for i in range(self._count):
            a, b, p = (getattr(self, f"{name}{i}") for name in "abp")
            m.d.sync += p.eq(a * b)
        return m


class Adder(wiring.Component):
    """A purely combinational 8-bit adder: no clock."""

    a: In(8)
    b: In(8)
    y: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a + self.b)
        return m


@pytest.fixture(scope="module")
def designs(tmp_path_factory) -> dict[str, Path]:
    """Verilog of each test design, by top-module name."""
    root = tmp_path_factory.mktemp("verilog")
    components = {"mac": RegisteredMAC(), "adder": Adder(),
                  "mul10": ParallelMultipliers(count=10), "mul40": ParallelMultipliers(count=40)}
    paths = {}
    for name, component in components.items():
        paths[name] = root / f"{name}.v"
        paths[name].write_text(verilog.convert(component, name=name))
    return paths


def test_ecp5_mac(designs, tmp_path):
    result = synthesize(designs["mac"], "mac", "ecp5", tmp_path)
    assert result.luts > 0 and result.ffs > 0 and result.dsps >= 1
    assert result.fits is True and result.overflow is None
    assert result.fmax_mhz > 0
    assert result.device == "LFE5U-85F" and result.memory_bits == 0
    assert (tmp_path / "mac.ecp5.report.json").is_file()
    json.dumps(result.to_dict())


def test_ecp5_clock_target_reaches_nextpnr(designs, tmp_path):
    """``clock_mhz`` is nextpnr's target: the report's constraint shows it."""
    result = synthesize(designs["mac"], "mac", "ecp5", tmp_path, clock_mhz=150)
    report = json.loads((tmp_path / "mac.ecp5.report.json").read_text())
    assert [clock["constraint"] for clock in report["fmax"].values()] == [150]
    assert result.fmax_mhz > 0


def test_block_clock_targets_and_cache_keys():
    """Blocks pipelined for it ask nextpnr for 150 MHz, the others for the flow's 100; only a
    non-default target enters the cache key, so the other blocks keep their records."""
    from synth.run import DEFAULT_CLOCK_MHZ, clock_target_mhz, synth_key
    assert clock_target_mhz("systolic_gemm") == clock_target_mhz("nm_sparse_gemm") == 150
    assert clock_target_mhz("attention") == DEFAULT_CLOCK_MHZ == 100
    assert synth_key("d", "ecp5") == synth_key("d", "ecp5", clock_mhz=DEFAULT_CLOCK_MHZ)
    assert synth_key("d", "ecp5") != synth_key("d", "ecp5", clock_mhz=150)


def test_ecp5_combinational_has_no_fmax(designs, tmp_path):
    result = synthesize(designs["adder"], "adder", "ecp5", tmp_path)
    assert result.fits is True and result.fmax_mhz is None and result.ffs == 0


def test_ecp5_too_many_multipliers(designs, tmp_path):
    result = synthesize(designs["mul40"], "mul40", "ecp5", tmp_path, device="LFE5U-12F")
    assert result.dsps == 40
    assert result.fits is False and "MULT18X18D" in result.overflow


def test_generic_mac(designs, tmp_path):
    result = synthesize(designs["mac"], "mac", "generic", tmp_path)
    assert result.cells > 0 and result.transistors > result.cells
    assert result.luts is None and result.fits is None and result.device is None


def test_ice40_mac(designs, tmp_path):
    result = synthesize(designs["mac"], "mac", "ice40", tmp_path, nodsp=True)
    assert result.luts > 0 and result.ffs > 0 and result.dsps == 0
    assert result.fits is True and result.fmax_mhz > 0
    assert result.device == "iCE40UP5K"


def test_ice40_too_many_dsps(designs, tmp_path):
    result = synthesize(designs["mul10"], "mul10", "ice40", tmp_path)
    assert result.dsps == 10
    assert result.fits is False and "DSP" in result.overflow


def test_unplaced_has_no_fit(designs, tmp_path):
    result = synthesize(designs["mac"], "mac", "ice40", tmp_path, place=False)
    assert result.dsps == 1 and result.fits is None and result.fmax_mhz is None


def test_bad_target(designs, tmp_path):
    with pytest.raises(ValueError, match=r"target 'asic'.*ice40, ecp5, generic"):
        synthesize(designs["mac"], "mac", "asic", tmp_path)


def test_bad_device(designs, tmp_path):
    with pytest.raises(ValueError, match=re.escape("device 'LFE5U-99F'")):
        synthesize(designs["mac"], "mac", "ecp5", tmp_path, device="LFE5U-99F")


def test_tool_failure_raises_with_log(tmp_path):
    broken = tmp_path / "broken.v"
    broken.write_text("module broken(input a, output b); assign b = ; endmodule\n")
    with pytest.raises(SynthError, match=re.escape("broken.ecp5.yosys.log")):
        synthesize(broken, "broken", "ecp5", tmp_path / "out")


def test_results_table():
    rows = [{"block": "mac", "luts": 24, "fmax_mhz": 320.51282},
            {"block": "a|b", "luts": None, "note": "x"}]
    table = results_table_markdown(rows)
    assert table.splitlines() == [
        "| block | luts | fmax_mhz | note |",
        "|---|---|---|---|",
        "| mac | 24 | 320.5 | — |",
        "| a\\|b | — | — | x |",
    ]


class _Flag(wiring.Component):
    d: In(1)
    q: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        return m


class _TwinFlags(wiring.Component):
    """Two submodules registering the same input: identical registers, as a flag is in the PEs
    of one anti-diagonal of a systolic array."""

    d: In(1)
    q: Out(2)

    def elaborate(self, platform):
        m = Module()
        for i in range(2):
            m.submodules[f"pe_{i}"] = flag = _Flag()
            m.d.comb += [flag.d.eq(self.d), self.q[i].eq(flag.q)]
        return m


def test_keep_hierarchy_keeps_identical_registers_apart(tmp_path):
    """Flattened, Yosys merges the twin registers into one; with the submodules kept (as
    ``KEEP_HIERARCHY`` does for the GEMM PEs) each keeps its own. The option is in the key."""
    from synth.run import keep_hierarchy_of, synth_key
    top = _TwinFlags()
    source = tmp_path / "twin.v"
    source.write_text(verilog.convert(top, name="twin"))
    flat = synthesize(source, "twin", "ecp5", tmp_path / "flat", place=False)
    kept = synthesize(source, "twin", "ecp5", tmp_path / "kept", place=False,
                      keep_hierarchy=("pe_*",))
    assert (flat.ffs, kept.ffs) == (1, 2)
    assert keep_hierarchy_of("systolic_gemm") == ("pe_*", "acc_*")
    assert keep_hierarchy_of("attention") == ()
    assert synth_key("d", "ecp5") != synth_key("d", "ecp5", keep_hierarchy=("pe_*",))

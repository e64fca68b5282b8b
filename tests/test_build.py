"""``tensorgates build --board``: usage errors, a design that does not fit, a real bitstream."""

import json
from pathlib import Path

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io, memory

from gateware.registry import get_block
from synth.boards import _TOOLS, BOARDS, board_config, build_board, check_baud, get_board
from tensorgates.cli import main


def _one_line_error(capsys, argv: list[str], *words: str) -> None:
    """``argv`` exits 2 with one line on stderr that contains each of ``words``."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_unknown_board_is_one_line(capsys):
    _one_line_error(capsys, ["build", "systolic_gemm", "--board", "nexys4"],
                    "nexys4", "icebreaker", "ulx3s-85f", "orangecrab-25f")


@pytest.mark.parametrize("baud", ["0", "-9600", "100", "2300000", "4000000"])
def test_unreachable_baud_is_one_line(capsys, baud):
    # 100: slower than the 16-bit bit timer reaches at 12 MHz; 2300000: the nearest divisor (5)
    # gives 2.4 Mbaud, 4% off; 4000000: fewer than 4 clocks a bit
    _one_line_error(capsys, ["build", "systolic_gemm", "--board", "icebreaker", "--baud", baud],
                    f"--baud {baud}", "icebreaker", "12 MHz")


def test_bad_block_and_setting_are_one_line(capsys):
    _one_line_error(capsys, ["build", "no_such_block", "--board", "icebreaker"], "no_such_block")
    _one_line_error(capsys, ["build", "systolic_gemm", "--board", "icebreaker", "--set",
                             "rows=0"], "rows")


def test_baud_rates_each_board_reaches():
    for board in BOARDS.values():
        check_baud(board, 115200)
        check_baud(board, 9600)
    check_baud(get_board("icebreaker"), 3_000_000)        # divisor 4, exact
    with pytest.raises(ValueError, match="732 to 12000000 baud"):
        check_baud(get_board("orangecrab-25f"), 300)


def test_board_defaults_and_overrides():
    entry = get_block("systolic_gemm")
    small = board_config(entry, get_board("icebreaker"), {})
    assert (small.rows, small.cols) == (2, 2)                 # the entry's `small`
    demo = board_config(entry, get_board("ulx3s-85f"), {"dataflow": "weight_stationary"})
    assert (demo.rows, demo.cols, demo.dataflow) == (4, 4, "weight_stationary")
    # no `small`: the iCE40 default falls back to `demo` (and then fails to fit, with a message)
    attention = get_block("attention")
    assert board_config(attention, get_board("icebreaker"), {}) == attention.config(
        attention.demo)


class _Memories(Elaboratable):
    """A cheap stand-in top for the flow's own tests: ``count`` independent 256×16 memories
    (one iCE40 block RAM each) between the UART pins, so the whole build takes seconds."""

    def __init__(self, block: str, config, *, baud: int, count: int):
        self._count = count

    def elaborate(self, platform):
        m = Module()
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        shift, folded = Signal(16), Signal()
        m.d.sync += shift.eq((shift << 1) | rx.i)
        outputs = []
        for index in range(self._count):
            mem = m.submodules[f"mem{index}"] = memory.Memory(shape=16, depth=256, init=[])
            write, read = mem.write_port(), mem.read_port()
            m.d.comb += [write.addr.eq(shift[:8] + index), write.data.eq(shift),
                         write.en.eq(shift[15]), read.addr.eq(shift[8:])]
            outputs.append(read.data.xor())
        for bit in outputs:
            folded = folded ^ bit
        m.d.comb += tx.o.eq(folded)
        return m


def _memories(count: int):
    return lambda block, config, *, baud: _Memories(block, config, baud=baud, count=count)


def test_flow_builds_a_bitstream_and_reports(tmp_path):
    """The whole flow on a seconds-long design: a real UP5K image, utilization and timing."""
    entry = get_block("nm_sparse_mac")
    config = entry.config(entry.small)
    lines = []
    build = build_board(entry, config, get_board("icebreaker"), top_factory=_memories(4),
                        out_root=Path("build/board-test/flow"), progress=lines.append)
    assert build.passed, build
    assert build.utilization["BRAM"] == {"used": 4, "available": 30}
    assert build.fmax_mhz >= build.clock_mhz == 12.0
    assert Path(build.bitstream).stat().st_size == 104090       # every UP5K image
    assert [line.split(":")[0] for line in lines if not line.startswith("[build]   ")] == [
        f"[build] elaborating {config.slug()} behind the UART bridge (115200 baud) for "
        "icebreaker", "[build] synthesize", "[build] place and route", "[build] pack"]


def test_flow_stops_on_overflow_naming_the_resource():
    """40 block RAMs on a device with 30: the build stops at nextpnr's utilisation table, names
    the resource with used/available and suggests the registry's UP5K point."""
    entry = get_block("nm_sparse_mac")
    build = build_board(entry, entry.config(), get_board("icebreaker"),
                        top_factory=_memories(40), out_root=Path("build/board-test/overflow"),
                        progress=lambda line: None)
    assert not build.fits and build.bitstream is None
    assert "ICESTORM_RAM: 40/30" in build.overflow
    assert build.utilization["BRAM"] == {"used": 40, "available": 30}
    assert build.suggestion["settings"] == entry.small
    markdown = (Path(build.folder) / "report.md").read_text()
    assert "DOES NOT FIT" in markdown and "ICESTORM_RAM: 40/30" in markdown


@pytest.mark.full
def test_design_too_big_names_the_resource(capsys):
    """8×8 int8 behind the bridge needs 64 multipliers and ~18k logic cells against the UP5K's
    8 and 5280: the build stops as soon as nextpnr's utilisation table shows it, and says what
    fits instead. Full tier: Yosys alone takes ~50 s of CPU on this design."""
    code = main(["build", "systolic_gemm", "--board", "icebreaker", "--set", "rows=8",
                 "--set", "cols=8"])
    captured = capsys.readouterr()
    assert code == 1
    message = captured.err.strip().splitlines()[-1]
    assert "does not fit icebreaker (iCE40UP5K)" in message
    assert "ICESTORM_LC: " in message and "/5280" in message
    assert "--set rows=2 --set cols=2" in message            # the registry's UP5K point
    assert "[build] place and route" in captured.out
    report = json.loads(Path("build/board/icebreaker/systolic_gemm-rows8-cols8/report.json")
                        .read_text())
    assert report["fits"] is False and report["bitstream"] is None
    used, available = report["utilization"]["LUT"]["used"], report["utilization"]["LUT"][
        "available"]
    assert used > available == 5280
    assert "place and route" in report["seconds"]


@pytest.mark.full
def test_smallest_block_bitstream_on_icebreaker(capsys):
    """nm_sparse_mac 2:4 (its `small`) behind the UART bridge: a real iCE40 bitstream that meets
    the 12 MHz board clock. Full tier: ~25 s of CPU (114 s wall on a loaded machine)."""
    assert main(["build", "nm_sparse_mac", "--board", "icebreaker"]) == 0
    out = capsys.readouterr().out
    folder = Path("build/board/icebreaker/nm_sparse_mac-default")
    report = json.loads((folder / "report.json").read_text())
    assert report["passed"] and report["fits"] and report["timing_met"]
    assert report["config"]["n"] == 2 and report["config"]["m"] == 4
    assert report["fmax_mhz"] >= report["clock_mhz"] == 12.0
    util = report["utilization"]
    assert 0 < util["LUT"]["used"] <= util["LUT"]["available"] == 5280
    assert 0 < util["FF"]["used"] <= 5280
    # an iCE40 UP5K image is 104090 bytes whatever the design
    assert (folder / "top.bin").stat().st_size == 104090
    assert f"Fmax {report['fmax_mhz']:.1f} MHz, board clock 12 MHz" in out
    markdown = (folder / "report.md").read_text()
    assert "PASS" in markdown and "| LUT |" in markdown


def test_orangecrab_uart_on_the_feather_header():
    """The OrangeCrab has no UART resource: ours sits on the Feather header's D0 (RX, ball N17)
    and D1 (TX, ball M18). The platform's commands end with dfu-suffix, which the build skips
    (not on PyPI; the build writes top.dfu itself)."""
    board = get_board("orangecrab-25f")
    platform = board.make_platform()
    entry = get_block("nm_sparse_mac")
    plan = platform.prepare(_Memories("nm_sparse_mac", entry.config(), baud=115200, count=1),
                            name="top")
    lpf = plan.files["top.lpf"]
    assert 'LOCATE COMP "uart_0__rx__io" SITE "N17";' in lpf
    assert 'LOCATE COMP "uart_0__tx__io" SITE "M18";' in lpf
    assert 'FREQUENCY PORT "clk_0__io" 48000000.0 HZ;' in lpf
    commands = json.loads(plan.files["build_top.json"])["commands"]
    assert [command[0] for command in commands] == ["yosys", "nextpnr-ecp5", "ecppack",
                                                    "dfu-suffix"]
    assert "dfu-suffix" not in _TOOLS


def test_missed_timing_is_reported(tmp_path, monkeypatch, capsys):
    """nextpnr's report with a clock below its constraint → timing_met False; the command then
    says by how much and exits 1 (the report and bitstream are still written)."""
    from synth import boards
    board = get_board("ulx3s-85f")
    report = {"utilization": {"TRELLIS_COMB": {"used": 900, "available": 83640},
                              "TRELLIS_FF": {"used": 500, "available": 83640},
                              "MULT18X18D": {"used": 2, "available": 156},
                              "DP16KD": {"used": 1, "available": 208}},
              "fmax": {"cd_sync.clk": {"achieved": 21.37, "constraint": 25.0}}}
    outcome = boards._read_report(report, tmp_path, board)
    assert outcome["timing_met"] is False and outcome["fmax_mhz"] == 21.37
    assert outcome["utilization"]["DSP"] == {"used": 2, "available": 156}

    entry = get_block("nm_sparse_mac")
    config = entry.config()
    missed = boards.BoardBuild(
        board=board.name, device=board.device, block=entry.name, design=config.slug(),
        config=config.to_dict(), baud=115200, folder=str(tmp_path), multipliers="DSP",
        fits=True, overflow=None, utilization=outcome["utilization"], fmax_mhz=21.37,
        clock_mhz=25.0, timing_met=False, bitstream=str(tmp_path / "top.bit"),
        seconds={"synthesize": 1.0})
    monkeypatch.setattr(boards, "build_board", lambda *args, **kwargs: missed)
    assert main(["build", "nm_sparse_mac", "--board", "ulx3s-85f"]) == 1
    err = capsys.readouterr().err.strip()
    assert "misses timing on ulx3s-85f: Fmax 21.4 MHz is below the 25 MHz board clock" in err

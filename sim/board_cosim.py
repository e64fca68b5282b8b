"""Co-simulated board: the whole board top (host bridge + block) under cocotb, driven by the
real host driver (`tensorgates run`, a subprocess) through a pty whose bytes the testbench
(`sim.tb_board`) turns into UART bits on the top's ``rx`` and back from its ``tx``."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from gateware.generate import generate_component
from gateware.host_bridge import HostBridgeTop
from gateware.registry import get_block
from sim.runner import BuildOptions, design_dir, run_testbench

__all__ = ["COSIM_DIVISOR", "COSIM_TIMEOUT_BITS", "INJECTIONS", "run_board_cosim"]

#: UART bit time in the co-simulation: a few clocks, so a byte is 80 clocks.
COSIM_DIVISOR = 8
#: The bridge's stall timeout in bit times (2048 clocks): short, so INCOMPLETE comes soon.
COSIM_TIMEOUT_BITS = 256
#: The error cases the testbench injects between the host's frames, and the status each
#: must be answered with (see sim/tb_board.py).
INJECTIONS = ("framing_error", "unknown_command", "oversize", "bad_crc", "incomplete")


def run_board_cosim(block: str, settings: dict[str, str] | None = None,
                    inputs_npz: Path | None = None, simulator: str = "verilator", *,
                    seed: int | None = None, inject: bool = False, timeout: float = 120.0,
                    fifo_depth: int = 32, max_payload: int = 256,
                    root: Path = Path("build")) -> tuple[int, dict[str, np.ndarray], str]:
    """Run ``tensorgates run BLOCK --port <pty> [--set k=v] [--inputs inputs_npz]`` against
    the co-simulated ``HostBridgeTop`` of ``block`` with ``settings`` on ``simulator``.

    Returns ``(exit_code, outputs, log)``: the driver's exit code (0: the board's outputs
    equal the golden model's), the npz it wrote (``<key>``, ``<key>_golden``, counters;
    empty if it wrote none) and its console output. Without ``inputs_npz`` the driver makes
    random inputs from ``seed``. ``inject`` adds, between the driver's frames, a framing
    error, an unknown command, an oversize frame, a bad CRC and an incomplete frame (the
    testbench checks each reply's status and hides it from the driver), and breaks one of the
    driver's own frames with a low stop bit (the driver gets FRAMING_ERROR and resends); the
    run must still pass. Raises ``AssertionError`` when the testbench fails (a wrong status,
    a hang past ``timeout`` wall seconds). The UART runs at ``COSIM_DIVISOR`` clocks a bit.
    """
    entry = get_block(block)
    settings = dict(settings or {})
    config = entry.config(settings)
    top = HostBridgeTop(block, config, divisor=COSIM_DIVISOR, fifo_depth=fifo_depth,
                        max_payload=max_payload, timeout_bits=COSIM_TIMEOUT_BITS)
    folder = (design_dir(config, root) /
              f"board_d{COSIM_DIVISOR}_f{fifo_depth}_p{max_payload}_t{COSIM_TIMEOUT_BITS}")
    design = generate_component(top, config, folder)
    seed = random.SystemRandom().randrange(1 << 31) if seed is None else seed
    run_dir = (folder / f"run_{simulator}_{seed}{'_inject' if inject else ''}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    outputs = run_dir / "outputs.npz"
    outputs.unlink(missing_ok=True)
    params = {"block": block, "settings": settings, "seed": seed, "inject": inject,
              "divisor": COSIM_DIVISOR, "timeout": timeout, "max_payload": max_payload,
              "inputs": str(Path(inputs_npz).resolve()) if inputs_npz else None,
              "outputs": str(outputs), "repo": str(Path(__file__).resolve().parent.parent)}
    build = BuildOptions(ports_only=True) if simulator == "verilator" else BuildOptions()
    result = run_testbench(design, simulator, "sim.tb_board", run_dir=run_dir, seed=seed,
                           env={"TG_BOARD": json.dumps(params)}, build=build)
    record = result.records.get("board", {})
    log = record.get("log", "")
    if not result.passed:
        raise AssertionError(f"board co-simulation of {config.slug()} on {simulator} failed "
                             f"(seed {seed}): {result.messages}; driver output:\n{log}\n"
                             f"sim log: {result.log}")
    arrays: dict[str, np.ndarray] = {}
    if outputs.exists():
        with np.load(outputs) as npz:
            arrays = {key: npz[key] for key in npz.files}
    return record["exit_code"], arrays, log

"""Board top (host bridge + block) under cocotb, talking to the real host driver.

The driver (`python -m tensorgates.cli run BLOCK --port /dev/pts/N …`) runs as a subprocess
on one end of a pty; this testbench holds the other end and turns the driver's request frames
into UART bits on ``rx`` (a byte at a time, random gaps between bytes) and the bits on ``tx``
back into reply frames for the driver. With ``inject`` it slips error cases in between the
driver's frames, checks each one's reply status and keeps those replies from the driver, and
breaks one of the driver's own frames (a low stop bit) so that the driver sees FRAMING_ERROR
and sends it again; the run must still end equal to the golden model.

Parameters come from ``TG_BOARD`` (JSON, set by :func:`sim.board_cosim.run_board_cosim`).
"""
from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import time
import tty
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from gateware.host_protocol import (
    REPLY_SYNC,
    REQUEST_SYNC,
    Command,
    FrameParser,
    Status,
    pack_reply,
    pack_request,
)
from sim.testbench import write_results

CLOCK_NS = 10


class Uart:
    """Bit-level UART on the DUT's pins: ``send`` drives ``rx`` (with an optional low stop
    bit), a background monitor samples ``tx`` mid-bit into reply frames."""

    def __init__(self, dut, divisor: int):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_NS
        self.replies = FrameParser(REPLY_SYNC)
        self.frames: deque = deque()
        self.framing_errors = 0

    async def send(self, byte: int, *, stop: int = 1) -> None:
        for bit in (0, *((byte >> i) & 1 for i in range(8)), stop):
            self.dut.rx.value = bit
            await Timer(self.bit_ns, unit="ns")
        self.dut.rx.value = 1

    async def monitor(self) -> None:
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(self.dut.tx.value):
                continue   # a glitch, not a start bit
            value = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                value |= int(self.dut.tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if not int(self.dut.tx.value):
                self.framing_errors += 1
            self.frames.extend(self.replies.feed(bytes([value])))

    async def reply(self, timeout_ns: int):
        """The next whole reply frame from the DUT (``AssertionError`` after ``timeout_ns``)."""
        waited = 0
        while not self.frames:
            assert waited < timeout_ns, f"no reply from the bridge within {timeout_ns} ns"
            await Timer(20 * self.bit_ns, unit="ns")
            waited += 20 * self.bit_ns
        return self.frames.popleft()


def injections(max_payload: int) -> dict[str, tuple[list[tuple[int, int]], Status]]:
    """Each error case: (byte, stop bit) pairs to send and the status it must be answered
    with. The oversize payload is all sync bytes: the bridge must count them away, not
    resync on them; the bad-CRC frame is a WRITE that must change nothing."""
    bad_crc = bytearray(pack_request(Command.WRITE, bytes([0, 1, 2, 3, 4, 5, 6])))
    bad_crc[-1] ^= 0x5A
    return {
        "framing_error": ([(REQUEST_SYNC, 1), (Command.WRITE, 1), (0x03, 0), (0x00, 1),
                           (0x11, 1)], Status.FRAMING_ERROR),
        "unknown_command": ([(b, 1) for b in pack_request(0x7E, b"\x01\x02")],
                            Status.UNKNOWN_COMMAND),
        "oversize": ([(b, 1) for b in pack_request(Command.WRITE,
                                                   bytes([REQUEST_SYNC]) * (max_payload + 1))],
                     Status.OVERSIZE),
        "bad_crc": ([(b, 1) for b in bad_crc], Status.BAD_CRC),
        "incomplete": ([(REQUEST_SYNC, 1), (Command.WRITE, 1), (0x05, 1)], Status.INCOMPLETE),
    }


@cocotb.test()
async def board_run(dut):
    """The driver's `tensorgates run` against the board top, errors injected on request."""
    params = json.loads(os.environ["TG_BOARD"])
    rng = random.Random(params["seed"])
    dut._log.info("seed %d; %s", params["seed"], params)
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await Timer(5 * CLOCK_NS, unit="ns")
    dut.rst.value = 0
    uart = Uart(dut, params["divisor"])
    cocotb.start_soon(uart.monitor())
    reply_timeout_ns = 4_000 * uart.bit_ns   # the bridge's own timeouts are 256 bit times

    master, slave = os.openpty()
    tty.setraw(slave)
    command = [sys.executable, "-m", "tensorgates.cli", "run", params["block"],
               "--port", os.ttyname(slave), "--timeout", "30"]
    for key, value in params["settings"].items():
        command += ["--set", f"{key}={value}"]
    command += (["--inputs", params["inputs"]] if params["inputs"]
                else ["--seed", str(params["seed"])])
    command += ["--outputs", params["outputs"]]
    env = {**os.environ, "PYTHONPATH": params["repo"]}
    for key in ("TG_BOARD", "TG_RESULTS", "TG_SEED", "TG_CONFIG"):
        env.pop(key, None)
    log_path = os.path.join(os.environ["TG_RESULTS"], "..", "driver.log")
    log_file = open(log_path, "w+")
    driver = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                              cwd=params["repo"], env=env)
    dut._log.info("driver: %s", " ".join(command))

    cases = injections(params["max_payload"]) if params["inject"] else {}
    names = list(cases)
    rng.shuffle(names)
    # before which of the driver's frames each case goes: after INFO and RESET, mid-run
    # (every driver run has at least INFO, RESET, STATUS, WRITE, STATUS, READ, COUNTERS)
    slots: dict[int, list[str]] = {}
    for name in names:
        slots.setdefault(rng.randrange(2, 7), []).append(name)
    # one of the driver's own frames gets a byte with a low stop bit: the bridge must drop it
    # and answer FRAMING_ERROR, which reaches the driver, and the driver must send it again
    broken_frame = rng.randrange(2, 7) if params["inject"] else None
    answered: dict[str, str] = {}
    before_frame: dict[str, int] = {}
    requests = FrameParser(REQUEST_SYNC)
    pending: deque = deque()
    forwarded = 0
    waiting = False
    deadline = time.monotonic() + params["timeout"]

    async def inject(name: str) -> None:
        sequence, expected = cases[name]
        for byte, stop in sequence:
            await uart.send(byte, stop=stop)
        frame = await uart.reply(reply_timeout_ns)
        answered[name] = Status(frame.code).name
        before_frame[name] = forwarded
        dut._log.info("injected %s before the driver's frame %d: %s", name, forwarded,
                      answered[name])
        assert frame.crc_ok and frame.code == expected, \
            f"{name}: answered {answered[name]}, expected {expected.name}"

    try:
        while driver.poll() is None:
            assert time.monotonic() < deadline, f"driver still running after " \
                                                f"{params['timeout']} s"
            ready, _, _ = select.select([master], [], [], 0 if waiting or pending else 0.002)
            if ready:
                try:
                    pending.extend(requests.feed(os.read(master, 4096)))
                except OSError:   # the driver closed its end
                    pass
            if waiting:
                if uart.frames:
                    frame = uart.frames.popleft()
                    if forwarded - 1 == broken_frame:
                        answered["driver_frame_broken"] = Status(frame.code).name
                        before_frame["driver_frame_broken"] = broken_frame
                        dut._log.info("the driver's frame %d, broken: %s", broken_frame,
                                      answered["driver_frame_broken"])
                        assert frame.code == Status.FRAMING_ERROR, answered
                    os.write(master, pack_reply(frame.code, frame.payload)
                             if frame.crc_ok else b"\x5a\xff\x00\x00\x00")
                    waiting = False
                else:
                    await Timer(20 * uart.bit_ns, unit="ns")
            elif pending:
                for name in slots.pop(forwarded, []):
                    await inject(name)
                frame = pending.popleft()
                data = pack_request(frame.code, frame.payload)
                broken = rng.randrange(1, len(data)) if forwarded == broken_frame else None
                for index, byte in enumerate(data):
                    await uart.send(byte, stop=0 if index == broken else 1)
                    # a pause between bytes, well short of a stall (none in a broken frame:
                    # the bridge answers after two quiet characters)
                    if broken is None and rng.random() < 0.2:
                        await Timer(rng.randrange(1, 20) * uart.bit_ns, unit="ns")
                forwarded += 1
                waiting = True
            else:
                await Timer(100 * CLOCK_NS, unit="ns")
        for names_left in list(slots.values()):   # a run shorter than the slots: at its end
            for name in names_left:
                await inject(name)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait()
        os.close(master)
        os.close(slave)
        log_file.seek(0)
        log = log_file.read()
        log_file.close()
        write_results({"test": "board", "exit_code": driver.returncode, "log": log,
                       "frames": forwarded, "injected": answered,
                       "before_frame": before_frame,
                       "uart_framing_errors": uart.framing_errors})
    dut._log.info("driver exited %d after %d frames:\n%s", driver.returncode, forwarded, log)
    assert uart.framing_errors == 0, "the bridge sent a byte with a low stop bit"
    planned = set(cases) | ({"driver_frame_broken"} if params["inject"] else set())
    assert set(answered) == planned, f"injected {answered}, planned {sorted(planned)}"

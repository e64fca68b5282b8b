"""The UART host bridge: protocol and error replies (Amaranth simulator, bit-level UART),
parameter checks, the board top, and `tensorgates run` against the co-simulated board top
(Verilator and Icarus) with errors injected mid-run."""
import random
import struct

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from sim_cli import require

from gateware.board_top import BoardTop, uart_divisor
from gateware.host_bridge import HostBridgeTop, crc8_next
from gateware.host_protocol import (
    REPLY_SYNC,
    REQUEST_SYNC,
    Command,
    FrameParser,
    Status,
    crc8,
    pack_reply,
    pack_request,
    parse_info,
)
from gateware.registry import BLOCKS
from sim.board_cosim import INJECTIONS, run_board_cosim
from sim.runner import SIMULATORS
from tensorgates.cli import main

DIVISOR = 4
GEMM_1X1 = {"rows": "1", "cols": "1"}


def test_protocol_frames_round_trip():
    """pack/parse agree, CRC-8/SMBUS check value, bytes before the sync byte skipped."""
    assert crc8(b"123456789") == 0xF4   # the catalogued check value of CRC-8 (poly 0x07)
    parser = FrameParser(REPLY_SYNC)
    frames = parser.feed(b"\x00\x13" + pack_reply(Status.TIMEOUT, b"\x01\x02\x03"))
    assert [(f.code, f.payload, f.crc_ok) for f in frames] == [(6, b"\x01\x02\x03", True)]
    assert parser.skipped == 2
    broken = bytearray(pack_request(Command.WRITE, b"\x00\xa5"))
    broken[-1] ^= 1
    assert not FrameParser(REQUEST_SYNC).feed(bytes(broken))[0].crc_ok


def test_crc8_rtl_matches_host():
    rng = random.Random(3)
    crc, byte, out = Signal(8), Signal(8), Signal(8)
    m = Module()
    m.d.comb += out.eq(crc8_next(crc, byte))
    sim = Simulator(m)
    cases = [(rng.randrange(256), rng.randrange(256)) for _ in range(300)]

    async def bench(ctx):
        from gateware.host_protocol import crc8_update
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc8_update(c, b), (c, b)

    sim.add_testbench(bench)
    sim.run()


class BridgeScript:
    """Requests as UART bits into an Amaranth-simulated HostBridgeTop, replies decoded from
    its ``tx``: each step sends (byte, stop bit) pairs and waits for one reply frame."""

    def __init__(self, top: HostBridgeTop, steps: list[list[tuple[int, int]]]):
        self.top = top
        self.steps = steps
        self.replies = []

    def run(self) -> list:
        top, parser, raw = self.top, FrameParser(REPLY_SYNC), []
        sim = Simulator(top)
        sim.add_clock(1e-8)

        async def send(ctx, byte, stop):
            for bit in (0, *((byte >> i) & 1 for i in range(8)), stop):
                ctx.set(top.rx, bit)
                await ctx.tick().repeat(DIVISOR)
            ctx.set(top.rx, 1)

        async def host(ctx):
            await ctx.tick().repeat(5)
            for step in self.steps:
                if callable(step):   # a probe of the design between requests
                    step(ctx)
                    continue
                for byte, stop in step:
                    await send(ctx, byte, stop)
                for _ in range(4000):
                    if len(parser.feed(b"")) or self._complete(raw, parser):
                        break
                    await ctx.tick().repeat(10)
                else:
                    raise AssertionError(f"no reply to step {len(self.replies)}")

        async def monitor(ctx):
            while True:
                await ctx.tick()
                if ctx.get(top.tx) == 0:
                    await ctx.tick().repeat(DIVISOR // 2)
                    value = 0
                    for i in range(8):
                        await ctx.tick().repeat(DIVISOR)
                        value |= ctx.get(top.tx) << i
                    await ctx.tick().repeat(DIVISOR)
                    assert ctx.get(top.tx) == 1, "reply byte with a low stop bit"
                    raw.append(value)

        sim.add_testbench(host)
        sim.add_testbench(monitor, background=True)
        sim.run()
        return self.replies

    def _complete(self, raw: list[int], parser: FrameParser) -> bool:
        frames = parser.feed(bytes(raw))
        raw.clear()
        self.replies += frames
        return bool(frames)


def request(command: int, payload: bytes = b"") -> list[tuple[int, int]]:
    return [(b, 1) for b in pack_request(command, payload)]


def test_bridge_commands_and_error_replies():
    """Every command and every error status on a 1×1 GEMM behind the bridge; after each error
    the bridge is back in sync (the next request answers), and rejected frames change
    nothing (STATUS shows the FIFOs as before)."""
    entry = BLOCKS["systolic_gemm"]
    config = entry.config(GEMM_1X1)
    top = HostBridgeTop("systolic_gemm", config, divisor=DIVISOR, fifo_depth=8,
                        max_payload=40, timeout_bits=16)
    info = top.info
    desc_bytes, a_bytes, b_bytes = (info.beat_bytes(bits) for _n, bits in info.inputs)
    c_bytes = info.beat_bytes(info.outputs[0][1])
    bad_crc = request(Command.WRITE, bytes([1, 7, 7]))
    bad_crc[-1] = (bad_crc[-1][0] ^ 0xFF, 1)
    # a 1×1×1 job: desc (m=k=n=1), a = 5, b = -3
    desc = (1 | 1 << 16 | 1 << 32).to_bytes(desc_bytes, "little")
    steps = {
        "info": [(0x00, 1), (0x13, 1), *request(Command.INFO)],   # noise first: skipped
        "status": request(Command.STATUS),
        "write_a": request(Command.WRITE, bytes([1]) + bytes([5]) * (3 * a_bytes)),
        "status_a": request(Command.STATUS),
        "bad_crc": bad_crc,
        "bad_index": request(Command.WRITE, bytes([3, 0])),
        "partial_beat": request(Command.WRITE, bytes([0]) + bytes(desc_bytes + 1)),
        "empty_write": request(Command.WRITE),
        "status_same": request(Command.STATUS),
        "read_nothing": request(Command.READ, struct.pack("<BH", 0, 1)),
        "read_too_many": request(Command.READ, struct.pack("<BH", 0, 40 // c_bytes + 1)),
        "read_bad_index": request(Command.READ, struct.pack("<BH", 1, 1)),
        "read_short": request(Command.READ, b"\x00"),
        "unknown": request(0x7E, b"\x01"),
        "info_payload": request(Command.INFO, b"\x00"),
        "oversize": request(Command.WRITE, bytes([REQUEST_SYNC]) * 41),
        "framing": [(REQUEST_SYNC, 1), (Command.WRITE, 1), (0x02, 0), (0x00, 1), (0x01, 1)],
        "incomplete": [(REQUEST_SYNC, 1), (Command.READ, 1), (0x03, 1), (0x00, 1)],
        "settings_none": request(Command.SETTINGS),
        "settings_bad": request(Command.SETTINGS, b"\x01"),
        # nothing takes `a` before a descriptor: 5 slots left, the sixth beat times out
        "write_full": request(Command.WRITE, bytes([1]) + bytes([9]) * (6 * a_bytes)),
        "status_full": request(Command.STATUS),
        "reset": request(Command.RESET),
        "status_reset": request(Command.STATUS),
        "desc": request(Command.WRITE, bytes([0]) + desc),
        "a": request(Command.WRITE, bytes([1]) + (5).to_bytes(a_bytes, "little")),
        "b": request(Command.WRITE, bytes([2]) + (-3 & 0xFF).to_bytes(b_bytes, "little")),
        "read_c": request(Command.READ, struct.pack("<BH", 0, 1)),
        "counters": request(Command.COUNTERS),
    }
    probed = {}
    block = top.block

    def probe(ctx):   # the block's own counters once the job is done
        probed.update({name: ctx.get(getattr(block.counters, name))
                       for name in info.counters + info.flags})

    replies = dict(zip(steps, BridgeScript(top, [*steps.values(), probe]).run(),
                       strict=True))
    status = {name: Status(frame.code) for name, frame in replies.items()}
    assert all(frame.crc_ok for frame in replies.values())
    assert replies["info"].payload == info.info_payload()
    parsed = parse_info(replies["info"].payload)
    assert parsed["input_bytes"] == [desc_bytes, a_bytes, b_bytes]
    assert (parsed["fifo_depth"], parsed["max_payload"], parsed["counters"]) == (8, 40, 5)

    def levels(name):
        return list(struct.unpack("<4H", replies[name].payload))

    assert levels("status") == [8, 8, 8, 0]
    assert replies["write_a"].payload == struct.pack("<H", 3)
    assert levels("status_a") == levels("status_same") == [8, 5, 8, 0]
    assert status == {**{name: Status.OK for name in steps},
                      "bad_crc": Status.BAD_CRC, "bad_index": Status.BAD_ARGUMENT,
                      "partial_beat": Status.BAD_ARGUMENT, "empty_write": Status.BAD_ARGUMENT,
                      "read_nothing": Status.TIMEOUT, "read_too_many": Status.OVERSIZE,
                      "read_bad_index": Status.BAD_ARGUMENT, "read_short": Status.BAD_ARGUMENT,
                      "unknown": Status.UNKNOWN_COMMAND, "info_payload": Status.BAD_ARGUMENT,
                      "oversize": Status.OVERSIZE, "framing": Status.FRAMING_ERROR,
                      "incomplete": Status.INCOMPLETE, "settings_bad": Status.BAD_ARGUMENT,
                      "write_full": Status.TIMEOUT}
    assert replies["write_full"].payload == struct.pack("<H", 5)
    assert levels("status_full") == [8, 0, 8, 0]
    assert replies["read_nothing"].payload == b""
    assert levels("status_reset") == [8, 8, 8, 0]
    # c = 5 · (−3) = −15 in the result beat's data field, with row 0, col 0 and last set
    from amaranth.lib import stream

    from sim.payload import unpack
    layout = block.signature.members["c"].signature.members["payload"].shape
    assert isinstance(block.signature.members["c"].signature, stream.Signature)
    beat = unpack(layout, int.from_bytes(replies["read_c"].payload, "little"))
    assert beat == {"data": [-15], "row": 0, "col": 0, "last": 1}
    counters = replies["counters"].payload
    assert len(counters) == 6 * 5 + 1
    values = [int.from_bytes(counters[6 * i:6 * i + 6], "little") for i in range(5)]
    assert dict(zip(info.counters, values, strict=True)) == \
        {name: probed[name] for name in info.counters}
    assert values[1] > 0   # busy_cycles: the job ran
    assert counters[-1] == probed["desc_error"] == 0


@pytest.mark.parametrize("kwargs, name", [
    ({"divisor": 3}, "divisor"),
    ({"divisor": 8, "fifo_depth": 1}, "fifo_depth"),
    ({"divisor": 8, "max_payload": 8}, "max_payload"),
    ({"divisor": 8, "max_payload": 1 << 16}, "max_payload"),
    ({"divisor": 8, "timeout_bits": 2}, "timeout_bits"),
])
def test_bridge_parameters_validated(kwargs, name):
    config = BLOCKS["systolic_gemm"].config(GEMM_1X1)
    with pytest.raises(ValueError, match=name):
        HostBridgeTop("systolic_gemm", config, **kwargs)


def test_bridge_block_and_config_validated():
    config = BLOCKS["systolic_gemm"].config(GEMM_1X1)
    with pytest.raises(ValueError, match=r"block='nope'.*systolic_gemm"):
        HostBridgeTop("nope", config, divisor=8)
    with pytest.raises(ValueError, match=r"config=.*MXQuantConfig"):
        HostBridgeTop("mx_quant", config, divisor=8)


def test_uart_divisor():
    assert uart_divisor(12e6, 115200) == 104        # iCEBreaker: 115385 baud, 0.2% off
    assert uart_divisor(25e6, 115200) == 217        # ULX3S
    with pytest.raises(ValueError, match=r"baud=2500000.*4\.0% off"):
        uart_divisor(12e6, 2_500_000)
    with pytest.raises(ValueError, match="baud=0"):
        uart_divisor(12e6, 0)
    with pytest.raises(ValueError, match="baud=10000000"):
        uart_divisor(12e6, 10_000_000)


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_board_top_elaborates(board):
    """BoardTop on a real amaranth-boards platform: the UART pins and a LED requested."""
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    platform = {"icebreaker": ICEBreakerPlatform, "ulx3s": ULX3S_85F_Platform}[board]()
    config = BLOCKS["systolic_gemm"].config({"rows": "2", "cols": "2"})
    plan = platform.prepare(BoardTop("systolic_gemm", config), name="top")
    constraints = "".join(text for name, text in plan.files.items()
                          if name.endswith((".pcf", ".lpf")))
    assert "uart_0__rx" in constraints and "uart_0__tx" in constraints
    assert "led_0" in constraints
    with pytest.raises(ValueError, match="baud"):
        BoardTop("systolic_gemm", config, baud=-1)


def test_run_usage_errors(tmp_path, capsys):
    """Bad port or inputs: one line, exit 2."""
    assert main(["run", "systolic_gemm", "--port", str(tmp_path / "no-such-tty")]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["run", "systolic_gemm", "--port", "/dev/null", "--inputs",
                 str(tmp_path / "missing.npz")]) == 2
    np.savez(tmp_path / "bad.npz", a=np.zeros((2, 3)), b=np.zeros((4, 2)))
    assert main(["run", "systolic_gemm", "--port", "/dev/null", "--inputs",
                 str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("tensorgates: --inputs") for line in err)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_run_against_cosimulated_board(tmp_path, simulator):
    """`tensorgates run systolic_gemm` (2×2) through a pty into the co-simulated board top:
    the user's a and b in, c out equal to a·b, counters in the npz; a framing error, an
    unknown command, an oversize frame, a bad CRC and an incomplete frame injected between
    the driver's frames, each answered with its status (checked in sim/tb_board.py), and the
    run still passes."""
    require(simulator)
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (7, 9)).astype(np.int8)
    b = rng.integers(-128, 128, (9, 5)).astype(np.int8)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    seed = random.SystemRandom().randrange(1 << 31)
    print(f"seed {seed}")
    code, outputs, log = run_board_cosim("systolic_gemm", {"rows": "2", "cols": "2"},
                                         tmp_path / "in.npz", simulator, seed=seed,
                                         inject=True)
    print(log)
    assert code == 0, log
    expected = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(outputs["c"], expected)
    assert np.array_equal(outputs["c_golden"], expected)
    assert outputs["busy_cycles"] > 0 and outputs["desc_error"] == 0
    assert "PASS systolic_gemm-rows2-cols2" in log
    assert len(INJECTIONS) == 5


class ScriptedPort:
    """A serial port whose replies are scripted: each write() queues the next reply."""

    def __init__(self, replies: list[bytes]):
        self.replies = list(replies)
        self.written: list[bytes] = []
        self.timeout = None
        self._pending = b""

    @property
    def in_waiting(self) -> int:
        return len(self._pending)

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        if self.replies:
            self._pending += self.replies.pop(0)

    def read(self, n: int) -> bytes:
        data, self._pending = self._pending[:n], self._pending[n:]
        return data


def test_client_error_replies_and_resends():
    """An error reply raises BridgeError naming the status; line-noise errors are resent; a
    stray byte before a request is dropped; silence times out."""
    from tensorgates.host import BridgeClient, BridgeError
    top = HostBridgeTop("systolic_gemm", BLOCKS["systolic_gemm"].config(GEMM_1X1), divisor=8)
    top._MustUse__silence = True   # its INFO layout only
    info = top.info
    info_reply = pack_reply(Status.OK, info.info_payload())
    port = ScriptedPort([info_reply, pack_reply(Status.BAD_ARGUMENT)])
    client = BridgeClient(port, timeout=0.2)
    assert client.info()["input_bytes"] == [6, 1, 1]
    with pytest.raises(BridgeError, match="WRITE: the bridge answered BAD_ARGUMENT") as error:
        client.write(1, [1, 2])
    assert error.value.status == Status.BAD_ARGUMENT
    assert port.written[-1] == pack_request(Command.WRITE, bytes([1, 1, 2]))

    port = ScriptedPort([pack_reply(Status.FRAMING_ERROR),
                         pack_reply(Status.OK, struct.pack("<4H", 8, 7, 8, 1))])
    client = BridgeClient(port, timeout=0.2)
    client._info = parse_info(info.info_payload())
    port._pending = b"\x5a\x00"   # a stray half reply: dropped before the request
    assert client.status() == ([8, 7, 8], [1])
    assert len(port.written) == 2   # resent once

    client = BridgeClient(ScriptedPort([]), timeout=0.1)
    with pytest.raises(BridgeError, match=r"INFO: no reply within 0\.1 s"):
        client.info()
    with pytest.raises(ValueError, match="timeout"):
        BridgeClient(ScriptedPort([]), timeout=0)


def test_run_compares_exactly_nan_aware():
    from tensorgates.host import _equal, _first_mismatches
    assert _equal(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    assert not _equal(np.array([1, 2]), np.array([1, 3]))
    assert not _equal(np.zeros((2, 2)), np.zeros((2, 3)))
    assert _first_mismatches(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]])) == \
        "[1, 1] 4 vs golden 5"


@pytest.mark.full
def test_run_against_cosimulated_board_small_frames(tmp_path):
    """A larger GEMM (24×20·20×24 on 2×2) with a 64-byte payload limit and 64-deep FIFOs:
    every stream needs many frames, each READ is capped by the payload (4 beats of 13 bytes),
    not by the FIFO, and the STATUS flow control interleaves a, b, desc and c."""
    require("verilator")
    rng = np.random.default_rng(23)
    a = rng.integers(-128, 128, (24, 20)).astype(np.int8)
    b = rng.integers(-128, 128, (20, 24)).astype(np.int8)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    seed = random.SystemRandom().randrange(1 << 31)
    print(f"seed {seed}")
    code, outputs, log = run_board_cosim("systolic_gemm", {"rows": "2", "cols": "2"},
                                         tmp_path / "in.npz", "verilator", seed=seed,
                                         inject=True, fifo_depth=64, max_payload=64)
    print(log)
    assert code == 0, log
    assert np.array_equal(outputs["c"], a.astype(np.int64) @ b.astype(np.int64))

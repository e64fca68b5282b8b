"""The host side of the UART bridge: ``BridgeClient`` speaks the framed protocol of
:mod:`gateware.host_protocol` over a serial port (pyserial's ``serial.Serial``, or anything
with ``read``/``write``), and ``cmd_run`` is ``tensorgates run``: inputs through a board (or a
co-simulated board top) and its outputs checked against the golden model.
"""
from __future__ import annotations

import struct
import sys
import time
from collections import deque

from gateware.host_protocol import (
    COUNTER_BYTES,
    REPLY_SYNC,
    Command,
    Frame,
    FrameParser,
    Status,
    pack_request,
    parse_info,
)

__all__ = ["BridgeClient", "BridgeError", "cmd_run"]

#: Error replies that say the request changed nothing on the board, so it may be resent.
RESENDABLE = (Status.BAD_CRC, Status.FRAMING_ERROR, Status.INCOMPLETE)


class BridgeError(Exception):
    """An error reply (``status``), a reply that never came or failed its CRC (``status``
    None). ``done`` holds what went through before it: beats written or beats read."""

    def __init__(self, message: str, status: Status | None = None, done=None):
        super().__init__(message)
        self.status = status
        self.done = done


class BridgeClient:
    """The bridge's commands over ``port``; ``timeout`` seconds for each reply.

    Stream indices follow the block's signature order (inputs and outputs numbered apart);
    beats are the packed integers of ``sim.payload.pack``.
    """

    def __init__(self, port, *, timeout: float = 10.0, retries: int = 2):
        if not timeout > 0:
            raise ValueError(f"timeout={timeout!r} is not allowed; expected seconds > 0")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        if hasattr(port, "timeout"):   # short reads, so the deadline here decides
            port.timeout = 0.05
        self._parser = FrameParser(REPLY_SYNC)
        self._info: dict | None = None

    # -- framing
    def _drain(self) -> None:
        """Drop whatever arrived unasked (a reply to line noise, a late reply): the next frame
        read must answer the request about to go out."""
        waiting = getattr(self.port, "in_waiting", 0)
        if waiting:
            self.port.read(waiting)
        self._parser = FrameParser(REPLY_SYNC)

    def _reply(self, what: str) -> Frame:
        deadline = time.monotonic() + self.timeout
        while True:
            frames = self._parser.feed(b"")
            if frames:
                return frames[0]
            if time.monotonic() > deadline:
                raise BridgeError(f"{what}: no reply within {self.timeout:g} s")
            chunk = self.port.read(max(1, getattr(self.port, "in_waiting", 0)))
            if chunk:
                # keep frames beyond the first for later: there should be none
                frames = self._parser.feed(chunk)
                if frames:
                    if len(frames) > 1:
                        raise BridgeError(f"{what}: {len(frames)} replies to one request")
                    return frames[0]

    def request(self, command: int, payload: bytes = b"", *,
                accept: tuple[Status, ...] = (Status.OK,)) -> tuple[Status, bytes]:
        """Send one request, return its reply's (status, payload); ``BridgeError`` on an
        error reply not in ``accept`` (resending those that changed nothing)."""
        name = Command(command).name if command in Command._value2member_map_ else \
            f"command {command:#04x}"
        for attempt in range(self.retries + 1):
            self._drain()
            self.port.write(pack_request(command, payload))
            reply = self._reply(name)
            if not reply.crc_ok:
                raise BridgeError(f"{name}: reply failed its CRC")
            status = Status(reply.code) if reply.code in Status._value2member_map_ else None
            if status is None:
                raise BridgeError(f"{name}: reply with unknown status {reply.code}")
            if status in accept:
                return status, reply.payload
            if status not in RESENDABLE or attempt == self.retries:
                raise BridgeError(f"{name}: the bridge answered {status.name}", status,
                                  reply.payload)
        raise AssertionError("unreachable")

    # -- commands
    def info(self) -> dict:
        """INFO: magic, version, streams' beat bytes, FIFO depth, max payload, counters,
        config digest (see ``host_protocol.parse_info``)."""
        _status, payload = self.request(Command.INFO)
        self._info = parse_info(payload)
        return self._info

    def _layout(self) -> dict:
        return self._info if self._info is not None else self.info()

    def reset(self) -> None:
        """RESET: the block and its FIFOs back to their reset state."""
        self.request(Command.RESET)

    def write(self, stream: int, beats: list[int]) -> int:
        """WRITE ``beats`` into input ``stream`` (several frames if need be); the beats
        written. ``BridgeError`` (``done`` = beats in) when the bridge timed out on a full
        FIFO."""
        info = self._layout()
        if not 0 <= stream < len(info["input_bytes"]):
            raise ValueError(f"stream={stream} is not allowed; the board has "
                             f"{len(info['input_bytes'])} input streams")
        size = info["input_bytes"][stream]
        per_frame = (info["max_payload"] - 1) // size
        written = 0
        for start in range(0, len(beats), per_frame):
            chunk = beats[start:start + per_frame]
            payload = bytes([stream]) + b"".join(int(b).to_bytes(size, "little")
                                                  for b in chunk)
            status, reply = self.request(Command.WRITE, payload,
                                         accept=(Status.OK, Status.TIMEOUT))
            went = struct.unpack("<H", reply)[0]
            written += went
            if status == Status.TIMEOUT:
                raise BridgeError(f"WRITE to input {stream}: FIFO full past the timeout "
                                  f"after {written} of {len(beats)} beats",
                                  Status.TIMEOUT, written)
        return written

    def read(self, stream: int, count: int) -> list[int]:
        """READ ``count`` beats of output ``stream`` (several frames if need be).
        ``BridgeError`` (``done`` = the beats read) when they did not come in time."""
        info = self._layout()
        if not 0 <= stream < len(info["output_bytes"]):
            raise ValueError(f"stream={stream} is not allowed; the board has "
                             f"{len(info['output_bytes'])} output streams")
        size = info["output_bytes"][stream]
        per_frame = info["max_payload"] // size
        beats: list[int] = []
        while len(beats) < count:
            n = min(per_frame, count - len(beats))
            status, reply = self.request(Command.READ, struct.pack("<BH", stream, n),
                                         accept=(Status.OK, Status.TIMEOUT))
            beats += [int.from_bytes(reply[i:i + size], "little")
                      for i in range(0, len(reply), size)]
            if status == Status.TIMEOUT:
                raise BridgeError(f"READ of output {stream}: {len(beats)} of {count} beats "
                                  f"came before the timeout", Status.TIMEOUT, beats)
        return beats

    def status(self) -> tuple[list[int], list[int]]:
        """STATUS: free FIFO slots of each input stream, beats waiting in each output."""
        info = self._layout()
        n_in, n_out = len(info["input_bytes"]), len(info["output_bytes"])
        _status, payload = self.request(Command.STATUS)
        values = struct.unpack(f"<{n_in + n_out}H", payload)
        return list(values[:n_in]), list(values[n_in:])

    def counters(self) -> tuple[list[int], int]:
        """COUNTERS: the counters in signature order and the flags (bit i: flag i)."""
        info = self._layout()
        _status, payload = self.request(Command.COUNTERS)
        n = info["counters"]
        values = [int.from_bytes(payload[COUNTER_BYTES * i:COUNTER_BYTES * (i + 1)], "little")
                  for i in range(n)]
        return values, int.from_bytes(payload[COUNTER_BYTES * n:], "little")

    def settings(self, value: int) -> None:
        """SETTINGS: the block's non-stream inputs, concatenated in signature order."""
        size = self._layout().get("settings_bytes", 0)
        self.request(Command.SETTINGS, int(value).to_bytes(size, "little"))


def transfer(client: BridgeClient, inputs: dict[int, list[int]], outputs: dict[int, int],
             *, timeout: float) -> dict[int, list[int]]:
    """Write every input beat and read every expected output beat, round-robin under STATUS
    flow control: each input gets what its FIFO has room for, each output gives what waits,
    so streams fed together never deadlock. ``BridgeError`` after ``timeout`` seconds
    without progress."""
    info = client.info() if client._info is None else client._info
    pending = {i: deque(beats) for i, beats in inputs.items() if beats}
    wanted = {o: n for o, n in outputs.items() if n}
    got: dict[int, list[int]] = {o: [] for o in outputs}
    per_write = {i: (info["max_payload"] - 1) // info["input_bytes"][i] for i in pending}
    per_read = {o: info["max_payload"] // info["output_bytes"][o] for o in wanted}
    last_progress = time.monotonic()
    while pending or wanted:
        free, waiting = client.status()
        moved = False
        for i in list(pending):
            n = min(free[i], len(pending[i]), per_write[i])
            if n:
                client.write(i, [pending[i].popleft() for _ in range(n)])
                moved = True
                if not pending[i]:
                    del pending[i]
        for o in list(wanted):
            n = min(waiting[o], wanted[o] - len(got[o]), per_read[o])
            if n:
                got[o] += client.read(o, n)
                moved = True
                if len(got[o]) == wanted[o]:
                    del wanted[o]
        if moved:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > timeout:
            left = {i: len(q) for i, q in pending.items()}
            missing = {o: n - len(got[o]) for o, n in wanted.items()}
            raise BridgeError(f"no progress for {timeout:g} s: input beats left {left}, "
                              f"output beats missing {missing}")
    return got


def _equal(board, golden) -> bool:
    """Exact equality; NaN equals NaN in float arrays (the RTL's NaN is the canonical quiet
    NaN, the golden model's may be any)."""
    import numpy as np
    board, golden = np.asarray(board), np.asarray(golden)
    if board.shape != golden.shape:
        return False
    floats = np.issubdtype(board.dtype, np.floating) and np.issubdtype(golden.dtype, np.floating)
    return bool(np.array_equal(board, golden, equal_nan=floats))


def _first_mismatches(board, golden, limit: int = 5) -> str:
    import numpy as np
    board, golden = np.asarray(board), np.asarray(golden)
    if board.shape != golden.shape:
        return f"shape {board.shape} vs golden {golden.shape}"
    differ = board != golden
    if np.issubdtype(board.dtype, np.floating) and np.issubdtype(golden.dtype, np.floating):
        differ &= ~(np.isnan(board) & np.isnan(golden))
    where = np.argwhere(differ)[:limit]
    return "; ".join(f"[{', '.join(map(str, idx))}] {board[tuple(idx)]} vs golden "
                     f"{golden[tuple(idx)]}" for idx in where)


def cmd_run(args) -> int:
    """``tensorgates run``: INFO (layout and config digest checked), RESET, the adapter's
    stages under flow control, COUNTERS; decode, compare with the golden model, write the
    npz. Exit 0 equal, 1 differ or the board failed, 2 bad usage."""
    import numpy as np
    import serial

    from gateware.host_adapters import counter_arrays, stages_of
    from gateware.host_bridge import bridge_layout
    from gateware.registry import load
    from tensorgates.cli import UsageError, _config, load_inputs
    entry, config = _config(args.block, args.set)
    if not entry.host:
        raise UsageError(f"block {entry.name} has no host adapter in the registry")
    adapter = load(entry.host)
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout} is not allowed; expected seconds > 0")
    if args.baud <= 0:
        raise UsageError(f"--baud {args.baud} is not allowed; expected a positive integer")

    if args.inputs:
        inputs = load_inputs(entry, config, args.inputs)
    else:
        seed = args.seed if args.seed is not None else int(time.time_ns() % (1 << 31))
        print(f"random inputs, seed {seed} (replay with --seed {seed})")
        inputs = adapter.random_inputs(config, np.random.default_rng(seed))

    component = entry.build(config)
    component._MustUse__silence = True   # built for its signature only, never elaborated
    layout = bridge_layout(component)
    expected = layout.info(config, fifo_depth=0, max_payload=0)
    in_index = {name: i for i, (name, _p) in enumerate(layout.inputs)}
    out_index = {name: i for i, (name, _p) in enumerate(layout.outputs)}

    try:
        port = serial.Serial(args.port, args.baud, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as error:
        raise UsageError(f"--port {args.port}: {error}") from None
    with port:
        client = BridgeClient(port, timeout=args.timeout)
        try:
            info = client.info()
        except BridgeError as error:
            print(f"tensorgates: {args.port}: no bridge answered INFO ({error})",
                  file=sys.stderr)
            return 1
        beat_bytes = ([expected.beat_bytes(b) for _n, b in expected.inputs],
                      [expected.beat_bytes(b) for _n, b in expected.outputs])
        if (info["digest"] != expected.digest
                or (info["input_bytes"], info["output_bytes"]) != beat_bytes
                or info["counters"] != len(expected.counters)):
            raise UsageError(f"the board at {args.port} runs another block or configuration "
                             f"(config digest {info['digest'].hex()}, expected "
                             f"{expected.digest.hex()} for {config.slug()}); build it with "
                             f"`tensorgates build {entry.name}` and the same --set")
        stages = stages_of(adapter, config, inputs)
        print(f"running {config.slug()} on {args.port}: "
              f"{sum(len(b) for s in stages for b in s[0].values())} input beats, "
              f"{sum(n for s in stages for n in s[1].values())} output beats expected",
              flush=True)
        started = time.monotonic()
        outputs: dict[str, list[int]] = {name: [] for name in out_index}
        try:
            client.reset()
            for stage_inputs, stage_outputs in stages:
                got = transfer(client, {in_index[k]: v for k, v in stage_inputs.items()},
                               {out_index[k]: n for k, n in stage_outputs.items()},
                               timeout=args.timeout)
                for name, o in out_index.items():
                    outputs[name] += got.get(o, [])
            values, flags = client.counters()
        except BridgeError as error:
            print(f"tensorgates: {args.port}: {error}", file=sys.stderr)
            return 1
        elapsed = time.monotonic() - started

    counters = dict(zip(expected.counters, values, strict=True))
    counters |= {name: flags >> i & 1 for i, name in enumerate(expected.flags)}
    golden = adapter.golden(config, inputs)
    try:
        board = adapter.decode(config, inputs, outputs)
    except ValueError as error:   # the beats broke the block's stream protocol
        print(f"FAIL {config.slug()} on {args.port}: the output beats do not decode: {error}")
        print(f"  counters: {counters}")
        return 1
    mismatched = [key for key in golden
                  if key not in board or not _equal(board[key], golden[key])]
    if args.outputs:
        np.savez(args.outputs, **{k: np.asarray(v) for k, v in board.items()},
                 **{f"{k}_golden": np.asarray(v) for k, v in golden.items()},
                 **counter_arrays(adapter, counters))
    verdict = "FAIL" if mismatched else "PASS"
    print(f"{verdict} {config.slug()} on {args.port}: {len(golden) - len(mismatched)}/"
          f"{len(golden)} outputs equal to the golden model, {elapsed:.1f} s")
    print(f"  counters: {counters}")
    for key in mismatched:
        detail = "missing" if key not in board else _first_mismatches(board[key], golden[key])
        print(f"  {key}: {detail}")
    if args.outputs:
        print(f"  wrote {args.outputs}")
    return 1 if mismatched else 0

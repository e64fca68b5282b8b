"""The UART host bridge: any registered block behind a small framed protocol over 8N1 UART.

``HostBridgeTop`` puts a FIFO on every stream of the block and lets a host write input beats,
read output beats, read the performance counters and reset the block; the protocol lives in
:mod:`gateware.host_protocol` (shared with the host driver) and docs/host_bridge.md.

Pieces: ``UARTRx`` / ``UARTTx`` (8N1, ``divisor`` clocks a bit, framing errors flagged),
``ReplySender`` (sync, status, length, payload, CRC), and the top's engine: a frame receiver
that checks the CRC while the payload lands in a one-port BRAM, and a command executor that
moves beats between that buffer and the stream FIFOs. Every reply's payload is staged in the
same buffer, so one path sends every reply.
"""
from dataclasses import dataclass

from amaranth.hdl import C, Cat, Const, Module, ResetInserter, Shape, Signal, Value
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hdl.common.config import BlockConfig

from .host_protocol import (
    COUNTER_BYTES,
    REPLY_SYNC,
    REQUEST_SYNC,
    BridgeInfo,
    Command,
    Status,
    config_digest,
    crc8_update,
)

__all__ = ["BridgeLayout", "HostBridgeTop", "ReplySender", "UARTRx", "UARTTx",
           "bridge_layout", "crc8_next"]

#: Fewest clocks a bit: the receiver samples mid-bit after a half-bit wait.
MIN_DIVISOR = 4
#: Largest divisor (a 16-bit bit timer): 1200 baud at 78 MHz.
MAX_DIVISOR = 1 << 16


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name}={value!r} is not allowed; expected an integer from {lo} to "
                         f"{hi}")
    return value


def crc8_next(crc: Value, byte: Value) -> Value:
    """CRC-8 (poly 0x07, MSB first) of ``crc`` after ``byte``: host_protocol.crc8_update as
    one XOR per output bit (the CRC is linear in crc ^ byte; the taps come from that
    function, so the RTL and the host share one definition)."""
    value = Value.cast(crc ^ byte)[:8]
    bits = []
    for out in range(8):
        taps = [i for i in range(8) if crc8_update(0, 1 << i) >> out & 1]
        bits.append(Cat(*(value[i] for i in taps)).xor())
    return Cat(*bits)


# Every FSM here with combinational outputs starts in a START state that it leaves in its
# first cycle: Icarus evaluates an `always @*` block only when one of its inputs changes, so
# outputs that depend on the state alone (a transmitter's `ready`, a FIFO's `w_en`) would
# stay X until the state first moved.


class UARTRx(wiring.Component):
    """8N1 receiver: ``strobe`` pulses for one cycle when a character ends, with ``data`` and
    ``framing_error`` (its stop bit was low). A UART cannot be back-pressured, so this is a
    strobe, not a stream: whoever listens must take each byte in its cycle."""

    rx: In(1, init=1)
    data: Out(8)
    strobe: Out(1)
    framing_error: Out(1)

    def __init__(self, *, divisor: int):
        self._divisor = _check_int("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        rx = Signal(init=1)
        m.submodules.synchronizer = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(divisor))
        bit = Signal(range(8))
        shift = Signal(8)
        m.d.sync += [self.strobe.eq(0), self.framing_error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.next = "START_BIT"
            with m.State("START_BIT"):   # mid start bit: still low, or it was a glitch
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~rx):
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(0)]
                    m.next = "DATA"
                with m.Else():
                    m.next = "IDLE"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [self.data.eq(shift), self.strobe.eq(1),
                                 self.framing_error.eq(~rx)]
                    m.next = "IDLE"
                    with m.If(~rx):
                        m.next = "BREAK"
            with m.State("BREAK"):   # a low stop bit: wait for the line to idle again
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: a byte stream in, ``divisor`` clocks a bit out; ``tx`` idles high."""

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, *, divisor: int):
        self._divisor = _check_int("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        shift = Signal(10, init=(1 << 10) - 1)   # start, 8 data bits, stop; ones when idle
        timer = Signal(range(divisor))
        bits = Signal(range(11))
        m.d.comb += self.tx.eq(shift[0])
        with m.FSM():
            with m.State("START"):   # see the note above UARTRx
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [shift.eq(Cat(C(0, 1), self.i.payload, C(1, 1))),
                                 timer.eq(divisor - 1), bits.eq(10)]
                    m.next = "SEND"
            with m.State("SEND"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], C(1, 1))), timer.eq(divisor - 1),
                                 bits.eq(bits - 1)]
                    with m.If(bits == 1):
                        m.next = "IDLE"
        return m


reply_header_layout = data.StructLayout({"status": 8, "length": 16})


class ReplySender(wiring.Component):
    """A reply frame from a header (status, length) and ``length`` payload bytes: 0x5A,
    status, length (LE), the payload passed through, CRC-8 over all but the sync byte."""

    header: In(stream.Signature(reply_header_layout))
    payload: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        status = Signal(8)
        length = Signal(16)
        count = Signal(16)
        crc = Signal(8)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += crc.eq(crc8_next(crc, self.o.payload))
        with m.FSM():
            with m.State("START"):   # see the note above UARTRx
                m.next = "IDLE"
            with m.State("IDLE"):
                m.d.comb += self.header.ready.eq(1)
                with m.If(self.header.valid):
                    m.d.sync += [status.eq(self.header.payload.status),
                                 length.eq(self.header.payload.length), count.eq(0)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(REPLY_SYNC)]
                with m.If(self.o.ready):
                    m.d.sync += crc.eq(0)   # the sync byte is outside the CRC
                    m.next = "STATUS"
            for state, value, after in (("STATUS", status, "LEN0"),
                                        ("LEN0", length[:8], "LEN1")):
                with m.State(state):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
                    with m.If(self.o.ready):
                        m.next = after
            with m.State("LEN1"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(length[8:])]
                with m.If(self.o.ready):
                    m.next = "PAYLOAD"
                    with m.If(length == 0):
                        m.next = "CRC"
            with m.State("PAYLOAD"):
                m.d.comb += [self.o.valid.eq(self.payload.valid),
                             self.o.payload.eq(self.payload.payload),
                             self.payload.ready.eq(self.o.ready)]
                with m.If(self.o.valid & self.o.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == length - 1):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(crc)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m


@dataclass(frozen=True)
class BridgeLayout:
    """A block's ports as the bridge sees them: stream ports, counters, flags and settings
    (non-stream inputs), each with the block's port object, in signature order."""
    inputs: tuple[tuple[str, object], ...]     # In streams (bridge → block)
    outputs: tuple[tuple[str, object], ...]    # Out streams (block → bridge)
    counters: tuple[tuple[str, Value], ...]    # non-stream outputs wider than one bit
    flags: tuple[tuple[str, Value], ...]       # one-bit non-stream outputs
    settings: tuple[tuple[str, Value], ...]    # non-stream inputs

    def info(self, config: BlockConfig, *, fifo_depth: int, max_payload: int) -> BridgeInfo:
        def bits(port) -> int:
            return Shape.cast(port.signature.members["payload"].shape).width
        return BridgeInfo(
            inputs=tuple((name, bits(port)) for name, port in self.inputs),
            outputs=tuple((name, bits(port)) for name, port in self.outputs),
            counters=tuple(name for name, _ in self.counters),
            flags=tuple(name for name, _ in self.flags),
            settings=tuple((name, len(Value.cast(value))) for name, value in self.settings),
            fifo_depth=fifo_depth, max_payload=max_payload,
            digest=config_digest(config.to_json()))


def bridge_layout(component: wiring.Component) -> BridgeLayout:
    """Sort ``component``'s ports for the bridge (``ValueError`` on a port it cannot carry).

    Top-level stream members become streams, numbered per direction in signature order;
    every other port (the ``counters`` bundle's members, loose flags) is flattened: outputs
    wider than a bit are counters (named by their last path element inside ``counters``),
    one-bit outputs flags, inputs settings.
    """
    inputs, outputs, counters, flags, settings = [], [], [], [], []
    for name, member in component.signature.members.items():
        port = getattr(component, name)
        if member.is_signature and isinstance(member.signature, stream.Signature):
            (inputs if member.flow == In else outputs).append((name, port))
            continue
        if member.is_port:
            leaves = [((name,), member.flow, port)]
        else:
            leaves = [((name, *path), leaf.flow, value)
                      for path, leaf, value in member.signature.flatten(port)]
        for path, flow, value in leaves:
            label = path[-1] if path[0] == "counters" else "_".join(map(str, path))
            width = len(Value.cast(value))
            if flow == In:
                settings.append((label, value))
            elif width == 1:
                flags.append((label, value))
            elif width <= 8 * COUNTER_BYTES:
                counters.append((label, value))
            else:
                raise ValueError(f"port {'.'.join(map(str, path))} of {width} bits: the "
                                 f"bridge reads counters of at most {8 * COUNTER_BYTES} bits")
    if not inputs and not outputs:
        raise ValueError("the block has no stream ports for the bridge to carry")
    if len(inputs) > 255 or len(outputs) > 255:
        raise ValueError("the bridge numbers streams with one byte: at most 255 each way")
    return BridgeLayout(tuple(inputs), tuple(outputs), tuple(counters), tuple(flags),
                        tuple(settings))


class HostBridgeTop(wiring.Component):
    """A registered block behind the UART host bridge: ``rx``/``tx`` are the only ports
    (plus ``error``: the last reply was an error, for a LED).

    ``divisor`` is the UART bit time in clocks; ``fifo_depth`` the beats of each stream FIFO;
    ``max_payload`` the payload buffer's bytes (the largest frame payload); ``timeout_bits``
    how long, in bit times, a frame may stall mid-way (INCOMPLETE) and a WRITE/READ may wait
    on a full/empty FIFO (TIMEOUT).
    """

    def __init__(self, block: str, config: BlockConfig, *, divisor: int, fifo_depth: int = 32,
                 max_payload: int = 256, timeout_bits: int = 20_000):
        try:
            self._check(block, config, divisor, fifo_depth, max_payload, timeout_bits)
        except ValueError:
            self._MustUse__silence = True   # never built: no "created but never used"
            raise
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "error": Out(1)})

    def _check(self, block, config, divisor, fifo_depth, max_payload, timeout_bits):
        from .registry import BLOCKS
        if block not in BLOCKS:
            raise ValueError(f"block={block!r} is not allowed; expected one of "
                             f"{', '.join(BLOCKS)}")
        if not isinstance(config, BLOCKS[block].config_class):
            raise ValueError(f"config={config!r} is not allowed; expected a "
                             f"{BLOCKS[block].config_class.__name__} for block {block!r}")
        self._divisor = _check_int("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        self._fifo_depth = _check_int("fifo_depth", fifo_depth, 2, 0x8000)
        self._timeout = _check_int("timeout_bits", timeout_bits, 16, 1 << 24) * divisor
        self._block_name = block
        self._config = config
        self._block = BLOCKS[block].build(config)
        self._block._MustUse__silence = True   # elaborated only inside this top, if at all
        self._layout = bridge_layout(self._block)
        # the payload limit is known only after the layout: check it against the layout
        info = self._layout.info(config, fifo_depth=fifo_depth, max_payload=0xFFFF)
        need = max(len(info.info_payload()), info.counters_bytes, info.status_bytes,
                   info.settings_bytes, 2,
                   *(1 + info.beat_bytes(bits) for _n, bits in info.inputs),
                   *(info.beat_bytes(bits) for _n, bits in info.outputs))
        self._max_payload = _check_int("max_payload", max_payload, need, 0xFFFF)
        self.info = self._layout.info(config, fifo_depth=fifo_depth, max_payload=max_payload)

    @property
    def block(self) -> wiring.Component:
        return self._block

    def elaborate(self, platform):
        m = Module()
        info, layout = self.info, self._layout
        depth, max_payload = self._fifo_depth, self._max_payload

        block_reset = Signal()
        m.submodules.block = ResetInserter(block_reset)(self._block)
        in_fifos, out_fifos = [], []
        for (name, port), (_n, bits) in zip(layout.inputs, info.inputs, strict=True):
            queue = fifo.SyncFIFOBuffered(width=bits, depth=depth)
            m.submodules[f"in_{name}"] = ResetInserter(block_reset)(queue)
            m.d.comb += [port.valid.eq(queue.r_rdy), Value.cast(port.payload).eq(queue.r_data),
                         queue.r_en.eq(port.ready)]
            in_fifos.append(queue)
        for (name, port), (_n, bits) in zip(layout.outputs, info.outputs, strict=True):
            queue = fifo.SyncFIFOBuffered(width=bits, depth=depth)
            m.submodules[f"out_{name}"] = ResetInserter(block_reset)(queue)
            m.d.comb += [queue.w_en.eq(port.valid), queue.w_data.eq(Value.cast(port.payload)),
                         port.ready.eq(queue.w_rdy)]
            out_fifos.append(queue)
        settings = [Signal.like(Value.cast(value), name=f"setting_{name}")
                    for name, value in layout.settings]
        for (_name, value), register in zip(layout.settings, settings, strict=True):
            m.d.comb += value.eq(register)

        m.submodules.rx = rx = UARTRx(divisor=self._divisor)
        m.submodules.tx = tx = UARTTx(divisor=self._divisor)
        m.submodules.sender = sender = ReplySender()
        wiring.connect(m, sender.o, tx.i)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=max_payload, init=[])
        write = buffer.write_port()
        read = buffer.read_port()
        m.d.comb += read.en.eq(0)   # held unless a state reads: the data stays put

        # Flat sources of the fixed-size replies, staged into the buffer a byte at a time
        # through one shift register (which also assembles and splits the stream beats).
        info_bytes = info.info_payload()
        counters_value = Cat(*(Cat(Value.cast(v), C(0, 48 - len(Value.cast(v))))
                               for _n, v in layout.counters),
                             *(Value.cast(v) for _n, v in layout.flags))
        status_value = Cat(*((C(depth, 17) - q.level)[:16] for q in in_fifos),
                           *(Cat(q.level, C(0, 16))[:16] for q in out_fifos))
        beat_bytes_in = [info.beat_bytes(bits) for _n, bits in info.inputs]
        beat_bytes_out = [info.beat_bytes(bits) for _n, bits in info.outputs]
        shift_bits = 8 * max(len(info_bytes), info.counters_bytes, info.status_bytes,
                             info.settings_bytes, 2, *beat_bytes_in, *beat_bytes_out)
        shift = Signal(shift_bits)

        got = rx.strobe & ~rx.framing_error
        framing = rx.strobe & rx.framing_error
        byte = rx.data
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)
        crc = Signal(8)
        timer = Signal(range(max(self._timeout, 20 * self._divisor) + 1))
        status = Signal(8)
        reply_length = Signal(16)
        index = Signal(8)
        beats = Signal(16)
        wanted = Signal(16)
        beat_bytes = Signal(16)
        byte_in_beat = Signal(16)
        remaining = Signal(16)
        reply_byte = Signal(8)

        m.d.sync += block_reset.eq(0)
        with m.If(sender.header.valid & sender.header.ready):
            m.d.sync += self.error.eq(sender.header.payload.status != Status.OK)

        def fail(code: Status):
            m.d.sync += [status.eq(code), reply_length.eq(0)]
            m.next = "REPLY"

        def stage(value: Value, nbytes: int):
            m.d.sync += [shift.eq(value), reply_length.eq(nbytes), count.eq(0),
                         status.eq(Status.OK)]
            m.next = "FILL"

        def receiving(state_body):
            """A state inside a frame: a framing error drops it, so does a stall."""
            with m.If(framing):
                m.d.sync += timer.eq(0)
                m.next = "DISCARD"
            with m.Elif(got):
                m.d.sync += timer.eq(0)
                state_body()
            with m.Elif(timer == self._timeout):
                fail(Status.INCOMPLETE)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        with m.FSM():
            with m.State("START"):   # see the note above UARTRx
                m.next = "SYNC"
            with m.State("SYNC"):
                with m.If(framing):
                    m.d.sync += timer.eq(0)
                    m.next = "DISCARD"
                with m.Elif(got & (byte == REQUEST_SYNC)):
                    m.d.sync += [crc.eq(0), timer.eq(0)]
                    m.next = "CMD"

            with m.State("CMD"):
                def on_cmd():
                    m.d.sync += [cmd.eq(byte), crc.eq(crc8_next(crc, byte))]
                    m.next = "LEN0"
                receiving(on_cmd)

            with m.State("LEN0"):
                def on_len0():
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc8_next(crc, byte))]
                    m.next = "LEN1"
                receiving(on_len0)

            with m.State("LEN1"):
                def on_len1():
                    full = Cat(length[:8], byte)
                    m.d.sync += [length[8:].eq(byte), crc.eq(crc8_next(crc, byte)),
                                 count.eq(0)]
                    with m.If(full > max_payload):
                        m.next = "SKIP"
                    with m.Elif(full == 0):
                        m.next = "CRC"
                    with m.Else():
                        m.next = "PAYLOAD"
                receiving(on_len1)

            with m.State("PAYLOAD"):
                def on_payload():
                    m.d.comb += [write.addr.eq(count), write.data.eq(byte), write.en.eq(1)]
                    m.d.sync += [crc.eq(crc8_next(crc, byte)), count.eq(count + 1)]
                    with m.If(count == length - 1):
                        m.next = "CRC"
                receiving(on_payload)

            with m.State("CRC"):
                def on_crc():
                    with m.If(byte == crc):
                        m.next = "EXECUTE"
                    with m.Else():
                        fail(Status.BAD_CRC)
                receiving(on_crc)

            with m.State("SKIP"):   # an oversize payload and its CRC, counted away
                def on_skip():
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == length):
                        fail(Status.OVERSIZE)
                receiving(on_skip)

            with m.State("DISCARD"):   # after a framing error: wait for two quiet characters
                with m.If(rx.strobe):
                    m.d.sync += timer.eq(0)
                with m.Elif(timer == 20 * self._divisor):
                    fail(Status.FRAMING_ERROR)
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)

            with m.State("EXECUTE"):
                m.d.sync += timer.eq(0)
                no_payload = length == 0
                with m.Switch(cmd):
                    with m.Case(Command.INFO):
                        with m.If(no_payload):
                            stage(Const(int.from_bytes(info_bytes, "little"),
                                        8 * len(info_bytes)), len(info_bytes))
                        with m.Else():
                            fail(Status.BAD_ARGUMENT)
                    with m.Case(Command.COUNTERS):
                        with m.If(no_payload):
                            stage(counters_value, info.counters_bytes)
                        with m.Else():
                            fail(Status.BAD_ARGUMENT)
                    with m.Case(Command.STATUS):
                        with m.If(no_payload):
                            stage(status_value, info.status_bytes)
                        with m.Else():
                            fail(Status.BAD_ARGUMENT)
                    with m.Case(Command.RESET):
                        with m.If(no_payload):
                            m.d.sync += block_reset.eq(1)
                            stage(C(0, 1), 0)
                        with m.Else():
                            fail(Status.BAD_ARGUMENT)
                    with m.Case(Command.SETTINGS):
                        with m.If(length == info.settings_bytes):
                            m.d.sync += count.eq(0)
                            m.next = "SET_ADDR"
                        with m.Else():
                            fail(Status.BAD_ARGUMENT)
                    with m.Case(Command.WRITE, Command.READ):
                        m.d.comb += [read.addr.eq(0), read.en.eq(1)]
                        m.next = "ARG_INDEX"
                    with m.Default():
                        fail(Status.UNKNOWN_COMMAND)

            with m.State("ARG_INDEX"):   # read.data: the stream index
                m.d.sync += index.eq(read.data)
                m.d.comb += [read.addr.eq(1), read.en.eq(1)]
                m.next = "ARG_COUNT_LO"
                with m.If(cmd == Command.WRITE):
                    m.next = "WRITE_CHECK"

            # WRITE: check the stream and that the payload is whole beats, then push them
            with m.State("WRITE_CHECK"):
                m.d.sync += [remaining.eq(length - 1), count.eq(1), beats.eq(0),
                             byte_in_beat.eq(0)]
                with m.If(index >= len(in_fifos)):
                    fail(Status.BAD_ARGUMENT)
                with m.Else():
                    with m.Switch(index):
                        for k, nbytes in enumerate(beat_bytes_in):
                            with m.Case(k):
                                m.d.sync += beat_bytes.eq(nbytes)
                    m.next = "WRITE_MEASURE"
            with m.State("WRITE_MEASURE"):   # remaining mod beat_bytes by subtraction
                with m.If(remaining == 0):
                    m.next = "WRITE_ADDR"
                with m.Elif(remaining < beat_bytes):
                    fail(Status.BAD_ARGUMENT)
                with m.Else():
                    m.d.sync += remaining.eq(remaining - beat_bytes)
            with m.State("WRITE_ADDR"):
                with m.If(count == length):
                    stage(beats, 2)
                with m.Else():
                    m.d.comb += [read.addr.eq(count), read.en.eq(1)]
                    m.next = "WRITE_BYTE"
            with m.State("WRITE_BYTE"):
                # bytes enter at the top: a beat of b bytes ends in shift's top 8·b bits
                m.d.sync += [shift.eq(Cat(shift[8:], read.data)), count.eq(count + 1),
                             byte_in_beat.eq(byte_in_beat + 1)]
                m.next = "WRITE_ADDR"
                with m.If(byte_in_beat == beat_bytes - 1):
                    m.d.sync += [byte_in_beat.eq(0), timer.eq(0)]
                    m.next = "WRITE_PUSH"
            with m.State("WRITE_PUSH"):
                pushed = Signal()
                with m.Switch(index):
                    for k, (queue, nbytes) in enumerate(zip(in_fifos, beat_bytes_in,
                                                                strict=True)):
                        with m.Case(k):
                            m.d.comb += [queue.w_en.eq(1), pushed.eq(queue.w_rdy),
                                         queue.w_data.eq(shift[shift_bits - 8 * nbytes:])]
                with m.If(pushed):
                    m.d.sync += beats.eq(beats + 1)
                    m.next = "WRITE_ADDR"
                with m.Elif(timer == self._timeout):
                    stage(beats, 2)
                    m.d.sync += status.eq(Status.TIMEOUT)
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)

            # READ: stream index and beat count, then each beat into the buffer
            with m.State("ARG_COUNT_LO"):
                m.d.sync += wanted[:8].eq(read.data)
                m.d.comb += [read.addr.eq(2), read.en.eq(1)]
                m.next = "ARG_COUNT_HI"
            with m.State("ARG_COUNT_HI"):
                m.d.sync += [wanted[8:].eq(read.data), count.eq(0), beats.eq(0),
                             status.eq(Status.OK)]
                m.next = "READ_CHECK"
            with m.State("READ_CHECK"):
                with m.If((length != 3) | (index >= len(out_fifos))):
                    fail(Status.BAD_ARGUMENT)
                with m.Else():
                    with m.Switch(index):
                        for k, nbytes in enumerate(beat_bytes_out):
                            with m.Case(k):
                                m.d.sync += beat_bytes.eq(nbytes)
                                with m.If(wanted > max_payload // nbytes):
                                    fail(Status.OVERSIZE)
                                with m.Else():
                                    m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                ready = Signal()
                with m.Switch(index):
                    for k, queue in enumerate(out_fifos):
                        with m.Case(k):
                            m.d.comb += ready.eq(queue.r_rdy)
                            with m.If((beats != wanted) & queue.r_rdy):
                                m.d.comb += queue.r_en.eq(1)
                                m.d.sync += shift.eq(queue.r_data)
                with m.If(beats == wanted):
                    m.d.sync += reply_length.eq(count)
                    m.next = "REPLY"
                with m.Elif(ready):
                    m.d.sync += [byte_in_beat.eq(0), timer.eq(0)]
                    m.next = "READ_BYTE"
                with m.Elif(timer == self._timeout):
                    m.d.sync += [reply_length.eq(count), status.eq(Status.TIMEOUT)]
                    m.next = "REPLY"
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)
            with m.State("READ_BYTE"):
                m.d.comb += [write.addr.eq(count), write.data.eq(shift[:8]), write.en.eq(1)]
                m.d.sync += [shift.eq(shift[8:]), count.eq(count + 1),
                             byte_in_beat.eq(byte_in_beat + 1)]
                with m.If(byte_in_beat == beat_bytes - 1):
                    m.d.sync += beats.eq(beats + 1)
                    m.next = "READ_WAIT"

            # SETTINGS: the payload's bytes into the settings registers
            with m.State("SET_ADDR"):
                with m.If(count == length):
                    if settings:
                        top = shift[shift_bits - 8 * info.settings_bytes:]
                        m.d.sync += Cat(*settings).eq(top)
                    stage(C(0, 1), 0)
                with m.Else():
                    m.d.comb += [read.addr.eq(count), read.en.eq(1)]
                    m.next = "SET_BYTE"
            with m.State("SET_BYTE"):
                m.d.sync += [shift.eq(Cat(shift[8:], read.data)), count.eq(count + 1)]
                m.next = "SET_ADDR"

            # a fixed-size reply: shift's low bytes into the buffer
            with m.State("FILL"):
                with m.If(count == reply_length):
                    m.next = "REPLY"
                with m.Else():
                    m.d.comb += [write.addr.eq(count), write.data.eq(shift[:8]),
                                 write.en.eq(1)]
                    m.d.sync += [shift.eq(shift[8:]), count.eq(count + 1)]

            with m.State("REPLY"):
                m.d.comb += [sender.header.valid.eq(1),
                             sender.header.payload.status.eq(status),
                             sender.header.payload.length.eq(reply_length)]
                with m.If(sender.header.ready):
                    m.d.sync += count.eq(0)
                    m.next = "SYNC"
                    with m.If(reply_length != 0):
                        m.next = "SEND_ADDR"
            with m.State("SEND_ADDR"):
                m.d.comb += [read.addr.eq(count), read.en.eq(1)]
                m.next = "SEND_LATCH"
            with m.State("SEND_LATCH"):   # a register after the BRAM: its clock-to-out is long
                m.d.sync += reply_byte.eq(read.data)
                m.next = "SEND_DATA"
            with m.State("SEND_DATA"):
                m.d.comb += [sender.payload.valid.eq(1), sender.payload.payload.eq(reply_byte)]
                with m.If(sender.payload.ready):
                    m.d.sync += count.eq(count + 1)
                    m.next = "SEND_ADDR"
                    with m.If(count == reply_length - 1):
                        m.next = "SYNC"
        return m


def bridge_area(block: str, settings: dict[str, str], out_dir, *, divisor: int = 104) -> list:
    """Synthesize ``block`` alone and behind the bridge (``divisor`` 104: 115200 baud from
    iCEBreaker's 12 MHz) for iCE40 UP5K and ECP5-85F; rows of (target, what, result)."""
    from pathlib import Path

    from gateware.generate import generate, generate_component
    from gateware.registry import BLOCKS
    from synth.flow import synthesize
    config = BLOCKS[block].config(settings)
    out_dir = Path(out_dir)
    alone = generate(config, out_dir / "block")
    top = generate_component(HostBridgeTop(block, config, divisor=divisor), config,
                             out_dir / "bridge_top")
    rows = []
    for target in ("ice40", "ecp5"):
        for what, design in (("block", alone), ("block + bridge", top)):
            rows.append((target, what, synthesize(design.verilog, design.top, target,
                                                  design.directory / f"synth_{target}",
                                                  place=target == "ecp5")))
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m gateware.host_bridge``: the tables of docs/host_bridge.md (the bridge's
    area for systolic_gemm 2×2, the link's throughput at 115200 baud)."""
    import argparse

    from .host_protocol import link_throughput_table
    parser = argparse.ArgumentParser(prog="python -m gateware.host_bridge")
    parser.add_argument("--no-synth", action="store_true", help="throughput table only")
    args = parser.parse_args(argv)
    from .registry import BLOCKS
    settings = {"rows": "2", "cols": "2"}
    config = BLOCKS["systolic_gemm"].config(settings)
    top = HostBridgeTop("systolic_gemm", config, divisor=104)
    top._MustUse__silence = True   # asked for its INFO layout only
    info = top.info
    print(link_throughput_table(info, baud=115200))
    if args.no_synth:
        return 0
    print("\n| target | design | LUT | FF | DSP | BRAM | ECP5 Fmax (MHz) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rows = bridge_area("systolic_gemm", settings, "build/host_bridge/area")
    for target, what, r in rows:
        fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz else "–"
        print(f"| {target} | systolic_gemm 2×2 {what} | {r.luts} | {r.ffs} | {r.dsps} | "
              f"{r.brams} | {fmax} |")
    for target in ("ice40", "ecp5"):
        alone, top = (r for t, _w, r in rows if t == target)
        print(f"\n{target}: the bridge (UART, parser, buffer, 4 FIFOs) adds "
              f"{top.luts - alone.luts} LUT, {top.ffs - alone.ffs} FF, "
              f"{top.brams - alone.brams} BRAM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

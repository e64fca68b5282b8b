"""The UART host bridge's framed protocol, in plain Python: the RTL (`gateware.host_bridge`)
and the host driver (`tensorgates.host`) both import these constants and helpers, so the two
sides cannot drift. The protocol is described in docs/host_bridge.md.

Request:  0xA5, CMD, LEN (2 B LE), PAYLOAD (LEN B), CRC-8 over CMD, LEN and PAYLOAD.
Reply:    0x5A, STATUS, LEN (2 B LE), PAYLOAD (LEN B), CRC-8 over STATUS, LEN and PAYLOAD.
CRC-8: polynomial 0x07, initial value 0, no reflection, no final xor (CRC-8/SMBUS).
"""
from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

__all__ = [
    "CRC_POLY",
    "MAGIC",
    "REPLY_SYNC",
    "REQUEST_SYNC",
    "VERSION",
    "BridgeInfo",
    "Command",
    "Frame",
    "FrameParser",
    "Status",
    "config_digest",
    "crc8",
    "crc8_update",
    "link_throughput_table",
    "pack_reply",
    "pack_request",
    "parse_info",
]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
CRC_POLY = 0x07
MAGIC = b"TG"
VERSION = 1
COUNTER_BYTES = 6     # every counter travels as 6 bytes LE (48-bit counters)
HEADER_BYTES = 4      # sync, cmd/status, LEN
FRAME_OVERHEAD = HEADER_BYTES + 1   # + CRC


class Command(enum.IntEnum):
    INFO = 0x00
    WRITE = 0x01
    READ = 0x02
    COUNTERS = 0x03
    STATUS = 0x04
    RESET = 0x05
    # sets the block's non-stream input ports (none of today's blocks has any): payload =
    # their bits concatenated in signature order, LSB first, in whole bytes
    SETTINGS = 0x06


class Status(enum.IntEnum):
    OK = 0
    BAD_CRC = 1
    UNKNOWN_COMMAND = 2
    OVERSIZE = 3
    FRAMING_ERROR = 4
    BAD_ARGUMENT = 5
    TIMEOUT = 6
    INCOMPLETE = 7


def crc8_update(crc: int, byte: int) -> int:
    """One byte into a CRC-8 (poly 0x07, MSB first); the RTL unrolls the same loop."""
    crc ^= byte
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = crc8_update(crc, byte)
    return crc


def _frame(sync: int, code: int, payload: bytes) -> bytes:
    if not 0 <= code <= 0xFF:
        raise ValueError(f"code={code} must fit one byte (0..255)")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes: LEN allows at most 65535")
    body = bytes([code]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([sync]) + body + bytes([crc8(body)])


def pack_request(command: int, payload: bytes = b"") -> bytes:
    """A request frame: 0xA5, CMD, LEN, PAYLOAD, CRC."""
    return _frame(REQUEST_SYNC, int(command), payload)


def pack_reply(status: int, payload: bytes = b"") -> bytes:
    """A reply frame: 0x5A, STATUS, LEN, PAYLOAD, CRC."""
    return _frame(REPLY_SYNC, int(status), payload)


@dataclass
class Frame:
    code: int           # command (requests) or status (replies)
    payload: bytes
    crc_ok: bool


class FrameParser:
    """Incremental frame parser for either direction: feed bytes, collect whole frames.

    Bytes before a sync byte are skipped (``skipped`` counts them), as the bridge does.
    """

    def __init__(self, sync: int):
        self.sync = sync
        self._buffer = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer.extend(data)
        frames = []
        while True:
            start = self._buffer.find(self.sync)
            if start < 0:
                self.skipped += len(self._buffer)
                self._buffer.clear()
                return frames
            self.skipped += start
            del self._buffer[:start]
            if len(self._buffer) < HEADER_BYTES:
                return frames
            length = self._buffer[2] | self._buffer[3] << 8
            if len(self._buffer) < FRAME_OVERHEAD + length:
                return frames
            body = bytes(self._buffer[1:HEADER_BYTES + length])
            crc = self._buffer[HEADER_BYTES + length]
            frames.append(Frame(body[0], body[3:], crc8(body) == crc))
            del self._buffer[:FRAME_OVERHEAD + length]

    @property
    def pending(self) -> int:
        """Bytes of a frame begun but not complete."""
        return len(self._buffer)


def config_digest(config_json: str) -> bytes:
    """The 4-byte config digest of INFO: sha256 of ``config.to_json()`` (sorted keys, the
    text `tensorgates generate` hashes for the design folder), first 4 bytes."""
    return hashlib.sha256(config_json.encode()).digest()[:4]


@dataclass(frozen=True)
class BridgeInfo:
    """What INFO reports, and what the RTL builds: the stream layout and the limits.

    ``inputs``/``outputs`` are the stream names in signature order with their beat bits;
    ``counters`` the performance counters (6 B each), ``flags`` the 1-bit flags,
    ``settings_bits`` the non-stream input bits that SETTINGS writes.
    """
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]
    counters: tuple[str, ...]
    flags: tuple[str, ...]
    settings: tuple[tuple[str, int], ...]
    fifo_depth: int
    max_payload: int
    digest: bytes

    @staticmethod
    def beat_bytes(bits: int) -> int:
        return (bits + 7) // 8

    @property
    def settings_bytes(self) -> int:
        return (sum(bits for _name, bits in self.settings) + 7) // 8

    @property
    def flag_bytes(self) -> int:
        return (len(self.flags) + 7) // 8

    def info_payload(self) -> bytes:
        """INFO's reply payload (version 1): magic, version, stream counts, beat bytes, FIFO
        depth, max payload, counter count, config digest, then flag count and settings
        bytes (appended fields; a host reads what it knows)."""
        return b"".join([
            MAGIC, bytes([VERSION, len(self.inputs), len(self.outputs)]),
            *(struct.pack("<H", self.beat_bytes(bits)) for _n, bits in self.inputs),
            *(struct.pack("<H", self.beat_bytes(bits)) for _n, bits in self.outputs),
            struct.pack("<HHB", self.fifo_depth, self.max_payload, len(self.counters)),
            self.digest,
            struct.pack("<BH", len(self.flags), self.settings_bytes),
        ])

    @property
    def counters_bytes(self) -> int:
        return COUNTER_BYTES * len(self.counters) + self.flag_bytes

    @property
    def status_bytes(self) -> int:
        return 2 * (len(self.inputs) + len(self.outputs))

    def beats_per_write(self, stream: int) -> int:
        """Most beats of input ``stream`` one WRITE frame carries."""
        return (self.max_payload - 1) // self.beat_bytes(self.inputs[stream][1])

    def beats_per_read(self, stream: int) -> int:
        """Most beats of output ``stream`` one READ reply carries."""
        return self.max_payload // self.beat_bytes(self.outputs[stream][1])


def parse_info(payload: bytes) -> dict:
    """INFO's payload as a dict (the inverse of :meth:`BridgeInfo.info_payload`)."""
    if len(payload) < 5 or payload[:2] != MAGIC:
        raise ValueError(f"INFO payload {payload[:8].hex()}… does not start with {MAGIC!r}")
    version, n_in, n_out = payload[2], payload[3], payload[4]
    at = 5
    need = at + 2 * (n_in + n_out) + 9
    if len(payload) < need:
        raise ValueError(f"INFO payload of {len(payload)} bytes, expected at least {need}")
    beats = struct.unpack_from(f"<{n_in + n_out}H", payload, at)
    at += 2 * (n_in + n_out)
    fifo_depth, max_payload, n_counters = struct.unpack_from("<HHB", payload, at)
    at += 5
    info = {"version": version, "input_bytes": list(beats[:n_in]),
            "output_bytes": list(beats[n_in:]), "fifo_depth": fifo_depth,
            "max_payload": max_payload, "counters": n_counters,
            "digest": bytes(payload[at:at + 4])}
    at += 4
    if len(payload) >= at + 3:
        info["flags"], info["settings_bytes"] = struct.unpack_from("<BH", payload, at)
    return info


def link_throughput_table(info: BridgeInfo, *, baud: int) -> str:
    """Markdown: payload bytes/s and beats/s of each stream over the link at ``baud`` (8N1:
    ten bit times a byte), one request in flight as the driver does it. "With STATUS": the
    driver's flow control, a STATUS round trip before each WRITE/READ of at most the FIFO's
    depth; "full frames": back-to-back frames of ``max_payload`` bytes (the protocol's
    ceiling). The host's own turnaround between reply and next request is not counted."""
    byte_rate = baud / 10
    status_trip = FRAME_OVERHEAD + FRAME_OVERHEAD + info.status_bytes
    lines = [f"| stream | beat bytes | beats/frame (FIFO {info.fifo_depth}) | with STATUS: "
             f"B/s | beats/s | full frames ({info.max_payload} B): B/s | beats/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for direction, streams in (("in", info.inputs), ("out", info.outputs)):
        for name, bits in streams:
            size = BridgeInfo.beat_bytes(bits)
            if direction == "in":   # WRITE: index byte; reply: 2-byte count
                most = (info.max_payload - 1) // size

                def trip(n: int, size: int = size) -> int:
                    return FRAME_OVERHEAD + 1 + n * size + FRAME_OVERHEAD + 2
            else:                   # READ: index and count; reply: the beats
                most = info.max_payload // size

                def trip(n: int, size: int = size) -> int:
                    return FRAME_OVERHEAD + 3 + FRAME_OVERHEAD + n * size
            polled = min(most, info.fifo_depth)
            slow = polled * size * byte_rate / (trip(polled) + status_trip)
            fast = most * size * byte_rate / trip(most)
            lines.append(f"| {name} ({direction}) | {size} | {polled} | {slow:.0f} | "
                         f"{slow / size:.0f} | {fast:.0f} | {fast / size:.0f} |")
    return "\n".join(lines)

"""Ports of the PIM channel (docs/pim.md, "Command interface" and "RTL"): the command beat, the
status beat, the read-back tag, and the candidate port between the GEMV sequencer and the
channel's decision logic."""
from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature
from .config import PimConfig
from .isa import FIELD_BITS

__all__ = ["CYCLE_BITS", "FIELD_BITS", "PIM_COUNTERS", "RULE_BITS", "candidate_signature",
           "command_layout", "status_layout", "tag_layout"]

#: The offered cycle of a raw command and the cycle of a status beat.
CYCLE_BITS = 32
RULE_BITS = 5

#: Block counters beyond the five clock-cycle ones: ``dram_cycles`` (command slots, the DRAM
#: clock), accepted / rejected commands, triggers (fired RDAB/WRAB in AB_PIM), refreshes,
#: refresh ticks past the postponement limit, illegal instructions executed as NOP.
PIM_COUNTERS = ("dram_cycles", "accepted", "rejected", "triggers", "refreshes",
                "refresh_overdue", "illegal_instructions")


def tag_layout(config: PimConfig) -> data.StructLayout:
    """What a GEMV read-back (RDRC) returns beside its data: batch item, unit, tile, lane group,
    accumulator piece (golden ``collect_readback``'s tag)."""
    return data.StructLayout({
        "item": unsigned(8),
        "unit": unsigned(4),
        "tile": unsigned(16),
        "group": unsigned(3),
        "piece": unsigned(3),
    })


def _command_fields() -> dict:
    return {
        "cycle": unsigned(CYCLE_BITS),
        "code": unsigned(FIELD_BITS["code"]),
        "bank": unsigned(FIELD_BITS["bank"]),
        "row": unsigned(FIELD_BITS["row"]),
        "column": unsigned(FIELD_BITS["column"]),
    }


def command_layout(config: PimConfig) -> data.StructLayout:
    """A raw command beat: the DRAM cycle at which it is offered, code, bank (or set / unit),
    row (or register address / mode / accumulator offset), column (or piece), data."""
    return data.StructLayout({**_command_fields(), "data": unsigned(config.column_bits)})


def status_layout(config: PimConfig) -> data.StructLayout:
    """One beat per decided command, raw or issued by the sequencer, in decision order."""
    return data.StructLayout({
        **_command_fields(),
        "sequencer": unsigned(1),       # issued by the GEMV sequencer (else a raw command)
        "accepted": unsigned(1),
        "rule": unsigned(RULE_BITS),    # 0 when accepted, else golden.pim.RULES index
        "has_read": unsigned(1),
        "read_data": unsigned(config.column_bits),
        "tag": tag_layout(config),      # sequencer read-backs only
    })


def candidate_signature(config: PimConfig) -> wiring.Signature:
    """A command the sequencer offers on port P (from the sequencer's side). The channel
    decides in its decision clock (``decide`` of the sequencer high): it takes the row-queue
    candidate if it is legal, else the column-queue candidate if that is legal, and raises
    ``took`` of the one it takes in that same clock. A candidate that is not legal is not
    taken and changes nothing (no status, no counter)."""
    return wiring.Signature({
        "valid": Out(1),
        "code": Out(FIELD_BITS["code"]),
        "bank": Out(FIELD_BITS["bank"]),
        "row": Out(FIELD_BITS["row"]),
        "column": Out(FIELD_BITS["column"]),
        "data": Out(config.column_bits),
        "tag": Out(tag_layout(config)),
        "took": In(1),
    })


def counters_signature() -> CountersSignature:
    return CountersSignature(PIM_COUNTERS)

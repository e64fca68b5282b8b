"""Stream payloads and counters of the attention engine."""
from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature
from .config import HEAD_BITS, SCALE_BITS, SEQ_BITS, AttentionConfig

__all__ = ["ATTENTION_COUNTERS", "attention_signature", "descriptor_layout", "output_layout"]

#: ``useful_macs``: multiply-accumulates of unmasked query–key pairs (q·k and p·v);
#: ``softmax_busy_cycles``: cycles in which the per-row softmax units work.
ATTENTION_COUNTERS = ("useful_macs", "softmax_busy_cycles")


def descriptor_layout(config: AttentionConfig) -> data.StructLayout:
    """One job: H query heads of Nq queries against Hkv key/value heads of Nkv keys, head
    dimension d; ``scale`` is scale·log2(e) in unsigned fixed point (SCALE_FRAC bits)."""
    return data.StructLayout({
        "nq": unsigned(SEQ_BITS),
        "nkv": unsigned(SEQ_BITS),
        "head_dim": unsigned(config.head_dim_bits),
        "heads": unsigned(HEAD_BITS),
        "kv_heads": unsigned(HEAD_BITS),
        "causal": unsigned(1),
        "scale": unsigned(SCALE_BITS),
    })


def output_layout(config: AttentionConfig) -> data.StructLayout:
    """One output beat: dimension t of the R query rows of a tile; ``last`` ends the job."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.width), config.rows),
        "last": unsigned(1),
    })


def attention_signature(config: AttentionConfig) -> dict:
    return {
        "desc": In(stream.Signature(descriptor_layout(config))),
        "q": In(stream.Signature(data.ArrayLayout(signed(config.width), config.rows))),
        "k": In(stream.Signature(data.ArrayLayout(signed(config.width), config.cols))),
        "v": In(stream.Signature(data.ArrayLayout(signed(config.width), config.cols))),
        "o": Out(stream.Signature(output_layout(config))),
        "counters": Out(CountersSignature(ATTENTION_COUNTERS)),
    }

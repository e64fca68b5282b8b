"""Stream payloads of the N:M sparse blocks: compressed weight groups, activation groups and
descriptors. The result rows and counters are the systolic GEMM's."""
from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature
from ..systolic.config import DIM_BITS
from ..systolic.interface import result_layout
from .config import NMSparseGemmConfig, NMSparseMacConfig

__all__ = [
    "SPARSE_COUNTERS",
    "activation_group_layout",
    "descriptor_layout",
    "mac_signature",
    "pe_row_layout",
    "sparse_gemm_signature",
    "weight_group_layout",
]

#: Beats whose compressed group broke the N:M rules (indices not strictly increasing).
SPARSE_COUNTERS = ("operand_errors",)

#: One job: C[M×N] = A[M×K] · Wᵀ, W[N×K] compressed N:M along K, or dense when ``dense``.
descriptor_layout = data.StructLayout({
    "m": unsigned(DIM_BITS),
    "k": unsigned(DIM_BITS),
    "n": unsigned(DIM_BITS),
    "dense": unsigned(1),
})


def activation_group_layout(config) -> data.ArrayLayout:
    """M consecutive activations of one row of A (dense mode: the first ``dense_group``)."""
    return data.ArrayLayout(signed(config.width), config.m)


def weight_group_layout(config) -> data.StructLayout:
    """One compressed group of a row of W: N values and their indices, strictly increasing
    (dense mode: ``dense_group`` consecutive weights in the first values, indices ignored)."""
    return data.StructLayout({
        "values": data.ArrayLayout(signed(config.width), config.n),
        "indices": data.ArrayLayout(unsigned(config.index_bits), config.n),
    })


def pe_row_layout(config) -> data.StructLayout:
    """What travels along a row of PEs: the activation group and the job's mode."""
    return data.StructLayout({"acts": activation_group_layout(config), "dense": 1})


def sparse_gemm_signature(config: NMSparseGemmConfig) -> dict:
    return {
        "desc": In(stream.Signature(descriptor_layout)),
        "a": In(stream.Signature(data.ArrayLayout(activation_group_layout(config),
                                                  config.rows))),
        "b": In(stream.Signature(data.ArrayLayout(weight_group_layout(config), config.cols))),
        "c": Out(stream.Signature(result_layout(config))),
        "counters": Out(CountersSignature(SPARSE_COUNTERS)),
    }


def mac_signature(config: NMSparseMacConfig) -> dict:
    """``i``: one group per beat, ``last`` ends a dot product; ``o``: its sum, and ``error``
    when one of its groups broke the N:M rules (that group then counted as zero)."""
    beat = data.StructLayout({
        "acts": activation_group_layout(config),
        "group": weight_group_layout(config),
        "dense": 1,
        "last": 1,
    })
    result = data.StructLayout({"sum": signed(config.acc_width), "error": 1})
    return {
        "i": In(stream.Signature(beat)),
        "o": Out(stream.Signature(result)),
        "counters": Out(CountersSignature(SPARSE_COUNTERS)),
    }

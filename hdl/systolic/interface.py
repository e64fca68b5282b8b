"""Stream payloads and counters shared by every systolic GEMM dataflow.

Both dataflows present one signature (``desc``, ``a``, ``b`` in; ``c`` out; ``counters``), so
the registry, testbench and synthesis flows treat them alike; only the order of the operand
beats differs (see :mod:`hdl.systolic.layout`).
"""
from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..common.counters import CountersSignature
from .config import DIM_BITS, SystolicGemmConfig

__all__ = ["descriptor_layout", "gemm_signature", "result_layout"]

#: One GEMM job: C[M×N] = A[M×K] · B[K×N]; every size from 1 to 2**DIM_BITS − 1.
descriptor_layout = data.StructLayout({
    "m": unsigned(DIM_BITS),
    "k": unsigned(DIM_BITS),
    "n": unsigned(DIM_BITS),
})


def result_layout(config: SystolicGemmConfig) -> data.StructLayout:
    """One output row segment: C[row, col : col + cols]; ``last`` ends the job."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.acc_width), config.cols),
        "row": unsigned(DIM_BITS),
        "col": unsigned(DIM_BITS),
        "last": unsigned(1),
    })


def gemm_signature(config: SystolicGemmConfig) -> dict:
    return {
        "desc": In(stream.Signature(descriptor_layout)),
        "a": In(stream.Signature(data.ArrayLayout(signed(config.width), config.rows))),
        "b": In(stream.Signature(data.ArrayLayout(signed(config.width), config.cols))),
        "c": Out(stream.Signature(result_layout(config))),
        "counters": Out(CountersSignature()),
    }

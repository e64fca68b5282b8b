"""Configuration of the systolic GEMM array (``systolic_gemm``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import BlockConfig, param

__all__ = ["DATAFLOWS", "DIM_BITS", "SystolicGemmConfig"]

DATAFLOWS = ("output_stationary", "weight_stationary")
#: Width of the runtime matrix sizes M, K, N in the descriptor (1 .. 2**DIM_BITS - 1).
DIM_BITS = 16


@dataclass(frozen=True)
class SystolicGemmConfig(BlockConfig):
    """An R×C array of signed multiply-accumulate PEs computing C = A·B.

    M, K and N are runtime values (a descriptor); the accumulators are exact for every
    K up to ``2**DIM_BITS - 1``.
    """

    block_name = "systolic_gemm"

    rows: int = param(4, "array rows R", minimum=1, maximum=32)
    cols: int = param(4, "array columns C", minimum=1, maximum=32)
    width: int = param(8, "signed operand width in bits", minimum=4, maximum=16)
    dataflow: str = param("output_stationary",
                          "what stays in the PEs: outputs (OS) or weights (WS)",
                          choices=DATAFLOWS)
    chunk: int = param(64, "weight-stationary: rows of A per weight load (accumulator "
                       "depth); below rows, every pass waits for its weights", minimum=1,
                       maximum=4096)

    @property
    def acc_width(self) -> int:
        """Exact accumulator width: 2·width product bits plus DIM_BITS of growth over K."""
        return 2 * self.width + DIM_BITS

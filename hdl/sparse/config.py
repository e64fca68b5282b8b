"""Configurations of the N:M structured-sparse blocks (``nm_sparse_mac``, ``nm_sparse_gemm``).

N:M sparsity keeps at most N non-zeros in every group of M consecutive weights; a compressed
group is N values plus N indices of log2(M) bits. A sparse PE has N multipliers and takes a
group of M activations per beat, so it does the work of M dense MACs per cycle.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..common.config import BlockConfig, param
from ..systolic.config import DIM_BITS

__all__ = ["GROUP_SIZES", "NMSparseGemmConfig", "NMSparseMacConfig"]

#: Allowed M: a power of two, so that indices use every code and a group is a bit slice.
GROUP_SIZES = (2, 4, 8, 16)


class _NMFields:
    """The N:M fields and what follows from them, shared by both sparse configs."""

    n: int
    m: int

    def check(self) -> None:
        if self.n > self.m:
            raise ValueError(f"{self.block_name}: n={self.n} is not allowed with m={self.m}; "
                             f"expected 1 <= n <= m")

    @property
    def index_bits(self) -> int:
        """Bits of one index within a group: log2(M)."""
        return (self.m - 1).bit_length()

    @property
    def dense_group(self) -> int:
        """Weights per beat in dense mode: the largest power of two <= N, so that beats per
        fold stay a shift of K (for N = 3, 5, 6, 7 ... some multipliers idle in dense mode)."""
        return 1 << (self.n.bit_length() - 1)


@dataclass(frozen=True)
class NMSparseMacConfig(_NMFields, BlockConfig):
    """One sparse PE: a group of M activations and N (value, index) pairs per beat, the N
    selected products summed into an accumulator of ``acc_width`` bits (two's complement,
    wrapping past its range exactly as the golden model does)."""

    block_name = "nm_sparse_mac"

    n: int = param(2, "kept values N per group", minimum=1, maximum=16)
    m: int = param(4, "group size M", choices=GROUP_SIZES)
    width: int = param(8, "signed operand width in bits", minimum=2, maximum=16)
    acc_width: int = param(32, "accumulator width in bits", minimum=8, maximum=64)

    def check(self) -> None:
        super().check()
        least = 2 * self.width + self.index_bits
        if self.acc_width < least:
            raise ValueError(f"{self.block_name}: acc_width={self.acc_width} is not allowed "
                             f"with width={self.width}, m={self.m}; expected >= {least} (one "
                             f"group's sum)")


@dataclass(frozen=True)
class NMSparseGemmConfig(_NMFields, BlockConfig):
    """An R×C output-stationary array of sparse PEs computing C = A·Wᵀ with W in compressed
    N:M form (or dense, chosen per job); M×K×N at runtime, accumulators exact for every K."""

    block_name = "nm_sparse_gemm"

    rows: int = param(4, "array rows R", minimum=1, maximum=32)
    cols: int = param(4, "array columns C", minimum=1, maximum=32)
    n: int = param(2, "kept values N per group (multipliers per PE)", minimum=1, maximum=16)
    m: int = param(4, "group size M", choices=GROUP_SIZES)
    width: int = param(8, "signed operand width in bits", minimum=2, maximum=16)

    @property
    def acc_width(self) -> int:
        """Exact accumulator width: 2·width product bits plus DIM_BITS of growth over K."""
        return 2 * self.width + DIM_BITS

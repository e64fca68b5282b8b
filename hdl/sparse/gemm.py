"""The N:M sparse GEMM: the output-stationary systolic array with sparse PEs.

The tiling controller, skew lines, column drain, output queue and counters are the dense
array's (:class:`~hdl.systolic.output_stationary.OutputStationaryArray`); only the PE and
what a beat carries differ. A beat brings, per row, a group of M activations of A and, per
column, one compressed group of a row of W (N values + N indices), so a fold over K takes
ceil(K/M) beats instead of K. In dense mode (per job) a beat brings ``dense_group``
consecutive activations and weights instead, and the same multipliers do dense work.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring

from ..systolic.output_stationary import OutputStationaryArray
from .config import NMSparseGemmConfig
from .interface import pe_row_layout, sparse_gemm_signature, weight_group_layout
from .pe import NMSparsePE, group_malformed

__all__ = ["NMSparseGemm"]


class NMSparseGemm(OutputStationaryArray):
    """R×C array of :class:`NMSparsePE` computing C = A·Wᵀ, W compressed N:M along K.

    Beats per fold: ceil(K/M) (sparse) or ceil(K/dense_group) (dense); ``a`` beats carry
    A[tm·R+i, g·M : g·M+M] per row i and ``b`` beats the g-th compressed group of
    W[tn·C+j] per column j (:func:`hdl.sparse.layout.gemm_beats`). A sparse group whose
    indices are not strictly increasing counts in ``operand_errors`` and multiplies as zero.
    """

    def __init__(self, config: NMSparseGemmConfig):
        self._config = config
        self._dense = Signal(name="job_dense")
        super().__init__(rows=config.rows, cols=config.cols, acc_width=config.acc_width,
                         signature=sparse_gemm_signature(config))

    def make_pe(self, row: int, col: int) -> wiring.Component:
        return NMSparsePE(self._config, acc_width=self._config.acc_width, enable_ahead=True)

    def row_operand_shape(self):
        return pe_row_layout(self._config)

    def fold_last_beat(self, desc) -> Value:
        cfg = self._config
        sparse_shift = cfg.index_bits
        dense_shift = cfg.dense_group.bit_length() - 1
        return Mux(desc.dense, (desc.k - 1) >> dense_shift, (desc.k - 1) >> sparse_shift)

    def accept_job(self, m: Module, desc) -> None:
        m.d.sync += self._dense.eq(desc.dense)

    def row_operand(self, m: Module, row: int) -> Value:
        operand = Signal(pe_row_layout(self._config), name=f"row_operand_{row}")
        m.d.comb += [operand.acts.eq(self.a.payload[row]), operand.dense.eq(self._dense)]
        return operand.as_value()

    def _malformed(self, col: int) -> Value:
        return ~self._dense & group_malformed(self.b.payload[col])

    def col_operand(self, m: Module, col: int) -> Value:
        operand = Signal(weight_group_layout(self._config), name=f"col_operand_{col}")
        m.d.comb += [
            operand.indices.eq(self.b.payload[col].indices),
            operand.values.eq(Mux(self._malformed(col), 0, self.b.payload[col].values)),
        ]
        return operand.as_value()

    def beat_events(self, m: Module, beat: Value) -> dict[str, Value]:
        malformed = Signal()
        m.d.comb += malformed.eq(
            beat & Cat(self._malformed(j) for j in range(self._config.cols)).any())
        return {"operand_errors": malformed}

"""The block registry: one entry per block; the CLI, regressions, benchmarks and reports
iterate over it, so adding a block is adding an entry here plus the block's own files.

Golden models, testbenches and benchmarks are named by dotted path and imported only when
used, so that generating Verilog never imports torch or cocotb.
"""
from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amaranth.lib import wiring

from hdl.attention.config import AttentionConfig
from hdl.common.config import BlockConfig
from hdl.pim.config import PimConfig
from hdl.quant.config import KiviQuantConfig, MXDequantConfig, MXQuantConfig
from hdl.sparse.config import NMSparseGemmConfig, NMSparseMacConfig
from hdl.systolic.config import SystolicGemmConfig

__all__ = ["BLOCKS", "BlockEntry", "get_block", "load"]


def load(dotted: str) -> Any:
    """Import ``package.module:attribute`` (or a whole module without ``:``)."""
    module_name, _, attribute = dotted.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


@dataclass(frozen=True)
class BlockEntry:
    name: str
    summary: str
    config_class: type[BlockConfig]
    factory: str                    # "module:callable" building the component from a config
    golden: str                     # "module:callable" of the bit-exact golden model
    testbench: str                  # cocotb test module
    benchmark: str                  # module with run(configs, ...) for `tensorgates bench`
    sweep_point: str                # "module:callable(config, quick)": one point's figure
    check_inputs: str               # "module:callable(config, arrays)" raising ValueError
    input_keys: tuple[str, ...]     # npz keys `sim --inputs` reads
    output_keys: tuple[str, ...]    # npz keys `sim --outputs` writes (each also as <key>_golden)
    regression: tuple[dict, ...] = ()   # `make test` design points (settings as strings)
    regression_full: tuple[dict, ...] = ()  # extra points of `make test-full`
    # `make test` points run on Verilator only, their Icarus runs in `make test-full`: the
    # largest default points, whose Icarus run alone costs a minute or more
    regression_verilator: tuple[dict, ...] = ()
    synthesis: tuple[dict, ...] = ()    # design points of the area/Fmax report
    demo: dict = field(default_factory=dict)
    small: dict = field(default_factory=dict)   # a useful point that fits an iCE40 UP5K
    # (empty: none does, and the demo skips the block's iCE40 step)
    formal: str = ""    # "module:callable(config)" building the block's formal harness
    # "module:object": the block's host adapter (npz arrays ↔ stream beats over the UART host
    # bridge, for `tensorgates run`); see gateware/host_adapters.py
    host: str = ""

    def config(self, settings: dict[str, str] | None = None) -> BlockConfig:
        """A validated config from ``key=value`` strings (``ValueError`` on bad input)."""
        return self.config_class.from_strings(settings or {})

    def build(self, config: BlockConfig) -> wiring.Component:
        factory: Callable[[BlockConfig], wiring.Component] = load(self.factory)
        return factory(config)


def _every_format_and_rounding() -> tuple[dict, ...]:
    """`make test-full` points of mx_quant: every format × rounding, block sizes in turn."""
    formats = ("int8", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "bfp4",
               "bfp6")
    pairs = itertools.product(formats, ("nearest_even", "nearest_away", "toward_zero",
                                        "stochastic"))
    return tuple({"format": f, "rounding": r, "block_size": ("8", "32", "128")[i % 3]}
                 for i, (f, r) in enumerate(pairs))


BLOCKS: dict[str, BlockEntry] = {entry.name: entry for entry in [
    BlockEntry(
        name="systolic_gemm",
        host="gateware.host_adapters:SYSTOLIC_GEMM",
        summary="R×C systolic int GEMM array, output- or weight-stationary, runtime M×K×N",
        config_class=SystolicGemmConfig,
        factory="hdl.systolic:make_systolic_gemm",
        golden="golden.gemm:gemm_int_exact",
        testbench="sim.tb_systolic_gemm",
        formal="gateware.formal_blocks:systolic_gemm",
        benchmark="benchmarks.systolic_gemm",
        sweep_point="benchmarks.points:systolic_gemm",
        check_inputs="hdl.systolic.layout:check_inputs",
        input_keys=("a", "b"),
        output_keys=("c",),
        regression=(
            {"rows": "4", "cols": "4"},
            {"rows": "3", "cols": "5", "width": "6"},
            {"rows": "1", "cols": "1", "width": "16"},
            {"rows": "4", "cols": "4", "dataflow": "weight_stationary", "chunk": "16"},
        ),
        regression_full=(
            {"rows": "8", "cols": "8"},
            {"rows": "16", "cols": "16"},
            {"rows": "2", "cols": "7", "width": "4"},
            {"rows": "8", "cols": "8", "dataflow": "weight_stationary"},
            {"rows": "5", "cols": "3", "width": "12", "dataflow": "weight_stationary",
             "chunk": "20"},
        ),
        synthesis=(
            {"rows": "4", "cols": "4"},
            {"rows": "8", "cols": "8"},
            {"rows": "16", "cols": "16"},
        ),
        demo={"rows": "4", "cols": "4"},
        small={"rows": "2", "cols": "2"},
    ),
    BlockEntry(
        name="nm_sparse_gemm",
        host="gateware.host_adapters:NM_SPARSE_GEMM",
        summary="R×C systolic array of N:M sparse PEs, C = A·Wᵀ with W compressed N:M "
                "(or dense per job), runtime M×K×N",
        config_class=NMSparseGemmConfig,
        factory="hdl.sparse:make_nm_sparse_gemm",
        golden="golden.nm_sparse:nm_gemm_exact",
        testbench="sim.tb_nm_sparse_gemm",
        formal="gateware.formal_blocks:nm_sparse_gemm",
        benchmark="benchmarks.nm_sparse_gemm",
        sweep_point="benchmarks.points:sparse_gemm",
        check_inputs="hdl.sparse.layout:check_gemm_inputs",
        input_keys=("a", "w"),
        output_keys=("w_pruned", "values", "indices", "c"),
        regression=(
            {"rows": "4", "cols": "4", "n": "2", "m": "4"},
            {"rows": "2", "cols": "3", "n": "1", "m": "8", "width": "6"},
            {"rows": "3", "cols": "2", "n": "3", "m": "16"},
        ),
        regression_full=(
            {"rows": "1", "cols": "1", "n": "1", "m": "2", "width": "16"},
            {"rows": "8", "cols": "8", "n": "2", "m": "8"},
            {"rows": "4", "cols": "4", "n": "4", "m": "8"},
            {"rows": "4", "cols": "2", "n": "2", "m": "16"},
            {"rows": "2", "cols": "2", "n": "4", "m": "4", "width": "4"},
            {"rows": "5", "cols": "3", "n": "1", "m": "4", "width": "12"},
        ),
        synthesis=(
            {"rows": "4", "cols": "4", "n": "2", "m": "4"},
            {"rows": "4", "cols": "4", "n": "2", "m": "8"},
            {"rows": "8", "cols": "8", "n": "2", "m": "4"},
        ),
        demo={"rows": "4", "cols": "4", "n": "2", "m": "4"},
        small={"rows": "1", "cols": "2", "n": "2", "m": "4"},
    ),
    BlockEntry(
        name="nm_sparse_mac",
        host="gateware.host_adapters:NM_SPARSE_MAC",
        summary="one N:M sparse PE: M activations and N (value, index) pairs per beat, "
                "exact dot products",
        config_class=NMSparseMacConfig,
        factory="hdl.sparse:make_nm_sparse_mac",
        golden="golden.nm_sparse:nm_gemm_exact",
        testbench="sim.tb_nm_sparse_mac",
        formal="gateware.formal_blocks:nm_sparse_mac",
        benchmark="benchmarks.nm_sparse_mac",
        sweep_point="benchmarks.points:sparse_mac",
        check_inputs="hdl.sparse.layout:check_mac_inputs",
        input_keys=("a", "w"),
        output_keys=("w_pruned", "values", "indices", "sum"),
        regression=(
            {"n": "1", "m": "2"},
            {"n": "2", "m": "4"},
            {"n": "3", "m": "8"},
        ),
        regression_verilator=({"n": "16", "m": "16", "width": "4", "acc_width": "16"},),
        regression_full=({"n": "2", "m": "16"}, *(
            {"n": str(n), "m": str(m), "width": "16", "acc_width": "40"}
            for n, m in ((2, 2), (1, 4), (4, 8), (8, 16)))),
        synthesis=({"n": "2", "m": "4"}, {"n": "2", "m": "8"}, {"n": "2", "m": "16"}),
        demo={"n": "2", "m": "4"},
        small={"n": "2", "m": "4"},
    ),
    BlockEntry(
        name="mx_quant",
        host="gateware.host_adapters:MX_QUANT",
        summary="streaming block quantizer: OCP MX (MXINT8, MXFP8/6/4) and BFP, E8M0 shared "
                "scale, four rounding modes, `lanes` elements per cycle",
        config_class=MXQuantConfig,
        factory="hdl.quant:make_mx_quant",
        golden="golden.mx:mx_quantize",
        testbench="sim.tb_mx_quant",
        formal="gateware.formal_blocks:mx_quant",
        benchmark="benchmarks.mx_quant",
        sweep_point="benchmarks.points:quantizer",
        check_inputs="hdl.quant.layout:check_quant_inputs",
        input_keys=("x",),
        output_keys=("scale", "codes", "x_hat"),
        regression=(
            {"format": "fp8_e4m3"},
            {"format": "fp6_e3m2", "rounding": "nearest_away", "block_size": "8",
             "lanes": "2", "input": "fp16"},
            {"format": "fp4_e2m1", "lanes": "1", "input": "fp16"},
            {"format": "int8", "rounding": "nearest_away"},
        ),
        # The two slowest points: Icarus runs them in the full tier.
        regression_verilator=(
            {"format": "fp8_e5m2", "rounding": "stochastic", "lanes": "8", "input": "bf16"},
            {"format": "bfp4", "rounding": "stochastic", "block_size": "128", "lanes": "8"},
        ),
        regression_full=(*_every_format_and_rounding(),
                         {"format": "bfp8", "rounding": "toward_zero", "block_size": "8",
                          "lanes": "8", "input": "bf16"},
                         {"format": "fp6_e2m3", "rounding": "toward_zero", "block_size": "128",
                          "lanes": "16"}),
        synthesis=(
            {"format": "fp8_e4m3"},
            {"format": "int8"},
            {"format": "fp4_e2m1"},
        ),
        demo={"format": "fp8_e4m3"},
        small={"format": "fp4_e2m1", "lanes": "1", "block_size": "8"},
    ),
    BlockEntry(
        name="mx_dequant",
        host="gateware.host_adapters:MX_DEQUANT",
        summary="streaming block dequantizer: MX / BFP codes and E8M0 scales to fp32, exact",
        config_class=MXDequantConfig,
        factory="hdl.quant:make_mx_dequant",
        golden="golden.mx:mx_dequantize",
        testbench="sim.tb_mx_dequant",
        formal="gateware.formal_blocks:mx_dequant",
        benchmark="benchmarks.mx_quant",
        sweep_point="benchmarks.points:quantizer",
        check_inputs="hdl.quant.layout:check_dequant_inputs",
        input_keys=("scale", "codes"),
        output_keys=("x_hat",),
        regression=(
            {"format": "fp8_e5m2", "lanes": "8"},
            {"format": "fp4_e2m1", "lanes": "1"},
            {"format": "bfp4", "block_size": "8"},
        ),
        regression_full=({"format": "fp8_e4m3"},
                         {"format": "fp6_e3m2", "block_size": "8", "lanes": "2"},
                         {"format": "fp6_e2m3", "block_size": "128", "lanes": "16"},
                         {"format": "int8"}, {"format": "bfp2"},
                         {"format": "bfp8", "lanes": "32", "block_size": "64"}),
        synthesis=({"format": "fp8_e4m3"}, {"format": "int8"}),
        demo={"format": "fp8_e4m3"},
        small={"format": "fp4_e2m1", "lanes": "1", "block_size": "8"},
    ),
    BlockEntry(
        name="kivi_quant",
        host="gateware.host_adapters:KIVI_QUANT",
        summary="KIVI asymmetric 2/4-bit group quantizer (keys per channel, values per token), "
                "integer arithmetic with no divider, `lanes` elements per cycle",
        config_class=KiviQuantConfig,
        factory="hdl.quant:make_kivi_quant",
        golden="golden.kivi:kivi_quantize",
        testbench="sim.tb_kivi_quant",
        formal="gateware.formal_blocks:kivi_quant",
        benchmark="benchmarks.mx_quant",
        sweep_point="benchmarks.points:quantizer",
        check_inputs="hdl.quant.layout:check_kivi_inputs",
        input_keys=("x", "axis"),
        output_keys=("codes", "minimum", "scale", "x_hat"),
        regression=(
            {"bits": "2"},
            {"bits": "4", "group": "8", "lanes": "8", "input": "fp16"},
        ),
        regression_full=({"bits": "4", "group": "128", "lanes": "2", "input": "bf16"},
                         {"bits": "2", "group": "64", "lanes": "1"},
                         {"bits": "4", "group": "32", "lanes": "32"}),
        synthesis=({"bits": "2"}, {"bits": "4"}),
        demo={"bits": "4"},
        small={"bits": "2", "lanes": "1", "group": "8"},
    ),
    BlockEntry(
        name="attention",
        host="gateware.host_adapters:ATTENTION",
        summary="fused attention (FlashAttention online softmax, FuseMax overlap): R×C array "
                "for q·kᵀ and p·v plus per-row softmax units; runtime Nq, Nkv, d, H, Hkv, "
                "causal, scale",
        config_class=AttentionConfig,
        factory="hdl.attention:make_attention",
        golden="golden.attention:attention_exact",
        testbench="sim.tb_attention",
        formal="gateware.formal_blocks:attention",
        benchmark="benchmarks.attention",
        sweep_point="benchmarks.points:attention",
        check_inputs="hdl.attention.layout:check_inputs",
        input_keys=("q", "k", "v"),
        output_keys=("o",),
        regression_verilator=({"rows": "4", "cols": "4", "max_head_dim": "16"},),
        # 8×8 d = 64 first: a minute and a half on Verilator, most of it the build.
        regression_full=(
            {"rows": "8", "cols": "8", "max_head_dim": "64"},
            {"rows": "3", "cols": "2", "max_head_dim": "32", "exp2": "table",
             "exp2_segments": "256", "causal": "false"},
            {"rows": "16", "cols": "16", "max_head_dim": "64"},
            {"rows": "1", "cols": "1", "max_head_dim": "16", "width": "4"},
            {"rows": "4", "cols": "8", "max_head_dim": "32", "prob_bits": "12",
             "exp_frac_bits": "12", "exp2_segments": "8"},
        ),
        synthesis=(
            {"rows": "4", "cols": "4", "max_head_dim": "64"},
            {"rows": "8", "cols": "8", "max_head_dim": "64"},
        ),
        demo={"rows": "2", "cols": "2", "max_head_dim": "16"},
        # No configuration fits an iCE40 UP5K yet: 1×1, width 4, d ≤ 8, prob_bits 8 needs
        # 5681 of its 5280 logic cells (the softmax unit's multipliers end up in LUTs).
        small={},
    ),
    BlockEntry(
        name="pim",
        host="gateware.host_adapters:PIM",
        summary="PIM bank logic (HBM-PIM / AiM / NeuPIMs): DRAM banks with MAC units per bank or "
                "bank pair, all-bank PIM mode, dual row buffers, DRAM timing enforced in "
                "hardware, a GEMV sequencer",
        config_class=PimConfig,
        factory="hdl.pim:make_pim",
        golden="golden.pim:run_trace",
        testbench="sim.tb_pim",
        formal="gateware.formal_pim:pim",
        benchmark="benchmarks.pim",
        sweep_point="benchmarks.points:pim",
        check_inputs="golden.pim:check_inputs",
        input_keys=("commands", "w", "x"),
        output_keys=("y", "accepted", "rule", "read_data"),
        regression_verilator=(
            {"banks": "1", "rows": "8", "columns": "8", "column_bits": "64", "lanes": "4",
             "dual_row_buffer": "false", "timing": "gddr6", "grf": "4", "srf": "2",
             "crf": "12", "x_words": "256"},),
        regression=(
            {"banks": "2", "rows": "4", "columns": "4", "column_bits": "256", "lanes": "1",
             "unit": "pair", "tCCD_L": "1", "tRRD_L": "1", "tRRD_S": "1", "tREFI": "200",
             "tRFC": "20", "x_words": "256"},
        ),
        # banks 16 (both unit kinds, both presets, single and dual buffers), the defaults and a
        # wide 4-bank point (the slowest to simulate: two minutes on Verilator)
        regression_full=(
            {},
            {"banks": "4", "rows": "16", "columns": "16", "column_bits": "128", "lanes": "8"},
            {"banks": "16", "rows": "4", "columns": "4", "column_bits": "64", "lanes": "2",
             "unit": "pair", "timing": "gddr6", "bank_groups": "2", "x_words": "256"},
            {"banks": "16", "rows": "16", "columns": "8", "column_bits": "64", "lanes": "2",
             "dual_row_buffer": "false", "grf": "16", "srf": "16", "x_words": "512"},
        ),
        synthesis=(
            {"banks": "4", "rows": "16", "column_bits": "64", "lanes": "8"},
            {"banks": "16", "rows": "16", "column_bits": "64", "lanes": "8", "unit": "pair"},
        ),
        demo={"banks": "2", "rows": "4", "columns": "4", "column_bits": "64", "lanes": "2",
              "unit": "pair", "x_words": "256"},
        # No configuration fits an iCE40 UP5K yet: one bank, 4×4 columns of 64 bits, 2 lanes,
        # the smallest register files, single buffer and a 32-word x buffer needs 8088 of its
        # 5280 logic cells (4160 flip-flops: timing counters, status FIFO, sequencer).
        small={},
    ),
]}

def get_block(name: str) -> BlockEntry:
    """The registry entry of ``name`` (``ValueError`` listing the blocks otherwise)."""
    try:
        return BLOCKS[name]
    except KeyError:
        raise ValueError(f"unknown block {name!r}; available: {', '.join(BLOCKS)}") from None

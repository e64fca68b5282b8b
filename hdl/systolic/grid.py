"""The PE grid shared by both dataflows: instantiation and nearest-neighbour wiring."""
from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Module, Value
from amaranth.lib import wiring

__all__ = ["build_grid"]


def build_grid(m: Module, make_pe: Callable[[int, int], wiring.Component], *, rows: int,
               cols: int, enable: Value, row_inputs: list, col_inputs: list,
               across: tuple[str, str], down: tuple[str, str], chain: tuple[str, str]
               ) -> list[list[wiring.Component]]:
    """``rows`` × ``cols`` PEs named ``pe_<i>_<j>``, all enabled by ``enable``.

    ``across`` = (input, output) ports passed left to right, fed by ``row_inputs``; ``down`` the
    same top to bottom, fed by ``col_inputs``; ``chain`` a top-to-bottom chain fed with zero
    (output-stationary result drain, weight-stationary partial sums).
    """
    pes = [[make_pe(i, j) for j in range(cols)] for i in range(rows)]
    for i in range(rows):
        for j in range(cols):
            pe = pes[i][j]
            m.submodules[f"pe_{i}_{j}"] = pe
            left = row_inputs[i] if j == 0 else getattr(pes[i][j - 1], across[1])
            above = col_inputs[j] if i == 0 else getattr(pes[i - 1][j], down[1])
            chained = 0 if i == 0 else getattr(pes[i - 1][j], chain[1])
            m.d.comb += [
                pe.en.eq(enable),
                getattr(pe, across[0]).eq(left),
                getattr(pe, down[0]).eq(above),
                getattr(pe, chain[0]).eq(chained),
            ]
    return pes

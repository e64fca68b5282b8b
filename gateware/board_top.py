"""The board top: a registered block behind the UART host bridge, on an amaranth-boards
platform's ``uart`` resource (and its first LED, lit while the last reply was an error)."""
from __future__ import annotations

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from hdl.common.config import BlockConfig

from .host_bridge import MAX_DIVISOR, MIN_DIVISOR, HostBridgeTop

__all__ = ["BAUD_TOLERANCE", "BoardTop", "uart_divisor"]

#: Largest relative baud error accepted (8N1 tolerates about 5% between both ends).
BAUD_TOLERANCE = 0.02


def uart_divisor(clock_hz: float, baud: int) -> int:
    """Clocks a UART bit at ``baud`` from a ``clock_hz`` clock (``ValueError`` when the
    nearest divisor misses ``baud`` by more than 2%)."""
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud={baud!r} is not allowed; expected a positive integer")
    divisor = round(clock_hz / baud)
    if not MIN_DIVISOR <= divisor <= MAX_DIVISOR:
        raise ValueError(f"baud={baud} is not allowed with a {clock_hz / 1e6:g} MHz clock; "
                         f"expected {clock_hz / MAX_DIVISOR:.0f} to "
                         f"{clock_hz / MIN_DIVISOR:.0f} baud")
    error = abs(clock_hz / divisor - baud) / baud
    if error > BAUD_TOLERANCE:
        raise ValueError(f"baud={baud} is not allowed with a {clock_hz / 1e6:g} MHz clock: "
                         f"the nearest divisor {divisor} gives {clock_hz / divisor:.0f} baud "
                         f"({error:.1%} off; at most {BAUD_TOLERANCE:.0%})")
    return divisor


class BoardTop(Elaboratable):
    """``block`` with ``config`` behind the host bridge on the platform's ``uart`` 0 at
    ``baud``; the divisor comes from the platform's default clock."""

    def __init__(self, block: str, config: BlockConfig, *, baud: int = 115200):
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            self._MustUse__silence = True   # never built: no "created but never used"
            raise ValueError(f"baud={baud!r} is not allowed; expected a positive integer")
        self.block = block
        self.config = config
        self.baud = baud

    def elaborate(self, platform):
        m = Module()
        divisor = uart_divisor(platform.default_clk_frequency, self.baud)
        m.submodules.bridge = bridge = HostBridgeTop(self.block, self.config, divisor=divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [bridge.rx.eq(rx.i), tx.o.eq(bridge.tx)]
        try:
            led = platform.request("led", 0, dir="-")
        except ResourceError:   # a board without LEDs still gets its bridge
            return m
        m.submodules.led = lit = io.Buffer("o", led)
        m.d.comb += lit.o.eq(bridge.error)
        return m

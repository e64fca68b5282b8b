"""Formal harnesses: each block inside a wrapper that states its properties (docs/formal.md).

A harness is a :class:`Harness` component with the block's own ports (its inputs are the
solver's free inputs, its outputs are observed), the block as a submodule, and property sets:
functions ``(checks: Checks) -> None`` that add named ``Assert``s, each with a ``Cover`` showing
it is not vacuous, and ``Assume``s on the environment. The harness is never part of the
synthesized RTL. :func:`block_harness` builds one from the generic sets (stream rules,
counters, reset) plus a block's own; a new property set (PIM timing safety, say) is a function
handed to it in ``extra`` from the block's harness factory, named in the registry's ``formal``.

Conventions: every property is named ``<port>_<rule>`` or ``<counter>_<rule>``; its cover is
``<name>__cover``. ``past(x)`` is x one cycle earlier; ``checks.stepped`` is high when the last
clock edge was not a reset (so ``past`` values are from the same run).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from amaranth.hdl import Assert, Assume, Cat, Const, Cover, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring

from hdl.common.config import BlockConfig
from hdl.common.counters import COUNTER_BITS, CountersSignature

__all__ = ["COVER_SUFFIX", "Checks", "Harness", "Ledger", "Property", "PropertySet", "Scenario",
           "block_harness", "counter_rules", "reset_rules", "stream_rules", "streams_of"]

COVER_SUFFIX = "__cover"
#: Jobs (or beats) a ledger tracks at once; the environment is assumed not to exceed it.
LEDGER_BITS = 5


@dataclass(frozen=True)
class Property:
    name: str
    group: str        # stream, jobs, counters, errors, reset or a block's own
    text: str         # what it states, for docs/formal.md
    local: bool       # a candidate for k-induction on its own (no ledger of the environment)


PropertySet = Callable[["Checks"], None]


@dataclass(frozen=True)
class Scenario:
    """A directed cover run: ``steer`` adds assumptions (a script the environment follows),
    and the covers of ``targets`` are searched under them to ``depth``. A trace that keeps the
    extra assumptions keeps the harness's own, so a cover it reaches is reachable in the
    proof's environment; a fixed script spares the solver the search over every input, so
    covers deep behind a slow pipeline or several command slots are found in seconds."""
    name: str
    depth: int
    steer: PropertySet
    targets: tuple[str, ...]


class Checks:
    """The harness's property builder: named asserts with covers, assumptions, past values."""

    def __init__(self, m: Module, dut: wiring.Component, config: BlockConfig,
                 only: frozenset[str] | None, covers: frozenset[str] | None = None):
        self.m, self.dut, self.config, self._only = m, dut, config, only
        self._covers = covers
        self.properties: list[Property] = []
        self.assumptions: list[str] = []
        # Reset by the block's reset like everything else: low in the cycle after a reset.
        self.stepped = Signal()
        m.d.sync += self.stepped.eq(1)
        # High in the first cycle and in the cycle after a reset (the block starts in reset).
        self.was_reset = Signal(init=1, reset_less=True)
        m.d.sync += self.was_reset.eq(ResetSignal())

    def past(self, value, *, name: str | None = None, reset_less: bool = False) -> Signal:
        value = Value.cast(value)
        register = Signal(len(value), name=name, reset_less=reset_less)
        self.m.d.sync += register.eq(value)
        return register

    def prove(self, name: str, holds, *, cover, group: str, text: str,
              local: bool = True) -> None:
        """``holds`` in every cycle; ``cover`` is reachable (shows ``holds`` is not vacuous)."""
        assert all(p.name != name for p in self.properties), name
        self.properties.append(Property(name, group, text, local))
        if self._only is None or name in self._only:
            self.m.d.comb += Assert(holds, name)
        if self._covers is None or name in self._covers:
            self.m.d.comb += Cover(cover, name + COVER_SUFFIX)

    def assume(self, name: str, condition, text: str) -> None:
        """Restrict the environment (the block's inputs), documented as ``text``."""
        self.assumptions.append(f"{name}: {text}")
        self.m.d.comb += Assume(condition, "assume_" + name)

    def ledger(self, name: str, request, done, tag=None) -> Ledger:
        return Ledger(self, name, request, done, tag)


class Ledger:
    """Jobs asked for and not yet ended, in order, each with an optional one-bit tag.

    ``request`` adds a job (with ``tag``), ``done`` ends the oldest; ``pending`` counts them and
    ``head`` is the oldest job's tag. The environment is assumed not to have more than
    ``2**LEDGER_BITS - 1`` jobs in flight.
    """

    def __init__(self, checks: Checks, name: str, request, done, tag=None):
        m = checks.m
        limit = 2 ** LEDGER_BITS - 1
        self.pending = Signal(LEDGER_BITS, name=f"{name}_pending")
        self.tags = Signal(limit + 1, name=f"{name}_tags")
        self.head = self.tags[0]
        request, done = Value.cast(request), Value.cast(done)
        checks.assume(f"{name}_bounded", ~(request & (self.pending == limit)),
                      f"at most {limit} {name} in flight")
        after_done = Signal(LEDGER_BITS, name=f"{name}_after_done")
        m.d.comb += after_done.eq(self.pending - (done & (self.pending != 0)))
        with m.If(done & (self.pending != 0)):
            m.d.sync += self.tags.eq(self.tags >> 1)
        with m.If(request):
            m.d.sync += self.tags.bit_select(after_done, 1).eq(
                Const(0) if tag is None else tag)
        m.d.sync += self.pending.eq(after_done + request)


def streams_of(component: wiring.Component) -> list[tuple[str, bool, object]]:
    """``(name, is_input, interface)`` of every ``amaranth.lib.stream`` port."""
    found = []
    for name, member in component.signature.members.items():
        if not member.is_signature:
            continue
        port = getattr(component, name)
        if all(hasattr(port, field) for field in ("valid", "ready", "payload")):
            found.append((name, member.flow == wiring.In, port))
    return found


def transfer(port) -> Value:
    return port.valid & port.ready


def stream_rules(checks: Checks) -> None:
    """(1) Output streams: ``valid`` stays high until ``ready``, the payload holds meanwhile.
    Input streams are assumed to obey the same rules."""
    for name, is_input, port in streams_of(checks.dut):
        waiting = checks.past(port.valid & ~port.ready, name=f"{name}_was_waiting")
        payload = checks.past(port.payload, name=f"{name}_past_payload")
        held = ~(checks.stepped & waiting) | (
            port.valid & (Value.cast(port.payload) == payload))
        if is_input:
            checks.assume(f"{name}_stream", held, f"`{name}` obeys the stream rules")
        else:
            checks.prove(f"{name}_stream_hold", held, group="stream",
                         cover=checks.stepped & waiting & port.valid,
                         text=f"once `{name}.valid` is high it stays high until `{name}.ready`, "
                              f"and `{name}.payload` holds still meanwhile")


def counter_rules(checks: Checks, constant: Iterable[str] = ()) -> None:
    """(3) Every counter holds or adds one in each cycle out of reset; busy and stall counts
    never exceed ``cycles``. ``constant`` counters are zero by design and proved to stay so."""
    counters = checks.dut.counters
    names = [n for n in counters.signature.members if n != "desc_error"]
    checks.assume("counters_below_wrap",
                  ~Cat(getattr(counters, n)[-1] for n in names).any(),
                  f"runs shorter than 2**{COUNTER_BITS - 1} cycles (no counter wraps)")
    for name in names:
        value = getattr(counters, name)
        if name in constant:
            checks.prove(f"{name}_zero", value == 0, group="counters", cover=checks.stepped,
                         text=f"`{name}` stays zero (the block never counts it)")
            continue
        before = checks.past(value, name=f"past_{name}")
        if name in CountersSignature.NAMES:
            step = (value - before)[:COUNTER_BITS]
            checks.prove(f"{name}_counts_up", ~checks.stepped | (step == 0) | (step == 1),
                         group="counters", cover=checks.stepped & (step == 1),
                         text=f"`{name}` holds or adds one in every cycle out of reset")
        else:
            checks.prove(f"{name}_counts_up", ~checks.stepped | (value >= before),
                         group="counters", cover=checks.stepped & (value > before),
                         text=f"`{name}` never decreases out of reset")
    cycles = counters.cycles
    checks.prove("busy_within_cycles", counters.busy_cycles <= cycles, group="counters",
                 cover=counters.busy_cycles != 0,
                 text="`busy_cycles` never exceeds `cycles`")
    stalls = [n for n in ("stall_cycles", "stall_in_cycles", "stall_out_cycles")
              if n not in constant]
    checks.prove("stalls_within_cycles",
                 Cat(getattr(counters, n) <= cycles for n in stalls).all(), group="counters",
                 cover=counters.stall_cycles != 0,
                 text=f"{', '.join(f'`{n}`' for n in stalls)} never exceed `cycles`")


def reset_rules(checks: Checks) -> None:
    """(5) After reset the block is idle: every output ``valid`` low, every counter and the
    error flag zero. The cover resets a block that was working."""
    outputs = [port.valid for _name, is_input, port in streams_of(checks.dut) if not is_input]
    counters = checks.dut.counters
    values = [getattr(counters, n) for n in counters.signature.members]
    idle = ~Cat(*outputs).any() & ~Cat(*values).any()
    worked = checks.past(counters.cycles != 0, name="worked", reset_less=True)
    checks.prove("reset_idle", ~checks.was_reset | idle, group="reset",
                 cover=checks.was_reset & worked,
                 text="after reset every output `valid` is low and every counter and error "
                      "flag is zero")


class Harness(wiring.Component):
    """The block (built by ``make_dut``) with its ports forwarded and the property sets
    applied; ``only`` limits the asserts to those names, ``covers`` the covers (assumptions
    all kept). ``scenarios`` are the directed cover runs of the proof (:class:`Scenario`)."""

    def __init__(self, make_dut: Callable[[], wiring.Component], config: BlockConfig | None,
                 property_sets: Iterable[PropertySet], *, only: frozenset[str] | None = None,
                 covers: frozenset[str] | None = None, scenarios: Iterable[Scenario] = (),
                 unreachable: dict[str, str] | None = None):
        self._make_dut, self._config, self._sets = make_dut, config, tuple(property_sets)
        self._only, self._covers = only, covers
        self.scenarios = tuple(scenarios)
        #: covers no trace of this point reaches within a depth a solver gets to: name → why
        self.unreachable = dict(unreachable or {})
        self._dut = make_dut()
        self.properties: list[Property] = []
        self.assumptions: list[str] = []
        super().__init__(self._dut.signature)

    def with_only(self, names: Iterable[str]) -> Harness:
        return Harness(self._make_dut, self._config, self._sets, only=frozenset(names),
                       scenarios=self.scenarios, unreachable=self.unreachable)

    def steered(self, scenario: Scenario) -> Harness:
        """The harness under ``scenario``'s script: its target covers, no asserts."""
        return Harness(self._make_dut, self._config, (*self._sets, scenario.steer),
                       only=frozenset(), covers=frozenset(scenario.targets))

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        wiring.connect(m, wiring.flipped(self), self._dut)
        checks = Checks(m, self._dut, self._config, self._only, self._covers)
        for property_set in self._sets:
            property_set(checks)
        self.properties, self.assumptions = checks.properties, checks.assumptions
        return m


def block_harness(config: BlockConfig, *sets: PropertySet,
                  constant_counters: tuple[str, ...] = (),
                  scenarios: Iterable[Scenario] = (),
                  unreachable: dict[str, str] | None = None) -> Harness:
    """The registry block of ``config`` with the generic properties (stream rules, counters,
    reset) and the block's own ``sets``."""
    from .registry import get_block
    entry = get_block(config.block_name)

    def counters(checks: Checks) -> None:
        counter_rules(checks, constant_counters)
    return Harness(lambda: entry.build(config), config,
                   (stream_rules, counters, reset_rules, *sets), scenarios=scenarios,
                   unreachable=unreachable)

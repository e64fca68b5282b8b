"""The PIM channel's formal harness (docs/formal.md, "pim"): DRAM timing safety.

The property that matters most for the channel (issue 11): **no command that breaks a timing
rule changes a bank, a row buffer or a unit register, and every accepted command kept every
timing parameter**; with the dual row buffer, the PIM buffer and the normal buffer of a bank
never hold the same row.

The harness keeps its own record of the accepted commands, written again from the rule table
of docs/pim.md ("Timing and state rules", as golden ``Checker`` states it), not from the RTL's
down-counters: per row buffer the DRAM cycle of the last ACT, PRE, RD and WR; per bank group
and channel-wide the last activations (and the four most recent, for tFAW); per column path and
group the last column command; the last all-bank column command, data-bus command and REF; the
open row of every buffer and the mode. A raw command's verdict is read from the ports: the
clock after the command is taken, ``counters.accepted`` or ``counters.rejected`` has moved.
What a rejected command must not change is read from the channel's registers and memory
write ports directly (the harness elaborates the channel and finds them by name).

The channel is built without the GEMV sequencer (its schedule is checked against golden
``schedule_gemv`` command for command in simulation): the raw command port is free.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Fragment, Mux, ResetSignal, Signal, Value
from amaranth.lib import memory

from hdl.pim.channel import PimChannel
from hdl.pim.config import PimConfig
from hdl.pim.interface import command_layout
from hdl.pim.isa import (
    AB,
    ACT,
    ACTAB,
    ALL,
    EVEN,
    MODE,
    ODD,
    PRE,
    PREA,
    PREAB,
    RD,
    RDAB,
    RDRC,
    RDREG,
    REF,
    WR,
    WRAB,
    WRREG,
)
from hdl.pim.unit import PimUnit

from .formal import Checks, Harness, Scenario, reset_rules, stream_rules, transfer

__all__ = ["pim", "scenarios", "timing_safety"]

#: Bits of the DRAM cycles the record keeps. DRAM time advances by at most one cycle per
#: clock, so a proof shorter than ``2**CYCLE_WINDOW`` clocks never reaches a later cycle; the
#: environment is assumed not to offer one (such a command would wait beyond the depth).
CYCLE_WINDOW = 8


def _one_of(code, *codes) -> Value:
    return Cat(*(code == c for c in codes)).any()


def _all(terms) -> Value:
    terms = list(terms)
    return Cat(*terms).all() if terms else Const(1)


def _any(terms) -> Value:
    terms = list(terms)
    return Cat(*terms).any() if terms else Const(0)


# ------------------------------------------------------------------------------ channel state
@dataclass
class _Unit:
    ports: PimUnit
    scalars: list[Signal]           # pc, loop state, halted
    writes: list[Value]             # write enables of the register files


@dataclass
class _Channel:
    open: list[list[Signal]]        # [bank][kind]: the buffer holds a row
    row: list[list[Signal]]         # [bank][kind]: the open row
    mode: Signal
    bank_writes: list[Value]        # write enable of every bank array
    units: list[_Unit]
    found: dict[str, list[Signal]]  # the channel's own signals by name

    def signal(self, name: str) -> Signal:
        return _named(self.found, name)


def _driven(fragment: Fragment) -> dict[str, list[Signal]]:
    """Signals driven by the fragment's own statements, by name."""
    found: dict[str, list[Signal]] = {}
    for statements in fragment.statements.values():
        for statement in statements:
            for signal in statement._lhs_signals():
                known = found.setdefault(signal.name, [])
                if not any(signal is other for other in known):
                    known.append(signal)
    return found


def _named(found: dict[str, list[Signal]], name: str) -> Signal:
    signals = found.get(name, [])
    assert len(signals) == 1, f"the PIM channel has {len(signals)} signals named {name!r}"
    return signals[0]


def _write_enables(fragment: Fragment) -> list[Value]:
    """Write enables of the memories directly below ``fragment``."""
    enables = []
    for sub, _name, _loc in fragment.subfragments:
        for origin in sub.origins or ():
            if isinstance(origin, memory.Memory):
                enables += [port.en.any() for port in origin.write_ports]
    return enables


def _reach_channel(checks: Checks) -> _Channel:
    """Elaborate the channel here, once, and find its row buffers, mode, bank write ports and
    units. The harness then uses this same elaboration as its submodule."""
    dut, config = checks.dut, checks.config
    fragment = Fragment.get(type(dut).elaborate(dut, None), None)
    dut.elaborate = lambda platform: fragment
    found = _driven(fragment)
    kinds = 2 if config.dual_row_buffer else 1
    open_ = [[_named(found, f"open_{b}_{k}") for k in range(kinds)] for b in range(config.banks)]
    row = [[_named(found, f"row_{b}_{k}") for k in range(kinds)] for b in range(config.banks)]
    banks = {name: sub for sub, name, _loc in fragment.subfragments}
    bank_writes = []
    for b in range(config.banks):
        bank_writes += _write_enables_of(banks[f"bank_{b}"])
    units = []
    for u in range(config.units):
        sub = banks[f"unit_{u}"]
        ports = next(o for o in sub.origins if isinstance(o, PimUnit))
        unit_found = _driven(sub)
        scalars = [_named(unit_found, n) for n in ("pc", "loop_active", "loop_count", "halted")]
        units.append(_Unit(ports, scalars, _write_enables(sub)))
    assert len(bank_writes) == config.banks and all(len(u.writes) == 4 for u in units)
    return _Channel(open_, row, _named(found, "mode"), bank_writes, units, found)


def _write_enables_of(memory_fragment: Fragment) -> list[Value]:
    memories = [o for o in memory_fragment.origins or () if isinstance(o, memory.Memory)]
    return [port.en.any() for mem in memories for port in mem.write_ports]


# ------------------------------------------------------------------------------ the record
class _Last:
    """The DRAM cycle of the last accepted event of one kind (``seen``: there was one).
    ``view()`` includes an event recorded in this clock (visible in the record next clock)."""

    def __init__(self, name: str):
        self.cycle = Signal(CYCLE_WINDOW, name=f"last_{name}")
        self.seen = Signal(name=f"seen_{name}")
        self.update = Signal(name=f"update_{name}")
        self.update_cycle = Signal(CYCLE_WINDOW, name=f"update_cycle_{name}")

    def record(self, m, when, cycle) -> None:
        m.d.comb += [self.update.eq(when), self.update_cycle.eq(cycle)]
        with m.If(when):
            m.d.sync += [self.cycle.eq(cycle), self.seen.eq(1)]

    def view(self) -> tuple[Value, Value]:
        return self.seen | self.update, Mux(self.update, self.update_cycle, self.cycle)


def timing_safety(checks: Checks) -> None:
    """The timing rules of docs/pim.md over every accepted raw command, and what a rejected one
    leaves alone (see the module docstring)."""
    m, dut, config = checks.m, checks.dut, checks.config
    t = config.timing_values
    banks, groups = config.banks, config.bank_groups
    dual = config.dual_row_buffer
    kinds, ab_kind = (2, 1) if dual else (1, 0)
    paths, ab_path = (2, 1) if dual else (1, 0)
    chan = _reach_channel(checks)

    # ------------------------------------------------------------------ verdicts, from ports
    cmd, counters = dut.cmd, dut.counters
    checks.assume("cycles_in_window", ~cmd.valid | (cmd.payload.cycle < 2 ** CYCLE_WINDOW),
                  f"raw commands name DRAM cycles below 2**{CYCLE_WINDOW} (a proof of fewer "
                  f"clocks reaches no later cycle)")
    taken = transfer(cmd)
    was_taken = checks.past(taken, name="cmd_was_taken")
    c = Signal(command_layout(config), name="decided")     # the command taken last clock
    m.d.sync += c.eq(cmd.payload)

    def moved(counter):         # (a comparison, not a 48-bit subtraction: cheaper to solve)
        return counter != checks.past(counter, name=f"past_{counter.name}")
    accepted_moved, rejected_moved = moved(counters.accepted), moved(counters.rejected)
    decided = checks.stepped & was_taken
    accepted = Signal(name="accepted_now")
    rejected = Signal(name="rejected_now")
    m.d.comb += [accepted.eq(decided & accepted_moved), rejected.eq(decided & rejected_moved)]
    checks.prove("cmd_decided_once",
                 ~checks.stepped | Mux(was_taken, accepted_moved ^ rejected_moved,
                                       ~accepted_moved & ~rejected_moved),
                 group="pim", cover=rejected,
                 text="the clock after a raw command is taken, exactly one of `accepted` and "
                      "`rejected` moves, and neither moves otherwise")

    # ------------------------------------------------------------------ decoding of `c`
    code, bank, cycle = c.code, c.bank, c.cycle[:CYCLE_WINDOW]
    single = _one_of(code, ACT, PRE, RD, WR)
    setcmd = _one_of(code, ACTAB, PREAB, RDAB, WRAB)

    def in_set(b):
        return (bank == ALL) | ((bank == EVEN) & (b % 2 == 0)) | ((bank == ODD) & (b % 2 == 1))

    def targets(b, k):
        """Buffer (b, k) is addressed by the command (PREA: every normal buffer)."""
        if k == ab_kind and dual:
            return setcmd & in_set(b)
        normal = (single & (bank == b)) | (code == PREA)
        return normal | (setcmd & in_set(b)) if not dual else normal

    def in_groups(g):
        return _any((single & (bank == b)) | (setcmd & in_set(b))
                    for b in range(banks) if b % groups == g)

    def path_is(p):
        return Mux(setcmd, Const(ab_path == p), Const(p == 0))

    is_act = _one_of(code, ACT, ACTAB)
    is_pre = _one_of(code, PRE, PREA, PREAB)
    is_col = _one_of(code, RD, WR, RDAB, WRAB)
    is_trig = _one_of(code, RDAB, WRAB)

    # ------------------------------------------------------------------ the record
    buffers = [(b, k) for b in range(banks) for k in range(kinds)]
    last = {kind: {(b, k): _Last(f"{kind}_{b}_{k}") for b, k in buffers}
            for kind in ("act", "pre", "rd", "wr")}
    is_open = {(b, k): Signal(name=f"shadow_open_{b}_{k}") for b, k in buffers}
    open_row = {(b, k): Signal(len(chan.row[b][k]), name=f"shadow_row_{b}_{k}")
                for b, k in buffers}
    act_any = _Last("act_any")
    act_group = [_Last(f"act_group_{g}") for g in range(groups)]
    recent = [Signal(CYCLE_WINDOW, name=f"act_recent_{i}") for i in range(4)]
    recent_count = Signal(range(5), name="act_recent_count")
    col_any = [_Last(f"col_{p}") for p in range(paths)]
    col_group = [[_Last(f"col_{p}_group_{g}") for g in range(groups)] for p in range(paths)]
    ab_col = _Last("ab_col")
    bus = _Last("bus")
    ref = _Last("ref")
    mode = Signal(2, name="shadow_mode")
    uses_bus = _one_of(code, RD, WR, WRREG, RDREG, RDRC) | ((code == WRAB) & (mode == AB))

    # ------------------------------------------------------------------ the rules
    def after(event: _Last, cycles: int):
        return ~event.seen | (cycle >= event.cycle + cycles)

    def tight(event: _Last, cycles: int):
        return event.seen & (cycle == event.cycle + cycles)

    # rule -> [(applies, event, cycles)] over the command `c`
    write_recovery = t["tWL"] + t["tBL"] + t["tWR"]
    rules: dict[str, list] = {name: [] for name in (
        "tRFC", "tRP", "tRC", "tRAS", "tRTP", "tWR", "tRCD", "tRRD_L", "tRRD_S", "tFAW",
        "tCCD_L", "tCCD_S", "tBL")}
    rules["tRFC"].append((is_act | (code == REF), ref, t["tRFC"]))
    for b, k in buffers:
        hit, live = targets(b, k), targets(b, k) & is_open[b, k]
        rules["tRP"] += [(is_act & hit, last["pre"][b, k], t["tRP"]),
                         (code == REF, last["pre"][b, k], t["tRP"])]
        rules["tRC"] += [(is_act & hit, last["act"][b, k], t["tRC"]),
                         (code == REF, last["act"][b, k], t["tRC"])]
        rules["tRAS"].append((is_pre & live, last["act"][b, k], t["tRAS"]))
        rules["tRTP"].append((is_pre & live, last["rd"][b, k], t["tRTP"]))
        rules["tWR"].append((is_pre & live, last["wr"][b, k], write_recovery))
        rules["tRCD"].append((is_col & hit, last["act"][b, k], t["tRCD"]))
    for g in range(groups):
        rules["tRRD_L"].append((is_act & in_groups(g), act_group[g], t["tRRD_L"]))
        for p in range(paths):
            rules["tCCD_L"].append((is_col & path_is(p) & in_groups(g), col_group[p][g],
                                    t["tCCD_L"]))
    rules["tCCD_L"].append((is_trig, ab_col, t["tCCD_L"]))
    rules["tRRD_S"].append((is_act, act_any, t["tRRD_S"]))
    for p in range(paths):
        rules["tCCD_S"].append((is_col & path_is(p), col_any[p], t["tCCD_S"]))
    rules["tBL"].append((uses_bus, bus, t["tBL"]))
    fourth = _Last("act_fourth")         # the fourth most recent activation, as an event
    m.d.comb += [fourth.cycle.eq(recent[3]), fourth.seen.eq(recent_count == 4)]
    rules["tFAW"].append((is_act, fourth, t["tFAW"]))

    for name, terms in rules.items():
        value = t["tWR"] if name == "tWR" else t[name]
        extra = f" (tWL + tBL + tWR = {write_recovery})" if name == "tWR" else ""
        checks.prove(f"cmd_keeps_{name}",
                     ~accepted | _all(~applies | after(event, cycles)
                                      for applies, event, cycles in terms),
                     group="timing",
                     cover=accepted & _any(applies & tight(event, cycles)
                                           for applies, event, cycles in terms),
                     text=f"every accepted command keeps {name} = {value}{extra} after the "
                          f"accepted commands it depends on (docs/pim.md timing table); cover: "
                          f"one accepted exactly at that bound")

    # ------------------------------------------------------------------ record updates
    with m.If(accepted):
        bus.record(m, uses_bus, cycle)
        with m.If(is_act):
            for b, k in buffers:
                with m.If(targets(b, k)):
                    m.d.sync += [is_open[b, k].eq(1), open_row[b, k].eq(c.row)]
                last["act"][b, k].record(m, targets(b, k), cycle)
            act_any.record(m, 1, cycle)
            for g in range(groups):
                act_group[g].record(m, in_groups(g), cycle)
            m.d.sync += [recent[0].eq(cycle), recent[1].eq(recent[0]),
                         recent[2].eq(recent[1]), recent[3].eq(recent[2]),
                         recent_count.eq(Mux(recent_count == 4, 4, recent_count + 1))]
        with m.If(is_pre):
            for b, k in buffers:
                live = targets(b, k) & is_open[b, k]
                with m.If(live):
                    m.d.sync += is_open[b, k].eq(0)
                last["pre"][b, k].record(m, live, cycle)
        with m.If(is_col):
            reads = _one_of(code, RD, RDAB)
            for b, k in buffers:
                last["rd"][b, k].record(m, targets(b, k) & reads, cycle)
                last["wr"][b, k].record(m, targets(b, k) & ~reads, cycle)
            for p in range(paths):
                col_any[p].record(m, path_is(p), cycle)
                for g in range(groups):
                    col_group[p][g].record(m, path_is(p) & in_groups(g), cycle)
            ab_col.record(m, is_trig, cycle)
        ref.record(m, code == REF, cycle)
        with m.If(code == MODE):
            m.d.sync += mode.eq(c.row[:2])

    # ------------------------------------------------------------------ timers
    # Each of the channel's down-counters is what the record says it must be,
    # max(0, last + t - now) at the channel's DRAM cycle `now` (the record seen with the
    # command of this clock's verdict): the RTL's timers and the independent record agree
    # in every clock, not only at the commands. Written as the strengthening that k-induction
    # of the timing rules would need; that induction did not close within a run's time
    # limit (docs/formal.md, "pim"), so it is checked like the rest, bounded.
    now = chan.signal("now")

    def remaining(seen, last_cycle, cycles):
        deadline = last_cycle + cycles
        return Mux(seen & (now < deadline), (deadline - now)[:CYCLE_WINDOW], 0)

    def of(event: _Last, cycles: int):
        return remaining(*event.view(), cycles)

    pairs = []          # (channel timer, value the record gives)
    for b, k in buffers:
        pairs += [(f"rp_{b}_{k}", of(last["pre"][b, k], t["tRP"])),
                  (f"rc_{b}_{k}", of(last["act"][b, k], t["tRC"])),
                  (f"ras_{b}_{k}", of(last["act"][b, k], t["tRAS"])),
                  (f"rcd_{b}_{k}", of(last["act"][b, k], t["tRCD"])),
                  (f"rtp_{b}_{k}", of(last["rd"][b, k], t["tRTP"])),
                  (f"wr_{b}_{k}", of(last["wr"][b, k], write_recovery))]
    pairs += [(f"rrd_l_{g}", of(act_group[g], t["tRRD_L"])) for g in range(groups)]
    pairs += [("rrd_s", of(act_any, t["tRRD_S"])),
              ("rfc", of(ref, t["tRFC"])), ("bus", of(bus, t["tBL"])),
              ("ccd_ab", of(ab_col, t["tCCD_L"]))]
    pairs += [(f"ccd_s_{p}", of(col_any[p], t["tCCD_S"])) for p in range(paths)]
    pairs += [(f"ccd_l_{p}_{g}", of(col_group[p][g], t["tCCD_L"]))
              for p in range(paths) for g in range(groups)]
    # the four most recent activations, with the one of this clock's verdict shifted in
    act_now = accepted & is_act
    recent_view = [Mux(act_now, cycle, recent[0])] + [Mux(act_now, recent[i - 1], recent[i])
                                                      for i in range(1, 4)]
    count_view = Mux(act_now, Mux(recent_count == 4, 4, recent_count + 1), recent_count)
    pairs += [(f"faw_{i}", remaining(count_view > i, recent_view[i], t["tFAW"]))
              for i in range(4)]
    # REF after any precharge or activation: the latest of the buffers' (every buffer loads
    # the same t, and every accepted ACT or closing PRE loads at least one buffer's)
    for timer, event, cycles in (("ref_rp", "pre", t["tRP"]), ("ref_rc", "act", t["tRC"])):
        latest = Const(0, CYCLE_WINDOW)
        for b, k in buffers:
            value = of(last[event][b, k], cycles)
            latest = Mux(value > latest, value, latest)
        pairs.append((timer, latest))
    timers = [(chan.signal(name), value) for name, value in pairs]
    # ... and the record is of the past: no event after the channel's present cycle
    events = [*last["act"].values(), *last["pre"].values(), *last["rd"].values(),
              *last["wr"].values(), act_any, *act_group, *col_any,
              *(e for row in col_group for e in row), ab_col, bus, ref]
    past = [~seen | (cycle_ <= now) for seen, cycle_ in (e.view() for e in events)]
    past += [(count_view <= i) | (recent_view[i] <= now) for i in range(4)]
    past.append(recent_count <= 4)
    checks.prove("timers_follow_record",
                 _all(timer == value for timer, value in timers) & _all(past),
                 group="pim",
                 cover=checks.stepped & _all(timer != 0 for timer in
                                             (chan.signal("rrd_s"), chan.signal("rcd_0_0"))),
                 text=f"each of the channel's {len(timers)} timing down-counters equals "
                      "max(0, last + t − now) of the harness's record at the channel's DRAM "
                      "cycle `now`, and the record holds no event after `now`")

    # ------------------------------------------------------------------ buffers
    # The record after this clock's verdict: the buffers the accepted command leaves.
    open_next = {}
    for b, k in buffers:
        opens = accepted & is_act & targets(b, k)
        closes = accepted & is_pre & targets(b, k)
        open_next[b, k] = (Mux(opens, 1, Mux(closes, 0, is_open[b, k])),
                           Mux(opens, c.row[:len(open_row[b, k])], open_row[b, k]))
    checks.prove("buffers_follow_accepted",
                 _all((chan.open[b][k] == open_next[b, k][0])
                      & (~chan.open[b][k] | (chan.row[b][k] == open_next[b, k][1]))
                      for b, k in buffers)
                 & (chan.mode == Mux(accepted & (code == MODE), c.row[:2], mode)),
                 group="pim",
                 cover=accepted & (code == ACTAB) & _any(chan.open[b][0] for b in range(banks)),
                 text="the channel's row buffers (open or not, which row) and mode are exactly "
                      "what the accepted commands made them: no rejected command moved them")
    if dual:
        checks.prove("buffers_never_share_a_row",
                     _all(~(chan.open[b][0] & chan.open[b][1]
                            & (chan.row[b][0] == chan.row[b][1])) for b in range(banks)),
                     group="pim",
                     cover=_any(chan.open[b][0] & chan.open[b][1] for b in range(banks)),
                     text="the normal and the PIM row buffer of a bank never hold the same row "
                          "(dual row buffer)")

    # ------------------------------------------------------------------ rejected commands
    buffer_state = Cat(*(Cat(chan.open[b][k], chan.row[b][k]) for b, k in buffers), chan.mode)
    rejected_2 = checks.past(rejected, name="rejected_before") & checks.stepped
    bank_write = _any(chan.bank_writes)
    bank_write_before = checks.past(bank_write, name="bank_write_before")
    early = _any(applies & ~after(event, cycles)
                 for terms in rules.values() for applies, event, cycles in terms)
    checks.prove("rejected_keeps_buffers",
                 ~rejected | (buffer_state == checks.past(buffer_state, name="buffers_before")),
                 group="pim",
                 cover=rejected & is_act & early,
                 text="a rejected command leaves every row buffer (open or not, which row) and "
                      "the mode as they were")
    unit_commands = _any(Cat(u.ports.fire, u.ports.reg_write, u.ports.reg_read,
                             u.ports.reg_clear, u.ports.reset_program).any()
                         for u in chan.units)
    checks.prove("rejected_keeps_banks",
                 ~rejected | (~bank_write_before & ~_any(u.ports.fire for u in chan.units)),
                 group="pim",
                 cover=rejected & _one_of(code, WR, WRAB) & early,
                 text="a rejected command writes no bank: no bank write port is enabled in its "
                      "decision clock and no unit is triggered (a unit's BANK ← GRF_A write)")
    unit_write = _any(w for u in chan.units for w in u.writes)
    scalars = Cat(*(s for u in chan.units for s in u.scalars))
    # Clocks after the decision t: the units take a command at t+1 and write their register
    # files from t+1 (WRREG) to t+4 (GRF_B results of a trigger). An earlier accepted
    # trigger's GRF_B write can still land at t+1 (a duplicate command rejected in the clock
    # after its slot's P status), never at t+2.
    checks.prove("rejected_keeps_units",
                 (~rejected | ~unit_commands)
                 & (~rejected_2 | (~unit_write
                                   & (scalars == checks.past(scalars, name="unit_before")))),
                 group="pim",
                 cover=rejected & _one_of(code, RDAB, WRAB, WRREG) & early,
                 text="a rejected command reaches no unit: no unit command in the clock after "
                      "it, no register file written and `pc`, loop state and `halted` kept in "
                      "the clock after that")


# ------------------------------------------------------------------------------ directed covers
def _script(commands: list[tuple[int, int, int, int, int]]):
    """A steering property set: the environment offers exactly ``commands`` (DRAM cycle, code,
    bank, row, column; data zero) in order, then nothing; never resets; takes every status."""
    def steer(checks: Checks) -> None:
        cmd = checks.dut.cmd
        index = Signal(range(len(commands) + 1), name="script_index")
        with checks.m.If(transfer(cmd)):
            checks.m.d.sync += index.eq(index + 1)
        offered = [(index == i) & cmd.valid & (cmd.payload.cycle == cycle)
                   & (cmd.payload.code == code) & (cmd.payload.bank == bank)
                   & (cmd.payload.row == row) & (cmd.payload.column == column)
                   & (cmd.payload.data == 0)
                   for i, (cycle, code, bank, row, column) in enumerate(commands)]
        offered.append((index == len(commands)) & ~cmd.valid)
        checks.assume("script", _any(offered) & ~ResetSignal() & checks.dut.status.ready,
                      "the environment follows the scenario's command script")
    return steer


def scenarios(config: PimConfig) -> tuple[Scenario, ...]:
    """Directed cover runs for the rules whose bound takes two or three command slots after
    the previous ones (docs/formal.md, "pim"): each script keeps every rule and meets the
    named ones exactly at their bound. A slot is seven clocks, an idle DRAM cycle one, and
    the units clear their registers for four clocks after reset."""
    t = config.timing_values
    trcd, write_recovery = t["tRCD"], t["tWL"] + t["tBL"] + t["tWR"]
    second_rd = trcd + max(t["tCCD_L"], t["tCCD_S"], t["tBL"])
    read = [(0, ACT, 0, 0, 0), (trcd, RD, 0, 0, 0), (second_rd, RD, 0, 0, 1),
            (max(second_rd + t["tRTP"], t["tRAS"]), PRE, 0, 0, 0)]
    write_pre = max(trcd + write_recovery, t["tRAS"])
    write = [(0, ACT, 0, 0, 0), (trcd, WR, 0, 0, 0), (write_pre, PRE, 0, 0, 0),
             (max(write_pre + t["tRP"], t["tRC"]), ACT, 0, 0, 0)]
    precharge = [(0, ACT, 0, 0, 0), (t["tRAS"], PRE, 0, 0, 0),
                 (max(t["tRAS"] + t["tRP"], t["tRC"]), ACT, 0, 0, 0)]
    # five activations over the four buffers of banks 0 and 1 (two through ACTAB in AB mode,
    # bank 0's normal buffer twice), the fifth exactly tFAW after the first
    gap = max(t["tRRD_S"], t["tRRD_L"])
    fifth = max(t["tFAW"], t["tRC"], 2 * gap + t["tRP"], 4 * gap)
    faw = [(0, MODE, 0, AB, 0), (0, ACT, 0, 0, 0), (gap, ACT, 1, 0, 0),
           (2 * gap, ACTAB, EVEN, 1, 0), (2 * gap, PRE, 0, 0, 0), (3 * gap, ACTAB, ODD, 1, 0),
           (fifth, ACT, 0, 0, 0)]

    def clocks(script):         # the clock after the last command's verdict, with margin
        return 4 + 7 * len({c[0] for c in script}) + max(c[0] for c in script) + 4
    runs = [("read", read, ("tRCD", "tCCD_S", "tCCD_L", "tRTP")),
            ("write", write, ("tWR", "tRP")),
            ("precharge", precharge, ("tRAS", "tRC")),
            ("four_activations", faw, ("tFAW",))]
    return tuple(Scenario(name, clocks(script), _script(script),
                          tuple(f"cmd_keeps_{rule}" for rule in rules))
                 for name, script, rules in runs)


def _bmc_only(checks: Checks) -> None:
    """Every property of this harness goes to the bounded model check: k-induction over the
    channel did not close within a run's time limit, not even of the timing rules with
    `timers_follow_record` as their strengthening and the units and banks cut loose
    (docs/formal.md, "pim")."""
    prove = checks.prove

    def bounded(name, holds, *, cover, group, text, local=True):
        prove(name, holds, cover=cover, group=group, text=text, local=False)
    checks.prove = bounded


def pim(config: PimConfig) -> Harness:
    """The raw-command channel (no GEMV sequencer) with the stream and reset rules and
    :func:`timing_safety`, all bounded (:func:`_bmc_only`); the rules' covers that need two or
    three command slots come from directed runs (:func:`scenarios`). Left out to keep each
    step of the search affordable: the sequencer (idle here, but unrolled in every step) and
    the counter rules (their 48-bit arithmetic over twelve counters)."""
    return Harness(lambda: PimChannel(config, with_sequencer=False), config,
                   (_bmc_only, stream_rules, reset_rules, timing_safety),
                   scenarios=scenarios(config))

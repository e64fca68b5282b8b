"""The PIM channel (block ``pim``, docs/pim.md): bank arrays, row buffers, mode, refresh, the
timing and state rules enforced in hardware, the MAC units and the GEMV sequencer.

**Command slots.** One DRAM cycle is a *slot* of seven clocks (one when nothing happens in
it): the port-P decision (a raw command, or the sequencer's row / column candidate: rules, then
commit), a clock in which the units take the command, its status, the port-N decision (rules,
commit), its status and the slot's end (timing counters count down, refresh ticks). The N
decision sees every effect of the P decision (registered), as the specification orders them;
the banks are simple dual-port memories shared in time by the two decisions and the units'
``BANK ← GRF_A`` writes. Raw commands carry their DRAM cycle, so DRAM time advances only
when the command stream says what happens in a slot (or the sequencer runs on its own): gaps in
the stream do not change any decision.

**Timing.** Every rule "offered cycle ≥ last event + t" is a down-counter loaded with ``t``
at the event and counted down at each slot's end: the command is legal iff it is zero.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import PimConfig
from .interface import (
    CYCLE_BITS,
    RULE_BITS,
    command_layout,
    counters_signature,
    status_layout,
)
from .isa import (
    AB,
    AB_PIM,
    ACT,
    ACTAB,
    F_GRF_B,
    MODE,
    PRE,
    PREA,
    PREAB,
    RD,
    RDAB,
    RDRC,
    RDREG,
    REF,
    REFRESH_POSTPONE,
    RULE_ID,
    SB,
    WR,
    WRAB,
    WRREG,
)
from .unit import FLAT_BITS, PimUnit

__all__ = ["PimChannel"]

_TIMING_ORDER = ("tRFC", "tRP", "tRC", "tRAS", "tRTP", "tWR", "tRCD", "tRRD_L", "tRRD_S",
                 "tFAW", "tCCD_L", "tCCD_S", "tBL")
#: Rules a decision evaluates, in priority order (``port`` is the front end's).
_CHECK_ORDER = ("code", "address", "mode", "bank_open", "bank_closed", "row_conflict",
                "not_precharged", "pim_write_needs_wr", *_TIMING_ORDER)


def _is(code, *codes):
    result = Const(0, 1)
    for value in codes:
        result = result | (code == value)
    return result


class PimChannel(wiring.Component):
    """A channel of ``banks`` banks with units, enforcing docs/pim.md command by command.

    ``with_sequencer=False`` builds the raw-command channel alone (the sequencer's ports are
    then absent)."""

    def __init__(self, config: PimConfig, *, with_sequencer: bool = True):
        config.check_rtl()
        self.config = config
        self.with_sequencer = with_sequencer
        signature = {
            "cmd": In(stream.Signature(command_layout(config))),
            "status": Out(stream.Signature(status_layout(config))),
            "counters": Out(counters_signature()),
            "refresh_due": Out(1),
            "violation": Out(1),
        }
        if with_sequencer:
            from .sequencer import gemv_layout
            signature["gemv"] = In(stream.Signature(gemv_layout(config)))
            signature["x"] = In(stream.Signature(unsigned(config.lane_bits)))
            signature["gemv_busy"] = Out(1)     # a GEMV is loading x or issuing commands
        super().__init__(signature)

    # ---------------------------------------------------------------------------- elaborate
    def elaborate(self, platform):
        c = self.config
        m = Module()
        t = c.timing_values
        banks, groups = c.banks, c.bank_groups
        dual = c.dual_row_buffer
        kinds = 2 if dual else 1
        ab_kind = 1 if dual else 0
        paths = 2 if dual else 1
        ab_path = 1 if dual else 0
        pair = c.unit == "pair"
        units = c.units
        row_bits = max(1, (c.rows - 1).bit_length())
        col_bits = max(1, (c.columns - 1).bit_length())
        all_mask = (1 << banks) - 1
        even_mask = sum(1 << b for b in range(0, banks, 2))
        odd_mask = sum(1 << b for b in range(1, banks, 2))

        def group_bits(bank_mask: int) -> int:
            return sum(1 << (b % groups) for b in range(banks) if bank_mask >> b & 1)

        # ------------------------------------------------------------------ state
        open_valid = [[Signal(name=f"open_{b}_{k}") for k in range(kinds)] for b in range(banks)]
        open_row = [[Signal(row_bits, name=f"row_{b}_{k}") for k in range(kinds)]
                    for b in range(banks)]
        mode = Signal(2)
        counters: list[Signal] = []

        def down(name: str, value: int) -> Signal:
            counter = Signal(range(value + 1), name=name)
            counters.append(counter)
            return counter

        write_recovery = t["tWL"] + t["tBL"] + t["tWR"]
        per_buffer = {
            name: [[down(f"{name}_{b}_{k}", value) for k in range(kinds)] for b in range(banks)]
            for name, value in (("rp", t["tRP"]), ("rc", t["tRC"]), ("ras", t["tRAS"]),
                                ("rtp", t["tRTP"]), ("wr", write_recovery), ("rcd", t["tRCD"]))
        }
        act_group = [down(f"rrd_l_{g}", t["tRRD_L"]) for g in range(groups)]
        act_any = down("rrd_s", t["tRRD_S"])
        faw = [down(f"faw_{i}", t["tFAW"]) for i in range(4)]    # faw[3]: 4th most recent
        col_group = [[down(f"ccd_l_{p}_{g}", t["tCCD_L"]) for g in range(groups)]
                     for p in range(paths)]
        col_any = [down(f"ccd_s_{p}", t["tCCD_S"]) for p in range(paths)]
        ab_col = down("ccd_ab", t["tCCD_L"])
        bus = down("bus", t["tBL"])
        ref = down("rfc", t["tRFC"])
        any_pre = down("ref_rp", t["tRP"])
        any_act = down("ref_rc", t["tRC"])
        due = Signal(range(REFRESH_POSTPONE + 1))
        refi = Signal(range(t["tREFI"]), init=t["tREFI"] - 1)
        now = Signal(CYCLE_BITS)
        m.d.comb += self.refresh_due.eq(due != 0)

        # ------------------------------------------------------------------ units and banks
        unit_list = []
        for u in range(units):
            unit = PimUnit(c)
            m.submodules[f"unit_{u}"] = unit
            unit_list.append(unit)
        bank_mems, bank_read, bank_write = [], [], []
        for b in range(banks):
            mem = memory.Memory(shape=unsigned(c.column_bits), depth=c.rows * c.columns,
                                init=[])
            m.submodules[f"bank_{b}"] = mem
            bank_mems.append(mem)
            bank_read.append(mem.read_port())
            bank_write.append(mem.write_port())
        writes_bank = Signal(units)
        m.d.comb += writes_bank.eq(Cat(u.writes_bank for u in unit_list))

        # ------------------------------------------------------------------ decoding
        def decode(code, bank, row, column):
            """Targets of a command: single-bank, all-bank (set) or PREA."""
            d = {"code": code, "bank": bank, "row": row, "column": column}
            d["single"] = _is(code, ACT, PRE, RD, WR)
            d["setcmd"] = _is(code, ACTAB, PREAB, RDAB, WRAB)
            set_mask = Signal(banks, name="set_mask")
            m.d.comb += set_mask.eq(Mux(bank == 0, all_mask,
                                        Mux(bank == 1, even_mask, Mux(bank == 2, odd_mask, 0))))
            single_mask = Signal(banks, name="single_mask")
            m.d.comb += single_mask.eq(Mux(bank < banks, Const(1, banks) << bank[:5], 0))
            mask = Signal(banks, name="target_mask")
            m.d.comb += mask.eq(Mux(d["single"], single_mask,
                                    Mux(code == PREA, all_mask, Mux(d["setcmd"], set_mask, 0))))
            d["mask"] = mask
            d["kind"] = Mux(d["setcmd"], ab_kind, 0)
            d["targets_ok"] = Mux(d["single"], bank < banks,
                                  Mux(d["setcmd"], set_mask != 0, 1))
            gmask = Signal(groups, name="group_mask")
            single_group = Signal(groups, name="single_group")
            m.d.comb += single_group.eq(Const(1, groups) << (bank % groups if groups > 1
                                                             else 0))
            m.d.comb += gmask.eq(Mux(d["single"], single_group,
                                     Mux(bank == 0, group_bits(all_mask),
                                         Mux(bank == 1, group_bits(even_mask),
                                             group_bits(odd_mask)))))
            d["groups"] = gmask
            d["path"] = Mux(d["setcmd"], ab_path, 0)
            return d

        def targeted(d, b, k):
            """Is buffer (b, k) addressed by the command?"""
            if dual:
                kind_match = (d["kind"] == k)
            else:
                kind_match = Const(1, 1)
            return d["mask"][b] & kind_match

        def any_of(terms):
            result = Const(0, 1)
            for term in terms:
                result = result | term
            return result

        # ------------------------------------------------------------------ rule check
        def check(d):
            code, bank, row, column = d["code"], d["bank"], d["row"], d["column"]
            fails = {}
            is_act = _is(code, ACT, ACTAB)
            is_pre = _is(code, PRE, PREA, PREAB)
            is_col = _is(code, RD, WR, RDAB, WRAB)
            is_trig = _is(code, RDAB, WRAB)
            is_reg = _is(code, WRREG, RDREG, RDRC)
            fails["code"] = code == 15
            # address
            file, index = row[5:], row[:5]
            size = Mux(file == 0, c.grf, Mux(file == 1, c.grf, Mux(file == 2, c.srf, c.crf)))
            reg_targeted = (code != WRREG) | (mode == SB)
            reg_bad = (file > 3) | (index >= size) | ((code == RDRC) & (file != F_GRF_B)) \
                | (column >= Mux(file == F_GRF_B, c.acc_pieces, 1)) \
                | (reg_targeted & (bank >= banks))
            address = (is_act & (row >= c.rows)) | (is_col & (column >= c.columns)) \
                | (is_trig & (row >= c.grf)) \
                | ((d["single"] | d["setcmd"]) & ~d["targets_ok"]) \
                | ((code == MODE) & (row > 2)) | (is_reg & reg_bad)
            if pair:
                address = address | (is_trig & (mode == AB_PIM) & (bank == 0))
            fails["address"] = address
            # mode
            n_code = _is(code, ACT, PRE, PREA, RD, WR)
            mode_bad = (_is(code, ACTAB, PREAB, WRAB) & (mode == SB)) \
                | ((code == RDAB) & (mode != AB_PIM))
            if not dual:
                mode_bad = mode_bad | (n_code & (mode != SB))
            fails["mode"] = mode_bad
            # state
            buffers = [(b, k) for b in range(banks) for k in range(kinds)]
            fails["bank_open"] = is_act & any_of(
                targeted(d, b, k) & open_valid[b][k] for b, k in buffers)
            fails["bank_closed"] = is_col & any_of(
                targeted(d, b, k) & ~open_valid[b][k] for b, k in buffers)
            if dual:
                fails["row_conflict"] = is_act & any_of(
                    targeted(d, b, k) & open_valid[b][1 - k] & (open_row[b][1 - k] == row)
                    for b, k in buffers)
            any_open = any_of(open_valid[b][k] for b, k in buffers)
            any_ab_open = any_of(open_valid[b][ab_kind] for b in range(banks))
            fails["not_precharged"] = ((code == REF) & any_open) | (
                (code == MODE) & ((row == SB) != (mode == SB)) & any_ab_open)
            fired = Signal(units, name="fired")
            if pair:
                m.d.comb += fired.eq(Const(-1, units))
            else:
                m.d.comb += fired.eq(d["mask"][:units])
            fails["pim_write_needs_wr"] = (code == RDAB) & ((fired & writes_bank) != 0)
            # timing
            def busy(name, predicate_fn):
                return any_of(predicate_fn(b, k) & (per_buffer[name][b][k] != 0)
                              for b, k in buffers)
            live = {(b, k): targeted(d, b, k) & open_valid[b][k] for b, k in buffers}
            fails["tRFC"] = (is_act | (code == REF)) & (ref != 0)
            fails["tRP"] = (is_act & busy("rp", lambda b, k: targeted(d, b, k))) \
                | ((code == REF) & (any_pre != 0))
            fails["tRC"] = (is_act & busy("rc", lambda b, k: targeted(d, b, k))) \
                | ((code == REF) & (any_act != 0))
            fails["tRAS"] = is_pre & busy("ras", lambda b, k: live[b, k])
            fails["tRTP"] = is_pre & busy("rtp", lambda b, k: live[b, k])
            fails["tWR"] = is_pre & busy("wr", lambda b, k: live[b, k])
            fails["tRCD"] = is_col & busy("rcd", lambda b, k: targeted(d, b, k))
            gm = d["groups"]
            fails["tRRD_L"] = is_act & any_of(gm[g] & (act_group[g] != 0) for g in range(groups))
            fails["tRRD_S"] = is_act & (act_any != 0)
            fails["tFAW"] = is_act & (faw[3] != 0)
            long_busy = any_of((d["path"] == p) & gm[g] & (col_group[p][g] != 0)
                               for p in range(paths) for g in range(groups))
            fails["tCCD_L"] = is_col & (long_busy | (is_trig & (ab_col != 0)))
            fails["tCCD_S"] = is_col & any_of((d["path"] == p) & (col_any[p] != 0)
                                              for p in range(paths))
            uses_bus = _is(code, RD, WR, WRREG, RDREG, RDRC) | ((code == WRAB) & (mode == AB))
            d["uses_bus"] = uses_bus
            fails["tBL"] = uses_bus & (bus != 0)
            failed = Signal(len(_CHECK_ORDER), name="failed")
            m.d.comb += failed.eq(Cat(fails.get(name, Const(0, 1)) for name in _CHECK_ORDER))
            return failed

        def first_rule(failed):
            """The id of the first failing rule (0: none) of a registered ``failed`` vector."""
            chain = Const(0, RULE_BITS)
            for index, name in reversed(list(enumerate(_CHECK_ORDER))):
                chain = Mux(failed[index], RULE_ID[name], chain)
            return chain

        # ------------------------------------------------------------------ front end
        m.submodules.status_fifo = status_fifo = fifo.SyncFIFOBuffered(
            width=status_layout(c).size, depth=4)
        status_in = Signal(status_layout(c))
        m.d.comb += [
            status_fifo.w_data.eq(status_in),
            self.status.payload.eq(status_fifo.r_data),
            self.status.valid.eq(status_fifo.r_rdy),
            status_fifo.r_en.eq(self.status.ready),
        ]
        head = self.cmd.payload
        head_is_n = _is(head.code, ACT, PRE, PREA, RD, WR)
        head_now = self.cmd.valid & (head.cycle == now)
        head_late = self.cmd.valid & (head.cycle < now)
        head_later = self.cmd.valid & (head.cycle > now)

        if self.with_sequencer:
            from .sequencer import GemvSequencer
            m.submodules.sequencer = seq = GemvSequencer(c)
            wiring.connect(m, wiring.flipped(self.gemv), seq.desc)
            wiring.connect(m, wiring.flipped(self.x), seq.x)
            seq_active, seq_loading = seq.active, seq.loading
            free_running = seq.active & ~seq.traffic
            row_q, col_q = seq.row_q, seq.col_q
            m.d.comb += [seq.now.eq(now), seq.refresh_due.eq(due != 0),
                         self.gemv_busy.eq(seq.active | seq.loading)]
        else:
            seq_active, seq_loading, free_running = Const(0, 1), Const(0, 1), Const(0, 1)
            row_q = col_q = None

        # candidate A: the row queue's head in a sequencer P decision, else the raw head
        in_p_state = Signal()
        use_seq = Signal()
        if row_q is not None:
            m.d.comb += use_seq.eq(seq_active & in_p_state)
        a_code, a_bank, a_row, a_col = (Signal(4, name="a_code"), Signal(5, name="a_bank"),
                                        Signal(16, name="a_row"), Signal(9, name="a_column"))
        a_data = Signal(c.column_bits, name="a_data")
        with m.If(use_seq):
            if row_q is not None:
                m.d.comb += [a_code.eq(row_q.code), a_bank.eq(row_q.bank),
                             a_row.eq(row_q.row), a_col.eq(row_q.column),
                             a_data.eq(row_q.data)]
        with m.Else():
            m.d.comb += [a_code.eq(head.code), a_bank.eq(head.bank), a_row.eq(head.row),
                         a_col.eq(head.column), a_data.eq(head.data)]
        failed_a = check(decode(a_code, a_bank, a_row, a_col))
        if col_q is not None:
            failed_b = check(decode(col_q.code, col_q.bank, col_q.row, col_q.column))

        # ------------------------------------------------------------------ slot machine
        commit = Signal()           # the selected command is accepted now
        take_b = Signal()
        sel_code, sel_bank, sel_row, sel_col = (Signal(4, name="sel_code"),
                                                Signal(5, name="sel_bank"),
                                                Signal(16, name="sel_row"),
                                                Signal(9, name="sel_column"))
        sel_data = Signal(c.column_bits, name="sel_data")
        m.d.comb += [sel_code.eq(a_code), sel_bank.eq(a_bank), sel_row.eq(a_row),
                     sel_col.eq(a_col), sel_data.eq(a_data)]
        if col_q is not None:
            with m.If(take_b):
                m.d.comb += [sel_code.eq(col_q.code), sel_bank.eq(col_q.bank),
                             sel_row.eq(col_q.row), sel_col.eq(col_q.column),
                             sel_data.eq(col_q.data)]
        p_decision = Signal()       # this clock decides port P
        n_decision = Signal()       # this clock decides port N
        idle_end = Signal()         # nothing happens in this slot: it ends at once
        end_slot = Signal()
        reject_port = Signal()      # a late or duplicate raw command is rejected (port)

        # the registered status of the decision, written one clock later
        pending = Signal(status_layout(c))
        pending_valid = Signal()
        pending_unit = Signal(range(max(units, 2)))
        pending_bank = Signal(range(max(banks, 2)))

        accepted_event, rejected_event = Signal(), Signal()
        trigger_event, refresh_event = Signal(), Signal()
        overdue_event = Signal()

        def pending_from(accepted, rule, sequencer, tag=0):
            return [
                pending.cycle.eq(Mux(sequencer, now, head.cycle)),
                pending.code.eq(sel_code), pending.bank.eq(sel_bank),
                pending.row.eq(sel_row), pending.column.eq(sel_col),
                pending.sequencer.eq(sequencer), pending.accepted.eq(accepted),
                pending.rule.eq(rule),
                pending.has_read.eq(accepted & _is(sel_code, RD, RDREG, RDRC)),
                pending.tag.eq(tag),
                pending_valid.eq(1),
            ]

        bank_index_bits = max(1, (banks - 1).bit_length())
        # Each decision takes two clocks: the rules are evaluated and registered (P, N), then
        # the command commits (P_COMMIT, N_COMMIT), which keeps the rule logic and the commit
        # fan-out in separate clocks. The candidates and the state hold still in between.
        failed_a_r = Signal(len(_CHECK_ORDER))
        failed_b_r = Signal(len(_CHECK_ORDER))
        m.d.sync += [failed_a_r.eq(failed_a),
                     failed_b_r.eq(failed_b if col_q is not None else 0)]
        rule_a_r = first_rule(failed_a_r)
        raw_p_now = Signal()        # the P decision is a raw command of this slot
        legal_a, legal_b = failed_a_r == 0, failed_b_r == 0
        with m.FSM(name="slot"):
            with m.State("P"):
                m.d.comb += in_p_state.eq(1)
                clearing = any_of(unit.clearing for unit in unit_list)
                ready = status_fifo.w_rdy & ~seq_loading & ~clearing \
                    & (self.cmd.valid | free_running)
                with m.If(head_late):
                    # a command of a slot already ended (out of order or a duplicate)
                    with m.If(status_fifo.w_rdy):
                        m.d.comb += [self.cmd.ready.eq(1), reject_port.eq(1),
                                     rejected_event.eq(1)]
                with m.Elif(ready):
                    m.next = "P_COMMIT"
                    m.d.sync += raw_p_now.eq(~seq_active & head_now & ~head_is_n)
                    with m.If(~seq_active & ~head_now & head_later):
                        m.d.comb += idle_end.eq(1)      # nothing happens in this slot
                        m.next = "P"
            with m.State("P_COMMIT"):
                m.d.comb += [in_p_state.eq(1), p_decision.eq(1)]
                m.next = "P_WAIT"
                m.d.sync += pending_valid.eq(0)
                if row_q is not None:
                    with m.If(seq_active):
                        took_a = row_q.valid & legal_a
                        took_b = ~took_a & col_q.valid & legal_b
                        m.d.comb += [seq.decide.eq(1), row_q.took.eq(took_a),
                                     col_q.took.eq(took_b), take_b.eq(took_b),
                                     commit.eq(took_a | took_b),
                                     accepted_event.eq(took_a | took_b)]
                        m.d.sync += pending_from(1, 0, 1, Mux(took_b, col_q.tag, row_q.tag))
                        m.d.sync += pending_valid.eq(took_a | took_b)
                with m.If(raw_p_now):
                    m.d.comb += [self.cmd.ready.eq(1), commit.eq(legal_a),
                                 accepted_event.eq(legal_a), rejected_event.eq(~legal_a)]
                    m.d.sync += pending_from(legal_a, rule_a_r, 0)
                m.d.sync += [pending_unit.eq(self._unit_of(sel_bank)),
                             pending_bank.eq(sel_bank[:bank_index_bits])]
            with m.State("P_WAIT"):
                m.next = "P_STATUS"     # a register read comes back from the unit
            with m.State("P_STATUS"):
                m.d.comb += [status_fifo.w_en.eq(pending_valid), status_in.eq(pending)]
                with m.Switch(pending_unit):
                    for u, unit in enumerate(unit_list):
                        with m.Case(u):
                            m.d.comb += status_in.read_data.eq(
                                Mux(pending.has_read, unit.reg_rdata, 0))
                m.next = "N"
            with m.State("N"):
                with m.If(status_fifo.w_rdy):
                    with m.If(head_late | (head_now & ~head_is_n)):
                        # a second command of a port in one cycle, or out of order
                        m.d.comb += [self.cmd.ready.eq(1), reject_port.eq(1),
                                     rejected_event.eq(1)]
                    with m.Elif(head_now):
                        m.next = "N_COMMIT"
                    with m.Elif(head_later | (~self.cmd.valid & free_running)):
                        m.d.sync += pending_valid.eq(0)
                        m.next = "N_STATUS"
            with m.State("N_COMMIT"):
                m.d.comb += [n_decision.eq(1), self.cmd.ready.eq(1),
                             commit.eq(legal_a), accepted_event.eq(legal_a),
                             rejected_event.eq(~legal_a)]
                m.d.sync += pending_from(legal_a, rule_a_r, 0)
                m.d.sync += pending_bank.eq(head.bank[:bank_index_bits])
                m.next = "N_STATUS"
            with m.State("N_STATUS"):
                m.d.comb += [status_fifo.w_en.eq(pending_valid), status_in.eq(pending),
                             end_slot.eq(1)]
                with m.Switch(pending_bank):
                    for b in range(banks):
                        with m.Case(b):
                            m.d.comb += status_in.read_data.eq(
                                Mux(pending.has_read, bank_read[b].data, 0))
                m.next = "P"

        with m.If(reject_port):
            m.d.comb += [
                status_in.cycle.eq(head.cycle), status_in.code.eq(head.code),
                status_in.bank.eq(head.bank), status_in.row.eq(head.row),
                status_in.column.eq(head.column), status_in.rule.eq(RULE_ID["port"]),
                status_fifo.w_en.eq(1),
            ]

        # ------------------------------------------------------------------ commit
        dec_s = decode(sel_code, sel_bank, sel_row, sel_col)
        code = sel_code
        buffers = [(b, k) for b in range(banks) for k in range(kinds)]
        with m.If(commit):
            with m.If(_is(code, RD, WR, WRREG, RDREG, RDRC) | ((code == WRAB) & (mode == AB))):
                m.d.sync += bus.eq(t["tBL"])
            with m.If(_is(code, ACT, ACTAB)):
                for b, k in buffers:
                    with m.If(targeted(dec_s, b, k)):
                        m.d.sync += [open_valid[b][k].eq(1), open_row[b][k].eq(sel_row),
                                     per_buffer["rc"][b][k].eq(t["tRC"]),
                                     per_buffer["ras"][b][k].eq(t["tRAS"]),
                                     per_buffer["rcd"][b][k].eq(t["tRCD"])]
                m.d.sync += [faw[0].eq(t["tFAW"]), faw[1].eq(faw[0]), faw[2].eq(faw[1]),
                             faw[3].eq(faw[2]), act_any.eq(t["tRRD_S"]), any_act.eq(t["tRC"])]
                for g in range(groups):
                    with m.If(dec_s["groups"][g]):
                        m.d.sync += act_group[g].eq(t["tRRD_L"])
            with m.If(_is(code, PRE, PREA, PREAB)):
                closes = []
                for b, k in buffers:
                    live = targeted(dec_s, b, k) & open_valid[b][k]
                    closes.append(live)
                    with m.If(live):
                        m.d.sync += [open_valid[b][k].eq(0), per_buffer["rp"][b][k].eq(t["tRP"])]
                with m.If(any_of(closes)):
                    m.d.sync += any_pre.eq(t["tRP"])
            with m.If(_is(code, RD, WR, RDAB, WRAB)):
                reads = _is(code, RD, RDAB)
                for b, k in buffers:
                    with m.If(targeted(dec_s, b, k)):
                        with m.If(reads):
                            m.d.sync += per_buffer["rtp"][b][k].eq(t["tRTP"])
                        with m.Else():
                            m.d.sync += per_buffer["wr"][b][k].eq(write_recovery)
                for p in range(paths):
                    with m.If(dec_s["path"] == p):
                        m.d.sync += col_any[p].eq(t["tCCD_S"])
                        for g in range(groups):
                            with m.If(dec_s["groups"][g]):
                                m.d.sync += col_group[p][g].eq(t["tCCD_L"])
                with m.If(_is(code, RDAB, WRAB)):
                    m.d.sync += ab_col.eq(t["tCCD_L"])
            with m.If(code == REF):
                m.d.sync += [ref.eq(t["tRFC"]), due.eq(Mux(due != 0, due - 1, 0))]
                m.d.comb += refresh_event.eq(1)
            with m.If(code == MODE):
                m.d.sync += mode.eq(sel_row[:2])

        # ------------------------------------------------------------------ value effects
        is_trigger = commit & p_decision & _is(code, RDAB, WRAB) & (mode == AB_PIM)
        broadcast = commit & p_decision & (code == WRAB) & (mode == AB)
        m.d.comb += trigger_event.eq(is_trigger)
        parity = Signal()
        m.d.comb += parity.eq(sel_bank == 2)      # ODD set
        trig_parity = Signal()
        m.d.sync += trig_parity.eq(parity)
        for b in range(banks):
            read, write = bank_read[b], bank_write[b]
            ab_row = open_row[b][ab_kind]
            n_row = open_row[b][0]
            in_set = dec_s["mask"][b]
            with m.If(p_decision):
                m.d.comb += read.addr.eq(Cat(sel_col[:col_bits], ab_row))
            with m.Else():
                m.d.comb += read.addr.eq(Cat(sel_col[:col_bits], n_row))
            with m.If(broadcast & in_set):
                m.d.comb += [write.addr.eq(read.addr), write.data.eq(sel_data),
                             write.en.eq(1)]
            with m.Elif(commit & n_decision & (code == WR) & (sel_bank == b)):
                m.d.comb += [write.addr.eq(read.addr), write.data.eq(sel_data),
                             write.en.eq(1)]
        # a unit's BANK ← GRF_A write lands one clock after its trigger
        for u, unit in enumerate(unit_list):
            unit_banks = (2 * u, 2 * u + 1) if pair else (u,)
            if pair:
                fires = is_trigger
                row_now = Mux(parity, open_row[2 * u + 1][ab_kind], open_row[2 * u][ab_kind])
                flat = Cat(sel_col[:col_bits], parity, row_now)
            else:
                fires = is_trigger & dec_s["mask"][u]
                row_now = open_row[u][ab_kind]
                flat = Cat(sel_col[:col_bits], row_now)
            reg_cmd = commit & p_decision & _is(code, WRREG, RDREG, RDRC)
            addressed = Signal(name=f"addressed_{u}")
            m.d.comb += addressed.eq(self._unit_of(sel_bank) == u)
            # the units take their commands one clock after the commit (off its fan-out)
            m.d.sync += [
                unit.fire.eq(fires),
                unit.flat.eq(flat[:FLAT_BITS]),
                unit.acc_offset.eq(sel_row[:5]),
                unit.reset_program.eq(commit & p_decision & (code == MODE)
                                      & (sel_row == AB_PIM) & (mode != AB_PIM)),
                unit.reg_write.eq(reg_cmd & (code == WRREG) & ((mode != SB) | addressed)),
                unit.reg_read.eq(reg_cmd & (code != WRREG) & addressed),
                unit.reg_clear.eq(reg_cmd & (code == RDRC) & addressed),
                unit.reg_file.eq(sel_row[5:7]),
                unit.reg_index.eq(sel_row[:5]),
                unit.reg_piece.eq(sel_col[:4]),
                unit.reg_data.eq(sel_data),
            ]
            fired_bank = Signal(name=f"fired_bank_{u}")
            if pair:
                m.d.sync += unit.bank_data.eq(Mux(trig_parity, bank_read[2 * u + 1].data,
                                                  bank_read[2 * u].data))
                m.d.sync += fired_bank.eq(trig_parity)
            else:
                m.d.sync += unit.bank_data.eq(bank_read[u].data)
            # the bank address of the trigger, held for the unit's write two clocks later
            held_addr = Signal(row_bits + col_bits, name=f"held_addr_{u}")
            with m.If(fires):
                m.d.sync += held_addr.eq(Cat(sel_col[:col_bits], row_now))
            for index, b in enumerate(unit_banks):
                with m.If(unit.bank_we & ((fired_bank == index) if pair else 1)):
                    m.d.comb += [bank_write[b].addr.eq(held_addr),
                                 bank_write[b].data.eq(unit.bank_wdata),
                                 bank_write[b].en.eq(1)]

        # ------------------------------------------------------------------ slot end
        slot_ends = Signal()
        m.d.comb += slot_ends.eq(end_slot | idle_end)
        with m.If(slot_ends):
            for counter in counters:
                with m.If(counter != 0):
                    m.d.sync += counter.eq(counter - 1)
            m.d.sync += now.eq(now + 1)
            with m.If(refi == 0):
                m.d.sync += refi.eq(t["tREFI"] - 1)
                with m.If(due == REFRESH_POSTPONE):
                    m.d.comb += overdue_event.eq(1)
                with m.Else():
                    m.d.sync += due.eq(due + 1)
            with m.Else():
                m.d.sync += refi.eq(refi - 1)

        # ------------------------------------------------------------------ counters
        cnt = self.counters
        started = Signal()
        with m.If(self.cmd.valid | seq_active | seq_loading):
            m.d.sync += started.eq(1)
        illegal = Signal(range(units + 1))
        m.d.comb += illegal.eq(sum(unit.illegal for unit in unit_list))
        with m.If(started):
            m.d.sync += cnt.cycles.eq(cnt.cycles + 1)
        waiting_out = self.status.valid & ~self.status.ready & ~status_fifo.w_rdy
        with m.If(waiting_out):
            m.d.sync += [cnt.stall_out_cycles.eq(cnt.stall_out_cycles + 1),
                         cnt.stall_cycles.eq(cnt.stall_cycles + 1)]
        with m.Elif(started & ((~self.cmd.valid & ~free_running) | seq_loading)):
            m.d.sync += [cnt.stall_in_cycles.eq(cnt.stall_in_cycles + 1),
                         cnt.stall_cycles.eq(cnt.stall_cycles + 1)]
        with m.If(p_decision | n_decision):
            m.d.sync += cnt.busy_cycles.eq(cnt.busy_cycles + 1)
        m.d.comb += cnt.dram_cycles.eq(now)
        events = {"accepted": accepted_event, "rejected": rejected_event,
                  "triggers": trigger_event, "refreshes": refresh_event,
                  "refresh_overdue": overdue_event}
        for name, event in events.items():
            counter = getattr(cnt, name)
            with m.If(event):
                m.d.sync += counter.eq(counter + 1)
        m.d.sync += cnt.illegal_instructions.eq(cnt.illegal_instructions + illegal)
        with m.If(rejected_event):
            m.d.sync += self.violation.eq(1)
        if self.with_sequencer and hasattr(seq, "desc_error"):
            m.d.comb += cnt.desc_error.eq(seq.desc_error)
        return m

    def _unit_of(self, bank):
        """The unit that a register command's bank field names."""
        return bank >> 1 if self.config.unit == "pair" else bank

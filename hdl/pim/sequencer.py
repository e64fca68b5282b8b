"""The GEMV sequencer of the PIM channel (docs/pim.md, "GEMV mapping" and "GEMV command
schedule"): from a descriptor and x it offers, on port P, exactly the command stream of golden
``schedule_gemv`` when the channel takes its row candidate if legal, else its column candidate
if legal, once per DRAM cycle.

* **x buffer.** The x lane words arrive item-major (item b, lane step t) and go into one memory
  of column-wide rows (lane word ``w = b·T + t`` at row ``w div L``, lane ``w mod L``). A ring
  block (golden ``_ring_data``) needs, in lane m, lane word ``(p + m) mod T`` of its item, where
  ``p`` is the block's first stream step modulo T: it is read as two runs (steps ``p … T−1``
  and ``0 …``), each two rows wide, funnel-shifted and merged, then lane m takes lane
  ``m mod T`` of that (the identity unless T < L) and lanes outside the stream are zeroed.
  ``p`` follows the blocks incrementally (``+ L mod T``), as every item walks the same blocks.
* **Row queue** (ACTAB / PREAB / REF): a state machine that generates its head as it goes; the
  refresh decision is ``refresh_due`` in the decision clock that takes a PREAB. It starts for a
  pass when the pass's ``MODE AB`` issues (the "ab" token).
* **Column queue**: statically ordered, so a generator (counters, one entry per clock, two for
  ring blocks) runs ahead into a small FIFO whose head is the candidate. Read-backs wait in a
  FIFO of *groups* (item, accumulator set, tile; one group = units × G × pieces RDRCs),
  expanded by counters as they are emitted; a flag per (item, set) answers "does the FIFO hold
  an entry of this item and set".
* **Tokens.** ACTABs and the sweeps' last triggers issue in sweep order, so the tokens
  ("act", k) and ("trig", k) are two counters: a trigger of sweep k is valid once more than
  k ACTABs have issued in the pass, a PREAB of sweep k once more than k sweeps' last triggers
  have.

Candidates are registered (one clock after the queue state they show); their ``valid`` also
needs ``now ≥ start``. ``loading`` covers x coming in and the set-up (a few clocks: the lane
indices ``m mod T``) until the first column entry is ready; the channel holds DRAM time meanwhile.
"""
from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import PimConfig
from .interface import CYCLE_BITS, FIELD_BITS, candidate_signature, tag_layout
from .isa import (
    AB,
    AB_PIM,
    ACTAB,
    ALL,
    EVEN,
    F_CRF,
    F_GRF_A,
    F_GRF_B,
    MODE,
    ODD,
    OP_JUMP,
    OP_MAC,
    PREAB,
    RDAB,
    RDRC,
    REF,
    T_BANK,
    T_GRF_A,
    T_GRF_B,
    WRREG,
)

__all__ = ["GemvSequencer", "check_gemv_fits", "gemv_descriptor", "gemv_layout"]

#: Column entries the generator may run ahead of the candidate.
_COLUMN_LOOKAHEAD = 8
#: Items of a batch that the read-back tag can name.
_MAX_BATCH = 1 << 8


def _span(config: PimConfig) -> int:
    """Rows of one sweep in the flat address space: 1 (per-bank units) or 2 (pair units)."""
    return 1 if config.unit == "bank" else 2


def gemv_layout(config: PimConfig) -> data.StructLayout:
    """The GEMV descriptor: the fields of golden ``GemvPlan.descriptor()`` the sequencer uses,
    the first DRAM cycle at which it may offer a command (``start``) and the ``traffic`` flag
    (latched and shown on the ``traffic`` output)."""
    span = _span(config)
    return data.StructLayout({
        "batch": unsigned((_MAX_BATCH).bit_length()),
        "items": unsigned(5),
        "G": unsigned(4),
        "X": unsigned(4),
        "T": unsigned(config.x_words.bit_length()),
        "tiles": unsigned(16),
        "base_row": unsigned(max(1, (config.rows - 1).bit_length())),
        "sweeps": unsigned((config.rows * span).bit_length()),
        "stream": unsigned((config.rows * span * config.columns).bit_length()),
        "double": unsigned(1),
        "start": unsigned(CYCLE_BITS),
        "traffic": unsigned(1),
    })


def _descriptor_values(plan: Any, start: int, traffic: bool) -> dict[str, int]:
    d = plan.descriptor()
    values = {name: int(d[name]) for name in ("batch", "items", "G", "X", "T", "tiles",
                                               "base_row", "sweeps", "stream", "double")}
    values["start"] = int(start)
    values["traffic"] = int(bool(traffic))
    return values


def check_gemv_fits(plan: Any, start: int = 0) -> None:
    """ValueError (naming the parameter) if the sequencer built for ``plan.config`` cannot run
    ``plan`` (a golden ``GemvPlan``): x larger than the x buffer (``x_words``), a batch beyond
    the read-back tag, or a descriptor field wider than its field."""
    c = plan.config
    if c.arithmetic != "int8":
        raise ValueError(f"pim: arithmetic={c.arithmetic!r} is not built by the GEMV sequencer; "
                         f"expected 'int8'")
    words = plan.batch * plan.T
    if words > c.x_words:
        raise ValueError(f"pim: x_words={c.x_words} is too small for this GEMV: x needs batch × "
                         f"ceil(in/k) = {plan.batch} × {plan.T} = {words} lane words")
    if plan.batch > _MAX_BATCH:
        raise ValueError(f"pim: batch={plan.batch} is not allowed by the GEMV sequencer; "
                         f"expected at most {_MAX_BATCH} (the read-back tag's item field)")
    members = gemv_layout(c).members
    for name, value in _descriptor_values(plan, start, False).items():
        width = Shape.cast(members[name]).width
        if not 0 <= value < 1 << width:
            raise ValueError(f"pim: GEMV descriptor field {name}={value} does not fit its "
                             f"{width} bits")


def gemv_descriptor(plan: Any, start: int, traffic: bool = False) -> dict[str, int]:
    """The descriptor payload (field → value, see :func:`gemv_layout`) of golden ``plan``,
    offered from DRAM cycle ``start``."""
    check_gemv_fits(plan, start)
    return _descriptor_values(plan, start, traffic)


def _column_entry_layout(config: PimConfig, sweep_shape) -> data.StructLayout:
    """A column-queue entry: the command fields, the read-back tag and its dependency: a
    trigger needs sweep ``sweep``'s ACTAB (``needs_act``); ``sets_trig`` marks a sweep's last
    trigger; ``sets_ab`` marks the pass's ``MODE AB`` (which also needs the previous pass's row
    queue to be done)."""
    return data.StructLayout({
        "code": unsigned(FIELD_BITS["code"]),
        "bank": unsigned(FIELD_BITS["bank"]),
        "row": unsigned(FIELD_BITS["row"]),
        "column": unsigned(FIELD_BITS["column"]),
        "data": unsigned(config.column_bits),
        "tag": tag_layout(config),
        "sweep": sweep_shape,
        "needs_act": unsigned(1),
        "sets_trig": unsigned(1),
        "sets_ab": unsigned(1),
    })


# row queue states
_R_IDLE, _R_ACT_FIRST, _R_PRE, _R_PRE_MORE, _R_REF, _R_ACT_REFRESH, _R_ACT_NEXT = range(7)


class GemvSequencer(wiring.Component):
    """The hardware GEMV sequencer (see the module docstring).

    ``desc`` takes a descriptor (:func:`gemv_layout`) when neither ``loading`` nor ``active``;
    ``x`` then takes ``batch × T`` lane words, item-major. ``row_q`` / ``col_q`` are the heads of
    the row and column queues (``hdl.pim.interface.candidate_signature``), valid once their
    dependency has issued and ``now ≥ start``; a queue advances on its ``took``, and the
    refresh decision samples ``refresh_due`` with the ``took`` of a PREAB. Candidates settle two
    clocks after a ``took`` and the column generator makes about one entry per clock (two for
    a ring block) ahead of them, so decision clocks at least four clocks apart always find
    them ready (``decide`` itself is not needed). ``active`` falls once the last command of
    the last pass has been taken."""

    def __init__(self, config: PimConfig):
        if config.arithmetic != "int8":
            self._MustUse__silence = True       # refused: nothing to elaborate
            raise ValueError(f"pim: arithmetic={config.arithmetic!r} is not built by the GEMV "
                             f"sequencer; expected 'int8'")
        self._config = config
        super().__init__({
            "desc": In(stream.Signature(gemv_layout(config))),
            "x": In(stream.Signature(unsigned(config.lane_bits))),
            "row_q": Out(candidate_signature(config)),
            "col_q": Out(candidate_signature(config)),
            "decide": In(1),
            "now": In(CYCLE_BITS),
            "refresh_due": In(1),
            "loading": Out(1),
            "active": Out(1),
            "traffic": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        C, L, U = cfg.columns, cfg.lanes, cfg.units
        LB, CB = cfg.lane_bits, cfg.column_bits
        lg_c, lg_l = C.bit_length() - 1, L.bit_length() - 1
        span = _span(cfg)
        lg_span = span - 1
        pieces = cfg.acc_pieces
        t = cfg.timing_values
        spacing = max(1, -(-t["tBL"] // t["tCCD_L"]))
        layout = gemv_layout(cfg)
        max_sweeps = cfg.rows * span
        flat_bits = (max_sweeps * C).bit_length() + 1
        x_rows = -(-cfg.x_words // L) + 1
        x_bits = (2 * cfg.x_words + 2 * L).bit_length() + 1     # x addresses, with slack
        sweep_shape = unsigned(max_sweeps.bit_length())
        entry_layout = _column_entry_layout(cfg, sweep_shape)

        m = Module()

        # ------------------------------------------------------------------ job
        job = Signal(layout)
        loading, running = Signal(), Signal()
        m.d.comb += [self.loading.eq(loading), self.active.eq(running),
                     self.traffic.eq(job.traffic), self.desc.ready.eq(~loading & ~running)]
        accept = self.desc.valid & self.desc.ready

        # derived values (constant during a run; registered)
        lg_g_c = Cat(job.G[1] | job.G[3], job.G[2] | job.G[3])
        f_base_c = job.base_row << (lg_c + lg_span)
        d_c = f_base_c >> lg_g_c                       # F_base / G
        lg_g, lg_x = Signal(2), Signal(2)
        bg = Signal(8)                                 # B·G: the second accumulator set
        f_base = Signal(flat_bits)
        lg_bl = Signal(range(lg_l + 4))                # log2 of a ring block (G·L addresses)
        bl_mask = Signal(flat_bits)
        first_block, end_block = Signal(flat_bits), Signal(flat_bits)
        ring0_count = Signal(range(9))
        d_reg = Signal(flat_bits)
        n_steps = Signal(len(job.stream))              # tiles·T stream steps
        tg = Signal(len(job.T) + 3)                    # T·G positions per tile
        n_open = Signal(2)
        m.d.sync += [
            lg_g.eq(lg_g_c),
            lg_x.eq(Cat(job.X[1] | job.X[3], job.X[2] | job.X[3])),
            bg.eq(job.items << lg_g_c),
            f_base.eq(f_base_c),
            lg_bl.eq(lg_g_c + lg_l),
            bl_mask.eq((1 << (lg_g_c + lg_l)) - 1),
            first_block.eq(f_base_c >> (lg_g_c + lg_l)),
            end_block.eq((f_base_c + (job.sweeps << lg_c) + (1 << (lg_g_c + lg_l)) - 1)
                         >> (lg_g_c + lg_l)),
            d_reg.eq(d_c),
            n_steps.eq(job.stream >> lg_g_c),
            tg.eq(job.T << lg_g_c),
            n_open.eq(Mux(job.sweeps < span, job.sweeps, span)),
        ]
        m.d.sync += ring0_count.eq(Mux(end_block - first_block < job.X,
                                       end_block - first_block, job.X))

        # ------------------------------------------------------------------ set-up
        # lane m of a ring block takes lane (m mod T) of the merged runs; r_mod = (d mod L) mod T
        # gives the first block's step p0 = (−(d mod L)) mod T; l_mod = L mod T advances p.
        setup_m = Signal(range(L + 1))
        setup_c = Signal(range(L + 1))
        setup_done = Signal()
        lane_base = [Signal(range(L), name=f"lane_base{i}") for i in range(L)]
        r_mod = Signal(range(L))
        l_mod = Signal(range(L + 1))
        p_first = Signal(len(job.T))
        with m.If(loading & ~setup_done):
            for i in range(L):
                with m.If(setup_m == i):
                    m.d.sync += lane_base[i].eq(setup_c)
            with m.If(setup_m == (d_c & (L - 1))):
                m.d.sync += r_mod.eq(setup_c)
            with m.If(setup_m == L):
                m.d.sync += [l_mod.eq(setup_c), setup_done.eq(1)]
            m.d.sync += [setup_c.eq(Mux(setup_c + 1 == job.T, 0, setup_c + 1)),
                         setup_m.eq(setup_m + 1)]
        m.d.sync += p_first.eq(Mux(r_mod == 0, 0, job.T - r_mod))

        # ------------------------------------------------------------------ x buffer
        m.submodules.x_buffer = x_buffer = Memory(shape=unsigned(CB), depth=x_rows, init=[])
        x_write = x_buffer.write_port(granularity=LB) if L > 1 else x_buffer.write_port()
        x_word = Signal(x_bits)
        x_step = Signal(len(job.T))
        x_item = Signal(len(job.batch))
        x_done = Signal()
        x_take = self.x.valid & self.x.ready
        m.d.comb += [
            self.x.ready.eq(loading & ~x_done),
            x_write.addr.eq(x_word >> lg_l),
            x_write.data.eq(self.x.payload.replicate(L)),
        ]
        if L > 1:
            m.d.comb += x_write.en.eq(Mux(x_take, Const(1, L) << x_word[:lg_l], 0))
        else:
            m.d.comb += x_write.en.eq(x_take)
        with m.If(x_take):
            m.d.sync += x_word.eq(x_word + 1)
            with m.If(x_step + 1 == job.T):
                m.d.sync += [x_step.eq(0), x_item.eq(x_item + 1)]
                with m.If(x_item + 1 == job.batch):
                    m.d.sync += x_done.eq(1)
            with m.Else():
                m.d.sync += x_step.eq(x_step + 1)
        with m.If(accept):
            m.d.sync += [job.eq(self.desc.payload), loading.eq(1), x_word.eq(0),
                         x_step.eq(0), x_item.eq(0), x_done.eq(0), setup_m.eq(0),
                         setup_c.eq(0), setup_done.eq(0)]
        x_read = [x_buffer.read_port(), x_buffer.read_port()]

        # ------------------------------------------------------------------ tokens
        acts_done = Signal(sweep_shape)     # ACTABs issued in this pass (token ("act", k))
        trigs_done = Signal(sweep_shape)    # sweeps whose last trigger issued ("trig", k)
        col_took = self.col_q.took
        row_took = self.row_q.took

        # ------------------------------------------------------------------ column queue
        m.submodules.col_fifo = col_fifo = fifo.SyncFIFOBuffered(width=entry_layout.size,
                                                                 depth=_COLUMN_LOOKAHEAD)
        col_head = entry_layout(col_fifo.r_data)
        m.d.comb += col_fifo.r_en.eq(col_took)

        stage_layout = data.StructLayout({
            "entry": entry_layout,
            "ring": unsigned(1),
            "shift_a": unsigned(max(1, lg_l)),
            "shift_b": unsigned(max(1, lg_l)),
            "first_run": Shape.cast(range(L + 1)),   # lanes taken from the first run
            "lo": Shape.cast(range(L + 1)),          # lanes [lo, hi) lie inside the stream
            "hi": Shape.cast(range(L + 1)),
        })
        gen = Signal(stage_layout)          # what the generator emits this clock
        push = Signal()
        s1, s1_valid = Signal(stage_layout), Signal()
        s1_rows = Signal(2 * CB)            # the first run's two rows
        s2, s2_valid = Signal(stage_layout), Signal()
        s2_merged = Signal(CB)
        credit = Signal()
        m.d.comb += credit.eq(col_fifo.level + s1_valid + s2_valid + 2 <= _COLUMN_LOOKAHEAD)

        # pending read-backs: a FIFO of groups (item, set, tile) and a flag per (item, set)
        group_layout = data.StructLayout({"item": unsigned(4), "set": unsigned(1),
                                          "tile": unsigned(16)})
        m.submodules.readback_fifo = readback_fifo = fifo.SyncFIFO(width=group_layout.size,
                                                                   depth=cfg.grf)
        group_head = group_layout(readback_fifo.r_data)
        group_in = Signal(group_layout)
        m.d.comb += readback_fifo.w_data.eq(group_in)
        pending_flags = Signal(32)
        flags_set, flags_clear = Signal(32), Signal(32)
        m.d.sync += pending_flags.eq((pending_flags | flags_set) & ~flags_clear)
        rb_unit = Signal(range(max(U, 2)))
        rb_group = Signal(3)
        rb_piece = Signal(range(max(pieces, 2)))
        emit_readback = Signal()
        readback_ready = Signal()
        m.d.comb += readback_ready.eq(credit & readback_fifo.r_rdy)

        # generator registers
        pass_first = Signal(8)
        pass_items = Signal(5)
        pass_base = Signal(x_bits)
        next_base = Signal(x_bits)
        slot = Signal(range(cfg.crf + 2))
        zero_set = Signal()
        zero_reg = Signal(8)
        zero_piece = Signal(range(max(pieces, 2)))
        item = Signal(4)
        block = Signal(range(9))
        item_base = Signal(x_bits)
        ring_p = Signal(len(job.T))
        ring_half = Signal()
        sweep = Signal(sweep_shape)
        col = Signal(range(C))
        sweep_flat = Signal(flat_bits)
        sweep_tile, tile = Signal(16), Signal(16)
        sweep_pos, pos = Signal(len(tg)), Signal(len(tg))
        sweep_p = Signal(len(job.T))
        trig_count = Signal(range(spacing + 1))

        # ring block being emitted: its index and GRF_A register
        ring_block = Signal(flat_bits)
        ring_reg = Signal(8)

        flat = sweep_flat | col
        acc_set = job.double & tile[0]
        tile_end = (tile < job.tiles) & (pos + 1 == tg)
        pending_hit = pending_flags.bit_select(Cat(acc_set, item), 1)
        boundary = (flat & bl_mask) == bl_mask
        refill_block = (flat >> lg_bl) + job.X
        refill = boundary & (refill_block < end_block)
        p_step = ring_p + l_mod
        p_next = Mux(p_step >= job.T, p_step - job.T, p_step)
        pos_step = Mux(pos + 1 == tg, 0, pos + 1)
        tile_step = Mux((tile != job.tiles) & (pos + 1 == tg), tile + 1, tile)
        p_at_next = Mux(boundary, p_next, ring_p)

        def sweep_set(k):
            return Const(ALL, 5) if cfg.unit == "bank" else Mux(k[0], ODD, EVEN)

        def emit(**fields):
            """Push an entry (command fields, or ring parameters) into the pipeline now."""
            m.d.comb += push.eq(1)
            for name, value in fields.items():
                target = gen.entry if name in entry_layout.members else gen
                m.d.comb += getattr(target, name).eq(value)

        # ring read: two runs of x (steps p … and 0 …), each two rows wide
        run_a = Signal(signed(x_bits + 1))
        run_b = Signal(signed(x_bits + 1))
        m.d.comb += [run_a.eq(item_base + ring_p), run_b.eq(item_base + ring_p - job.T)]
        run = Mux(ring_half, run_b, run_a)
        run_row = Signal(signed(x_bits + 1))
        m.d.comb += run_row.eq(run >> lg_l)
        for i, port in enumerate(x_read):
            row = run_row + i
            m.d.comb += port.addr.eq(Mux((row < 0) | (row >= x_rows), 0, row))
        block_step = Signal(signed(flat_bits + lg_l + 2))
        m.d.comb += block_step.eq((ring_block << lg_l) - d_reg)    # stream step of lane 0
        lo = Mux(block_step >= 0, 0, Mux(-block_step >= L, L, -block_step))
        room = Signal(signed(flat_bits + lg_l + 3))
        m.d.comb += room.eq(n_steps - block_step)
        hi = Mux(room <= 0, 0, Mux(room >= L, L, room))
        first_run = Mux(job.T - ring_p >= L, L, job.T - ring_p)

        def ring_entry(after):
            """Emit the ring block (two clocks: the first run's rows are read, then the
            second's), then run ``after``."""
            with m.If(~ring_half):
                with m.If(credit):
                    m.d.sync += ring_half.eq(1)
            with m.Else():
                m.d.sync += ring_half.eq(0)
                emit(code=WRREG, row=(F_GRF_A << 5) | ring_reg, ring=1,
                     shift_a=run_a[:max(1, lg_l)] if lg_l else 0,
                     shift_b=run_b[:max(1, lg_l)] if lg_l else 0,
                     first_run=first_run, lo=lo, hi=hi)
                after()

        def advance_position():
            """Next (sweep, item, column) of the main phase."""
            with m.If(col != C - 1):
                m.d.sync += [col.eq(col + 1), tile.eq(tile_step), pos.eq(pos_step),
                             ring_p.eq(p_at_next)]
                m.next = "TRIGGER"
            with m.Elif(item + 1 != pass_items):
                m.d.sync += [col.eq(0), item.eq(item + 1), item_base.eq(item_base + job.T),
                             tile.eq(sweep_tile), pos.eq(sweep_pos), ring_p.eq(sweep_p)]
                m.next = "TRIGGER"
            with m.Elif(sweep + 1 != job.sweeps):
                m.d.sync += [col.eq(0), item.eq(0), item_base.eq(pass_base),
                             sweep.eq(sweep + 1), sweep_flat.eq(sweep_flat + C),
                             tile.eq(tile_step), pos.eq(pos_step), ring_p.eq(p_at_next),
                             sweep_tile.eq(tile_step), sweep_pos.eq(pos_step),
                             sweep_p.eq(p_at_next)]
                m.next = "TRIGGER"
            with m.Else():
                m.next = "FLUSH_END"

        def ring_or_advance():
            with m.If(refill):
                m.d.comb += [ring_block.eq(refill_block),
                             ring_reg.eq((item << lg_x) | (refill_block & (job.X - 1)))]
                ring_entry(advance_position)
                with m.If(~ring_half):
                    m.next = "REFILL"
            with m.Else():
                advance_position()

        with m.FSM(name="generator") as generator:
            with m.State("IDLE"):
                with m.If(loading & x_done & setup_done):
                    m.d.sync += [pass_first.eq(0), pass_base.eq(0)]
                    m.next = "MODE_AB"
            with m.State("MODE_AB"):
                with m.If(credit):
                    emit(code=MODE, row=AB, sets_ab=1)
                    remaining = job.batch - pass_first
                    m.d.sync += [pass_items.eq(Mux(remaining < job.items, remaining, job.items)),
                                 slot.eq(0), trig_count.eq(0)]
                    m.next = "PROGRAM"
            with m.State("PROGRAM"):
                # _crf_program: MAC_b; JUMP self, C (b < B−1); MAC_{B−1}; JUMP self, C−1;
                # MAC_{B−1}; JUMP 0, 0
                mac_item = Mux((slot >> 1) < pass_items, slot >> 1, pass_items - 1)
                mac = ((OP_MAC << 28) | (T_GRF_B << 26) | (T_BANK << 20) | (T_GRF_A << 14)
                       | (1 << 5)
                       | (((mac_item << lg_g)[:4]) << 22) | (((mac_item << lg_x)[:4]) << 10)
                       | (lg_g << 3) | (lg_x << 1))
                count = Mux(slot == 2 * pass_items - 1, C - 1, C)
                jump = (OP_JUMP << 28) | ((slot - 1)[:5] << 23) | (count << 7)
                word = Mux(slot == 2 * pass_items + 1, OP_JUMP << 28, Mux(slot[0], jump, mac))
                with m.If(credit):
                    emit(code=WRREG, row=(F_CRF << 5) | slot, data=word[:32])
                    m.d.sync += slot.eq(slot + 1)
                    with m.If(slot == 2 * pass_items + 1):
                        m.d.sync += [zero_set.eq(0), zero_reg.eq(0), zero_piece.eq(0)]
                        m.next = "ZERO"
            with m.State("ZERO"):
                with m.If(credit):
                    emit(code=WRREG, row=(F_GRF_B << 5) + Mux(zero_set, bg, 0) + zero_reg,
                         column=zero_piece)
                    m.d.sync += zero_piece.eq(zero_piece + 1)
                    with m.If(zero_piece == pieces - 1):
                        m.d.sync += [zero_piece.eq(0), zero_reg.eq(zero_reg + 1)]
                        with m.If(zero_reg + 1 == (pass_items << lg_g)):
                            m.d.sync += [zero_reg.eq(0), zero_set.eq(1)]
                            with m.If(zero_set | ~job.double):
                                m.d.sync += [item.eq(0), block.eq(0), item_base.eq(pass_base),
                                             ring_p.eq(p_first), ring_half.eq(0)]
                                m.next = "RING"
            with m.State("RING"):
                m.d.comb += [ring_block.eq(first_block + block),
                             ring_reg.eq((item << lg_x) | ((first_block + block) & (job.X - 1)))]

                def after_ring():
                    with m.If(block + 1 != ring0_count):
                        m.d.sync += [block.eq(block + 1), ring_p.eq(p_next)]
                    with m.Elif(item + 1 != pass_items):
                        m.d.sync += [block.eq(0), item.eq(item + 1),
                                     item_base.eq(item_base + job.T), ring_p.eq(p_first)]
                    with m.Else():
                        m.d.sync += [sweep_p.eq(p_next), next_base.eq(item_base + job.T)]
                        m.next = "MODE_AB_PIM"
                ring_entry(after_ring)
            with m.State("MODE_AB_PIM"):
                with m.If(credit):
                    emit(code=MODE, row=AB_PIM)
                    m.d.sync += [item.eq(0), col.eq(0), sweep.eq(0), sweep_flat.eq(f_base),
                                 sweep_tile.eq(0), sweep_pos.eq(0), tile.eq(0), pos.eq(0),
                                 ring_p.eq(sweep_p), item_base.eq(pass_base)]
                    m.next = "TRIGGER"
            with m.State("TRIGGER"):
                # 6.1 read back the set before it is reused; 6.2 the trigger
                with m.If(pending_hit):
                    m.d.comb += emit_readback.eq(1)
                with m.Elif(credit):
                    emit(code=RDAB, bank=sweep_set(sweep), row=Mux(acc_set, bg, 0), column=col,
                         sweep=sweep, needs_act=1,
                         sets_trig=(item + 1 == pass_items) & (col == C - 1))
                    m.d.sync += trig_count.eq(Mux(trig_count + 1 == spacing, 0, trig_count + 1))
                    with m.If(tile_end):
                        m.d.comb += [readback_fifo.w_en.eq(1), group_in.item.eq(item),
                                     group_in.set.eq(acc_set), group_in.tile.eq(tile),
                                     flags_set.eq(Const(1, 32) << Cat(acc_set, item))]
                    m.next = "READBACK"
            with m.State("READBACK"):
                # 6.3 a tile's read-back: all of it now with one set, else one entry every
                # `spacing` triggers while the next tile runs
                with m.If(tile_end & ~job.double & readback_fifo.r_rdy):
                    m.d.comb += emit_readback.eq(1)
                with m.Elif(~tile_end & readback_fifo.r_rdy & (trig_count == 0)):
                    m.d.comb += emit_readback.eq(1)
                    with m.If(readback_ready):
                        m.next = "REFILL"
                with m.Else():
                    ring_or_advance()
            with m.State("REFILL"):
                # 6.4 the ring refill, then the next position
                ring_or_advance()
            with m.State("FLUSH_END"):
                with m.If(readback_fifo.r_rdy):
                    m.d.comb += emit_readback.eq(1)
                with m.Elif(pass_first + pass_items < job.batch):
                    m.d.sync += [pass_first.eq(pass_first + pass_items), pass_base.eq(next_base)]
                    m.next = "MODE_AB"
                with m.Else():
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(~loading & ~running):
                    m.next = "IDLE"
        generator_done = generator.ongoing("DONE")

        # read-back emission: the head group's next RDRC
        rb_last = (rb_unit == U - 1) & (rb_group + 1 == job.G) & (rb_piece == pieces - 1)
        # the head group's last RDRC pops it. Driven unconditionally (a continuous assignment
        # in the Verilog): as a conditional comb process, Icarus left the FIFO's r_en X until
        # the first read-back, and a push meanwhile with one group queued was lost (the FIFO's
        # level update tests w_en & ~(r_rdy & r_en), which is X).
        rb_pop = Signal()
        m.d.comb += [rb_pop.eq(emit_readback & readback_ready & rb_last),
                     readback_fifo.r_en.eq(rb_pop),
                     flags_clear.eq(Mux(rb_pop, Const(1, 32) << Cat(group_head.set,
                                                                   group_head.item), 0))]
        with m.If(emit_readback & readback_ready):
            emit(code=RDRC, bank=rb_unit << lg_span,
                 row=(F_GRF_B << 5) + Mux(group_head.set, bg, 0)
                 + (group_head.item << lg_g) + rb_group,
                 column=rb_piece)
            m.d.comb += [gen.entry.tag.item.eq(pass_first + group_head.item),
                         gen.entry.tag.unit.eq(rb_unit), gen.entry.tag.tile.eq(group_head.tile),
                         gen.entry.tag.group.eq(rb_group), gen.entry.tag.piece.eq(rb_piece)]
            m.d.sync += rb_piece.eq(rb_piece + 1)
            with m.If(rb_piece == pieces - 1):
                m.d.sync += [rb_piece.eq(0), rb_group.eq(rb_group + 1)]
                with m.If(rb_group + 1 == job.G):
                    m.d.sync += [rb_group.eq(0), rb_unit.eq(rb_unit + 1)]
            with m.If(rb_last):
                m.d.sync += rb_unit.eq(0)

        # ring data pipeline: stage 1 funnel-shifts and merges the two runs, stage 2 maps lanes
        # (m mod T) and zeroes the lanes outside the stream; then the FIFO
        with m.If(push):
            m.d.sync += [s1.eq(gen), s1_rows.eq(Cat(x_read[0].data, x_read[1].data))]
        m.d.sync += s1_valid.eq(push)
        rows_b = Cat(x_read[0].data, x_read[1].data)
        run_first = s1_rows.bit_select(s1.shift_a * LB, CB) if L > 1 else s1_rows[:CB]
        run_second = rows_b.bit_select(s1.shift_b * LB, CB) if L > 1 else rows_b[:CB]
        merged = Cat(*(Mux(i < s1.first_run, run_first.word_select(i, LB),
                           run_second.word_select(i, LB)) for i in range(L)))
        m.d.sync += [s2.eq(s1), s2_valid.eq(s1_valid), s2_merged.eq(merged)]
        merged_lanes = Array(s2_merged.word_select(i, LB) for i in range(L))
        ring_data = Cat(*(Mux((s2.lo <= i) & (i < s2.hi), merged_lanes[lane_base[i]], 0)
                          for i in range(L)))
        entry_in = Signal(entry_layout)
        m.d.comb += [entry_in.eq(s2.entry),
                     col_fifo.w_data.eq(entry_in),
                     col_fifo.w_en.eq(s2_valid)]
        with m.If(s2.ring):
            m.d.comb += entry_in.data.eq(ring_data)

        # ------------------------------------------------------------------ row queue
        r_state = Signal(3)
        r_cur, r_k, r_opened, r_stop = (Signal(sweep_shape, name=n)
                                        for n in ("r_cur", "r_k", "r_opened", "r_stop"))
        with m.If(row_took):
            with m.Switch(r_state):
                with m.Case(_R_ACT_FIRST):
                    m.d.sync += [r_cur.eq(r_cur + 1), acts_done.eq(acts_done + 1)]
                    with m.If(r_cur + 1 == n_open):
                        m.d.sync += [r_state.eq(_R_PRE), r_cur.eq(0), r_k.eq(0),
                                     r_opened.eq(n_open)]
                with m.Case(_R_PRE):
                    with m.If(r_opened < job.sweeps):
                        with m.If(self.refresh_due):
                            with m.If(r_k + 1 < r_opened):
                                m.d.sync += [r_state.eq(_R_PRE_MORE), r_cur.eq(r_k + 1)]
                            with m.Else():
                                m.d.sync += r_state.eq(_R_REF)
                        with m.Else():
                            m.d.sync += [r_state.eq(_R_ACT_NEXT), r_cur.eq(r_opened)]
                    with m.Elif(r_k + 1 < job.sweeps):
                        m.d.sync += [r_k.eq(r_k + 1), r_cur.eq(r_k + 1)]
                    with m.Else():
                        m.d.sync += r_state.eq(_R_IDLE)
                with m.Case(_R_PRE_MORE):
                    with m.If(r_cur + 1 < r_opened):
                        m.d.sync += r_cur.eq(r_cur + 1)
                    with m.Else():
                        m.d.sync += r_state.eq(_R_REF)
                with m.Case(_R_REF):
                    stop = r_opened + span
                    m.d.sync += [r_state.eq(_R_ACT_REFRESH), r_cur.eq(r_opened),
                                 r_stop.eq(Mux(stop > job.sweeps, job.sweeps, stop))]
                with m.Case(_R_ACT_REFRESH):
                    m.d.sync += [r_cur.eq(r_cur + 1), acts_done.eq(acts_done + 1)]
                    with m.If(r_cur + 1 == r_stop):
                        m.d.sync += [r_state.eq(_R_PRE), r_k.eq(r_opened), r_cur.eq(r_opened),
                                     r_opened.eq(r_stop)]
                with m.Case(_R_ACT_NEXT):
                    m.d.sync += [r_state.eq(_R_PRE), acts_done.eq(acts_done + 1),
                                 r_opened.eq(r_opened + 1), r_k.eq(r_k + 1), r_cur.eq(r_k + 1)]
        with m.If(col_took & col_head.sets_ab):
            # a pass starts: its row queue, with the "ab" token issued
            m.d.sync += [r_state.eq(_R_ACT_FIRST), r_cur.eq(0), acts_done.eq(0),
                         trigs_done.eq(0)]
        with m.If(col_took & col_head.sets_trig):
            m.d.sync += trigs_done.eq(trigs_done + 1)

        # ------------------------------------------------------------------ candidates
        reached = self.now >= job.start
        is_act = (r_state == _R_ACT_FIRST) | (r_state == _R_ACT_REFRESH) | (r_state == _R_ACT_NEXT)
        is_pre = (r_state == _R_PRE) | (r_state == _R_PRE_MORE)
        row_valid = Signal()
        m.d.sync += [
            row_valid.eq((r_state != _R_IDLE) & (~is_pre | (trigs_done > r_cur))),
            self.row_q.code.eq(Mux(is_act, ACTAB, Mux(is_pre, PREAB, REF))),
            self.row_q.bank.eq(Mux(is_act | is_pre, sweep_set(r_cur), 0)),
            self.row_q.row.eq(Mux(is_act, job.base_row + (r_cur >> lg_span), 0)),
        ]
        m.d.comb += self.row_q.valid.eq(running & row_valid & reached)

        col_valid = Signal()
        m.d.sync += col_valid.eq(col_fifo.r_rdy
                                 & (~col_head.needs_act | (acts_done > col_head.sweep))
                                 & (~col_head.sets_ab | (r_state == _R_IDLE)))
        m.d.comb += [
            self.col_q.valid.eq(running & col_valid & reached),
            self.col_q.code.eq(col_head.code),
            self.col_q.bank.eq(col_head.bank),
            self.col_q.row.eq(col_head.row),
            self.col_q.column.eq(col_head.column),
            self.col_q.data.eq(col_head.data),
            self.col_q.tag.eq(col_head.tag),
        ]

        # ------------------------------------------------------------------ run
        with m.If(loading & setup_done & x_done & col_fifo.r_rdy):
            m.d.sync += [loading.eq(0), running.eq(1)]
        with m.If(running & (col_fifo.level == 0) & ~s1_valid & ~s2_valid & ~push
                  & (r_state == _R_IDLE) & generator_done):
            m.d.sync += running.eq(0)
        return m

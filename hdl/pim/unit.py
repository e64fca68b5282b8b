"""One PIM MAC unit (docs/pim.md, "Registers" and "ISA"): GRF_A, GRF_B, SRF and CRF as
memories, the program counter with its loop state, and the int8 lane datapath.

Timing, relative to the clock ``t`` in which the unit takes a command (one clock after the
channel's commit; the channel leaves at least four clocks between commands; ``bank_data``
arrives at ``t+1``):

* ``t``: a trigger (``fire``) reads its operands (addresses from the current instruction, the
  trigger's flat address and accumulator offset) and advances ``pc``; a register command
  writes (``WRREG``, the clear of ``RDRC``) or reads;
* ``t+1``: operands arrive; ``BANK ← GRF_A`` goes out to the bank (``bank_we``), GRF_A results
  (``MOV``, ``FILL``) are written, register reads come out (``reg_rdata``);
* ``t+2``: the lane dot products are formed and registered;
* ``t+3``: GRF_B results are written, so the next decision (``t+4`` or later) sees them.

After reset the unit zeroes its register files, one entry per clock (``clearing``).
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .config import PimConfig
from .isa import (
    F_CRF,
    F_GRF_A,
    F_GRF_B,
    F_SRF,
    OP_ADD,
    OP_EXIT,
    OP_FILL,
    OP_JUMP,
    OP_MAC,
    OP_MAD,
    OP_MOV,
    OP_MUL,
    OP_NOP,
    T_BANK,
    T_GRF_A,
    T_GRF_B,
    T_SRF,
)

__all__ = ["FLAT_BITS", "PimUnit"]

#: Low bits of a trigger's flat address that AAM can use (ag ≤ 3, lanes ≤ 32, ax ≤ 3).
FLAT_BITS = 12


def _field(word, low: int, bits: int):
    return word[low:low + bits]


class PimUnit(wiring.Component):
    """Registers and lane datapath of one unit; the channel decides, the unit executes."""

    def __init__(self, config: PimConfig):
        config.check_rtl()
        self.config = c = config
        self.grf_bits = max(1, (c.grf - 1).bit_length())
        super().__init__({
            # decision clock
            "fire": In(1),
            "flat": In(FLAT_BITS),
            "acc_offset": In(5),
            "reset_program": In(1),
            "reg_write": In(1),
            "reg_read": In(1),
            "reg_clear": In(1),
            "reg_file": In(2),
            "reg_index": In(5),
            "reg_piece": In(4),
            "reg_data": In(c.column_bits),
            # one clock after fire: the column at the trigger's bank address
            "bank_data": In(c.column_bits),
            "writes_bank": Out(1),
            "bank_we": Out(1),
            "bank_wdata": Out(c.column_bits),
            "reg_rdata": Out(c.column_bits),
            "illegal": Out(1),
            "clearing": Out(1),     # the register files are being zeroed after reset
        })

    def elaborate(self, platform):
        c = self.config
        m = Module()
        L, k = c.lanes, c.elems_per_lane
        lane_bits, col_bits = c.lane_bits, c.column_bits
        grf_mask, srf_mask = c.grf - 1, c.srf - 1
        log2_lanes = (L - 1).bit_length()
        words = c.words_per_column

        # ------------------------------------------------------------------ register files
        m.submodules.grf_a = grf_a = memory.Memory(shape=unsigned(col_bits), depth=c.grf,
                                                   init=[])
        m.submodules.grf_b = grf_b = memory.Memory(shape=unsigned(32 * L), depth=c.grf,
                                                   init=[])
        m.submodules.srf = srf = memory.Memory(shape=unsigned(lane_bits), depth=c.srf, init=[])
        m.submodules.crf = crf = memory.Memory(shape=unsigned(32), depth=c.crf, init=[])
        a_write = grf_a.write_port()
        a_p = grf_a.read_port()          # s0 vector (MAC/MUL/MAD, MOV, BANK ← GRF_A), reads
        a_q = grf_a.read_port()          # s1: vector or the lane-broadcast ring register
        b_write = grf_b.write_port(granularity=32)
        b_x = grf_b.read_port()          # accumulator / s2 / ADD s0 / MOV s0, register reads
        b_y = grf_b.read_port()          # ADD s1
        s_write = srf.write_port()
        s_read = srf.read_port()
        c_write = crf.write_port()
        c_cur = crf.read_port()          # CRF[pc]
        c_next = crf.read_port()         # CRF[pc + 1]
        c_reg = crf.read_port()          # register reads

        pc = Signal(6)       # a JUMP target may lie beyond the CRF (0 … 31): it halts the unit
        loop_active = Signal()
        loop_count = Signal(16)
        halted = Signal()
        m.d.comb += [
            c_cur.addr.eq(Mux(pc < c.crf, pc, 0)),
            c_next.addr.eq(Mux(pc + 1 < c.crf, pc + 1, 0)),
        ]
        cur, nxt = c_cur.data, c_next.data
        op = _field(cur, 28, 4)
        dst_t, dst_i = _field(cur, 26, 2), _field(cur, 22, 4)
        s0_t, s0_i = _field(cur, 20, 2), _field(cur, 16, 4)
        s1_t, s1_i = _field(cur, 14, 2), _field(cur, 10, 4)
        s2_i, aam = _field(cur, 6, 4), cur[5]
        ag, ax = _field(cur, 3, 2), _field(cur, 1, 2)
        pc_valid = pc < c.crf
        m.d.comb += self.writes_bank.eq(~halted & pc_valid & (op == OP_MOV) & (dst_t == T_BANK)
                                        & (s0_t == T_GRF_A))

        # ------------------------------------------------------------------ legality
        mul_like = (op == OP_MAC) | (op == OP_MUL) | (op == OP_MAD)
        legal_mul = mul_like & (dst_t == T_GRF_B) & ((s0_t == T_BANK) | (s0_t == T_GRF_A)) \
            & ((s1_t == T_GRF_A) | (s1_t == T_SRF))
        legal_add = (op == OP_ADD) & (dst_t == T_GRF_B) & (s0_t == T_GRF_B) & (s1_t == T_GRF_B)
        mov_a_a = (op == OP_MOV) & (dst_t == T_GRF_A) & (s0_t == T_GRF_A)
        mov_a_bank = (op == OP_MOV) & (dst_t == T_GRF_A) & (s0_t == T_BANK)
        mov_b_b = (op == OP_MOV) & (dst_t == T_GRF_B) & (s0_t == T_GRF_B)
        mov_bank_a = (op == OP_MOV) & (dst_t == T_BANK) & (s0_t == T_GRF_A)
        fill_bank = (op == OP_FILL) & (dst_t == T_GRF_A) & (s0_t == T_BANK)
        fill_srf = (op == OP_FILL) & (dst_t == T_GRF_A) & (s0_t == T_SRF)
        legal = legal_mul | legal_add | mov_a_a | mov_a_bank | mov_b_b | mov_bank_a \
            | fill_bank | fill_srf | (op == OP_NOP)

        # ------------------------------------------------------------------ AAM addressing
        flat = self.flat
        group_mask = Signal(3)
        m.d.comb += group_mask.eq(Mux(ag == 0, 0, Mux(ag == 1, 1, Mux(ag == 2, 3, 7))))
        offset_b = Signal(8)
        m.d.comb += offset_b.eq(Mux(aam, (flat & group_mask) + self.acc_offset, 0))
        q = Signal(FLAT_BITS)
        m.d.comb += q.eq(flat >> ag)
        lane = Signal(max(1, log2_lanes))
        if log2_lanes:
            m.d.comb += lane.eq(q[:log2_lanes])
        ring_mask = Signal(3)
        m.d.comb += ring_mask.eq(Mux(ax == 0, 0, Mux(ax == 1, 1, Mux(ax == 2, 3, 7))))
        ring = (q >> log2_lanes) & ring_mask
        s1_reg = Mux(aam, s1_i + ring, s1_i) & grf_mask

        def idx_b(index):
            return (index + offset_b) & grf_mask

        # ------------------------------------------------------------------ decision clock
        fire = self.fire & ~halted
        executes = Signal()
        m.d.comb += executes.eq(fire & pc_valid & (op != OP_JUMP) & (op != OP_EXIT))
        m.d.comb += self.illegal.eq(executes & ~legal)
        run = executes & legal

        def resolve(slot, word):
            """Next pc for the JUMP ``word`` at ``slot`` (one loop state per unit)."""
            target, count = _field(word, 23, 5), _field(word, 7, 16)
            remaining = Mux(loop_active, loop_count, count - 1)
            with m.If(count != 0):
                with m.If(remaining != 0):
                    m.d.sync += [loop_active.eq(1), loop_count.eq(remaining - 1)]
                with m.Else():
                    m.d.sync += [loop_active.eq(0), loop_count.eq(remaining)]
            return Mux(count == 0, target, Mux(remaining != 0, target, slot + 1))

        with m.If(self.reset_program):
            m.d.sync += [pc.eq(0), loop_active.eq(0), loop_count.eq(0), halted.eq(0)]
        with m.Elif(fire):
            with m.If(~pc_valid | (op == OP_EXIT)):
                m.d.sync += halted.eq(1)
            with m.Elif(op == OP_JUMP):
                jumped = Signal.like(pc)
                m.d.comb += jumped.eq(resolve(pc, cur))
                m.d.sync += [pc.eq(jumped), halted.eq(jumped >= c.crf)]
            with m.Else():
                following = pc + 1
                jump_next = (following < c.crf) & (_field(nxt, 28, 4) == OP_JUMP)
                new_pc = Signal.like(pc)
                with m.If(jump_next):
                    m.d.comb += new_pc.eq(resolve(following, nxt))
                with m.Else():
                    m.d.comb += new_pc.eq(following)
                m.d.sync += [pc.eq(new_pc), halted.eq(new_pc >= c.crf)]

        reg_index = self.reg_index
        is_reg = self.reg_read | self.reg_write
        m.d.comb += [
            a_p.addr.eq(Mux(is_reg, reg_index, s0_i) & grf_mask),
            a_q.addr.eq(s1_reg),
            b_x.addr.eq(Mux(is_reg, reg_index & grf_mask,
                            Mux(op == OP_MAD, idx_b(s2_i),
                                Mux(legal_add | mov_b_b, idx_b(s0_i), idx_b(dst_i))))),
            b_y.addr.eq(idx_b(s1_i)),
            s_read.addr.eq(Mux(is_reg, reg_index, Mux(op == OP_FILL, s0_i, s1_i)) & srf_mask),
            c_reg.addr.eq(Mux(reg_index < c.crf, reg_index, 0)),
        ]

        # register writes (WRREG; the clear of RDRC) in the decision clock
        data = self.reg_data
        m.d.comb += [
            a_write.addr.eq(reg_index & grf_mask),
            a_write.data.eq(data),
            a_write.en.eq(self.reg_write & (self.reg_file == F_GRF_A)),
            s_write.addr.eq(reg_index & srf_mask),
            s_write.data.eq(data[:lane_bits]),
            s_write.en.eq(self.reg_write & (self.reg_file == F_SRF)),
            c_write.addr.eq(Mux(reg_index < c.crf, reg_index, 0)),
            c_write.data.eq(data[:32]),
            c_write.en.eq(self.reg_write & (self.reg_file == F_CRF)),
        ]
        piece_lanes = Signal(L)       # lanes of the addressed GRF_B piece
        piece_data = Signal(32 * L)
        for lane_index in range(L):
            m.d.comb += [
                piece_lanes[lane_index].eq(self.reg_piece == lane_index // words),
                piece_data.word_select(lane_index, 32).eq(
                    data.word_select(lane_index % words, 32)),
            ]
        reg_b_write = (self.reg_write | self.reg_clear) & (self.reg_file == F_GRF_B)

        # ------------------------------------------------------------------ t+1: operands
        s1 = Signal(range(4))
        s0 = Signal(range(4))
        stage1 = Signal()
        st_aam, st_lane = Signal(), Signal.like(lane)
        st_op, st_dst_a, st_dst_b = Signal(4), Signal(range(c.grf)), Signal(range(c.grf))
        st_kind = Signal(4)     # 0 none, 1 dot, 2 add, 3 mov_b, 4 grf_a write
        st_a_source = Signal(2)  # GRF_A write source: 0 GRF_A, 1 BANK, 2 SRF broadcast
        st_bank_write = Signal()
        st_reg_read, st_reg_file, st_reg_piece = Signal(), Signal(2), Signal(4)
        m.d.sync += [
            stage1.eq(run),
            st_reg_read.eq(self.reg_read),
            st_reg_file.eq(self.reg_file),
            st_reg_piece.eq(self.reg_piece),
        ]
        with m.If(run):
            m.d.sync += [
                s0.eq(s0_t), s1.eq(s1_t), st_aam.eq(aam), st_lane.eq(lane), st_op.eq(op),
                st_dst_a.eq(dst_i & grf_mask), st_dst_b.eq(idx_b(dst_i)),
                st_kind.eq(Mux(legal_mul, 1, Mux(legal_add, 2, Mux(mov_b_b, 3,
                           Mux(mov_a_a | mov_a_bank | fill_bank | fill_srf, 4, 0))))),
                st_a_source.eq(Mux(mov_a_a, 0, Mux(fill_srf, 2, 1))),
                st_bank_write.eq(mov_bank_a),
            ]
        with m.Else():
            m.d.sync += [st_kind.eq(0), st_bank_write.eq(0)]

        srf_broadcast = Signal(col_bits)
        lane_broadcast = Signal(col_bits)
        lane_word = Signal(lane_bits)
        m.d.comb += lane_word.eq(a_q.data.word_select(st_lane, lane_bits) if L > 1
                                 else a_q.data[:lane_bits])
        for lane_index in range(L):
            m.d.comb += [
                srf_broadcast.word_select(lane_index, lane_bits).eq(s_read.data),
                lane_broadcast.word_select(lane_index, lane_bits).eq(lane_word),
            ]
        operand_a = Mux(s0 == T_BANK, self.bank_data, a_p.data)
        operand_b = Mux(s1 == T_SRF, srf_broadcast, Mux(st_aam, lane_broadcast, a_q.data))

        m.d.comb += [
            self.bank_we.eq(stage1 & st_bank_write),
            self.bank_wdata.eq(a_p.data),
        ]
        a_result_write = stage1 & (st_kind == 4)
        with m.If(a_result_write):
            m.d.comb += [
                a_write.addr.eq(st_dst_a),
                a_write.data.eq(Mux(st_a_source == 0, a_p.data,
                                    Mux(st_a_source == 1, self.bank_data, srf_broadcast))),
                a_write.en.eq(1),
            ]

        # register read data
        # only the words a piece can fill (a constant-zero remainder would be a process of
        # constants, which Icarus never evaluates)
        piece_out = Signal(32 * min(words, L))
        pieces = c.acc_pieces
        with m.Switch(st_reg_piece):
            for piece in range(pieces):
                with m.Case(piece):
                    for i in range(words):
                        lane_index = piece * words + i
                        if lane_index < L:
                            m.d.comb += piece_out.word_select(i, 32).eq(
                                b_x.data.word_select(lane_index, 32))
        with m.Switch(st_reg_file):
            with m.Case(F_GRF_A):
                m.d.comb += self.reg_rdata.eq(a_p.data)
            with m.Case(F_GRF_B):
                m.d.comb += self.reg_rdata.eq(piece_out)
            with m.Case(F_SRF):
                m.d.comb += self.reg_rdata.eq(s_read.data)
            with m.Case(F_CRF):
                m.d.comb += self.reg_rdata.eq(c_reg.data)

        # ------------------------------------------------------------------ t+2: products
        stage2 = Signal()
        kind2, dst2, op2 = Signal(4), Signal.like(st_dst_b), Signal(4)
        a2, b2 = Signal(col_bits), Signal(col_bits)
        base2, other2 = Signal(32 * L), Signal(32 * L)
        m.d.sync += [stage2.eq(stage1 & (st_kind != 0) & (st_kind != 4)), kind2.eq(st_kind),
                     dst2.eq(st_dst_b), op2.eq(st_op), a2.eq(operand_a), b2.eq(operand_b),
                     base2.eq(b_x.data), other2.eq(b_y.data)]
        dots = []
        for lane_index in range(L):
            terms = []
            for j in range(k):
                byte = lane_index * k + j
                x = a2.word_select(byte, 8).as_signed()
                y = b2.word_select(byte, 8).as_signed()
                terms.append(x * y)
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            dot = Signal(signed(32), name=f"dot_{lane_index}")
            m.d.sync += dot.eq(total)
            dots.append(dot)

        # ------------------------------------------------------------------ t+3: GRF_B
        stage3 = Signal()
        kind3, dst3, op3 = Signal(4), Signal.like(st_dst_b), Signal(4)
        base3, other3 = Signal(32 * L), Signal(32 * L)
        m.d.sync += [stage3.eq(stage2), kind3.eq(kind2), dst3.eq(dst2), op3.eq(op2),
                     base3.eq(base2), other3.eq(other2)]
        result = Signal(32 * L)
        for lane_index in range(L):
            base = base3.word_select(lane_index, 32)
            other = other3.word_select(lane_index, 32)
            value = Mux(kind3 == 1, Mux(op3 == OP_MUL, 0, base) + dots[lane_index],
                        Mux(kind3 == 2, base + other, base))
            m.d.comb += result.word_select(lane_index, 32).eq(value[:32])

        with m.If(stage3):
            m.d.comb += [b_write.addr.eq(dst3), b_write.data.eq(result),
                         b_write.en.eq(Const(-1, L))]
        with m.Elif(reg_b_write):
            m.d.comb += [b_write.addr.eq(reg_index & grf_mask),
                         b_write.data.eq(Mux(self.reg_clear, 0, piece_data)),
                         b_write.en.eq(piece_lanes)]
        # after reset every register file reads zero (docs/pim.md, "Registers"): one entry of
        # each per clock, while the channel waits
        depth = max(c.grf, c.srf, c.crf)
        clear_index = Signal(range(depth + 1))
        m.d.comb += self.clearing.eq(clear_index < depth)
        with m.If(self.clearing):
            m.d.sync += clear_index.eq(clear_index + 1)
            for port, size, enable in ((a_write, c.grf, 1), (s_write, c.srf, 1),
                                       (c_write, c.crf, 1), (b_write, c.grf, Const(-1, L))):
                m.d.comb += [port.addr.eq(clear_index[:max(1, (size - 1).bit_length())]),
                             port.data.eq(0), port.en.eq(Mux(clear_index < size, enable, 0))]
        return m

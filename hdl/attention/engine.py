"""``attention``: fused attention on an R×C array with per-row online-softmax units.

Dataflow (one pass over K and V, FlashAttention-2 order, FuseMax-style overlap):

* a *tile* is R query rows (see :mod:`hdl.attention.layout` for the row packing); its q
  vectors sit in a double-buffered tile memory (R lanes × d), so the next tile loads while
  the current one computes;
* a *block* is C keys. The array runs two kinds of d-beat passes on the same multipliers:
  **QK** (PE(i,j) accumulates q_i[t]·k_j[t], q broadcast along rows, k down columns) and
  **PV** (PE(i,j) multiplies its probability p_ij by v_j[t]; an adder tree per row sums the
  C products into o_i[t]);
* the passes alternate QK(n+1), PV(n): while the array computes block n+1's scores and block
  n's outputs, the softmax units turn block n's scores (parked in a hold register per PE)
  into probabilities (written into a second register per PE) and the correction factor;
  so the multipliers never wait for exp/max work once two passes cover its latency (about
  C + 20 cycles);
* each row unit keeps the running max m, the running sum l and, in a memory of d words, the
  running output o_acc, rescaled by alpha = 2**((m_old - m_new)·c) at every block; the
  tile's last PV pass divides by l on the fly and emits the tile's int8 outputs.

Every pass starts only when it can finish (its inputs are the only things it waits for), and
everything after the issue stage is a free-running pipeline; output beats are issued only
against credits of the output queue, so back-pressure stops the issue, never the pipeline.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory

from ..common.pipeline import delay_line, pipelined_product, pipelined_tree
from .config import HEAD_BITS, SEQ_BITS, AttentionConfig
from .divider import divider_latency, rounding_divider
from .exp2 import exp2_pipeline
from .interface import attention_signature, descriptor_layout

__all__ = ["AttentionEngine"]


def _popcount(m: Module, bits, name: str) -> tuple[Signal, int]:
    """Population count of ``bits`` through a registered adder tree: (count, latency)."""
    return pipelined_tree(m, list(bits), lambda a, b: a + b, name=name)


class AttentionEngine(wiring.Component):
    def __init__(self, config: AttentionConfig):
        self._config = config
        super().__init__(attention_signature(config))

    def elaborate(self, platform):
        cfg = self._config
        R, C, W, P = cfg.rows, cfg.cols, cfg.width, cfg.prob_bits
        index_bits = max(1, (cfg.max_head_dim - 1).bit_length())
        pos_bits = SEQ_BITS + 1
        m = Module()

        # ------------------------------------------------------------------ job set-up
        job = Signal(descriptor_layout(cfg))
        group = Signal(HEAD_BITS)                       # G = H / Hkv
        remainder = Signal(HEAD_BITS)
        rows_total = Signal(SEQ_BITS + HEAD_BITS)       # Nq·G packed rows per K/V head
        lane_pos0 = Array(Signal(range(R + 1), name=f"lane_pos0_{i}") for i in range(R))
        lane_g0 = Array(Signal(HEAD_BITS, name=f"lane_g0_{i}") for i in range(R))
        advance_pos = Signal(range(R + 1))              # R div G
        advance_g = Signal(HEAD_BITS)                   # R mod G
        step_pos = Signal(range(R + 1))
        step_g = Signal(HEAD_BITS)
        lane_index = Signal(range(R + 1))
        final_issued = Signal()                         # the job's last beat has issued
        desc_error = Signal()
        m.d.comb += self.counters.desc_error.eq(desc_error)

        d_value = job.head_dim
        bad = ((self.desc.payload.nq == 0) | (self.desc.payload.nkv == 0)
               | (self.desc.payload.head_dim == 0)
               | (self.desc.payload.head_dim > cfg.max_head_dim)
               | (self.desc.payload.heads == 0) | (self.desc.payload.kv_heads == 0))
        if not cfg.causal:
            bad = bad | self.desc.payload.causal

        with m.FSM(name="setup") as setup:
            with m.State("IDLE"):
                with m.If(self.desc.valid):
                    m.d.sync += [job.eq(self.desc.payload), remainder.eq(self.desc.payload.heads),
                                 group.eq(0)]
                    with m.If(bad):
                        m.d.sync += desc_error.eq(1)
                    with m.Else():
                        m.next = "DIVIDE"
            with m.State("DIVIDE"):
                with m.If(remainder >= job.kv_heads):
                    m.d.sync += [remainder.eq(remainder - job.kv_heads), group.eq(group + 1)]
                with m.Elif(remainder != 0):
                    m.d.sync += desc_error.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [step_pos.eq(0), step_g.eq(0), lane_index.eq(0)]
                    m.next = "LANES"
            with m.State("LANES"):
                # Row lane i of the first tile holds (position, head-in-group) = divmod(i, G).
                m.d.sync += rows_total.eq(job.nq * group)
                with m.If(lane_index == R):
                    m.d.sync += [advance_pos.eq(step_pos), advance_g.eq(step_g)]
                    m.next = "START"
                with m.Else():
                    m.d.sync += [lane_pos0[lane_index].eq(step_pos),
                                 lane_g0[lane_index].eq(step_g), lane_index.eq(lane_index + 1)]
                    with m.If(step_g + 1 == group):
                        m.d.sync += [step_g.eq(0), step_pos.eq(step_pos + 1)]
                    with m.Else():
                        m.d.sync += step_g.eq(step_g + 1)
            with m.State("START"):
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(final_issued):
                    m.next = "IDLE"
        # (Combinational outputs stay outside FSM states: Icarus never evaluates an
        # always-block that only a constant state drives, and would see X until it moves.)
        m.d.comb += self.desc.ready.eq(setup.ongoing("IDLE"))
        running = setup.ongoing("RUN")
        starting = setup.ongoing("START")

        # ------------------------------------------------------------------ q tile loader
        m.submodules.q_tiles = q_tiles = Memory(
            shape=data.ArrayLayout(signed(W), R), depth=2 << index_bits, init=[])
        q_write = q_tiles.write_port()
        q_read = q_tiles.read_port()
        q_full = Signal(2)
        q_write_slot = Signal()
        q_read_slot = Signal()
        load_t = Signal(index_bits)
        load_r0 = Signal(len(rows_total) + 1)
        load_head = Signal(HEAD_BITS)
        load_done = Signal()
        with m.If(starting):
            m.d.sync += [q_full.eq(0), q_write_slot.eq(0), q_read_slot.eq(0), load_t.eq(0),
                         load_r0.eq(0), load_head.eq(0), load_done.eq(0)]
        m.d.comb += [
            self.q.ready.eq(running & ~load_done & ~q_full.bit_select(q_write_slot, 1)),
            q_write.addr.eq(Cat(load_t, q_write_slot)),
            q_write.data.eq(self.q.payload),
            q_write.en.eq(self.q.valid & self.q.ready),
        ]
        q_tile_loaded = Signal()
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += load_t.eq(load_t + 1)
            with m.If(load_t == d_value - 1):
                m.d.comb += q_tile_loaded.eq(1)
                m.d.sync += [load_t.eq(0), q_write_slot.eq(~q_write_slot)]
                with m.If(load_r0 + R >= rows_total):
                    m.d.sync += [load_r0.eq(0), load_head.eq(load_head + 1)]
                    with m.If(load_head + 1 == job.kv_heads):
                        m.d.sync += load_done.eq(1)
                with m.Else():
                    m.d.sync += load_r0.eq(load_r0 + R)

        # ------------------------------------------------------------------ block generator
        gen_head = Signal(HEAD_BITS)
        gen_r0 = Signal(len(rows_total) + 1)
        gen_kb = Signal(pos_bits)
        gen_done = Signal()
        lane_pos = [Signal(pos_bits, name=f"lane_pos_{i}") for i in range(R)]
        lane_g = [Signal(HEAD_BITS, name=f"lane_g_{i}") for i in range(R)]
        # What the next block needs is derived from the generator's state through two register
        # stages (short paths); a pass cannot start before they have settled (gen_wait).
        gen_wait = Signal(2, init=2)
        last_position = Signal(pos_bits)
        block_end = Signal(pos_bits)
        tile_last = Signal()
        head_last = Signal()
        first_block = Signal()
        block_last = Signal()
        m.d.sync += [
            last_position.eq(Mux(lane_pos[R - 1] < job.nq, lane_pos[R - 1], job.nq - 1)),
            block_end.eq(gen_kb + C),
            tile_last.eq(gen_r0 + R >= rows_total),
            head_last.eq(gen_head + 1 == job.kv_heads),
            first_block.eq(gen_kb == 0),
            block_last.eq((block_end >= job.nkv) | (job.causal & (block_end > last_position))),
            gen_wait.eq(Mux(gen_wait == 0, 0, gen_wait - 1)),
        ]
        keys_left = Signal(signed(pos_bits + 1))
        m.d.comb += keys_left.eq(job.nkv - gen_kb)
        mask = [[Signal(name=f"mask_{i}_{j}") for j in range(C)] for i in range(R)]  # registered
        for i in range(R):
            seen = Signal(signed(pos_bits + 1), name=f"seen_{i}")    # position - kb
            m.d.comb += seen.eq(lane_pos[i] - gen_kb)
            row_valid = lane_pos[i] < job.nq
            for j in range(C):
                visible = (keys_left > j) & (~job.causal | (seen >= j))
                m.d.sync += mask[i][j].eq(row_valid & visible)

        # Each lane's (position, head) in the next tile: + (R div G, R mod G), two stages.
        lane_g_sum = [Signal(HEAD_BITS + 1, name=f"lane_g_sum_{i}") for i in range(R)]
        lane_g_next = [Signal(HEAD_BITS, name=f"lane_g_next_{i}") for i in range(R)]
        lane_pos_next = [Signal(pos_bits, name=f"lane_pos_next_{i}") for i in range(R)]
        for i in range(R):
            carry = lane_g_sum[i] >= group
            m.d.sync += [
                lane_g_sum[i].eq(lane_g[i] + advance_g),
                lane_g_next[i].eq(Mux(carry, lane_g_sum[i] - group, lane_g_sum[i])),
                lane_pos_next[i].eq(lane_pos[i] + advance_pos + carry),
            ]

        qk_ctx = Signal(data.StructLayout({
            "mask": data.ArrayLayout(C, R), "first": 1, "last": 1, "job_last": 1}))
        start_qk = Signal()
        with m.If(starting | start_qk):
            m.d.sync += gen_wait.eq(2)
        with m.If(starting):
            m.d.sync += [gen_head.eq(0), gen_r0.eq(0), gen_kb.eq(0), gen_done.eq(0)]
            m.d.sync += [lane_pos[i].eq(lane_pos0[i]) for i in range(R)]
            m.d.sync += [lane_g[i].eq(lane_g0[i]) for i in range(R)]
        with m.If(start_qk):
            m.d.sync += [
                qk_ctx.mask.eq(Cat(*[Cat(*row) for row in mask])),
                qk_ctx.first.eq(first_block),
                qk_ctx.last.eq(block_last),
                qk_ctx.job_last.eq(block_last & tile_last & head_last),
            ]
            with m.If(block_last):
                m.d.sync += gen_kb.eq(0)
                with m.If(tile_last):
                    m.d.sync += [gen_r0.eq(0), gen_head.eq(gen_head + 1)]
                    m.d.sync += [lane_pos[i].eq(lane_pos0[i]) for i in range(R)]
                    m.d.sync += [lane_g[i].eq(lane_g0[i]) for i in range(R)]
                    with m.If(head_last):
                        m.d.sync += gen_done.eq(1)
                with m.Else():
                    m.d.sync += gen_r0.eq(gen_r0 + R)
                    m.d.sync += [lane_g[i].eq(lane_g_next[i]) for i in range(R)]
                    m.d.sync += [lane_pos[i].eq(lane_pos_next[i]) for i in range(R)]
            with m.Else():
                m.d.sync += gen_kb.eq(block_end)
        qk_count, count_latency = _popcount(m, qk_ctx.mask.as_value(), "qk_count")

        # ------------------------------------------------------------------ pass scheduler
        HOLD_FREE, HOLD_RESERVED, HOLD_FULL = 0, 1, 2
        hold_state = Signal(2)
        pnext_full = Signal()
        pv_in_flight = Signal(range(64))
        out_depth = 1 << max(5, (cfg.max_head_dim + divider_latency(W) + 16).bit_length())
        credits = Signal(range(out_depth + 1), init=out_depth)

        ctx_layout = data.StructLayout({
            "first": 1, "last": 1, "job_last": 1, "count": range(R * C + 1),
            "alpha": data.ArrayLayout(P + 1, R),
            "sum": data.ArrayLayout(cfg.sum_bits, R),
        })
        ctx_next = Signal(ctx_layout)
        ctx_cur = Signal(ctx_layout)

        MODE_NONE, MODE_QK, MODE_PV = 0, 1, 2
        mode = Signal(2)
        prefer_pv = Signal()
        beat_t = Signal(index_bits)
        issue_qk = Signal()
        issue_pv = Signal()
        can_qk = (running & ~gen_done & (gen_wait == 0) & q_full.bit_select(q_read_slot, 1)
                  & (hold_state == HOLD_FREE))
        can_pv = pnext_full & (pv_in_flight == 0) & ~issue_pv
        credit_ok = ~ctx_cur.last | (credits != 0)
        m.d.comb += [
            self.k.ready.eq(mode == MODE_QK),
            issue_qk.eq(self.k.valid & self.k.ready),
            self.v.ready.eq((mode == MODE_PV) & credit_ok),
            issue_pv.eq(self.v.valid & self.v.ready),
        ]
        issue = issue_qk | issue_pv
        last_beat = beat_t == d_value - 1
        decide = (mode == MODE_NONE) | (issue & last_beat)
        start_pv = Signal()
        with m.If(decide):
            with m.If(Mux(prefer_pv, can_pv | ~can_qk, ~can_qk & can_pv)):
                with m.If(can_pv):
                    m.d.comb += start_pv.eq(1)
            with m.Elif(can_qk):
                m.d.comb += start_qk.eq(1)
        with m.If(issue):
            m.d.sync += beat_t.eq(Mux(last_beat, 0, beat_t + 1))
        with m.If(decide):
            m.d.sync += mode.eq(Mux(start_qk, MODE_QK, Mux(start_pv, MODE_PV, MODE_NONE)))
            with m.If(start_qk | start_pv):
                m.d.sync += prefer_pv.eq(start_qk)
        with m.If(issue_qk & last_beat & qk_ctx.last):   # the tile's q is no longer read
            m.d.sync += [q_full.bit_select(q_read_slot, 1).eq(0), q_read_slot.eq(~q_read_slot)]
        with m.If(q_tile_loaded):
            m.d.sync += q_full.bit_select(q_write_slot, 1).eq(1)
        m.d.comb += final_issued.eq(issue_pv & last_beat & ctx_cur.job_last)
        with m.If(start_pv):
            m.d.sync += ctx_cur.eq(ctx_next)
        with m.If(starting):
            m.d.sync += [mode.eq(MODE_NONE), prefer_pv.eq(0), beat_t.eq(0)]

        # ------------------------------------------------------------------ array pipeline
        tag_layout = data.StructLayout({
            "valid": 1, "pv": 1, "t": index_bits, "first": 1, "last": 1, "out": 1,
            "job_last": 1})
        tag0 = Signal(tag_layout)
        m.d.comb += [
            tag0.valid.eq(issue), tag0.pv.eq(issue_pv), tag0.t.eq(beat_t),
            tag0.first.eq(beat_t == 0), tag0.last.eq(last_beat),
            tag0.out.eq(issue_pv & ctx_cur.last), tag0.job_last.eq(ctx_cur.job_last),
        ]
        tags = [tag0]
        for stage in range(1, 40):
            register = Signal(tag_layout, name=f"tag_{stage}")
            m.d.sync += register.eq(tags[-1])
            tags.append(register)

        kv_bus = Signal(data.ArrayLayout(signed(W), C))
        m.d.sync += kv_bus.eq(Mux(issue_pv, self.v.payload, self.k.payload))
        m.d.comb += q_read.addr.eq(Cat(beat_t, q_read_slot))
        q_bus = q_read.data

        prob = P + 1
        p_next = [[Signal(prob, name=f"p_next_{i}_{j}") for j in range(C)] for i in range(R)]
        p_cur = [[Signal(prob, name=f"p_cur_{i}_{j}") for j in range(C)] for i in range(R)]
        hold = [[Signal(signed(cfg.score_bits), name=f"hold_{i}_{j}") for j in range(C)]
                for i in range(R)]
        products = [[None] * C for _ in range(R)]
        hold_written = tags[3].valid & ~tags[3].pv & tags[3].last
        softmax_shift = Signal()
        with m.If(start_pv):
            m.d.sync += [p_cur[i][j].eq(p_next[i][j]) for i in range(R) for j in range(C)]
        # Stage 1 registers the multiplier operands (the q tile memory's output is slow),
        # stage 2 multiplies, stage 3 accumulates or enters the row's adder tree.
        kv_operand = Signal.like(kv_bus)
        m.d.sync += kv_operand.eq(kv_bus)
        for i in range(R):
            for j in range(C):
                operand = Signal(signed(prob + 1), name=f"operand_{i}_{j}")
                m.d.sync += operand.eq(Mux(tags[1].pv, p_cur[i][j], q_bus[i]))
                product = Signal(signed(prob + 1 + W), name=f"prod_{i}_{j}")
                m.d.sync += product.eq(operand * kv_operand[j])
                products[i][j] = product
                acc = Signal(signed(cfg.score_bits), name=f"acc_{i}_{j}")
                acc_next = Mux(tags[3].first, product, acc + product)
                with m.If(tags[3].valid & ~tags[3].pv):
                    m.d.sync += acc.eq(acc_next)
                with m.If(hold_written):
                    m.d.sync += hold[i][j].eq(acc_next)
                with m.Elif(softmax_shift):      # the softmax unit reads its row from [0]
                    m.d.sync += hold[i][j].eq(hold[i][j + 1] if j + 1 < C else 0)

        # ------------------------------------------------------------------ softmax rows
        hold_ctx = Signal.like(qk_ctx)
        sm_mask = Signal(data.ArrayLayout(C, R))
        sm_ctx = Signal.like(qk_ctx)
        sm_mask_all = Signal(data.ArrayLayout(C, R))      # sm_mask shifts; this one stays
        with m.If(start_qk):
            m.d.sync += hold_state.eq(HOLD_RESERVED)
        with m.If(hold_written):
            m.d.sync += [hold_state.eq(HOLD_FULL), hold_ctx.eq(qk_ctx)]

        scale = job.scale
        running_max = [Signal(signed(cfg.score_bits), name=f"m_{i}") for i in range(R)]
        has_max = [Signal(name=f"has_{i}") for i in range(R)]
        old_max = [Signal(signed(cfg.score_bits), name=f"m_old_{i}") for i in range(R)]
        alpha_live = [Signal(name=f"alpha_live_{i}") for i in range(R)]
        run_sum = [Signal(cfg.sum_bits, name=f"l_{i}") for i in range(R)]
        lowest = -(1 << (cfg.score_bits - 1))
        block_max, any_key = [], []
        for i in range(R):
            masked = [Mux(hold_ctx.mask[i][j], hold[i][j], lowest) for j in range(C)]
            best, max_latency = pipelined_tree(m, masked, lambda a, b: Mux(a > b, a, b),
                                               name=f"bmax_{i}")
            block_max.append(best)
            any_key.append(hold_ctx.mask[i].any())
        sm_index = Signal(range(C + 2))
        sm_wait = Signal(range(max_latency + 2))
        sm_feed = Signal()                  # a delta enters the exp2 units this cycle
        sm_tag_layout = data.StructLayout({"valid": 1, "alpha": 1, "last": 1})
        sm_tag = Signal(sm_tag_layout)
        deltas = [Signal(cfg.score_bits + 1, name=f"delta_{i}") for i in range(R)]
        delta_masked = [Signal(name=f"delta_masked_{i}") for i in range(R)]
        softmax_done = Signal()
        with m.FSM(name="softmax") as softmax:
            with m.State("IDLE"):
                with m.If((hold_state == HOLD_FULL) & ~pnext_full):
                    m.d.sync += [sm_wait.eq(0), sm_ctx.eq(hold_ctx), sm_mask.eq(hold_ctx.mask),
                                 sm_mask_all.eq(hold_ctx.mask)]
                    m.next = "MAX"
            with m.State("MAX"):
                m.d.sync += sm_wait.eq(sm_wait + 1)
                with m.If(sm_wait == max_latency):
                    m.next = "MERGE"
            with m.State("MERGE"):
                for i in range(R):
                    live = has_max[i] & ~sm_ctx.first
                    merged = Mux(live & (running_max[i] > block_max[i]), running_max[i],
                                 block_max[i])
                    with m.If(any_key[i]):
                        m.d.sync += [running_max[i].eq(merged), has_max[i].eq(1)]
                    with m.Elif(sm_ctx.first):
                        m.d.sync += has_max[i].eq(0)
                    # (live without a key: m stays, so alpha = E(0) = 1 all the same)
                    m.d.sync += [old_max[i].eq(running_max[i]), alpha_live[i].eq(live)]
                    with m.If(~live):
                        m.d.sync += run_sum[i].eq(0)
                m.d.sync += sm_index.eq(0)
                m.next = "STREAM"
            with m.State("STREAM"):
                m.d.sync += sm_index.eq(sm_index + 1)
                with m.If(sm_index != 0):
                    m.d.sync += sm_mask.eq(Cat(*[Cat(sm_mask[i][1:], Const(0, 1))
                                                for i in range(R)]))
                with m.If(sm_index == C):
                    m.d.sync += hold_state.eq(HOLD_FREE)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(softmax_done):
                    m.next = "IDLE"
        m.d.comb += [sm_feed.eq(softmax.ongoing("STREAM")),
                     softmax_shift.eq(softmax.ongoing("STREAM") & (sm_index != 0))]
        for i in range(R):
            score = hold[i][0]
            use_alpha = sm_index == 0
            m.d.sync += [
                deltas[i].eq(Mux(use_alpha, Mux(alpha_live[i], running_max[i] - old_max[i], 0),
                                 Mux(sm_mask[i][0], running_max[i] - score, 0))),
                delta_masked[i].eq(~use_alpha & ~sm_mask[i][0]),
            ]
        m.d.sync += [sm_tag.valid.eq(sm_feed), sm_tag.alpha.eq(sm_index == 0),
                     sm_tag.last.eq(sm_index == C)]
        probabilities = []
        for i in range(R):
            p, exp2_latency = exp2_pipeline(m, deltas[i], scale, cfg, name=f"exp2_{i}")
            probabilities.append(p)
        out_tag = delay_line(m, sm_tag, shape=sm_tag_layout, steps=exp2_latency, enable=1,
                             name="sm_tag")
        sm_count, _ = _popcount(m, sm_mask_all.as_value(), "sm_count")
        psum = [Signal(cfg.prob_bits + 1 + C.bit_length(), name=f"psum_{i}") for i in range(R)]
        sum_products = []
        for i in range(R):
            product, sum_latency = pipelined_product(m, run_sum[i], ctx_next.alpha[i],
                                                     name=f"l_alpha_{i}")
            sum_products.append(product)
        # The sum's rescale l·alpha needs alpha (the first value out) plus its multiplier.
        finish = delay_line(m, out_tag.valid & out_tag.last, shape=1, steps=sum_latency + 1,
                            enable=1, name="sm_finish")
        m.d.comb += softmax_done.eq(finish)
        for i in range(R):
            masked_flag = delay_line(m, delta_masked[i], shape=1, steps=exp2_latency, enable=1,
                                     name=f"masked_{i}")
            p = probabilities[i]
            p_kept = Mux(masked_flag, 0, p)
            with m.If(out_tag.valid & out_tag.alpha):
                m.d.sync += [ctx_next.alpha[i].eq(p), psum[i].eq(0)]
            with m.If(out_tag.valid & ~out_tag.alpha):
                m.d.sync += [psum[i].eq(psum[i] + p_kept), p_next[i][C - 1].eq(p_kept)]
                m.d.sync += [p_next[i][j].eq(p_next[i][j + 1]) for j in range(C - 1)]
            with m.If(finish):
                rescaled = (sum_products[i] + (1 << (P - 1))) >> P
                m.d.sync += [run_sum[i].eq(rescaled + psum[i]),
                             ctx_next.sum[i].eq(rescaled + psum[i])]
        with m.If(finish):
            m.d.sync += [pnext_full.eq(1), ctx_next.first.eq(sm_ctx.first),
                         ctx_next.last.eq(sm_ctx.last), ctx_next.job_last.eq(sm_ctx.job_last),
                         ctx_next.count.eq(sm_count)]
        with m.If(start_pv):
            m.d.sync += pnext_full.eq(0)

        # ------------------------------------------------------------------ PV rows
        m.submodules.o_acc = o_acc = Memory(
            shape=data.ArrayLayout(signed(cfg.acc_bits), R), depth=1 << index_bits, init=[])
        o_read = o_acc.read_port()
        o_write = o_acc.write_port()
        m.d.comb += o_read.addr.eq(tags[1].t)
        row_sums, tree_latency = [], 0
        for i in range(R):
            total, tree_latency = pipelined_tree(m, products[i], lambda a, b: a + b,
                                                 name=f"pv_sum_{i}")
            row_sums.append(total)
        # o_acc[t] (read at stage 1, registered at 3) times alpha, rounded, plus the tree's
        # sum (stage 3 + tree): both meet at stage ``combine``.
        rescales, rescale_latency = [], 0
        for i in range(R):
            o_old = Signal(signed(cfg.acc_bits), name=f"o_old_{i}")
            m.d.sync += o_old.eq(o_read.data[i])
            product, rescale_latency = pipelined_product(m, o_old, ctx_cur.alpha[i],
                                                         name=f"o_alpha_{i}")
            rescales.append(product)
        combine = max(4 + rescale_latency, 3 + tree_latency)
        o_new = [Signal(signed(cfg.acc_bits), name=f"o_new_{i}") for i in range(R)]
        quotients = []
        for i in range(R):
            rescaled = Signal(signed(cfg.acc_bits), name=f"o_rescaled_{i}")
            m.d.sync += rescaled.eq(Mux(ctx_cur.first, 0,
                                        (rescales[i] + (1 << (P - 1))) >> P))
            rescaled_at = delay_line(m, rescaled, shape=signed(cfg.acc_bits),
                                     steps=combine - 4 - rescale_latency, enable=1,
                                     name=f"o_rescaled_d_{i}")
            sum_at = delay_line(m, row_sums[i], shape=row_sums[i].shape(),
                                steps=combine - 3 - tree_latency, enable=1, name=f"pv_sum_d_{i}")
            m.d.sync += o_new[i].eq(rescaled_at + sum_at)
            quotients.append(rounding_divider(m, o_new[i], ctx_cur.sum[i], W, name=f"div_{i}"))
        written = tags[combine + 1]
        m.d.comb += [
            o_write.addr.eq(written.t),
            o_write.en.eq(written.valid & written.pv),
            o_write.data.eq(Cat(*o_new)),
        ]
        with m.If(issue_pv & ~(written.valid & written.pv)):
            m.d.sync += pv_in_flight.eq(pv_in_flight + 1)
        with m.Elif(~issue_pv & written.valid & written.pv):
            m.d.sync += pv_in_flight.eq(pv_in_flight - 1)

        # ------------------------------------------------------------------ output queue
        emitted = tags[combine + 1 + divider_latency(W)]
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(
            width=R * W + 1, depth=out_depth)
        m.d.comb += [
            out_queue.w_en.eq(emitted.valid & emitted.out),
            out_queue.w_data.eq(Cat(*quotients, emitted.last & emitted.job_last)),
            self.o.payload.eq(out_queue.r_data),
            self.o.valid.eq(out_queue.r_rdy),
            out_queue.r_en.eq(self.o.ready),
        ]
        took = issue_pv & ctx_cur.last
        gave = self.o.valid & self.o.ready
        with m.If(took & ~gave):
            m.d.sync += credits.eq(credits - 1)
        with m.Elif(~took & gave):
            m.d.sync += credits.eq(credits + 1)

        # ------------------------------------------------------------------ counters
        active = ~setup.ongoing("IDLE") | (credits != out_depth)
        stall_in = active & ~issue & (
            ((mode == MODE_QK) & ~self.k.valid)
            | ((mode == MODE_PV) & credit_ok & ~self.v.valid)
            | ((mode == MODE_NONE) & running & ~gen_done & ~q_full.bit_select(q_read_slot, 1)
               & ~can_pv))
        stall_out = active & (mode == MODE_PV) & ~credit_ok
        counters = self.counters
        for name, event in {"cycles": active, "busy_cycles": issue,
                            "stall_cycles": stall_in | stall_out, "stall_in_cycles": stall_in,
                            "stall_out_cycles": stall_out,
                            "softmax_busy_cycles": ~softmax.ongoing("IDLE")}.items():
            with m.If(event):
                m.d.sync += getattr(counters, name).eq(getattr(counters, name) + 1)
        # A QK beat counts its block's pairs once the mask's population count is out.
        qk_counted = tags[1 + count_latency]
        m.d.sync += counters.useful_macs.eq(
            counters.useful_macs
            + Mux(tags[1].valid & tags[1].pv, ctx_cur.count, 0)
            + Mux(qk_counted.valid & ~qk_counted.pv, qk_count, 0))
        return m

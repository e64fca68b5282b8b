"""Weight-stationary systolic GEMM array with double-buffered weights and a chunk accumulator.

A pass holds one R×C weight tile, B[tk·R + i, tn·C + j] in PE(i, j), while the ``rows``
(≤ ``chunk``) rows of A of one chunk stream through it: A[m, tk·R + i] enters row i from the
left (skewed by i steps), partial sums flow down the columns and leave at the bottom, where a
deskew lines the C column sums of row m up again. An accumulator of ``chunk`` × C exact sums
adds the passes of successive K-tiles; the final K-tile's sums go to the output instead.

Each PE has a shadow weight register. The next tile's R weight rows travel down the columns,
skewed like the activations and tagged with their row, so row i's value reaches PE(i, j) at
the same offset i + j as an activation does. They may enter from the step the current tile's
first activation enters until the step before the next tile's first activation: every PE then
has copied its shadow into its weight (swap on the first activation's wavefront) before the
new value arrives, and holds the new value before the next wavefront. Loading thus hides
behind any pass of at least R rows, and passes follow each other with no idle step.

The whole datapath advances on one enable, ``step``, which is low only while the output
queue is full: back-pressure freezes the array; starved inputs enter it as bubbles.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.counters import count_cycles
from ..common.pipeline import delay_line, enable_copy, queue_room_flags, shift_add_product
from .config import DIM_BITS, SystolicGemmConfig
from .grid import build_grid
from .interface import gemm_signature, result_layout
from .output_stationary import OUT_QUEUE_DEPTH

__all__ = ["LUTRAM_CHUNK", "AccumulatorColumn", "WeightStationaryGemm", "WeightStationaryPE"]

#: Largest ``chunk`` whose accumulator goes to LUT RAM (64 × C sums: 256 RAM cells at C = 8
#: of 32-bit sums); a larger one takes block RAM, whose output path limits the clock.
LUTRAM_CHUNK = 64


def _activation_layout(width: int) -> data.StructLayout:
    """An A operand travelling along a row; ``first`` starts a tile (swaps the weights)."""
    return data.StructLayout({"value": signed(width), "valid": 1, "first": 1})


def _weight_layout(width: int, rows: int) -> data.StructLayout:
    """A B operand travelling down a column to the shadow register of PE ``row``."""
    return data.StructLayout({"value": signed(width), "valid": 1, "row": range(max(rows, 2))})


def _psum_width(width: int, rows: int) -> int:
    """Exact width of a sum of ``rows`` products of two signed ``width``-bit operands."""
    return 2 * width + rows.bit_length()


class WeightStationaryPE(wiring.Component):
    """One PE: ``psum_out = psum_in + a·w`` (the product from a registered shift-add tree of
    ``(width − 1).bit_length()`` levels), with a shadow weight swapped in on ``first``.

    A weight beat tagged with this PE's ``row`` loads the shadow register; an activation
    flagged ``first`` copies the shadow into the weight and already multiplies by it.
    ``en`` is the array's enable a cycle ahead: the PE registers its own copy
    (:func:`~hdl.common.pipeline.enable_copy`).
    """

    def __init__(self, *, row: int, rows: int, width: int):
        self._row = row
        super().__init__({
            "en": In(1),
            "a_in": In(_activation_layout(width)),
            "a_out": Out(_activation_layout(width)),
            "w_in": In(_weight_layout(width, rows)),
            "w_out": Out(_weight_layout(width, rows)),
            "psum_in": In(signed(_psum_width(width, rows))),
            "psum_out": Out(signed(_psum_width(width, rows))),
        })

    def elaborate(self, platform):
        m = Module()
        en = enable_copy(m, self.en)
        weight = Signal.like(self.w_in.value, name="weight")
        shadow = Signal.like(self.w_in.value, name="shadow")
        swap = Signal()
        m.d.comb += swap.eq(self.a_in.valid & self.a_in.first)
        # The product comes from shifted partial products summed by a registered adder tree
        # (``shift_add_product``, in LUTs: an ECP5 DSP sits in a row of its own, and the
        # wires to it stayed on the critical path). A bubble's product adds only to the
        # bubble's own psum wavefront, which no valid tag takes. The psum from the PE above,
        # one step behind the activation there, meets this PE's product of the same row.
        product, _ = shift_add_product(m, Mux(swap, shadow, weight), self.a_in.value,
                                       enable=en, name="product")
        with m.If(en):
            m.d.sync += [
                self.a_out.eq(self.a_in),
                self.w_out.eq(self.w_in),
                self.psum_out.eq(self.psum_in + product),
            ]
            with m.If(swap):
                m.d.sync += weight.eq(shadow)
            with m.If(self.w_in.valid & (self.w_in.row == self._row)):
                m.d.sync += shadow.eq(self.w_in.value)
        return m


def _slot_layout(chunk: int) -> data.StructLayout:
    """What the accumulator needs of a beat's tag: its chunk row and K-tile flags."""
    return data.StructLayout({"valid": 1, "slot": range(chunk), "first_k": 1, "last_k": 1})


class AccumulatorColumn(wiring.Component):
    """One column's chunk accumulator: a sum per row of the chunk, read a step ahead into
    ``stored`` (zero for a first K-tile) and written back with ``total`` unless it is the
    last K-tile.

    ``ahead`` is the tag two enabled steps before the beat whose ``total`` this column adds
    (``fetch`` a step later, ``done`` two). Each column registers its own copies of the slot
    and flags, and synthesis keeps the column as a module of its own (``acc_*`` in
    ``synth.run.KEEP_HIERARCHY``): one shared address register drove every RAM cell of every
    column across the die, which was the critical path at 150 MHz. A chunk small enough for
    LUT RAM reads asynchronously into the ``stored`` register (a block RAM's unregistered
    output alone takes most of a 150 MHz cycle); the only write that register can miss is the
    one in the same step, by the row just ahead, which is forwarded (a flag compared a step
    earlier keeps the compare off the path). ``en`` is the array's enable a cycle ahead, as
    for the PEs: the column registers its own copy.
    """

    def __init__(self, *, width: int, chunk: int):
        self._width, self._chunk = width, chunk
        super().__init__({
            "en": In(1),
            "ahead": In(_slot_layout(chunk)),
            "total": In(signed(width)),
            "stored": Out(signed(width)),
        })

    def elaborate(self, platform):
        m = Module()
        en = enable_copy(m, self.en)
        lutram = self._chunk <= LUTRAM_CHUNK
        m.submodules.sums = sums = Memory(
            shape=signed(self._width), depth=self._chunk, init=[],
            attrs={"ram_style": "distributed"} if lutram else {})
        fetch = Signal(_slot_layout(self._chunk))
        done = Signal(_slot_layout(self._chunk))
        with m.If(en):
            m.d.sync += [fetch.eq(self.ahead), done.eq(fetch)]
        write = sums.write_port()
        m.d.comb += [
            write.addr.eq(done.slot),
            write.data.eq(self.total),
            write.en.eq(en & done.valid & ~done.last_k),
        ]
        if lutram:
            read = sums.read_port(domain="comb")
            forward = Signal()          # ``done`` will write the slot ``fetch`` reads
            m.d.comb += read.addr.eq(fetch.slot)
            with m.If(en):
                m.d.sync += [
                    forward.eq(fetch.valid & ~fetch.last_k
                               & (fetch.slot == self.ahead.slot)),
                    self.stored.eq(Mux(fetch.first_k, 0, Mux(forward, self.total, read.data))),
                ]
        else:
            read = sums.read_port(domain="sync", transparent_for=(write,))
            m.d.comb += [
                read.addr.eq(fetch.slot),
                read.en.eq(en),
                self.stored.eq(Mux(done.first_k, 0, read.data)),
            ]
        return m


class WeightStationaryGemm(wiring.Component):
    """R×C weight-stationary array, pass controller, chunk accumulator and output queue.

    Passes, in order: tile column ``tn`` (outer), chunk ``mc`` of ``chunk`` rows of A, K-tile
    ``tk`` (inner). Each pass takes R ``b`` beats B[tk·R + i, tn·C : tn·C+C] (i = 0 first) and
    one ``a`` beat A[m, tk·R : tk·R+R] per row m of the chunk, all zero-padded at the edges.
    Results: one ``c`` transfer per row m of each chunk after its final K-tile, rows in order,
    tagged ``row`` = m and ``col`` = tn·C; lanes past N hold zeros.
    """

    def __init__(self, config: SystolicGemmConfig):
        self._config = config
        super().__init__(gemm_signature(config))

    def elaborate(self, platform):
        cfg = self._config
        R, C, W, A, CHUNK = cfg.rows, cfg.cols, cfg.width, cfg.acc_width, cfg.chunk
        P = _psum_width(W, R)
        m = Module()

        # Output queue. The array steps on registered flags decided from the queue's level
        # two cycles ahead, and rows reach the queue through one output register: the same
        # room rule as the output-stationary array's (see ``OUT_QUEUE_DEPTH`` there).
        out_layout = result_layout(cfg)
        depth = OUT_QUEUE_DEPTH
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                                   depth=depth)
        # ``step`` for the controller (its handshake and next-state logic), ``step_dp`` for
        # the skew lines, tags and output register, and a copy inside each PE and accumulator
        # column (registered there from ``step_early``), so that no enable net spans the
        # whole array.
        step, step_dp, step_early = queue_room_flags(m, out_queue.level, limit=depth - 5)

        # The beat handshakes fan out to every skew-line head, so they see registers only:
        # ``open_`` (a beat may enter: busy, and not a tile start still short of weights),
        # ``row_zero`` and ``weights_short``, each registered from the next state of what it
        # summarizes; and ``chunk_last``, the index of the chunk's last row.

        # --- Weight side: R beats fill the shadow registers, then wait for the tile start. ---
        weights_loaded = Signal(range(R + 1))   # rows of the next tile already sent down
        weights_loaded_next = Signal(range(R + 1))
        weights_short = Signal(init=1)          # weights_loaded != R
        weights_short_next = Signal()
        weights_one_short = Signal(init=R == 1)  # weights_loaded == R − 1
        tile_start = Signal()                   # the next tile's first activation enters
        weight_beat = Signal()
        m.d.comb += [
            weight_beat.eq(step & self.b.valid & (weights_short | tile_start)),
            self.b.ready.eq(weight_beat),
            weights_loaded_next.eq(weights_loaded),
            weights_short_next.eq(weights_short),
        ]
        # ``weights_short`` follows from flags (no adder or compare on the handshake's path).
        with m.If(tile_start):
            m.d.comb += [weights_loaded_next.eq(weight_beat),
                         weights_short_next.eq((R != 1) | ~weight_beat)]
        with m.Elif(weight_beat):
            m.d.comb += [weights_loaded_next.eq(weights_loaded + 1),
                         weights_short_next.eq(~weights_one_short)]
        m.d.sync += [
            weights_loaded.eq(weights_loaded_next),
            weights_short.eq(weights_short_next),
            weights_one_short.eq(weights_loaded_next == R - 1),
        ]

        # --- Activation side: walks the passes of the current job. ---
        # What a pass's end decides (the chunk's last row, the last K-tile, the last chunk,
        # the last tile column) is kept in one-bit flags, set a beat or a pass ahead from
        # down-counters, so the handshake's next state (``open_``, ``busy``) combines flags
        # only, and each counter's update has at most one adder or compare on its path.
        busy, busy_next = Signal(), Signal()
        size_m, size_k, size_n = (Signal(DIM_BITS, name=f"size_{x}") for x in "mkn")
        n_base = Signal(DIM_BITS + 1)           # tn·C
        m_base = Signal(DIM_BITS + 1)           # first row of the chunk
        k_base = Signal(DIM_BITS + 1)           # tk·R
        m_left = Signal(DIM_BITS + 1)           # rows of A from m_base on
        k_left = Signal(DIM_BITS + 1)           # rows of B from k_base on
        n_left = Signal(DIM_BITS + 1)           # columns of B from n_base on
        row_in_chunk = Signal(range(CHUNK))
        rows_left = Signal(range(CHUNK))        # rows of the chunk after the next one
        row_zero = Signal(init=1)               # row_in_chunk == 0
        chunk_last = Signal(range(CHUNK))       # rows in this chunk − 1
        first_chunk_last = Signal(range(CHUNK))  # the same for the job's first chunk

        last_row = Signal()                     # rows_left == 0
        first_k_tile = Signal()                 # k_base == 0
        last_k_tile = Signal()                  # k_left <= R
        last_chunk = Signal()                   # m_left <= CHUNK
        last_n_tile = Signal()                  # n_left <= C
        chunk_single = Signal()                 # chunk_last == 0
        next_chunk_single = Signal()            # the next chunk's chunk_last == 0
        first_chunk_single = Signal()           # first_chunk_last == 0
        k_single = Signal()                     # size_k <= R
        m_single = Signal()                     # size_m <= CHUNK
        n_single = Signal()                     # size_n <= C
        job_end = Signal()
        m.d.comb += job_end.eq(last_row & last_k_tile & last_chunk & last_n_tile)
        # The chunk after this one (meaningful while it is not the last): its last row index
        # and whether that is 0, registered from m_left every cycle. m_left moves only when a
        # chunk ends, and a chunk that is not the last has CHUNK rows, so with CHUNK >= 2 the
        # next chunk end is at least two cycles later and finds these current; with CHUNK = 1
        # they are constants.
        next_chunk_last = Signal(range(CHUNK))
        if CHUNK == 1:
            m.d.comb += [next_chunk_last.eq(0), next_chunk_single.eq(1)]
        else:
            m.d.sync += [
                next_chunk_last.eq(Mux(m_left < 2 * CHUNK, m_left - (CHUNK + 1), CHUNK - 1)),
                next_chunk_single.eq(m_left == CHUNK + 1),
            ]

        open_ = Signal()
        wants_beat = Signal()
        needs_weights = Signal()
        beat = Signal()
        # The beat again for the skew-line heads, from the datapath's copy of the step flag:
        # the heads' operand muxes (R·W loads) stay off the controller's beat net.
        beat_dp = Signal()
        weight_beat_dp = Signal()
        row_zero_next = Signal()
        m.d.comb += [
            beat_dp.eq(step_dp & open_ & self.a.valid),
            weight_beat_dp.eq(step_dp & self.b.valid & (weights_short | (beat_dp & row_zero))),
            wants_beat.eq(step & busy),
            needs_weights.eq(row_zero & weights_short),
            beat.eq(step & open_ & self.a.valid),
            self.a.ready.eq(beat),
            tile_start.eq(beat & row_zero),
            busy_next.eq(busy),
            row_zero_next.eq(Mux(beat, last_row, row_zero)),
        ]
        m.d.sync += [
            busy.eq(busy_next),
            row_zero.eq(row_zero_next),
            open_.eq(busy_next & ~(row_zero_next & weights_short_next)),
        ]
        with m.If(beat):
            with m.If(~last_row):
                m.d.sync += [row_in_chunk.eq(row_in_chunk + 1), rows_left.eq(rows_left - 1),
                             last_row.eq(rows_left == 1)]
            with m.Else():
                m.d.sync += row_in_chunk.eq(0)
                with m.If(~last_k_tile):
                    # The next K-tile of the same chunk.
                    m.d.sync += [k_base.eq(k_base + R), k_left.eq(k_left - R),
                                 last_k_tile.eq(k_left <= 2 * R), first_k_tile.eq(0),
                                 rows_left.eq(chunk_last), last_row.eq(chunk_single)]
                with m.Else():
                    m.d.sync += [k_base.eq(0), k_left.eq(size_k), last_k_tile.eq(k_single),
                                 first_k_tile.eq(1)]
                    with m.If(~last_chunk):
                        # The next chunk: its last row index and whether it has one row, both
                        # computed from m_left a cycle or more before (below).
                        m.d.sync += [
                            m_base.eq(m_base + CHUNK),
                            m_left.eq(m_left - CHUNK),
                            last_chunk.eq(m_left <= 2 * CHUNK),
                            chunk_last.eq(next_chunk_last), rows_left.eq(next_chunk_last),
                            chunk_single.eq(next_chunk_single),
                            last_row.eq(next_chunk_single),
                        ]
                    with m.Else():
                        m.d.sync += [
                            m_base.eq(0),
                            m_left.eq(size_m),
                            last_chunk.eq(m_single),
                            chunk_last.eq(first_chunk_last), rows_left.eq(first_chunk_last),
                            chunk_single.eq(first_chunk_single),
                            last_row.eq(first_chunk_single),
                        ]
                        with m.If(~last_n_tile):
                            m.d.sync += [n_base.eq(n_base + C), n_left.eq(n_left - C),
                                         last_n_tile.eq(n_left <= 2 * C)]
                        with m.Else():
                            m.d.sync += [n_base.eq(0), n_left.eq(size_n),
                                         last_n_tile.eq(n_single)]
                            m.d.comb += busy_next.eq(0)

        # A new job is taken when idle or in the step of the current job's final beat.
        desc_bad = Signal()
        m.d.comb += [
            desc_bad.eq((self.desc.payload.m == 0) | (self.desc.payload.k == 0)
                        | (self.desc.payload.n == 0)),
            self.desc.ready.eq(~busy | (beat & job_end)),
        ]
        with m.If(self.desc.valid & self.desc.ready):
            with m.If(desc_bad):
                m.d.sync += self.counters.desc_error.eq(1)
            with m.Else():
                desc = self.desc.payload
                first_last = Mux(desc.m < CHUNK, desc.m - 1, CHUNK - 1)
                single_row = (desc.m == 1) | (CHUNK == 1)
                m.d.comb += busy_next.eq(1)
                m.d.sync += [
                    size_m.eq(desc.m), size_k.eq(desc.k), size_n.eq(desc.n),
                    m_base.eq(0), k_base.eq(0), n_base.eq(0), row_in_chunk.eq(0),
                    m_left.eq(desc.m), k_left.eq(desc.k), n_left.eq(desc.n),
                    first_k_tile.eq(1),
                    last_k_tile.eq(desc.k <= R), k_single.eq(desc.k <= R),
                    last_chunk.eq(desc.m <= CHUNK), m_single.eq(desc.m <= CHUNK),
                    last_n_tile.eq(desc.n <= C), n_single.eq(desc.n <= C),
                    chunk_last.eq(first_last), first_chunk_last.eq(first_last),
                    rows_left.eq(first_last),
                    last_row.eq(single_row), chunk_single.eq(single_row),
                    first_chunk_single.eq(single_row),
                ]

        # --- Skewed injection: activation row i and weight column j are delayed by i + 1 and
        # j + 1 steps (the extra register keeps the handshake out of the first PE). The
        # activations enter unconditionally: a bubble's products only join its own psum
        # wavefront, which no valid tag takes, so only the flags need the handshake (zeroing
        # the values put the beat net on the reset input of R·W registers). ---
        act_layout = _activation_layout(W)
        row_inputs = []
        for i in range(R):
            head = Signal(act_layout, name=f"a_skew_{i}_0")
            m.d.comb += [
                head.value.eq(self.a.payload[i]),
                head.valid.eq(beat_dp),
                head.first.eq(beat_dp & row_zero),
            ]
            head = delay_line(m, head, shape=act_layout, steps=i + 1, enable=step_dp,
                              name=f"a_skew_{i}")
            row_inputs.append(head)
        w_layout = _weight_layout(W, R)
        col_inputs = []
        for j in range(C):
            head = Signal(w_layout, name=f"b_skew_{j}_0")
            m.d.comb += [
                head.value.eq(self.b.payload[j]),
                head.valid.eq(weight_beat_dp),
                head.row.eq(Mux(beat_dp & row_zero, 0, weights_loaded)),
            ]
            head = delay_line(m, head, shape=w_layout, steps=j + 1, enable=step_dp,
                              name=f"b_skew_{j}")
            col_inputs.append(head)

        # --- The PE grid. ---
        pes = build_grid(m, lambda i, j: WeightStationaryPE(row=i, rows=R, width=W), rows=R,
                         cols=C, enable=step_early, row_inputs=row_inputs, col_inputs=col_inputs,
                         across=("a_in", "a_out"), down=("w_in", "w_out"),
                         chain=("psum_in", "psum_out"))

        # --- Deskew: column j waits C-1-j steps, so row m's sums arrive together, R+C+L
        # steps after its beat entered. ---
        col_sums = []
        for j in range(C):
            head = pes[R - 1][j].psum_out
            head = delay_line(m, head, shape=signed(P), steps=C - 1 - j, enable=step_dp,
                              name=f"c_deskew_{j}")
            col_sums.append(head)

        # Each beat's bookkeeping follows it in a delay line of the same R+C+L steps (L: the
        # levels of the PEs' adder tree).
        tag_layout = data.StructLayout({
            "valid": 1, "slot": range(CHUNK), "first_k": 1, "last_k": 1,
            "row": DIM_BITS, "col": DIM_BITS, "last": 1,
        })
        tags = [Signal(tag_layout, name="tag_0")]
        m.d.comb += [
            tags[0].valid.eq(beat),
            tags[0].slot.eq(row_in_chunk),
            tags[0].first_k.eq(first_k_tile),
            tags[0].last_k.eq(last_k_tile),
            tags[0].row.eq(m_base + row_in_chunk),
            tags[0].col.eq(n_base),
            tags[0].last.eq(job_end),
        ]
        for d in range(R + C + (W - 1).bit_length()):
            delayed = Signal(tag_layout, name=f"tag_{d + 1}")
            with m.If(step_dp):
                m.d.sync += delayed.eq(tags[-1])
            tags.append(delayed)
        done = tags[-1]

        # --- Chunk accumulator: one column each (:class:`AccumulatorColumn`), fed the tag
        # two steps before ``done``; each keeps its own copy of the slot and flags. ---
        acc_layout = data.ArrayLayout(signed(A), C)
        total = Signal(acc_layout)
        ahead = tags[-3]
        for j in range(C):
            column = AccumulatorColumn(width=A, chunk=CHUNK)
            m.submodules[f"acc_{j}"] = column
            m.d.comb += [
                column.en.eq(step_early),
                column.ahead.valid.eq(ahead.valid),
                column.ahead.slot.eq(ahead.slot),
                column.ahead.first_k.eq(ahead.first_k),
                column.ahead.last_k.eq(ahead.last_k),
                column.total.eq(total[j]),
                total[j].eq(column.stored + col_sums[j]),
            ]

        # The output register: the queue's write port sees registers only.
        out_row = Signal(out_layout)
        out_valid = Signal()
        m.d.sync += out_valid.eq(step_dp & done.valid & done.last_k)
        with m.If(step_dp):
            m.d.sync += [
                out_row.data.eq(total),
                out_row.row.eq(done.row),
                out_row.col.eq(done.col),
                out_row.last.eq(done.last),
            ]
        m.d.comb += [
            out_queue.w_data.eq(out_row.as_value()),
            out_queue.w_en.eq(out_valid),
            self.c.payload.eq(out_queue.r_data),
            self.c.valid.eq(out_queue.r_rdy),
            out_queue.r_en.eq(self.c.ready),
        ]

        # --- Performance counters. ---
        in_pipeline = Signal()
        m.d.comb += in_pipeline.eq(Cat(tag.valid for tag in tags[1:]).any())
        active = Signal()
        m.d.comb += active.eq(busy | in_pipeline | out_valid | (out_queue.level != 0))
        stall_in = Signal()
        stall_out = Signal()
        m.d.comb += [
            # Starved: the missing input is the only thing keeping the beat out.
            stall_in.eq(wants_beat & Mux(needs_weights, ~self.b.valid, ~self.a.valid)),
            stall_out.eq(active & ~step),
        ]
        count_cycles(m, self.counters, {
            "cycles": active, "busy_cycles": beat, "stall_in_cycles": stall_in,
            "stall_out_cycles": stall_out, "stall_cycles": stall_out | (wants_beat & ~beat),
        }, registered=True)   # a cycle late: the events' logic ends at a register
        return m

"""Output-stationary systolic GEMM array with a tiling controller that overlaps folds.

A fold computes one R×C tile of C over all K. A-columns enter the rows from the left and
B-rows enter the columns from the top, both skewed so that A[i, k] meets B[k, j] in PE(i, j).
Each PE keeps its accumulator; on the fold's last beat it hands the sum to its result
register and starts the next fold on the very next beat, so folds follow each other with no
fill or drain gap. Result registers of a column form a shift chain that drains the tile
downwards while the next fold computes, so consecutive folds must finish at least R steps
apart (only a short K or a starved input ever makes the array wait for that).

The whole datapath advances on one enable, ``step``, which is low only while the output
queue is full: back-pressure freezes the array; starved inputs enter it as bubbles.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from ..common.counters import count_cycles
from ..common.pipeline import delay_line, enable_copy, queue_room_flags, shift_add_product
from .config import DIM_BITS, SystolicGemmConfig
from .grid import build_grid
from .interface import gemm_signature

__all__ = ["OUT_QUEUE_DEPTH", "OutputStationaryArray", "OutputStationaryGemm", "OutputStationaryPE",
           "beat_layout"]

#: Result rows the output queue holds (see ``OutputStationaryArray.elaborate``).
OUT_QUEUE_DEPTH = 9


def beat_layout(operand) -> data.StructLayout:
    """A row operand travelling along a row, with the flags that frame its fold."""
    return data.StructLayout({"value": operand, "valid": 1, "first": 1, "last": 1})


class OutputStationaryPE(wiring.Component):
    """One PE: ``acc += a·b`` (the product from a registered shift-add tree); on ``last``
    the finished sum moves to ``result``.

    ``shift`` loads ``result`` from ``chain_in`` (the PE above) to drain the column; a capture
    in the same step takes priority (the controller guarantees the shifted value is stale).

    ``en`` is the array's enable a cycle ahead: the PE registers its own copy
    (:func:`~hdl.common.pipeline.enable_copy`).
    """

    def __init__(self, *, width: int, acc_width: int):
        self._acc_width = acc_width
        #: Enabled steps from a beat in ``a_in`` to its ``capture`` (the array's tile tags
        #: wait this long): the adder tree's levels over ``width`` partial products.
        self.CAPTURE = (width - 1).bit_length()
        super().__init__({
            "en": In(1),
            "a_in": In(beat_layout(signed(width))),
            "b_in": In(signed(width)),
            "a_out": Out(beat_layout(signed(width))),
            "b_out": Out(signed(width)),
            "shift": In(1),
            "chain_in": In(signed(acc_width)),
            "result": Out(signed(acc_width)),
            "capture": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        en = enable_copy(m, self.en)
        # The product comes from shifted partial products summed by a registered adder tree
        # (``shift_add_product``), all in LUTs beside the accumulator: an ECP5 DSP sits in a
        # row of its own, and the placer left the wires to it (2.5-3.5 ns each way) on the
        # critical path whatever registers surrounded it.
        product, latency = shift_add_product(m, self.b_in, self.a_in.value, enable=en,
                                             name="product")
        frame_layout = data.StructLayout({"valid": 1, "first": 1, "last": 1})
        frames = [Signal(frame_layout, name=f"frame_{stage}") for stage in range(latency)]
        framing = frames[-1]
        acc = Signal(signed(self._acc_width))
        total = Signal(signed(self._acc_width))
        m.d.comb += [
            total.eq(Mux(framing.first, 0, acc) + product),
            self.capture.eq(en & framing.valid & framing.last),
        ]
        with m.If(en):
            m.d.sync += [
                self.a_out.eq(self.a_in), self.b_out.eq(self.b_in),
                frames[0].valid.eq(self.a_in.valid),
                frames[0].first.eq(self.a_in.first),
                frames[0].last.eq(self.a_in.last),
            ]
            for stage in range(1, latency):
                m.d.sync += frames[stage].eq(frames[stage - 1])
            with m.If(framing.valid):
                m.d.sync += acc.eq(total)
            with m.If(self.capture):
                m.d.sync += self.result.eq(total)
            with m.Elif(self.shift):
                m.d.sync += self.result.eq(self.chain_in)
        return m


class OutputStationaryArray(wiring.Component):
    """An output-stationary array: tiling controller, skew lines, PE grid, column drain and
    output queue, generic over the PE and the operand that one beat carries per row (``a``)
    and per column (``b``).

    Operand beats, fold by fold (tile row ``tm`` outer, tile column ``tn`` inner), the fold's
    beats each: ``a`` = a row operand per array row, ``b`` = a column operand per array column.
    Results: one ``c`` transfer per valid row of each tile, tiles in fold order, rows of a tile
    bottom-up, each tagged with its ``row`` and first ``col``; lanes past N hold zeros.

    A block specializes the hooks below: the PE (:meth:`make_pe`, with the ports of
    :class:`OutputStationaryPE`, taking ``en`` a cycle ahead as it does), how
    many beats a fold takes, the descriptor check, and what enters the rows and columns. The
    dense GEMM and the N:M sparse GEMM are two such arrays.
    """

    def __init__(self, *, rows: int, cols: int, acc_width: int, signature: dict):
        self._rows, self._cols, self._acc_width = rows, cols, acc_width
        super().__init__(signature)

    # --- Hooks of a specialized array. ---
    def make_pe(self, row: int, col: int) -> wiring.Component:
        raise NotImplementedError

    def row_operand_shape(self):
        """Shape of what one beat carries along a row (the ``value`` of the beat layout)."""
        return self.signature.members["a"].signature.members["payload"].shape.elem_shape

    def col_operand_shape(self):
        return self.signature.members["b"].signature.members["payload"].shape.elem_shape

    def fold_last_beat(self, desc) -> Value:
        """Index of a fold's last beat, from the descriptor (K − 1 for a dense GEMM)."""
        return desc.k - 1

    def descriptor_bad(self, desc) -> Value:
        return (desc.m == 0) | (desc.k == 0) | (desc.n == 0)

    def accept_job(self, m: Module, desc) -> None:
        """Latch job fields of a specialized array when a good descriptor is accepted."""

    def row_operand(self, m: Module, row: int) -> Value:
        return self.a.payload[row]

    def col_operand(self, m: Module, col: int) -> Value:
        return self.b.payload[col]

    def beat_events(self, m: Module, beat: Value) -> dict[str, Value]:
        """Extra counter events of a specialized array (its own counter names)."""
        return {}

    def elaborate(self, platform):
        R, C, A = self._rows, self._cols, self._acc_width
        m = Module()

        # Output queue. The array steps on registered flags (``queue_room_flags``), not on the
        # queue's ``w_rdy``: the level logic stays out of the paths of the thousands of
        # registers the step enables. The step at t+2 is decided from the level at t, and a
        # row reaches the queue through one output register (a step at s writes at s+1), so
        # the write at t+3 follows three more writes than that level counts; the queue takes a
        # write while its level is at most depth − 2 (its output register aside), hence the
        # limit depth − 5. 8 RAM entries (a power of two: plain pointers) plus that register;
        # a free-flowing output keeps the level at 2 or less, under the limit.
        out_layout = self.signature.members["c"].signature.members["payload"].shape
        depth = OUT_QUEUE_DEPTH
        m.submodules.out_queue = out_queue = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                                   depth=depth)
        # ``step`` for the controller (its handshake and next-state logic), ``step_dp`` for
        # the skew lines, tags and drain, and a copy inside each PE (registered there from
        # ``step_early``), so that no enable net spans the whole array.
        step, step_dp, step_early = queue_room_flags(m, out_queue.level, limit=depth - 5)

        # --- Input controller: walks the folds of the current job. ---
        # The beat handshake fans out to every skew-line head, so it sees registers and one
        # multiplexer only: ``busy``, the flags of the next beat (first / last of its fold)
        # and ``open_``, which says a beat may enter (busy, and not a final beat that must
        # wait for the drain). What a fold's end decides (its last beat, the last tile column,
        # the last tile row) is kept in flags set one beat or one fold ahead from
        # down-counters. ``open_`` is chosen between three registered candidates, each
        # computed a cycle ahead from the state alone, for a beat, a descriptor taken, or
        # neither in the cycle before: so the handshake's own loop (beat -> next state ->
        # open_ -> beat) is a register and two LUTs, not the controller's next-state logic.
        busy, busy_next = Signal(), Signal()
        size_n = Signal(DIM_BITS, name="size_n")
        last_k = Signal(DIM_BITS)               # index of a fold's last beat
        m_base = Signal(DIM_BITS + 1)           # first row of the tile
        n_base = Signal(DIM_BITS + 1)           # first column of the tile
        m_left = Signal(DIM_BITS + 1)           # rows of C from m_base on
        n_left = Signal(DIM_BITS + 1)           # columns of C from n_base on
        beats_left = Signal(DIM_BITS)           # beats of the fold after the next one
        first_beat = Signal(init=1)
        last_beat, last_beat_next = Signal(), Signal()   # beats_left == 0
        second_last = Signal()                  # beats_left == 1
        fold_single, fold_double = Signal(), Signal()    # a fold of one / two beats
        last_n = Signal()                       # n_left <= C: the tile row's last tile
        last_m = Signal()                       # m_left <= R: the job's last tile row
        n_single = Signal()                     # size_n <= C
        # Steps since the last fold's final beat: the column drain needs R of them before the
        # next fold finishes (only short K or a starved input ever makes the array wait).
        since_fold_end = Signal(range(R + 1), init=R)
        since_fold_end_next = Signal(range(R + 1))
        m.d.comb += [
            busy_next.eq(busy),
            last_beat_next.eq(last_beat),
            since_fold_end_next.eq(since_fold_end),
        ]
        m.d.sync += [
            busy.eq(busy_next),
            last_beat.eq(last_beat_next),
            since_fold_end.eq(since_fold_end_next),
        ]

        desc_bad = Signal()
        m.d.comb += [
            desc_bad.eq(self.descriptor_bad(self.desc.payload)),
            self.desc.ready.eq(~busy),
        ]
        with m.If(self.desc.valid & self.desc.ready):
            with m.If(desc_bad):
                m.d.sync += self.counters.desc_error.eq(1)
            with m.Else():
                desc = self.desc.payload
                fold_last = self.fold_last_beat(desc)
                m.d.comb += [busy_next.eq(1), last_beat_next.eq(fold_last == 0)]
                m.d.sync += [
                    last_k.eq(fold_last), beats_left.eq(fold_last),
                    fold_single.eq(fold_last == 0), fold_double.eq(fold_last == 1),
                    second_last.eq(fold_last == 1),
                    size_n.eq(desc.n), n_left.eq(desc.n), m_left.eq(desc.m),
                    n_single.eq(desc.n <= C), last_n.eq(desc.n <= C), last_m.eq(desc.m <= R),
                    m_base.eq(0), n_base.eq(0), first_beat.eq(1),
                ]
                self.accept_job(m, desc)

        # ``open_`` = busy_next & ~(last_beat_next & since_fold_end_next < R − 1), taken
        # apart by what happened in the cycle before (a beat and a taken descriptor never
        # coincide: a descriptor is taken only while idle).
        since_stepped = Signal(range(R + 1))   # since_fold_end after a step with no fold end
        m.d.comb += since_stepped.eq(Mux(since_fold_end == R, R, since_fold_end + 1))
        since_after = Mux(step, since_stepped, since_fold_end)   # ... with no beat
        open_after_beat, open_after_idle, open_after_desc = Signal(), Signal(), Signal()
        beat_before, desc_before = Signal(), Signal()
        m.d.sync += [
            open_after_beat.eq(Mux(
                last_beat,
                ~(last_n & last_m) & ~(fold_single & (R > 1)),   # a fold ends: since -> 0
                ~(second_last & (since_stepped < R - 1)))),
            open_after_idle.eq(busy & ~(last_beat & (since_after < R - 1))),
            open_after_desc.eq(~((self.fold_last_beat(self.desc.payload) == 0)
                                 & (since_after < R - 1))),
            desc_before.eq(self.desc.valid & self.desc.ready & ~desc_bad),
        ]
        open_ = Signal()
        m.d.comb += open_.eq(Mux(desc_before, open_after_desc,
                                 Mux(beat_before, open_after_beat, open_after_idle)))

        wants_beat = Signal()
        drain_wait = Signal()
        beat = Signal()
        # The beat again for the skew-line heads and the tile tag, from the datapath's copy of
        # the step flag, so their loads stay off the controller's beat net.
        beat_dp = Signal()
        m.d.comb += [
            beat_dp.eq(step_dp & open_ & self.a.valid & self.b.valid),
            wants_beat.eq(busy),
            drain_wait.eq(last_beat & (since_fold_end < R - 1)),
            beat.eq(step & open_ & self.a.valid & self.b.valid),
            self.a.ready.eq(beat),
            self.b.ready.eq(beat),
        ]
        m.d.sync += beat_before.eq(beat)
        with m.If(step):
            with m.If(beat & last_beat):
                m.d.comb += since_fold_end_next.eq(0)
            with m.Elif(since_fold_end != R):
                m.d.comb += since_fold_end_next.eq(since_fold_end + 1)
        with m.If(beat):
            with m.If(last_beat):
                m.d.comb += last_beat_next.eq(fold_single)
                m.d.sync += [beats_left.eq(last_k), second_last.eq(fold_double),
                             first_beat.eq(1)]
                with m.If(~last_n):
                    m.d.sync += [n_base.eq(n_base + C), n_left.eq(n_left - C),
                                 last_n.eq(n_left <= 2 * C)]
                with m.Else():
                    m.d.sync += [n_base.eq(0), n_left.eq(size_n), last_n.eq(n_single),
                                 m_base.eq(m_base + R), m_left.eq(m_left - R),
                                 last_m.eq(m_left <= 2 * R)]
                    with m.If(last_m):
                        m.d.comb += busy_next.eq(0)
            with m.Else():
                m.d.comb += last_beat_next.eq(second_last)
                m.d.sync += [beats_left.eq(beats_left - 1), second_last.eq(beats_left == 2),
                             first_beat.eq(0)]

        # --- Skewed injection: row i is delayed by i + 1 steps, column j by j + 1 (the extra
        # register keeps the input handshake out of the first PE's multiplier path). The
        # operands enter unconditionally: only the row's ``valid`` flag says whether a beat
        # was taken (a PE ignores products of bubbles), so the handshake drives R flags, not
        # every operand bit. ---
        framed = beat_layout(self.row_operand_shape())
        col_shape = self.col_operand_shape()
        row_inputs = []
        for i in range(R):
            head = Signal(framed, name=f"a_skew_{i}_0")
            m.d.comb += [
                head.value.eq(self.row_operand(m, i)),
                head.valid.eq(beat_dp),
                head.first.eq(first_beat),
                head.last.eq(last_beat),
            ]
            head = delay_line(m, head, shape=framed, steps=i + 1, enable=step_dp,
                              name=f"a_skew_{i}")
            row_inputs.append(head)
        col_inputs = []
        for j in range(C):
            head = Signal(col_shape, name=f"b_skew_{j}_0")
            m.d.comb += head.eq(self.col_operand(m, j))
            head = delay_line(m, head, shape=col_shape, steps=j + 1, enable=step_dp,
                              name=f"b_skew_{j}")
            col_inputs.append(head)

        # --- The PE grid. ---
        pes = build_grid(m, self.make_pe, rows=R, cols=C, enable=step_early,
                         row_inputs=row_inputs, col_inputs=col_inputs,
                         across=("a_in", "a_out"), down=("b_in", "b_out"),
                         chain=("chain_in", "result"))

        # --- Tile tags: each fold's coordinates, valid rows and whether it ends its job
        # travel beside the array, shifted on the same step, so the output side finds them
        # in the very step the bottom-right PE captures that fold (its last beat reached
        # PE(R−1, C−1) after R + C − 1 steps, and the PE captures ``CAPTURE`` later). ---
        tile_layout = data.StructLayout({"valid": 1, "row": DIM_BITS, "col": DIM_BITS,
                                         "rows": range(R + 1), "final": 1})
        tile_tags = [Signal(tile_layout, name="tile_tag_0")]
        m.d.comb += [
            tile_tags[0].valid.eq(beat_dp & last_beat),
            tile_tags[0].row.eq(m_base),
            tile_tags[0].col.eq(n_base),
            tile_tags[0].rows.eq(Mux(m_left < R, m_left, R)),
            tile_tags[0].final.eq(last_n & last_m),
        ]
        capture_latency = pes[R - 1][C - 1].CAPTURE
        for index in range(R + C - 1 + capture_latency):
            tag = Signal(tile_layout, name=f"tile_tag_{index + 1}")
            with m.If(step_dp):
                m.d.sync += tag.eq(tile_tags[-1])
            tile_tags.append(tag)

        # --- Column drain: after the bottom PE captures, R shift steps move the tile out
        # bottom-first. Shift k only writes rows i >= k, so rows that already captured the
        # next fold keep their new result. The bottom PE of column j captures a fold in the
        # step its tile tag is R + j + CAPTURE steps down the tag line: the drain starts from
        # that tag, a register beside it, not from the PE's own capture logic. Row i shifts
        # while 1 <= phase <= i: those flags are a register of their own per PE, set for
        # rows 1.. when the drain starts and shifted down a row each step (row i's flag
        # takes row i−1's), so each is one LUT from registers. ---
        col_outputs = []
        drain_phase = []
        for j in range(C):
            phase = Signal(range(R + 1), name=f"drain_phase_{j}")   # 0: idle, else shift k
            start = Signal()
            m.d.comb += start.eq(step_dp & tile_tags[R + j + capture_latency].valid)
            with m.If(start):
                m.d.sync += phase.eq(1)
            with m.Elif(step_dp & (phase != 0)):
                m.d.sync += phase.eq(Mux(phase == R, 0, phase + 1))
            shifts = [Signal(name=f"shift_{i}_{j}") for i in range(R)]
            for i in range(R):
                with m.If(start):
                    m.d.sync += shifts[i].eq(i >= 1)
                with m.Elif(step_dp):
                    m.d.sync += shifts[i].eq(shifts[i - 1] if i >= 1 else 0)
                m.d.comb += pes[i][j].shift.eq(shifts[i])
            # Deskew: column j waits C-1-j steps so that a tile row leaves in one piece.
            head = Signal(signed(A), name=f"c_deskew_{j}_0")
            m.d.comb += head.eq(pes[R - 1][j].result)
            head = delay_line(m, head, shape=signed(A), steps=C - 1 - j, enable=step_dp,
                              name=f"c_deskew_{j}")
            col_outputs.append(head)
            drain_phase.append(phase)

        # --- Output side: tags rows with their coordinates and drops padding rows. ---
        # The tag of the tile the last column drains, taken in the step the bottom-right PE
        # captures that tile (the tag line ends there by construction; its own flag keeps the
        # far PE's capture logic out of this register's enable).
        tile = Signal(tile_layout)
        with m.If(step_dp & tile_tags[-1].valid):
            m.d.sync += tile.eq(tile_tags[-1])
        last_phase = drain_phase[C - 1]
        row_in_tile = Signal(range(R))
        row_ready = Signal()
        m.d.comb += [
            row_in_tile.eq(R - last_phase),
            row_ready.eq(step_dp & (last_phase != 0)),
        ]
        out_row = Signal(out_layout)
        m.d.comb += [
            out_row.row.eq(tile.row + row_in_tile),
            out_row.col.eq(tile.col),
            out_row.last.eq(tile.final & (row_in_tile == 0)),
        ]
        for j in range(C):
            m.d.comb += out_row.data[j].eq(col_outputs[j])
        # The output register: the queue's write port sees registers only (see step above).
        # Its data register loads every cycle (no enable to fan out over C sums); the queue
        # writes it only when ``out_valid`` says it holds a row.
        out_valid = Signal()
        out_data = Signal(out_layout)
        m.d.sync += [out_valid.eq(row_ready & (row_in_tile < tile.rows)), out_data.eq(out_row)]
        m.d.comb += [
            out_queue.w_data.eq(out_data.as_value()),
            out_queue.w_en.eq(out_valid),
        ]

        m.d.comb += [
            self.c.payload.eq(out_queue.r_data),
            self.c.valid.eq(out_queue.r_rdy),
            out_queue.r_en.eq(self.c.ready),
        ]

        # --- Performance counters. ---
        active = Signal()
        tiles_in_flight = Cat(tag.valid for tag in tile_tags[1:]).any() | (last_phase != 0)
        m.d.comb += active.eq(busy | tiles_in_flight | out_valid | (out_queue.level != 0))
        stall_in = Signal()
        stall_out = Signal()
        m.d.comb += [
            stall_in.eq(step & wants_beat & ~drain_wait & ~beat),
            # The step is low only two cycles after the queue held more than depth − 5 rows,
            # so the queue is not empty and the array active: no need for ``active`` here
            # (its wide OR stays off this event's path).
            stall_out.eq(~step),
        ]
        # The cycle counters count their events a cycle late (off the critical path); a
        # specialized array's own events count at once.
        count_cycles(m, self.counters, {
            "cycles": active, "busy_cycles": beat, "stall_in_cycles": stall_in,
            "stall_out_cycles": stall_out,
            "stall_cycles": stall_in | stall_out | (step & busy & drain_wait),
        }, registered=True)
        count_cycles(m, self.counters, self.beat_events(m, beat))
        return m


class OutputStationaryGemm(OutputStationaryArray):
    """The dense GEMM: R×C output-stationary array of :class:`OutputStationaryPE`.

    ``a`` beats carry A[tm·R : tm·R+R, k] and ``b`` beats B[k, tn·C : tn·C+C], K per fold,
    zero-padded at the edges (:func:`hdl.systolic.layout.operand_beats`).
    """

    def __init__(self, config: SystolicGemmConfig):
        self._config = config
        super().__init__(rows=config.rows, cols=config.cols, acc_width=config.acc_width,
                         signature=gemm_signature(config))

    def make_pe(self, row: int, col: int) -> wiring.Component:
        return OutputStationaryPE(width=self._config.width, acc_width=self._config.acc_width)

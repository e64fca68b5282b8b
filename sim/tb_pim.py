"""cocotb testbench of ``pim`` (docs/pim.md) against the golden command model; environment as in
:mod:`sim.testbench`.

Raw commands go in on ``cmd`` in decision order (cycle, port P before port N); a golden
:class:`~golden.pim.PimModel` runs the same commands, and every ``status`` beat is compared in
order with what it decided: the command's fields, ``sequencer``, ``accepted``, ``rule``,
``has_read``, the read data (when ``has_read``) and, for the GEMV sequencer's read-backs, the
tag. A beat is compared as one row: ``cycle, code, bank, row, column, sequencer, accepted, rule,
has_read``, the read data's 32-bit words, then ``item, unit, tile, group, piece`` for sequencer
RDRCs. The counters, ``violation`` and ``refresh_due`` are checked against the model at the end
of each stream. GEMVs load W with raw writes, then run the descriptor; the sequencer's beats must
be golden ``schedule_gemv`` from the same state, and y from their read-backs ``gemv_exact``.

The banks and register files are memories that a reset does not clear, and the tests of one
run share the simulation; golden starts from zeros. So after each reset (except before the
user's own trace, run alone) the harness zeroes every bank column and register through raw
commands (:func:`sim.pim_traces.erase`) and shifts the next stream past it. What a reset itself
must clear is checked once, in ``reset_mid_stream``: the registers read zero (docs/pim.md,
"Registers": everything resets to zero; the page says nothing of the banks, so they are not read
before they are written again).
"""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
import torch
from amaranth.hdl import unsigned

from golden.pim import (
    F_CRF,
    F_GRF_A,
    F_GRF_B,
    F_SRF,
    PORT_N,
    PRE,
    RDRC,
    RDREG,
    RULE_ID,
    RULES,
    Command,
    GemvPlan,
    PimModel,
    Result,
    _x_lane_words,
    bytes_to_words,
    check_trace_table,
    commands_from_table,
    gemv_exact,
    gemv_program,
    plan_gemv,
    read_traffic,
    run_trace,
    schedule_gemv,
)
from hdl.common.counters import CountersSignature
from hdl.pim.config import PimConfig
from hdl.pim.interface import PIM_COUNTERS, command_layout, status_layout
from hdl.pim.layout import (
    TAG_FIELDS,
    command_beat,
    counter_outputs,
    gemv_readback,
    trace_outputs,
)
from hdl.pim.sequencer import check_gemv_fits, gemv_descriptor, gemv_layout

from .pim_traces import (
    erase,
    illegal_streams,
    legal_stream,
    mixed_stream,
    quiet_cycles,
    row_writes,
    shifted,
    sorted_order,
    unreachable_rules,
)
from .scoreboard import Scoreboard
from .streams import StreamBench, StreamSink, StreamSource, read_counters
from .testbench import jobs, seed, start_harness, write_results

_FIELDS = ("cycle", "code", "bank", "row", "column", "sequencer", "accepted", "rule", "has_read")
_TAG = TAG_FIELDS


class PimHarness:
    """The four streams, a golden model in the DUT's state, and an in-order scoreboard of
    status beats."""

    def __init__(self, dut, config: PimConfig, rng: random.Random, gap: float):
        self.dut, self.config, self.rng = dut, config, rng
        self.cmd = StreamSource(dut, "cmd", command_layout(config), rng, gap)
        self.gemv = StreamSource(dut, "gemv", gemv_layout(config), rng, gap)
        self.x = StreamSource(dut, "x", unsigned(config.lane_bits), rng, gap)
        self.status = StreamSink(dut, "status", status_layout(config), rng, gap,
                                 on_item=self._beat)
        self.bench = StreamBench(dut, [self.cmd, self.gemv, self.x, self.status])
        self.scoreboard = Scoreboard(dut._log)
        self.counter_names = CountersSignature(PIM_COUNTERS).names
        self.model = PimModel(config)
        self.origin = 0             # where streams generated from reset start (after an erase)
        self.beats: list[dict] = []
        assert len(dut.x__payload.value) == config.lane_bits

    # -------------------------------------------------------------- beats
    def _row(self, fields: dict, read: bytes | None, tag) -> np.ndarray:
        words = bytes_to_words(read) if read is not None \
            else [0] * self.config.words_per_column
        return np.array([*(int(fields[name]) for name in _FIELDS), *words,
                         *(() if tag is None else tag)], dtype=np.int64)

    def _beat(self, item: dict) -> None:
        self.beats.append(item)
        read = int(item["read_data"]).to_bytes(self.config.column_bytes, "little") \
            if item["has_read"] else None
        tag = tuple(item["tag"][name] for name in _TAG) \
            if item["sequencer"] and item["code"] == RDRC else None
        actual = self._row(item, read, tag)
        if self.scoreboard.expected:
            name, want = self.scoreboard.expected[0]
            if actual.shape == want.shape and not np.array_equal(actual, want):
                names = [*_FIELDS, *(f"word{i}" for i in range(self.config.words_per_column)),
                         *_TAG]
                diff = {names[i]: (int(actual[i]), int(want[i]))
                        for i in np.nonzero(actual != want)[0]}
                self.dut._log.error("%s: (got, expected) %s", name, diff)
        self.scoreboard.check(actual)

    def _expect(self, name: str, cmd: Command, result: Result, sequencer: bool,
                tag=None) -> None:
        fields = {"cycle": cmd.cycle, "code": cmd.code, "bank": cmd.bank, "row": cmd.row,
                  "column": cmd.column, "sequencer": int(sequencer),
                  "accepted": int(result.accepted), "rule": result.rule_id,
                  "has_read": int(result.read is not None)}
        tag = tuple(tag) if sequencer and cmd.code == RDRC else None
        self.scoreboard.expect(f"{name} {cmd} ({result.rule})",
                               self._row(fields, result.read, tag))

    def queue(self, commands: list[Command]) -> None:
        """Queue command beats on ``cmd`` (their status beats are expected elsewhere)."""
        for cmd in commands:
            self.cmd.send(command_beat(self.config, cmd))

    def shift(self, commands: list[Command]) -> list[Command]:
        """A stream generated from reset, moved to start at the origin."""
        return shifted(commands, self.origin)

    def send(self, commands: list[Command], name: str) -> list[int]:
        """Queue ``commands`` in decision order on ``cmd`` and expect their status beats;
        returns that order (indices into ``commands``)."""
        order = sorted_order(commands)
        for position, index in enumerate(order):
            cmd = commands[index]
            self.queue([cmd])
            self._expect(f"{name} #{position}", cmd, self.model.execute(cmd), sequencer=False)
        return order

    def start_gemv(self, plan: GemvPlan, x: torch.Tensor, start: int,
                   traffic_rows: list[int] | None = None, name: str = "gemv"
                   ) -> tuple[list[Command], list[Command]]:
        """Queue the descriptor and x, and expect golden ``schedule_gemv`` from the model's
        state: the sequencer's commands, and with ``traffic_rows`` the port-N reads of golden
        ``read_traffic`` beside it. Returns the golden schedule and the raw commands to queue
        on ``cmd`` once the descriptor and x are in (the reads, then a PRE of a closed bank
        after the GEMV's last cycle: with ``traffic`` the channel advances DRAM time only
        while a raw command waits)."""
        c = self.config
        results: list[Result] = []

        def execute(cmd: Command) -> Result:
            results.append(self.model.execute(cmd))
            return results[-1]

        traffic = read_traffic(c, traffic_rows, self.model.checker) if traffic_rows else ()
        issued, _ = schedule_gemv(plan, x, self.model.checker, start=start, execute=execute,
                                  traffic=traffic)
        self.gemv.send(gemv_descriptor(plan, start, traffic=bool(traffic_rows)))
        words = _x_lane_words(x if x.dim() == 2 else x.unsqueeze(0), plan)
        for item in range(words.shape[0]):
            for step in range(words.shape[1]):
                self.x.send(int.from_bytes(words[item, step].tobytes(), "little"))
        raw = []
        for position, ((cmd, tag), result) in enumerate(zip(issued, results, strict=True)):
            if cmd.port == PORT_N:
                raw.append(cmd)
                self._expect(f"{name} traffic #{position}", cmd, result, sequencer=False)
            else:
                self._expect(f"{name} #{position}", cmd, result, sequencer=True, tag=tag)
        if traffic_rows:
            end = Command(issued[-1][0].cycle + 1, PRE, 0)
            raw.append(end)
            self._expect(f"{name} end", end, self.model.execute(end), sequencer=False)
        return [cmd for cmd, _ in issued], raw

    def readback(self, plan: GemvPlan, single: bool) -> torch.Tensor:
        """y from the sequencer's RDRC beats (their tags and read data)."""
        return gemv_readback(self.config, plan, self.beats, single)

    # -------------------------------------------------------------- running
    def timeout(self) -> int:
        """Clocks to allow: a few per DRAM cycle (a slot with commands takes several), and some
        per beat (gaps, back-pressure)."""
        return 12 * self.model.cycles + 64 * len(self.scoreboard.expected) + 20_000

    async def run(self) -> None:
        """Until every expected beat came, then a while longer (nothing more may come)."""
        await self.bench.run_until(lambda: not self.scoreboard.expected,
                                   timeout=self.timeout())
        await self.settle(40)

    async def settle(self, cycles: int) -> None:
        end = self.bench.cycle + cycles
        await self.bench.run_until(lambda: self.bench.cycle >= end, timeout=cycles + 10)

    async def reset(self, *, erase_memories: bool = True) -> None:
        """Reset; the counters and flags must be zero; then (by default) :meth:`erase`."""
        await self.bench.reset()
        self.scoreboard.expected.clear()
        self.beats.clear()
        self.model = PimModel(self.config)
        self.origin = 0
        counters = self.counters()
        assert all(value == 0 for value in counters.values()), f"counters not cleared: {counters}"
        assert int(self.dut.counters__desc_error.value) == 0
        assert int(self.dut.violation.value) == 0 and int(self.dut.refresh_due.value) == 0
        if erase_memories:
            await self.erase()

    async def erase(self) -> None:
        """Zero every bank column and register (raw commands, checked like any others) and
        move the origin past it."""
        quiet = quiet_cycles(self.config)
        start = self.model.cycles + quiet if self.model.cycles else 0
        self.send(shifted(erase(self.config), start), "erase")
        await self.run()
        self.scoreboard.finish()
        self.beats.clear()
        self.origin = self.model.cycles + quiet

    def counters(self) -> dict[str, int]:
        return read_counters(self.dut, self.counter_names)

    def check_counters(self) -> dict[str, int]:
        """The event counters, rules, ``violation`` and ``refresh_due`` against the model."""
        model, counters = self.model, self.counters()
        expected = {name: model.counters[name] for name in ("accepted", "rejected", "triggers",
                                                            "refreshes",
                                                            "illegal_instructions")}
        got = {name: counters[name] for name in expected}
        assert got == expected, f"counters {got}, golden {expected}"
        rules = np.bincount([int(beat["rule"]) for beat in self.beats], minlength=len(RULES))
        rules[0] = 0
        assert rules.tolist() == [0, *model.rejected_by_rule[1:]], \
            f"rules {rules.tolist()}, golden {model.rejected_by_rule}"
        last = model.checker.last_cycle
        # DRAM time rests in the last command's slot, or just past it once its N half is done
        assert counters["dram_cycles"] in (last, last + 1), (counters["dram_cycles"], last)
        if (last + 1) % self.config.timing_values["tREFI"]:   # no tick in the next cycle
            assert counters["refresh_overdue"] == model.checker.overdue, \
                (counters["refresh_overdue"], model.checker.overdue)
            assert int(self.dut.refresh_due.value) == int(model.checker.due >= 1)
        assert int(self.dut.violation.value) == int(model.counters["rejected"] > 0)
        assert int(self.dut.counters__desc_error.value) == 0
        assert counters["stall_cycles"] == counters["stall_in_cycles"] \
            + counters["stall_out_cycles"], counters
        assert counters["busy_cycles"] <= counters["cycles"], counters
        return counters


async def _start(dut, gap: float | None = None, *, erase_memories: bool = True) -> PimHarness:
    harness = await start_harness(dut, PimConfig, PimHarness, gap)
    if erase_memories:
        await harness.erase()
    return harness


def _gemv_case(config: PimConfig, rng: random.Random, batch: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random int8 W and x (up to three lane groups per unit, up to two sweeps of lane steps)
    whose GEMV fits half the rows and the sequencer."""
    gen = torch.Generator().manual_seed(rng.getrandbits(32))
    for _ in range(100):
        out = rng.randint(1, 3 * config.units * config.lanes + 3)
        inputs = rng.randint(1, 2 * config.columns * config.elems_per_lane)
        try:
            plan = plan_gemv(out, inputs, batch, config)
            check_gemv_fits(plan)
        except ValueError:
            continue
        if plan.rows_used <= max(1, config.rows // 2):
            break
    w = torch.randint(-128, 128, (out, inputs), generator=gen, dtype=torch.int8)
    shape = (inputs,) if batch == 1 else (batch, inputs)
    return w, torch.randint(-128, 128, shape, generator=gen, dtype=torch.int8)


async def _gemv(harness: PimHarness, w: torch.Tensor, x: torch.Tensor, name: str,
                traffic_rows: int = 0) -> tuple[torch.Tensor, int, int]:
    """Load W (raw writes, every beat checked), run the GEMV (with port-N reads of
    ``traffic_rows`` rows beside it when asked) until every expected beat came. Returns y from
    the RTL's read-backs, the RTL's compute cycles (first to last sequencer beat) and golden's;
    the caller checks the scoreboard and y."""
    c = harness.config
    program = gemv_program(w, x, c)
    load = harness.shift(program.load)
    rows = list(range(program.plan.rows_used, min(c.rows, program.plan.rows_used + traffic_rows)))
    if rows:
        load = load + row_writes(c, load, rows, harness.rng)
    harness.send(load, f"{name} load")
    await harness.run()
    harness.scoreboard.finish()
    harness.beats.clear()
    start = max(cmd.cycle for cmd in load) + 1
    schedule, raw = harness.start_gemv(program.plan, x, start, rows or None, name=name)
    if raw:
        await harness.bench.run_until(lambda: harness.gemv.idle and harness.x.idle,
                                      timeout=harness.timeout())
        harness.queue(raw)
    await harness.run()
    y = harness.readback(program.plan, single=x.dim() == 1)
    sequencer = [beat["cycle"] for beat in harness.beats if beat["sequencer"]]
    cycles = sequencer[-1] - sequencer[0] + 1 if sequencer else 0
    return y, cycles, schedule[-1].cycle - schedule[0].cycle + 1


def _check_y(name: str, y: torch.Tensor, golden: torch.Tensor) -> None:
    assert torch.equal(y, golden), f"{name}: y differs from W·x in {int((y != golden).sum())} " \
                                   f"of {golden.numel()} outputs"


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


@cocotb.test()
async def legal_random(dut):
    """A legal stream: every code, all-bank commands on every set in every mode, every
    register file, every instruction form and JUMP kind, refresh (and overdue ticks), port-N
    traffic beside all-bank work; gaps and back-pressure. Every beat and the counters equal
    golden; no violation."""
    harness = await _start(dut)
    commands = legal_stream(harness.config, random.Random(seed()), 60 * jobs(6))
    harness.send(harness.shift(commands), "legal")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.check_counters()
    assert int(dut.violation.value) == 0
    write_results({"test": "legal_random", "commands": len(commands), "seed": seed(),
                   **counters})


@cocotb.test()
async def illegal_each_rule(dut):
    """For every rule the config can produce, a stream from reset whose rejected commands all
    name that rule, each retried once legal, ending with reads of what the stream touched
    (rejected commands changed nothing); ``violation`` rises."""
    harness = await _start(dut, erase_memories=False)     # every stream starts with a reset
    cfg = harness.config
    streams = illegal_streams(cfg, random.Random(seed() + 1))
    for rule, reason in unreachable_rules(cfg).items():
        dut._log.info("rule %s cannot occur with this config: %s", rule, reason)
    for rule, commands in streams.items():
        await harness.reset()
        harness.send(harness.shift(commands), rule)
        await harness.run()
        harness.scoreboard.finish()
        harness.check_counters()
        assert int(dut.violation.value) == 1, f"{rule}: no violation flag"
        assert RULE_ID[rule] in {int(beat["rule"]) for beat in harness.beats}, rule
    write_results({"test": "illegal_each_rule", "rules": sorted(streams), "seed": seed(),
                   "unreachable": sorted(unreachable_rules(cfg))})


@cocotb.test()
async def mixed_random(dut):
    """A legal stream with illegal commands between its commands (random codes and fields,
    early commands, second commands of a port in a cycle)."""
    harness = await _start(dut)
    commands = mixed_stream(harness.config, random.Random(seed() + 2), 60 * jobs(6))
    harness.send(harness.shift(commands), "mixed")
    await harness.run()
    harness.scoreboard.finish()
    counters = harness.check_counters()
    assert int(dut.violation.value) == 1
    write_results({"test": "mixed_random", "commands": len(commands), "seed": seed(),
                   **counters})


@cocotb.test()
async def reset_mid_stream(dut):
    """A reset while commands are in flight (registers written, units running): afterwards
    the counters and flags are zero, every register of every unit reads zero, and a fresh
    stream matches golden from a fresh model."""
    harness = await _start(dut)
    c = harness.config
    rng = random.Random(seed() + 3)
    commands = mixed_stream(c, rng, 300)
    harness.send(harness.shift(commands), "interrupted")
    await harness.bench.run_until(lambda: len(harness.beats) >= len(commands) // 3,
                                  timeout=harness.timeout())
    await harness.reset(erase_memories=False)
    registers = [(c.unit_banks(unit)[0], (file << 5) | index, piece)
                 for unit in range(c.units)
                 for file, size in ((F_GRF_A, c.grf), (F_GRF_B, c.grf), (F_SRF, c.srf),
                                    (F_CRF, c.crf))
                 for index in range(size)
                 for piece in range(c.acc_pieces if file == F_GRF_B else 1)]
    spacing = c.timing_values["tBL"]            # one data-bus command per tBL
    harness.send([Command(i * spacing, RDREG, bank, row, piece)
                  for i, (bank, row, piece) in enumerate(registers)], "registers after reset")
    await harness.run()
    harness.scoreboard.finish()
    await harness.erase()
    harness.send(harness.shift(legal_stream(c, rng, 200)), "after reset")
    await harness.run()
    harness.scoreboard.finish()
    harness.check_counters()


@cocotb.test()
async def gemv(dut):
    """W loaded through raw writes, then GEMV descriptors (one x, then a batch that may need
    several passes): the sequencer's beats are golden ``schedule_gemv`` from the same state
    and cycle, y from their read-backs is W·x."""
    harness = await _start(dut)
    rng = random.Random(seed() + 4)
    records = []
    for index, batch in enumerate((1, rng.randint(2, 5))):
        if index:
            await harness.reset()
        w, x = _gemv_case(harness.config, rng, batch)
        name = f"gemv{index} W {list(w.shape)} x {list(x.shape)}"
        y, cycles, golden_cycles = await _gemv(harness, w, x, name)
        harness.scoreboard.finish()
        _check_y(name, y, gemv_exact(w, x, harness.config))
        assert cycles == golden_cycles, (cycles, golden_cycles)
        records.append({"w": list(w.shape), "x": list(x.shape), "cycles": cycles})
        harness.check_counters()
    write_results({"test": "gemv", "seed": seed(), "gemvs": records})


@cocotb.test()
async def gemv_with_traffic(dut):
    """(Dual row buffer) port-N reads of other rows (golden ``read_traffic``) on ``cmd`` while
    the sequencer runs the GEMV (descriptor ``traffic`` = 1): both interleave exactly as in
    golden, the reads return the rows' data, y is W·x."""
    harness = await _start(dut)
    cfg = harness.config
    if not cfg.dual_row_buffer:
        cocotb.pass_test("one row buffer per bank: normal reads cannot run beside the units")
    rng = random.Random(seed() + 5)
    w, x = _gemv_case(cfg, rng, 1)
    if gemv_program(w, x, cfg).plan.rows_used >= cfg.rows:
        cocotb.pass_test("no row is left for normal traffic beside W")
    y, cycles, _ = await _gemv(harness, w, x, "gemv with traffic", traffic_rows=2)
    harness.scoreboard.finish()
    _check_y("gemv with traffic", y, gemv_exact(w, x, cfg))
    reads = [beat for beat in harness.beats if not beat["sequencer"]]
    triggers = [beat["cycle"] for beat in harness.beats if beat["sequencer"]]
    dut._log.info("%d normal reads between cycles %d and %d; GEMV cycles %d to %d", len(reads),
                  reads[0]["cycle"], reads[-1]["cycle"], triggers[0], triggers[-1])
    harness.check_counters()
    write_results({"test": "gemv_with_traffic", "seed": seed(), "cycles": cycles,
                   "reads": len(reads)})


@cocotb.test()
async def gpt_decode(dut):
    """A GPT-style decoder layer's decode step (golden.gpt_decode, small dimensions that fit
    the banks): every GEMV (QKV, per-head score and context against the KV cache, projection,
    FFN) runs through the RTL, and the step with the RTL's results is bit-identical to the
    step with exact int8 GEMVs."""
    from golden.gpt_decode import (
        GPTDims,
        decode_step_int8,
        quantize_cache,
        quantize_weights,
        random_cache,
        random_weights,
        reference_gemv,
    )
    harness = await _start(dut)
    cfg = harness.config
    context = 5
    for dims in (GPTDims(32, 2, 64), GPTDims(16, 2, 32), GPTDims(8, 2, 16), GPTDims(4, 1, 8)):
        shapes = [(3 * dims.d_model, dims.d_model), (dims.d_model, dims.d_ff),
                  (dims.d_ff, dims.d_model), (context + 1, dims.head_dim),
                  (dims.head_dim, context + 1)]
        try:
            for out, inputs in shapes:
                plan = plan_gemv(out, inputs, 1, cfg)
                check_gemv_fits(plan)
        except ValueError:
            continue
        break
    gen = torch.Generator().manual_seed(seed())
    weights = quantize_weights(random_weights(dims, gen))
    cache = quantize_cache(random_cache(dims, context, gen))
    token = torch.randn(dims.d_model, generator=gen, dtype=torch.float64)
    expected, _, calls = decode_step_int8(token, weights, cache, dims)
    results = []
    for index, (name, w, x) in enumerate(calls):
        if index:
            await harness.reset()
        y, cycles, golden_cycles = await _gemv(harness, w, x, f"gpt {name} {index}")
        harness.scoreboard.finish()
        _check_y(f"gpt {name} {index}", y, reference_gemv(w, x))
        assert cycles == golden_cycles, (name, cycles, golden_cycles)
        results.append(y)
    replay = iter(results)
    got, _, _ = decode_step_int8(token, weights, cache, dims, gemv=lambda w, x: next(replay))
    assert torch.equal(got, expected), "decode step through the RTL differs"
    write_results({"test": "gpt_decode", "seed": seed(), "dims": [dims.d_model, dims.n_heads,
                   dims.d_ff], "context": context, "gemvs": len(calls)})


async def _user_trace(harness: PimHarness, table: np.ndarray) -> dict:
    c = harness.config
    table = np.asarray(table, np.int64)
    check_trace_table(table, c)
    commands = commands_from_table(table, c)
    golden = run_trace(table, c)
    harness.send(commands, "user")
    await harness.run()
    n = len(commands)
    out = trace_outputs(c, table, harness.beats)
    counters = harness.counters()
    out.update(counter_outputs(counters))
    out["cycles"] = np.int64(max((int(beat["cycle"]) for beat in harness.beats), default=-1) + 1)
    np.savez(os.environ["TG_OUTPUTS"], **out, **{f"{key}_golden": value
                                                 for key, value in golden.items()})
    harness.scoreboard.finish()
    harness.check_counters()
    return {"commands": n, "rejected": int(golden["rejected_count"]), **counters}


async def _user_gemv(harness: PimHarness, w: np.ndarray, x: np.ndarray) -> dict:
    w_t, x_t = torch.from_numpy(np.asarray(w, np.int8)), torch.from_numpy(np.asarray(x, np.int8))
    y_golden = gemv_exact(w_t, x_t, harness.config)
    y, cycles, golden_cycles = await _gemv(harness, w_t, x_t, "user gemv")
    counters = harness.counters()
    np.savez(os.environ["TG_OUTPUTS"], y=y.numpy(), y_golden=y_golden.numpy(),
             cycles=np.int64(cycles), cycles_golden=np.int64(golden_cycles),
             **counter_outputs(counters))
    harness.scoreboard.finish()
    _check_y("user gemv", y, y_golden)
    harness.check_counters()
    return {"w": list(w.shape), "x": list(x.shape), **counters, "compute_cycles": cycles}


@cocotb.test()
async def user_inputs(dut):
    """`tensorgates sim pim --inputs`: either ``commands`` (a raw trace: writes accepted, rule,
    has_read, read_data per command in table order and the counters, named as
    ``run_trace`` names them, plus each ``<key>_golden``), or ``w`` [out×in] and ``x`` [in] or
    [batch×in] (a GEMV loaded with raw writes: writes y, y_golden, the compute schedule's
    ``cycles`` and the counters)."""
    harness = await _start(dut, gap=0.0, erase_memories=False)    # a run of its own
    with np.load(os.environ["TG_INPUTS"]) as inputs:
        arrays = {key: inputs[key] for key in inputs.files}
    if "commands" in arrays:
        record = await _user_trace(harness, arrays["commands"])
    else:
        record = await _user_gemv(harness, arrays["w"], arrays["x"])
    write_results({"test": "user_inputs", **record})

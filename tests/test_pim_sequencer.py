"""The GEMV sequencer (hdl.pim.sequencer) against golden ``schedule_gemv``: a Python stand-in
for the channel decides each DRAM cycle (row candidate if the golden checker finds it legal,
else the column candidate) and runs the taken command on the golden ``PimModel``; the issued
commands, their cycles, data and read-back tags equal the golden schedule exactly, and y
assembled from the read-backs equals W·x."""
from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch
from amaranth.sim import Simulator

from golden.pim import (
    RDRC,
    Checker,
    Command,
    PimModel,
    _x_lane_words,
    collect_readback,
    gemv_exact,
    gemv_program,
    plan_gemv,
    schedule_gemv,
)
from hdl.pim.config import PimConfig
from hdl.pim.sequencer import GemvSequencer, check_gemv_fits, gemv_descriptor
from sim.amaranth_streams import stream_put

#: Clocks of one DRAM cycle of the stand-in channel (its decision clock is the first).
SLOT = 4


@dataclass
class Job:
    """One GEMV on the same W: x, the DRAM cycles the sequencer waits beyond the first one it
    sees, and gaps (probabilities of an idle clock) on the desc / x streams and in the channel."""
    x: torch.Tensor
    wait: int = 0
    gap: float = 0.0
    stall: float = 0.0


def _lane_words(x: torch.Tensor, plan) -> list[int]:
    """x lane words item-major (item b, lane step t), as integers."""
    words = _x_lane_words(x, plan)
    return [int.from_bytes(words[b, t].tobytes(), "little")
            for b in range(words.shape[0]) for t in range(words.shape[1])]


def _tag(tag) -> tuple[int, ...]:
    return (tag.item, tag.unit, tag.tile, tag.group, tag.piece)


def _key(cmd: Command, column_bytes: int) -> tuple:
    return (cmd.cycle, cmd.code, cmd.bank, cmd.row, cmd.column,
            cmd.data.ljust(column_bytes, b"\0"))


def run_gemv(config: PimConfig, out: int, inputs: int, jobs: list[Job], *, seed: int,
             base_row: int = 0, G: int | None = None) -> None:
    """Load W on the golden model, then run ``jobs`` one after the other through the RTL
    sequencer and the stand-in channel; compare with golden ``schedule_gemv`` from the same
    checker state and start cycle, and y with W·x."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randint(-128, 128, (out, inputs), generator=gen, dtype=torch.int8)
    batch = jobs[0].x.shape[0]
    program = gemv_program(w, jobs[0].x, config, base_row=base_row, G=G)
    plan = program.plan
    assert plan == plan_gemv(out, inputs, batch, config, base_row=base_row, G=plan.G)
    model = PimModel(config)
    assert all(r.accepted for r in model.run(program.load))
    checker = Checker(config)
    for cmd in program.load:
        checker.offer(cmd)

    dut = GemvSequencer(config)
    column_bytes = config.column_bytes
    issued: list[list[tuple[Command, object, object]]] = [[] for _ in jobs]
    first_cycle = program.load[-1].cycle + 1
    starts: list[int] = []

    async def channel(ctx):
        now = first_cycle
        for j, job in enumerate(jobs):
            start = now + job.wait
            starts.append(start)
            await stream_put(ctx, dut.desc, gemv_descriptor(plan, start), rng=rng, gap=job.gap)
            assert ctx.get(dut.loading)
            for word in _lane_words(job.x, plan):
                await stream_put(ctx, dut.x, word, rng=rng, gap=job.gap)
            while not ctx.get(dut.active):      # the channel holds DRAM time while loading
                await ctx.tick()
            assert not ctx.get(dut.loading) and not ctx.get(dut.desc.ready)
            limit = now + 100 * (plan.passes * plan.sweeps * config.columns * plan.items
                                 + 200)
            while ctx.get(dut.active):
                while rng.random() < job.stall:
                    await ctx.tick()
                model.checker.advance(now)
                ctx.set(dut.now, now)
                ctx.set(dut.refresh_due, model.checker.due >= 1)
                ctx.set(dut.decide, 1)
                taken = None
                for queue in (dut.row_q, dut.col_q):
                    if not ctx.get(queue.valid):
                        continue
                    data = ctx.get(queue.data).to_bytes(column_bytes, "little")
                    cmd = Command(now, ctx.get(queue.code), ctx.get(queue.bank),
                                  ctx.get(queue.row), ctx.get(queue.column), data)
                    if model.checker.check(cmd) is None:
                        taken = queue, cmd
                        break
                if taken is not None:
                    queue, cmd = taken
                    ctx.set(queue.took, 1)
                    result = model.execute(cmd)
                    assert result.accepted, (cmd, result.rule)
                    issued[j].append((cmd, _tag(ctx.get(queue.tag)), result))
                await ctx.tick()
                ctx.set(dut.decide, 0)
                ctx.set(dut.row_q.took, 0)
                ctx.set(dut.col_q.took, 0)
                await ctx.tick().repeat(SLOT - 1)
                now += 1
                assert now < limit, f"sequencer still active at cycle {now}"
            assert ctx.get(dut.desc.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(channel)
    sim.run()

    for job, start, got in zip(jobs, starts, issued, strict=True):
        golden, _ = schedule_gemv(plan, job.x, checker, start=start)
        want = [(_key(cmd, column_bytes), tag) for cmd, tag in golden]
        have = [(_key(cmd, column_bytes), tag if cmd.code == RDRC else None)
                for cmd, tag, _ in got]
        for cmd, tag, _ in got:
            if cmd.code != RDRC:
                assert tag == (0, 0, 0, 0, 0), (cmd, tag)
        for i, (a, b) in enumerate(zip(have, want, strict=False)):
            assert a == b, f"command {i}: RTL {a[0][:5]} {a[1]}, golden {b[0][:5]} {b[1]}"
        assert len(have) == len(want)
        y = collect_readback(plan, [(result, tag) for cmd, tag, result in got
                                    if cmd.code == RDRC])
        assert torch.equal(y, gemv_exact(w, job.x, config))
        assert torch.equal(y, ((job.x.long() @ w.long().T + (1 << 31)) % (1 << 32)
                               - (1 << 31)).int())


def _x(batch: int, inputs: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randint(-128, 128, (batch, inputs), generator=gen, dtype=torch.int8)


CASES = {
    # name: (config, out, in, batch, options)
    "defaults": (PimConfig(), 64, 64, 1, {}),
    "pair": (PimConfig(unit="pair"), 64, 64, 1, {}),
    "passes_one_set": (PimConfig(grf=2), 160, 32, 3, {}),
    "passes_two_sets": (PimConfig(crf=8), 32, 48, 5, {}),
    "gddr6": (PimConfig(timing="gddr6"), 64, 64, 1, {}),
    "refresh_bank": (PimConfig(tREFI=300, tRFC=40, columns=8), 64, 128, 1, {}),
    "refresh_pair": (PimConfig(tREFI=300, tRFC=40, columns=8, unit="pair"), 64, 128, 1, {}),
    "columns4": (PimConfig(columns=4), 64, 64, 1, {}),
    "lanes1": (PimConfig(lanes=1), 64, 64, 1, {}),
    "group4_tiles": (PimConfig(column_bits=64, lanes=4, grf=16), 80, 40, 2, {"G": 4}),
    "short_x": (PimConfig(), 512, 6, 2, {"G": 1}),          # T = 3 < L = 16, 8 tiles
    "one_step": (PimConfig(), 64, 2, 1, {}),                # T·G = 1, padding positions
    "readback_spacing": (PimConfig(timing="gddr6", tCCD_L=2, tCCD_S=1), 160, 32, 2, {}),
    "frequent_refresh": (PimConfig(tREFI=120, tRFC=20, columns=4, unit="pair"), 64, 64, 2,
                         {}),
    "unaligned_ring": (PimConfig(columns=4, unit="pair"), 48, 20, 1, {"base_row": 1}),
}


@pytest.mark.parametrize("name", CASES)
def test_sequencer_matches_golden_schedule(name):
    config, out, inputs, batch, options = CASES[name]
    seed = sorted(CASES).index(name)
    run_gemv(config, out, inputs, [Job(_x(batch, inputs, seed), wait=3)], seed=seed, **options)


def test_random_gaps_and_two_jobs():
    """Random idle clocks on the desc / x streams and between decisions, and a second GEMV
    (new x) on the same sequencer after the first has finished."""
    seed = 101
    jobs = [Job(_x(2, 40, seed), wait=0, gap=0.5, stall=0.4),
            Job(_x(2, 40, seed + 7), wait=11, gap=0.3, stall=0.4)]
    run_gemv(PimConfig(unit="pair", column_bits=128, lanes=8), 48, 40, jobs, seed=seed)


def _random_case(seed: int) -> tuple | None:
    """A random configuration, shape, base row and G (None: the planner's G); None where the
    configuration or the shape is not allowed."""
    r = random.Random(seed)
    column_bits = r.choice([64, 128, 256])
    unit = r.choice(["bank", "pair"])
    settings = dict(
        unit=unit, column_bits=column_bits,
        lanes=r.choice([n for n in (1, 2, 4, 8, 16, 32) if column_bits // 8 % n == 0]),
        banks=r.choice([2, 4, 6, 8] if unit == "pair" else [1, 2, 3, 4, 8]),
        columns=r.choice([4, 8, 16, 32]), rows=r.choice([16, 32, 64]),
        grf=r.choice([2, 4, 8, 16]), crf=r.choice([4, 6, 8, 12, 32]),
        timing=r.choice(["hbm2", "gddr6"]), dual_row_buffer=r.random() < 0.7,
        bank_groups=r.choice([1, 2, 4]))
    if r.random() < 0.4:
        settings.update(tREFI=r.choice([100, 150, 300]), tRFC=r.choice([10, 40, 90]))
    if r.random() < 0.3:
        settings.update(tCCD_L=1, tCCD_S=1)
    out, inputs, batch = r.randint(1, 200), r.randint(1, 80), r.randint(1, 6)
    try:
        config = PimConfig(**settings)
        plan = plan_gemv(out, inputs, batch, config)
    except ValueError:
        return None
    base_row = r.randint(0, config.rows - plan.rows_used)
    G = r.choice([1, 2, 4, 8, None])
    try:
        plan_gemv(out, inputs, batch, config, base_row=base_row, G=G)
    except ValueError:
        G = None
    return config, out, inputs, batch, base_row, G


@pytest.mark.full
@pytest.mark.parametrize("seed", range(100))
def test_random_configurations(seed):
    """Random configurations and shapes, random gaps and channel stalls."""
    case = _random_case(seed)
    if case is None:
        pytest.skip("configuration or shape not allowed")
    config, out, inputs, batch, base_row, G = case
    job = Job(_x(batch, inputs, seed), wait=seed % 5, gap=0.3 * (seed % 2),
              stall=0.3 * (seed // 2 % 2))
    run_gemv(config, out, inputs, [job], seed=seed, base_row=base_row, G=G)


def test_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="arithmetic"):
        GemvSequencer(PimConfig(arithmetic="bf16"))
    config = PimConfig(x_words=64)
    with pytest.raises(ValueError, match="x_words=64"):
        check_gemv_fits(plan_gemv(16, 64, 3, config))
    check_gemv_fits(plan_gemv(16, 64, 2, config))
    with pytest.raises(ValueError, match="start"):
        gemv_descriptor(plan_gemv(16, 64, 2, config), 1 << 32)

"""The PIM golden models (golden.pim, golden.gpt_decode): GEMV programs on the command model
equal gemv_exact equal W·x; every timing parameter and state rule rejects a too-early or illegal
command by name and changes nothing; random legal streams; the ISA by hand; dual row buffers;
refresh; the GPT decode step bit-exact through the PIM model; config errors."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from golden import pim
from golden.gpt_decode import (
    GPT2_MEDIUM,
    GPT2_SMALL,
    GPTDims,
    decode_gemvs,
    decode_step,
    decode_step_int8,
    quantize_cache,
    quantize_weights,
    random_cache,
    random_weights,
)
from golden.pim import (
    AB,
    AB_PIM,
    ACT,
    ACTAB,
    ALL,
    EVEN,
    F_CRF,
    F_GRF_A,
    F_GRF_B,
    F_SRF,
    MODE,
    ODD,
    OP_ADD,
    OP_FILL,
    OP_MAC,
    OP_MAD,
    OP_MOV,
    OP_MUL,
    OP_NOP,
    PRE,
    PREA,
    PREAB,
    RD,
    RDAB,
    RDRC,
    RDREG,
    REF,
    SB,
    T_BANK,
    T_GRF_A,
    T_GRF_B,
    T_SRF,
    WR,
    WRAB,
    WRREG,
    Command,
    PimModel,
    encode_instruction,
    gemv_exact,
    gemv_program,
    jump,
    plan_gemv,
    run_gemv,
)
from hdl.pim.config import PimConfig
from hdl.pim.timing import PRESETS, TIMING_PARAMETERS

SMALL = dict(banks=2, rows=16, columns=8, column_bits=64, lanes=4)


def ints(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randint(-128, 128, shape, generator=gen, dtype=torch.int8)


def reference(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    acc = x.to(torch.int64) @ w.to(torch.int64).T
    return ((acc + (1 << 31)) % (1 << 32) - (1 << 31)).to(torch.int32)


def reg(file: int, index: int) -> int:
    return (file << 5) | index


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------


def test_defaults_hold_512x512_int8_on_4_banks():
    config = PimConfig()
    assert config.banks == 4 and config.capacity_bytes >= 512 * 512
    plan = plan_gemv(512, 512, 1, config)
    assert plan.rows_used <= config.rows
    assert plan_gemv(512, 512, 1, PimConfig(unit="pair")).rows_used <= config.rows


@pytest.mark.parametrize("settings, words", [
    ({"banks": 0}, ["banks=0", "1 to 16"]),
    ({"banks": 17}, ["banks=17"]),
    ({"rows": 48}, ["rows=48", "power of two"]),
    ({"columns": 12}, ["columns=12", "32"]),
    ({"column_bits": 512}, ["column_bits=512", "64, 128, 256"]),
    ({"lanes": 64}, ["lanes=64"]),
    ({"column_bits": 64, "lanes": 16}, ["lanes=16", "column_bits=64", "divisor"]),
    ({"unit": "pair", "banks": 3}, ["unit='pair'", "banks=3", "even"]),
    ({"arithmetic": "fp8"}, ["arithmetic='fp8'", "int8, bf16"]),
    ({"arithmetic": "bf16", "lanes": 32}, ["lanes=32", "bf16"]),
    ({"timing": "ddr4"}, ["timing='ddr4'", "hbm2, gddr6"]),
    ({"grf": 3}, ["grf=3"]),
    ({"tRCD": -1}, ["tRCD=-1"]),
    ({"tCCD_S": 5}, ["tCCD_L=2", "tCCD_S=5"]),
    ({"tRFC": 5000}, ["tREFI=3900", "tRFC=5000"]),
    ({"dual_row_buffer": 1}, ["dual_row_buffer=1"]),
])
def test_config_errors_name_the_parameter(settings, words):
    with pytest.raises(ValueError) as error:
        PimConfig(**settings)
    for word in words:
        assert word in str(error.value)


def test_timing_presets_and_overrides():
    for name, values in PRESETS.items():
        assert set(values) == set(TIMING_PARAMETERS)
        config = PimConfig(timing=name)
        assert {k: config.timing_values[k] for k in TIMING_PARAMETERS} == values
    config = PimConfig(timing="gddr6", tRCD=30, tFAW=40)
    assert config.timing_values["tRCD"] == 30 and config.timing_values["tFAW"] == 40
    assert config.timing_values["tRP"] == PRESETS["gddr6"]["tRP"]
    assert PimConfig(banks=16, unit="pair").ideal_ratio == pytest.approx(4.0)
    assert PimConfig(banks=16, timing="gddr6").ideal_ratio == pytest.approx(16.0)
    assert PimConfig().elems_per_lane == 2 and PimConfig().acc_pieces == 2


# ----------------------------------------------------------------------------------------------
# GEMV end to end on the command model
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {},
    {"dual_row_buffer": False},
    {"unit": "pair"},
])
def test_gemv_512x512_on_the_command_model(settings):
    config = PimConfig(**settings)
    gen = torch.Generator().manual_seed(1)
    w, x = ints(gen, 512, 512), ints(gen, 512)
    y, _, model = run_gemv(w, x, config)
    assert torch.equal(y, gemv_exact(w, x, config))
    assert torch.equal(y, reference(w, x))
    assert model.checker.overdue == 0 and model.counters["rejected"] == 0


@pytest.mark.parametrize("settings, shape, batch", [
    (dict(SMALL, rows=32), (37, 53), 3),
    (dict(SMALL, unit="pair", timing="gddr6"), (20, 30), 2),
    (dict(SMALL, grf=2), (9, 17), 3),                 # 2 items per pass: 2 passes
    (dict(SMALL, lanes=2, dual_row_buffer=False), (11, 40), 1),
    (dict(banks=3, rows=16, columns=16, column_bits=128, lanes=8), (50, 33), 2),
])
def test_gemv_shapes_and_batches(settings, shape, batch):
    config = PimConfig(**settings)
    gen = torch.Generator().manual_seed(sum(shape) + batch)
    w, x = ints(gen, *shape), ints(gen, batch, shape[1])
    y, program, _ = run_gemv(w, x, config)
    assert torch.equal(y, reference(w, x)) and torch.equal(y, gemv_exact(w, x, config))
    plan = program.plan
    assert plan.passes == -(-batch // plan.items)
    # batch > 1 reuses each opened row for every item of a pass
    acts = sum(1 for cmd in program.compute if cmd.code == ACTAB)
    assert acts == plan.sweeps * plan.passes


def test_gemv_wraps_int32():
    config = PimConfig(**SMALL)
    w = torch.full((4, 8), -128, dtype=torch.int8)
    x = torch.full((8,), -128, dtype=torch.int8)
    y, _, _ = run_gemv(w, x, config)
    assert torch.equal(y, torch.full((4,), 8 * 128 * 128, dtype=torch.int32))
    assert int(gemv_exact(torch.full((1, 140000), -128, dtype=torch.int8),
                          torch.full((140000,), -128, dtype=torch.int8), config)[0]) \
        == ((140000 * 16384 + (1 << 31)) % (1 << 32)) - (1 << 31)


def test_gemv_bf16_bit_exact():
    config = PimConfig(**dict(SMALL, arithmetic="bf16", lanes=2))
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(13, 21, generator=gen).to(torch.bfloat16)
    x = torch.randn(2, 21, generator=gen).to(torch.bfloat16) * 1e3
    y, _, _ = run_gemv(w, x, config)
    exact = gemv_exact(w, x, config)
    assert torch.equal(y.view(torch.int32), exact.view(torch.int32))
    ref = x.double() @ w.double().T
    assert torch.allclose(exact.double(), ref, rtol=1e-4, atol=1e-2)


def test_gemv_that_does_not_fit_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        plan_gemv(1024, 1024, 1, PimConfig())


# ----------------------------------------------------------------------------------------------
# Timing rules: each parameter violated by one cycle is rejected by name, nothing changes
# ----------------------------------------------------------------------------------------------

RULES_CONFIG = dict(banks=8, rows=8, columns=4, column_bits=64, lanes=4, bank_groups=4,
                    tRCD=5, tRP=6, tRAS=12, tRC=20, tRRD_S=2, tRRD_L=3, tCCD_S=2, tCCD_L=3,
                    tWR=4, tRTP=3, tFAW=16, tREFI=5000, tRFC=30)
# (tWL, tBL) of hbm2 with 64-bit columns: (4, 1): WR → PRE needs 4 + 1 + 4 = 9 cycles


def _c(cycle, code, bank=0, row=0, column=0, data=b""):
    return Command(cycle, code, bank, row, column, data)


def _scenarios(t):
    """(prefix commands, the violating command at its earliest legal cycle); every scenario
    violates exactly one rule one cycle earlier."""
    act = _c(0, ACT, 0, 1)
    wr_pre = 5 + 4 + 1 + t["tWR"]                     # tWL + tBL + tWR after the WR
    return {
        "tRCD": ([act], _c(t["tRCD"], RD, 0, 0, 1)),
        "tRAS": ([act], _c(t["tRAS"], PRE, 0)),
        "tRP": ([act, _c(20, PRE, 0)], _c(20 + t["tRP"], ACT, 0, 2)),
        "tRC": ([act, _c(12, PRE, 0)], _c(t["tRC"], ACT, 0, 2)),
        "tRRD_S": ([act], _c(t["tRRD_S"], ACT, 1, 1)),            # bank 1: group 1
        "tRRD_L": ([act], _c(t["tRRD_L"], ACT, 4, 1)),            # bank 4: group 0 again
        "tFAW": ([act, _c(2, ACT, 1, 1), _c(4, ACT, 2, 1), _c(6, ACT, 3, 1)],
                 _c(t["tFAW"], ACT, 5, 1)),
        "tCCD_S": ([act, _c(2, ACT, 1, 1), _c(10, RD, 0, 0, 0)],
                   _c(10 + t["tCCD_S"], RD, 1, 0, 0)),
        "tCCD_L": ([act, _c(10, RD, 0, 0, 0)], _c(10 + t["tCCD_L"], RD, 0, 0, 1)),
        "tWR": ([act, _c(5, WR, 0, 0, 0, b"\1" * 8)], _c(wr_pre, PRE, 0)),
        "tRTP": ([act, _c(11, RD, 0, 0, 0)], _c(11 + t["tRTP"], PRE, 0)),
        "tRFC": ([_c(0, REF)], _c(t["tRFC"], ACT, 0, 1)),
    }


@pytest.mark.parametrize("dual", [True, False])
@pytest.mark.parametrize("rule", ["tRCD", "tRAS", "tRP", "tRC", "tRRD_S", "tRRD_L", "tFAW",
                                  "tCCD_S", "tCCD_L", "tWR", "tRTP", "tRFC"])
def test_each_timing_parameter_is_enforced(rule, dual):
    config = PimConfig(**RULES_CONFIG, dual_row_buffer=dual)
    t = config.timing_values
    prefix, cmd = _scenarios(t)[rule]
    for early in (True, False):
        model = PimModel(config)
        assert all(r.accepted for r in model.run(prefix)), rule
        offered = Command(cmd.cycle - 1, cmd.code, cmd.bank, cmd.row, cmd.column, cmd.data) \
            if early else cmd
        before = model.snapshot()
        result = model.execute(offered)
        if early:
            assert (result.accepted, result.rule) == (False, rule)
            _assert_same(before, model.snapshot())
            assert model.rejected_by_rule[pim.RULE_ID[rule]] == 1
            assert model.checker.earliest(cmd, 0) == cmd.cycle
        else:
            assert result.accepted, (rule, result.rule)


def test_trefi_refresh_due_and_overdue():
    config = PimConfig(**RULES_CONFIG)
    refi = config.timing_values["tREFI"]
    model = PimModel(config)
    t0 = refi * 3
    assert model.execute(_c(t0, ACT, 0, 1)).accepted and model.checker.due == 3
    assert model.execute(_c(t0 + 20, REF)).rule == "not_precharged"
    assert model.execute(_c(t0 + 21, PRE, 0)).accepted
    assert model.execute(_c(t0 + 27, REF)).accepted and model.checker.due == 2
    assert model.execute(_c(t0 + 40, REF)).rule == "tRFC"
    assert model.execute(_c(t0 + 57, REF)).accepted and model.checker.due == 1
    model.execute(_c(refi * 20, pim.NOP))
    # 17 more ticks: 7 fill the postponement budget of 8, 10 are overdue
    assert model.checker.due == 8 and model.checker.overdue == 10
    assert model.counters["refreshes"] == 2


def test_all_bank_commands_follow_the_same_rules():
    config = PimConfig(**RULES_CONFIG)
    model = PimModel(config)
    steps = [
        (_c(0, MODE, row=AB), "ok"),
        (_c(1, ACTAB, EVEN, 1), "ok"),
        (_c(2, ACTAB, ODD, 1), "tRRD_S"),      # EVEN and ODD banks share no bank group
        (_c(3, ACTAB, ODD, 1), "ok"),
        (_c(4, MODE, row=AB_PIM), "ok"),
        (_c(5, RDAB, EVEN, 0, 0), "tRCD"),
        (_c(8, RDAB, EVEN, 0, 0), "ok"),
        (_c(10, RDAB, ODD, 0, 0), "tCCD_L"),   # all-bank column commands: tCCD_L always
        (_c(11, RDAB, ODD, 0, 0), "ok"),
        (_c(12, PREAB, EVEN), "tRAS"),
        (_c(15, PREAB, ALL), "ok"),
        (_c(20, ACTAB, ALL, 2), "tRP"),        # tRC is violated too; tRP is reported first
        (_c(21, ACTAB, ALL, 2), "tRC"),        # the ODD banks opened at cycle 3
        (_c(23, ACTAB, ALL, 2), "ok"),
    ]
    for cmd, expected in steps:
        assert model.execute(cmd).rule == expected, cmd


# ----------------------------------------------------------------------------------------------
# State rules
# ----------------------------------------------------------------------------------------------


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_state_rules_and_nothing_changes():
    config = PimConfig(**RULES_CONFIG)
    model = PimModel(config)
    cases = [
        (_c(0, ACT, 0, 1), "ok"),
        (_c(0, RD, 1, 0, 0), "port"),                  # second port-N command in cycle 0
        (_c(1, 99), "code"),
        (_c(2, ACT, 8, 1), "address"),
        (_c(3, ACT, 1, 8), "address"),
        (_c(4, RD, 0, 0, 4), "address"),
        (_c(5, ACT, 0, 2), "bank_open"),
        (_c(6, RD, 1, 0, 0), "bank_closed"),
        (_c(7, ACTAB, ALL, 3), "mode"),                # all-bank commands need AB / AB_PIM
        (_c(8, WRREG, 9, reg(F_CRF, 0)), "address"),   # SB: targeted, unit 9 does not exist
        (_c(9, WRREG, 0, reg(F_SRF, 9)), "address"),    # srf = 8
        (_c(10, RDRC, 0, reg(F_SRF, 0)), "address"),   # read-and-clear is for GRF_B only
        (_c(11, REF), "not_precharged"),
        (_c(12, MODE, row=3), "address"),
        (_c(13, PRE, 0), "ok"),
        (_c(14, MODE, row=AB), "ok"),
        (_c(15, RDAB, ALL, 0, 0), "mode"),             # triggers need AB_PIM
        (_c(16, ACTAB, ALL, 5), "ok"),
        (_c(17, MODE, row=SB), "not_precharged"),      # the all-bank rows are open
        (_c(30, ACT, 0, 5), "row_conflict"),           # row 5 is open in bank 0's PIM buffer
        (_c(31, ACT, 0, 6), "ok"),                     # the normal buffer works beside it
    ]
    for cmd, expected in cases:
        before = model.snapshot()
        result = model.execute(cmd)
        assert result.rule == expected, (cmd, result.rule)
        if expected != "ok":
            _assert_same(before, model.snapshot())
    with pytest.raises(ValueError, match="cycle order"):
        model.execute(_c(3, pim.NOP))


def test_single_row_buffer_modes_exclude_each_other():
    model = PimModel(PimConfig(**RULES_CONFIG, dual_row_buffer=False))
    steps = [(_c(0, ACT, 0, 1), "ok"), (_c(1, MODE, row=AB), "not_precharged"),
             (_c(12, PREA), "ok"), (_c(20, MODE, row=AB), "ok"), (_c(30, ACT, 1, 1), "mode"),
             (_c(31, ACTAB, ALL, 1), "ok"), (_c(40, RD, 1, 0, 0), "mode")]
    for cmd, expected in steps:
        assert model.execute(cmd).rule == expected, cmd


def test_pim_write_needs_wr():
    config = PimConfig(**RULES_CONFIG)
    model = PimModel(config)
    store = encode_instruction(OP_MOV, (T_BANK, 0), (T_GRF_A, 1))
    fill = encode_instruction(OP_FILL, (T_GRF_A, 1), (T_BANK, 0))
    data = bytes(range(8))
    for cycle, cmd in enumerate([
        _c(0, MODE, row=AB),
        _c(1, WRREG, 0, reg(F_CRF, 0), 0, store.to_bytes(4, "little")),
        _c(2, WRREG, 0, reg(F_CRF, 1), 0, fill.to_bytes(4, "little")),
        _c(3, WRREG, 0, reg(F_GRF_A, 1), 0, data),
        _c(4, ACTAB, ALL, 2),
        _c(5, MODE, row=AB_PIM),
    ]):
        assert model.execute(cmd).accepted, cycle
    before = model.snapshot()
    assert model.execute(_c(20, RDAB, ALL, 0, 3)).rule == "pim_write_needs_wr"
    _assert_same(before, model.snapshot())
    assert model.execute(_c(21, WRAB, ALL, 0, 3)).accepted
    assert all(model.mem[b, 2, 3].tobytes() == data for b in range(config.banks))
    assert model.execute(_c(30, RDAB, ALL, 0, 0)).accepted    # FILL reads the bank: RD is fine
    assert model.snapshot()["halted"] == [False] * config.units


# ----------------------------------------------------------------------------------------------
# Random streams
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [dict(RULES_CONFIG), dict(RULES_CONFIG, timing="gddr6",
                                                                dual_row_buffer=False)])
def test_random_legal_streams_read_back_what_was_written(settings):
    config = PimConfig(**settings)
    rng = random.Random(7)
    model = PimModel(config)
    shadow = np.zeros_like(model.mem)
    now, reads = 0, 0
    for _ in range(1500):
        bank = rng.randrange(config.banks)
        open_row = model.checker.open_row[bank][0]
        if open_row < 0:
            cmd = _c(0, ACT, bank, rng.randrange(config.rows))
        else:
            code = rng.choice([RD, RD, WR, WR, PRE])
            data = bytes(rng.randrange(256) for _ in range(config.column_bytes))
            cmd = _c(0, code, bank, 0, rng.randrange(config.columns), data)
        cycle = model.checker.earliest(cmd, now)
        assert cycle is not None
        cmd = Command(cycle, cmd.code, cmd.bank, cmd.row, cmd.column, cmd.data)
        if rng.random() < 0.2 and cycle > now:
            early = Command(cycle - 1, cmd.code, cmd.bank, cmd.row, cmd.column, cmd.data)
            before = model.snapshot()
            assert not model.execute(early).accepted
            _assert_same(before, model.snapshot())
        result = model.execute(cmd)
        assert result.accepted, (cmd, result.rule)
        row = model.checker.open_row[bank][0]
        if cmd.code == WR:
            shadow[bank, row, cmd.column] = np.frombuffer(cmd.data, np.uint8)
        elif cmd.code == RD:
            reads += 1
            assert result.read == shadow[bank, row, cmd.column].tobytes()
        now = cycle
    assert reads > 200 and np.array_equal(model.mem, shadow)


def test_random_illegal_streams_change_nothing():
    config = PimConfig(**dict(SMALL, banks=4))
    rng = random.Random(3)
    model = PimModel(config)
    codes = list(pim.CODES.values())
    now, rejected = 0, 0
    for _ in range(600):
        code = rng.choice(codes)
        row = rng.randrange(config.rows) if code != MODE else rng.randrange(3)
        if code in (WRREG, RDREG, RDRC):
            row = reg(rng.randrange(4), rng.randrange(3))
        cmd = Command(now, code, rng.randrange(4), row, rng.randrange(2),
                      bytes(rng.randrange(256) for _ in range(config.column_bytes)))
        before = model.snapshot()
        result = model.execute(cmd)
        if not result.accepted:
            rejected += 1
            _assert_same(before, model.snapshot())
        now += rng.choice([1, 1, 2, 5, 20])
    assert rejected > 100 and model.counters["accepted"] > 100


# ----------------------------------------------------------------------------------------------
# ISA
# ----------------------------------------------------------------------------------------------


def test_isa_by_hand():
    """lanes = 4, 16-bit lanes (k = 2 int8 per lane), one bank, one unit."""
    config = PimConfig(**dict(SMALL, banks=1))
    w = np.arange(8, dtype=np.int8) - 3                      # bank 0, row 1, column 0
    a1 = np.array([1, -1, 2, -2, 3, -3, 4, -4], np.int8)      # GRF_A[1]
    s0 = np.array([5, -7], np.int8)                          # SRF[0]
    program = [
        encode_instruction(OP_MUL, (T_GRF_B, 0), (T_BANK, 0), (T_GRF_A, 1)),       # B0 = w·a1
        encode_instruction(OP_MAC, (T_GRF_B, 0), (T_BANK, 0), (T_SRF, 0)),         # B0 += w·s0
        encode_instruction(OP_MAD, (T_GRF_B, 1), (T_GRF_A, 1), (T_SRF, 0), 0),     # B1 = B0+a1·s0
        encode_instruction(OP_ADD, (T_GRF_B, 2), (T_GRF_B, 0), (T_GRF_B, 1)),      # B2 = B0 + B1
        encode_instruction(OP_FILL, (T_GRF_A, 2), (T_SRF, 0)),                     # A2 = bcast s0
        encode_instruction(OP_MOV, (T_GRF_A, 3), (T_BANK, 0)),                     # A3 = w
        encode_instruction(OP_NOP),
        encode_instruction(OP_MAC, (T_GRF_B, 3), (T_GRF_A, 3), (T_GRF_A, 2)),      # B3 += w·s0
        jump(7, 3),                                                                # 3 times
        pim.EXIT_WORD,
    ]
    cmds = [_c(0, MODE, row=AB)]
    cmds += [_c(1 + slot, WRREG, 0, reg(F_CRF, slot), 0, word.to_bytes(4, "little"))
             for slot, word in enumerate(program)]
    cmds += [_c(20, WRREG, 0, reg(F_GRF_A, 1), 0, a1.tobytes()),
             _c(21, WRREG, 0, reg(F_SRF, 0), 0, s0.tobytes() + bytes(6)),
             _c(22, ACTAB, ALL, 1),
             _c(40, WRAB, ALL, 0, 0, w.tobytes()),        # AB mode: a broadcast write
             _c(41, MODE, row=AB_PIM)]
    cmds += [_c(60 + 4 * i, RDAB, ALL, 0, 0) for i in range(10)]
    model = PimModel(config)
    results = model.run(cmds)
    assert all(r.accepted for r in results), [(c, r.rule) for c, r in
                                              zip(cmds, results, strict=True)]
    wl, al = w.astype(np.int64).reshape(4, 2), a1.astype(np.int64).reshape(4, 2)
    sl = s0.astype(np.int64)
    b0 = (wl * al).sum(1) + (wl * sl).sum(1)
    b1 = b0 + (al * sl).sum(1)
    b2 = b0 + b1
    b3 = 3 * (wl * sl).sum(1)
    assert model.grf_b[0, :4].view(np.int32).tolist() == [b0.tolist(), b1.tolist(),
                                                          b2.tolist(), b3.tolist()]
    assert model.grf_a[0, 2].tobytes() == np.tile(s0, 4).tobytes()
    assert model.grf_a[0, 3].tobytes() == w.tobytes()
    # 10 triggers: slots 0..7, then the loop body twice more (the JUMP costs no trigger)
    assert model.pc[0] == 9 and not model.halted[0]
    t = 100
    assert model.execute(_c(t, RDAB, ALL, 0, 0)).accepted and model.halted[0]   # EXIT
    before = model.snapshot()
    assert model.execute(_c(t + 4, RDAB, ALL, 0, 0)).accepted                   # halted: no-op
    assert np.array_equal(model.snapshot()["grf_b"], before["grf_b"])
    r = model.execute(_c(t + 5, RDRC, 0, reg(F_GRF_B, 0), 0))
    assert np.frombuffer(r.read, np.int32).tolist() == b0.tolist()[:2]
    assert model.grf_b[0, 0, :2].tolist() == [0, 0] and model.grf_b[0, 0, 2] != 0
    assert model.execute(_c(t + 6, RDREG, 0, reg(F_CRF, 8), 0)).read[:4] \
        == jump(7, 3).to_bytes(4, "little")
    # re-entering AB_PIM restarts every unit at slot 0
    model.execute(_c(t + 7, MODE, row=AB))
    model.execute(_c(t + 8, MODE, row=AB_PIM))
    assert model.pc[0] == 0 and not model.halted[0]


def test_trigger_reads_each_units_own_open_row():
    """Per-bank units: EVEN and ODD banks hold different all-bank rows; FILL GRF_A ← BANK with
    AAM-free operands loads each unit's own bank, row and the command's column."""
    config = PimConfig(**dict(SMALL, banks=4))
    model = PimModel(config)
    fill = encode_instruction(OP_FILL, (T_GRF_A, 0), (T_BANK, 0))
    cmds = [_c(0, MODE, row=AB), _c(1, WRREG, 0, reg(F_CRF, 0), 0, fill.to_bytes(4, "little")),
            _c(2, WRREG, 0, reg(F_CRF, 1), 0, jump(0, 0).to_bytes(4, "little"))]
    assert all(r.accepted for r in model.run(cmds))
    t = 10
    for bank in range(4):          # single-bank writes (dual row buffer: legal in AB mode)
        row = 3 + bank % 2
        for cmd in ([_c(0, ACT, bank, row), _c(0, WR, bank, 0, 5, bytes([bank, row]) * 4),
                     _c(0, PRE, bank)]):
            t = model.checker.earliest(cmd, t)
            assert model.execute(Command(t, cmd.code, cmd.bank, cmd.row, cmd.column,
                                         cmd.data)).accepted
    for cmd in [_c(0, ACTAB, EVEN, 3), _c(0, ACTAB, ODD, 4), _c(0, MODE, row=AB_PIM),
                _c(0, RDAB, ALL, 0, 5)]:
        t = model.checker.earliest(cmd, t + 1)
        assert model.execute(Command(t, cmd.code, cmd.bank, cmd.row, cmd.column)).accepted
    for bank in range(4):
        assert model.grf_a[bank, 0].tobytes() == bytes([bank, 3 + bank % 2]) * 4


def test_instruction_encoding_round_trip():
    word = encode_instruction(OP_MAD, (T_GRF_B, 5), (T_GRF_A, 3), (T_SRF, 7), 9, aam=True,
                              ag=2, ax=3)
    d = pim.decode_instruction(word)
    assert (d["op"], d["dst_t"], d["dst_i"], d["s0_t"], d["s0_i"], d["s1_t"], d["s1_i"],
            d["s2_i"], d["aam"], d["ag"], d["ax"]) == (OP_MAD, T_GRF_B, 5, T_GRF_A, 3, T_SRF,
                                                       7, 9, 1, 2, 3)
    assert pim.decode_instruction(jump(17, 1000))["target"] == 17
    assert pim.decode_instruction(jump(17, 1000))["count"] == 1000
    with pytest.raises(ValueError):
        encode_instruction(OP_MAC, (T_GRF_B, 16))


# ----------------------------------------------------------------------------------------------
# Dual row buffer, refresh, traces
# ----------------------------------------------------------------------------------------------


def _write_rows(model, rows, start):
    """Fill ``rows`` of every bank with recognisable data through single-bank commands."""
    config, data, t = model.config, {}, start
    for row in rows:
        for bank in range(config.banks):
            for cmd in [_c(0, ACT, bank, row)] + [
                    _c(0, WR, bank, 0, col, bytes([bank, row, col]).ljust(8, b"\0"))
                    for col in range(config.columns)] + [_c(0, PRE, bank)]:
                t = model.checker.earliest(cmd, t)
                cmd = Command(t, cmd.code, cmd.bank, cmd.row, cmd.column, cmd.data)
                assert model.execute(cmd).accepted
                if cmd.code == WR:
                    data[(bank, row, cmd.column)] = cmd.data
    return data, t


@pytest.mark.parametrize("dual", [True, False])
def test_normal_reads_beside_the_units(dual):
    config = PimConfig(**dict(SMALL, banks=4, tREFI=60000), dual_row_buffer=dual)
    gen = torch.Generator().manual_seed(11)
    w, x = ints(gen, 16, 64), ints(gen, 64)
    program = gemv_program(w, x, config)
    model = PimModel(config)
    model.run(program.load)
    other = [10, 11]
    assert program.plan.rows_used <= other[0]
    data, t = _write_rows(model, other, model.cycles + 10)
    results = []

    def execute(cmd):
        results.append(model.execute(cmd))
        return results[-1]

    traffic = pim.read_traffic(config, other, model.checker)
    if not dual:     # one row buffer: reads and the units exclude each other (mode rule)
        with pytest.raises(RuntimeError, match="deadlock"):
            pim.schedule_gemv(program.plan, x, model.checker, start=t + 1, execute=execute,
                              traffic=traffic)
        return
    issued, _ = pim.schedule_gemv(program.plan, x, model.checker, start=t + 1,
                                  execute=execute, traffic=traffic)
    assert all(r.accepted for r in results)
    reads = [(cmd, tag, r) for (cmd, tag), r in zip(issued, results, strict=True)
             if cmd.code == RD]
    triggers = [cmd.cycle for cmd, _ in issued if cmd.code == RDAB]
    assert len(reads) == len(other) * config.banks * config.columns
    assert reads[-1][0].cycle < triggers[-1]           # concurrent, not after the GEMV
    for _, (_, bank, row, col), r in reads:
        assert r.read == data[(bank, row, col)]
    y = pim.collect_readback(program.plan, zip(results, [tag for _, tag in issued],
                                               strict=True), single=True)
    assert torch.equal(y, reference(w, x))


def test_long_gemv_refreshes_on_time():
    config = PimConfig(**dict(SMALL, banks=2, tREFI=400, tRFC=40))
    gen = torch.Generator().manual_seed(2)
    w, x = ints(gen, 16, 96), ints(gen, 2, 96)
    y, program, model = run_gemv(w, x, config)
    assert torch.equal(y, reference(w, x))
    refs = [cmd.cycle for cmd in program.commands if cmd.code == REF]
    assert len(refs) >= program.commands[-1].cycle // 400 - 1
    assert model.checker.overdue == 0 and model.counters["refreshes"] == len(refs)


def test_trace_table_round_trip():
    config = PimConfig(**RULES_CONFIG, dual_row_buffer=False)
    cmds = [_c(0, ACT, 0, 1), _c(5, WR, 0, 0, 2, bytes(range(8))), _c(6, RD, 0, 0, 2),
            _c(9, RD, 0, 0, 2), _c(9, MODE, row=AB)]
    table = pim.commands_to_table(cmds, config)
    assert table.shape == (5, 5 + 2)
    out = pim.run_trace(table, config)
    assert out["accepted"].tolist() == [1, 1, 0, 1, 0]
    assert [pim.RULES[r] for r in out["rule"]] == ["ok", "ok", "tCCD_L", "ok", "not_precharged"]
    assert out["read_data"][3].tolist() == [0x03020100, 0x07060504]
    assert int(out["rejected_count"]) == 2 and int(out["cycles"]) == 10
    assert out["rejected_by_rule"].shape == (len(pim.RULES),)
    # unsorted rows run in (cycle, port P first) order; results stay in table order
    out2 = pim.run_trace(table[[4, 0, 3, 1, 2]], config)
    assert out2["rule"].tolist() == [out["rule"][i] for i in (4, 0, 3, 1, 2)]
    for bad, words in ((table[:, :5], "integer table"), (table * np.array([1, 16] + [1] * 5),
                                                         "code=16"),
                       (table + np.array([0, 0, 0, 1 << 16, 0, 0, 0]), "row=65537")):
        with pytest.raises(ValueError, match=words):
            pim.run_trace(bad, config)


# ----------------------------------------------------------------------------------------------
# Cycle model and the GPT decode step
# ----------------------------------------------------------------------------------------------


def test_cycle_model_near_the_internal_bound_with_pair_units():
    config = PimConfig(banks=16, unit="pair", rows=512)
    r = pim.gemv_cycles(1024, 768, config)
    assert r["efficiency"] >= 0.9
    speedup = pim.external_read_cycles(r["w_bytes"], config) / r["cycles"]
    assert speedup >= 0.9 * config.ideal_ratio


def test_decode_gemv_shapes():
    small = {g.name: (g.out, g.inputs, g.count) for g in decode_gemvs(GPT2_SMALL, 127)}
    assert small == {"qkv": (2304, 768, 1), "score": (128, 64, 12), "context": (64, 128, 12),
                     "proj": (768, 768, 1), "fc": (3072, 768, 1), "fc2": (768, 3072, 1)}
    medium = {g.name: (g.out, g.inputs) for g in decode_gemvs(GPT2_MEDIUM, 0)}
    assert medium["fc"] == (4096, 1024) and medium["score"] == (1, 64)


def test_int8_decode_step_through_the_pim_model():
    dims = GPTDims(16, 2, 32)
    gen = torch.Generator().manual_seed(4)
    weights = random_weights(dims, gen, std=0.3)
    cache = random_cache(dims, 5, gen)
    x = torch.randn(16, generator=gen, dtype=torch.float64)
    y_float, _ = decode_step(x, weights, cache, dims)
    qw, qc = quantize_weights(weights), quantize_cache(cache)
    y_ref, _, calls = decode_step_int8(x, qw, qc, dims)
    config = PimConfig(**SMALL)

    def pim_gemv(w, v):
        return run_gemv(w, v, config)[0]

    y_pim, _, _ = decode_step_int8(x, qw, qc, dims, gemv=pim_gemv)
    assert torch.equal(y_pim, y_ref)
    assert [name for name, _, _ in calls] == ["qkv", "score", "context", "score", "context",
                                              "proj", "fc", "fc2"]
    assert (y_ref - y_float).abs().max() < 0.15 * y_float.abs().max()

"""The PIM command-stream generators (sim.pim_traces) against the golden model: legal streams are
accepted command by command and reach every code, mode, register file, opcode and instruction
form; each rule's illegal stream is rejected by exactly that rule, retries on time and ends with
reads; mixed streams are rejected by many rules; the unreachable rules are the ones derived by
hand for each configuration."""
from __future__ import annotations

import random

import numpy as np
import pytest

from golden import pim
from golden.pim import (
    AB,
    AB_PIM,
    ACTAB,
    ALL,
    EVEN,
    N_CODES,
    ODD,
    OP_EXIT,
    OP_JUMP,
    OP_NOP,
    OPS,
    PREAB,
    RD,
    RDAB,
    RDRC,
    RDREG,
    RULES,
    WRAB,
    WRREG,
    Command,
    PimModel,
    check_trace_table,
    commands_to_table,
    run_trace,
)
from hdl.pim.config import PimConfig
from sim.pim_traces import (
    CYCLE_LIMIT,
    INSTRUCTION_FORMS,
    coverage,
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

# bf16 lanes of random bits overflow in the golden model's numpy arithmetic (as intended)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")

SMALL = dict(rows=8, columns=8, column_bits=64, lanes=4)
OVERRIDES = dict(banks=8, rows=8, columns=4, column_bits=64, lanes=4, bank_groups=4, tRCD=5,
                 tRP=6, tRAS=12, tRC=20, tRRD_S=2, tRRD_L=3, tCCD_S=2, tCCD_L=3, tWR=4,
                 tRTP=3, tFAW=16, tREFI=400, tRFC=30)
ONE_CYCLE = dict(banks=2, rows=1, columns=4, column_bits=64, lanes=4, tRCD=1, tRP=1, tRAS=1,
                 tRTP=1, tCCD_L=1, tCCD_S=1, tRRD_S=1, tRRD_L=1)

#: (settings, rules unreachable for them, derived by hand from docs/pim.md's rules)
CONFIGS = {
    # hbm2: tRC = tRAS + tRP = 48; tCCD_S = 1 (same port, one cycle)
    "default": ({}, {"tRC", "tCCD_S"}),
    # one bank: every activation is in group 0 (tRRD_S), two buffers only and reopening one
    # takes tRC = 48 ≥ tFAW = 30
    "1 bank": (dict(SMALL, banks=1), {"tRC", "tRRD_S", "tFAW", "tCCD_S"}),
    # gddr6 pair units, one buffer: 4 banks in 4 groups (no two ACTs share a group, reopening
    # takes 78 > tRRD_L), 4 · tRRD_S = 36 ≥ tFAW = 32
    "4 banks pair gddr6 single": (dict(banks=4, unit="pair", dual_row_buffer=False,
                                       timing="gddr6"),
                                  {"row_conflict", "tRC", "tRRD_L", "tFAW"}),
    "16 banks pair": (dict(SMALL, banks=16, unit="pair"), {"tRC", "tCCD_S"}),
    # gddr6 with 16 banks: tRRD_L = tRRD_S = 9 is still reachable (tRRD_L is reported first)
    "16 banks gddr6 bf16 single": (dict(banks=16, rows=16, columns=8, column_bits=128, lanes=8,
                                        dual_row_buffer=False, timing="gddr6",
                                        arithmetic="bf16"),
                                   {"row_conflict", "tRC", "tFAW"}),
    "overrides": (OVERRIDES, set()),
    "one-cycle single G=1": (dict(ONE_CYCLE, bank_groups=1, dual_row_buffer=False),
                             {"row_conflict", "tRP", "tRAS", "tRTP", "tRCD", "tCCD_L", "tRRD_L",
                              "tRRD_S", "tFAW", "tCCD_S"}),
    # the dual buffer makes tRRD_S reachable at tRRD_S = 1 (ACTAB EVEN and ACT 1 in a cycle),
    # not tRRD_L: with one row an ACT of a bank of the ACTAB's set is a row_conflict
    "one-cycle dual G=2": (dict(ONE_CYCLE, bank_groups=2),
                           {"tRP", "tRAS", "tRTP", "tRCD", "tCCD_L", "tRRD_L", "tFAW",
                            "tCCD_S"}),
}
#: Configurations big enough for every instruction form within a 1500-command stream.
FULL_COVERAGE = ["default", "1 bank", "4 banks pair gddr6 single", "16 banks pair",
                 "16 banks gddr6 bf16 single", "overrides"]
TINY = dict(banks=2, unit="pair", rows=2, columns=4, column_bits=64, lanes=2, grf=2, srf=1,
            crf=4, tREFI=200, tRFC=20)


def _config(name: str) -> PimConfig:
    return PimConfig(**CONFIGS[name][0])


def _run(commands: list[Command], config: PimConfig) -> dict[str, np.ndarray]:
    table = commands_to_table(commands, config)
    check_trace_table(table, config)
    return run_trace(table, config)


# ----------------------------------------------------------------------------------------------
# Legal streams
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_legal_stream_is_accepted_and_reaches_every_code(name):
    config = _config(name)
    commands = legal_stream(config, random.Random(1), 1500)
    assert len(commands) >= 1500
    assert commands == legal_stream(config, random.Random(1), 1500)        # seeded
    assert sorted_order(commands) == list(range(len(commands)))
    assert all(0 <= cmd.cycle < CYCLE_LIMIT for cmd in commands)
    out = _run(commands, config)
    bad = [(str(commands[i]), RULES[out["rule"][i]]) for i in np.nonzero(out["accepted"] == 0)[0]]
    assert not bad, bad[:5]
    cov = coverage(config, commands)
    assert cov["codes"] == set(range(15))
    assert {(code, file) for code in (WRREG, RDREG) for file in range(4)} | {(RDRC, 1)} \
        <= cov["registers"]
    sets = [s for s in (ALL, EVEN, ODD) if s != ODD or config.banks > 1]
    trigger_sets = [s for s in sets if not (config.unit == "pair" and s == ALL)]
    assert {(code, s) for code in (ACTAB, PREAB) for s in sets} \
        <= {(code, s) for code, *_, s in cov["all_bank"] if code in (ACTAB, PREAB)}
    assert {(ACTAB, mode, ALL) for mode in (AB, AB_PIM)} <= cov["all_bank"]
    assert {(code, AB_PIM, s) for code in (RDAB, WRAB) for s in trigger_sets} | {(WRAB, AB, ALL)} \
        <= cov["all_bank"]
    if config.dual_row_buffer:
        assert {("N", AB), ("N", AB_PIM)} <= cov["all_bank"] and cov["same_cycle_pn"] > 10
    reads = out["has_read"].astype(bool)
    assert reads.sum() > 120 and np.count_nonzero(out["read_data"][reads].any(axis=1)) > 40
    assert int(out["refreshes"]) > 0 and int(out["triggers"]) > 100


@pytest.mark.parametrize("name", FULL_COVERAGE)
def test_legal_stream_runs_every_instruction_form(name):
    config = _config(name)
    commands = legal_stream(config, random.Random(1), 1500)
    cov = coverage(config, commands)
    data_ops = {OPS[op] for op in ("MAC", "MUL", "MAD", "ADD", "MOV", "FILL")}
    assert {OP_NOP, OP_JUMP, OP_EXIT} | data_ops <= cov["ops"]
    assert cov["ops"] - set(OPS.values()), "no reserved opcode executed"
    assert cov["counters"]["illegal_instructions"] > 0
    assert {form[:4] for form in cov["forms"]} == set(INSTRUCTION_FORMS)
    assert cov["bank_writes"] == {WRAB}
    assert cov["jumps"] == {"trigger", "counted", "unconditional", "exit"}


def test_legal_streams_run_every_form_with_and_without_aam():
    seen = set()
    for name in FULL_COVERAGE:
        config = _config(name)
        seen |= coverage(config, legal_stream(config, random.Random(1), 1500))["forms"]
    assert {(*form, aam) for form in INSTRUCTION_FORMS for aam in (0, 1)} <= seen


def test_legal_stream_with_tiny_registers_and_overdue_refreshes():
    config = PimConfig(**TINY)
    commands = legal_stream(config, random.Random(2), 1500)
    out = _run(commands, config)
    assert out["accepted"].all()
    cov = coverage(config, commands)
    assert cov["codes"] == set(range(15))
    assert int(out["refresh_overdue"]) > 0 and int(out["refreshes"]) > 10


def test_sorted_order_is_the_order_run_trace_decides_in():
    config = _config("overrides")
    commands = mixed_stream(config, random.Random(4), 400)
    out = _run(commands, config)
    rng = random.Random(5)
    shuffled = list(range(len(commands)))
    rng.shuffle(shuffled)
    # two commands of one port in one cycle keep their order (the later one is rejected)
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(len(commands)):
        groups.setdefault((commands[i].cycle, commands[i].port), []).append(i)
    slots = {key: iter(members) for key, members in groups.items()}
    shuffled = [next(slots[(commands[i].cycle, commands[i].port)]) for i in shuffled]
    permuted = [commands[i] for i in shuffled]
    again = _run(permuted, config)
    for key in ("accepted", "rule", "has_read", "read_data"):
        assert np.array_equal(again[key], out[key][shuffled]), key
    order = sorted_order(permuted)
    assert [permuted[i] for i in order] == commands
    same = [Command(5, RD, 0), Command(5, pim.NOP), Command(4, RD), Command(5, WRREG)]
    assert sorted_order(same) == [2, 1, 3, 0]
    assert all((cmd.code in N_CODES) == (cmd.port == pim.PORT_N) for cmd in same)


def test_row_writes_after_a_prefix():
    config = _config("default")
    prefix = legal_stream(config, random.Random(6), 200)
    writes = row_writes(config, prefix, [1, 2], random.Random(7))
    out = _run(prefix + writes, config)
    assert out["accepted"].all()
    assert sum(cmd.code == pim.WR for cmd in writes) == 2 * config.banks * config.columns


@pytest.mark.parametrize("name", ["1 bank", "4 banks pair gddr6 single", "overrides"])
def test_streams_from_reset_run_the_same_after_an_erase(name):
    """After ``erase`` (every bank column and register zeroed, SB mode, all closed) a stream
    generated from reset, shifted past it, is decided exactly as from reset."""
    config = _config(name)
    model = PimModel(config)
    model.mem[:] = 0x5A
    model.grf_a[:], model.grf_b[:], model.srf[:], model.crf[:] = 1, 2, 3, 4
    cleared = erase(config)
    assert all(r.accepted for r in model.run(cleared))
    fresh = PimModel(config)
    for key in ("mem", "grf_a", "grf_b", "srf", "crf"):
        assert np.array_equal(getattr(model, key), getattr(fresh, key)), key
    assert model.checker.mode == pim.SB and model.pc == fresh.pc
    origin = model.cycles + quiet_cycles(config)
    streams = [mixed_stream(config, random.Random(8), 400),
               *illegal_streams(config, random.Random(9)).values()]
    for commands in streams:
        alone = _run(commands, config)
        after = _run(cleared + shifted(commands, origin), config)
        for key in ("accepted", "rule", "has_read", "read_data"):
            assert np.array_equal(after[key][len(cleared):], alone[key]), key


# ----------------------------------------------------------------------------------------------
# Illegal streams
# ----------------------------------------------------------------------------------------------


def _same(a: Command, b: Command) -> bool:
    return (a.code, a.bank, a.row, a.column, a.data) == (b.code, b.bank, b.row, b.column, b.data)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_rule_has_a_stream_rejected_by_it(name):
    config = _config(name)
    expected_unreachable = CONFIGS[name][1]
    assert set(unreachable_rules(config)) == expected_unreachable
    streams = illegal_streams(config, random.Random(3))
    assert set(streams) == set(RULES[1:]) - expected_unreachable
    timing = set(RULES[RULES.index("tRFC"):])
    for rule, commands in streams.items():
        assert sorted_order(commands) == list(range(len(commands))), rule
        out = _run(commands, config)
        rejected = np.nonzero(out["accepted"] == 0)[0]
        assert len(rejected) >= 1, rule
        assert {RULES[r] for r in out["rule"][rejected]} == {rule}
        assert int(out["rejected_by_rule"][RULES.index(rule)]) == len(rejected)
        assert out["has_read"][rejected[-1]:].any(), f"{rule}: no read after the last rejection"
        if rule in ("code", "address"):
            continue
        # every rejected command is offered again unchanged and accepted; a timing rule's
        # retry comes at the command's first legal cycle, right after the early offer
        model = PimModel(config)
        retries = {}
        for i in rejected:
            later = [j for j in range(i + 1, len(commands)) if out["accepted"][j]
                     and _same(commands[j], commands[i])]
            assert later, f"{rule}: {commands[i]} is never retried"
            retries[later[0]] = i
        for j, cmd in enumerate(commands):
            if j in retries and rule in timing:
                early = commands[retries[j]]
                assert model.checker.earliest(cmd, early.cycle) == cmd.cycle, (rule, str(cmd))
                assert cmd.cycle > early.cycle
            model.execute(cmd)


def test_unreachable_reasons_name_the_numbers():
    reasons = unreachable_rules(_config("default"))
    assert "48" in reasons["tRC"] and "tCCD_S = 1" in reasons["tCCD_S"]
    reasons = unreachable_rules(_config("4 banks pair gddr6 single"))
    assert "tFAW = 32" in reasons["tFAW"] and "tRRD_S = 9" in reasons["tFAW"]


# ----------------------------------------------------------------------------------------------
# Mixed streams
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "4 banks pair gddr6 single", "16 banks pair",
                                  "overrides"])
def test_mixed_stream_is_rejected_by_many_rules(name):
    config = _config(name)
    commands = mixed_stream(config, random.Random(5), 1500)
    assert commands == mixed_stream(config, random.Random(5), 1500)
    out = _run(commands, config)
    rules = {RULES[r] for r in out["rule"] if r}
    assert len(rules) >= 12, rules
    assert {"port", "code", "address"} <= rules
    assert 60 < int(out["rejected_count"]) < len(commands) // 2
    assert any(cmd.code == 15 for cmd in commands)
    assert int(out["has_read"].sum()) > 100

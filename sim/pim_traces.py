"""Raw command streams for the PIM channel (docs/pim.md): random legal streams that reach every
command, mode, register file and instruction form; one short stream per rejection rule; legal
streams with illegal commands mixed in.

Every stream is built against a shadow golden model (:class:`golden.pim.PimModel`): each
command's cycle comes from the checker's own ``earliest`` (plus a random extra delay), and its
outcome is known when it is generated. The lists are in (cycle, port P before port N) order, the
order ``run_trace`` and the RTL decide in; :func:`golden.pim.commands_to_table` turns them into
the ``commands`` table of ``sim --inputs``.
"""
from __future__ import annotations

import copy
import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from golden.pim import (
    AB,
    AB_PIM,
    ACT,
    ACTAB,
    ALL,
    CODES,
    EVEN,
    EXIT_WORD,
    F_CRF,
    F_GRF_A,
    F_GRF_B,
    F_SRF,
    NOP,
    ODD,
    OP_ADD,
    OP_EXIT,
    OP_FILL,
    OP_JUMP,
    OP_MAC,
    OP_MAD,
    OP_MOV,
    OP_MUL,
    OP_NOP,
    PORT_N,
    PORT_P,
    PRE,
    PREA,
    PREAB,
    RD,
    RDAB,
    RDRC,
    RDREG,
    REF,
    RULES,
    SB,
    T_BANK,
    T_GRF_A,
    T_GRF_B,
    T_SRF,
    WR,
    WRAB,
    WRREG,
    Checker,
    Command,
    PimModel,
    Result,
    decode_instruction,
    encode_instruction,
    jump,
)
from hdl.pim.config import PimConfig

__all__ = ["CYCLE_LIMIT", "INSTRUCTION_FORMS", "coverage", "erase", "illegal_streams",
           "instruction_form", "legal_stream", "mixed_stream", "quiet_cycles", "row_writes",
           "shifted", "sorted_order", "unreachable_rules"]

#: Offered cycles stay below this (the command beat's cycle field is 32 bits wide).
CYCLE_LIMIT = 1 << 31
#: The legal instruction forms (docs/pim.md, "ISA"): (op, dst type, s0 type, s1 type); ``None``
#: where the operand is unused (its type field is then random).
INSTRUCTION_FORMS: tuple[tuple[int, int, int, int | None], ...] = (
    *((op, T_GRF_B, s0, s1) for op in (OP_MAC, OP_MUL, OP_MAD) for s0 in (T_BANK, T_GRF_A)
      for s1 in (T_GRF_A, T_SRF)),
    (OP_ADD, T_GRF_B, T_GRF_B, T_GRF_B),
    (OP_MOV, T_GRF_A, T_GRF_A, None),
    (OP_MOV, T_GRF_A, T_BANK, None),
    (OP_MOV, T_GRF_B, T_GRF_B, None),
    (OP_MOV, T_BANK, T_GRF_A, None),
    (OP_FILL, T_GRF_A, T_BANK, None),
    (OP_FILL, T_GRF_A, T_SRF, None),
)
_FORM_KEYS = {(op, dst, s0): s1 for op, dst, s0, s1 in INSTRUCTION_FORMS}
_RESERVED_OPS = (3, 10, 11, 12, 13, 14, 15)


def quiet_cycles(config: PimConfig) -> int:
    """Cycles after which no timing rule looks back any more (every window has run out)."""
    t = config.timing_values
    return 1 + max(t["tRC"], t["tRAS"] + t["tRP"], t["tRFC"], t["tFAW"],
                   t["tWL"] + t["tBL"] + t["tWR"], t["tRRD_L"], t["tCCD_L"], t["tBL"],
                   t["tRCD"] + t["tRTP"])


def shifted(commands: Sequence[Command], offset: int) -> list[Command]:
    """``commands`` ``offset`` cycles later. A stream generated from reset stays legal after
    any state with every buffer closed, SB mode, units at reset and all timing windows run
    out (:func:`quiet_cycles`), e.g. after :func:`erase`: refresh ticks fall elsewhere, which
    changes no rule."""
    return [dataclasses.replace(cmd, cycle=cmd.cycle + offset) for cmd in commands]


def erase(config: PimConfig) -> list[Command]:
    """From reset: zeros into every column of every row of every bank (AB-mode broadcast
    writes, a REF between rows when one is due) and into every register of every unit
    (broadcast WRREG), ending in SB mode with every buffer closed: the golden model's state
    at reset, whatever the memories held before."""
    b = _Builder(config, random.Random(0))
    b.set_mode(AB)
    zero = bytes(config.column_bytes)
    for row in range(config.rows):
        b.place(ACTAB, ALL, row)
        for column in range(config.columns):
            b.place(WRAB, ALL, 0, column, zero)
        b.place(PREAB, ALL)
        if b.due():
            b.place(REF)
    c = config
    for file, size in ((F_GRF_A, c.grf), (F_GRF_B, c.grf), (F_SRF, c.srf), (F_CRF, c.crf)):
        for index in range(size):
            for piece in range(c.acc_pieces if file == F_GRF_B else 1):
                b.place(WRREG, 0, _reg(file, index), piece, zero)
    b.set_mode(SB)
    return b.commands


def sorted_order(commands: Sequence[Command]) -> list[int]:
    """Indices of ``commands`` in decision order: by cycle, port P before port N, stably (the
    order of :func:`golden.pim.run_trace` and of the RTL's status beats)."""
    return sorted(range(len(commands)), key=lambda i: (commands[i].cycle, commands[i].port))


def instruction_form(word: int) -> tuple[int, int, int, int | None] | None:
    """The :data:`INSTRUCTION_FORMS` entry of a legal data instruction, else None (NOP, JUMP,
    EXIT and illegal words)."""
    d = decode_instruction(word)
    key = (d["op"], d["dst_t"], d["s0_t"])
    if key not in _FORM_KEYS:
        return None
    s1 = _FORM_KEYS[key]
    if s1 is None:
        return (*key, None)
    if d["op"] == OP_ADD:
        return (*key, d["s1_t"]) if d["s1_t"] == T_GRF_B else None
    return (*key, d["s1_t"]) if (*key, d["s1_t"]) in INSTRUCTION_FORMS else None


def _reg(file: int, index: int) -> int:
    return (file << 5) | index


def _word(value: int, rng: random.Random, column_bytes: int) -> bytes:
    """A CRF write's data: the word in bytes 0..3, random bytes after it (ignored)."""
    return value.to_bytes(4, "little") + rng.randbytes(column_bytes - 4)


# ----------------------------------------------------------------------------------------------
# Instructions
# ----------------------------------------------------------------------------------------------


def _random_instruction(rng: random.Random, deck: list | None = None) -> int:
    """Mostly legal data instructions of every form (AAM on or off, any ag/ax, any indices;
    forms dealt from ``deck``, refilled with every form when empty, so that all come round),
    some NOPs (with junk in the unused fields), illegal words and EXITs."""
    r = rng.random()
    if r < 0.8:
        if deck is None:
            deck = []
        if not deck:
            deck.extend(INSTRUCTION_FORMS)
            rng.shuffle(deck)
        return _instruction(rng, deck.pop())
    if r < 0.87:
        return (OP_NOP << 28) | (rng.getrandbits(27) << 1 if rng.random() < 0.5 else 0)
    if r < 0.97:
        return _illegal_instruction(rng)
    return EXIT_WORD


def _instruction(rng: random.Random, form: tuple[int, int, int, int | None]) -> int:
    """An instruction of ``form`` with random indices, AAM, ag and ax (and a random type for an
    unused s1)."""
    op, dst, s0, s1 = form
    s1 = rng.randrange(4) if s1 is None else s1
    return encode_instruction(op, (dst, rng.randrange(16)), (s0, rng.randrange(16)),
                              (s1, rng.randrange(16)), rng.randrange(16),
                              aam=rng.random() < 0.5, ag=rng.randrange(4), ax=rng.randrange(4))


def _near_misses() -> tuple[tuple[int, int, int, int], ...]:
    """Every legal form with one operand type changed so that it is no longer legal (the
    illegal words a decoder is most likely to accept by mistake)."""
    misses = set()
    for op, dst, s0, s1 in INSTRUCTION_FORMS:
        for position in range(3):
            for kind in range(4):
                fields = [dst, s0, 0 if s1 is None else s1]
                fields[position] = kind
                word = encode_instruction(op, (fields[0], 0), (fields[1], 0), (fields[2], 0))
                if instruction_form(word) is None:
                    misses.add((op, *fields))
    return tuple(sorted(misses))


_NEAR_MISSES = _near_misses()


def _illegal_instruction(rng: random.Random) -> int:
    """A reserved opcode, a near miss of a legal form, or a data opcode with any operand
    combination outside its forms."""
    r = rng.random()
    if r < 0.3:
        return (rng.choice(_RESERVED_OPS) << 28) | (rng.getrandbits(27) << 1)
    if r < 0.7:
        op, dst, s0, s1 = rng.choice(_NEAR_MISSES)
        return encode_instruction(op, (dst, rng.randrange(16)), (s0, rng.randrange(16)),
                                  (s1, rng.randrange(16)), rng.randrange(16),
                                  aam=rng.random() < 0.5, ag=rng.randrange(4),
                                  ax=rng.randrange(4))
    while True:
        op = rng.choice((OP_MAC, OP_MUL, OP_MAD, OP_ADD, OP_MOV, OP_FILL))
        dst, s0, s1 = rng.randrange(4), rng.randrange(4), rng.randrange(4)
        word = encode_instruction(op, (dst, rng.randrange(16)), (s0, rng.randrange(16)),
                                  (s1, rng.randrange(16)), rng.randrange(16),
                                  aam=rng.random() < 0.5, ag=rng.randrange(4),
                                  ax=rng.randrange(4))
        if instruction_form(word) is None:
            return word


def _program(rng: random.Random, crf: int, deck: list) -> list[int]:
    """A random program from slot 0: data instructions, at most one counted loop (a JUMP back
    with count 1..4), ending in an unconditional JUMP, an EXIT or nothing (running into older
    slots); sometimes a JUMP in slot 0 (a trigger of its own), two JUMPs in a row or a JUMP past
    the CRF (the unit halts)."""
    length = rng.randint(2, crf)
    words = [_random_instruction(rng, deck) for _ in range(length)]
    if length >= 3 and rng.random() < 0.6:
        slot = rng.randrange(1, length - 1)
        words[slot] = jump(rng.randrange(slot + 1), rng.randint(1, 4))
    end = rng.random()
    if end < 0.45:
        words[-1] = jump(rng.randrange(length // 2 + 1), 0)
    elif end < 0.65:
        words[-1] = EXIT_WORD
    if rng.random() < 0.1:
        words[0] = jump(rng.randrange(length), 0)
    if length >= 3 and rng.random() < 0.08:
        slot = rng.randrange(length - 1)
        words[slot], words[slot + 1] = jump(slot + 1, 0), jump(0, 0)
    if crf < 32 and rng.random() < 0.04:
        words[rng.randrange(length)] = jump(rng.randrange(crf, 32), 0)
    return words


# ----------------------------------------------------------------------------------------------
# The stream builder: a shadow golden model and the commands offered to it
# ----------------------------------------------------------------------------------------------


class _Mismatch(RuntimeError):
    """A generated command did not get the outcome its generator meant (a generator bug)."""


def _no_bank_writes(cmd: Command) -> bool:
    return False


class _Builder:
    """Offers commands to a shadow :class:`PimModel` and records them; helpers place a command
    at its earliest legal cycle, one cycle before it (a timing violation), or anywhere."""

    def __init__(self, config: PimConfig, rng: random.Random,
                 model: PimModel | None = None) -> None:
        self.config = config
        self.rng = rng
        self.model = model or PimModel(config)
        self.checker = self.model.checker
        self.t = config.timing_values
        self.commands: list[Command] = []
        self.now = max(self.checker.last_cycle, 0)
        self.rows = rng.sample(range(config.rows), min(config.rows, 3))
        self.columns = rng.sample(range(config.columns), min(config.columns, 4))
        self.touched_mem: set[tuple[int, int, int]] = set()
        self.touched_regs: set[tuple[int, int, int, int]] = set()

    # -------------------------------------------------------------- state
    @property
    def mode(self) -> int:
        return self.checker.mode

    @property
    def dual(self) -> bool:
        return self.config.dual_row_buffer

    @property
    def n_allowed(self) -> bool:
        """Port-N commands are legal now (dual row buffer, or SB mode)."""
        return self.dual or self.mode == SB

    def open_row(self, bank: int, kind: int) -> int:
        return self.checker.open_row[bank][kind]

    def ab_open(self, bank: int) -> int:
        return self.checker.open_row[bank][self.checker.ab_kind]

    def set_banks(self, bank_set: int) -> list[int]:
        return self.checker.bank_set(bank_set) or []

    def sets(self) -> list[int]:
        """Non-empty bank sets."""
        return [s for s in (ALL, EVEN, ODD) if self.set_banks(s)]

    def random_set(self, sets: Sequence[int]) -> int:
        """ALL half of the time where it is allowed, else EVEN or ODD."""
        if ALL in sets and self.rng.random() < 0.5:
            return ALL
        return self.rng.choice([s for s in sets if s != ALL] or list(sets))

    def trigger_sets(self) -> list[int]:
        """Bank sets a trigger may name (pair units: EVEN and ODD only)."""
        return [s for s in self.sets() if not (self.config.unit == "pair" and s == ALL)]

    def due(self) -> int:
        self.checker.advance(self.now)     # ticks up to now: processed by the next offer anyway
        return self.checker.due

    # -------------------------------------------------------------- random fields
    def row(self) -> int:
        return self.rng.choice(self.rows) if self.rng.random() < 0.85 \
            else self.rng.randrange(self.config.rows)

    def column(self) -> int:
        return self.rng.choice(self.columns) if self.rng.random() < 0.85 \
            else self.rng.randrange(self.config.columns)

    def data(self) -> bytes:
        r = self.rng.random()
        if r < 0.1:
            return bytes([self.rng.choice((0x00, 0x7F, 0x80, 0xFF))]) * self.config.column_bytes
        return self.rng.randbytes(self.config.column_bytes)

    def free_row(self, banks: Sequence[int], kind: int) -> int | None:
        """A row that is not open in the other buffer of any of ``banks`` (row_conflict);
        the first row of the pool when it is free."""
        if not self.dual:
            return self.rows[0] if self.rng.random() < 0.5 else self.row()
        other = {self.open_row(b, 1 - kind) for b in banks}
        for row in (*self.rows, self.rng.randrange(self.config.rows),
                    *range(min(self.config.rows, len(banks) + 2))):
            if row not in other:
                return row
        return None

    # -------------------------------------------------------------- offering
    def free_cycle(self, port: int) -> int:
        """The first cycle at which a command of ``port`` may be offered (order and port)."""
        ck = self.checker
        cycle = max(self.now, ck.last_cycle, ck.port_cycle[port] + 1, 0)
        if cycle == ck.last_cycle and port < ck.last_port:
            cycle += 1
        return cycle

    def offer(self, cmd: Command) -> Result:
        """Offer any command (whatever the golden model decides)."""
        if not 0 <= cmd.cycle < CYCLE_LIMIT:
            raise _Mismatch(f"cycle {cmd.cycle} out of range: {cmd}")
        self._touch(cmd)
        result = self.model.execute(cmd)
        self.commands.append(cmd)
        self.now = cmd.cycle
        return result

    def expect(self, cmd: Command, rule: str = "ok") -> Result:
        result = self.offer(cmd)
        if result.rule != rule:
            raise _Mismatch(f"{cmd}: {result.rule}, meant {rule}")
        return result

    def rule_now(self, cmd: Command) -> str | None:
        """The rule that would reject ``cmd`` if offered at the next free cycle."""
        return self.checker.check(dataclasses.replace(cmd, cycle=self.free_cycle(cmd.port) + 1))

    def place(self, code: int, bank: int = 0, row: int = 0, column: int = 0, data: bytes = b"",
              *, extra: int = 0, not_before: int = 0) -> Command:
        """Offer a command at its earliest legal cycle plus ``extra`` (accepted)."""
        probe = Command(self.now, code, bank, row, column, data)
        cycle = self.checker.earliest(probe, self.now)
        if cycle is None:
            raise _Mismatch(f"{probe} is not legal in this state ({self.rule_now(probe)})")
        cmd = dataclasses.replace(probe, cycle=max(cycle + extra, not_before))
        self.expect(cmd)
        return cmd

    def reject(self, rule: str, code: int, bank: int = 0, row: int = 0, column: int = 0,
               data: bytes = b"") -> Command:
        """Offer a command at the next free cycle of its port; it must be rejected by ``rule``."""
        cmd = Command(0, code, bank, row, column, data)
        cmd = dataclasses.replace(cmd, cycle=self.free_cycle(cmd.port))
        self.expect(cmd, rule)
        return cmd

    def violation(self, rule: str, code: int, bank: int = 0, row: int = 0, column: int = 0,
                  data: bytes = b"", checker: Checker | None = None
                  ) -> tuple[Command, int] | None:
        """The command at the latest cycle before its earliest legal one at which ``rule`` is
        the rule that rejects it (usually one cycle early; earlier when a later-listed rule
        binds last, e.g. tBL > tCCD_S), and its earliest legal cycle; None if there is none."""
        ck = checker or self.checker
        now = max(ck.last_cycle, self.now if checker is None else 0, 0)
        probe = Command(now, code, bank, row, column, data)
        first = ck.earliest(probe, now)
        if first is None:
            return None
        for cycle in range(first - 1, max(now, ck.last_cycle, 0) - 1, -1):
            early = dataclasses.replace(probe, cycle=cycle)
            if cycle == ck.last_cycle and early.port < ck.last_port:
                break
            if ck.check(early) == rule:
                return early, first
        return None

    def violate(self, rule: str, code: int, bank: int = 0, row: int = 0, column: int = 0,
                data: bytes = b"") -> bool:
        """If the command can be offered early so that exactly ``rule`` rejects it: offer it
        there (rejected), then again at its first legal cycle (accepted)."""
        found = self.violation(rule, code, bank, row, column, data)
        if found is None:
            return False
        early, first = found
        self.expect(early, rule)
        self.expect(dataclasses.replace(early, cycle=first))
        return True

    def checker_copy(self) -> Checker:
        """A scratch copy of the checker (timing questions; no trigger effects)."""
        writes_bank = self.checker.writes_bank
        self.checker.writes_bank = _no_bank_writes
        try:
            return copy.deepcopy(self.checker)
        finally:
            self.checker.writes_bank = writes_bank

    # -------------------------------------------------------------- compound steps
    def close_all(self) -> None:
        """Precharge every open buffer (all-bank ones with PREAB ALL, normal ones with PREA)."""
        banks = range(self.config.banks)
        if self.mode != SB and any(self.ab_open(b) >= 0 for b in banks):
            self.place(PREAB, ALL, extra=self.delay())
        if self.n_allowed and any(self.open_row(b, 0) >= 0 for b in banks):
            self.place(PREA, extra=self.delay())

    def set_mode(self, mode: int, *, close: bool = False, again: bool = False) -> None:
        """MODE ``mode``, closing what the switch needs closed first (``close``: every buffer);
        nothing if the mode is already ``mode`` unless ``again`` (a MODE that changes nothing)."""
        banks = range(self.config.banks)
        if close:
            self.close_all()
        if mode == self.mode and not again:
            return
        if (mode == SB) != (self.mode == SB):
            if self.mode != SB and any(self.ab_open(b) >= 0 for b in banks):
                self.place(PREAB, ALL, extra=self.delay())
            if self.mode == SB and any(self.ab_open(b) >= 0 for b in banks):
                self.place(PREA, extra=self.delay())
        self.place(CODES["MODE"], row=mode, extra=self.delay())

    def ensure_open(self, bank_set: int, row: int | None = None) -> bool:
        """Every bank of the set has an open all-bank row (AB or AB_PIM mode)."""
        banks = self.set_banks(bank_set)
        if row is None and all(self.ab_open(b) >= 0 for b in banks):
            return True
        if row is not None and all(self.ab_open(b) == row for b in banks):
            return True
        if any(self.ab_open(b) >= 0 for b in banks):
            self.place(PREAB, bank_set, extra=self.delay())
        kind = self.checker.ab_kind
        if row is None:
            row = self.free_row(banks, kind)
            if row is None and self.n_allowed:      # every row conflicts: close normal rows
                for bank in banks:
                    if self.open_row(bank, 0) >= 0:
                        self.place(PRE, bank, extra=self.delay())
                row = self.free_row(banks, kind)
        elif self.dual and any(self.open_row(b, 0) == row for b in banks):
            return False
        if row is None:
            return False
        self.place(ACTAB, bank_set, row, extra=self.delay())
        return True

    def settle(self) -> None:
        """Close everything, SB mode, and let every timing history run out."""
        self.close_all()
        self.set_mode(SB)
        self.now += quiet_cycles(self.config)

    def delay(self) -> int:
        """Extra cycles after the earliest legal one: overridden by the random streams."""
        return 0

    # -------------------------------------------------------------- observation
    def _touch(self, cmd: Command) -> None:
        """Remember the bank columns and registers a command names (accepted or not), for
        :meth:`observe`."""
        c, ck, code = self.config, self.checker, cmd.code
        if code in (RD, WR) and 0 <= cmd.bank < c.banks and cmd.column < c.columns \
                and ck.open_row[cmd.bank][0] >= 0:
            self.touched_mem.add((cmd.bank, ck.open_row[cmd.bank][0], cmd.column))
        elif code in (RDAB, WRAB) and cmd.column < c.columns:
            for bank in ck.bank_set(cmd.bank) or []:
                if self.ab_open(bank) >= 0:
                    self.touched_mem.add((bank, self.ab_open(bank), cmd.column))
        elif code in (WRREG, RDREG, RDRC):
            file, index = cmd.row >> 5, cmd.row & 31
            sizes = {F_GRF_A: c.grf, F_GRF_B: c.grf, F_SRF: c.srf, F_CRF: c.crf}
            pieces = c.acc_pieces if file == F_GRF_B else 1
            if file not in sizes or index >= sizes[file] or cmd.column >= pieces:
                return
            if code == WRREG and self.mode != SB:
                units = {0, c.units - 1}
            elif cmd.bank < c.banks:
                units = {c.unit_of_bank(cmd.bank)}
            else:
                units = set()
            for unit in units:
                self.touched_regs.add((unit, file, index, cmd.column))

    def observe(self) -> None:
        """Read back every bank column and register touched so far (RD in SB mode, RDREG): the
        reads that show what accepted commands changed and rejected ones did not."""
        self.close_all()
        self.set_mode(SB)
        by_row: dict[tuple[int, int], list[int]] = {}
        for bank, row, column in sorted(self.touched_mem):
            by_row.setdefault((bank, row), []).append(column)
        for (bank, row), columns in by_row.items():
            self.place(ACT, bank, row)
            for column in columns:
                self.place(RD, bank, column=column)
            self.place(PRE, bank)
        for unit, file, index, piece in sorted(self.touched_regs):
            self.place(RDREG, self.config.unit_banks(unit)[0], _reg(file, index), piece)

    def seed_data(self) -> None:
        """Random data in columns 0 and 1 of the first pool row of bank 0 and in GRF_A[0] and
        SRF[0] of unit 0 (SB mode): what :meth:`observe` reads back at the end."""
        self.set_mode(SB, close=True)
        self.place(ACT, 0, self.rows[0])
        for column in range(2):
            self.place(WR, 0, 0, column, self.data())
        self.place(PRE, 0)
        self.place(WRREG, 0, _reg(F_GRF_A, 0), 0, self.data())
        self.place(WRREG, 0, _reg(F_SRF, 0), 0, self.data())

    def trigger_program(self) -> None:
        """(AB mode) CRF[0] = MAC GRF_B[0] += BANK · SRF[0], CRF[1] = JUMP 0; SRF[0] and
        columns 0 and 1 of the first pool row of every bank non-zero: every executed trigger
        adds a visible amount to GRF_B[0], so a rejected trigger that ran would show."""
        c, rng = self.config, self.rng
        mac = encode_instruction(OP_MAC, (T_GRF_B, 0), (T_BANK, 0), (T_SRF, 0))
        lane = bytes(rng.randrange(1, 128) for _ in range(c.lane_bytes))
        self.place(WRREG, 0, _reg(F_SRF, 0), 0, lane.ljust(c.column_bytes, b"\0"))
        self.place(WRREG, 0, _reg(F_CRF, 0), 0, _word(mac, rng, c.column_bytes))
        self.place(WRREG, 0, _reg(F_CRF, 1), 0, _word(jump(0, 0), rng, c.column_bytes))
        for bank_set in ((ALL,) if c.unit == "bank" else (EVEN, ODD)):
            if not self.ensure_open(bank_set, self.rows[0]):
                continue
            for column in range(min(2, c.columns)):
                data = bytes(rng.randrange(1, 128) for _ in range(c.column_bytes))
                self.place(WRAB, bank_set, 0, column, data)
        for unit in range(c.units):
            for piece in range(c.acc_pieces):
                self.touched_regs.add((unit, F_GRF_B, 0, piece))


# ----------------------------------------------------------------------------------------------
# Random legal (and mixed) streams
# ----------------------------------------------------------------------------------------------


class _RandomStream(_Builder):
    """Random actions over the whole command set, each command at a legal cycle; with
    ``illegal_rate`` > 0 random illegal commands are offered between them."""

    def __init__(self, config: PimConfig, rng: random.Random, illegal_rate: float = 0.0) -> None:
        super().__init__(config, rng)
        self.illegal_rate = illegal_rate
        self.deck: list[tuple[int, int, int, int | None]] = []

    def delay(self) -> int:
        """Mostly 0; sometimes a few cycles, sometimes past the timing windows, rarely past
        the next refresh tick or past nine ticks (refresh_overdue; rarer the longer tREFI, so
        that such gaps add about 40 cycles per command)."""
        r, t = self.rng.random(), self.t
        if r < 0.75:
            return 0
        if r < 0.93:
            return self.rng.randint(1, 8)
        if r < 0.985:
            return self.rng.randint(9, 9 + 2 * t["tRC"])
        refi = t["tREFI"]
        if r < 1 - min(0.005, 4 / refi):
            return refi - self.now % refi + self.rng.randint(0, 20)
        return refi * self.rng.randint(9, 10)

    def run(self, n: int) -> list[Command]:
        """The tour, then random actions until there are ``n`` commands."""
        self.tour()
        while len(self.commands) < n:
            if self.illegal_rate and self.rng.random() < self.illegal_rate:
                self.inject()
                continue
            due = self.due()
            if (due and self.rng.random() < (0.35 if due < 6 else 0.9)) \
                    or self.rng.random() < 0.004:
                self.refresh()
                continue
            actions = self.actions()
            action = self.rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
            action()
        return self.commands

    def tour(self) -> None:
        """A prologue that reaches every code, every all-bank command on every set in each
        mode, every register file, every instruction form, reserved opcodes, NOP, EXIT and the
        three ways a JUMP is taken, with random fields, data and delays; the random actions
        that follow mix it all up."""
        c, rng = self.config, self.rng
        self.normal()
        for bank in (0, c.banks - 1):
            if self.open_row(bank, 0) < 0:
                self.place(ACT, bank, self.free_row([bank], 0), extra=self.delay())
            self.place(WR, bank, 0, self.column(), self.data(), extra=self.delay())
            self.place(RD, bank, 0, self.column(), extra=self.delay())
        self.place(PRE, 0, extra=self.delay())
        self.place(PREA, extra=self.delay())
        self.place(NOP, extra=self.delay())
        self.refresh()
        for file, size in ((F_GRF_A, c.grf), (F_GRF_B, c.grf), (F_SRF, c.srf), (F_CRF, c.crf)):
            bank, index = rng.randrange(c.banks), rng.randrange(size)
            piece = rng.randrange(c.acc_pieces) if file == F_GRF_B else 0
            data = _word(_random_instruction(rng, self.deck), rng, c.column_bytes) \
                if file == F_CRF else self.data()
            self.place(WRREG, bank, _reg(file, index), piece, data, extra=self.delay())
            self.place(RDREG, bank, _reg(file, index), piece, extra=self.delay())
        self.place(RDRC, rng.randrange(c.banks), _reg(F_GRF_B, 0), 0, extra=self.delay())
        for mode in (AB, AB_PIM):
            self.set_mode(mode)
            for bank_set in self.sets():
                self.ensure_open(bank_set)
                if mode == AB:
                    self.place(WRAB, bank_set, rng.randrange(c.grf), self.column(), self.data(),
                               extra=self.delay())
                self.place(PREAB, bank_set, extra=self.delay())
            if self.n_allowed:
                self.normal()
        self.set_mode(AB_PIM, again=True)
        self.set_mode(AB)
        # every form, two reserved words and a NOP, in programs of at most crf slots whose
        # last slot jumps back (counted or not) or exits; the first starts with a JUMP
        words = [_instruction(rng, form) for form in INSTRUCTION_FORMS]
        words += [_illegal_instruction(rng) for _ in range(2)] + [OP_NOP << 28]
        rng.shuffle(words)
        chunk = c.crf - 1
        programs = [words[i:i + chunk] for i in range(0, len(words), chunk)]
        programs[0] = [jump(1, 0), *programs[0][:chunk - 1]]
        for index, body in enumerate(programs):
            last = len(programs) - 1
            tail = EXIT_WORD if index == last else jump(0, rng.randint(2, 3)) if index % 2 \
                else jump(0, 0)
            program = [*body, tail]
            bank = rng.randrange(32)
            for slot, word in enumerate(program):
                self.place(WRREG, bank, _reg(F_CRF, slot), 0, _word(word, rng, c.column_bytes),
                           extra=self.delay() if rng.random() < 0.2 else 0)
            self.restart()
            sets = self.trigger_sets()
            for trigger in range(len(program) + 1):
                self.trigger(sets[trigger % len(sets)])
            self.set_mode(AB)
        self.set_mode(AB_PIM)

    def actions(self) -> list[tuple[Callable[[], None], int]]:
        mode = self.mode
        actions: list[tuple[Callable[[], None], int]] = [
            (self.reg_write, 9), (self.reg_read, 12), (self.program, 10 if mode == AB else 3),
            (self.change_mode, 6), (self.nop, 1)]
        if self.n_allowed:
            actions.append((self.normal, 30 if mode == SB else 14))
        if mode == AB:
            actions += [(self.broadcast_write, 12), (self.ab_rows, 6)]
        if mode == AB_PIM:
            halted = all(self.model.halted)
            actions += [(self.triggers, 32), (self.ab_rows, 6), (self.restart, 25 if halted else 2)]
        return actions

    # -------------------------------------------------------------- actions
    def normal(self) -> None:
        """Port-N traffic: ACT/RD/WR/PRE/PREA on random banks, in short bursts."""
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            open_banks = [b for b in range(self.config.banks) if self.open_row(b, 0) >= 0]
            bank = self.rng.choice(open_banks) if open_banks and self.rng.random() < 0.7 \
                else self.rng.randrange(self.config.banks)
            if self.open_row(bank, 0) < 0:
                row = self.free_row([bank], 0)
                if row is None:
                    continue
                self.place(ACT, bank, row, extra=self.delay())
                continue
            r = self.rng.random()
            if r < 0.42:
                self.place(RD, bank, self.rng.randrange(1 << 16), self.column(),
                           extra=self.delay())
            elif r < 0.8:
                self.place(WR, bank, 0, self.column(), self.data(), extra=self.delay())
            elif r < 0.95:
                self.place(PRE, bank, extra=self.delay())
            else:
                self.place(PREA, extra=self.delay())

    def reg_write(self) -> None:
        """WRREG of a random register: targeted in SB (bank = the unit's bank), broadcast in
        AB/AB_PIM (bank field anything: ignored)."""
        c, rng = self.config, self.rng
        file = rng.choice((F_GRF_A, F_GRF_B, F_SRF, F_CRF))
        size = {F_GRF_A: c.grf, F_GRF_B: c.grf, F_SRF: c.srf, F_CRF: c.crf}[file]
        piece = rng.randrange(c.acc_pieces) if file == F_GRF_B else 0
        if file == F_CRF:
            word = rng.getrandbits(32) if rng.random() < 0.2 \
                else _random_instruction(rng, self.deck)
            data = _word(word, rng, c.column_bytes)
        else:
            data = self.data()
        bank = rng.randrange(c.banks) if self.mode == SB else rng.randrange(32)
        self.place(WRREG, bank, _reg(file, rng.randrange(size)), piece, data, extra=self.delay())

    def reg_read(self) -> None:
        """RDREG of any register file, or RDRC of a GRF_B piece, of a random unit."""
        c, rng = self.config, self.rng
        bank = rng.randrange(c.banks)
        if rng.random() < 0.35:
            self.place(RDRC, bank, _reg(F_GRF_B, rng.randrange(c.grf)),
                       rng.randrange(c.acc_pieces), extra=self.delay())
            return
        file = rng.choice((F_GRF_A, F_GRF_B, F_GRF_B, F_SRF, F_CRF))
        size = {F_GRF_A: c.grf, F_GRF_B: c.grf, F_SRF: c.srf, F_CRF: c.crf}[file]
        piece = rng.randrange(c.acc_pieces) if file == F_GRF_B else 0
        self.place(RDREG, bank, _reg(file, rng.randrange(size)), piece, extra=self.delay())

    def program(self) -> None:
        """A random program into the CRF from slot 0: broadcast in AB/AB_PIM, one unit's in SB;
        in AB/AB_PIM often started at once (AB_PIM entered afresh) and triggered."""
        c, rng = self.config, self.rng
        bank = rng.randrange(c.banks) if self.mode == SB else rng.randrange(32)
        for slot, word in enumerate(_program(rng, c.crf, self.deck)):
            self.place(WRREG, bank, _reg(F_CRF, slot), 0, _word(word, rng, c.column_bytes),
                       extra=self.delay() if rng.random() < 0.2 else 0)
        if self.mode != SB and rng.random() < 0.6:
            self.restart()
            self.triggers()

    def restart(self) -> None:
        """Enter AB_PIM afresh (from AB): every unit restarts at slot 0."""
        if self.mode == AB_PIM:
            self.set_mode(AB)
        self.set_mode(AB_PIM)

    def change_mode(self) -> None:
        self.set_mode(self.rng.choice((SB, AB, AB_PIM)), again=True)

    def nop(self) -> None:
        self.place(NOP, self.rng.randrange(32), self.rng.randrange(1 << 16),
                   self.rng.randrange(1 << 9), self.data(), extra=self.delay())

    def ab_rows(self) -> None:
        """PREAB of a random set (open or not), or a set opened at a new row."""
        bank_set = self.random_set(self.sets())
        if self.rng.random() < 0.5:
            self.place(PREAB, bank_set, extra=self.delay())
        else:
            banks = self.set_banks(bank_set)
            if any(self.ab_open(b) >= 0 for b in banks):
                self.place(PREAB, bank_set, extra=self.delay())
            self.ensure_open(bank_set)

    def broadcast_write(self) -> None:
        """(AB) WRAB: a broadcast write into the open all-bank row of every bank of a set."""
        bank_set = self.random_set(self.sets())
        if self.ensure_open(bank_set):
            self.place(WRAB, bank_set, self.rng.randrange(self.config.grf), self.column(),
                       self.data(), extra=self.delay())

    def triggers(self) -> None:
        """(AB_PIM) a burst of RDAB/WRAB triggers on one set (WRAB where the fired units'
        instruction writes its bank), sometimes with port-N traffic in between."""
        c, rng = self.config, self.rng
        bank_set = self.random_set(self.trigger_sets())
        for _ in range(rng.randint(1, 6)):
            if not self.trigger(bank_set):
                return
            if self.dual and rng.random() < 0.25:
                self.normal()
        if rng.random() < 0.6:          # read an accumulator piece back (or read and clear)
            self.place(RDRC if rng.random() < 0.3 else RDREG, rng.randrange(c.banks),
                       _reg(F_GRF_B, rng.randrange(c.grf)), rng.randrange(c.acc_pieces),
                       extra=self.delay())

    def trigger(self, bank_set: int) -> bool:
        """(AB_PIM) one RDAB or WRAB on the set (opened first if needed; WRAB where the fired
        units' next instruction writes its bank)."""
        c, rng = self.config, self.rng
        if not self.ensure_open(bank_set):
            return False
        code = RDAB if rng.random() < 0.7 else WRAB
        probe = Command(self.now, code, bank_set, 0, 0)
        if code == RDAB and self.checker.earliest(probe, self.now) is None:
            code = WRAB             # pim_write_needs_wr: a bank-writing instruction is next
        self.place(code, bank_set, rng.randrange(c.grf), self.column(),
                   self.data() if code == WRAB else b"",
                   extra=self.delay() if rng.random() < 0.3 else 0)
        return True

    def refresh(self) -> None:
        """Close every buffer, then REF."""
        self.close_all()
        self.place(REF, extra=self.delay())

    # -------------------------------------------------------------- illegal commands
    def inject(self) -> None:
        """One random command that is probably rejected: random codes (15 too) and fields
        anywhere within their widths; plausible fields, often in a state that forbids them; a
        second command of a port in its cycle; a command the state allows offered before its
        earliest legal cycle. Whatever the golden model decides stands."""
        rng, ck = self.rng, self.checker
        r = rng.random()
        if r < 0.2:
            code = 15 if rng.random() < 0.3 else rng.randrange(16)
            cmd = Command(0, code, rng.randrange(32), rng.randrange(1 << 16),
                          rng.randrange(1 << 9), self.data())
        elif r < 0.5:
            cmd = self._plausible()
        elif r < 0.6 and ck.last_cycle >= 0:
            cmd = self._plausible()
            while cmd.port != ck.last_port:
                cmd = self._plausible()
            self.offer(dataclasses.replace(cmd, cycle=ck.last_cycle))
            return
        else:
            early = []
            for _ in range(12):
                cmd = self._plausible()
                cycle = self.free_cycle(cmd.port)
                first = ck.earliest(dataclasses.replace(cmd, cycle=cycle), cycle)
                if first is not None and first > cycle:
                    early.append(dataclasses.replace(cmd, cycle=rng.randint(cycle, first - 1)))
            if early:
                self.offer(rng.choice(early))
                return
            cmd = self._plausible()
        cycle = self.free_cycle(cmd.port) + (rng.randint(0, 3) if rng.random() < 0.3 else 0)
        self.offer(dataclasses.replace(cmd, cycle=cycle))

    def _plausible(self) -> Command:
        """A command with fields in or just past the configuration's ranges, on open banks and
        sets half of the time."""
        c, rng, ck = self.config, self.rng, self.checker
        code = rng.randrange(15)
        bank = rng.randrange(c.banks + 1)
        open_banks = [b for b in range(c.banks) if ck.open_row[b][0] >= 0]
        if code in (RD, WR, PRE) and open_banks and rng.random() < 0.6:
            bank = rng.choice(open_banks)
        row, column = self.row() if rng.random() < 0.9 else c.rows, self.column()
        if code in (ACTAB, PREAB, RDAB, WRAB):
            bank = rng.choice(self.sets()) if rng.random() < 0.8 else rng.randrange(4)
        if code in (RDAB, WRAB):
            row = rng.randrange(c.grf + 1)
        if code in (WRREG, RDREG, RDRC):
            file = rng.randrange(5) if rng.random() < 0.3 else rng.randrange(4)
            row = _reg(file, rng.randrange(max(c.grf, c.srf, c.crf) + 1))
            column = rng.randrange(c.acc_pieces + 1)
        if code == CODES["MODE"]:
            row = rng.randrange(4)
        return Command(0, code, bank, row, column, self.data())


def legal_stream(config: PimConfig, rng: random.Random, n: int) -> list[Command]:
    """At least ``n`` commands, every one accepted by the golden model, in decision order.

    Covered: ACT/RD/WR/PRE/PREA on random banks and rows with random data (RD after WR: rows
    and columns come mostly from small pools); MODE changes, including to the current mode;
    ACTAB/PREAB on every set and WRAB broadcast writes in AB; WRREG/RDREG/RDRC of every
    register file and piece (targeted in SB, broadcast in AB/AB_PIM); random programs from
    slot 0 (every legal form of :data:`INSTRUCTION_FORMS` with AAM on and off and any ag/ax,
    NOP, EXIT, counted and unconditional JUMPs, illegal words) and random CRF words, run by
    RDAB/WRAB trigger bursts on every allowed set (WRAB where the next instruction writes its
    bank); REF when due (sometimes not due, sometimes late enough that ticks are overdue);
    with the dual row buffer, port-N traffic in every mode, often in the cycle of a port-P
    command. Each command's cycle is the checker's earliest plus a random extra delay.
    """
    return _RandomStream(config, rng).run(n)


def mixed_stream(config: PimConfig, rng: random.Random, n: int,
                 illegal_rate: float = 0.25) -> list[Command]:
    """A legal stream (as :func:`legal_stream`) with random illegal commands offered between
    its commands: random codes (15 included) and field values anywhere in their widths,
    plausible commands in a state that forbids them, commands before their earliest cycle,
    second commands on a port in one cycle. The legal part is generated against the state the
    golden model actually has, so it stays legal whatever the inserted commands did."""
    return _RandomStream(config, rng, illegal_rate).run(n)


def row_writes(config: PimConfig, prefix: Sequence[Command], rows: Sequence[int],
               rng: random.Random) -> list[Command]:
    """Commands that write random data into every column of ``rows`` of every bank (ACT, WR,
    PRE, single-bank), after ``prefix`` (run first on a shadow model, in SB mode at its end)."""
    model = PimModel(config)
    for index in sorted_order(prefix):
        model.execute(prefix[index])
    builder = _Builder(config, rng, model)
    builder.set_mode(SB, close=True)
    for row in rows:
        for bank in range(config.banks):
            builder.place(ACT, bank, row)
            for column in range(config.columns):
                builder.place(WR, bank, 0, column, builder.data())
            builder.place(PRE, bank)
    return builder.commands


# ----------------------------------------------------------------------------------------------
# One stream per rejection rule
# ----------------------------------------------------------------------------------------------


def _port(b: _Builder) -> int:
    """Two port-P commands in a cycle (WRREG, NOP), two port-N ones (ACT, WR)."""
    c = b.config
    b.settle()
    first, second = b.data(), b.data()
    cmd = b.place(WRREG, 0, _reg(F_SRF, 0), 0, first)
    b.expect(Command(cmd.cycle, WRREG, 0, _reg(F_SRF, 0), 0, second), "port")
    b.place(RDREG, 0, _reg(F_SRF, 0))
    b.place(WRREG, 0, _reg(F_SRF, 0), 0, second)
    b.place(RDREG, 0, _reg(F_SRF, 0))
    nop = b.place(NOP)
    b.expect(Command(nop.cycle, NOP, 1, 2, 3), "port")
    b.place(NOP, 1, 2, 3)
    row, other = b.rows[0], b.rows[-1]
    act = b.place(ACT, 0, row)
    last = c.banks - 1
    b.expect(Command(act.cycle, ACT, last, other), "port")
    if last == 0:
        b.place(PRE, 0)
    b.place(ACT, last, other)
    data_a, data_b = b.data(), b.data()
    wr = b.place(WR, 0, 0, 1 % c.columns, data_a)
    b.expect(dataclasses.replace(wr, data=data_b), "port")
    b.place(RD, 0, 0, wr.column)
    b.place(WR, 0, 0, wr.column, data_b)
    b.place(RD, 0, 0, wr.column)
    return 4


def _code(b: _Builder) -> int:
    """Code 15, with zero and with random fields; one in the cycle of an accepted RD."""
    b.settle()
    b.place(WRREG, 0, _reg(F_GRF_A, 0), 0, b.data())
    b.reject("code", 15)
    b.reject("code", 15, b.rng.randrange(32), _reg(F_GRF_A, 0), 0, b.data())
    b.place(ACT, 0, b.rows[0])
    first = b.checker.earliest(Command(b.now, RD, 0, 0, 0), b.now)
    b.expect(Command(first, 15, 0, b.rows[0], 0, b.data()), "code")
    b.expect(Command(first, RD, 0, 0, 0))
    b.observe()
    return 3


def _address(b: _Builder) -> int:
    """Every field out of range: bank, row, column, mode value, set (3, 31, ODD of one bank),
    register bank, file, index, piece, RDRC of other files, trigger accumulator offset, ALL for
    pair-unit triggers; each followed by the command with the field in range."""
    c, rng = b.config, b.rng
    count = 0

    def bad(code: int, bank: int = 0, row: int = 0, column: int = 0, data: bytes = b"") -> None:
        nonlocal count
        b.reject("address", code, bank, row, column, data)
        count += 1

    b.settle()
    mac = encode_instruction(OP_MAC, (T_GRF_B, 1), (T_BANK, 0), (T_GRF_A, 0))
    row = b.rows[0]
    bad(ACT, c.banks, row)
    bad(ACT, 31, row)
    bad(ACT, 0, c.rows)
    bad(ACT, 0, (1 << 16) - 1)
    b.place(ACT, 0, row)
    data = b.data()
    bad(WR, 0, 0, c.columns, data)
    bad(RD, 0, 0, (1 << 9) - 1)
    bad(PRE, c.banks)
    b.place(WR, 0, 0, 0, data)
    b.place(RD, 0, 0, 0)
    bad(CODES["MODE"], 0, 3)
    bad(CODES["MODE"], 0, (1 << 16) - 1)
    for file, size in ((F_GRF_A, c.grf), (F_GRF_B, c.grf), (F_SRF, c.srf), (F_CRF, c.crf)):
        if size < 32:
            bad(WRREG, 0, _reg(file, size), 0, b.data())
            bad(RDREG, 0, _reg(file, size))
        pieces = c.acc_pieces if file == F_GRF_B else 1
        bad(WRREG, 0, _reg(file, 0), pieces, b.data())
        bad(RDREG, 0, _reg(file, 0), pieces)
        if file != F_GRF_B:
            bad(RDRC, 0, _reg(file, 0))
        b.place(WRREG, 0, _reg(file, 0), pieces - 1, _word(mac, rng, c.column_bytes))
    bad(WRREG, 0, _reg(4, 0), 0, b.data())
    bad(RDREG, 0, (1 << 16) - 1)
    bad(RDRC, 0, _reg(F_GRF_B, 0), c.acc_pieces)
    bad(WRREG, c.banks, _reg(F_GRF_A, 0), 0, b.data())      # SB: targeted
    bad(RDREG, c.banks, _reg(F_GRF_A, 0))
    bad(RDRC, 31, _reg(F_GRF_B, 0))
    b.place(RDRC, 0, _reg(F_GRF_B, 0), c.acc_pieces - 1)
    b.set_mode(AB, close=True)
    bad(ACTAB, 3, row)
    bad(ACTAB, 31, row)
    if c.banks == 1:
        bad(ACTAB, ODD, row)
    bad(PREAB, 3)
    bank_set = b.trigger_sets()[0]
    b.ensure_open(bank_set, row)
    bad(WRAB, bank_set, c.grf, 0, data)
    bad(WRAB, bank_set, 0, c.columns, data)
    b.place(WRAB, bank_set, c.grf - 1, c.columns - 1, data)
    b.place(WRREG, 31, _reg(F_GRF_A, 1), 0, b.data())        # AB: broadcast, bank ignored
    bad(RDREG, c.banks, _reg(F_GRF_A, 1))                   # reads are always targeted
    b.set_mode(AB_PIM)
    bad(RDAB, bank_set, c.grf, 0)
    bad(RDAB, bank_set, 0, (1 << 9) - 1)
    if c.unit == "pair":
        b.ensure_open(ALL, row)
        bad(RDAB, ALL, 0, 0)
        bad(WRAB, ALL, 0, 0, data)
    b.place(RDAB, bank_set, c.grf - 1, 0)
    b.observe()
    return count


def _mode(b: _Builder) -> int:
    """All-bank commands in SB, RDAB in AB, and (one row buffer) port-N commands in AB and
    AB_PIM; each retried once the mode allows it."""
    c = b.config
    count = 0
    b.settle()
    row, data = b.rows[0], b.data()
    bank_set = b.trigger_sets()[0]
    for code, bank, column, payload in ((ACTAB, ALL, 0, b""), (PREAB, ALL, 0, b""),
                                        (WRAB, ALL, 1 % c.columns, data),
                                        (RDAB, bank_set, 0, b"")):
        b.reject("mode", code, bank, row if code == ACTAB else 0, column, payload)
        count += 1
    b.set_mode(AB)
    b.trigger_program()
    b.place(PREAB, ALL)
    b.place(ACTAB, ALL, row)
    b.place(WRAB, ALL, 0, 1 % c.columns, data)
    b.place(PREAB, ALL)
    b.ensure_open(bank_set, row)
    b.reject("mode", RDAB, bank_set, 0, 0)
    b.reject("mode", RDAB, bank_set, 0, 0)
    count += 2
    b.set_mode(AB_PIM)
    b.place(RDAB, bank_set, 0, 0)
    if not c.dual_row_buffer:
        other = b.rows[-1]
        n_commands = ((ACT, 0, other, 0, b""), (RD, 0, 0, 0, b""), (WR, 0, 0, 0, data),
                      (PRE, 0, 0, 0, b""), (PREA, 0, 0, 0, b""))
        for mode in (AB_PIM, AB):
            b.set_mode(mode)
            for fields in n_commands:
                b.reject("mode", *fields)
                count += 1
        b.set_mode(SB)
        for code, bank, r, column, payload in n_commands:
            b.place(code, bank, r, column, payload)
    b.observe()
    return count


def _bank_open(b: _Builder) -> int:
    """ACT to an open bank (its open row still reads), ACTAB to a set with an open buffer."""
    c = b.config
    b.settle()
    row, other = b.rows[0], b.rows[-1]
    b.place(ACT, 0, row)
    data = b.data()
    b.place(WR, 0, 0, 0, data)
    b.reject("bank_open", ACT, 0, other)
    b.place(RD, 0, 0, 0)
    b.place(PRE, 0)
    b.place(ACT, 0, other)
    b.place(RD, 0, 0, 0)
    count = 1
    b.set_mode(AB, close=True)
    b.place(ACTAB, ALL, row)
    b.reject("bank_open", ACTAB, ALL, other)
    count += 1
    if c.banks >= 2:
        b.reject("bank_open", ACTAB, ODD, other)
        b.place(PREAB, ALL)
        b.place(ACTAB, ODD, other)
        b.reject("bank_open", ACTAB, ALL, other)
        count += 2
    b.place(PREAB, ALL)
    b.place(ACTAB, ALL, other)
    b.observe()
    return count


def _bank_closed(b: _Builder) -> int:
    """RD/WR to a closed bank, WRAB (AB) and RDAB (AB_PIM) to a set with a closed buffer."""
    c = b.config
    b.settle()
    row, data = b.rows[0], b.data()
    b.reject("bank_closed", RD, 0, 0, 0)
    b.reject("bank_closed", WR, 0, 0, 0, data)
    b.place(ACT, 0, row)
    b.place(RD, 0, 0, 0)
    b.place(WR, 0, 0, 0, data)
    b.place(RD, 0, 0, 0)
    count = 2
    b.set_mode(AB, close=True)
    b.trigger_program()
    b.place(PREAB, ALL)
    other = b.data()
    b.reject("bank_closed", WRAB, ALL, 0, 0, other)
    count += 1
    if c.banks >= 2:
        b.place(ACTAB, EVEN, row)
        b.reject("bank_closed", WRAB, ALL, 0, 0, other)
        b.place(PREAB, EVEN)
        count += 1
    b.place(ACTAB, ALL, row)
    b.place(WRAB, ALL, 0, 0, other)
    b.place(PREAB, ALL)
    b.set_mode(AB_PIM)
    bank_set = b.trigger_sets()[0]
    b.reject("bank_closed", RDAB, bank_set, 0, 1 % c.columns)
    b.ensure_open(bank_set, row)
    b.place(RDAB, bank_set, 0, 1 % c.columns)
    b.observe()
    return count + 1


def _row_conflict(b: _Builder) -> int:
    """(Dual row buffer) ACT of a row open in the bank's PIM buffer; ACTAB of a row open in
    the normal buffer of a bank of the set."""
    c = b.config
    b.settle()
    row = b.rows[0]
    b.set_mode(AB)
    b.place(ACTAB, ALL, row)
    b.reject("row_conflict", ACT, 0, row)
    b.place(PREAB, ALL)
    b.place(ACT, 0, row)
    b.place(WR, 0, 0, 0, b.data())
    b.reject("row_conflict", ACTAB, ALL, row)
    b.place(RD, 0, 0, 0)
    b.place(PRE, 0)
    b.place(ACTAB, ALL, row)
    count = 2
    if c.banks >= 2:
        b.place(PREAB, ALL)
        b.place(ACT, 1, row)
        b.place(WR, 1, 0, 0, b.data())
        b.reject("row_conflict", ACTAB, ODD, row)
        b.place(RD, 1, 0, 0)
        b.place(PRE, 1)
        b.place(ACTAB, ODD, row)
        count += 1
    b.observe()
    return count


def _not_precharged(b: _Builder) -> int:
    """REF with a normal or an all-bank buffer open; SB ↔ AB with an all-bank buffer open."""
    c = b.config
    b.settle()
    row = b.rows[0]
    b.place(ACT, 0, row)
    b.place(WR, 0, 0, 0, b.data())
    b.reject("not_precharged", REF)
    b.place(RD, 0, 0, 0)
    b.place(PRE, 0)
    b.place(REF)
    count = 1
    b.set_mode(AB)
    b.place(ACTAB, ALL, row)
    b.reject("not_precharged", CODES["MODE"], 0, SB)
    b.reject("not_precharged", REF)
    b.place(PREAB, ALL)
    b.place(CODES["MODE"], 0, SB)
    b.place(REF)
    count += 2
    if not c.dual_row_buffer:
        b.place(ACT, 0, row)
        b.reject("not_precharged", CODES["MODE"], 0, AB)
        b.reject("not_precharged", CODES["MODE"], 0, AB_PIM)
        b.place(PRE, 0)
        b.place(CODES["MODE"], 0, AB)
        b.place(CODES["MODE"], 0, AB_PIM)
        count += 2
    b.observe()
    return count


def _pim_write_needs_wr(b: _Builder) -> int:
    """RDAB while the fired units' next instruction is MOV BANK←GRF_A; WRAB runs it (the bank
    column changes), the rejected RDAB's column does not; after the CRF is changed the same
    RDABs are accepted."""
    c, rng = b.config, b.rng
    b.settle()
    b.set_mode(AB)
    store = encode_instruction(OP_MOV, (T_BANK, 0), (T_GRF_A, 1))
    b.place(WRREG, 0, _reg(F_GRF_A, 1), 0, b.data())
    b.place(WRREG, 0, _reg(F_CRF, 0), 0, _word(store, rng, c.column_bytes))
    b.place(WRREG, 0, _reg(F_CRF, 1), 0, _word(store, rng, c.column_bytes))
    b.place(WRREG, 0, _reg(F_CRF, 2), 0, _word(0, rng, c.column_bytes))
    b.place(WRREG, 0, _reg(F_CRF, 3), 0, _word(0, rng, c.column_bytes))
    bank_set = b.trigger_sets()[0]
    b.ensure_open(bank_set, b.rows[0])
    b.set_mode(AB_PIM)
    first, second = 0, (c.columns - 1)
    b.reject("pim_write_needs_wr", RDAB, bank_set, 0, first)
    b.place(WRAB, bank_set, 0, first, b.data())
    b.reject("pim_write_needs_wr", RDAB, bank_set, 0, second)
    b.place(WRREG, 0, _reg(F_CRF, 1), 0, _word(0, rng, c.column_bytes))
    b.place(RDAB, bank_set, 0, second)
    b.place(RDAB, bank_set, 0, first)
    b.observe()
    return 2


def _timing(rule: str, variants: Callable[[_Builder], list[Callable[[], bool]]]
            ) -> Callable[[_Builder], int]:
    """A rule's stream: each variant (set-up, then ``violate``) after a settle."""

    def build(b: _Builder) -> int:
        b.seed_data()
        count = 0
        for variant in variants(b):
            b.settle()
            count += bool(variant())
        if count:
            b.observe()
        return count

    build.__doc__ = f"Timing rule {rule}: the violating command one cycle early, then on time."
    return build


def _t_rfc(b: _Builder) -> list[Callable[[], bool]]:
    def ref_then(code: int, bank: int = 0, row: int = 0, mode: int = SB) -> Callable[[], bool]:
        def run() -> bool:
            b.set_mode(mode)
            b.place(REF)
            return b.violate("tRFC", code, bank, row)
        return run
    row = b.rows[0]
    return [ref_then(ACT, 0, row), ref_then(REF), ref_then(ACTAB, ALL, row, AB)]


def _after_activate_precharge(rule: str) -> Callable[[_Builder], list[Callable[[], bool]]]:
    """tRP and tRC: an ACT, PRE (or ACTAB, PREAB) pair, then an activation or REF too early."""
    def variants(b: _Builder) -> list[Callable[[], bool]]:
        row = b.rows[0]

        def single() -> bool:
            b.place(ACT, 0, row)
            b.place(PRE, 0)
            return b.violate(rule, ACT, 0, row)

        def refresh() -> bool:
            b.place(ACT, 0, row)
            b.place(PRE, 0)
            return b.violate(rule, REF)

        def all_bank() -> bool:
            b.set_mode(AB)
            b.place(ACTAB, ALL, row)
            b.place(PREAB, ALL)
            return b.violate(rule, ACTAB, ALL, row)

        return [single, refresh, all_bank]
    return variants


_t_rp = _after_activate_precharge("tRP")
_t_rc = _after_activate_precharge("tRC")


def _t_ras(b: _Builder) -> list[Callable[[], bool]]:
    row = b.rows[0]

    def act_pre(code: int) -> Callable[[], bool]:
        def run() -> bool:
            b.place(ACT, 0, row)
            return b.violate("tRAS", code, 0)
        return run

    def actab_preab() -> bool:
        b.set_mode(AB)
        b.place(ACTAB, ALL, row)
        return b.violate("tRAS", PREAB, ALL)

    return [act_pre(PRE), act_pre(PREA), actab_preab]


def _t_rtp(b: _Builder) -> list[Callable[[], bool]]:
    t, row = b.t, b.rows[0]

    def rd_pre() -> bool:
        act = b.place(ACT, 0, row)
        b.place(RD, 0, 0, 0, not_before=act.cycle + t["tRAS"] - t["tRTP"] + 1)
        return b.violate("tRTP", PRE, 0)

    def rdab_preab() -> bool:
        b.set_mode(AB)
        b.trigger_program()
        bank_set = b.trigger_sets()[0]
        b.place(PREAB, ALL)
        b.set_mode(AB_PIM)
        act = b.place(ACTAB, bank_set, row)
        b.place(RDAB, bank_set, 0, 0, not_before=act.cycle + t["tRAS"] - t["tRTP"] + 1)
        return b.violate("tRTP", PREAB, bank_set)

    return [rd_pre, rdab_preab]


def _t_wr(b: _Builder) -> list[Callable[[], bool]]:
    t, row = b.t, b.rows[0]

    def wr_pre() -> bool:
        act = b.place(ACT, 0, row)
        b.place(WR, 0, 0, 0, b.data(), not_before=act.cycle + t["tRAS"])
        return b.violate("tWR", PRE, 0)

    def wrab_preab(mode: int) -> Callable[[], bool]:
        def run() -> bool:
            b.set_mode(AB)
            if mode == AB_PIM:
                b.trigger_program()
                b.place(PREAB, ALL)
            b.set_mode(mode)
            bank_set = b.trigger_sets()[0]
            act = b.place(ACTAB, bank_set, row)
            b.place(WRAB, bank_set, 0, 1 % b.config.columns, b.data(),
                    not_before=act.cycle + t["tRAS"])
            return b.violate("tWR", PREAB, bank_set)
        return run

    return [wr_pre, wrab_preab(AB), wrab_preab(AB_PIM)]


def _t_rcd(b: _Builder) -> list[Callable[[], bool]]:
    row = b.rows[0]

    def act_col(code: int) -> Callable[[], bool]:
        def run() -> bool:
            b.place(ACT, 0, row)
            return b.violate("tRCD", code, 0, 0, 0, b.data() if code == WR else b"")
        return run

    def actab_col(mode: int, code: int) -> Callable[[], bool]:
        def run() -> bool:
            b.set_mode(AB)
            if mode == AB_PIM:
                b.trigger_program()
                b.place(PREAB, ALL)
            b.set_mode(mode)
            bank_set = b.trigger_sets()[0] if mode == AB_PIM else ALL
            b.place(ACTAB, bank_set, row)
            return b.violate("tRCD", code, bank_set, 0, 0, b.data() if code == WRAB else b"")
        return run

    return [act_col(RD), act_col(WR), actab_col(AB, WRAB), actab_col(AB_PIM, RDAB),
            actab_col(AB_PIM, WRAB)]


def _activations(b: _Builder, checker: Checker) -> list[list[Command]]:
    """Ways to make one activation now: ACT of each bank, ACTAB of each set (where the mode
    allows them), each preceded by the precharge of the buffer if it is open."""
    c = b.config
    rows = (b.rows[0], b.rows[-1] if len(b.rows) > 1 else b.rows[0])
    out: list[list[Command]] = []
    mode = checker.mode
    if c.dual_row_buffer or mode == SB:
        for bank in range(c.banks):
            act = Command(0, ACT, bank, rows[0])
            out.append([act] if checker.open_row[bank][0] < 0 else [Command(0, PRE, bank), act])
    if mode != SB:
        for bank_set in b.sets():
            act = Command(0, ACTAB, bank_set, rows[1])
            banks = checker.bank_set(bank_set) or []
            is_open = any(checker.open_row[bank][checker.ab_kind] >= 0 for bank in banks)
            out.append([Command(0, PREAB, bank_set), act] if is_open else [act])
    return out


def _place_on(checker: Checker, commands: Sequence[Command], start: int
              ) -> list[Command] | None:
    """Offer ``commands`` one after the other at their earliest cycles (from ``start``) on a
    scratch checker."""
    placed = []
    for cmd in commands:
        now = max(checker.last_cycle, start, 0)
        cycle = checker.earliest(dataclasses.replace(cmd, cycle=now), now)
        if cycle is None:
            return None
        cmd = dataclasses.replace(cmd, cycle=cycle)
        checker.offer(cmd)
        placed.append(cmd)
    return placed


def _activation_rule(b: _Builder, rule: str, steps: int) -> bool:
    """Search for ``steps`` activations (each the earliest possible, greedily) and one more
    that, offered a cycle early, breaks exactly ``rule`` (tRRD_L, tRRD_S after one activation;
    tFAW after four); in SB and in AB mode. Replays the first one found."""
    for mode in (SB, AB):
        b.settle()
        b.set_mode(mode)
        # For the tRRD rules every first activation is tried; for tFAW the greedy earliest.
        firsts = _activations(b, b.checker) if steps == 1 else [None]
        for first in firsts:
            checker = b.checker_copy()
            chosen: list[list[Command]] = []
            for step in range(steps):
                options = [first] if first is not None and step == 0 \
                    else _activations(b, checker)
                best = None
                for option in options:
                    scratch = copy.deepcopy(checker)
                    placed = _place_on(scratch, option, b.now)
                    if placed and (best is None or placed[-1].cycle < best[0][-1].cycle):
                        best = (placed, scratch)
                if best is None:
                    break
                chosen.append(best[0])
                checker = best[1]
            if len(chosen) < steps:
                continue
            for option in _activations(b, checker):
                scratch = copy.deepcopy(checker)
                prefix = _place_on(scratch, option[:-1], b.now)
                if prefix is None:
                    continue
                last = option[-1]
                found = b.violation(rule, last.code, last.bank, last.row, checker=scratch)
                if found is None:
                    continue
                for cmd in [*(cmd for placed in chosen for cmd in placed), *prefix]:
                    b.expect(cmd)
                b.expect(found[0], rule)
                b.expect(dataclasses.replace(found[0], cycle=found[1]))
                return True
    return False


def _t_rrd_l(b: _Builder) -> list[Callable[[], bool]]:
    return [lambda: _activation_rule(b, "tRRD_L", 1)]


def _t_rrd_s(b: _Builder) -> list[Callable[[], bool]]:
    return [lambda: _activation_rule(b, "tRRD_S", 1)]


def _t_faw(b: _Builder) -> list[Callable[[], bool]]:
    return [lambda: _activation_rule(b, "tFAW", 4)]


def _t_ccd_l(b: _Builder) -> list[Callable[[], bool]]:
    c, row = b.config, b.rows[0]

    def same_bank(code: int) -> Callable[[], bool]:
        def run() -> bool:
            b.place(ACT, 0, row)
            data = b.data() if code == WR else b""
            b.place(code, 0, 0, 0, data)
            return b.violate("tCCD_L", code, 0, 0, 1 % c.columns, data)
        return run

    def same_group() -> bool:
        if c.banks <= c.bank_groups:
            return False
        b.place(ACT, 0, row)
        act = b.place(ACT, c.bank_groups, row)
        b.place(RD, 0, 0, 0, not_before=act.cycle + b.t["tRCD"])
        return b.violate("tCCD_L", RD, c.bank_groups, 0, 0)

    def triggers(first: int, second: int) -> Callable[[], bool]:
        def run() -> bool:
            if not (b.set_banks(first) and b.set_banks(second)):
                return False
            b.set_mode(AB)
            b.trigger_program()
            b.set_mode(AB_PIM)
            b.ensure_open(first, row)
            b.ensure_open(second, row)
            b.place(RDAB, first, 0, 0)
            return b.violate("tCCD_L", RDAB, second, 0, 1 % c.columns)
        return run

    pim_sets = b.trigger_sets()
    return [same_bank(RD), same_bank(WR), same_group,
            triggers(pim_sets[0], pim_sets[0]), triggers(pim_sets[0], pim_sets[-1])]


def _t_ccd_s(b: _Builder) -> list[Callable[[], bool]]:
    c, t, row = b.config, b.t, b.rows[0]

    def pair(code: int) -> Callable[[], bool]:
        def run() -> bool:
            if c.banks < 2 or c.bank_groups < 2:
                return False
            b.place(ACT, 0, row)
            act = b.place(ACT, 1, row)
            data = b.data() if code == WR else b""
            b.place(code, 0, 0, 0, data, not_before=act.cycle + t["tRCD"])
            return b.violate("tCCD_S", code, 1, 0, 0, data)
        return run

    return [pair(RD), pair(WR)]


def _t_bl(b: _Builder) -> list[Callable[[], bool]]:
    t, row = b.t, b.rows[0]

    def reg_then_rd(code: int) -> Callable[[], bool]:
        def run() -> bool:
            act = b.place(ACT, 0, row)
            data = b.data() if code == WRREG else b""
            b.place(code, 0, _reg(F_GRF_A, 0), 0, data,
                    not_before=act.cycle + t["tRCD"] + t["tCCD_L"])
            return b.violate("tBL", RD, 0, 0, 0)
        return run

    def reg_reg() -> bool:
        b.place(RDREG, 0, _reg(F_SRF, 0))
        return b.violate("tBL", RDREG, 0, _reg(F_SRF, 0))

    def wrab_wrreg() -> bool:
        b.set_mode(AB)
        b.place(ACTAB, ALL, row)
        b.place(WRAB, ALL, 0, 0, b.data())
        return b.violate("tBL", WRREG, 0, _reg(F_GRF_A, 1), 0, b.data())

    return [reg_then_rd(WRREG), reg_then_rd(RDREG), reg_reg, wrab_wrreg]


_RULE_STREAMS: dict[str, Callable[[_Builder], int]] = {
    "port": _port,
    "code": _code,
    "address": _address,
    "mode": _mode,
    "bank_open": _bank_open,
    "bank_closed": _bank_closed,
    "row_conflict": _row_conflict,
    "not_precharged": _not_precharged,
    "pim_write_needs_wr": _pim_write_needs_wr,
    "tRFC": _timing("tRFC", _t_rfc),
    "tRP": _timing("tRP", _t_rp),
    "tRC": _timing("tRC", _t_rc),
    "tRAS": _timing("tRAS", _t_ras),
    "tRTP": _timing("tRTP", _t_rtp),
    "tWR": _timing("tWR", _t_wr),
    "tRCD": _timing("tRCD", _t_rcd),
    "tRRD_L": _timing("tRRD_L", _t_rrd_l),
    "tRRD_S": _timing("tRRD_S", _t_rrd_s),
    "tFAW": _timing("tFAW", _t_faw),
    "tCCD_L": _timing("tCCD_L", _t_ccd_l),
    "tCCD_S": _timing("tCCD_S", _t_ccd_s),
    "tBL": _timing("tBL", _t_bl),
}
assert tuple(_RULE_STREAMS) == RULES[1:]


def unreachable_rules(config: PimConfig) -> dict[str, str]:
    """Rules no command stream can produce with this config, and why (docs/pim.md's rules;
    a rule is reported only when every rule listed before it passes, and two commands of one
    port cannot share a cycle, so a lower bound of one cycle between two commands of the same
    port never binds).

    * ``row_conflict``: only with the dual row buffer (one buffer per bank: a second
      activation of an open bank is ``bank_open``).
    * ``tRP``, ``tRAS``, ``tRTP``, ``tRCD`` at 1 cycle: the two commands use the same buffer,
      and every pair that shares a buffer is on one port (ACT/PRE/RD: N; ACTAB/PREAB/RDAB/
      REF: P); the only same-cycle pair, P then N, addresses different buffers with the dual
      row buffer, and without it port-N commands are illegal outside SB while all-bank ones
      are illegal in SB (REF before PRE in a cycle still sees the bank open).
    * ``tRC`` when ``tRC ≤ tRAS + tRP``: a closed buffer was precharged at least tRAS after
      its activation, so an activation (or REF) that meets tRP is already tRC after it
      (true of both presets: 34 + 14 = 48, 54 + 24 = 78).
    * ``tRRD_L``: needs two activations sharing a bank group closer than tRRD_L with tRFC,
      tRP and tRC met: an ACTAB and an ACT in one cycle (dual row buffer, a bank of the set,
      or G = 1, at a different row, else row_conflict), two ACTs (or ACTABs with G = 1) of
      distinct banks of one group (needs banks > bank_groups and tRRD_L ≥ 2), or one buffer
      reactivated (needs tRRD_L > max(tRAS + tRP, tRC)). tRRD_L = tRRD_S does not hide it:
      tRRD_L is reported first.
    * ``tRRD_S``: needs an activation whose groups are disjoint from those of the previous
      one (tRRD_L is reported first otherwise, as tRRD_L ≥ tRRD_S): at least two banks and two
      bank groups, and either the dual row buffer (ACTAB EVEN and an ACT of bank 1 in one
      cycle) or tRRD_S ≥ 2.
    * ``tFAW``: decided by a search for the closest five activations (greedy, ACT of every
      bank and ACTAB of every set, reopening a buffer when all are open): unreachable when
      four activations already span ≥ tFAW (gddr6: 4 · tRRD_S = 36 ≥ 32) or when fewer than
      five buffers exist and reopening one takes ≥ tFAW.
    * ``tCCD_L`` at 1 cycle (same port, as above); ``tCCD_S``: only single-bank column
      commands can break it (all-bank ones also follow every earlier all-bank column command by
      tCCD_L ≥ tCCD_S), so it needs tCCD_S ≥ 2, two banks and two bank groups (hbm2's
      tCCD_S = 1 never binds).
    * ``tBL`` is always reachable: a WRREG or RDREG and an RD in one cycle (P then N) are
      0 < tBL apart.
    """
    t, c = config.timing_values, config
    out: dict[str, str] = {}
    one = "{name} = 1: the commands it separates share a buffer and a port"
    if not c.dual_row_buffer:
        out["row_conflict"] = "one row buffer per bank (dual_row_buffer=false)"
    for name in ("tRP", "tRAS", "tRTP", "tRCD", "tCCD_L"):
        if t[name] < 2:
            out[name] = one.format(name=name)
    if t["tRC"] <= t["tRAS"] + t["tRP"]:
        out["tRC"] = (f"tRC = {t['tRC']} ≤ tRAS + tRP = {t['tRAS'] + t['tRP']}: tRP is met "
                      f"only when tRC is")
    rrd_l = ((c.dual_row_buffer and (c.rows >= 2 or (c.bank_groups == 1 and c.banks >= 2)))
             or (t["tRRD_L"] >= 2 and c.banks > c.bank_groups)
             or t["tRRD_L"] > max(t["tRAS"] + t["tRP"], t["tRC"]))
    if not rrd_l:
        out["tRRD_L"] = (f"no two activations of one bank group can come closer than "
                         f"tRRD_L = {t['tRRD_L']} (banks {c.banks}, groups {c.bank_groups}, "
                         f"rows {c.rows}, dual_row_buffer {c.dual_row_buffer})")
    if c.banks < 2 or c.bank_groups < 2:
        out["tRRD_S"] = "every activation shares bank group 0 with the previous one: tRRD_L " \
                        "(≥ tRRD_S) is reported first"
    elif not c.dual_row_buffer and t["tRRD_S"] < 2:
        out["tRRD_S"] = one.format(name="tRRD_S")
    if not _activation_rule(_Builder(c, random.Random(0)), "tFAW", 4):
        out["tFAW"] = (f"no fifth activation can come within tFAW = {t['tFAW']} of the "
                       f"fourth-last (tRRD_S = {t['tRRD_S']}, tRRD_L = {t['tRRD_L']}, "
                       f"tRC = {t['tRC']}, {c.banks} banks, dual_row_buffer "
                       f"{c.dual_row_buffer})")
    if t["tCCD_S"] < 2:
        out["tCCD_S"] = one.format(name="tCCD_S")
    elif c.banks < 2 or c.bank_groups < 2:
        out["tCCD_S"] = "every column command shares a bank group: tCCD_L is reported first"
    return out


def illegal_streams(config: PimConfig, rng: random.Random) -> dict[str, list[Command]]:
    """For every rule of :data:`golden.pim.RULES` the config can produce, a short stream from
    a fresh channel in which every rejected command is rejected by that rule; the timing and
    state rules' rejected commands are each offered again, unchanged, once legal (timing: at
    the first legal cycle, right after the early one), and the stream ends with reads (RD in
    SB, RDREG) of every bank column and register the stream touched, which show that the
    rejected commands changed nothing. ``code`` and ``address`` commands can never be
    accepted: each is followed by the command with the field in range instead.

    Rules :func:`unreachable_rules` names are left out; a rule left out for any other reason
    (or produced although it is listed) is a ``RuntimeError``: the reasons are checked, not
    assumed."""
    skipped = unreachable_rules(config)
    out: dict[str, list[Command]] = {}
    for rule, build in _RULE_STREAMS.items():
        if rule in skipped:
            continue
        builder = _Builder(config, random.Random(rng.getrandbits(32)))
        try:
            produced = build(builder)
        except _Mismatch as error:
            raise RuntimeError(f"{rule} stream: {error}") from error
        if not produced:
            raise RuntimeError(f"{rule}: no stream for this config, and unreachable_rules "
                               f"gives no reason")
        out[rule] = builder.commands
    for rule in skipped:
        if rule == "tFAW":
            continue            # decided by the same search that builds its stream
        builder = _Builder(config, random.Random(0))
        try:
            produced = _RULE_STREAMS[rule](builder)
        except (_Mismatch, AssertionError):
            produced = 0
        if produced:
            raise RuntimeError(f"{rule} is listed unreachable ({skipped[rule]}) but a stream "
                               f"produced it")
    return out


# ----------------------------------------------------------------------------------------------
# Coverage (what a stream reaches on the golden model)
# ----------------------------------------------------------------------------------------------


class _RecordingModel(PimModel):
    """A golden model that also records what the units executed."""

    def __init__(self, config: PimConfig) -> None:
        super().__init__(config)
        self.ops: set[int] = set()
        self.forms: set[tuple[Any, ...]] = set()
        self.jumps: set[str] = set()
        self.bank_writes: set[int] = set()
        self._trigger_code = 0

    def _trigger(self, cmd: Command) -> None:
        self._trigger_code = cmd.code
        super()._trigger(cmd)

    def _step(self, u: int, bank: int, row: int, column: int, flat: int, acc_off: int) -> None:
        if not self.halted[u] and self.pc[u] < self.config.crf:
            op = int(self.crf[u, self.pc[u]]) >> 28
            self.ops.add(op)
            if op == OP_JUMP:
                self.jumps.add("trigger")
            if op == OP_EXIT:
                self.jumps.add("exit")
        super()._step(u, bank, row, column, flat, acc_off)

    def _resolve_jump(self, u: int, slot: int) -> int:
        count = decode_instruction(int(self.crf[u, slot]))["count"]
        self.jumps.add("counted" if count else "unconditional")
        return super()._resolve_jump(u, slot)

    def _execute(self, u: int, word: int, bank: int, row: int, column: int, flat: int,
                 acc_off: int) -> None:
        form = instruction_form(word)
        if form is not None:
            d = decode_instruction(word)
            self.forms.add((*form, d["aam"]))
            if form[:3] == (OP_MOV, T_BANK, T_GRF_A):
                self.bank_writes.add(self._trigger_code)
        super()._execute(u, word, bank, row, column, flat, acc_off)


def coverage(config: PimConfig, commands: Sequence[Command]) -> dict[str, Any]:
    """Run ``commands`` (decision order) on the golden model and report what they reach:
    accepted codes, (code, mode, set) of accepted all-bank commands, (code, file) of accepted
    register commands, rules of rejected commands, opcodes the units executed, legal forms
    executed as (op, dst, s0, s1, aam), the trigger codes that ran MOV BANK←GRF_A, JUMP kinds
    (resolved after an instruction, counted or not; executed by a trigger of its own; EXIT),
    counters, and same-cycle port-P / port-N pairs."""
    model = _RecordingModel(config)
    codes, all_bank, registers, rules = set(), set(), set(), set()
    same_cycle = 0
    previous: Command | None = None
    for index in sorted_order(commands):
        cmd = commands[index]
        mode = model.checker.mode
        result = model.execute(cmd)
        if result.accepted:
            codes.add(cmd.code)
            if cmd.code in (ACTAB, PREAB, RDAB, WRAB):
                all_bank.add((cmd.code, mode, cmd.bank))
            if cmd.code in (WRREG, RDREG, RDRC):
                registers.add((cmd.code, cmd.row >> 5))
            if previous is not None and previous.cycle == cmd.cycle and cmd.port == PORT_N \
                    and previous.port == PORT_P:
                same_cycle += 1
            if cmd.port == PORT_N and mode != SB:
                all_bank.add(("N", mode))
            previous = cmd
        else:
            rules.add(result.rule)
    return {"codes": codes, "all_bank": all_bank, "registers": registers, "rules": rules,
            "ops": model.ops, "forms": model.forms, "bank_writes": model.bank_writes,
            "jumps": model.jumps,
            "counters": dict(model.counters), "overdue": model.checker.overdue,
            "same_cycle_pn": same_cycle}

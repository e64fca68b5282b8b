"""Golden model of the PIM channel (``pim``): GEMV, command-level reference model, timing checker,
GEMV compiler and its schedule. The specification is ``docs/pim.md``; this module implements
it command by command, and the RTL is compared with it value by value.

* **GEMV** (:func:`gemv_exact`). ``y = W·x`` with W ``[out × in]`` and x ``[in]`` or
  ``[batch × in]``. int8: every lane step adds a sum of ``k`` exact products to an int32
  accumulator with wraparound; modular addition is associative, so ``y = (W·x) mod 2**32`` as a
  signed int32 whatever the order. bf16: per output, ``acc = +0.0``; for each lane step
  ``t = 0 .. T-1`` (``T = ceil(in/k)``, the last step zero-padded)
  ``s = p_0; s = rn(s + p_j)`` for ``j = 1 .. k-1`` with ``p_j = rn(w·x)`` in fp32, then
  ``acc = rn(acc + s)`` (fp32, round to nearest even, subnormals kept, NaN results canonical
  ``0x7FC00000``).
* **Command model** (:class:`PimModel`). Banks are byte arrays ``[bank, row, column, byte]``;
  each bank has a normal row buffer and, with ``dual_row_buffer``, a PIM row buffer; units hold
  GRF_A (columns), GRF_B (``lanes`` int32/fp32 accumulators), SRF (lane words), CRF (32-bit
  instructions), a program counter and one loop counter. :meth:`PimModel.execute` takes one
  :class:`Command` and returns a :class:`Result`; a rejected command (timing or state rule)
  changes nothing. The rules are checked by :class:`Checker`, which also answers "earliest
  legal cycle" questions for the scheduler.
* **Compiler** (:func:`plan_gemv`, :func:`gemv_program`). W is laid out over the units
  (output lane groups partitioned over units, tiles of ``G`` lane groups, the input dimension
  along the unit's column stream, x streamed through a ring of ``X`` GRF_A registers per batch
  item); the program is the exact command list, with cycles, that the hardware GEMV sequencer
  issues (:func:`schedule_gemv`), and :meth:`GemvProgram.collect` assembles y from the
  register reads.
* **Cycle model** (:func:`gemv_cycles`): the sequencer's schedule without values, for the
  benchmark (bytes of W per cycle against :attr:`PimConfig.internal_bound`).
"""
from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from hdl.pim.config import PimConfig
from hdl.pim.isa import (  # noqa: F401  (re-exported for callers of golden.pim)
    AB,
    AB_PIM,
    ACT,
    ACTAB,
    ALL,
    CODE_NAMES,
    CODES,
    EVEN,
    F_CRF,
    F_GRF_A,
    F_GRF_B,
    F_SRF,
    FIELD_BITS,
    FILES,
    MODE,
    MODES,
    N_CODES,
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
    OPERANDS,
    OPS,
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
    REFRESH_POSTPONE,
    RULE_ID,
    RULES,
    SB,
    SETS,
    T_BANK,
    T_GRF_A,
    T_GRF_B,
    T_SRF,
    WR,
    WRAB,
    WRREG,
)

__all__ = [
    "CODES",
    "FILES",
    "MODES",
    "OPERANDS",
    "OPS",
    "RULES",
    "SETS",
    "Checker",
    "Command",
    "GemvPlan",
    "GemvProgram",
    "PimModel",
    "Result",
    "commands_from_table",
    "commands_to_table",
    "decode_instruction",
    "encode_instruction",
    "external_read_cycles",
    "gemv_cycles",
    "gemv_exact",
    "gemv_program",
    "jump",
    "layout_w",
    "plan_gemv",
    "run_trace",
    "schedule_gemv",
]

Tensor = torch.Tensor

# ----------------------------------------------------------------------------------------------
# Encodings (docs/pim.md, "Command stream" and "ISA")
# ----------------------------------------------------------------------------------------------
CANONICAL_NAN = 0x7FC00000
NEVER = -(1 << 40)


def encode_instruction(op: int, dst: tuple[int, int] = (T_GRF_B, 0),
                       src0: tuple[int, int] = (T_BANK, 0), src1: tuple[int, int] = (T_GRF_A, 0),
                       src2: int = 0, *, aam: bool = False, ag: int = 0, ax: int = 0) -> int:
    """A 32-bit data instruction: op[31:28] dst type[27:26] idx[25:22] src0 type[21:20]
    idx[19:16] src1 type[15:14] idx[13:10] src2 idx[9:6] AAM[5] ag[4:3] ax[2:1] 0[0]."""
    for value, bits in ((op, 4), (dst[0], 2), (dst[1], 4), (src0[0], 2), (src0[1], 4),
                        (src1[0], 2), (src1[1], 4), (src2, 4), (ag, 2), (ax, 2)):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"instruction field {value} does not fit {bits} bits")
    return ((op << 28) | (dst[0] << 26) | (dst[1] << 22) | (src0[0] << 20) | (src0[1] << 16)
            | (src1[0] << 14) | (src1[1] << 10) | (src2 << 6) | (int(aam) << 5) | (ag << 3)
            | (ax << 1))


def jump(target: int, count: int) -> int:
    """JUMP: op[31:28] = 1, target[27:23], count[22:7] (0: unconditional)."""
    if not (0 <= target < 32 and 0 <= count < 1 << 16):
        raise ValueError(f"JUMP target {target} / count {count} out of range")
    return (OP_JUMP << 28) | (target << 23) | (count << 7)


EXIT_WORD = OP_EXIT << 28


def decode_instruction(word: int) -> dict[str, int]:
    return {"op": (word >> 28) & 15, "dst_t": (word >> 26) & 3, "dst_i": (word >> 22) & 15,
            "s0_t": (word >> 20) & 3, "s0_i": (word >> 16) & 15, "s1_t": (word >> 14) & 3,
            "s1_i": (word >> 10) & 15, "s2_i": (word >> 6) & 15, "aam": (word >> 5) & 1,
            "ag": (word >> 3) & 3, "ax": (word >> 1) & 3,
            "target": (word >> 23) & 31, "count": (word >> 7) & 0xFFFF}


def _legal(d: dict[str, int]) -> bool:
    op, dt, s0, s1 = d["op"], d["dst_t"], d["s0_t"], d["s1_t"]
    if op in (OP_MAC, OP_MUL, OP_MAD):
        return dt == T_GRF_B and s0 in (T_BANK, T_GRF_A) and s1 in (T_GRF_A, T_SRF)
    if op == OP_ADD:
        return dt == T_GRF_B and s0 == T_GRF_B and s1 == T_GRF_B
    if op == OP_MOV:
        return (dt, s0) in ((T_GRF_A, T_GRF_A), (T_GRF_A, T_BANK), (T_GRF_B, T_GRF_B),
                            (T_BANK, T_GRF_A))
    if op == OP_FILL:
        return dt == T_GRF_A and s0 in (T_BANK, T_SRF)
    return op in (OP_NOP, OP_JUMP, OP_EXIT)


def _writes_bank(word: int) -> bool:
    d = decode_instruction(word)
    return d["op"] == OP_MOV and d["dst_t"] == T_BANK and d["s0_t"] == T_GRF_A


# ----------------------------------------------------------------------------------------------
# Commands and results
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
    """One command beat: offered cycle, code, bank (or bank set / unit), row (or register
    address / mode), column (or piece), data (one column, little-endian bytes; empty = 0)."""

    cycle: int
    code: int
    bank: int = 0
    row: int = 0
    column: int = 0
    data: bytes = b""

    @property
    def port(self) -> int:
        return PORT_N if self.code in N_CODES else PORT_P

    def __str__(self) -> str:
        return (f"@{self.cycle} {CODE_NAMES.get(self.code, self.code)} b{self.bank} r{self.row} "
                f"c{self.column}")


@dataclasses.dataclass(frozen=True)
class Result:
    accepted: bool
    rule: str = "ok"
    read: bytes | None = None

    @property
    def rule_id(self) -> int:
        return RULE_ID[self.rule]


def words_to_bytes(words: Iterable[int], column_bytes: int) -> bytes:
    out = b"".join(int(w & 0xFFFFFFFF).to_bytes(4, "little") for w in words)
    return out[:column_bytes].ljust(column_bytes, b"\0")


def bytes_to_words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


# ----------------------------------------------------------------------------------------------
# The checker: state and timing rules (docs/pim.md, "Timing and state rules")
# ----------------------------------------------------------------------------------------------


class Checker:
    """Row-buffer state, mode and timing histories of a channel; decides acceptance.

    Buffers are indexed ``[bank][kind]``: kind 0 is the normal buffer, kind 1 the PIM buffer
    (dual row buffer only; otherwise all-bank commands use kind 0). Column-command histories
    are kept per path (path 1 = all-bank commands with the dual row buffer, else one path).
    ``writes_bank`` (set by :class:`PimModel`) tells whether a trigger would execute an
    instruction that writes its bank (rule ``pim_write_needs_wr``).
    """

    def __init__(self, config: PimConfig) -> None:
        self.config = config
        self.t = config.timing_values
        self.banks = config.banks
        self.dual = config.dual_row_buffer
        self.kinds = 2 if self.dual else 1
        self.ab_kind = 1 if self.dual else 0
        self.ab_path = 1 if self.dual else 0
        groups = config.bank_groups
        self.group_of = [config.bank_group(b) for b in range(self.banks)]
        self.open_row = [[-1] * self.kinds for _ in range(self.banks)]
        self.last_act = [[NEVER] * self.kinds for _ in range(self.banks)]
        self.last_pre = [[NEVER] * self.kinds for _ in range(self.banks)]
        self.last_rd = [[NEVER] * self.kinds for _ in range(self.banks)]
        self.last_wr = [[NEVER] * self.kinds for _ in range(self.banks)]
        self.acts: deque[int] = deque(maxlen=4)
        self.last_act_any = NEVER
        self.last_act_group = [NEVER] * groups
        self.col_any = [NEVER, NEVER]
        self.col_group = [[NEVER] * groups, [NEVER] * groups]
        self.last_ab_col = NEVER
        self.last_bus = NEVER
        self.last_ref = NEVER
        self.mode = SB
        self.port_cycle = [NEVER, NEVER]
        self.last_cycle = NEVER
        self.last_port = PORT_P
        self.ticks = 0
        self.due = 0
        self.overdue = 0
        self.writes_bank: Callable[[Command], bool] = lambda cmd: False
        self._sets = {ALL: list(range(self.banks)), EVEN: list(range(0, self.banks, 2)),
                      ODD: list(range(1, self.banks, 2))}
        self._set_groups = {k: sorted({self.group_of[b] for b in v}) for k, v in self._sets.items()}

    # -------------------------------------------------------------- time
    def advance(self, cycle: int) -> None:
        """Process the refresh ticks at cycles k·tREFI ≤ cycle (k ≥ 1)."""
        ticks = cycle // self.t["tREFI"]
        while self.ticks < ticks:
            self.ticks += 1
            if self.due >= REFRESH_POSTPONE:
                self.overdue += 1
            else:
                self.due += 1

    # -------------------------------------------------------------- helpers
    def bank_set(self, code: int) -> list[int] | None:
        banks = self._sets.get(code)
        return banks if banks else None

    def _targets(self, cmd: Command) -> tuple[list[tuple[int, int]], list[int], int] | str:
        """(buffers, groups, path) of a bank command, or a rule name (address)."""
        code = cmd.code
        if code in (ACT, PRE, RD, WR):
            if not 0 <= cmd.bank < self.banks:
                return "address"
            return [(cmd.bank, 0)], [self.group_of[cmd.bank]], 0
        if code == PREA:
            return [(b, 0) for b in range(self.banks)], [], 0
        banks = self.bank_set(cmd.bank)
        if banks is None:
            return "address"
        return [(b, self.ab_kind) for b in banks], self._set_groups[cmd.bank], self.ab_path

    def _static(self, cmd: Command) -> str | None:
        """Rules that do not depend on the offered cycle: code, address, mode, state."""
        c = self.config
        code = cmd.code
        if code not in CODE_NAMES:
            return "code"
        # address
        if code in (ACT, ACTAB) and not 0 <= cmd.row < c.rows:
            return "address"
        if code in (RD, WR, RDAB, WRAB) and not 0 <= cmd.column < c.columns:
            return "address"
        if code in (RDAB, WRAB) and not 0 <= cmd.row < c.grf:
            return "address"
        if code in (ACT, PRE, RD, WR, ACTAB, PREAB, RDAB, WRAB):
            targets = self._targets(cmd)
            if isinstance(targets, str):
                return targets
            if code in (RDAB, WRAB) and self.mode == AB_PIM and c.unit == "pair" \
                    and cmd.bank == ALL:
                return "address"
        if code == MODE and cmd.row not in (SB, AB, AB_PIM):
            return "address"
        if code in (WRREG, RDREG, RDRC):
            rule = self._reg_address(cmd)
            if rule:
                return rule
        # mode
        if code in N_CODES and not (self.dual or self.mode == SB):
            return "mode"
        if code in (ACTAB, PREAB, WRAB) and self.mode == SB:
            return "mode"
        if code == RDAB and self.mode != AB_PIM:
            return "mode"
        # state
        if code in (ACT, ACTAB):
            buffers, _, _ = self._targets(cmd)
            if any(self.open_row[b][k] >= 0 for b, k in buffers):
                return "bank_open"
            if self.dual:
                other = 1 - buffers[0][1]
                if any(self.open_row[b][other] == cmd.row for b, _ in buffers):
                    return "row_conflict"
        if code in (RD, WR, RDAB, WRAB):
            buffers, _, _ = self._targets(cmd)
            if any(self.open_row[b][k] < 0 for b, k in buffers):
                return "bank_closed"
            if code == RDAB and self.writes_bank(cmd):
                return "pim_write_needs_wr"
        if code == REF and any(r >= 0 for rows in self.open_row for r in rows):
            return "not_precharged"
        if code == MODE and (cmd.row == SB) != (self.mode == SB) \
                and any(self.open_row[b][self.ab_kind] >= 0 for b in range(self.banks)):
            return "not_precharged"
        return None

    def _reg_address(self, cmd: Command) -> str | None:
        c = self.config
        file, index = cmd.row >> 5, cmd.row & 31
        sizes = {F_GRF_A: c.grf, F_GRF_B: c.grf, F_SRF: c.srf, F_CRF: c.crf}
        if file not in sizes or index >= sizes[file]:
            return "address"
        if cmd.code == RDRC and file != F_GRF_B:
            return "address"
        if cmd.column >= (c.acc_pieces if file == F_GRF_B else 1):
            return "address"
        targeted = cmd.code != WRREG or self.mode == SB
        if targeted and not 0 <= cmd.bank < c.banks:
            return "address"
        return None

    def _bounds(self, cmd: Command) -> list[tuple[str, int]]:
        """Timing lower bounds (rule, earliest cycle) of a statically legal command."""
        t = self.t
        code = cmd.code
        out: list[tuple[str, int]] = []
        if code in (ACT, ACTAB):
            buffers, groups, _ = self._targets(cmd)
            out.append(("tRFC", self.last_ref + t["tRFC"]))
            out.append(("tRP", max(self.last_pre[b][k] for b, k in buffers) + t["tRP"]))
            out.append(("tRC", max(self.last_act[b][k] for b, k in buffers) + t["tRC"]))
            out.append(("tRRD_L", max(self.last_act_group[g] for g in groups) + t["tRRD_L"]))
            out.append(("tRRD_S", self.last_act_any + t["tRRD_S"]))
            if len(self.acts) == 4:
                out.append(("tFAW", self.acts[0] + t["tFAW"]))
        elif code in (PRE, PREA, PREAB):
            buffers, _, _ = self._targets(cmd)
            live = [(b, k) for b, k in buffers if self.open_row[b][k] >= 0]
            if live:
                out.append(("tRAS", max(self.last_act[b][k] for b, k in live) + t["tRAS"]))
                out.append(("tRTP", max(self.last_rd[b][k] for b, k in live) + t["tRTP"]))
                out.append(("tWR", max(self.last_wr[b][k] for b, k in live)
                            + t["tWL"] + t["tBL"] + t["tWR"]))
        elif code in (RD, WR, RDAB, WRAB):
            buffers, groups, path = self._targets(cmd)
            out.append(("tRCD", max(self.last_act[b][k] for b, k in buffers) + t["tRCD"]))
            long = max(self.col_group[path][g] for g in groups)
            if code in (RDAB, WRAB):
                long = max(long, self.last_ab_col)
            out.append(("tCCD_L", long + t["tCCD_L"]))
            out.append(("tCCD_S", self.col_any[path] + t["tCCD_S"]))
        elif code == REF:
            out.append(("tRFC", self.last_ref + t["tRFC"]))
            out.append(("tRP", max(max(r) for r in self.last_pre) + t["tRP"]))
            out.append(("tRC", max(max(r) for r in self.last_act) + t["tRC"]))
        if self.uses_bus(cmd):
            out.append(("tBL", self.last_bus + t["tBL"]))
        return out

    def uses_bus(self, cmd: Command) -> bool:
        """Commands that move a column over the external data bus: RD, WR, WRREG, RDREG, RDRC,
        and WRAB in AB mode (a broadcast write); triggers do not."""
        return cmd.code in (RD, WR, WRREG, RDREG, RDRC) or (cmd.code == WRAB
                                                            and self.mode == AB)

    # -------------------------------------------------------------- queries
    def check(self, cmd: Command) -> str | None:
        """The rule that rejects ``cmd`` at its cycle, or None (does not change the state)."""
        if cmd.cycle < self.last_cycle or (cmd.cycle == self.last_cycle
                                           and cmd.port < self.last_port):
            raise ValueError(f"commands must come in cycle order, port P before port N within "
                             f"a cycle: {cmd} after cycle {self.last_cycle}")
        if self.port_cycle[cmd.port] == cmd.cycle:
            return "port"
        rule = self._static(cmd)
        if rule:
            return rule
        bounds = self._bounds(cmd)
        failed = [name for name, bound in bounds if cmd.cycle < bound]
        if failed:
            return min(failed, key=RULE_ID.__getitem__)
        return None

    def earliest(self, cmd: Command, now: int) -> int | None:
        """First cycle ≥ now (and ≥ the port's next free cycle) at which ``cmd`` would be
        accepted, assuming no other command in between; None if a state rule forbids it."""
        if self._static(cmd):
            return None
        now = max(now, self.last_cycle, self.port_cycle[cmd.port] + 1)
        if now == self.last_cycle and cmd.port < self.last_port:
            now += 1
        return max([now, *(bound for _, bound in self._bounds(cmd))])

    # -------------------------------------------------------------- updates
    def offer(self, cmd: Command, apply: Callable[[Command], Any] | None = None
              ) -> tuple[str | None, Any]:
        """Check ``cmd``; if accepted, run ``apply(cmd)`` (the value effects, seeing the state
        before the command) and record it. Returns (rejecting rule or None, apply's result)."""
        self.advance(cmd.cycle)
        rule = self.check(cmd)
        self.port_cycle[cmd.port] = cmd.cycle
        self.last_cycle, self.last_port = cmd.cycle, cmd.port
        result = None
        if rule is None:
            if apply is not None:
                result = apply(cmd)
            self.commit(cmd)
        return rule, result

    def commit(self, cmd: Command) -> None:
        c, code = cmd.cycle, cmd.code
        if self.uses_bus(cmd):
            self.last_bus = c
        if code in (ACT, ACTAB):
            buffers, groups, _ = self._targets(cmd)
            for b, k in buffers:
                self.open_row[b][k] = cmd.row
                self.last_act[b][k] = c
            self.acts.append(c)
            self.last_act_any = c
            for g in groups:
                self.last_act_group[g] = c
        elif code in (PRE, PREA, PREAB):
            buffers, _, _ = self._targets(cmd)
            for b, k in buffers:
                if self.open_row[b][k] >= 0:
                    self.open_row[b][k] = -1
                    self.last_pre[b][k] = c
        elif code in (RD, WR, RDAB, WRAB):
            buffers, groups, path = self._targets(cmd)
            last = self.last_rd if code in (RD, RDAB) else self.last_wr
            for b, k in buffers:
                last[b][k] = c
            self.col_any[path] = c
            for g in groups:
                self.col_group[path][g] = c
            if code in (RDAB, WRAB):
                self.last_ab_col = c
        elif code == REF:
            self.last_ref = c
            self.due = max(self.due - 1, 0)
        elif code == MODE:
            self.mode = cmd.row

    def snapshot(self) -> dict[str, Any]:
        """Everything a command can change (not the counters and refresh bookkeeping)."""
        keys = ("open_row", "last_act", "last_pre", "last_rd", "last_wr", "last_act_any",
                "last_act_group", "col_any", "col_group", "last_ab_col", "last_bus", "last_ref",
                "mode")
        state = {k: _deep(getattr(self, k)) for k in keys}
        state["acts"] = list(self.acts)
        return state


def _deep(value: Any) -> Any:
    return [_deep(v) for v in value] if isinstance(value, list) else value


# ----------------------------------------------------------------------------------------------
# The command-level reference model
# ----------------------------------------------------------------------------------------------


def _f32(bits: np.ndarray) -> np.ndarray:
    return bits.astype(np.uint32).view(np.float32)


def _canon(values: np.ndarray) -> np.ndarray:
    bits = values.astype(np.float32).view(np.uint32).copy()
    bits[np.isnan(values)] = CANONICAL_NAN
    return bits


class PimModel:
    """Executes a command stream instruction by instruction (docs/pim.md)."""

    def __init__(self, config: PimConfig) -> None:
        self.config = c = config
        self.checker = Checker(config)
        self.checker.writes_bank = self._trigger_writes_bank
        U = c.units
        self.mem = np.zeros((c.banks, c.rows, c.columns, c.column_bytes), np.uint8)
        self.grf_a = np.zeros((U, c.grf, c.column_bytes), np.uint8)
        self.grf_b = np.zeros((U, c.grf, c.lanes), np.uint32)
        self.srf = np.zeros((U, c.srf, c.lane_bytes), np.uint8)
        self.crf = np.zeros((U, c.crf), np.uint32)
        self.pc = [0] * U
        self.loop_active = [0] * U
        self.loop_count = [0] * U
        self.halted = [False] * U
        self.counters = {"accepted": 0, "rejected": 0, "triggers": 0, "refreshes": 0,
                         "illegal_instructions": 0, "reads": 0}
        self.rejected_by_rule = [0] * len(RULES)

    # -------------------------------------------------------------- interface
    def execute(self, cmd: Command) -> Result:
        rule, read = self.checker.offer(cmd, self._apply)
        if rule is not None:
            self.counters["rejected"] += 1
            self.rejected_by_rule[RULE_ID[rule]] += 1
            return Result(False, rule)
        self.counters["accepted"] += 1
        if read is not None:
            self.counters["reads"] += 1
        return Result(True, "ok", read)

    def run(self, commands: Iterable[Command]) -> list[Result]:
        return [self.execute(cmd) for cmd in commands]

    @property
    def cycles(self) -> int:
        return max(self.checker.last_cycle + 1, 0)

    def snapshot(self) -> dict[str, Any]:
        """Banks, registers, unit state and the checker's state (not the counters)."""
        return {"mem": self.mem.copy(), "grf_a": self.grf_a.copy(), "grf_b": self.grf_b.copy(),
                "srf": self.srf.copy(), "crf": self.crf.copy(), "pc": list(self.pc),
                "loop_active": list(self.loop_active), "loop_count": list(self.loop_count),
                "halted": list(self.halted), "checker": self.checker.snapshot()}

    # -------------------------------------------------------------- effects
    def _data(self, cmd: Command) -> np.ndarray:
        raw = cmd.data[:self.config.column_bytes].ljust(self.config.column_bytes, b"\0")
        return np.frombuffer(raw, np.uint8).copy()

    def _apply(self, cmd: Command) -> bytes | None:
        c, ck, code = self.config, self.checker, cmd.code
        if code == RD:
            return self.mem[cmd.bank, ck.open_row[cmd.bank][0], cmd.column].tobytes()
        if code == WR:
            self.mem[cmd.bank, ck.open_row[cmd.bank][0], cmd.column] = self._data(cmd)
        elif code == WRAB and ck.mode == AB:
            data = self._data(cmd)
            for b in ck.bank_set(cmd.bank):
                self.mem[b, ck.open_row[b][ck.ab_kind], cmd.column] = data
        elif code in (RDAB, WRAB):
            self._trigger(cmd)
        elif code == REF:
            self.counters["refreshes"] += 1
        elif code == MODE and cmd.row == AB_PIM and ck.mode != AB_PIM:
            U = c.units
            self.pc, self.loop_active, self.loop_count = [0] * U, [0] * U, [0] * U
            self.halted = [False] * U
        elif code == WRREG:
            units = range(c.units) if ck.mode != SB else [c.unit_of_bank(cmd.bank)]
            for u in units:
                self._write_reg(u, cmd)
        elif code in (RDREG, RDRC):
            return self._read_reg(c.unit_of_bank(cmd.bank), cmd, clear=code == RDRC)
        return None

    def _write_reg(self, u: int, cmd: Command) -> None:
        c = self.config
        file, index, data = cmd.row >> 5, cmd.row & 31, self._data(cmd)
        if file == F_GRF_A:
            self.grf_a[u, index] = data
        elif file == F_GRF_B:
            words = data.view("<u4")
            per = c.words_per_column
            lo = cmd.column * per
            n = max(0, min(per, c.lanes - lo))
            self.grf_b[u, index, lo:lo + n] = words[:n]
        elif file == F_SRF:
            self.srf[u, index] = data[:c.lane_bytes]
        else:
            self.crf[u, index] = int(data[:4].view("<u4")[0])

    def _read_reg(self, u: int, cmd: Command, clear: bool) -> bytes:
        c = self.config
        file, index = cmd.row >> 5, cmd.row & 31
        out = np.zeros(c.column_bytes, np.uint8)
        if file == F_GRF_A:
            out[:] = self.grf_a[u, index]
        elif file == F_GRF_B:
            per = c.words_per_column
            lo = cmd.column * per
            n = max(0, min(per, c.lanes - lo))
            out.view("<u4")[:n] = self.grf_b[u, index, lo:lo + n]
            if clear:
                self.grf_b[u, index, lo:lo + n] = 0
        elif file == F_SRF:
            out[:c.lane_bytes] = self.srf[u, index]
        else:
            out[:4] = np.array([self.crf[u, index]], "<u4").view(np.uint8)
        return out.tobytes()

    # -------------------------------------------------------------- PIM execution
    def _triggered(self, cmd: Command) -> list[tuple[int, int]]:
        """(unit, bank) pairs that a trigger fires, in unit order."""
        c = self.config
        banks = self.checker.bank_set(cmd.bank) or []
        if c.unit == "bank":
            return [(b, b) for b in banks]
        parity = 1 if cmd.bank == ODD else 0
        return [(u, 2 * u + parity) for u in range(c.units)]

    def _trigger_writes_bank(self, cmd: Command) -> bool:
        crf = self.config.crf
        for u, _ in self._triggered(cmd):
            pc = self.pc[u]
            if not self.halted[u] and pc < crf and _writes_bank(int(self.crf[u, pc])):
                return True
        return False

    def _trigger(self, cmd: Command) -> None:
        """Every fired unit executes its next instruction; its BANK operand is column
        ``cmd.column`` of its bank's open all-bank row R, and its flat address is
        ``F = R·columns + column`` (per-bank units) or ``F = (2R + parity)·columns + column``
        (pair units, parity 1 for the ODD set); the command's row field is the accumulator
        offset that AAM adds to GRF_B indices."""
        c, ck = self.config, self.checker
        self.counters["triggers"] += 1
        parity = 1 if cmd.bank == ODD else 0
        for u, bank in self._triggered(cmd):
            row = ck.open_row[bank][ck.ab_kind]
            span = 1 if c.unit == "bank" else 2
            flat = (span * row + (parity if c.unit == "pair" else 0)) * c.columns + cmd.column
            self._step(u, bank, row, cmd.column, flat, cmd.row)

    def _resolve_jump(self, u: int, slot: int) -> int:
        d = decode_instruction(int(self.crf[u, slot]))
        if d["count"] == 0:
            return d["target"]
        if not self.loop_active[u]:
            self.loop_active[u] = 1
            self.loop_count[u] = d["count"] - 1
        if self.loop_count[u] > 0:
            self.loop_count[u] -= 1
            return d["target"]
        self.loop_active[u] = 0
        return slot + 1

    def _step(self, u: int, bank: int, row: int, column: int, flat: int, acc_off: int) -> None:
        crf = self.config.crf
        if self.halted[u] or self.pc[u] >= crf:
            self.halted[u] = True
            return
        pc = self.pc[u]
        word = int(self.crf[u, pc])
        op = word >> 28
        if op == OP_JUMP:
            nxt = self._resolve_jump(u, pc)
        elif op == OP_EXIT:
            self.halted[u] = True
            return
        else:
            self._execute(u, word, bank, row, column, flat, acc_off)
            nxt = pc + 1
            if nxt < crf and int(self.crf[u, nxt]) >> 28 == OP_JUMP:
                nxt = self._resolve_jump(u, nxt)
        self.pc[u] = nxt
        if nxt >= crf:
            self.halted[u] = True

    def _execute(self, u: int, word: int, bank: int, row: int, column: int, flat: int,
                 acc_off: int) -> None:
        c = self.config
        d = decode_instruction(word)
        op = d["op"]
        if op == OP_NOP:
            return
        if not _legal(d):
            self.counters["illegal_instructions"] += 1
            return
        grf, L = c.grf, c.lanes
        G, X = 1 << d["ag"], 1 << d["ax"]
        off_b = flat % G + acc_off if d["aam"] else 0
        q = flat // G

        def idx_b(i: int) -> int:
            return (i + off_b) % grf

        def vector(kind: int, index: int) -> np.ndarray:
            if kind == T_BANK:
                return self.mem[bank, row, column]
            return self.grf_a[u, index % grf]

        def scalar_or_vector(kind: int, index: int) -> np.ndarray:
            """src1 of a multiply: a column, or a lane word broadcast to every lane."""
            if kind == T_SRF:
                return np.tile(self.srf[u, index % c.srf], L)
            if d["aam"]:
                reg = (index + (q // L) % X) % grf
                lane = q % L
                word_ = self.grf_a[u, reg, lane * c.lane_bytes:(lane + 1) * c.lane_bytes]
                return np.tile(word_, L)
            return self.grf_a[u, index % grf]

        if op in (OP_MAC, OP_MUL, OP_MAD):
            a = vector(d["s0_t"], d["s0_i"])
            b = scalar_or_vector(d["s1_t"], d["s1_i"])
            dst = idx_b(d["dst_i"])
            if op == OP_MAC:
                base = self.grf_b[u, dst]
            elif op == OP_MAD:
                base = self.grf_b[u, idx_b(d["s2_i"])]
            else:
                base = None
            self.grf_b[u, dst] = self._dot_acc(a, b, base)
        elif op == OP_ADD:
            x, y = self.grf_b[u, idx_b(d["s0_i"])], self.grf_b[u, idx_b(d["s1_i"])]
            self.grf_b[u, idx_b(d["dst_i"])] = self._add(x, y)
        elif op == OP_MOV:
            if d["dst_t"] == T_GRF_B:
                self.grf_b[u, idx_b(d["dst_i"])] = self.grf_b[u, idx_b(d["s0_i"])].copy()
            elif d["dst_t"] == T_BANK:
                self.mem[bank, row, column] = self.grf_a[u, d["s0_i"] % grf]
            else:
                self.grf_a[u, d["dst_i"] % grf] = vector(d["s0_t"], d["s0_i"]).copy()
        elif op == OP_FILL:
            if d["s0_t"] == T_BANK:
                self.grf_a[u, d["dst_i"] % grf] = self.mem[bank, row, column]
            else:
                self.grf_a[u, d["dst_i"] % grf] = np.tile(self.srf[u, d["s0_i"] % c.srf], L)

    def _dot_acc(self, a: np.ndarray, b: np.ndarray, base: np.ndarray | None) -> np.ndarray:
        """Per lane ``base + Σ_j a_j·b_j`` (int8 → int32 wraparound, or bf16 → fp32)."""
        c = self.config
        L, k = c.lanes, c.elems_per_lane
        if c.arithmetic == "int8":
            x = a.view(np.int8).reshape(L, k).astype(np.int64)
            y = b.view(np.int8).reshape(L, k).astype(np.int64)
            total = (x * y).sum(axis=1)
            if base is not None:
                total = total + base.view(np.int32).astype(np.int64)
            return (total & 0xFFFFFFFF).astype(np.uint32)
        x = _f32(a.view("<u2").reshape(L, k).astype(np.uint32) << 16)
        y = _f32(b.view("<u2").reshape(L, k).astype(np.uint32) << 16)
        p = x * y
        s = p[:, 0].copy()
        for j in range(1, k):
            s = s + p[:, j]
        if base is not None:
            s = base.view(np.float32) + s
        return _canon(s)

    def _add(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.config.arithmetic == "int8":
            total = x.view(np.int32).astype(np.int64) + y.view(np.int32).astype(np.int64)
            return (total & 0xFFFFFFFF).astype(np.uint32)
        return _canon(x.view(np.float32) + y.view(np.float32))


# ----------------------------------------------------------------------------------------------
# Raw command traces (npz "commands" table, docs/pim.md "Raw command traces")
# ----------------------------------------------------------------------------------------------


def commands_to_table(commands: Sequence[Command], config: PimConfig) -> np.ndarray:
    """int64 [n, 5 + column_bits/32]: cycle, code, bank, row, column, data words."""
    words = config.words_per_column
    table = np.zeros((len(commands), 5 + words), np.int64)
    for i, cmd in enumerate(commands):
        table[i, :5] = (cmd.cycle, cmd.code, cmd.bank, cmd.row, cmd.column)
        data = cmd.data.ljust(config.column_bytes, b"\0")
        table[i, 5:] = bytes_to_words(data)
    return table


def commands_from_table(table: np.ndarray, config: PimConfig) -> list[Command]:
    table = np.asarray(table, np.int64)
    out = []
    for row in table:
        data = words_to_bytes(row[5:5 + config.words_per_column].tolist(), config.column_bytes)
        out.append(Command(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), data))
    return out




def check_trace_table(table: np.ndarray, config: PimConfig) -> None:
    """ValueError (naming the row and field) for a ``commands`` table the command interface
    cannot carry: wrong shape, negative cycles, fields wider than the beat's fields, data words
    outside 0 … 2**32 − 1."""
    table = np.asarray(table)
    words = config.words_per_column
    if table.ndim != 2 or table.shape[1] != 5 + words or not np.issubdtype(table.dtype,
                                                                             np.integer):
        raise ValueError(f"commands must be an integer table [n, {5 + words}] (cycle, code, "
                         f"bank, row, column, {words} data words); got {table.dtype} "
                         f"{table.shape}")
    limits = {1: ("cycle", 1 << 62), 2: ("code", 1 << FIELD_BITS["code"]),
              3: ("bank", 1 << FIELD_BITS["bank"]), 4: ("row", 1 << FIELD_BITS["row"]),
              5: ("column", 1 << FIELD_BITS["column"])}
    for column, (name, limit) in limits.items():
        values = table[:, column - 1]
        bad = np.nonzero((values < 0) | (values >= limit))[0]
        if bad.size:
            raise ValueError(f"commands row {int(bad[0])}: {name}={int(values[bad[0]])} does "
                             f"not fit the command field (0 … {limit - 1})")
    data = table[:, 5:]
    bad = np.argwhere((data < 0) | (data > 0xFFFFFFFF))
    if bad.size:
        raise ValueError(f"commands row {int(bad[0][0])}: data word {int(bad[0][1])} is not a "
                         f"32-bit word")


#: DRAM cycles a raw trace may reach in the RTL (the command beat's cycle field is 32 bits;
#: idle slots cost the simulator one or two clocks each).
RTL_MAX_CYCLE = (1 << 31) - 1


def check_inputs(config: PimConfig, arrays: dict[str, np.ndarray]) -> None:
    """Check the arrays of ``tensorgates sim pim --inputs``: either a raw ``commands`` table or
    a GEMV (``w`` int8 [out × in] and ``x`` int8 [in] or [batch × in]); ValueError naming the
    key and what is allowed."""
    if "commands" in arrays:
        if "w" in arrays or "x" in arrays:
            raise ValueError("inputs hold both 'commands' and 'w'/'x'; give a raw trace or a "
                             "GEMV, not both")
        table = np.asarray(arrays["commands"])
        check_trace_table(table, config)
        if table.size and int(table[:, 0].max()) > RTL_MAX_CYCLE:
            raise ValueError(f"commands: cycle {int(table[:, 0].max())} is beyond the RTL's "
                             f"command field (0 … {RTL_MAX_CYCLE})")
        return
    if "w" not in arrays or "x" not in arrays:
        raise ValueError("inputs need 'commands' (a raw trace) or 'w' [out×in] and 'x' [in] or "
                         "[batch×in] (a GEMV)")
    if config.arithmetic != "int8":
        raise ValueError(f"arithmetic={config.arithmetic!r} is not built in RTL yet; expected "
                         f"'int8'")
    w, x = np.asarray(arrays["w"]), np.asarray(arrays["x"])
    if w.ndim != 2:
        raise ValueError(f"w must be [out × in]; got shape {list(w.shape)}")
    if x.ndim not in (1, 2) or x.shape[-1] != w.shape[1]:
        raise ValueError(f"x must be [in] or [batch × in] with in = {w.shape[1]}; got shape "
                         f"{list(x.shape)}")
    for name, value in (("w", w), ("x", x)):
        if not np.issubdtype(value.dtype, np.integer) or (
                value.size and (value.min() < -128 or value.max() > 127)):
            raise ValueError(f"{name} must hold int8 values (-128 … 127)")
    batch = 1 if x.ndim == 1 else x.shape[0]
    plan = plan_gemv(w.shape[0], w.shape[1], batch, config)
    from hdl.pim.sequencer import check_gemv_fits
    check_gemv_fits(plan)


def run_trace(table: np.ndarray, config: PimConfig) -> dict[str, np.ndarray]:
    """Run a ``commands`` table (checked by :func:`check_trace_table`) in (cycle, port P before
    port N) order, stably, and return the per-command results (in table order) and the
    counters."""
    check_trace_table(table, config)
    commands = commands_from_table(table, config)
    order = sorted(range(len(commands)), key=lambda i: (commands[i].cycle, commands[i].port))
    model = PimModel(config)
    results: list[Result | None] = [None] * len(commands)
    for i in order:
        results[i] = model.execute(commands[i])
    words = config.words_per_column
    read = np.zeros((len(commands), words), np.int64)
    for i, r in enumerate(results):
        if r.read is not None:
            read[i] = bytes_to_words(r.read)
    return {
        "accepted": np.array([r.accepted for r in results], np.uint8),
        "rule": np.array([r.rule_id for r in results], np.int32),
        "has_read": np.array([r.read is not None for r in results], np.uint8),
        "read_data": read,
        "cycles": np.int64(model.cycles),
        "accepted_count": np.int64(model.counters["accepted"]),
        "rejected_count": np.int64(model.counters["rejected"]),
        "rejected_by_rule": np.array(model.rejected_by_rule, np.int64),
        "triggers": np.int64(model.counters["triggers"]),
        "refreshes": np.int64(model.counters["refreshes"]),
        "refresh_overdue": np.int64(model.checker.overdue),
        "illegal_instructions": np.int64(model.counters["illegal_instructions"]),
    }


# ----------------------------------------------------------------------------------------------
# GEMV: exact reference
# ----------------------------------------------------------------------------------------------


def _as_batch(x: Tensor) -> tuple[Tensor, bool]:
    if x.dim() == 1:
        return x.unsqueeze(0), True
    if x.dim() != 2:
        raise ValueError(f"x must be [in] or [batch × in]; got shape {tuple(x.shape)}")
    return x, False


def gemv_exact(w: Tensor, x: Tensor, config: PimConfig) -> Tensor:
    """``y = W·x`` bit-exact with the lane arithmetic (module docstring); y has x's batch shape.

    int8: W and x int8 (any integer dtype in range), y int32 (wraparound). bf16: W and x
    ``torch.bfloat16``, y ``torch.float32`` with the lane-step accumulation order.
    """
    xb, single = _as_batch(x)
    if w.dim() != 2 or w.shape[1] != xb.shape[1]:
        raise ValueError(f"w must be [out × in] with in = {xb.shape[1]}; got {tuple(w.shape)}")
    if config.arithmetic == "int8":
        acc = xb.to(torch.int64) @ w.to(torch.int64).T
        y = ((acc + (1 << 31)) % (1 << 32) - (1 << 31)).to(torch.int32)
        return y[0] if single else y
    k = config.elems_per_lane
    n_in = w.shape[1]
    steps = -(-n_in // k)
    pad = steps * k - n_in
    wf = torch.nn.functional.pad(w.to(torch.bfloat16), (0, pad)).to(torch.float32)
    xf = torch.nn.functional.pad(xb.to(torch.bfloat16), (0, pad)).to(torch.float32)
    acc = torch.zeros(xb.shape[0], w.shape[0], dtype=torch.float32)
    for t in range(steps):
        p = [xf[:, None, t * k + j] * wf[None, :, t * k + j] for j in range(k)]
        s = p[0]
        for j in range(1, k):
            s = s + p[j]
        acc = acc + s
    acc = torch.where(torch.isnan(acc), torch.tensor(CANONICAL_NAN, dtype=torch.int32)
                      .view(torch.float32), acc)
    return acc[0] if single else acc


# ----------------------------------------------------------------------------------------------
# GEMV: layout and plan (docs/pim.md, "GEMV mapping")
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GemvPlan:
    """W's placement and the GEMV sequencer's descriptor.

    Units ``u`` own output lane groups ``[u·lgpu, (u+1)·lgpu)`` (a lane group is ``L``
    consecutive outputs); a tile is ``G`` lane groups; a unit's stream position
    ``s = (τ·T + t)·G + g`` (tile τ, lane step t, group g) lives at flat address
    ``F = F_base + s``; ``batch`` vectors go through in passes of ``items``.
    """

    config: PimConfig
    out: int
    inputs: int
    batch: int
    items: int          # batch items per pass (B)
    G: int              # accumulator registers per item (lane groups per tile)
    X: int              # x ring registers per item
    base_row: int
    double: bool        # two accumulator sets: tile τ uses set τ mod 2, read back meanwhile

    @property
    def acc_sets(self) -> int:
        return 2 if self.double else 1

    def acc_offset(self, tile: int) -> int:
        """The trigger's accumulator offset (its row field) for ``tile``."""
        return (tile % self.acc_sets) * self.items * self.G

    @property
    def k(self) -> int:
        return self.config.elems_per_lane

    @property
    def T(self) -> int:
        return -(-self.inputs // self.k)

    @property
    def lane_groups_per_unit(self) -> int:
        c = self.config
        lane_groups = -(-self.out // c.lanes)
        return -(-lane_groups // c.units)

    @property
    def tiles(self) -> int:
        return -(-self.lane_groups_per_unit // self.G)

    @property
    def stream(self) -> int:
        """S: stream positions (columns) per unit."""
        return self.tiles * self.T * self.G

    @property
    def sweeps(self) -> int:
        return -(-self.stream // self.config.columns)

    @property
    def sweep_span(self) -> int:
        """Rows of one sweep in the flat address space: a row per bank, or the row pair."""
        return 1 if self.config.unit == "bank" else 2

    @property
    def rows_used(self) -> int:
        return -(-self.sweeps // self.sweep_span)

    @property
    def f_base(self) -> int:
        return self.base_row * self.config.columns * self.sweep_span

    @property
    def passes(self) -> int:
        return -(-self.batch // self.items)

    def sweep(self, k: int) -> tuple[int, int]:
        """(bank set, row) of sweep k."""
        if self.config.unit == "bank":
            return ALL, self.base_row + k
        return (EVEN if k % 2 == 0 else ODD), self.base_row + k // 2

    def descriptor(self) -> dict[str, int]:
        return {"out": self.out, "in": self.inputs, "batch": self.batch, "items": self.items,
                "G": self.G, "X": self.X, "T": self.T, "tiles": self.tiles,
                "lane_groups_per_unit": self.lane_groups_per_unit, "base_row": self.base_row,
                "sweeps": self.sweeps, "stream": self.stream, "double": int(self.double)}


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def plan_gemv(out: int, inputs: int, batch: int, config: PimConfig, *, base_row: int = 0,
              G: int | None = None) -> GemvPlan:
    """Choose the descriptor (docs/pim.md, "GEMV mapping"): items per pass
    ``B = min(batch, grf, (crf - 2) // 2)``; two accumulator sets when ``2·B ≤ grf``;
    ``X = min(8, pow2_floor(grf // B))``; G the power of two ≤ min(8, pow2_floor(grf // (B ·
    sets)), columns) of least estimated cost ``sweeps·columns·B·tCCD_L + readback`` among
    those that fit the banks (ties: larger G), where one tile's read-back takes
    ``R = units·B·G·pieces·tBL`` cycles, all exposed with one set and, with two, only the last
    tile's and ``max(0, R - T·G·B·tCCD_L)`` of each other tile's."""
    c = config
    if out < 1 or inputs < 1 or batch < 1:
        raise ValueError(f"GEMV sizes must be positive; got out={out}, in={inputs}, "
                         f"batch={batch}")
    t = c.timing_values
    items = min(batch, c.grf, (c.crf - 2) // 2)
    double = 2 * items <= c.grf
    X = min(8, _pow2_floor(c.grf // items))
    g_max = min(8, _pow2_floor(c.grf // (items * (2 if double else 1))), c.columns)
    if G is not None and (G > g_max or G & (G - 1)):
        raise ValueError(f"G={G} is not allowed; expected a power of two ≤ {g_max}")
    candidates = [g for g in (1, 2, 4, 8) if g <= g_max] if G is None else [G]
    best: tuple[int, GemvPlan] | None = None
    for g in candidates:
        p = GemvPlan(c, out, inputs, batch, items, g, X, base_row, double)
        readback = c.units * items * g * c.acc_pieces * t["tBL"]
        if double:
            hidden = p.T * g * items * t["tCCD_L"]
            readback = readback + (p.tiles - 1) * max(0, readback - hidden)
        else:
            readback = readback * p.tiles
        cost = p.sweeps * c.columns * items * t["tCCD_L"] + readback
        if base_row + p.rows_used <= c.rows and (best is None or cost <= best[0]):
            best = (cost, p)
    if best is None:
        p = GemvPlan(c, out, inputs, batch, items, candidates[0], X, base_row, double)
        raise ValueError(f"W [{out}×{inputs}] does not fit: it needs {p.rows_used} rows per "
                         f"bank from row {base_row}, the banks have {c.rows}")
    return best[1]


def _elem_bytes(t: Tensor, config: PimConfig) -> np.ndarray:
    """Element tensor → uint8 bytes per element (int8: 1 byte, bf16: 2 bytes little-endian)."""
    if config.arithmetic == "int8":
        return t.to(torch.int8).numpy().view(np.uint8)[..., None]
    bits = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return np.stack([(bits & 0xFF).astype(np.uint8), (bits >> 8).astype(np.uint8)], axis=-1)


def layout_w(w: Tensor, plan: GemvPlan) -> dict[tuple[int, int], np.ndarray]:
    """W's bank image: ``{(bank, row): uint8 [columns, column_bytes]}`` for the rows it uses.

    Column at stream position ``s = (τ·T + t)·G + g`` of unit u holds, in lane l element j,
    ``W[o, t·k + j]`` with ``o = (u·lgpu + τ·G + g)·L + l`` (0 where o ≥ out, ``τ·G + g ≥
    lgpu`` or ``t·k + j ≥ in``).
    """
    c = plan.config
    U, L, k, G, T = c.units, c.lanes, plan.k, plan.G, plan.T
    lgpu, tiles = plan.lane_groups_per_unit, plan.tiles
    dtype = torch.int8 if c.arithmetic == "int8" else torch.bfloat16
    padded = torch.zeros(U, tiles * G, L, T * k, dtype=dtype)
    for u in range(U):
        for m in range(min(lgpu, tiles * G)):
            lo = (u * lgpu + m) * L
            if lo >= plan.out:
                break
            hi = min(lo + L, plan.out)
            padded[u, m, :hi - lo, :plan.inputs] = w[lo:hi].to(dtype)
    # [u, τ, g, l, t, j] -> [u, τ, t, g, l, j]
    arr = padded.reshape(U, tiles, G, L, T, k).permute(0, 1, 4, 2, 3, 5).contiguous()
    data = _elem_bytes(arr, c).reshape(U, plan.stream, c.column_bytes)
    full = np.zeros((U, plan.sweeps * c.columns, c.column_bytes), np.uint8)
    full[:, :plan.stream] = data
    full = full.reshape(U, plan.sweeps, c.columns, c.column_bytes)
    image: dict[tuple[int, int], np.ndarray] = {}
    for u in range(U):
        for sweep in range(plan.sweeps):
            bank_set, row = plan.sweep(sweep)
            bank = u if c.unit == "bank" else 2 * u + (1 if bank_set == ODD else 0)
            image[(bank, row)] = full[u, sweep]
    return image


def _x_lane_words(x: Tensor, plan: GemvPlan) -> np.ndarray:
    """uint8 [batch, T, lane_bytes]: x's lane words (zero-padded to T·k elements)."""
    c = plan.config
    dtype = torch.int8 if c.arithmetic == "int8" else torch.bfloat16
    xp = torch.zeros(x.shape[0], plan.T * plan.k, dtype=dtype)
    xp[:, :plan.inputs] = x.to(dtype)
    return _elem_bytes(xp, c).reshape(x.shape[0], plan.T, c.lane_bytes)


# ----------------------------------------------------------------------------------------------
# The sequencer: queues and scheduling (docs/pim.md, "GEMV command schedule")
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    code: int
    bank: int = 0
    row: int = 0
    column: int = 0
    data: bytes = b""
    needs: Any = None        # token that must have been issued first
    token: Any = None        # token recorded when issued
    tag: Any = None          # what the caller wants back (e.g. readback mapping)

    @property
    def port(self) -> int:
        return PORT_N if self.code in N_CODES else PORT_P


class _Queue:
    """An in-order command queue, static (a list) or generated (an iterator)."""

    def __init__(self, items: Iterable[_Entry]) -> None:
        self._it: Iterator[_Entry] = iter(items)
        self._head: _Entry | None = None
        self._done = False

    def head(self) -> _Entry | None:
        if self._head is None and not self._done:
            try:
                self._head = next(self._it)
            except StopIteration:
                self._done = True
        return self._head

    def pop(self) -> None:
        self._head = None


def _run_queues(checker: Checker, queues: Sequence[_Queue],
                execute: Callable[[Command], Result] | None, start: int,
                issued: list[tuple[Command, Any]]) -> int:
    """Issue the queues' commands: each step the head that is legal earliest (ties: the queue
    listed first) issues at that cycle. Returns the cycle after the last command."""
    tokens: set[Any] = set()
    now = start
    while True:
        best = None
        waiting = False
        for qi, q in enumerate(queues):
            e = q.head()
            if e is None:
                continue
            waiting = True
            if e.needs is not None and e.needs not in tokens:
                continue
            t = checker.earliest(Command(now, e.code, e.bank, e.row, e.column, e.data), now)
            if t is not None and (best is None or t < best[0]):
                best = (t, qi, e)
        if not waiting:
            return now
        if best is None:
            heads = [str(q.head()) for q in queues if q.head() is not None]
            raise RuntimeError(f"sequencer deadlock at cycle {now}: {heads}")
        t, qi, e = best
        cmd = Command(t, e.code, e.bank, e.row, e.column, e.data)
        if execute is None:
            rule, _ = checker.offer(cmd)
        else:
            rule = execute(cmd).rule
            rule = None if rule == "ok" else rule
        if rule is not None:
            raise RuntimeError(f"scheduled command rejected ({rule}): {cmd}")
        issued.append((cmd, e.tag))
        if e.token is not None:
            tokens.add(e.token)
        queues[qi].pop()
        now = t


def _load_queues(image: dict[tuple[int, int], np.ndarray], checker: Checker, *,
                 code: int = WR, refresh: bool = True) -> tuple[_Queue, _Queue]:
    """Row and column queues that write (or read) a bank image in single-bank commands: rounds
    of rows (ACT every bank of the row, the columns column-major across banks, PRE), a REF
    between rounds when one is due (``refresh``)."""
    rows = sorted({row for _, row in image})
    banks_of = {row: sorted(b for b, r in image if r == row) for row in rows}
    columns = next(iter(image.values())).shape[0] if image else 0

    def column_entries() -> Iterator[_Entry]:
        for row in rows:
            for col in range(columns):
                for bank in banks_of[row]:
                    last = col == columns - 1
                    data = image[(bank, row)][col].tobytes() if code == WR else b""
                    yield _Entry(code, bank, row, col, data, needs=("act", bank, row),
                                 token=("done", bank, row) if last else None,
                                 tag=("read", bank, row, col) if code == RD else None)

    def row_entries() -> Iterator[_Entry]:
        for row in rows:
            for bank in banks_of[row]:
                yield _Entry(ACT, bank, row, token=("act", bank, row))
            for bank in banks_of[row]:
                yield _Entry(PRE, bank, needs=("done", bank, row))
            if refresh and checker.due >= 1 and row != rows[-1]:
                yield _Entry(REF)

    return _Queue(row_entries()), _Queue(column_entries())


def read_traffic(config: PimConfig, rows: Sequence[int], checker: Checker,
                 banks: Sequence[int] | None = None) -> list[_Queue]:
    """Port-N queues of ordinary reads of every column of ``rows`` in ``banks`` (default all),
    for :func:`schedule_gemv`'s ``traffic`` (normal reads beside a GEMV with the dual row
    buffer). No refresh of its own: see docs/pim.md on refresh with concurrent traffic."""
    banks = range(config.banks) if banks is None else banks
    image = {(b, r): np.zeros((config.columns, 0), np.uint8) for b in banks for r in rows}
    return list(_load_queues(image, checker, code=RD, refresh=False))


def _crf_program(items: int, G: int, X: int, columns: int) -> list[int]:
    """Per item b: MAC GRF_B[b·G + F mod G] += BANK · lane-broadcast(GRF_A ring b), looped over
    the sweep's columns; the last item's loop ends with an unconditional jump to slot 0."""
    ag, ax = G.bit_length() - 1, X.bit_length() - 1

    def mac(b: int) -> int:
        return encode_instruction(OP_MAC, (T_GRF_B, b * G), (T_BANK, 0), (T_GRF_A, b * X),
                                  aam=True, ag=ag, ax=ax)

    words: list[int] = []
    for b in range(items - 1):
        slot = len(words)
        words.append(mac(b))
        if columns > 1:
            words.append(jump(slot, columns))
    slot = len(words)
    words.append(mac(items - 1))
    if columns > 1:
        words.append(jump(slot, columns - 1))
        words.append(mac(items - 1))
    words.append(jump(0, 0))
    return words


def _ring_data(lane_words: np.ndarray, plan: GemvPlan, block: int) -> bytes:
    """The GRF_A ring register content for flat block ``block`` (flat addresses
    ``[block·G·L, (block+1)·G·L)``): lane m holds x lane word of stream step
    ``q - F_base/G`` with ``q = block·L + m`` (wrapping per tile; zero outside the stream)."""
    c = plan.config
    L, T = c.lanes, plan.T
    out = np.zeros((L, c.lane_bytes), np.uint8)
    q0 = block * L - plan.f_base // plan.G
    for m in range(L):
        step = q0 + m
        if 0 <= step < plan.tiles * T:
            out[m] = lane_words[step % T]
    return out.tobytes()


def _gemv_queues(plan: GemvPlan, x_words: np.ndarray, checker: Checker, first_item: int,
                 items: int) -> tuple[_Queue, _Queue]:
    """Row queue (ACTAB/PREAB/REF, generated as the run goes) and column queue (mode, program,
    registers, triggers, x ring refills, read-backs) of one pass (docs/pim.md)."""
    c = plan.config
    G, X, T, L, C = plan.G, plan.X, plan.T, c.lanes, c.columns
    S, sweeps, f_base = plan.stream, plan.sweeps, plan.f_base
    block_len = G * L
    f_end = f_base + sweeps * C
    unit_bank = [c.unit_banks(u)[0] for u in range(c.units)]

    def reg(file: int, index: int) -> int:
        return (file << 5) | index

    def column_entries() -> Iterator[_Entry]:
        yield _Entry(MODE, row=AB, token="ab")
        for slot, word in enumerate(_crf_program(items, G, X, C)):
            yield _Entry(WRREG, row=reg(F_CRF, slot), data=word.to_bytes(4, "little"))
        zero = bytes(c.column_bytes)
        for acc_set in range(plan.acc_sets):
            for b in range(items):
                for g in range(G):
                    for p in range(c.acc_pieces):
                        index = plan.acc_offset(acc_set) + b * G + g
                        yield _Entry(WRREG, row=reg(F_GRF_B, index), column=p, data=zero)
        first_block = f_base // block_len
        for b in range(items):
            for j in range(first_block, min(first_block + X, -(-f_end // block_len))):
                yield _Entry(WRREG, row=reg(F_GRF_A, b * X + j % X),
                             data=_ring_data(x_words[first_item + b], plan, j))
        yield _Entry(MODE, row=AB_PIM)
        pending: deque[tuple[int, int, _Entry]] = deque()     # (item, set, RDRC)
        spacing = max(1, -(-c.timing_values["tBL"] // c.timing_values["tCCD_L"]))
        triggers = 0
        for k in range(sweeps):
            bank_set, _ = plan.sweep(k)
            for b in range(items):
                for col in range(C):
                    flat = f_base + k * C + col
                    s = flat - f_base
                    tile = s // (T * G) if s < S else plan.tiles
                    acc_set = tile % plan.acc_sets
                    # the set's previous read-back must be complete before it is reused
                    while any(i == b and st == acc_set for i, st, _ in pending):
                        yield pending.popleft()[2]
                    last = b == items - 1 and col == C - 1
                    yield _Entry(RDAB, bank_set, plan.acc_offset(tile), col, needs=("act", k),
                                 token=("trig", k) if last else None)
                    triggers += 1
                    if s < S and (s + 1) % (T * G) == 0:
                        for u in range(c.units):
                            for g in range(G):
                                for p in range(c.acc_pieces):
                                    index = plan.acc_offset(tile) + b * G + g
                                    pending.append((b, acc_set, _Entry(
                                        RDRC, unit_bank[u], reg(F_GRF_B, index), p,
                                        tag=(first_item + b, u, tile, g, p))))
                        while pending and not plan.double:
                            yield pending.popleft()[2]
                    elif pending and triggers % spacing == 0:
                        yield pending.popleft()[2]
                    if (flat + 1) % block_len == 0:
                        nxt = flat // block_len + X
                        if nxt * block_len < f_end:
                            yield _Entry(WRREG, row=reg(F_GRF_A, b * X + nxt % X),
                                         data=_ring_data(x_words[first_item + b], plan, nxt))
        while pending:
            yield pending.popleft()[2]

    def act(k: int, needs: Any = None) -> _Entry:
        bank_set, row = plan.sweep(k)
        return _Entry(ACTAB, bank_set, row, needs=needs, token=("act", k))

    def pre(k: int) -> _Entry:
        return _Entry(PREAB, plan.sweep(k)[0], needs=("trig", k))

    def row_entries() -> Iterator[_Entry]:
        n_open = plan.sweep_span
        for k in range(min(n_open, sweeps)):
            yield act(k, needs="ab")
        k, opened = 0, min(n_open, sweeps)
        while k < sweeps:
            yield pre(k)
            if opened < sweeps:
                if checker.due >= 1:
                    for j in range(k + 1, opened):
                        yield pre(j)
                    yield _Entry(REF)
                    stop = min(opened + n_open, sweeps)
                    for j in range(opened, stop):
                        yield act(j)
                    k, opened = opened, stop
                    continue
                yield act(opened)
                opened += 1
            k += 1

    return _Queue(row_entries()), _Queue(column_entries())


def schedule_gemv(plan: GemvPlan, x: Tensor | None, checker: Checker, *, start: int = 0,
                  execute: Callable[[Command], Result] | None = None,
                  traffic: Sequence[_Queue] = ()) -> tuple[list[tuple[Command, Any]], int]:
    """The sequencer's compute schedule for every pass, from ``start`` on ``checker``'s state:
    ``[(command, tag)]`` (tag: the read-back mapping of an RDRC, ``("read", bank, row, col)``
    of a traffic read, else None) and the cycle after the last command. ``x`` may be None for
    timing only (zeros are sent). ``traffic`` queues (port N, :func:`read_traffic`) run beside
    the GEMV; ``execute`` (e.g. :meth:`PimModel.execute`) runs every command as it issues."""
    c = plan.config
    if x is None:
        x = torch.zeros(plan.batch, plan.inputs, dtype=torch.int8 if c.arithmetic == "int8"
                        else torch.bfloat16)
    xb, _ = _as_batch(x)
    x_words = _x_lane_words(xb, plan)
    issued: list[tuple[Command, Any]] = []
    now = start
    for p in range(plan.passes):
        first = p * plan.items
        items = min(plan.items, plan.batch - first)
        rows, cols = _gemv_queues(plan, x_words, checker, first, items)
        queues = [rows, cols, *(traffic if p == 0 else ())]
        now = _run_queues(checker, queues, execute, now, issued)
    return issued, now


@dataclasses.dataclass
class GemvProgram:
    """A compiled GEMV: the load (single-bank writes of W) and the compute schedule."""

    plan: GemvPlan
    load: list[Command]
    compute: list[Command]
    readback: list[tuple[int, Any]]       # (index into compute, (item, unit, tile, g, piece))
    single: bool

    @property
    def commands(self) -> list[Command]:
        return self.load + self.compute

    @property
    def compute_cycles(self) -> int:
        return self.compute[-1].cycle - self.compute[0].cycle + 1

    def collect(self, results: Sequence[Result]) -> Tensor:
        """y from the compute results (int32 for int8, float32 for bf16)."""
        return collect_readback(self.plan, [(results[i], tag) for i, tag in self.readback],
                                self.single)


def collect_readback(plan: GemvPlan, reads: Iterable[tuple[Result, Any]], single: bool = False
                     ) -> Tensor:
    """Assemble y [batch × out] (or [out]) from RDRC results and their tags (item, unit, tile,
    g, piece); other tags are ignored."""
    c = plan.config
    y = torch.zeros(plan.batch, plan.out, dtype=torch.int64)
    per = c.words_per_column
    for result, tag in reads:
        if not (isinstance(tag, tuple) and len(tag) == 5):
            continue
        item, u, tile, g, piece = tag
        m = tile * plan.G + g
        if m >= plan.lane_groups_per_unit:
            continue
        words = bytes_to_words(result.read)
        for i in range(per):
            lane = piece * per + i
            o = (u * plan.lane_groups_per_unit + m) * c.lanes + lane
            if lane < c.lanes and o < plan.out:
                y[item, o] = words[i]
    if c.arithmetic == "int8":
        y = ((y + (1 << 31)) % (1 << 32) - (1 << 31)).to(torch.int32)
    else:
        y = torch.from_numpy(y.numpy().astype(np.uint32).view(np.float32))
    return y[0] if single else y


def gemv_program(w: Tensor, x: Tensor, config: PimConfig, *, base_row: int = 0,
                 G: int | None = None) -> GemvProgram:
    """Lay W out, load it (single-bank writes from cycle 0) and compute y with the units (the
    sequencer's schedule right after the load). Run ``program.commands`` on a fresh
    :class:`PimModel` and pass the compute results to :meth:`GemvProgram.collect`."""
    xb, single = _as_batch(x)
    if w.dim() != 2 or w.shape[1] != xb.shape[1]:
        raise ValueError(f"w must be [out × in] with in = {xb.shape[1]}; got {tuple(w.shape)}")
    plan = plan_gemv(w.shape[0], w.shape[1], xb.shape[0], config, base_row=base_row, G=G)
    checker = Checker(config)
    issued: list[tuple[Command, Any]] = []
    end = _run_queues(checker, list(_load_queues(layout_w(w, plan), checker)), None, 0, issued)
    load = [cmd for cmd, _ in issued]
    compute_issued, _ = schedule_gemv(plan, xb, checker, start=end + 1)
    compute = [cmd for cmd, _ in compute_issued]
    readback = [(i, tag) for i, (_, tag) in enumerate(compute_issued) if tag is not None]
    return GemvProgram(plan, load, compute, readback, single)


def run_gemv(w: Tensor, x: Tensor, config: PimConfig, *, base_row: int = 0
             ) -> tuple[Tensor, GemvProgram, PimModel]:
    """Compile, run on a fresh :class:`PimModel` (every command must be accepted) and collect:
    (y, program, model)."""
    program = gemv_program(w, x, config, base_row=base_row)
    model = PimModel(config)
    load = model.run(program.load)
    results = model.run(program.compute)
    bad = [(cmd, r.rule) for cmd, r in zip(program.commands, load + results, strict=True)
           if not r.accepted]
    if bad:
        raise RuntimeError(f"{len(bad)} GEMV commands rejected, first: {bad[0]}")
    return program.collect(results), program, model


# ----------------------------------------------------------------------------------------------
# Cycle model (benchmark)
# ----------------------------------------------------------------------------------------------


def gemv_cycles(out: int, inputs: int, config: PimConfig, *, batch: int = 1,
                checker: Checker | None = None, start: int = 0) -> dict[str, float]:
    """Cycles of the sequencer's compute schedule for W [out × in] (W already in the banks,
    from ``checker``'s state or a fresh channel), bytes of W per cycle and the fraction of
    :attr:`PimConfig.internal_bound`. ``cycles`` counts from the first command's cycle to the
    last command's cycle inclusive."""
    plan = plan_gemv(out, inputs, batch, config)
    checker = checker or Checker(config)
    issued, _ = schedule_gemv(plan, None, checker, start=start)
    cycles = issued[-1][0].cycle - issued[0][0].cycle + 1
    w_bytes = out * inputs * (1 if config.arithmetic == "int8" else 2)
    triggers = sum(1 for cmd, _ in issued if cmd.code == RDAB)
    return {"cycles": cycles, "commands": len(issued), "triggers": triggers,
            "refreshes": sum(1 for cmd, _ in issued if cmd.code == REF),
            "w_bytes": w_bytes, "bytes_per_cycle": w_bytes * plan.passes / cycles,
            "bound": config.internal_bound,
            "efficiency": w_bytes * plan.passes / cycles / config.internal_bound,
            "G": plan.G, "X": plan.X,
            "items": plan.items, "passes": plan.passes}


def external_read_cycles(w_bytes: int, config: PimConfig) -> float:
    """Cycles to stream ``w_bytes`` through ordinary reads at the external bus rate: one column
    per ``max(tCCD_S, tBL)``, stretched by refresh (``/ (1 − tRFC/tREFI)``), plus one
    ``tRCD`` of start-up (bank interleaving hides the other row switches)."""
    columns = -(-w_bytes // config.column_bytes)
    t = config.timing_values
    return columns * config.external_cycles_per_column / config.refresh_factor + t["tRCD"]

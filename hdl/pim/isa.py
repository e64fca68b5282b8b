"""Encodings of the PIM channel (docs/pim.md, "Command interface", "ISA", "Timing and state
rules"): command codes, modes, bank sets, register files, opcodes, operand types, rule ids. Shared
by the RTL (``hdl.pim``), the golden model (``golden.pim``) and the testbenches."""
from __future__ import annotations

CODES = {"NOP": 0, "ACT": 1, "PRE": 2, "PREA": 3, "RD": 4, "WR": 5, "ACTAB": 6, "PREAB": 7,
         "RDAB": 8, "WRAB": 9, "REF": 10, "MODE": 11, "WRREG": 12, "RDREG": 13, "RDRC": 14}
NOP, ACT, PRE, PREA, RD, WR, ACTAB, PREAB, RDAB, WRAB, REF, MODE, WRREG, RDREG, RDRC = range(15)
CODE_NAMES = {v: k for k, v in CODES.items()}
#: Port N carries the single-bank commands, port P everything else.
N_CODES = frozenset({ACT, PRE, PREA, RD, WR})
PORT_P, PORT_N = 0, 1

MODES = {"SB": 0, "AB": 1, "AB_PIM": 2}
SB, AB, AB_PIM = 0, 1, 2
SETS = {"ALL": 0, "EVEN": 1, "ODD": 2}
ALL, EVEN, ODD = 0, 1, 2
FILES = {"GRF_A": 0, "GRF_B": 1, "SRF": 2, "CRF": 3}
F_GRF_A, F_GRF_B, F_SRF, F_CRF = 0, 1, 2, 3

OPS = {"NOP": 0, "JUMP": 1, "EXIT": 2, "MAC": 4, "MUL": 5, "MAD": 6, "ADD": 7, "MOV": 8,
       "FILL": 9}
OP_NOP, OP_JUMP, OP_EXIT = 0, 1, 2
OP_MAC, OP_MUL, OP_MAD, OP_ADD, OP_MOV, OP_FILL = 4, 5, 6, 7, 8, 9
OPERANDS = {"GRF_A": 0, "GRF_B": 1, "SRF": 2, "BANK": 3}
T_GRF_A, T_GRF_B, T_SRF, T_BANK = 0, 1, 2, 3

#: Rejection rules; the id is the index, 0 = accepted. When several rules fail, the one listed
#: first is reported.
RULES = ("ok", "port", "code", "address", "mode", "bank_open", "bank_closed", "row_conflict",
         "not_precharged", "pim_write_needs_wr", "tRFC", "tRP", "tRC", "tRAS", "tRTP", "tWR",
         "tRCD", "tRRD_L", "tRRD_S", "tFAW", "tCCD_L", "tCCD_S", "tBL")
RULE_ID = {name: i for i, name in enumerate(RULES)}
REFRESH_POSTPONE = 8
#: Command beat field widths in bits (docs/pim.md, "Command interface").
FIELD_BITS = {"code": 4, "bank": 5, "row": 16, "column": 9}

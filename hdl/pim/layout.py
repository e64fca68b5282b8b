"""Host-side protocol of ``pim`` (docs/pim.md, "Command interface" and "RTL"): raw command beats
in decision order, status beats back to the per-command outputs of ``sim --inputs``, and a GEMV
job (W's load, the descriptor, x's lane words, the status beats golden expects and y from the
read-backs). Shared by the testbench and the host adapter; runs the golden command model.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from golden.pim import (
    RDRC,
    RULES,
    Command,
    GemvPlan,
    PimModel,
    Result,
    _x_lane_words,
    bytes_to_words,
    check_trace_table,
    collect_readback,
    commands_from_table,
    gemv_exact,
    gemv_program,
    run_trace,
    schedule_gemv,
)

from .config import PimConfig
from .sequencer import gemv_descriptor

__all__ = ["TAG_FIELDS", "GemvJob", "command_beat", "command_beats", "counter_outputs", "gemv_job",
           "gemv_readback", "status_beat", "trace_golden", "trace_order", "trace_outputs",
           "trace_status"]

#: The read-back tag of a sequencer RDRC status beat (``hdl.pim.interface.tag_layout``).
TAG_FIELDS = ("item", "unit", "tile", "group", "piece")
#: The per-command outputs of a raw trace that the host compares with golden ``run_trace``.
TRACE_KEYS = ("accepted", "rule", "has_read", "read_data", "rejected_by_rule")


def counter_outputs(counters: dict[str, int]) -> dict[str, np.int64]:
    """The block's counters as npz scalars; ``cycles`` (clock cycles) becomes ``clock_cycles``
    and accepted / rejected ``accepted_count`` / ``rejected_count`` (the names of
    ``run_trace``, whose ``cycles`` are DRAM cycles)."""
    rename = {"cycles": "clock_cycles", "accepted": "accepted_count",
              "rejected": "rejected_count"}
    return {rename.get(name, name): np.int64(value) for name, value in counters.items()}


def command_beat(config: PimConfig, cmd: Command) -> dict:
    """The ``cmd`` payload of a raw command (data: one column, little-endian)."""
    return {"cycle": cmd.cycle, "code": cmd.code, "bank": cmd.bank, "row": cmd.row,
            "column": cmd.column, "data": int.from_bytes(cmd.data[:config.column_bytes],
                                                         "little")}


def command_beats(config: PimConfig, commands: list[Command]) -> list[dict]:
    return [command_beat(config, cmd) for cmd in commands]


def status_beat(config: PimConfig, cmd: Command, result: Result, sequencer: bool,
                tag: Any = None) -> dict:
    """The ``status`` payload golden expects for ``cmd`` decided as ``result`` (the tag only on a
    sequencer RDRC, else zeros)."""
    tagged = sequencer and cmd.code == RDRC and isinstance(tag, tuple)
    return {"cycle": cmd.cycle, "code": cmd.code, "bank": cmd.bank, "row": cmd.row,
            "column": cmd.column, "sequencer": int(sequencer), "accepted": int(result.accepted),
            "rule": result.rule_id, "has_read": int(result.read is not None),
            "read_data": int.from_bytes(result.read, "little") if result.read is not None else 0,
            "tag": dict(zip(TAG_FIELDS, tag if tagged else (0,) * len(TAG_FIELDS),
                            strict=True))}


def trace_order(config: PimConfig, table: np.ndarray) -> tuple[list[Command], list[int]]:
    """A ``commands`` table's commands and their decision order (by cycle, port P before port
    N, stably: golden ``run_trace``'s order and that of the RTL's status beats)."""
    table = np.asarray(table, np.int64)
    check_trace_table(table, config)
    commands = commands_from_table(table, config)
    order = sorted(range(len(commands)), key=lambda i: (commands[i].cycle, commands[i].port))
    return commands, order


def trace_outputs(config: PimConfig, table: np.ndarray, beats: list[dict]) -> dict:
    """Status beats (unpacked, decision order) of a raw trace as per-command outputs in table
    order: ``accepted``, ``rule``, ``has_read``, ``read_data`` [n, words], ``rejected_by_rule``
    (golden ``run_trace``'s names)."""
    _, order = trace_order(config, table)
    n, words = len(order), config.words_per_column
    out = {"accepted": np.zeros(n, np.uint8), "rule": np.zeros(n, np.int32),
           "has_read": np.zeros(n, np.uint8), "read_data": np.zeros((n, words), np.int64)}
    for beat, index in zip(beats, order, strict=False):
        out["accepted"][index] = beat["accepted"]
        out["rule"][index] = beat["rule"]
        out["has_read"][index] = beat["has_read"]
        if beat["has_read"]:
            out["read_data"][index] = bytes_to_words(
                int(beat["read_data"]).to_bytes(config.column_bytes, "little"))
    out["rejected_by_rule"] = np.bincount(out["rule"][out["accepted"] == 0],
                                          minlength=len(RULES)).astype(np.int64)
    return out


def trace_golden(config: PimConfig, table: np.ndarray) -> dict[str, np.ndarray]:
    """Golden ``run_trace``'s outputs of the keys :func:`trace_outputs` returns."""
    golden = run_trace(np.asarray(table, np.int64), config)
    return {key: golden[key] for key in TRACE_KEYS}


def trace_status(config: PimConfig, table: np.ndarray) -> list[dict]:
    """The status beats golden expects for a raw trace, in decision order."""
    commands, order = trace_order(config, table)
    model = PimModel(config)
    return [status_beat(config, commands[i], model.execute(commands[i]), False) for i in order]


def gemv_readback(config: PimConfig, plan: GemvPlan, beats: list[dict],
                  single: bool) -> torch.Tensor:
    """y from the sequencer's RDRC status beats (their tags and read data)."""
    reads = [(Result(True, "ok", int(beat["read_data"]).to_bytes(config.column_bytes,
                                                                 "little")),
              tuple(beat["tag"][name] for name in TAG_FIELDS))
             for beat in beats if beat["sequencer"] and beat["code"] == RDRC]
    return collect_readback(plan, reads, single)


@dataclasses.dataclass
class GemvJob:
    """A GEMV y = W·x through the channel from reset: W loaded by raw single-bank writes (in
    decision order on ``cmd``), then the descriptor on ``gemv`` and x's lane words on ``x``;
    ``status`` is every status beat golden expects (the load's, then the sequencer's)."""

    config: PimConfig
    plan: GemvPlan
    single: bool
    load: list[Command]
    descriptor: dict
    x_words: list[int]
    schedule: list[Command]
    status: list[dict]
    golden: dict[str, np.ndarray]

    def outputs(self, beats: list[dict]) -> dict[str, np.ndarray]:
        """``y`` from the status beats (unpacked; the load's, then the sequencer's) and
        ``cycles``, the sequencer's first to last command. ``ValueError`` for a read-back
        tagged with a batch item the job does not have."""
        items = {beat["tag"]["item"] for beat in beats if beat["sequencer"]
                 and beat["code"] == RDRC}
        if items and max(items) >= self.plan.batch:
            raise ValueError(f"pim: a read-back is tagged with batch item {max(items)}; the job "
                             f"has {self.plan.batch}")
        y = gemv_readback(self.config, self.plan, beats, self.single)
        cycles = [int(beat["cycle"]) for beat in beats if beat["sequencer"]]
        return {"y": y.numpy(),
                "cycles": np.int64(cycles[-1] - cycles[0] + 1 if cycles else 0)}


def gemv_job(config: PimConfig, w: np.ndarray, x: np.ndarray) -> GemvJob:
    """The :class:`GemvJob` of int8 ``w`` [out × in] and ``x`` [in] or [batch × in] (golden
    ``gemv_program``'s load and plan; the schedule from the model's state after the load)."""
    w_t = torch.from_numpy(np.asarray(w, np.int8))
    x_t = torch.from_numpy(np.asarray(x, np.int8))
    program = gemv_program(w_t, x_t, config)
    model = PimModel(config)
    order = sorted(range(len(program.load)),
                   key=lambda i: (program.load[i].cycle, program.load[i].port))
    load = [program.load[i] for i in order]
    status = [status_beat(config, cmd, model.execute(cmd), False) for cmd in load]
    start = max(cmd.cycle for cmd in load) + 1
    results: list[Result] = []

    def execute(cmd: Command) -> Result:
        results.append(model.execute(cmd))
        return results[-1]

    issued, _ = schedule_gemv(program.plan, x_t, model.checker, start=start, execute=execute)
    status += [status_beat(config, cmd, result, True, tag)
               for (cmd, tag), result in zip(issued, results, strict=True)]
    words = _x_lane_words(x_t if x_t.dim() == 2 else x_t.unsqueeze(0), program.plan)
    x_words = [int.from_bytes(words[item, step].tobytes(), "little")
               for item in range(words.shape[0]) for step in range(words.shape[1])]
    schedule = [cmd for cmd, _ in issued]
    golden = {"y": gemv_exact(w_t, x_t, config).numpy(),
              "cycles": np.int64(schedule[-1].cycle - schedule[0].cycle + 1)}
    return GemvJob(config, program.plan, x_t.dim() == 1, load,
                   gemv_descriptor(program.plan, start), x_words, schedule, status, golden)

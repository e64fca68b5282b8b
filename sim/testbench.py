"""What every cocotb testbench reads from the runner's environment and writes back.

Environment (set by :mod:`sim.runner`): ``TG_CONFIG`` (config JSON), ``TG_SEED``,
``TG_RESULTS`` (a folder for one JSON record per test), ``TG_INPUTS``/``TG_OUTPUTS`` (user
tensors, ``sim --inputs``), ``TG_JOBS`` (random jobs), ``TG_GAP`` (probability of an idle
cycle on every stream).
"""
from __future__ import annotations

import json
import os
import random

import numpy as np

__all__ = ["gap", "jobs", "load_config", "random_ints", "seed", "start_harness", "write_results"]


def seed() -> int:
    """The run's seed: ``tensorgates sim --seed`` replays it."""
    return int(os.environ["TG_SEED"])


def gap(default: float = 0.3) -> float:
    return float(os.environ.get("TG_GAP", str(default)))


def jobs(default: int) -> int:
    return int(os.environ.get("TG_JOBS", str(default)))


def load_config(config_class):
    """The design point under test, from ``TG_CONFIG``."""
    settings = json.loads(os.environ["TG_CONFIG"])
    settings.pop("block", None)
    return config_class(**settings)


def write_results(record: dict) -> None:
    """One JSON record per test in ``TG_RESULTS`` (a folder) for the runner to collect."""
    folder = os.environ.get("TG_RESULTS")
    if folder:
        with open(os.path.join(folder, f"{record['test']}.json"), "w") as file:
            json.dump(record, file, indent=2)


def random_ints(rng: np.random.Generator, shape, width: int) -> np.ndarray:
    """Uniform signed ``width``-bit integers (int64)."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1))
    return rng.integers(lo, hi, size=shape, dtype=np.int64)


async def start_harness(dut, config_class, make, gap_value: float | None = None):
    """The design point's config, the seed logged, ``make(dut, config, rng, gap)`` built, the
    clock started and a reset applied: how every stream testbench begins."""
    import cocotb
    from cocotb.clock import Clock

    config = load_config(config_class)
    run_seed = seed()
    dut._log.info("seed %d (replay with --seed %d); config %s", run_seed, run_seed, config)
    harness = make(dut, config, random.Random(run_seed), gap() if gap_value is None else gap_value)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await harness.bench.reset()
    return harness

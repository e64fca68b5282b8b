"""Helpers of the tests that run blocks through `tensorgates sim --inputs/--outputs` (or
`tensorgates run`) and compare their npz outputs."""
from pathlib import Path

import numpy as np
import pytest

from sim.runner import simulator_missing
from tensorgates.cli import main


def require(simulator: str) -> None:
    """Skip, with the reason shown, only where the simulator is not installed."""
    missing = simulator_missing(simulator)
    if missing:
        pytest.skip(f"{simulator} unavailable: {missing}")


def sim_npz(tmp_path: Path, block: str, settings: dict, simulator: str = "verilator",
            **arrays) -> dict:
    """Run ``arrays`` through ``block`` on the command line; the outputs npz as a dict."""
    np.savez(tmp_path / "in.npz", **arrays)
    sets = [item for k, v in settings.items() for item in ("--set", f"{k}={v}")]
    code = main(["sim", block, *sets, "--simulator", simulator, "--inputs",
                 str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz")])
    assert code == 0
    with np.load(tmp_path / "out.npz") as out:
        return {key: out[key] for key in out.files}


def same_values(a, b) -> bool:
    """Equal shapes and values; floats bit for bit (either sign of zero apart), any NaN equal
    to any NaN."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a, b = a.astype(np.float64), b.astype(np.float64)
        nan = np.isnan(a)
        return bool((nan == np.isnan(b)).all() and (a[~nan] == b[~nan]).all()
                    and (np.signbit(a[~nan]) == np.signbit(b[~nan])).all())
    return bool(np.array_equal(a.astype(np.int64), b.astype(np.int64)))

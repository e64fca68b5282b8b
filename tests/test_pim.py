"""`tensorgates sim pim --inputs/--outputs`: raw command traces and GEMVs through the RTL, and
the one-line errors for inputs the channel cannot take."""
import random

import numpy as np
import pytest
import torch
from sim_cli import require, sim_npz

from golden.pim import commands_to_table, gemv_exact
from hdl.pim.config import PimConfig
from sim.pim_traces import mixed_stream
from tensorgates.cli import main

SMALL = {"banks": "4", "rows": "16", "columns": "16", "column_bits": "128", "lanes": "8"}


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_raw_trace_npz(tmp_path, simulator):
    """A mixed trace (legal and illegal commands), given unsorted: every per-command output
    and counter equals golden run_trace's, and several rules rejected something."""
    require(simulator)
    config = PimConfig(**{k: int(v) for k, v in SMALL.items()})
    commands = mixed_stream(config, random.Random(5), 400)
    table = commands_to_table(commands, config)
    table = table[np.random.default_rng(5).permutation(len(table))]
    out = sim_npz(tmp_path, "pim", SMALL, simulator, commands=table)
    for key in ("accepted", "rule", "has_read", "read_data", "accepted_count",
                "rejected_count", "rejected_by_rule", "triggers", "refreshes",
                "illegal_instructions"):
        np.testing.assert_array_equal(out[key], out[f"{key}_golden"], err_msg=key)
    assert out["rule"].shape == (len(table),)
    rules = set(out["rule"][out["accepted"] == 0].tolist())
    assert len(rules) >= 5, rules


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_gemv_npz(tmp_path, simulator):
    """A batch GEMV through the sequencer: y == w @ x exactly in int32 and equals y_golden;
    the RTL's compute cycles equal the golden schedule's."""
    require(simulator)
    gen = torch.Generator().manual_seed(8)
    w = torch.randint(-128, 128, (37, 50), generator=gen, dtype=torch.int8)
    x = torch.randint(-128, 128, (3, 50), generator=gen, dtype=torch.int8)
    out = sim_npz(tmp_path, "pim", SMALL, simulator, w=w.numpy(), x=x.numpy())
    exact = (x.long() @ w.long().T).numpy().astype(np.int32)
    np.testing.assert_array_equal(out["y"], exact)
    np.testing.assert_array_equal(out["y"], out["y_golden"])
    config = PimConfig(**{k: int(v) for k, v in SMALL.items()})
    assert torch.equal(torch.from_numpy(out["y_golden"]), gemv_exact(w, x, config))
    assert int(out["cycles"]) == int(out["cycles_golden"]) > 0


def _bad_table(words: int) -> np.ndarray:
    table = np.zeros((2, 5 + words), np.int64)
    table[1, 1] = 16            # code wider than 4 bits
    return table


@pytest.mark.parametrize("arrays, message", [
    ({"w": np.zeros((512, 512), np.int8), "x": np.zeros(512, np.int8)}, "does not fit"),
    ({"w": np.zeros((4, 6), np.int8), "x": np.zeros(5, np.int8)}, "x must be [in]"),
    ({"w": np.full((4, 6), 300), "x": np.zeros(6, np.int8)}, "w must hold int8"),
    ({"w": np.zeros((4, 6), np.int8)}, "inputs need 'commands'"),
    ({"commands": np.zeros((2, 3), np.int64)}, "commands must be an integer table"),
    ({"commands": _bad_table(4)}, "code=16 does not fit"),
    ({"commands": np.array([[1 << 40, 0, 0, 0, 0, 0, 0, 0, 0]])}, "beyond the RTL"),
])
def test_bad_inputs_one_line_exit_2(tmp_path, capsys, arrays, message):
    np.savez(tmp_path / "in.npz", **arrays)
    sets = [item for k, v in SMALL.items() for item in ("--set", f"{k}={v}")]
    code = main(["sim", "pim", *sets, "--inputs", str(tmp_path / "in.npz"), "--outputs",
                 str(tmp_path / "out.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err, err


@pytest.mark.parametrize("settings, message", [
    (["banks=17"], "banks=17 is not allowed"),
    (["unit=pair", "banks=3"], "unit='pair' is not allowed with banks=3"),
    (["rows=12"], "rows=12 is not allowed"),
    (["arithmetic=bf16"], "arithmetic='bf16' is not built in RTL yet"),
])
def test_bad_configs_one_line_exit_2(capsys, settings, message):
    sets = [item for s in settings for item in ("--set", s)]
    assert main(["generate", "pim", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err

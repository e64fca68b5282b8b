"""The block quantizers end to end (MX / BFP and KIVI): `sim --inputs/--outputs` on both
simulators, the float references, bad configurations and inputs refused in one line."""
import numpy as np
import pytest
import torch
from sim_cli import require, sim_npz

from golden.kivi import kivi_float_reference
from golden.mx import mx_float_reference
from sim.runner import SIMULATORS
from tensorgates.cli import main


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_quant_inputs_outputs_npz(tmp_path, simulator):
    """scale, codes and x_hat from the RTL equal the golden twins; x_hat is within half an
    element quantum of x, and equals the float reference (nearest-even) exactly."""
    require(simulator)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((6, 64)) * np.exp2(rng.integers(-20, 20, (6, 1)))).astype(
        np.float32)
    x[2, 5] = np.nan
    out = sim_npz(tmp_path, "mx_quant", {"format": "fp8_e4m3"}, simulator, x=x)
    for key in ("scale", "codes"):
        np.testing.assert_array_equal(out[key], out[f"{key}_golden"])
    np.testing.assert_array_equal(out["x_hat"], out["x_hat_golden"])
    assert out["scale"].shape == (6, 2) and out["codes"].shape == (6, 64)
    assert out["scale"][2, 0] == 0xFF and np.isnan(out["x_hat"][2, :32]).all()
    finite = ~np.isnan(out["x_hat"])
    reference = mx_float_reference(torch.from_numpy(x), "fp8_e4m3", 32).numpy()
    np.testing.assert_array_equal(out["x_hat"][finite], reference[finite])
    assert int(out["busy_cycles"]) == 6 * 64 // 4 and int(out["nan_blocks"]) == 1


def test_dequant_inputs_outputs_npz(tmp_path):
    require("verilator")
    rng = np.random.default_rng(6)
    codes = rng.integers(0, 256, (3, 64)).astype(np.uint8)
    scale = rng.integers(0, 256, (3, 2)).astype(np.uint8)
    out = sim_npz(tmp_path, "mx_dequant", {"format": "int8"}, scale=scale, codes=codes)
    values = codes.astype(np.int8).astype(np.float64) / 64
    want = values * np.exp2(np.repeat(scale.astype(np.float64) - 127, 32, axis=1))
    want[np.repeat(scale == 0xFF, 32, axis=1)] = np.nan
    np.testing.assert_array_equal(out["x_hat"], want.astype(np.float32))
    np.testing.assert_array_equal(out["x_hat"], out["x_hat_golden"])


@pytest.mark.parametrize("axis", ["token", "channel"])
def test_kivi_inputs_outputs_npz(tmp_path, axis):
    """Codes and metadata from the RTL equal the golden twins; x_hat is within the KIVI error
    bound of x and close to plain float KIVI."""
    require("verilator")
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((64, 32)) * 3).astype(np.float32)
    out = sim_npz(tmp_path, "kivi_quant", {"bits": 4}, x=x, axis=np.array(axis))
    for key in ("codes", "minimum", "scale", "x_hat", "range", "exponent", "error"):
        np.testing.assert_array_equal(out[key], out[f"{key}_golden"], err_msg=key)
    groups = 2 if axis == "channel" else 1
    assert out["minimum"].shape == ((2, 32) if axis == "channel" else (64, 1))
    scale = np.repeat(out["scale"], 32, axis=0 if groups == 2 else 1)
    assert (np.abs(out["x_hat"] - x) <= scale / 2 + 2.0 ** -10).all()
    reference = kivi_float_reference(torch.from_numpy(x), 4, 32, axis).numpy()
    assert np.abs(out["x_hat"] - reference).max() <= scale.max()
    assert int(out["busy_cycles"]) == 64 * 32 // 4 and int(out["error_groups"]) == 0


@pytest.mark.parametrize("block, settings, message", [
    ("kivi_quant", ["bits=3"], "bits=3 is not allowed"),
    ("kivi_quant", ["group=20", "lanes=8"], "group=20 is not allowed with lanes=8"),
    ("mx_quant", ["format=fp7"], "format='fp7' is not allowed"),
    ("mx_quant", ["rounding=up"], "rounding='up' is not allowed"),
    ("mx_quant", ["block_size=36", "lanes=8"], "block_size=36 is not allowed with lanes=8"),
    ("mx_quant", ["block_size=256"], "block_size=256 is not allowed"),
    ("mx_dequant", ["format=bfp9"], "format='bfp9' is not allowed"),
])
def test_bad_configs_one_line_exit_2(capsys, block, settings, message):
    sets = [item for s in settings for item in ("--set", s)]
    assert main(["generate", block, *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_bad_inputs_one_line_exit_2(tmp_path, capsys):
    cases = {
        ("mx_quant", "cols"): {"x": np.zeros((2, 40), np.float32)},
        ("mx_quant", "ints"): {"x": np.zeros((2, 32), np.int32)},
        ("mx_quant", "missing"): {"y": np.zeros((2, 32), np.float32)},
        ("mx_dequant", "shape"): {"codes": np.zeros((2, 32), np.uint8),
                                  "scale": np.zeros((2, 2), np.uint8)},
        ("mx_dequant", "range"): {"codes": np.full((1, 32), 300), "scale": np.zeros((1, 1))},
        ("kivi_quant", "axis"): {"x": np.zeros((32, 32), np.float32), "axis": np.array("row")},
        ("kivi_quant", "group"): {"x": np.zeros((32, 20), np.float32)},
    }
    for (block, name), arrays in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        assert main(["sim", block, "--inputs", str(tmp_path / f"{name}.npz")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("tensorgates: --inputs") and "\n" not in err, (name, err)

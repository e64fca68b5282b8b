"""The N:M sparse family end to end: `sim --inputs/--outputs` for both blocks on both
simulators, a SAT training step's forward and backward GEMMs through the RTL, bad
configurations and operands refused, and the benchmark top counting like the testbench."""
import json

import numpy as np
import pytest
import torch
from sim_cli import require, sim_npz

from gateware.bench_harness import GemmBenchHarness
from gateware.generate import generate_component
from gateware.registry import BLOCKS
from golden.nm_sparse import satisfies_nm
from golden.sparse_training import training_step_gemms
from sim.runner import SIMULATORS, design_dir, run_testbench, simulate
from tensorgates.cli import main


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_gemm_inputs_outputs_npz(tmp_path, simulator):
    """A dense w is pruned 2:4 along K (magnitude, ties to the lower index) and c equals
    a @ w_pruned.T exactly; K = 21 is not a multiple of M."""
    require(simulator)
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (13, 21)).astype(np.int8)
    w = rng.integers(-128, 128, (9, 21)).astype(np.int8)
    out = sim_npz(tmp_path, "nm_sparse_gemm", {"n": 2, "m": 4}, simulator, a=a, w=w)
    pruned = out["w_pruned"]
    assert satisfies_nm(torch.from_numpy(pruned), 2, 4)
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], w[kept])
    np.testing.assert_array_equal(out["c"], a.astype(np.int64) @ pruned.astype(np.int64).T)
    np.testing.assert_array_equal(out["c"], out["c_golden"])
    assert out["values"].shape == out["indices"].shape == (9, 6 * 2)
    assert int(out["busy_cycles"]) == 4 * 3 * 6      # folds × ceil(K/M), inputs always valid
    assert int(out["stall_cycles"]) == 0 and int(out["operand_errors"]) == 0


def test_mac_inputs_outputs_npz(tmp_path):
    require("verilator")
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, (5, 19)).astype(np.int8)
    w = rng.integers(-128, 128, (5, 19)).astype(np.int8)
    out = sim_npz(tmp_path, "nm_sparse_mac", {"n": 1, "m": 8}, a=a, w=w)
    want = (a.astype(np.int64) * out["w_pruned"].astype(np.int64)).sum(axis=1)
    np.testing.assert_array_equal(out["sum"], want)
    np.testing.assert_array_equal(out["sum"], out["sum_golden"])
    assert int(out["busy_cycles"]) == 5 * 3


@pytest.mark.parametrize("n, m", [(2, 4), pytest.param(2, 8, marks=pytest.mark.full)])
def test_training_step_forward_and_backward_through_rtl(tmp_path, n, m):
    """SAT/BDWP: one training step's forward GEMM (W N:M along its input dim) and backward
    GEMM (W N:M along its output dim, fed transposed) through the RTL, bit-exactly."""
    require("verilator")
    step = training_step_gemms(n, m)
    settings = {"rows": 4, "cols": 4, "n": n, "m": m}
    forward = sim_npz(tmp_path, "nm_sparse_gemm", settings, a=step["x_q"].numpy(),
                   w=step["w_fwd_q"].numpy())
    np.testing.assert_array_equal(forward["w_pruned"], step["w_fwd_q"].numpy())
    np.testing.assert_array_equal(forward["c"], step["forward"].numpy())
    backward = sim_npz(tmp_path, "nm_sparse_gemm", settings, a=step["g_q"].numpy(),
                    w=step["w_bwd_q"].numpy().T.copy())
    np.testing.assert_array_equal(backward["w_pruned"], step["w_bwd_q"].numpy().T)
    np.testing.assert_array_equal(backward["c"], step["backward"].numpy())


@pytest.mark.parametrize("settings, message", [
    (["n=5", "m=4"], "n=5 is not allowed with m=4"),
    (["m=3"], "m=3 is not allowed; expected one of 2, 4, 8, 16"),
    (["n=0"], "n=0 is not allowed"),
])
def test_bad_configs_one_line_exit_2(capsys, settings, message):
    for block in ("nm_sparse_gemm", "nm_sparse_mac"):
        sets = [item for s in settings for item in ("--set", s)]
        assert main(["generate", block, *sets]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err


def test_bad_operands_one_line_exit_2(tmp_path, capsys):
    cases = {
        "k_differs": {"a": np.zeros((2, 5), np.int8), "w": np.zeros((3, 6), np.int8)},
        "missing_w": {"a": np.zeros((2, 5), np.int8)},
        "too_wide": {"a": np.full((2, 5), 300), "w": np.zeros((3, 5), np.int8)},
        "floats": {"a": np.zeros((2, 5), np.float32), "w": np.zeros((3, 5), np.int8)},
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        assert main(["sim", "nm_sparse_gemm", "--inputs", str(tmp_path / f"{name}.npz")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("tensorgates: --inputs") and "\n" not in err, (name, err)


def test_mac_acc_width_too_small_refused():
    with pytest.raises(ValueError, match="acc_width=17 is not allowed"):
        BLOCKS["nm_sparse_mac"].config({"acc_width": "17"})


@pytest.mark.full    # the shared harness is checked in the default tier on systolic_gemm
def test_bench_harness_counts_like_the_testbench():
    """The self-driving top measures the same cycles as the cocotb-driven DUT."""
    require("verilator")
    config = BLOCKS["nm_sparse_gemm"].config({"rows": "3", "cols": "2", "n": "2", "m": "8"})
    driven = simulate(config, "verilator", seed=3, tests="counters_exact_when_unimpeded")
    assert driven.passed, driven.messages
    record = driven.records["counters_exact_when_unimpeded"]
    folder = design_dir(config) / "bench"
    design = generate_component(GemmBenchHarness(config), config, folder)
    shape = [record["m"], record["k"], record["n"]]
    bench = run_testbench(design, "verilator", "sim.bench_gemm", run_dir=folder / "run", seed=1,
                          env={"TG_BENCH_JOBS": json.dumps([[*shape, 0]])})
    assert bench.passed, bench.messages
    job = bench.records["throughput"]["jobs"][0]
    assert job["busy_cycles"] == record["beats"], (job, record)
    assert job["stall_cycles"] == 0, job

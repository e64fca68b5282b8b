"""Golden model, host-side layout and scoreboard: each must catch what it exists to catch."""
import logging

import numpy as np
import pytest
import torch

from golden.gemm import gemm_float_reference, gemm_int_exact
from hdl.systolic.config import SystolicGemmConfig
from hdl.systolic.interface import result_layout
from hdl.systolic.layout import assemble_result, check_operands, operand_beats
from sim.payload import pack, unpack
from sim.scoreboard import Scoreboard


def test_exact_golden_matches_python_integers():
    rng = np.random.default_rng(7)
    a = rng.integers(-32768, 32768, (5, 300))
    b = rng.integers(-32768, 32768, (300, 4))
    want = [[sum(int(a[i, k]) * int(b[k, j]) for k in range(300)) for j in range(4)]
            for i in range(5)]
    assert gemm_int_exact(torch.from_numpy(a), torch.from_numpy(b)).tolist() == want
    with pytest.raises(ValueError, match="integer tensors"):
        gemm_int_exact(torch.ones(2, 2), torch.ones(2, 2))


def test_float_reference_agrees_on_int8_ranges():
    rng = np.random.default_rng(8)
    a = torch.from_numpy(rng.integers(-128, 128, (16, 64)))
    b = torch.from_numpy(rng.integers(-128, 128, (64, 16)))
    error = (gemm_float_reference(a, b) - gemm_int_exact(a, b).double()).abs().max()
    assert error == 0   # products and sums of int8 are exact in float64


def test_output_stationary_beats_follow_fold_order():
    config = SystolicGemmConfig(rows=2, cols=2)
    a = np.arange(1, 7).reshape(3, 2)      # M=3 (one padded tile row), K=2
    b = np.arange(1, 7).reshape(2, 3)      # N=3 (one padded tile column)
    a_beats, b_beats = operand_beats(config, a, b)
    assert a_beats.shape == (2 * 2 * 2, 2) and b_beats.shape == (8, 2)
    assert a_beats[:2].tolist() == [[1, 3], [2, 4]]        # A[0:2, k] for k = 0, 1
    assert b_beats[2:4].tolist() == [[3, 0], [6, 0]]       # B[k, 2:4] zero-padded
    assert a_beats[4:6].tolist() == [[5, 0], [6, 0]]       # A[2:4, k] zero-padded


def test_check_operands_rejects_bad_matrices():
    config = SystolicGemmConfig(width=4)
    with pytest.raises(ValueError, match=r"outside the signed 4-bit range -8\.\.7"):
        check_operands(config, np.full((2, 2), 8), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="must hold integers"):
        check_operands(config, np.zeros((2, 2)), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="size k=0"):
        check_operands(config, np.zeros((2, 0), int), np.zeros((0, 2), int))


def test_assemble_result_catches_protocol_errors():
    config = SystolicGemmConfig(rows=2, cols=2)
    good = [(0, 0, [1, 2]), (1, 0, [3, 4]), (0, 2, [5, 0]), (1, 2, [6, 0])]
    assert assemble_result(config, 2, 3, good).tolist() == [[1, 2, 5], [3, 4, 6]]
    with pytest.raises(ValueError, match="sent twice"):
        assemble_result(config, 2, 3, [*good, (0, 0, [1, 2])])
    with pytest.raises(ValueError, match="never sent"):
        assemble_result(config, 2, 3, good[:3])
    with pytest.raises(ValueError, match="lanes past n=3 are not zero"):
        assemble_result(config, 2, 3, [*good[:2], (0, 2, [5, 9]), (1, 2, [6, 0])])


def test_scoreboard_fails_on_mismatch_and_missing_results():
    board = Scoreboard(logging.getLogger("test"))
    board.expect("job", np.array([[1, 2]]))
    board.check(np.array([[1, 3]]))
    board.expect("late", np.array([1]))
    with pytest.raises(AssertionError, match=r"job: 1 of 2 elements differ.*late: no result"):
        board.finish()


def test_payload_pack_roundtrip():
    layout = result_layout(SystolicGemmConfig(rows=2, cols=3, width=5))
    value = {"data": [-1, 2**25 - 1, -(2**25)], "row": 65535, "col": 3, "last": 1}
    assert unpack(layout, pack(layout, value)) == value
    with pytest.raises(ValueError, match="does not fit"):
        pack(layout, {**value, "row": 65536})

"""Config validation: every bad value is a ValueError naming the field and what is allowed."""
import pytest

from gateware.registry import BLOCKS, get_block
from hdl.systolic.config import SystolicGemmConfig


@pytest.mark.parametrize("settings, words", [
    ({"rows": 0}, ["rows=0", "1 to 32"]),
    ({"cols": 33}, ["cols=33", "1 to 32"]),
    ({"width": 3}, ["width=3", "4 to 16"]),
    ({"dataflow": "diagonal"}, ["dataflow='diagonal'", "output_stationary", "weight_stationary"]),
    ({"rows": True}, ["rows=True"]),
    ({"rows": "4"}, ["rows='4'"]),
])
def test_bad_values_name_the_field(settings, words):
    with pytest.raises(ValueError) as error:
        SystolicGemmConfig(**settings)
    for word in words:
        assert word in str(error.value)


def test_from_strings_parses_and_rejects():
    config = SystolicGemmConfig.from_strings({"rows": "8", "dataflow": "weight_stationary"})
    assert (config.rows, config.dataflow) == (8, "weight_stationary")
    with pytest.raises(ValueError, match=r"rows=.abc.*int from 1 to 32"):
        SystolicGemmConfig.from_strings({"rows": "abc"})
    with pytest.raises(ValueError, match=r"unknown parameter .depth.*rows, cols"):
        SystolicGemmConfig.from_strings({"depth": "2"})


def test_accumulator_is_exact_for_every_runtime_k():
    config = SystolicGemmConfig(width=16)
    worst = (1 << 15) ** 2 * ((1 << 16) - 1)    # (−2^15)² summed over the largest K
    assert worst < 1 << (config.acc_width - 1)


def test_registry_points_are_valid_configs():
    for entry in BLOCKS.values():
        for settings in (*entry.regression, *entry.regression_verilator,
                         *entry.regression_full, *entry.synthesis, entry.demo):
            entry.config(settings)
    with pytest.raises(ValueError, match="unknown block 'nope'; available: systolic_gemm"):
        get_block("nope")

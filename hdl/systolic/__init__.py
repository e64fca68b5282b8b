"""Systolic arrays: GEMM (output- and weight-stationary)."""
from .config import SystolicGemmConfig

__all__ = ["SystolicGemmConfig", "make_systolic_gemm"]


def make_systolic_gemm(config: SystolicGemmConfig):
    """The GEMM array of ``config.dataflow``; both dataflows share one signature."""
    if config.dataflow == "weight_stationary":
        from .weight_stationary import WeightStationaryGemm
        return WeightStationaryGemm(config)
    from .output_stationary import OutputStationaryGemm
    return OutputStationaryGemm(config)

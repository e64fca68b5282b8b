"""Block-floating-point and microscaling (OCP MX) quantizers."""
from .config import MXDequantConfig, MXQuantConfig

__all__ = ["MXDequantConfig", "MXQuantConfig", "make_mx_dequant", "make_mx_quant"]


def make_mx_quant(config: MXQuantConfig):
    from .mx import MXQuantizer
    return MXQuantizer(config)


def make_mx_dequant(config: MXDequantConfig):
    from .mx import MXDequantizer
    return MXDequantizer(config)

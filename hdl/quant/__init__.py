"""Block-floating-point and microscaling (OCP MX) quantizers."""
from .config import KiviQuantConfig, MXDequantConfig, MXQuantConfig

__all__ = ["KiviQuantConfig", "MXDequantConfig", "MXQuantConfig", "make_kivi_quant",
           "make_mx_dequant", "make_mx_quant"]


def make_mx_quant(config: MXQuantConfig):
    from .mx import MXQuantizer
    return MXQuantizer(config)


def make_mx_dequant(config: MXDequantConfig):
    from .mx import MXDequantizer
    return MXDequantizer(config)


def make_kivi_quant(config: KiviQuantConfig):
    from .kivi import KiviQuantizer
    return KiviQuantizer(config)

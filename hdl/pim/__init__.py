"""PIM bank logic: a channel of DRAM banks with in-bank MAC units, all-bank modes, dual row buffers
and enforced DRAM timing (specification: docs/pim.md)."""
from .config import PimConfig

__all__ = ["PimConfig", "make_pim"]


def make_pim(config: PimConfig):
    from .channel import PimChannel
    return PimChannel(config)

"""N:M structured-sparse MAC units and the sparse systolic GEMM array."""
from .config import NMSparseGemmConfig, NMSparseMacConfig

__all__ = ["NMSparseGemmConfig", "NMSparseMacConfig", "make_nm_sparse_gemm", "make_nm_sparse_mac"]


def make_nm_sparse_gemm(config: NMSparseGemmConfig):
    from .gemm import NMSparseGemm
    return NMSparseGemm(config)


def make_nm_sparse_mac(config: NMSparseMacConfig):
    from .mac import NMSparseMac
    return NMSparseMac(config)

"""Golden models of integer GEMM: bit-exact (int64) and a float reference."""
from __future__ import annotations

import torch

__all__ = ["gemm_float_reference", "gemm_int_exact"]


def gemm_int_exact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = A·B computed exactly in int64, as the array's exact accumulators do."""
    if a.dtype.is_floating_point or b.dtype.is_floating_point:
        raise ValueError(f"gemm_int_exact needs integer tensors; got {a.dtype} and {b.dtype}")
    return torch.matmul(a.to(torch.int64), b.to(torch.int64))


def gemm_float_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plain float64 matmul of the same operands: what the integer GEMM approximates."""
    return torch.matmul(a.to(torch.float64), b.to(torch.float64))

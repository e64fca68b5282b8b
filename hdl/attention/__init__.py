"""Fused attention engine: a 2D array for q·kᵀ and p·v with per-row online-softmax units."""
from .config import AttentionConfig

__all__ = ["AttentionConfig", "make_attention"]


def make_attention(config: AttentionConfig):
    from .engine import AttentionEngine
    return AttentionEngine(config)

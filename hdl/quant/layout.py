"""Host-side protocol of the quantizers (pure NumPy): the checks of their ``sim --inputs``
tensors and the dequantizer's input beats, shared by the testbench and the host adapter."""
from __future__ import annotations

import numpy as np

from .config import KiviQuantConfig, MXDequantConfig, MXQuantConfig

__all__ = ["check_dequant_inputs", "check_kivi_inputs", "check_quant_inputs", "dequant_beats",
           "float32_bits"]


def check_quant_inputs(config: MXQuantConfig, arrays: dict[str, np.ndarray]) -> None:
    """``x`` [rows × cols] floats, cols a multiple of the block size."""
    if "x" not in arrays:
        raise ValueError("inputs lack 'x'; mx_quant needs 'x' (rows x cols, float)")
    x = arrays["x"]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty matrix (rows x cols); got shape {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must hold floats; got dtype {x.dtype}")
    if x.shape[1] % config.block_size:
        raise ValueError(f"cols={x.shape[1]} is not a multiple of block_size="
                         f"{config.block_size}")


def check_dequant_inputs(config: MXDequantConfig, arrays: dict[str, np.ndarray]) -> None:
    """``codes`` [rows × cols] and ``scale`` [rows × cols/block] (E8M0 codes)."""
    for key in ("scale", "codes"):
        if key not in arrays:
            raise ValueError(f"inputs lack {key!r}; mx_dequant needs 'scale' (rows x "
                             f"cols/block_size) and 'codes' (rows x cols)")
    scale, codes = arrays["scale"], arrays["codes"]
    if codes.ndim != 2 or codes.size == 0 or codes.shape[1] % config.block_size:
        raise ValueError(f"codes must be rows x cols with cols a multiple of block_size="
                         f"{config.block_size}; got shape {list(codes.shape)}")
    want = [codes.shape[0], codes.shape[1] // config.block_size]
    if list(scale.shape) != want:
        raise ValueError(f"scale must be {want[0]}x{want[1]}; got {list(scale.shape)}")
    for name, array, top in (("scale", scale, 255), ("codes", codes,
                                                      (1 << config.element.bits) - 1)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integers; got dtype {array.dtype}")
        if array.min() < 0 or array.max() > top:
            raise ValueError(f"{name} holds values outside 0..{top}")


def check_kivi_inputs(config: KiviQuantConfig, arrays: dict[str, np.ndarray]) -> None:
    """``x`` [tokens × channels] floats and an optional ``axis``: "token" (values, groups of
    ``group`` channels: channels a multiple of it) or "channel" (keys, groups of ``group``
    tokens: tokens a multiple of it)."""
    if "x" not in arrays:
        raise ValueError("inputs lack 'x'; kivi_quant needs 'x' (tokens x channels, float)")
    x = arrays["x"]
    if x.ndim != 2 or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a non-empty float matrix (tokens x channels); got "
                         f"{x.dtype} {list(x.shape)}")
    axis = str(arrays["axis"]) if "axis" in arrays else "token"
    if axis not in ("token", "channel"):
        raise ValueError(f"axis={axis!r} is not allowed; expected 'token' (values) or "
                         f"'channel' (keys)")
    length, what = (x.shape[1], "channels") if axis == "token" else (x.shape[0], "tokens")
    if length % config.group:
        raise ValueError(f"{what}={length} is not a multiple of group={config.group} "
                         f"(axis={axis})")


def dequant_beats(config: MXDequantConfig, scale: np.ndarray, codes: np.ndarray) -> list[dict]:
    """The ``i`` beats of ``mx_dequant`` for blocks ``scale`` [blocks] and ``codes`` [blocks,
    block_size]: ``lanes`` codes each, the block's scale on every beat, ``first`` and ``last``
    on its first and last beat."""
    beats = []
    for s, block in zip(scale, codes, strict=True):
        lanes = block.reshape(-1, config.lanes)
        for index, beat in enumerate(lanes):
            beats.append({"codes": beat.tolist(), "scale": int(s), "first": int(index == 0),
                          "last": int(index == len(lanes) - 1)})
    return beats


def float32_bits(values: np.ndarray) -> np.ndarray:
    """fp32 bit patterns (int64), every NaN made the canonical quiet NaN the RTL produces."""
    values = np.asarray(values, dtype=np.float32).copy()
    bits = values.view(np.uint32).astype(np.int64)
    bits[np.isnan(values)] = 0x7FC00000
    return bits

"""KIVI integer quantizer, outlier channel reordering and the MiniLM KV-cache report."""
from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from golden.kivi import (
    FRAC_BITS,
    METADATA_BITS,
    ZERO_GROUP_EXPONENT,
    bits_per_element,
    group_view,
    kivi_cache,
    kivi_cache_dequantize,
    kivi_dequantize,
    kivi_float_reference,
    kivi_quantize,
    pack_codes,
    unpack_codes,
)
from golden.mx import mx_dequantize, mx_quantize
from golden.outlier import (
    apply_channel_permutation,
    channel_permutation,
    check_qk_invariance,
    expand_permutation,
    head_permutations,
    inverse_permutation,
    permute_qk,
)

HEADS, HEAD_DIM = 12, 32


@pytest.fixture(scope="module")
def minilm():
    try:
        from golden.minilm import load_minilm

        return load_minilm()
    except Exception as exc:  # pragma: no cover - only when the weights are missing
        pytest.skip(f"MiniLM does not load ({type(exc).__name__}: {exc})")


def _roundtrip(x: torch.Tensor, bits: int, group: int, axis: str):
    res = kivi_quantize(x, bits, group, axis)
    return res, kivi_dequantize(res, bits, group, axis)


def _col(*vals: float) -> torch.Tensor:
    """One channel, tokens = vals: a [len, 1] key matrix."""
    return torch.tensor(vals, dtype=torch.float32)[:, None]


# ----------------------------------------------------------------------------------------------
# Hand-computed KIVI examples
# ----------------------------------------------------------------------------------------------


def test_two_bit_keys_hand_example_with_tie():
    # max|x| = 1 → E = 0, X = trunc(x·2^15); mn = 0, R = 32768, L = 3.
    res, deq = _roundtrip(_col(1.0, 0.0, 0.5, 0.25), 2, 4, "channel")
    assert res["fixed"][:, 0].tolist() == [32768, 0, 16384, 8192]
    assert res["minimum"].tolist() == [[0]] and res["range"].tolist() == [[32768]]
    assert res["exponent"].tolist() == [[0]] and not res["error"].any()
    # 16384·3/32768 = 1.5 exactly: round half up → 2; 8192·3/32768 = 0.75 → 1.
    assert res["codes"][:, 0].tolist() == [3, 0, 2, 1]
    expected = np.float32([1.0, 0.0, 2 / 3, 1 / 3])
    assert np.array_equal(deq[:, 0].numpy(), expected)


def test_round_half_up_differs_from_float_half_even():
    # E = 1 (max 3), X = trunc(x·2^14) = [49152, 0, 8192, 40960], R = 49152, L = 3:
    # 8192·3/R = 0.5 → 1 and 40960·3/R = 2.5 → 3 (half up); KIVI's float round gives 0 and 2.
    x = _col(3.0, 0.0, 0.5, 2.5)
    res, deq = _roundtrip(x, 2, 4, "channel")
    assert res["fixed"][:, 0].tolist() == [49152, 0, 8192, 40960]
    assert res["exponent"].tolist() == [[1]]
    assert res["codes"][:, 0].tolist() == [3, 0, 1, 3]
    assert deq[:, 0].tolist() == [3.0, 0.0, 1.0, 3.0]
    assert kivi_float_reference(x, 2, 4, "channel")[:, 0].tolist() == [3.0, 0.0, 0.0, 2.0]


def test_four_bit_ties():
    # R = 61440 = 30·2048 (E = 0): d = 2048 gives d·15/R = 0.5 → 1, 3·2048 gives 1.5 → 2.
    res, deq = _roundtrip(_col(0.0, 0.0625, 0.1875, 1.875), 4, 4, "channel")
    assert res["fixed"][:, 0].tolist() == [0, 2048, 6144, 61440]
    assert res["codes"][:, 0].tolist() == [0, 1, 2, 15]
    assert deq[:, 0].tolist() == [0.0, 0.125, 0.25, 1.875]


def test_four_bit_values_hand_example_negative_truncation():
    # One token, one group of 4 channels. E = 0; X = trunc toward zero of x·2^15 (fp32 inputs):
    # 0.3 → 9830.4004 → 9830, 0.7 → 22937.5996 → 22937, −0.1 → −3276.8000 → −3276.
    x = torch.tensor([[-1.5, 0.3, 0.7, -0.1]])
    res, deq = _roundtrip(x, 4, 4, "token")
    assert res["fixed"].tolist() == [[-49152, 9830, 22937, -3276]]
    assert res["minimum"].tolist() == [[-49152]] and res["range"].tolist() == [[72089]]
    # d·15/R for d = 0, 58982, 72089, 45876: 0, 12.27, 15, 9.55 → 0, 12, 15, 10.
    assert res["codes"].tolist() == [[0, 12, 15, 10]]
    want = [np.float32((-49152 + q * 72089 / 15) / 32768) for q in (0, 12, 15, 10)]
    assert deq[0].tolist() == [float(w) for w in want]


def test_two_bit_values_two_groups():
    x = torch.tensor([[1.0, -1.0, 0.0, 0.5, 4.0, 4.0, 4.0, 2.0]])
    res, deq = _roundtrip(x, 2, 4, "token")
    # group 0: E = 0, X = [32768, −32768, 0, 16384], R = 65536: d·3/R = 1.5, 0, 0.75, 1.125.
    # group 1: E = 2, X = [32768]*3 + [16384], R = 16384: 3, 3, 3, 0.
    assert res["codes"].tolist() == [[3, 0, 2, 2, 3, 3, 3, 0]]
    assert res["exponent"].tolist() == [[0, 2]]
    assert res["minimum"].tolist() == [[-32768, 16384]]
    assert res["range"].tolist() == [[65536, 16384]]
    assert deq.tolist() == [[1.0, -1.0, float(np.float32(1 / 3)), float(np.float32(1 / 3)),
                             4.0, 4.0, 4.0, 2.0]]


def test_max_equals_min_guard():
    res, deq = _roundtrip(_col(0.7, 0.7, 0.7, 0.7), 2, 4, "channel")
    # fp32(0.7) = 0.69999998807907…, E = −1, X = trunc(0.7·2^16) = 45875; R = 0 → every q is 0.
    assert res["exponent"].tolist() == [[-1]]
    assert res["minimum"].tolist() == [[45875]] and res["range"].tolist() == [[0]]
    assert res["codes"].tolist() == [[0]] * 4
    assert deq[:, 0].tolist() == [45875 / 65536] * 4
    assert kivi_float_reference(_col(0.7, 0.7, 0.7, 0.7), 2, 4, "channel")[0, 0] == \
        torch.tensor(0.7)


def test_all_zero_group_and_negative_zero():
    x = torch.tensor([[0.0, -0.0, 0.0, -0.0, 1.0, 2.0, 3.0, 4.0]])
    res, deq = _roundtrip(x, 4, 4, "token")
    assert res["exponent"][0, 0] == ZERO_GROUP_EXPONENT == -126
    assert res["minimum"][0, 0] == 0 and res["range"][0, 0] == 0
    assert res["codes"][0, :4].tolist() == [0, 0, 0, 0]
    assert deq[0, :4].tolist() == [0.0] * 4 and not torch.signbit(deq[0, :4]).any()
    assert not res["error"].any()


def test_subnormal_group():
    tiny = 2.0**-149
    res, deq = _roundtrip(_col(tiny, 3 * tiny, 0.0, -tiny), 2, 4, "channel")
    # max 3·2^−149 → E = −148; X = sig·2^(−149 + 15 + 148) = sig·2^14.
    assert res["exponent"].tolist() == [[-148]]
    assert res["fixed"][:, 0].tolist() == [16384, 49152, 0, -16384]
    # mn = −16384, R = 65536: d·3/R = 1.5, 3, 0.75, 0 → 2 (half up), 3, 1, 0.
    assert res["codes"][:, 0].tolist() == [2, 3, 1, 0]
    # dequantized values are multiples of 2^-149/3 rounded to fp32 subnormals
    assert deq[1, 0].item() == 3 * tiny and deq[3, 0].item() == -tiny


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_inf_flags_only_its_group(bad: float):
    x = torch.tensor([[1.0, bad, 0.5, 0.25], [1.0, 2.0, 3.0, 4.0]]).T.contiguous()  # [4, 2]
    res, deq = _roundtrip(x, 2, 4, "channel")
    assert res["error"].tolist() == [[True, False]]
    assert res["codes"][:, 0].tolist() == [0, 0, 0, 0]
    assert res["minimum"][0, 0] == 0 and res["range"][0, 0] == 0
    assert res["exponent"][0, 0] == ZERO_GROUP_EXPONENT
    assert torch.isnan(deq[:, 0]).all() and torch.isfinite(deq[:, 1]).all()
    assert deq[:, 1].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert torch.isnan(kivi_float_reference(x, 2, 4, "channel")[:, 0]).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_are_widened_exactly(dtype: torch.dtype):
    x = (torch.randn(64, 32, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    a = kivi_quantize(x, 4, 32, "channel")
    b = kivi_quantize(x.float(), 4, 32, "channel")
    for key in a:
        assert np.array_equal(a[key], b[key])


# ----------------------------------------------------------------------------------------------
# Properties against independent computations
# ----------------------------------------------------------------------------------------------


def _test_matrix(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 48, generator=gen)
    x *= torch.logspace(-3, 3, 48)[None]  # channel scales over 6 decades
    x[:, 5] *= 40  # an outlier channel
    x[7, :] = 0.0
    x[:, 9] = 1.25  # constant channel
    x[:, 13] = torch.randn(64, generator=gen) * 1e-40  # subnormals
    return x


@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize(("axis", "group"), [("channel", 16), ("channel", 32), ("token", 8),
                                             ("token", 16)])
def test_spec_against_independent_arithmetic(bits: int, axis: str, group: int):
    x = _test_matrix(bits * 100 + group)
    res = kivi_quantize(x, bits, group, axis)
    levels = (1 << bits) - 1
    xg = group_view(x.double(), group, axis)
    # E from frexp (not from the bits), X = trunc(x·2^(F − E)) in exact float64.
    amax = np.abs(xg).max(axis=-1)
    e = np.where(amax > 0, np.frexp(amax)[1] - 1, ZERO_GROUP_EXPONENT)
    assert np.array_equal(res["exponent"], e)
    fixed = np.trunc(np.ldexp(xg, (FRAC_BITS - e)[..., None])).astype(np.int64)
    assert np.array_equal(group_view(res["fixed"], group, axis), fixed)
    assert np.abs(fixed).max() < 2**16
    assert np.all((np.abs(fixed).max(axis=-1) >= 2**15) | (amax == 0))
    mn = fixed.min(axis=-1)
    rng = fixed.max(axis=-1) - mn
    assert np.array_equal(res["minimum"], mn) and np.array_equal(res["range"], rng)
    # q = floor((2·d·L + R)/(2R)) by integer division (the comparator count must equal it).
    d = fixed - mn[..., None]
    r = rng[..., None]
    q = np.where(r > 0, (2 * d * levels + r) // np.maximum(2 * r, 1), 0)
    assert np.array_equal(group_view(res["codes"], group, axis), q)
    assert res["codes"].max() <= levels


@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize(("axis", "group"), [("channel", 32), ("token", 16)])
def test_error_bound_against_float_kivi(bits: int, axis: str, group: int):
    x = _test_matrix(7 + bits)
    res, deq = _roundtrip(x, bits, group, axis)
    ref = kivi_float_reference(x, bits, group, axis)
    levels = (1 << bits) - 1
    xg = group_view(x.double(), group, axis)
    s = (xg.max(axis=-1) - xg.min(axis=-1)) / levels  # KIVI's float scale
    u = np.ldexp(1.0, res["exponent"].astype(np.int64) - FRAC_BITS)  # fixed-point quantum
    bound = s / 2 + u * (1 + 1 / levels)
    err = np.abs(group_view(deq.double(), group, axis) - xg)
    slack = np.abs(group_view(deq.double(), group, axis)) * 2.0**-24 + 2.0**-150
    assert np.all(err <= bound[..., None] + slack)
    ref_err = np.abs(group_view(ref.double(), group, axis) - xg)
    assert np.all(ref_err <= (s / 2)[..., None] * (1 + 1e-6) + slack)
    # Same quality as the float recipe (RMS within a few percent).
    rms_int = float((deq.double() - x.double()).pow(2).mean().sqrt())
    rms_ref = float((ref.double() - x.double()).pow(2).mean().sqrt())
    assert rms_int <= rms_ref * 1.05


# ----------------------------------------------------------------------------------------------
# Packing, residual window, validation
# ----------------------------------------------------------------------------------------------


def test_pack_hand_examples():
    assert pack_codes(np.array([1, 2, 3, 0]), 2).tolist() == [0b00111001]
    assert pack_codes(np.array([0xA, 0x5, 0x3]), 4).tolist() == [0x5A, 0x03]
    assert unpack_codes(np.array([0x5A, 0x03], dtype=np.uint8), 4, 3).tolist() == [0xA, 0x5, 0x3]


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("count", [1, 7, 32, 33])
def test_pack_unpack_roundtrip(bits: int, count: int):
    gen = np.random.default_rng(bits * 100 + count)
    codes = gen.integers(0, 1 << bits, size=(3, 5, count), dtype=np.uint8)
    packed = pack_codes(codes, bits)
    assert packed.shape == (3, 5, math.ceil(count * bits / 8)) and packed.dtype == np.uint8
    assert np.array_equal(unpack_codes(packed, bits, count), codes)


def test_pack_kivi_groups():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(3))
    res = kivi_quantize(x, 2, 32, "channel")
    groups = group_view(res["codes"], 32, "channel")  # [2, 32, 32]
    packed = pack_codes(groups, 2)
    assert packed.shape == (2, 32, 8)  # 32 codes × 2 bits = 8 bytes per group
    assert np.array_equal(unpack_codes(packed, 2, 32), groups)
    assert bits_per_element(2, 32) == 2 + METADATA_BITS / 32


@pytest.mark.parametrize(("tokens", "residual", "nk", "nv"),
                         [(70, 10, 32, 60), (64, 0, 64, 64), (64, 1, 32, 63), (20, 30, 0, 0),
                          (96, 32, 64, 64)])
def test_residual_window_shapes(tokens: int, residual: int, nk: int, nv: int):
    gen = torch.Generator().manual_seed(tokens + residual)
    k, v = torch.randn(tokens, 32, generator=gen), torch.randn(tokens, 32, generator=gen)
    cache = kivi_cache(k, v, 4, 32, residual)
    assert cache["key_quantized"] == nk and cache["value_quantized"] == nv
    assert cache["key_residual"].shape == (tokens - nk, 32)
    assert cache["value_residual"].shape == (tokens - nv, 32)
    if nk:
        assert cache["key"]["codes"].shape == (nk, 32)
        assert cache["key"]["minimum"].shape == (nk // 32, 32)
    else:
        assert cache["key"] is None
    if nv:
        assert cache["value"]["minimum"].shape == (nv, 1)
    kh, vh = kivi_cache_dequantize(cache)
    assert kh.shape == k.shape and vh.shape == v.shape
    assert torch.equal(kh[nk:], k[nk:]) and torch.equal(vh[nv:], v[nv:])
    if nk:
        assert torch.equal(kh[:nk], kivi_dequantize(kivi_quantize(k[:nk], 4, 32, "channel"),
                                                    4, 32, "channel"))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"bits": 3}, r"bits must be one of \(2, 4\)"),
    ({"bits": True}, "bits must be one of"),
    ({"group": 0}, "group must be a positive integer"),
    ({"group": 24}, r"group must be a positive integer dividing the tokens \(64\)"),
    ({"axis": "row"}, "axis must be one of"),
    ({"x": torch.zeros(64)}, "x must be 2-D"),
    ({"x": torch.zeros(64, 32, dtype=torch.int32)}, "x must be float32, bfloat16 or float16"),
    ({"x": [[1.0]]}, "x must be a torch.Tensor"),
])
def test_kivi_validation(kwargs: dict, match: str):
    args = {"x": torch.zeros(64, 32), "bits": 2, "group": 32, "axis": "channel", **kwargs}
    with pytest.raises(ValueError, match=match):
        kivi_quantize(**args)


def test_other_validation():
    with pytest.raises(ValueError, match=r"group must be a positive integer dividing the "
                                         r"channels \(32\)"):
        kivi_quantize(torch.zeros(4, 32), 2, 12, "token")
    with pytest.raises(ValueError, match="residual must be a non-negative integer"):
        kivi_cache(torch.zeros(4, 32), torch.zeros(4, 32), 2, 32, -1)
    with pytest.raises(ValueError, match="same number of tokens"):
        kivi_cache(torch.zeros(4, 32), torch.zeros(5, 32), 2, 32, 0)
    with pytest.raises(ValueError, match=r"codes must lie in 0\.\.3"):
        pack_codes(np.array([4]), 2)
    with pytest.raises(ValueError, match=r"bits must be an integer in 1\.\.8"):
        pack_codes(np.array([1]), 9)
    res = kivi_quantize(torch.zeros(4, 32), 2, 4, "channel")
    with pytest.raises(ValueError, match=r"result\['minimum'\] must have shape"):
        kivi_dequantize(res, 2, 2, "channel")
    with pytest.raises(ValueError, match="metric must be one of"):
        channel_permutation(torch.zeros(4, 8), "mean")
    with pytest.raises(ValueError, match="perm must be a permutation"):
        expand_permutation(torch.tensor([0, 0, 1, 2]), 2, 4)


# ----------------------------------------------------------------------------------------------
# Outlier reordering
# ----------------------------------------------------------------------------------------------


OUTLIERS = (1, 3, 9, 11, 17, 19, 25, 27)


def _planted(tokens: int, seed: int, outliers: tuple[int, ...] = OUTLIERS) -> torch.Tensor:
    """[tokens, 32] Gaussian keys with 8 outlier channels ×20, two in every block of 8."""
    x = torch.randn(tokens, 32, generator=torch.Generator().manual_seed(seed))
    x[:, list(outliers)] *= 20
    return x


def test_channel_permutation_sorts_by_magnitude():
    k = torch.tensor([[1.0, -5.0, 2.0, 0.5], [0.0, 1.0, -2.0, 3.0]])
    assert channel_permutation(k).tolist() == [1, 3, 2, 0]  # max|k| = 1, 5, 2, 3
    assert channel_permutation(k, "rms").tolist() == [1, 3, 2, 0]
    assert channel_permutation(torch.ones(3, 4)).tolist() == [0, 1, 2, 3]  # stable ties
    perm = channel_permutation(_planted(64, 0))
    assert sorted(perm[:8].tolist()) == list(OUTLIERS)
    inv = inverse_permutation(perm)
    assert torch.equal(perm[inv], torch.arange(32)) and torch.equal(inv[perm], torch.arange(32))


def _bfp4_error(k: torch.Tensor, block: int, perm: torch.Tensor | None,
                channels: list[int] | None = None) -> float:
    """Relative RMS error of bfp4 on k (columns ``channels`` only, if given)."""
    x = k if perm is None else k[:, perm]
    xq = torch.from_numpy(mx_dequantize(*mx_quantize(x.contiguous(), "bfp4", block), "bfp4",
                                        block))
    if perm is not None:
        xq = xq[:, inverse_permutation(perm)]
    cols = list(range(k.shape[1])) if channels is None else channels
    return float((xq - k)[:, cols].norm() / k[:, cols].norm())


def test_reordering_reduces_bfp4_block8_error_with_planted_outliers():
    perm = channel_permutation(_planted(128, seed=1))  # calibration draw
    k = _planted(256, seed=2)  # evaluation draw
    normal = [c for c in range(32) if c not in OUTLIERS]
    before, after = _bfp4_error(k, 8, None, normal), _bfp4_error(k, 8, perm, normal)
    # Without reordering every block of 8 holds an outlier, whose exponent flushes most of the
    # normal channels to 0; sorted, the 8 outliers fill block 0 and the rest share blocks
    # among themselves.
    assert before > 0.5 and after < 0.25 * before, (before, after)
    # The price: a block of 8 outliers takes the max of 8 of them as its exponent instead of
    # the max of 2, so the outliers themselves get a little worse; overall, which the outliers
    # dominate, stays about the same.
    out = list(OUTLIERS)
    assert _bfp4_error(k, 8, perm, out) > _bfp4_error(k, 8, None, out)
    assert abs(_bfp4_error(k, 8, perm) / _bfp4_error(k, 8, None) - 1) < 0.05
    # Block 32 holds the whole head: a permutation inside one block changes nothing.
    assert _bfp4_error(k, 32, perm) == _bfp4_error(k, 32, None)


def _random_qk(seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    hidden = HEADS * HEAD_DIM
    return tuple(torch.randn(*shape, generator=gen) * 0.05
                 for shape in ((hidden, hidden), (hidden, hidden), (hidden,), (hidden,)))


def test_permute_qk_random_weights_keeps_scores():
    w_q, w_k, b_q, b_k = _random_qk(0)
    x = torch.randn(20, HEADS * HEAD_DIM, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    perm = torch.stack([torch.randperm(HEAD_DIM, generator=gen) for _ in range(HEADS)])
    assert check_qk_invariance(x, w_q, w_k, b_q, b_k, perm, HEADS, HEAD_DIM) < 1e-5
    _, wk2, _, bk2 = permute_qk(w_q, w_k, b_q, b_k, perm, HEADS, HEAD_DIM)
    # The permuted projection produces the reordered K exactly (same rows, same dot products).
    k = (x @ w_k.T + b_k).view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    k2 = (x @ wk2.T + bk2).view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    assert torch.allclose(k2, apply_channel_permutation(k, perm), rtol=0, atol=1e-6)
    # A wrong (K-only) permutation does change the scores: the check can fail.
    w_k_only = w_k[expand_permutation(perm, HEADS, HEAD_DIM)]
    s = (x @ w_q.T).view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    s2 = (x @ w_k_only.T).view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    s1 = (x @ w_k.T).view(-1, HEADS, HEAD_DIM).transpose(0, 1)
    assert (s @ s2.transpose(1, 2) - s @ s1.transpose(1, 2)).abs().max() > 1e-2


def test_permute_qk_minilm_layer0_keeps_scores(minilm):
    from golden.minilm import SENTENCES

    w = minilm.weights
    p = "encoder.layer.0.attention.self."
    w_q, b_q = w[p + "query.weight"], w[p + "query.bias"]
    w_k, b_k = w[p + "key.weight"], w[p + "key.bias"]
    perm = head_permutations(minilm.qkv(SENTENCES[1])[0]["k"])
    ids, mask = minilm.tokenize([SENTENCES[2]])
    x = minilm.forward(ids, mask).hidden_states[0][0]  # layer 0's input
    scores = (torch.nn.functional.linear(x, w_q, b_q) @ torch.nn.functional.linear(
        x, w_k, b_k).T)
    diff = check_qk_invariance(x, w_q, w_k, b_q, b_k, perm, HEADS, HEAD_DIM)
    assert diff <= 1e-5 * float(scores.abs().max()), diff
    assert not torch.equal(perm, torch.arange(HEAD_DIM).expand(HEADS, -1))


# ----------------------------------------------------------------------------------------------
# Real-data report
# ----------------------------------------------------------------------------------------------


def test_kv_report_smoke(minilm, tmp_path):
    from golden.kv_report import format_markdown, kv_report, methods, write_report
    from golden.minilm import SENTENCES

    result = kv_report(minilm, sentences=[SENTENCES[0]], calibration=SENTENCES[1])
    names = [r["name"] for r in result["rows"]]
    assert names == [m.name for m in methods()]
    for want in ("fp8_e4m3 b32", "fp4_e2m1 b32", "int8 b32", "bfp4 b8", "bfp8 b16",
                 "bfp4 b8 K reordered (calibrated)", "bfp4 b16 K reordered (calibrated)",
                 "KIVI-2", "KIVI-4"):
        assert want in names
    for r in result["rows"]:
        assert r["finite"], r["name"]
        for key in ("k_rel_rms", "v_rel_rms", "attn_rel_rms", "score_rel_rms"):
            assert 0 < r[key] < 1, (r["name"], key, r[key])
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["int8 b32"]["k_bits"] == 8.25 and rows["bfp4 b8"]["v_bits"] == 5.0
    assert rows["KIVI-2"]["k_bits"] == pytest.approx(2 + METADATA_BITS / 8)  # one 8-token group
    assert rows["KIVI-4"]["v_bits"] == pytest.approx(4 + METADATA_BITS / 32)
    assert rows["int8 b32"]["k_rel_rms"] < rows["bfp4 b32"]["k_rel_rms"]
    assert rows["KIVI-4"]["k_rel_rms"] < rows["KIVI-2"]["k_rel_rms"]
    b32 = result["reorder"]["b32"]["calibrated"]
    assert b32["heads_equal"] == result["config"]["layers"] * result["config"]["heads"]
    md = format_markdown(result)
    for name in names:
        assert f"| {name} |" in md
    md_path, json_path = write_report(result, tmp_path)
    assert md_path.read_text() == md and json_path.stat().st_size > 0

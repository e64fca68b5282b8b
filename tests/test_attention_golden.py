"""The fixed-point attention golden model (golden.attention): exp2, the online softmax, masks,
GQA, a hand-computed example, and the accuracy against float attention (random and MiniLM)."""
from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch

from golden.attention import (
    MAX_SCALE,
    attention_accumulators,
    attention_exact,
    attention_float,
    exp2_neg,
    exp2_table,
    scale_to_fixed,
)
from hdl.attention.config import GUARD, SCALE_FRAC, AttentionConfig

DEFAULT = AttentionConfig()
MAX_TARGET, MEAN_TARGET = 2.0, 0.3
UNIFORM_INT8_VAR = (256**2 - 1) / 12
EXP2_CONFIGS = [
    DEFAULT,
    AttentionConfig(exp2_segments=8),
    AttentionConfig(exp2="table", exp2_segments=256),
    AttentionConfig(prob_bits=12, exp_frac_bits=12, exp2_segments=64),
    AttentionConfig(prob_bits=20, exp_frac_bits=8, exp2_segments=256),   # offset_bits = 0
]


def ints(gen: torch.Generator, *shape: int, lo: int = -128, hi: int = 127) -> torch.Tensor:
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int64)


def run(q, k, v, *, scale: float, causal: bool = False, config: AttentionConfig = DEFAULT):
    return attention_exact(q, k, v, config=config, scale_fixed=scale_to_fixed(scale),
                           causal=causal)


def round_half_away(x: Fraction) -> int:
    magnitude = math.floor(abs(x) + Fraction(1, 2))
    return magnitude if x >= 0 else -magnitude


def assert_within_targets(o: torch.Tensor, ref: torch.Tensor) -> None:
    err = (o.to(torch.float64) - ref).abs()
    assert float(err.max()) <= MAX_TARGET, float(err.max())
    assert float(err.mean()) <= MEAN_TARGET, float(err.mean())


def cfg_id(config: AttentionConfig) -> str:
    return config.slug()


# ----------------------------------------------------------------------------------------------
# Scale and exp2
# ----------------------------------------------------------------------------------------------


def test_scale_to_fixed_values() -> None:
    assert scale_to_fixed(0.0) == 0
    assert scale_to_fixed(1 / math.log2(math.e)) == 1 << SCALE_FRAC
    assert scale_to_fixed(0.7 / math.log2(math.e)) == 187904819      # round(0.7·2**28)
    assert scale_to_fixed(1 / math.sqrt(32)) == round(math.log2(math.e) / math.sqrt(32) * 2**28)
    assert scale_to_fixed(MAX_SCALE * (1 - 1e-9)) < 1 << 32


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), -1e-3, -1.0,
                                 MAX_SCALE, 12.0, 1e30, "0.5", None, True])
def test_scale_to_fixed_rejects(bad) -> None:
    with pytest.raises(ValueError, match="scale") as info:
        scale_to_fixed(bad)
    assert "scale <" in str(info.value)        # names the allowed range


def test_exp2_table() -> None:
    for config in EXP2_CONFIGS:
        table = exp2_table(config)
        one = 1 << (config.prob_bits + GUARD)
        assert len(table) == config.exp2_segments + 1
        assert table[0] == one and table[-1] == one // 2
        assert all(a > b for a, b in itertools.pairwise(table))
    # Two entries of the default table, by hand: round(2**18 · 2**(-25/32)) etc.
    assert exp2_table(DEFAULT)[25] == 152532 and exp2_table(DEFAULT)[26] == 149263


@pytest.mark.parametrize("config", EXP2_CONFIGS, ids=cfg_id)
def test_exp2_zero_and_monotone(config: AttentionConfig) -> None:
    F, P = config.exp_frac_bits, config.prob_bits
    assert int(exp2_neg(torch.tensor(0), config)) == 1 << P
    u = torch.arange(0, (P + 3) << F, dtype=torch.int64) if F <= 12 else torch.cat([
        torch.arange(0, 3 << F),                                         # every u, 3 octaves
        torch.randint(3 << F, (P + 3) << F, (200_000,), generator=torch.Generator()
                      .manual_seed(1)).sort().values])
    p = exp2_neg(u, config)
    assert bool((p[1:] <= p[:-1]).all()), "exp2_neg is not non-increasing"
    assert bool((p[u >= (P + 2) << F] == 0).all())
    assert int(p.min()) == 0 and int(p.max()) == 1 << P
    # One octave halves the result (up to the final rounding).
    assert int(exp2_neg(torch.tensor(1 << F), config)) == 1 << (P - 1)


@pytest.mark.parametrize("config", [c for c in EXP2_CONFIGS if c.exp2 == "pwl"], ids=cfg_id)
def test_exp2_pwl_error_bound(config: AttentionConfig) -> None:
    """|E(u) - 2**P·2**(-u/2**F)| ≤ 1/2 + 2**(P-I)·(ln2/S)²/8 + 1.5·2**-(I+G): final rounding,
    the chord error of a convex function over a segment, and the table/floor roundings."""
    F, P, S = config.exp_frac_bits, config.prob_bits, config.exp2_segments
    u = torch.arange(0, min(6 << F, 1 << 20), dtype=torch.int64)
    p = exp2_neg(u, config).to(torch.float64)
    ideal = 2.0**P * torch.exp2(-u.to(torch.float64) / 2**F)
    scale = 2.0 ** (P - (u >> F).to(torch.float64))
    chord = (math.log(2) / S) ** 2 / 8
    bound = 0.5 + scale * chord + 1.5 * scale / 2**(P + GUARD) + 1e-9
    assert bool(((p - ideal).abs() <= bound).all())
    # Relative form over the first octave (where p ≥ 2**(P-1)).
    first = u < 1 << F
    rel = ((p - ideal).abs() / ideal)[first]
    assert float(rel.max()) <= chord + 2.0 ** (1 - P) + 1.5 * 2.0 ** -(P + GUARD)
    # The interpolation is really there: a table of S entries would miss this bound by far.
    table_error = (1 - 2 ** (-1 / S)) / 2
    assert chord + 2.0 ** (1 - P) < table_error


def test_exp2_table_kind_is_step() -> None:
    config = AttentionConfig(exp2="table", exp2_segments=32)
    F, P = config.exp_frac_bits, config.prob_bits
    u = torch.arange(0, 1 << F, dtype=torch.int64)
    p = exp2_neg(u, config)
    table = torch.tensor(exp2_table(config))
    assert torch.equal(p, (table[u >> (F - 5)] + 2) >> GUARD)
    assert int(p[0]) == 1 << P


def test_exp2_rejects_negative() -> None:
    with pytest.raises(ValueError, match="u"):
        exp2_neg(torch.tensor([-1]), DEFAULT)


# ----------------------------------------------------------------------------------------------
# Exact properties of the online softmax
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, 1e-6, 1 / math.sqrt(16), 11.0])
def test_single_key_returns_v(scale: float) -> None:
    gen = torch.Generator().manual_seed(2)
    q, k, v = ints(gen, 3, 5, 16), ints(gen, 3, 1, 16), ints(gen, 3, 1, 16)
    o = run(q, k, v, scale=scale)
    assert torch.equal(o, v.expand(3, 5, 16))


@pytest.mark.parametrize("cols", [1, 3, 4, 32])
def test_causal_row_zero_is_v0(cols: int) -> None:
    gen = torch.Generator().manual_seed(3)
    q, k, v = ints(gen, 2, 9, 8), ints(gen, 2, 11, 8), ints(gen, 2, 11, 8)
    config = AttentionConfig(cols=cols)
    o = run(q, k, v, scale=1 / (math.sqrt(8) * UNIFORM_INT8_VAR), causal=True, config=config)
    assert torch.equal(o[:, 0], v[:, 0])
    full = run(q, k, v, scale=1 / (math.sqrt(8) * UNIFORM_INT8_VAR), config=config)
    assert not torch.equal(o, full)            # the mask really changes the other rows


@pytest.mark.parametrize("cols", [1, 4, 5])
@pytest.mark.parametrize("causal", [False, True])
def test_equal_scores_give_rounded_mean(cols: int, causal: bool) -> None:
    """q = 0: every p is exactly 2**P, so o is round_half_away of the mean of the visible v."""
    gen = torch.Generator().manual_seed(4)
    n_q, n_kv, d = 7, 13, 6
    q = torch.zeros(2, n_q, d, dtype=torch.int64)
    k, v = ints(gen, 2, n_kv, d), ints(gen, 2, n_kv, d)
    v[0, :, 0] = torch.tensor([1, 2] + [0] * (n_kv - 2))     # means of x.5 exercise the rounding
    v[0, :, 1] = torch.tensor([-1, -2] + [0] * (n_kv - 2))
    o = run(q, k, v, scale=0.3, causal=causal, config=AttentionConfig(cols=cols))
    for h in range(2):
        for i in range(n_q):
            seen = i + 1 if causal else n_kv
            for t in range(d):
                mean = Fraction(int(v[h, :seen, t].sum()), seen)
                assert int(o[h, i, t]) == round_half_away(mean), (h, i, t)
    if causal:
        assert o[0, 1, 0] == 2 and o[0, 1, 1] == -2            # 1.5 -> 2, -1.5 -> -2


def test_gqa_equals_per_head_runs() -> None:
    gen = torch.Generator().manual_seed(5)
    heads, heads_kv, d = 8, 2, 16
    q, k, v = ints(gen, heads, 10, d), ints(gen, heads_kv, 14, d), ints(gen, heads_kv, 14, d)
    scale = 1 / (math.sqrt(d) * UNIFORM_INT8_VAR)
    for causal in (False, True):
        o = run(q, k, v, scale=scale, causal=causal)
        for h in range(heads):
            kv = h // (heads // heads_kv)
            alone = run(q[h:h + 1], k[kv:kv + 1], v[kv:kv + 1], scale=scale, causal=causal)
            assert torch.equal(o[h:h + 1], alone), (h, causal)
        ref = attention_float(q, k, v, scale=scale, causal=causal)
        assert_within_targets(o, ref)


def test_single_block_is_plain_fixed_point_softmax() -> None:
    """With all keys in one block there is no rescale: l = Σ E(U(max - s)), o_acc = Σ p·v."""
    gen = torch.Generator().manual_seed(6)
    q, k, v = ints(gen, 2, 5, 8), ints(gen, 2, 12, 8), ints(gen, 2, 12, 8)
    c = scale_to_fixed(3 / (math.sqrt(8) * UNIFORM_INT8_VAR))
    config = AttentionConfig(cols=12)
    acc, total = attention_accumulators(q, k, v, config=config, scale_fixed=c, causal=False)
    s = q @ k.transpose(1, 2)
    u = ((s.amax(dim=-1, keepdim=True) - s) * c) >> (SCALE_FRAC - config.exp_frac_bits)
    p = exp2_neg(u, config)
    assert torch.equal(total, p.sum(dim=-1))
    assert torch.equal(acc, p @ v)


def test_no_keys_gives_zero() -> None:
    q = torch.ones(2, 3, 4, dtype=torch.int64)
    k = v = torch.zeros(2, 0, 4, dtype=torch.int64)
    assert torch.equal(run(q, k, v, scale=0.1), torch.zeros(2, 3, 4, dtype=torch.int64))


def test_causal_more_queries_than_keys() -> None:
    """Top-left alignment: rows i ≥ Nkv - 1 see every key, as SDPA's is_causal."""
    gen = torch.Generator().manual_seed(7)
    q, k, v = ints(gen, 2, 12, 8), ints(gen, 2, 5, 8), ints(gen, 2, 5, 8)
    scale = 1 / (math.sqrt(8) * UNIFORM_INT8_VAR)
    o = run(q, k, v, scale=scale, causal=True)
    full = run(q, k, v, scale=scale, causal=False)
    assert torch.equal(o[:, 4:], full[:, 4:])
    assert not torch.equal(o[:, :4], full[:, :4])
    assert_within_targets(o, attention_float(q, k, v, scale=scale, causal=True))


# ----------------------------------------------------------------------------------------------
# Hand-computed examples (default config, c = round(0.7·2**28): exp(scale·x) = 2**(0.7·x))
# ----------------------------------------------------------------------------------------------

C_HAND = 187904819


def test_hand_example_two_keys() -> None:
    q = torch.tensor([[[1, 2]]])
    k = torch.tensor([[[3, 1], [1, 4]]])                 # scores 5 and 9
    v = torch.tensor([[[10, -7], [-3, 5]]])
    # p0 = E(U(9 - 5)): U = (4·187904819) >> 12 = 751619276 >> 12 = 183500;
    # I = 183500 >> 16 = 2, f = 52428, segment 52428 >> 11 = 25, offset 1228;
    # T[25] = 152532, T[26] = 149263: mant = 152532 - ((3269·1228) >> 11) = 152532 - 1960
    # = 150572; p0 = (150572 + 2**3) >> 4 = 9411   (65536·2**-2.8 = 9410.6).
    assert (4 * C_HAND) >> 12 == 183500
    assert 152532 - ((152532 - 149263) * 1228 >> 11) == 150572
    p0, p1 = (150572 + 8) >> 4, 1 << 16
    assert p0 == 9411
    assert torch.equal(exp2_neg(torch.tensor([183500, 0]), DEFAULT), torch.tensor([p0, p1]))
    total = p0 + p1                                       # 74947
    acc = [p0 * 10 + p1 * -3, p0 * -7 + p1 * 5]           # -102498, 261803
    expected = [round_half_away(Fraction(a, total)) for a in acc]
    assert expected == [-1, 3]                            # -1.368, 3.493
    for cols in (1, 2):                                   # block of 1: the rescale is exact
        config = AttentionConfig(cols=cols)
        got_acc, got_total = attention_accumulators(q, k, v, config=config,
                                                    scale_fixed=C_HAND, causal=False)
        assert got_total.tolist() == [[total]] and got_acc.tolist() == [[acc]]
        o = attention_exact(q, k, v, config=config, scale_fixed=C_HAND, causal=False)
        assert o.tolist() == [[expected]]
    # Causal: the only row sees key 0 alone.
    o = attention_exact(q, k, v, config=DEFAULT, scale_fixed=C_HAND, causal=True)
    assert o.tolist() == [[[10, -7]]]


def test_hand_example_three_keys_rescale_rounding() -> None:
    """Scores 5, 7, 9 in blocks of one key: the second rescale rounds, so cols changes o_acc."""
    q = torch.tensor([[[1, 2]]])
    k = torch.tensor([[[3, 1], [1, 3], [1, 4]]])          # scores 5, 7, 9
    v = torch.tensor([[[10, -7], [-3, 5], [6, -128]]])
    # a = E(U(2)): U = (2·187904819) >> 12 = 91750; I = 1, f = 26214, segment 12, offset 1638;
    # T[12] = 202141, T[13] = 197809: mant = 202141 - ((4332·1638) >> 11) = 198677;
    # a = (198677 + 4) >> 3 = 24835   (65536·2**-1.4 = 24834.8).
    a = (202141 - ((202141 - 197809) * 1638 >> 11) + 4) >> 3
    assert a == 24835 and int(exp2_neg(torch.tensor(91750), DEFAULT)) == a
    one, half = 1 << 16, 1 << 15
    # block 0: m = 5, α = 2**16 (first block)
    total, acc = one, [one * 10, one * -7]
    # block 1: m = 7, α = a, p = 2**16
    total = ((total * a + half) >> 16) + one
    acc = [((x * a + half) >> 16) + one * y for x, y in zip(acc, [-3, 5], strict=True)]
    assert total == 90371 and acc == [51742, 153835]
    # block 2: m = 9, α = a, p = 2**16 (this rescale rounds)
    total = ((total * a + half) >> 16) + one
    acc = [((x * a + half) >> 16) + one * y for x, y in zip(acc, [6, -128], strict=True)]
    assert total == 99782 and acc == [412824, -8330312]
    config = AttentionConfig(cols=1)
    got_acc, got_total = attention_accumulators(q, k, v, config=config, scale_fixed=C_HAND,
                                                causal=False)
    assert got_total.tolist() == [[total]] and got_acc.tolist() == [[acc]]
    o = attention_exact(q, k, v, config=config, scale_fixed=C_HAND, causal=False)
    assert o.tolist() == [[[4, -83]]]                     # 4.137, -83.485
    # One block of three: p = (a·a-ish, a, 2**16) without the rescale roundings.
    got_acc3, _ = attention_accumulators(q, k, v, config=AttentionConfig(cols=3),
                                         scale_fixed=C_HAND, causal=False)
    assert got_acc3.tolist() == [[[412821, -8330310]]]


# ----------------------------------------------------------------------------------------------
# Accuracy against float
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "n_q", "n_kv", "heads", "heads_kv", "causal", "spread"), [
    (16, 24, 40, 4, 4, False, 1.0),
    (32, 40, 24, 4, 4, True, 1.0),
    (64, 17, 57, 2, 2, False, 3.0),
    (32, 48, 48, 8, 2, True, 1.0),
    (32, 20, 30, 4, 4, False, 30.0),       # peaky
    (32, 20, 30, 4, 4, True, 1e-4),        # flat
])
def test_random_within_targets(d, n_q, n_kv, heads, heads_kv, causal, spread) -> None:
    gen = torch.Generator().manual_seed(d * 1000 + n_q)
    q, k, v = ints(gen, heads, n_q, d), ints(gen, heads_kv, n_kv, d), ints(gen, heads_kv, n_kv, d)
    scale = spread / (math.sqrt(d) * UNIFORM_INT8_VAR)
    for cols in (1, 8):
        o = run(q, k, v, scale=scale, causal=causal, config=AttentionConfig(cols=cols))
        assert_within_targets(o, attention_float(q, k, v, scale=scale, causal=causal))


@pytest.mark.parametrize("scale", [1 / math.sqrt(32), 11.0])
def test_argmax_regime_is_exact(scale: float) -> None:
    """Integer logits spread by thousands: the softmax is one-hot, o == v[argmax] exactly."""
    gen = torch.Generator().manual_seed(8)
    q, k, v = ints(gen, 2, 10, 32), ints(gen, 2, 20, 32), ints(gen, 2, 20, 32)
    o = run(q, k, v, scale=scale)
    s = q @ k.transpose(1, 2)
    top = s.topk(2, dim=-1).values
    assert bool((top[..., 0] - top[..., 1] > 200).all())  # no near-ties in this sample
    best = s.argmax(dim=-1)
    assert torch.equal(o, torch.gather(v, 1, best[..., None].expand(-1, -1, 32)))


def test_large_accumulators_prob_bits_20() -> None:
    """65535 keys (the SEQ_BITS limit), P = 20, v mostly -128 and a late maximum: |o_acc| is
    near 2**43 and |o_acc|·α near 2**63 at the last rescale; the result must still be right."""
    config = AttentionConfig(prob_bits=20, cols=32)
    n_kv = (1 << 16) - 1
    q = torch.full((1, 1, 1), 127, dtype=torch.int64)
    k = torch.full((1, n_kv, 1), -128, dtype=torch.int64)
    k[0, -3:, 0] = 127                                    # the maximum grows in the last block
    v = torch.full((1, n_kv, 1), -128, dtype=torch.int64)
    v[0, ::7, 0] = 127
    scale = 3e-7                                          # α ≈ 0.99 at the jump
    c = scale_to_fixed(scale)
    acc, total = attention_accumulators(q, k, v, config=config, scale_fixed=c, causal=False)
    assert int(acc.abs().max()) > 1 << 42 and int(total) > 1 << 35
    o = attention_exact(q, k, v, config=config, scale_fixed=c, causal=False)
    ref = attention_float(q, k, v, scale=scale, causal=False)
    assert -128 < int(o) < -80 and float((o - ref).abs().max()) <= 1.0


def test_minilm_layer_within_targets() -> None:
    from golden.minilm import SENTENCES, load_minilm, quantize_per_tensor_int8

    layer = load_minilm().qkv(SENTENCES[2])[3]            # 61 tokens, layer 3
    (q, sq), (k, sk), (v, _) = (quantize_per_tensor_int8(layer[n]) for n in "qkv")
    scale = sq * sk / math.sqrt(32)
    o = run(q, k, v, scale=scale, config=AttentionConfig(cols=8))
    ref = attention_float(q, k, v, scale=scale, causal=False)
    assert_within_targets(o, ref)
    # The float reference is the model's own attention up to the int8 quantization of q, k, v.
    context = layer["context"].to(torch.float64)
    assert float((ref * (float(layer["v"].abs().max()) / 127) - context).abs().max()) < 0.1


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------


def test_argument_errors() -> None:
    q = torch.zeros(4, 3, 8, dtype=torch.int64)
    kv = torch.zeros(2, 5, 8, dtype=torch.int64)
    c = scale_to_fixed(0.1)
    call = {"config": DEFAULT, "scale_fixed": c, "causal": False}
    with pytest.raises(ValueError, match=r"^q "):
        attention_exact(q[0], kv, kv, **call)
    with pytest.raises(ValueError, match=r"^k "):
        attention_exact(q, torch.zeros(3, 5, 8, dtype=torch.int64),
                        torch.zeros(3, 5, 8, dtype=torch.int64), **call)
    with pytest.raises(ValueError, match=r"^v "):
        attention_exact(q, kv, torch.zeros(2, 4, 8, dtype=torch.int64), **call)
    with pytest.raises(ValueError, match=r"^k "):
        attention_exact(q, torch.zeros(2, 5, 7, dtype=torch.int64),
                        torch.zeros(2, 5, 7, dtype=torch.int64), **call)
    with pytest.raises(ValueError, match=r"^v holds"):
        attention_exact(q, kv, kv + 128, **call)
    with pytest.raises(ValueError, match=r"^q must be an integer"):
        attention_exact(q.double(), kv, kv, **call)
    for bad in (-1, 1 << 32, 0.5):
        with pytest.raises(ValueError, match=r"^scale_fixed"):
            attention_exact(q, kv, kv, config=DEFAULT, scale_fixed=bad, causal=False)

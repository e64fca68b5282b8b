"""The attention engine end to end: `sim --inputs/--outputs` on both simulators (random data
and the real MiniLM Q/K/V), the float reference, bad inputs refused in one line."""
import math

import numpy as np
import pytest
import torch
from sim_cli import require, sim_npz

from golden.minilm import SENTENCES, load_minilm, quantize_per_tensor_int8
from hdl.attention.config import AttentionConfig
from hdl.attention.layout import work
from sim.runner import SIMULATORS
from tensorgates.cli import main

#: Design points shared with the registry's regression, so their builds are reused.
SMALL = {"rows": "4", "cols": "4", "max_head_dim": "16"}
LARGE = {"rows": "8", "cols": "8", "max_head_dim": "64"}


def _accuracy(out: dict) -> tuple[float, float]:
    error = np.abs(out["o"] - out["o_float"])
    return float(error.max()), float(error.mean())


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_attention_inputs_outputs_npz(tmp_path, simulator):
    """Grouped-query causal attention with Nq ≠ Nkv, not multiples of the array: o from the
    RTL equals o_golden; within 2 LSB (max) and 0.3 LSB (mean) of float SDPA; counters."""
    require(simulator)
    rng = np.random.default_rng(21)
    q = rng.integers(-128, 128, (4, 9, 16)).astype(np.int8)
    k = rng.integers(-128, 128, (2, 13, 16)).astype(np.int8)
    v = rng.integers(-128, 128, (2, 13, 16)).astype(np.int8)
    scale = 1 / (4 * 128 * 128 / 3)       # unit-spread logits: a soft, demanding softmax
    out = sim_npz(tmp_path, "attention", SMALL, simulator, q=q, k=k, v=v,
                  scale=np.float64(scale), causal=np.bool_(True))
    np.testing.assert_array_equal(out["o"], out["o_golden"])
    assert out["o"].shape == (4, 9, 16)
    worst, mean = _accuracy(out)
    assert worst <= 2 and mean <= 0.3, (worst, mean)
    config = AttentionConfig(rows=4, cols=4, max_head_dim=16)
    beats, macs = work(config, 4, 9, 2, 13, 16, True)
    assert int(out["busy_cycles"]) == beats and int(out["useful_macs"]) == macs
    assert int(out["cycles"]) >= beats


@pytest.mark.full    # 1.5 min, most of it building the 8×8 d=64 array on Verilator
def test_attention_minilm_through_rtl(tmp_path):
    """The real all-MiniLM-L6-v2 Q/K/V of one layer (all 12 heads, a 26-token sentence),
    int8 per tensor: the RTL is bit-exact and within the accuracy targets of float SDPA."""
    require("verilator")
    layer = load_minilm().qkv(SENTENCES[1])[2]
    (q, sq), (k, sk), (v, _) = (quantize_per_tensor_int8(layer[name]) for name in "qkv")
    scale = sq * sk / math.sqrt(q.shape[-1])
    out = sim_npz(tmp_path, "attention", LARGE, q=q.numpy(), k=k.numpy(), v=v.numpy(),
                  scale=np.float64(scale))
    np.testing.assert_array_equal(out["o"], out["o_golden"])
    worst, mean = _accuracy(out)
    assert worst <= 2 and mean <= 0.3, (worst, mean)
    reference = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double(), v.double(), scale=scale).numpy()
    np.testing.assert_allclose(out["o_float"], reference, atol=1e-9)


@pytest.mark.parametrize("arrays, message", [
    ({"q": np.zeros((2, 3), np.int8)}, "inputs lack 'k'"),
    ({"q": np.zeros((1, 3, 4), np.int8), "k": np.zeros((1, 5, 4), np.int8),
      "v": np.zeros((1, 6, 4), np.int8)}, "must have the same shape"),
    ({"q": np.zeros((3, 3, 4), np.int8), "k": np.zeros((2, 5, 4), np.int8),
      "v": np.zeros((2, 5, 4), np.int8)}, "H=3 is not allowed with Hkv=2"),
    ({"q": np.zeros((1, 3, 17), np.int8), "k": np.zeros((1, 5, 17), np.int8),
      "v": np.zeros((1, 5, 17), np.int8)}, "d=17 is not allowed; expected 1 to 16"),
    ({"q": np.zeros((1, 3, 4), np.float32), "k": np.zeros((1, 5, 4), np.int8),
      "v": np.zeros((1, 5, 4), np.int8)}, "q must hold integers"),
    ({"q": np.zeros((1, 3, 4), np.int8), "k": np.zeros((1, 5, 4), np.int8),
      "v": np.zeros((1, 5, 4), np.int8), "scale": np.float64(-1)}, "scale=-1.0 is not allowed"),
    ({"q": np.zeros((1, 3, 4), np.int8), "k": np.zeros((1, 0, 4), np.int8),
      "v": np.zeros((1, 0, 4), np.int8)}, "Nkv=0 is not allowed"),
])
def test_bad_inputs_one_line_exit_2(tmp_path, capsys, arrays, message):
    np.savez(tmp_path / "in.npz", **arrays)
    sets = [item for k, v in SMALL.items() for item in ("--set", f"{k}={v}")]
    code = main(["sim", "attention", *sets, "--inputs", str(tmp_path / "in.npz"), "--outputs",
                 str(tmp_path / "out.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err, err


@pytest.mark.parametrize("settings, message", [
    (["exp2=cubic"], "exp2='cubic' is not allowed"),
    (["exp2_segments=48"], "exp2_segments=48 is not allowed"),
    (["rows=33"], "rows=33 is not allowed"),
    (["prob_bits=21"], "prob_bits=21 is not allowed"),
])
def test_bad_configs_one_line_exit_2(capsys, settings, message):
    sets = [item for s in settings for item in ("--set", s)]
    assert main(["generate", "attention", *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err

"""SAT-style N:M sparse training (bidirectional weight pruning) of a small MLP, on CPU.

SAT's BDWP prunes every linear layer's weight W [out, in] twice from the same dense weights: N:M
along the input dim for the forward GEMM y = x·(W⊙Mf)ᵀ, and N:M along the output dim for the
backward data GEMM dx = g·(W⊙Mb), so both GEMMs reduce over a sparse axis and can run on an N:M
array. The weight gradient gᵀ·x stays dense and updates the dense weights; the masks are
recomputed from them every step. This module shows on a synthetic task that accuracy survives
(dense vs. 2:4 vs. 2:8) and exports one training step's quantized GEMM operands for the RTL.

Run ``python -m golden.sparse_training`` for the comparison table (markdown).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from golden.nm_sparse import bdwp_masks

__all__ = [
    "IN_FEATURES",
    "OUT_CLASSES",
    "BdwpLinear",
    "compare_training",
    "make_task",
    "markdown_table",
    "quantize_int8",
    "train",
    "training_step_gemms",
]

IN_FEATURES = 64
HIDDEN = 128
OUT_CLASSES = 10
CLUSTERS_PER_CLASS = 4
NOISE = 1.5
TRAIN_SAMPLES = 16384
TEST_SAMPLES = 4096
BATCH = 128
DEFAULT_STEPS = 600
LEARNING_RATE = 3e-3


class BdwpLinear(torch.autograd.Function):
    """y = x·(W⊙Mf)ᵀ + b; backward dx = g·(W⊙Mb), dW = gᵀ·x (dense), db = Σg."""

    @staticmethod
    def forward(ctx, x, weight, bias, fwd_mask, bwd_mask):  # type: ignore[override]
        ctx.save_for_backward(x, weight, bwd_mask)
        return x @ (weight * fwd_mask).T + bias

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, weight, bwd_mask = ctx.saved_tensors
        return g @ (weight * bwd_mask), g.T @ x, g.sum(0), None, None


def make_task(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A learnable, not linearly separable 10-class task: a Gaussian mixture.

    Each class owns CLUSTERS_PER_CLASS random centres in IN_FEATURES dims (N(0, 1) entries); a
    sample is a random centre of a uniformly drawn class plus N(0, NOISE²) noise. Returns
    (x_train, y_train, x_test, y_test), x float32, y int64.
    """
    gen = torch.Generator().manual_seed(1000 + seed)
    centres = torch.randn(OUT_CLASSES * CLUSTERS_PER_CLASS, IN_FEATURES, generator=gen)
    total = TRAIN_SAMPLES + TEST_SAMPLES
    which = torch.randint(0, centres.shape[0], (total,), generator=gen)
    x = centres[which] + NOISE * torch.randn(total, IN_FEATURES, generator=gen)
    y = which % OUT_CLASSES
    return x[:TRAIN_SAMPLES], y[:TRAIN_SAMPLES], x[TRAIN_SAMPLES:], y[TRAIN_SAMPLES:]


def _init_params(seed: int) -> list[torch.Tensor]:
    """[w1, b1, w2, b2] with PyTorch's default Linear init, from a private generator."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for fan_out, fan_in in ((HIDDEN, IN_FEATURES), (OUT_CLASSES, HIDDEN)):
        bound = fan_in**-0.5
        params.append((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound)
        params.append((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
    return [p.requires_grad_() for p in params]


def _layer(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, mode: str, n: int, m: int):
    if mode == "dense":
        return x @ w.T + b
    fwd, bwd = bdwp_masks(w.detach(), n, m)
    return BdwpLinear.apply(x, w, b, fwd.to(w.dtype), bwd.to(w.dtype))


def _forward(params: list[torch.Tensor], x: torch.Tensor, mode: str, n: int, m: int):
    """Logits and the first layer's pre-activation output (kept for its gradient)."""
    w1, b1, w2, b2 = params
    h = _layer(x, w1, b1, mode, n, m)
    return _layer(torch.relu(h), w2, b2, mode, n, m), h


def _check_mode(mode: str) -> None:
    if mode not in ("dense", "bdwp"):
        raise ValueError(f"mode must be 'dense' or 'bdwp'; got {mode!r}")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run on one intra-op thread: these GEMMs are tiny, and spinning OpenMP workers slow them
    down badly on a busy machine. The caller's setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(mode: str, n: int, m: int, steps: int, seed: int):
    """Train from scratch; return (params, task, per-step losses)."""
    _check_mode(mode)
    with _one_thread():
        return _train_loop(mode, n, m, steps, seed)


def _train_loop(mode: str, n: int, m: int, steps: int, seed: int):
    task = make_task(seed)
    x_train, y_train = task[0], task[1]
    params = _init_params(seed)
    opt = torch.optim.Adam(params, lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(2000 + seed)
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, x_train.shape[0], (BATCH,), generator=gen)
        logits, _ = _forward(params, x_train[batch], mode, n, m)
        loss = F.cross_entropy(logits, y_train[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return params, task, losses


def train(mode: str, n: int = 2, m: int = 4, steps: int = DEFAULT_STEPS, seed: int = 0) -> dict:
    """Train the MLP in 'dense' or 'bdwp' (N:M) mode and evaluate it (sparse model for bdwp).

    Returns a dict with mode, n, m, steps, test_acc, test_loss, final_loss (mean training loss of
    the last 20 steps) and seconds.
    """
    start = time.perf_counter()
    params, (_, _, x_test, y_test), losses = _run(mode, n, m, steps, seed)
    with torch.no_grad(), _one_thread():
        logits, _ = _forward(params, x_test, mode, n, m)
        acc = float((logits.argmax(1) == y_test).float().mean())
        test_loss = float(F.cross_entropy(logits, y_test))
    tail = losses[-20:]
    return {
        "mode": mode,
        "n": n if mode != "dense" else None,
        "m": m if mode != "dense" else None,
        "steps": steps,
        "test_acc": acc,
        "test_loss": test_loss,
        "final_loss": sum(tail) / len(tail),
        "seconds": time.perf_counter() - start,
    }


def compare_training(steps: int = DEFAULT_STEPS, seed: int = 0) -> list[dict]:
    """train() for dense, BDWP 2:4 and BDWP 2:8 with the same data, init and batches."""
    return [
        train("dense", steps=steps, seed=seed),
        train("bdwp", 2, 4, steps=steps, seed=seed),
        train("bdwp", 2, 8, steps=steps, seed=seed),
    ]


def markdown_table(results: list[dict]) -> str:
    """The comparison as a markdown table."""
    lines = [
        "| mode | N:M | weight density | steps | test accuracy | test loss | final train loss |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        nm = "—" if r["mode"] == "dense" else f"{r['n']}:{r['m']}"
        density = "100%" if r["mode"] == "dense" else f"{100 * r['n'] / r['m']:.1f}%"
        lines.append(
            f"| {r['mode']} | {nm} | {density} | {r['steps']} | {100 * r['test_acc']:.1f}% "
            f"| {r['test_loss']:.3f} | {r['final_loss']:.3f} |"
        )
    return "\n".join(lines)


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-tensor symmetric int8: q = clamp(round(t / s), -127, 127), s = max|t| / 127.

    torch.round rounds half to even. Returns (q as int64, s); s = 1.0 for an all-zero tensor.
    Zeros stay zero, so an N:M-sparse tensor stays N:M-sparse.
    """
    peak = float(t.detach().abs().max()) if t.numel() else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    q = torch.clamp(torch.round(t.detach().to(torch.float64) / scale), -127, 127)
    return q.to(torch.int64), scale


def training_step_gemms(
    n: int, m: int, seed: int = 0, batch: int = 16, warmup_steps: int = 100
) -> dict:
    """Quantized operands and exact results of one BDWP step's first-layer GEMMs.

    Trains BDWP (n, m) for warmup_steps, then runs one step on a batch of `batch` samples and
    quantizes (quantize_int8) the layer-1 activation x_q [B, in], its forward-pruned weight
    w_fwd_q [out, in] (N:M along in), the gradient of the loss w.r.t. layer 1's output g_q
    [B, out] and its backward-pruned weight w_bwd_q [out, in] (N:M along out). Returns those
    (int64), their scales, and forward = x_q·w_fwd_qᵀ [B, out] and backward = g_q·w_bwd_q [B, in]
    (int64, exact).

    On the RTL's C = A·Wcᵀ with Wc compressed N:M along its last dim: forward is A = x_q,
    Wc = w_fwd_q; backward is A = g_q, Wc = w_bwd_q.T (w_bwd_q is N:M along out, which is Wc's
    last dim).
    """
    params, (x_train, y_train, _, _), _ = _run("bdwp", n, m, warmup_steps, seed)
    gen = torch.Generator().manual_seed(3000 + seed)
    pick = torch.randint(0, x_train.shape[0], (batch,), generator=gen)
    x = x_train[pick]
    logits, h = _forward(params, x, "bdwp", n, m)
    h.retain_grad()
    F.cross_entropy(logits, y_train[pick]).backward()
    w1 = params[0].detach()
    fwd_mask, bwd_mask = bdwp_masks(w1, n, m)
    x_q, x_scale = quantize_int8(x)
    w_fwd_q, w_fwd_scale = quantize_int8(w1 * fwd_mask)
    g_q, g_scale = quantize_int8(h.grad)
    w_bwd_q, w_bwd_scale = quantize_int8(w1 * bwd_mask)
    return {
        "n": n,
        "m": m,
        "x_q": x_q,
        "w_fwd_q": w_fwd_q,
        "g_q": g_q,
        "w_bwd_q": w_bwd_q,
        "scales": {"x": x_scale, "w_fwd": w_fwd_scale, "g": g_scale, "w_bwd": w_bwd_scale},
        "forward": x_q @ w_fwd_q.T,
        "backward": g_q @ w_bwd_q,
    }


if __name__ == "__main__":
    results = compare_training()
    print(markdown_table(results))
    total = sum(r["seconds"] for r in results)
    print(f"\nMLP {IN_FEATURES}-{HIDDEN}-{OUT_CLASSES}, Adam lr {LEARNING_RATE}, batch {BATCH}, "
          f"Gaussian-mixture task ({TRAIN_SAMPLES} train / {TEST_SAMPLES} test, chance 10%); "
          f"{total:.1f} s (one thread).")

"""N:M sparsity golden model and SAT-style training: each check compares values and can fail."""
from __future__ import annotations

import pytest
import torch

from golden.gemm import gemm_int_exact
from golden.nm_sparse import (
    bdwp_masks,
    compress_nm,
    decompress_nm,
    index_bits,
    nm_gemm_exact,
    nm_mask,
    pack_metadata,
    pack_metadata_2to4_int16,
    prune_nm,
    satisfies_nm,
    transposable_mask,
    unpack_metadata,
)
from golden.sparse_training import BdwpLinear, train, training_step_gemms

NM_PAIRS = [(1, 2), (1, 4), (2, 4), (3, 4), (1, 8), (2, 8), (4, 8), (2, 16), (8, 16),
            (2, 2), (4, 4), (8, 8), (16, 16)]


def _distinct_magnitudes(rows: int, cols: int, seed: int) -> torch.Tensor:
    """int64 [rows, cols] whose magnitudes are a permutation of 1..rows·cols, random signs."""
    gen = torch.Generator().manual_seed(seed)
    mags = torch.randperm(rows * cols, generator=gen) + 1
    signs = torch.randint(0, 2, (rows * cols,), generator=gen) * 2 - 1
    return (mags * signs).reshape(rows, cols)


def _groups(t: torch.Tensor, m: int) -> torch.Tensor:
    """[rows, K] → [rows, G, m], zero-padded (test-side reimplementation)."""
    rows, k = t.shape
    g = -(-k // m)
    out = torch.zeros(rows, g * m, dtype=t.dtype)
    out[:, :k] = t
    return out.reshape(rows, g, m)


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize(("n", "m"), NM_PAIRS)
def test_mask_keeps_the_n_largest_magnitudes(n, m):
    w = _distinct_magnitudes(6, 4 * m, seed=n * 100 + m)
    mask = nm_mask(w, n, m)
    assert mask.dtype == torch.bool and mask.shape == w.shape
    g_mask, g_mag = _groups(mask, m), _groups(w.abs(), m)
    assert (g_mask.sum(-1) == n).all()
    for r in range(w.shape[0]):
        for g in range(g_mask.shape[1]):
            kept = g_mag[r, g][g_mask[r, g]]
            dropped = g_mag[r, g][~g_mask[r, g]]
            want = sorted(g_mag[r, g].tolist(), reverse=True)[:n]
            assert sorted(kept.tolist(), reverse=True) == want
            if dropped.numel():
                assert kept.min() > dropped.max()


def test_mask_hand_examples_and_ties_go_to_the_lower_index():
    w = torch.tensor([[5, -7, 1, 2], [3, -3, 3, 1], [1, 2, 2, 2], [0, 0, 0, 0], [0, 0, 0, -4]])
    assert nm_mask(w, 2, 4).int().tolist() == [
        [1, 1, 0, 0],      # 7 and 5
        [1, 1, 0, 0],      # three 3s: the two lowest indices
        [0, 1, 1, 0],      # three 2s: indices 1 and 2
        [1, 1, 0, 0],      # no non-zeros: slots 0 and 1
        [1, 0, 0, 1],      # one non-zero, then the lowest zero
    ]
    # The same tie rule along dim 0.
    assert nm_mask(w[1:3].T.contiguous(), 2, 4, dim=0).int().T.tolist() == [[1, 1, 0, 0],
                                                                             [0, 1, 1, 0]]
    assert nm_mask(torch.tensor([[-2.5, 2.5]]), 1, 2).tolist() == [[True, False]]


def test_prune_keeps_min_n_nonzeros_per_group():
    gen = torch.Generator().manual_seed(3)
    w = torch.randint(-3, 4, (20, 32), generator=gen)       # plenty of zeros and ties
    for n, m in [(1, 4), (2, 4), (3, 4), (2, 8), (5, 16)]:
        pruned = prune_nm(w, n, m)
        assert pruned.dtype == w.dtype
        nnz = (_groups(w, m) != 0).sum(-1)
        assert torch.equal((_groups(pruned, m) != 0).sum(-1), nnz.clamp(max=n))
        assert satisfies_nm(pruned, n, m) and not satisfies_nm(w, n, m)
        # Everything kept is unchanged, and a kept magnitude never loses to a dropped one.
        kept = pruned != 0
        assert torch.equal(pruned[kept], w[kept])


@pytest.mark.parametrize("dim", [0, 1, -1, -2])
def test_mask_along_any_dim_matches_the_transpose(dim):
    w = torch.randn(12, 10, generator=torch.Generator().manual_seed(dim + 5))
    mask = nm_mask(w, 2, 4, dim=dim)
    if dim in (0, -2):
        assert torch.equal(mask, nm_mask(w.T, 2, 4, dim=-1).T)
        assert satisfies_nm(w * mask, 2, 4, dim=0)
    else:
        assert torch.equal(mask, nm_mask(w.T, 2, 4, dim=0).T)
        assert satisfies_nm(w * mask, 2, 4, dim=1)


def test_k_not_a_multiple_of_m():
    w = torch.tensor([[9, 1, 8, 2, 7, 3, 6, 4, 0, 5],
                      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    # groups: [0:4], [4:8], [8:10] (short: padded with two zeros that are never marked)
    assert nm_mask(w, 2, 4).int().tolist() == [[1, 0, 1, 0, 1, 0, 1, 0, 1, 1],
                                               [0, 0, 1, 1, 0, 0, 1, 1, 1, 1]]
    assert nm_mask(w, 3, 4).sum(1).tolist() == [3 + 3 + 2, 3 + 3 + 2]
    assert satisfies_nm(torch.tensor([[1, 1, 0, 0, 1, 1]]), 2, 4)
    assert not satisfies_nm(torch.tensor([[1, 1, 0, 0, 1, 1, 1]]), 2, 4)
    # 3:4 compression of a short group with 2 real positions uses padding slot 2.
    sparse = torch.tensor([[0, 0, 4, 0, 0, 5]])
    values, indices = compress_nm(sparse, 3, 4)
    assert values.tolist() == [[0, 0, 4, 0, 5, 0]]
    assert indices.tolist() == [[0, 1, 2, 0, 1, 2]]
    assert decompress_nm(values, indices, 3, 4, 6).tolist() == sparse.tolist()


# ---------------------------------------------------------------- compression


@pytest.mark.parametrize(("n", "m"), NM_PAIRS)
@pytest.mark.parametrize("k", [64, 61])
@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.float16, torch.float32])
def test_compress_round_trip(n, m, k, dtype):
    gen = torch.Generator().manual_seed(7 * n + m + k)
    dense = torch.randint(-100, 101, (9, k), generator=gen).to(dtype)
    w = prune_nm(dense, n, m)
    values, indices = compress_nm(w, n, m)
    g = -(-k // m)
    assert values.shape == indices.shape == (9, g * n)
    assert indices.dtype == torch.int64
    assert values.dtype == (dtype if dtype.is_floating_point else torch.int64)
    idx = indices.reshape(9, g, n)
    assert (idx >= 0).all() and (idx < m).all()
    assert (idx[..., 1:] > idx[..., :-1]).all()
    assert torch.equal(decompress_nm(values, indices, n, m, k), w.to(values.dtype))
    # The slots are exactly the mask positions (padding aside), in increasing order.
    slots = torch.zeros(9, g, m, dtype=torch.bool).scatter_(-1, idx, True).reshape(9, -1)[:, :k]
    assert torch.equal(slots, nm_mask(w, n, m))


def test_compress_hand_example():
    w = torch.tensor([[0, -3, 0, 7, 2, 0, 0, 0]])
    values, indices = compress_nm(w, 2, 4)
    assert values.tolist() == [[-3, 7, 2, 0]] and indices.tolist() == [[1, 3, 0, 1]]


def test_compress_refuses_what_it_cannot_represent():
    with pytest.raises(ValueError, match="2:4"):
        compress_nm(torch.tensor([[1, 2, 3, 0]]), 2, 4)
    with pytest.raises(ValueError, match="2:4"):
        compress_nm(torch.tensor([[1, 0, 0, 0, 1, 1, 1]]), 2, 4)   # the short group has 3
    with pytest.raises(ValueError, match="m must be one of"):
        compress_nm(torch.zeros(2, 6), 1, 3)
    with pytest.raises(ValueError, match="n must be"):
        compress_nm(torch.zeros(2, 8), 0, 4)
    with pytest.raises(ValueError, match="n must be"):
        nm_mask(torch.zeros(2, 8), 5, 4)
    with pytest.raises(ValueError, match="2-D"):
        compress_nm(torch.zeros(8), 2, 4)


def test_decompress_refuses_bad_indices():
    values = torch.tensor([[5, 6, 7, 8]])
    ok = decompress_nm(values, torch.tensor([[0, 3, 1, 2]]), 2, 4, 8)
    assert ok.tolist() == [[5, 0, 0, 6, 0, 7, 8, 0]]
    with pytest.raises(ValueError, match="strictly increasing"):
        decompress_nm(values, torch.tensor([[1, 1, 0, 2]]), 2, 4, 8)    # two values on index 1
    with pytest.raises(ValueError, match="strictly increasing"):
        decompress_nm(values, torch.tensor([[3, 0, 0, 2]]), 2, 4, 8)    # out of order
    with pytest.raises(ValueError, match=r"0\.\.3"):
        decompress_nm(values, torch.tensor([[0, 4, 0, 1]]), 2, 4, 8)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        decompress_nm(values, torch.tensor([[-1, 0, 0, 1]]), 2, 4, 8)
    with pytest.raises(ValueError, match="padding"):
        decompress_nm(values, torch.tensor([[0, 1, 1, 2]]), 2, 4, 5)   # 8 lands on column 6


# ---------------------------------------------------------------- metadata


def test_pack_metadata_2to4_hand_example():
    # Groups (0,1), (2,3), (1,3), (0,2): nibbles idx0 | idx1 << 2 = 0x4, 0xE, 0xD, 0x8,
    # first group in the low nibble: bytes 0xE4, 0x8D; as one little-endian int16 0x8DE4.
    indices = torch.tensor([[0, 1, 2, 3, 1, 3, 0, 2]])
    assert pack_metadata(indices, 4).tolist() == [[0xE4, 0x8D]]
    assert pack_metadata(indices, 4).dtype == torch.uint8
    assert pack_metadata_2to4_int16(indices).tolist() == [[0x8DE4 - 0x10000]]
    assert pack_metadata_2to4_int16(indices[:, :4]).tolist() == [[0xE4]]   # zero-bit padding


def test_pack_metadata_other_widths_by_hand():
    assert [index_bits(m) for m in (2, 4, 8, 16)] == [1, 2, 3, 4]
    # m=2, one bit each: bits 0,2,3,7 | 8 → 0x8D, 0x01
    assert pack_metadata(torch.tensor([[1, 0, 1, 1, 0, 0, 0, 1, 1]]), 2).tolist() == [[0x8D, 1]]
    # m=8, three bits each: 1 | 6 << 3 | 7 << 6 = 0x1F1 → 0xF1, 0x01 (crosses a byte)
    assert pack_metadata(torch.tensor([[1, 6, 7]]), 8).tolist() == [[0xF1, 0x01]]
    # m=16, one nibble each
    assert pack_metadata(torch.tensor([[0xA, 0x3, 0xF]]), 16).tolist() == [[0x3A, 0x0F]]


@pytest.mark.parametrize("m", [2, 4, 8, 16])
def test_unpack_metadata_inverts_pack(m):
    gen = torch.Generator().manual_seed(m)
    for count in (1, 7, 8, 13, 32):
        indices = torch.randint(0, m, (5, count), generator=gen)
        packed = pack_metadata(indices, m)
        assert packed.shape == (5, -(-count * index_bits(m) // 8))
        assert torch.equal(unpack_metadata(packed, m, count), indices)
    with pytest.raises(ValueError, match=r"0\.\."):
        pack_metadata(torch.tensor([[m]]), m)


# ---------------------------------------------------------------- exact GEMM


@pytest.mark.parametrize(("n", "m"), [(1, 4), (2, 4), (2, 8), (4, 8), (2, 16), (16, 16)])
@pytest.mark.parametrize("k", [48, 45])
def test_nm_gemm_exact_equals_dense_matmul(n, m, k):
    gen = torch.Generator().manual_seed(n + 31 * m + k)
    a = torch.randint(-32768, 32768, (7, k), generator=gen)
    w = prune_nm(torch.randint(-32768, 32768, (11, k), generator=gen), n, m)
    values, indices = compress_nm(w, n, m)
    got = nm_gemm_exact(a, values, indices, n, m, k)
    assert got.dtype == torch.int64
    assert torch.equal(got, gemm_int_exact(a, w.T))
    want = [[sum(int(a[i, j]) * int(w[r, j]) for j in range(k)) for r in range(11)]
            for i in range(2)]
    assert got[:2].tolist() == want


def test_nm_gemm_exact_refuses_floats_and_bad_shapes():
    values, indices = compress_nm(torch.tensor([[1, 0, 0, 2]]), 2, 4)
    with pytest.raises(ValueError, match="integer"):
        nm_gemm_exact(torch.ones(1, 4), values, indices, 2, 4, 4)
    with pytest.raises(ValueError, match="integer"):
        nm_gemm_exact(torch.ones(1, 4, dtype=torch.int64), values.float(), indices, 2, 4, 4)
    with pytest.raises(ValueError, match="k = 8"):
        nm_gemm_exact(torch.ones(1, 4, dtype=torch.int64), values, indices, 2, 4, 8)


# ---------------------------------------------------------------- BDWP and transposable masks


@pytest.mark.parametrize(("n", "m"), [(2, 4), (2, 8), (1, 4)])
def test_bdwp_masks_run_along_the_right_dims(n, m):
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(m))   # [out, in]
    fwd, bwd = bdwp_masks(w, n, m)
    assert torch.equal(fwd, nm_mask(w, n, m, dim=1))
    assert torch.equal(bwd, nm_mask(w, n, m, dim=0))
    assert satisfies_nm(w * fwd, n, m, dim=1) and satisfies_nm(w * bwd, n, m, dim=0)
    assert (_groups(fwd, m).sum(-1) == n).all()              # exactly n per group of inputs
    assert (_groups(bwd.T, m).sum(-1) == n).all()            # exactly n per group of outputs
    assert not satisfies_nm(w * fwd, n, m, dim=0)            # one mask does not serve both
    assert not satisfies_nm(w * bwd, n, m, dim=1)


def test_transposable_mask_hand_example():
    w = torch.arange(16, 0, -1).reshape(4, 4).float()
    assert transposable_mask(w, 2, 4).int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0],
                                                         [0, 0, 1, 1], [0, 0, 1, 1]]
    # Equal magnitudes: row-major order decides, which gives the same pattern.
    assert transposable_mask(torch.ones(4, 4), 2, 4).int().tolist() == [
        [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]


@pytest.mark.parametrize(("n", "m"), [(1, 2), (2, 4), (1, 4), (2, 8), (4, 8), (4, 16)])
@pytest.mark.parametrize("shape", [(32, 48), (30, 21)])
def test_transposable_mask_is_nm_both_ways(n, m, shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(n * m + shape[1]))
    mask = transposable_mask(w, n, m)
    assert mask.shape == w.shape and mask.dtype == torch.bool
    assert satisfies_nm(w * mask, n, m, dim=0) and satisfies_nm(w * mask, n, m, dim=1)
    assert satisfies_nm(mask, n, m, dim=0) and satisfies_nm(mask, n, m, dim=1)
    # The greedy never does worse than the single largest entry of each block.
    assert mask.sum() >= (-(-shape[0] // m)) * (-(-shape[1] // m))
    # The global maximum is always kept.
    assert mask.flatten()[w.abs().argmax()]


def test_transposable_mask_matches_pytorch_greedy_tile():
    conv = pytest.importorskip("torch.sparse._semi_structured_conversions")
    tile = getattr(conv, "_sparse_semi_structured_tile", None)
    if tile is None:
        pytest.skip("this torch has no _sparse_semi_structured_tile")
    w = torch.randn(16, 24, generator=torch.Generator().manual_seed(11))
    # PyTorch's greedy sorts values (stable, descending); feed it magnitudes.
    theirs = tile(w.abs().clone()) != 0
    assert torch.equal(transposable_mask(w, 2, 4), theirs)


# ---------------------------------------------------------------- PyTorch / CUTLASS 2:4 layout


def _random_2to4(rows: int, cols: int, seed: int, full: bool = True) -> torch.Tensor:
    """fp16 2:4 matrix of small non-zero integers; with full, every group has exactly 2."""
    gen = torch.Generator().manual_seed(seed)
    vals = torch.randint(1, 4, (rows, cols), generator=gen) * (
        torch.randint(0, 2, (rows, cols), generator=gen) * 2 - 1)
    if not full:
        vals = vals * (torch.rand(rows, cols, generator=gen) < 0.6)
    keys = torch.rand(rows, cols, generator=gen)          # random pattern, independent of vals
    return (vals * nm_mask(keys, 2, 4)).to(torch.float16)


def _cutlass_offsets(conv, meta: torch.Tensor) -> torch.Tensor:
    return conv._calculate_meta_reordering_scatter_offsets(
        meta.shape[0], meta.shape[1], meta.dtype, meta.device)


def test_2to4_layout_matches_pytorch_cutlass_conversion_on_cpu():
    conv = pytest.importorskip("torch.sparse._semi_structured_conversions")
    w = _random_2to4(64, 128, seed=1)
    packed, meta_reordered = conv.sparse_semi_structured_from_dense_cutlass(w)
    values, indices = compress_nm(w, 2, 4)
    assert torch.equal(packed, values)
    # Undo CUTLASS's reordering (a gather with its scatter offsets), compare with ours ...
    offsets = _cutlass_offsets(conv, meta_reordered)
    meta = meta_reordered.view(-1).gather(0, offsets).view(meta_reordered.shape)
    ours = pack_metadata_2to4_int16(indices)
    assert meta.dtype == ours.dtype == torch.int16
    assert torch.equal(meta, ours)
    # ... and apply it to ours: PyTorch's own decoder rebuilds the dense matrix.
    ours_reordered = torch.empty_like(ours).view(-1).scatter_(0, offsets, ours.view(-1))
    assert torch.equal(ours_reordered.view(meta_reordered.shape), meta_reordered)
    assert torch.equal(conv.sparse_semi_structured_to_dense_cutlass(values, ours_reordered
                                                                    .view(ours.shape)), w)


def test_2to4_groups_with_fewer_nonzeros_decode_the_same_both_ways():
    # With < 2 non-zeros in a group the two encoders pick different (equally valid) slots: e.g.
    # an all-zero group is (0,1) here and (2,3) in CUTLASS. Each side's data must still decode to
    # the same dense matrix through the other side's decoder.
    conv = pytest.importorskip("torch.sparse._semi_structured_conversions")
    w = _random_2to4(32, 64, seed=2, full=False)
    packed, meta_reordered = conv.sparse_semi_structured_from_dense_cutlass(w)
    offsets = _cutlass_offsets(conv, meta_reordered)
    meta = meta_reordered.view(-1).gather(0, offsets).view(meta_reordered.shape)
    # theirs → our decoder
    meta_bytes = meta.view(-1).view(torch.uint8).view(meta.shape[0], -1)   # little-endian bytes
    their_indices = unpack_metadata(meta_bytes, 4, packed.shape[1])
    assert torch.equal(decompress_nm(packed, their_indices, 2, 4, w.shape[1]), w)
    # ours → their decoder
    values, indices = compress_nm(w, 2, 4)
    ours = pack_metadata_2to4_int16(indices).view(-1)
    reordered = torch.empty_like(ours).scatter_(0, offsets, ours).view(meta.shape)
    assert torch.equal(conv.sparse_semi_structured_to_dense_cutlass(values, reordered), w)
    assert not torch.equal(meta, pack_metadata_2to4_int16(indices))   # the encodings do differ


_NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="to_sparse_semi_structured needs CUDA")


def _gpu_operands() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 64×128 2:4 fp16 weight, a 128×64 dense operand with |entries| ≤ 3, and the exact W·B.

    |sum| ≤ 64·3·3 = 576 < 2048, so every partial sum is an exact fp16 integer and the tensor
    cores must give the exact product.
    """
    w = _random_2to4(64, 128, seed=3)
    b = torch.randint(-3, 4, (128, 64), generator=torch.Generator().manual_seed(4))
    values, indices = compress_nm(w.to(torch.int64), 2, 4)
    exact = nm_gemm_exact(b.T.contiguous(), values, indices, 2, 4, 128).T   # W·B, via our format
    return w, b, exact


@_NEEDS_CUDA
def test_2to4_layout_matches_to_sparse_semi_structured_on_gpu():
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured
    from torch.sparse._semi_structured_conversions import (
        _calculate_meta_reordering_scatter_offsets,
    )

    w, _, _ = _gpu_operands()
    values, indices = compress_nm(w, 2, 4)
    before = SparseSemiStructuredTensor._FORCE_CUTLASS
    SparseSemiStructuredTensor._FORCE_CUTLASS = True          # separate .packed and .meta
    try:
        sparse = to_sparse_semi_structured(w.cuda())
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = before
    assert torch.equal(sparse.packed.cpu(), values)
    offsets = _calculate_meta_reordering_scatter_offsets(64, sparse.meta.shape[1], torch.int16,
                                                         "cpu")
    meta = sparse.meta.cpu().view(-1).gather(0, offsets).view(sparse.meta.shape)
    assert torch.equal(meta, pack_metadata_2to4_int16(indices))


@pytest.mark.skipif(not torch.cuda.is_available()
                    or torch.cuda.get_device_capability()[0] != 8,
                    reason="needs an sm_8x CUDA GPU: the only one PyTorch's CUTLASS 2:4 mm runs on")
def test_our_2to4_metadata_drives_the_cutlass_sparse_mm_on_gpu():
    from torch.sparse._semi_structured_conversions import (
        _calculate_meta_reordering_scatter_offsets,
    )
    from torch.sparse.semi_structured import SparseSemiStructuredTensorCUTLASS

    w, b, exact = _gpu_operands()
    values, indices = compress_nm(w, 2, 4)
    ours = pack_metadata_2to4_int16(indices)
    offsets = _calculate_meta_reordering_scatter_offsets(64, ours.shape[1], torch.int16, "cpu")
    reordered = torch.empty_like(ours).view(-1).scatter_(0, offsets, ours.view(-1))
    sparse = SparseSemiStructuredTensorCUTLASS(
        w.shape, packed=values.cuda(), meta=reordered.view(ours.shape).cuda(), packed_t=None,
        meta_t=None, compressed_swizzled_bitmask=None, requires_grad=False)
    got = torch.mm(sparse, b.to(torch.float16).cuda()).cpu()
    assert torch.equal(got.to(torch.int64), exact)


@_NEEDS_CUDA
def test_sparse_tensor_core_product_matches_nm_gemm_exact_on_gpu():
    from torch.sparse import to_sparse_semi_structured

    w, b, exact = _gpu_operands()
    sparse = to_sparse_semi_structured(w.cuda())              # default backend (cuSPARSELt)
    got = torch.mm(sparse, b.to(torch.float16).cuda()).cpu()
    assert torch.equal(got.to(torch.int64), exact)
    assert torch.equal(sparse.to_dense().cpu(), w)


# ---------------------------------------------------------------- SAT-style training


def test_bdwp_linear_gradients():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    fwd, bwd = bdwp_masks(w.detach(), 2, 4)
    y = BdwpLinear.apply(x, w, b, fwd.double(), bwd.double())
    assert torch.allclose(y, x @ (w * fwd).T + b)
    y.backward(g)
    assert torch.allclose(x.grad, g @ (w.detach() * bwd))            # N:M along out
    assert torch.allclose(w.grad, g.T @ x.detach())                  # dense
    assert torch.allclose(b.grad, g.sum(0))
    assert not torch.allclose(x.grad, g @ (w.detach() * fwd))        # the masks really differ


def test_bdwp_2to4_training_tracks_dense():
    dense = train("dense", 2, 4, steps=300)
    sparse = train("bdwp", 2, 4, steps=300)
    assert dense["test_acc"] > 0.8 and sparse["test_acc"] > 0.8     # chance is 0.1
    assert sparse["test_acc"] >= dense["test_acc"] - 0.05
    assert sparse["final_loss"] < 0.5


@pytest.mark.parametrize(("n", "m"), [(2, 4), (2, 8)])
def test_training_step_gemms_are_exact_and_nm(n, m):
    step = training_step_gemms(n, m, warmup_steps=30)
    x_q, w_fwd_q, g_q, w_bwd_q = (step[k] for k in ("x_q", "w_fwd_q", "g_q", "w_bwd_q"))
    assert x_q.shape == (16, 64) and g_q.shape == (16, 128)
    assert w_fwd_q.shape == w_bwd_q.shape == (128, 64)
    for t in (x_q, w_fwd_q, g_q, w_bwd_q, step["forward"], step["backward"]):
        assert t.dtype == torch.int64
    for t in (x_q, w_fwd_q, g_q, w_bwd_q):
        assert t.abs().max() == 127                          # per-tensor scale hits the peak
    assert satisfies_nm(w_fwd_q, n, m, dim=1) and satisfies_nm(w_bwd_q, n, m, dim=0)
    assert torch.equal(step["forward"], gemm_int_exact(x_q, w_fwd_q.T))
    assert torch.equal(step["backward"], gemm_int_exact(g_q, w_bwd_q))
    # As the RTL sees them: C = A·Wcᵀ with Wc compressed along its last dim.
    wc_fwd, wc_bwd = w_fwd_q, w_bwd_q.T.contiguous()
    assert torch.equal(nm_gemm_exact(x_q, *compress_nm(wc_fwd, n, m), n, m, 64), step["forward"])
    assert torch.equal(nm_gemm_exact(g_q, *compress_nm(wc_bwd, n, m), n, m, 128),
                       step["backward"])

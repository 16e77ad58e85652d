"""A tiny random-weight llama GGUF that llama.cpp's ``llama-server`` can load and run.

Nothing is downloaded: the file is generated with the PyPI ``gguf`` package and numpy (the default
``TINY`` shape in well under a second). It is useless as a language model but exercises the real engine
end to end (tokenizer, chat template, KV cache, sampling, ``timings``, parallel slots), which is what the
cockpit's tests need.

Layout (all 2-D weights F16, norms F32):

* architecture ``llama``; the size is a ``ModelShape``:

  - ``TINY`` (the default, ≈ 1 MB): 2 layers, hidden 128, 4 heads (head dim 32), 4 KV heads, FFN 256 —
    fast enough for unit tests (on one thread llama-server prefills it at ~10 000-50 000 and decodes at
    ~1 000-6 000 tokens/s, slower as the context grows);
  - ``SMALL`` (≈ 116 MB, 58 M params): 8 layers, hidden 768, 12 heads (head dim 64), 12 KV heads, FFN
    2048 — on one CPU thread llama-server prefills ~450-900 tokens/s and decodes ~50-200 tokens/s
    (slower as the context grows), i.e. at the speed of a real model, for benchmarks whose fixed
    per-request overheads (HTTP, templating, tokenizing) would swamp the tiny model's timings. It is
    written in about a second;
* SentencePiece-style vocabulary (``tokenizer.ggml.model = "llama"``): ``<unk>``, ``<s>``, ``</s>``,
  ``<|im_start|>``, ``<|im_end|>``, the 256 byte tokens ``<0x00>``..``<0xFF>``, printable ASCII pieces
  (space written as ``▁``) and every prefix of a list of common English words;
* a ChatML ``tokenizer.chat_template``.

The weights come from ``numpy.random.default_rng(seed)``, so a given ``(seed, never_eos, shape)`` always
produces the same bytes. Tensors are generated one layer at a time and streamed to the file, so memory
stays at about one layer's float32 weights whatever the shape.

Output shaping: the residual stream carries a constant positive "bias" dimension (dimension 0 of every
token embedding is 1.0 and no layer writes to it), so after the final RMS norm that dimension is always
positive. Giving a token's row of ``output.weight`` a large negative value in that dimension pushes its
logit to about -1000 (divided by the residual stream's RMS, which stays of order one for any shape), i.e.
the token is never sampled. That is used to suppress the non-ASCII byte tokens
and the non-EOG control tokens always, and the end-of-generation tokens (``</s>``, ``<|im_end|>``) when
``never_eos`` is true — then every completion runs to exactly ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType

ARCH = "llama"


@dataclass(frozen=True)
class ModelShape:
    """Size of the generated llama: hidden width, layers, attention heads, KV heads, FFN width."""

    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    name: str

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head or self.n_head % self.n_head_kv:
            raise ValueError(f"n_embd must divide into n_head heads, n_head into n_head_kv groups: {self}")
        if min(self.n_embd, self.n_layer, self.n_head, self.n_head_kv, self.n_ff) < 1:
            raise ValueError(f"every dimension must be positive: {self}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def n_embd_kv(self) -> int:
        return self.head_dim * self.n_head_kv

    def n_params(self, n_vocab: int | None = None) -> int:
        """Number of weights in the file (embedding and output included)."""
        v = vocab_size() if n_vocab is None else n_vocab
        e, f, kv = self.n_embd, self.n_ff, self.n_embd_kv
        per_layer = 2 * e + 2 * e * e + 2 * kv * e + 3 * f * e
        return 2 * v * e + e + self.n_layer * per_layer

    def describe(self) -> str:
        return (
            f"{self.n_layer} layers, hidden {self.n_embd}, {self.n_head} heads ({self.n_head_kv} KV), "
            f"FFN {self.n_ff}, {self.n_params() / 1e6:.1f} M params F16"
        )


TINY = ModelShape(n_embd=128, n_layer=2, n_head=4, n_head_kv=4, n_ff=256, name="boocontrol-tiny-llama")
# Measured with llama.cpp llama-server (-t 1 -tb 1) on a 2-vCPU AMD EPYC guest (bench/bench_accuracy.py):
# prefill ~870 / 730 / 530 tok/s and decode ~200 / 115 / 60 tok/s at ~250 / 1 000 / 3 500 prompt tokens.
SMALL = ModelShape(n_embd=768, n_layer=8, n_head=12, n_head_kv=12, n_ff=2048, name="boocontrol-small-llama")
SHAPES = {"tiny": TINY, "small": SMALL}

MODEL_NAME = TINY.name
N_EMBD = TINY.n_embd
N_LAYER = TINY.n_layer
N_HEAD = TINY.n_head
N_HEAD_KV = TINY.n_head_kv
N_FF = TINY.n_ff
N_CTX_TRAIN = 4096
RMS_EPS = 1e-5
ROPE_FREQ_BASE = 10000.0

SPACE = "\u2581"  # SentencePiece's visible space

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
IM_START_ID = 3
IM_END_ID = 4
CONTROL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
EOG_IDS = (EOS_ID, IM_END_ID)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

COMMON_WORDS = (
    "the be to of and a in that have it for not on with he as you do at this but his by from they we say "
    "her she or an will my one all would there their what so up out if about who get which go me when make "
    "can like time no just him know take people into year your good some could them see other than then "
    "now look only come its over think also back after use two how our work first well way even new want "
    "because any these give day most us is are was were hello world model token test llama swap server "
    "request response fleet cockpit assistant user system"
).split()

# Logit offset applied (through the constant residual dimension) to tokens that must never be sampled.
_SUPPRESS = -1000.0


def _vocab() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of the SentencePiece-style vocabulary."""
    tokens: list[str] = []
    types: list[int] = []
    for i, tok in enumerate(CONTROL_TOKENS):
        tokens.append(tok)
        types.append(int(TokenType.UNKNOWN if i == UNK_ID else TokenType.CONTROL))
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(int(TokenType.BYTE))
    seen = set(tokens)
    pieces: list[str] = []

    def add(piece: str) -> None:
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)

    for c in range(0x20, 0x7F):
        add(SPACE if c == 0x20 else chr(c))
    for word in COMMON_WORDS:
        for end in range(2, len(word) + 1):
            add(word[:end])
        for end in range(1, len(word) + 1):
            add(SPACE + word[:end])
    tokens.extend(pieces)
    types.extend([int(TokenType.NORMAL)] * len(pieces))
    # SentencePiece merges pick the candidate with the highest score: prefer longer pieces, then earlier.
    scores = [0.0] * (len(CONTROL_TOKENS) + 256)
    scores += [float(len(p)) - i / 10000.0 for i, p in enumerate(pieces)]
    return tokens, scores, types


def vocab_size() -> int:
    return len(_vocab()[0])


def _suppressed_ids(never_eos: bool) -> list[int]:
    """Tokens whose logit is pushed to about -1000: non-EOG control tokens, non-ASCII and control bytes
    (except newline), and the end-of-generation tokens when ``never_eos``."""
    ids = [UNK_ID, BOS_ID, IM_START_ID]
    ids += [len(CONTROL_TOKENS) + b for b in range(256) if b >= 0x80 or (b < 0x20 and b != 0x0A)]
    if never_eos:
        ids += list(EOG_IDS)
    return ids


def _tensor_shapes(shape: ModelShape, n_vocab: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in file order.

    numpy shape (rows, cols) is stored as ggml ne = (cols, rows), i.e. what llama.cpp calls {n_in, n_out}.
    """
    e, f, kv = shape.n_embd, shape.n_ff, shape.n_embd_kv
    yield "token_embd.weight", (n_vocab, e)
    for i in range(shape.n_layer):
        for name, dims in (
            ("attn_norm", (e,)),
            ("attn_q", (e, e)),
            ("attn_k", (kv, e)),
            ("attn_v", (kv, e)),
            ("attn_output", (e, e)),
            ("ffn_norm", (e,)),
            ("ffn_gate", (f, e)),
            ("ffn_up", (f, e)),
            ("ffn_down", (e, f)),
        ):
            yield f"blk.{i}.{name}.weight", dims
    yield "output_norm.weight", (e,)
    yield "output.weight", (n_vocab, e)


def _tensors(shape: ModelShape, n_vocab: int, seed: int, never_eos: bool) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor (F16 matrices, F32 norms), in file order, generated one layer at a time.

    The draws from the generator happen in a fixed order (embedding; per layer wo, down, q, k, v, gate,
    up; output), which is what keeps the bytes of a given seed stable.
    """
    rng = np.random.default_rng(seed)
    e, f, kv = shape.n_embd, shape.n_ff, shape.n_embd_kv

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    def f16(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float16)

    tok_embd = mat(n_vocab, e, 1.0)
    tok_embd[:, 0] = 1.0  # the constant "bias" dimension
    yield "token_embd.weight", f16(tok_embd)
    del tok_embd

    for i in range(shape.n_layer):
        wo = mat(e, e, 0.5 / np.sqrt(e))
        wo[0, :] = 0.0  # nothing writes to the bias dimension ...
        down = mat(e, f, 0.5 / np.sqrt(f))
        down[0, :] = 0.0  # ... so it stays exactly 1.0 in the residual stream
        q = mat(e, e, 1.0 / np.sqrt(e))
        k = mat(kv, e, 1.0 / np.sqrt(e))
        v = mat(kv, e, 1.0 / np.sqrt(e))
        gate = mat(f, e, 1.0 / np.sqrt(e))
        up = mat(f, e, 1.0 / np.sqrt(e))
        yield f"blk.{i}.attn_norm.weight", np.ones(e, dtype=np.float32)
        yield f"blk.{i}.attn_q.weight", f16(q)
        yield f"blk.{i}.attn_k.weight", f16(k)
        yield f"blk.{i}.attn_v.weight", f16(v)
        yield f"blk.{i}.attn_output.weight", f16(wo)
        yield f"blk.{i}.ffn_norm.weight", np.ones(e, dtype=np.float32)
        yield f"blk.{i}.ffn_gate.weight", f16(gate)
        yield f"blk.{i}.ffn_up.weight", f16(up)
        yield f"blk.{i}.ffn_down.weight", f16(down)
        del wo, down, q, k, v, gate, up

    output = mat(n_vocab, e, 2.0 / np.sqrt(e))
    output[:, 0] = 0.0
    output[_suppressed_ids(never_eos), 0] = _SUPPRESS
    yield "output_norm.weight", np.ones(e, dtype=np.float32)
    yield "output.weight", f16(output)


def write_tiny_gguf(path: Path, seed: int = 0, never_eos: bool = True, shape: ModelShape = TINY) -> Path:
    """Write the random-weight llama GGUF of ``shape`` to ``path`` (parents are created); return ``path``.

    The file is byte-identical for equal ``(seed, never_eos, shape)`` and differs across seeds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)

    w = GGUFWriter(path, ARCH)
    w.add_name(shape.name)
    desc = f"random-weight test model, seed={seed}, never_eos={never_eos}"
    if shape != TINY:
        desc += f", {shape.describe()}"
    w.add_description(desc)
    w.add_file_type(int(LlamaFileType.MOSTLY_F16))
    w.add_vocab_size(n_vocab)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_rope_dimension_count(shape.head_dim)
    w.add_rope_freq_base(ROPE_FREQ_BASE)
    w.add_layer_norm_rms_eps(RMS_EPS)

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(UNK_ID)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_eot_token_id(IM_END_ID)
    w.add_pad_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(CHATML_TEMPLATE)

    # Declare every tensor first, then stream the data: only one layer is ever held in memory.
    for name, dims in _tensor_shapes(shape, n_vocab):
        dtype = np.dtype(np.float32 if len(dims) == 1 else np.float16)
        w.add_tensor_info(name, dims, dtype, int(np.prod(dims)) * dtype.itemsize)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for (name, arr), (want, dims) in zip(
            _tensors(shape, n_vocab, seed, never_eos), _tensor_shapes(shape, n_vocab), strict=True
        ):
            assert name == want and arr.shape == dims, (name, want, arr.shape, dims)
            w.write_tensor_data(arr)
    finally:
        w.close()
    return path

"""A tiny random-weight llama GGUF that llama.cpp's ``llama-server`` can load and run.

Nothing is downloaded: the file is generated with the PyPI ``gguf`` package and numpy in well under a
second. It is useless as a language model but exercises the real engine end to end (tokenizer, chat
template, KV cache, sampling, ``timings``, parallel slots), which is what the cockpit's tests need.

Layout (≈ 1 MB, all 2-D weights F16, norms F32):

* architecture ``llama``, 2 layers, hidden 128, 4 heads (head dim 32), 4 KV heads, FFN 256;
* SentencePiece-style vocabulary (``tokenizer.ggml.model = "llama"``): ``<unk>``, ``<s>``, ``</s>``,
  ``<|im_start|>``, ``<|im_end|>``, the 256 byte tokens ``<0x00>``..``<0xFF>``, printable ASCII pieces
  (space written as ``▁``) and every prefix of a list of common English words;
* a ChatML ``tokenizer.chat_template``.

The weights come from ``numpy.random.default_rng(seed)``, so a given seed always produces the same bytes.

Output shaping: the residual stream carries a constant positive "bias" dimension (dimension 0 of every
token embedding is 1.0 and no layer writes to it), so after the final RMS norm that dimension is always
positive. Giving a token's row of ``output.weight`` a large negative value in that dimension pushes its
logit to about -1000, i.e. the token is never sampled. That is used to suppress the non-ASCII byte tokens
and the non-EOG control tokens always, and the end-of-generation tokens (``</s>``, ``<|im_end|>``) when
``never_eos`` is true — then every completion runs to exactly ``max_tokens``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType

ARCH = "llama"
MODEL_NAME = "boocontrol-tiny-llama"

N_EMBD = 128
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 256
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


def write_tiny_gguf(path: Path, seed: int = 0, never_eos: bool = True) -> Path:
    """Write the tiny llama GGUF to ``path`` (parents are created) and return ``path``.

    The file is byte-identical for equal ``(seed, never_eos)`` and differs across seeds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    head_dim = N_EMBD // N_HEAD
    n_embd_kv = head_dim * N_HEAD_KV

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    # numpy shape (rows, cols) is stored as ggml ne = (cols, rows), i.e. what llama.cpp calls {n_in, n_out}.
    tok_embd = mat(n_vocab, N_EMBD, 1.0)
    tok_embd[:, 0] = 1.0  # the constant "bias" dimension

    layers: list[dict[str, np.ndarray]] = []
    for _ in range(N_LAYER):
        wo = mat(N_EMBD, N_EMBD, 0.5 / np.sqrt(N_EMBD))
        wo[0, :] = 0.0  # nothing writes to the bias dimension ...
        down = mat(N_EMBD, N_FF, 0.5 / np.sqrt(N_FF))
        down[0, :] = 0.0  # ... so it stays exactly 1.0 in the residual stream
        layers.append(
            {
                "attn_norm": np.ones(N_EMBD, dtype=np.float32),
                "attn_q": mat(N_EMBD, N_EMBD, 1.0 / np.sqrt(N_EMBD)),
                "attn_k": mat(n_embd_kv, N_EMBD, 1.0 / np.sqrt(N_EMBD)),
                "attn_v": mat(n_embd_kv, N_EMBD, 1.0 / np.sqrt(N_EMBD)),
                "attn_output": wo,
                "ffn_norm": np.ones(N_EMBD, dtype=np.float32),
                "ffn_gate": mat(N_FF, N_EMBD, 1.0 / np.sqrt(N_EMBD)),
                "ffn_up": mat(N_FF, N_EMBD, 1.0 / np.sqrt(N_EMBD)),
                "ffn_down": down,
            }
        )

    output = mat(n_vocab, N_EMBD, 2.0 / np.sqrt(N_EMBD))
    output[:, 0] = 0.0
    suppressed = [UNK_ID, BOS_ID, IM_START_ID]
    suppressed += [len(CONTROL_TOKENS) + b for b in range(256) if b >= 0x80 or (b < 0x20 and b != 0x0A)]
    if never_eos:
        suppressed += list(EOG_IDS)
    output[suppressed, 0] = _SUPPRESS

    w = GGUFWriter(path, ARCH)
    w.add_name(MODEL_NAME)
    w.add_description(f"random-weight test model, seed={seed}, never_eos={never_eos}")
    w.add_file_type(int(LlamaFileType.MOSTLY_F16))
    w.add_vocab_size(n_vocab)
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(head_dim)
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

    def f16(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float16)

    w.add_tensor("token_embd.weight", f16(tok_embd), raw_dtype=GGMLQuantizationType.F16)
    for i, layer in enumerate(layers):
        for name, arr in layer.items():
            arr = arr if arr.ndim == 1 else f16(arr)
            w.add_tensor(f"blk.{i}.{name}.weight", arr)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", f16(output))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path

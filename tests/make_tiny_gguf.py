"""Write a tiny llama-architecture model with random weights to a GGUF file, for llama.cpp.

No model weights can be fetched here, and the tests of llama.cpp's servers need none that make
sense: what they test is the protocol (streaming framing, usage, finish reasons, errors), not
the words. So this writes the smallest model llama.cpp loads as a real one, with the GGUF writer
llama.cpp itself uses (PyPI's ``gguf``; run it with ``.venv-llama``'s interpreter, which has
``gguf`` and numpy):

- 2 layers, width 64, 4 heads, a 128-wide feed-forward layer, a context of 1024 tokens;
- a SentencePiece-style ("llama") vocabulary llama.cpp's tokenizer accepts: ``<unk>``, ``<s>``
  and ``</s>``, the 256 byte-fallback tokens (so any text tokenizes), then single characters and
  a few short words, each piece its own token;
- a ChatML chat template, so both servers format messages the same documented way.

The weights come from a fixed seed, so the same file comes out every time (about 0.5 MB).
The replies are gibberish, but readable gibberish: every token embedding has one large constant
coordinate that survives the final RMS norm, and the output matrix's column for it acts as a
bias that keeps the model from ever choosing ``</s>``, a byte token or a control token. A reply
therefore runs until ``max_tokens`` or the context is full, as plain ASCII words, which is what
tests of cutting and interrupting a stream need.

Usage: ``python tests/make_tiny_gguf.py OUT.gguf``
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np

SEED = 20240601
N_LAYERS = 2
N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_CTX_TRAIN = 1024
RMS_EPS = 1e-5
NAME = "nbchat-tiny-llama"

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_CHARACTERS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-()[]{}<>|/=+*_#"
)
_WORDS = ["the", "data", "mean", "model", "table", "row", "value", "plot", "sum", "and", "of"]
_SPACE = "\u2581"  # SentencePiece's word-start mark


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, their scores and their types, in id order (ids 0-2: unk, bos, eos)."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{byte:02X}>" for byte in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = [_SPACE if ch == " " else ch for ch in _CHARACTERS]
    pieces += [_SPACE + word for word in _WORDS]
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    # Longer pieces score higher, so the tokenizer prefers a whole word to its letters.
    scores = [0.0] * (3 + 256) + [float(len(piece)) for piece in pieces]
    return tokens, scores, [int(kind) for kind in types]


def weights(n_vocab: int, speakable: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)

    def normal(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    embeddings = normal(n_vocab, N_EMBD, scale=0.5)
    embeddings[:, 0] = 8.0  # the constant coordinate the output "bias" reads
    output = normal(n_vocab, N_EMBD, scale=1.0)
    output[:, 0] = np.where(speakable, 0.0, -100.0)  # never </s>, a byte or a control token
    tensors: dict[str, np.ndarray] = {
        "token_embd.weight": embeddings,
        "output_norm.weight": np.ones(N_EMBD, dtype=np.float32),
        "output.weight": output,
    }
    for layer in range(N_LAYERS):
        block = f"blk.{layer}"
        tensors |= {
            f"{block}.attn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
            f"{block}.attn_q.weight": normal(N_EMBD, N_EMBD),
            f"{block}.attn_k.weight": normal(N_EMBD, N_EMBD),
            f"{block}.attn_v.weight": normal(N_EMBD, N_EMBD),
            f"{block}.attn_output.weight": normal(N_EMBD, N_EMBD),
            f"{block}.ffn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
            f"{block}.ffn_gate.weight": normal(N_FF, N_EMBD),
            f"{block}.ffn_up.weight": normal(N_FF, N_EMBD),
            f"{block}.ffn_down.weight": normal(N_EMBD, N_FF),
        }
    return tensors


def write(path: Path) -> Path:
    tokens, scores, types = vocabulary()
    speakable = np.array([kind == gguf.TokenType.NORMAL for kind in types])
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(NAME)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHATML)
    for name, tensor in weights(len(tokens), speakable).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_gguf.py OUT.gguf")
    write(Path(sys.argv[1]))

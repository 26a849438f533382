"""A tiny llama GGUF for the llm_chat tests: 2 layers, random weights, a byte-fallback SentencePiece vocabulary.

It loads in milliseconds and answers with random tokens: what the tests check is the plumbing (tokens streamed,
final answers, history kept within the context), not what it says."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["tiny_llama_bytes", "write_tiny_llama"]

N_EMBD = 64
N_LAYER = 2
WORDS = ["▁the", "▁light", "▁is", "▁on", "▁off", "▁kitchen", "▁hello", "▁yes", "▁no", "▁what", "▁time",
         *[f"▁{c}" for c in "abcdefghijklmnopqrstuvwxyz"], *list("abcdefghijklmnopqrstuvwxyz"), "▁", ".", ",", "?"]
assert len(set(WORDS)) == len(WORDS)  # llama.cpp aborts the process on a vocabulary with a token twice


def write_tiny_llama(path: Path, *, context_length: int = 512, seed: int = 0, words: list[str] | None = None,
                     embd: int = N_EMBD, layers: int = N_LAYER, steady: bool = False) -> Path:
    """``words``: the vocabulary's words (a malformed file: one of them twice); ``embd``, ``layers``: its size
    (heads of 16 dimensions, a feed-forward twice as wide); ``steady``: it never picks the end-of-answer token
    nor a byte token (its answers run to the length asked, in whole characters: what a benchmark needs)."""
    import gguf

    heads, ff = embd // 16, 2 * embd
    words = WORDS if words is None else words
    rng = np.random.default_rng(seed)
    tokens = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], *words]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL,
             *[gguf.TokenType.BYTE] * 256, *[gguf.TokenType.NORMAL] * len(words)]
    scores = [0.0, 0.0, 0.0, *[0.0] * 256, *[-float(i) for i in range(len(words))]]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny test llama")
    writer.add_context_length(context_length)
    writer.add_embedding_length(embd)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(16)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    n_vocab = len(tokens)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    embeddings, output = weight(n_vocab, embd), weight(n_vocab, embd)
    if steady:  # every embedding leans one way (dimension 0), and the tokens to avoid point the other way
        embeddings[:, 0] = 1.0
        output[:, 0] = 0.0
        output[[2, *range(3, 3 + 256)], 0] = -1.0
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(embd, np.float32))
    writer.add_tensor("output.weight", output)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(embd, embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(embd, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ff, embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(ff, embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(embd, ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@functools.cache
def tiny_llama_bytes() -> bytes:
    """The file :func:`write_tiny_llama` writes (context 512, seed 0), as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        return write_tiny_llama(Path(folder) / "tiny.gguf").read_bytes()

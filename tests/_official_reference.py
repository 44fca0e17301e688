"""Independent NumPy (float64) reference of the official TRM forward pass, on an official-format state dict.

Written from SamsungSAILMontreal/TinyRecursiveModels (models/layers.py, models/sparse_embedding.py,
models/recursive_reasoning/trm.py: TinyRecursiveReasoningModel_ACTV1_Inner) without using trm_jax:

- keys as the official module tree names them (`embed_tokens.embedding_weight`, `lm_head.weight`,
  `q_head.weight`/`.bias`, `puzzle_emb.weights` (CastedSparseEmbedding's persistent buffer),
  `embed_pos.embedding_weight`, `H_init`, `L_init`, `L_level.layers.{i}.self_attn.qkv_proj.weight`,
  `.self_attn.o_proj.weight`, `.mlp_t.gate_up_proj.weight`, `.mlp_t.down_proj.weight`,
  `.mlp.gate_up_proj.weight`, `.mlp.down_proj.weight`), optionally prefixed `_orig_mod.model.inner.`;
- torch Linear weights are [out, in] and compute x @ W.T.

Also `random_official_state_dict(arch)`: random weights of the right official shapes (torch tensors).
"""

from __future__ import annotations

import math

import numpy as np

PREFIXES = ("_orig_mod.model.inner.", "model.inner.")


def _find_multiple(a, b):
    return (-(a // -b)) * b


def swiglu_width(hidden, expansion):
    return _find_multiple(round(expansion * hidden * 2 / 3), 256)  # official layers.SwiGLU


def prefix_len(arch):
    ndim, plen, hidden = arch.get("puzzle_emb_ndim", 0), arch.get("puzzle_emb_len", 16), arch["hidden_size"]
    if ndim == 0:
        return 0  # the official model only runs with no prefix when it has no puzzle embedding
    return -(ndim // -hidden) if plen == 0 else plen


def strip(sd):
    out = {}
    for k, v in sd.items():
        for p in PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = np.asarray(v.detach().float().numpy() if hasattr(v, "detach") else v, np.float64)
    return out


def rms_norm(x, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def silu(x):
    return x / (1.0 + np.exp(-x))


def swiglu(x, gate_up, down):
    gu = x @ gate_up.T
    gate, up = np.split(gu, 2, axis=-1)
    return (silu(gate) * up) @ down.T


def rope(x, theta):
    """x: [B, S, H, hd]; rotate-half (official apply_rotary_pos_emb with RotaryEmbedding cos/sin)."""
    S, hd = x.shape[1], x.shape[-1]
    inv = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    freqs = np.outer(np.arange(S, dtype=np.float64), inv)
    emb = np.concatenate([freqs, freqs], -1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rot * sin


def attention(x, qkv_w, o_w, heads, use_rope, theta):
    B, S, D = x.shape
    hd = D // heads
    qkv = (x @ qkv_w.T).reshape(B, S, 3 * heads, hd)
    q, k, v = qkv[:, :, :heads], qkv[:, :, heads:2 * heads], qkv[:, :, 2 * heads:]
    if use_rope:
        q, k = rope(q, theta), rope(k, theta)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    scores = scores - scores.max(-1, keepdims=True)
    w = np.exp(scores)
    w = w / w.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", w, v).reshape(B, S, D)
    return out @ o_w.T


def block(sd, i, h, arch):
    eps = arch.get("rms_norm_eps", 1e-5)
    p = f"L_level.layers.{i}."
    if arch.get("mlp_t", False):
        t = h.transpose(0, 2, 1)
        t = rms_norm(t + swiglu(t, sd[p + "mlp_t.gate_up_proj.weight"], sd[p + "mlp_t.down_proj.weight"]), eps)
        h = t.transpose(0, 2, 1)
    else:
        a = attention(h, sd[p + "self_attn.qkv_proj.weight"], sd[p + "self_attn.o_proj.weight"], arch["num_heads"],
                      arch.get("pos_encodings", "rope") == "rope", arch.get("rope_theta", 10000.0))
        h = rms_norm(h + a, eps)
    return rms_norm(h + swiglu(h, sd[p + "mlp.gate_up_proj.weight"], sd[p + "mlp.down_proj.weight"]), eps)


def l_level(sd, h, injection, arch):
    h = h + injection
    for i in range(arch["L_layers"]):
        h = block(sd, i, h, arch)
    return h


def input_embeddings(sd, arch, inputs, puzzle_ids):
    D = arch["hidden_size"]
    emb = sd["embed_tokens.embedding_weight"][inputs]
    P = prefix_len(arch)
    if arch.get("puzzle_emb_ndim", 0) > 0:
        pe = sd["puzzle_emb.weights"][puzzle_ids]
        pad = P * D - pe.shape[-1]
        if pad > 0:
            pe = np.pad(pe, ((0, 0), (0, pad)))
        emb = np.concatenate([pe.reshape(-1, P, D), emb], axis=-2)
    if arch.get("pos_encodings", "rope") == "learned":
        emb = 0.707106781 * (emb + sd["embed_pos.embedding_weight"])
    return math.sqrt(D) * emb


def initial_carry(sd, arch, batch, seq_len):
    S = seq_len + prefix_len(arch)
    shape = (batch, S, arch["hidden_size"])
    return np.broadcast_to(sd["H_init"], shape).copy(), np.broadcast_to(sd["L_init"], shape).copy()


def inner_forward(state_dict, arch, carry, inputs, puzzle_ids):
    """One official inner forward (one supervision step): returns ((z_H, z_L), logits, q_halt, q_continue)."""
    sd = strip(state_dict)
    x = input_embeddings(sd, arch, np.asarray(inputs), np.asarray(puzzle_ids))
    z_H, z_L = carry
    for _ in range(arch["H_cycles"]):
        for _ in range(arch["L_cycles"]):
            z_L = l_level(sd, z_L, z_H + x, arch)
        z_H = l_level(sd, z_H, z_L, arch)
    logits = (z_H @ sd["lm_head.weight"].T)[:, prefix_len(arch):]
    q = z_H[:, 0] @ sd["q_head.weight"].T + sd["q_head.bias"]
    return (z_H, z_L), logits, q[..., 0], q[..., 1]


def official_shapes(arch, seq_len, vocab, num_ids):
    """{official key: shape} of the inner model's state dict."""
    D, P = arch["hidden_size"], prefix_len(arch)
    inter = swiglu_width(D, arch["expansion"])
    shapes = {"embed_tokens.embedding_weight": (vocab, D), "lm_head.weight": (vocab, D), "q_head.weight": (2, D),
              "q_head.bias": (2,), "H_init": (D,), "L_init": (D,)}
    if arch.get("puzzle_emb_ndim", 0) > 0:
        shapes["puzzle_emb.weights"] = (num_ids, arch["puzzle_emb_ndim"])
    if arch.get("pos_encodings", "rope") == "learned":
        shapes["embed_pos.embedding_weight"] = (seq_len + P, D)
    for i in range(arch["L_layers"]):
        p = f"L_level.layers.{i}."
        if arch.get("mlp_t", False):
            S = seq_len + P
            inter_t = swiglu_width(S, arch["expansion"])
            shapes[p + "mlp_t.gate_up_proj.weight"] = (2 * inter_t, S)
            shapes[p + "mlp_t.down_proj.weight"] = (S, inter_t)
        else:
            shapes[p + "self_attn.qkv_proj.weight"] = (3 * D, D)
            shapes[p + "self_attn.o_proj.weight"] = (D, D)
        shapes[p + "mlp.gate_up_proj.weight"] = (2 * inter, D)
        shapes[p + "mlp.down_proj.weight"] = (D, inter)
    return shapes


def random_official_state_dict(arch, seq_len, vocab, num_ids, seed=0, prefix="_orig_mod.model.inner.",
                               dtype=None):
    """Random torch tensors of the official shapes; std as the official init (1/sqrt(fan_in)) except the
    q_head, made non-zero so halting logits vary, and the puzzle table, made non-zero so it matters."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_shapes(arch, seq_len, vocab, num_ids).items():
        if k in ("H_init", "L_init", "puzzle_emb.weights", "q_head.bias"):
            std = 1.0
        elif k.startswith("embed_"):
            std = 1.0 / math.sqrt(arch["hidden_size"])
        else:
            std = 1.0 / math.sqrt(shape[-1])
        t = torch.randn(shape, generator=g) * std
        sd[prefix + k] = t if dtype is None else t.to(dtype)
    return sd

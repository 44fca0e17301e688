"""The benchmark's PyTorch side: the PyPI `tiny-recursive-model` with its MLP-mixer, or with the
trm_jax transformer network written in PyTorch (the PyPI package ships only the mixer), its training
step, and the converter of that transformer's weights to trm_jax params. torch is imported only when
a function here runs."""

from __future__ import annotations

import numpy as np

from benchmarks.harness import BenchConfig


def torch_transformer_network(bc: BenchConfig):
    """The transformer network of trm_jax (post-norm RMSNorm, SwiGLU, RoPE, non-causal attention,
    no biases) written in PyTorch, so both frameworks run the same architecture. The PyPI package
    ships only the MLP-mixer network."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from trm_jax.models.transformer import rope_tables, swiglu_hidden

    dim, heads = bc.dim, bc.heads
    head_dim, hidden = dim // heads, swiglu_hidden(dim, 4.0)
    cos, sin = (torch.tensor(np.asarray(t)) for t in rope_tables(bc.seq_len, head_dim, 10000.0))

    def rope(x):  # x: [b, h, l, hd]
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
            self.out = nn.Linear(dim, dim, bias=False)
            self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
            self.down = nn.Linear(hidden, dim, bias=False)

        def forward(self, h):
            b, l, _ = h.shape
            q, k, v = self.qkv(h).view(b, l, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(rope(q), rope(k), v)
            h = F.rms_norm(h + self.out(a.transpose(1, 2).reshape(b, l, dim)), (dim,), eps=1e-5)
            gate, up = self.gate_up(h).chunk(2, -1)
            return F.rms_norm(h + self.down(F.silu(gate) * up), (dim,), eps=1e-5)

    return nn.Sequential(*[Block() for _ in range(bc.depth)])


def transformer_params_from_torch(sd, bc: BenchConfig) -> dict:
    """Weights of `torch_transformer_network` inside a torch TinyRecursiveModel -> trm_jax params."""

    g = lambda k: np.asarray(sd[k].detach().cpu().numpy(), np.float32)  # noqa: E731
    net = {}
    for i in range(bc.depth):
        net[f"block{i}_attention"] = {"qkv": {"kernel": g(f"network.{i}.qkv.weight").T},
                                      "out": {"kernel": g(f"network.{i}.out.weight").T}}
        net[f"block{i}_mlp"] = {"gate_up": {"kernel": g(f"network.{i}.gate_up.weight").T},
                                "down": {"kernel": g(f"network.{i}.down.weight").T}}
    return {"input_embed": {"embedding": g("input_embed.weight")}, "output_init_embed": g("output_init_embed"),
            "latent_init_embed": g("latent_init_embed"), "network": net,
            "to_pred": {"kernel": g("to_pred.weight").T}, "to_halt_pred": {"kernel": g("to_halt_pred.1.weight").T}}


def build_torch(bc: BenchConfig):
    """(model, optimizer, seq, labels) with the lucidrains TinyRecursiveModel."""
    import tiny_recursive_model as trm_pt
    import torch

    torch.manual_seed(0)
    if bc.network == "mixer":
        network = trm_pt.MLPMixer1D(dim=bc.dim, depth=bc.depth, seq_len=bc.seq_len)
    else:
        network = torch_transformer_network(bc)
    model = trm_pt.TinyRecursiveModel(dim=bc.dim, num_tokens=bc.num_tokens, network=network,
                                      num_refinement_blocks=bc.num_refinement_blocks,
                                      num_latent_refinements=bc.num_latent_refinements)
    opt = torch.optim.AdamW(model.parameters(), lr=bc.learning_rate, weight_decay=bc.weight_decay)
    rng = np.random.RandomState(0)
    seq = torch.tensor(rng.randint(0, bc.num_tokens, (bc.batch_size, bc.seq_len)))
    labels = torch.tensor(rng.randint(0, bc.num_tokens, (bc.batch_size, bc.seq_len)))
    return model, opt, seq, labels


def torch_train_step(model, opt, seq, labels, y, z):
    loss, _, y, z, _, _ = model(seq, y, z, labels=labels)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return y, z

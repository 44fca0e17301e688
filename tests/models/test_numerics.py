"""The optimised model paths compute what the plain ones do: the sequence-first mixer, the token-mixing
custom VJP, the one-pass exact GELU (PyTorch's values and gradients), and every remat policy (same
gradients, no more memory than keeping everything)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trm_jax.config import ModelConfig
from trm_jax.models import MLPMixer1D, compute_loss, init_params, initial_carry, make_model, supervision_step
from trm_jax.models.layers import gelu_exact
from trm_jax.models.mixer import mix_seq


def test_sequence_first_mixer_equals_batch_first():
    mixer = MLPMixer1D(dim=16, depth=2, seq_len=5)
    h = jax.random.normal(jax.random.key(1), (3, 5, 16))
    params = mixer.init(jax.random.key(0), h)
    out = mixer.apply(params, h)
    out_sf = mixer.apply(params, h.transpose(1, 0, 2), seq_first=True)
    np.testing.assert_allclose(out_sf.transpose(1, 0, 2), out, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="seq_first"):
        mixer.apply(params, h, seq_first=True)


def test_token_mixing_vjp_matches_einsum():
    w = jax.random.normal(jax.random.key(0), (5, 7))
    h = jax.random.normal(jax.random.key(1), (5, 3, 4))
    ref = lambda w, h: jnp.einsum("nh,nbd->hbd", w, h)  # noqa: E731
    np.testing.assert_allclose(mix_seq(w, h), ref(w, h), rtol=1e-6)
    g = jax.random.normal(jax.random.key(2), (7, 3, 4))
    ours = jax.vjp(mix_seq, w, h)[1](g)
    theirs = jax.vjp(ref, w, h)[1](g)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gelu_exact_matches_torch_value_and_gradient():
    torch = pytest.importorskip("torch")
    x = np.linspace(-10, 10, 2001, dtype=np.float32)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(tx).sum().backward()
    np.testing.assert_allclose(gelu_exact(jnp.asarray(x)), torch.nn.functional.gelu(torch.tensor(x)).numpy(),
                               atol=2e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(gelu_exact))(jnp.asarray(x)), tx.grad.numpy(), atol=2e-6)


def _grads_and_temp(cfg):
    seq, vocab, batch = 6, 7, 3
    model = make_model(cfg, vocab, seq)
    params = init_params(model, jax.random.key(0))
    toks = jnp.asarray(np.random.RandomState(0).randint(0, vocab, (batch, seq)), jnp.int32)
    carry = initial_carry(model, params, batch)

    def loss(p):
        out = supervision_step(model, p, toks, carry)
        return compute_loss(out.logits, out.halt_logits, toks)[0].sum()

    fn = jax.jit(jax.grad(loss))
    temp = fn.lower(params).compile().memory_analysis().temp_size_in_bytes
    return fn(params), temp


@pytest.mark.parametrize("network", ["mixer", "transformer"])
def test_remat_modes_give_the_same_gradients(network):
    base = ModelConfig(network=network, dim=16, depth=1, num_heads=2, num_refinement_blocks=2,
                       num_latent_refinements=2)
    ref, temp_none = _grads_and_temp(dataclasses.replace(base, remat="none"))
    for mode in ("auto", "dots", "full"):
        g, temp = _grads_and_temp(dataclasses.replace(base, remat=mode))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g, ref)
        assert temp <= temp_none, (mode, temp, temp_none)

"""The trm_jax training step the model benchmark times: one supervision step (forward, backward,
AdamW with PyTorch's defaults), jitted with donated params, optimizer state and carry."""

from __future__ import annotations

from benchmarks.config import BenchConfig, model_config
from benchmarks.torch_reference import transformer_params_from_torch


def build_jax(bc: BenchConfig, torch_state_dict=None, lr: float = 1e-4):
    """(model, params, opt_state, step_fn, tokens, labels, carry); step_fn is jitted with donation."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from trm_jax.models import (compute_loss, from_torch_state_dict, init_params, initial_carry, make_model,
                                supervision_step)

    model = make_model(model_config(bc), bc.vocab, bc.seq_len)
    if torch_state_dict is not None and bc.network == "mixer":
        params = jax.tree.map(jnp.asarray, from_torch_state_dict(torch_state_dict))
    elif torch_state_dict is not None:
        params = jax.tree.map(jnp.asarray, transformer_params_from_torch(torch_state_dict, bc))
    else:
        params = init_params(model, jax.random.key(0))
    # torch.optim.AdamW defaults except the learning rate
    tx = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01)
    opt_state = tx.init(params)

    def train_step(params, opt_state, carry, tokens, labels):
        def loss_fn(p):
            out = supervision_step(model, p, tokens, carry)
            loss, _ = compute_loss(out.logits, out.halt_logits, labels)
            return loss.sum(), out.carry  # the reference sums the per-sample losses

        (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_carry, loss

    rng = np.random.RandomState(0)
    tokens = jnp.asarray(rng.randint(0, bc.vocab, (bc.batch, bc.seq_len)), jnp.int32)
    labels = jnp.asarray(rng.randint(0, bc.vocab, (bc.batch, bc.seq_len)), jnp.int32)
    carry = initial_carry(model, params, bc.batch)
    step = jax.jit(train_step, donate_argnums=(0, 1, 2))
    return model, params, opt_state, step, tokens, labels, carry

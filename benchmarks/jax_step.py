"""The trm_jax training step the model benchmark times: one supervision step (forward, backward,
AdamW with PyTorch's defaults), jitted with donated params, optimizer state and carry."""

from __future__ import annotations

from benchmarks.harness import BenchConfig
from benchmarks.torch_reference import transformer_params_from_torch


def build_jax(bc: BenchConfig, torch_state_dict=None):
    """(model, params, opt_state, step_fn, tokens, labels, carry); step_fn is jitted with donation."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from trm_jax.models import (compute_loss, from_torch_state_dict, init_params, initial_carry, make_model,
                                supervision_step)

    model = make_model(bc.model_config(), bc.num_tokens, bc.seq_len)
    if torch_state_dict is not None and bc.network == "mixer":
        params = jax.tree.map(jnp.asarray, from_torch_state_dict(torch_state_dict))
    elif torch_state_dict is not None:
        params = jax.tree.map(jnp.asarray, transformer_params_from_torch(torch_state_dict, bc))
    else:
        params = init_params(model, jax.random.key(0))
    # torch.optim.AdamW's defaults but the learning rate and weight decay (the same there)
    tx = optax.adamw(bc.learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=bc.weight_decay)
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
    tokens = jnp.asarray(rng.randint(0, bc.num_tokens, (bc.batch_size, bc.seq_len)), jnp.int32)
    labels = jnp.asarray(rng.randint(0, bc.num_tokens, (bc.batch_size, bc.seq_len)), jnp.int32)
    carry = initial_carry(model, params, bc.batch_size)
    step = jax.jit(train_step, donate_argnums=(0, 1, 2))
    return model, params, opt_state, step, tokens, labels, carry

"""Losses and the one accuracy definition: token cross-entropy (softmax or stablemax) + halting BCE.

IGNORE_LABEL (defined in trm_jax.data.text, beside the datasets that write it) is masked out of the loss
and of exact-match.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from trm_jax.data.text import IGNORE_LABEL


def log_stablemax(logits, axis=-1):
    """log of stablemax: s(x) = x + 1 for x >= 0, 1 / (1 - x) otherwise (official TRM losses.py).

    The official code evaluates it in float64; here float32, in log space: log s(x) = log1p(x) or
    -log1p(-x), so no intermediate overflows or underflows (tested against a float64 reference)."""
    log_s = jnp.where(logits >= 0, jnp.log1p(jnp.maximum(logits, 0.0)), -jnp.log1p(-jnp.minimum(logits, 0.0)))
    return log_s - jax.nn.logsumexp(log_s, axis=axis, keepdims=True)


def token_cross_entropy(logits, labels, loss_type: str = "softmax"):
    """Per-token cross-entropy [batch, seq]; masked positions (IGNORE_LABEL) give 0."""
    logits = logits.astype(jnp.float32)
    logp = log_stablemax(logits) if loss_type == "stablemax" else jax.nn.log_softmax(logits)
    mask = labels != IGNORE_LABEL
    safe = jnp.where(mask, labels, 0)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return jnp.where(mask, nll, 0.0)


def token_matches(predicted, labels):
    """Per-sample (token_correct, token_count, exact) for predicted token ids against labels.

    The one accuracy definition: masked positions (IGNORE_LABEL) are skipped; a sample is exact when
    every unmasked token is right. Used by the loss, the eval step and `evaluate`."""
    mask = labels != IGNORE_LABEL
    count = mask.sum(-1)
    correct = ((predicted == labels) & mask).sum(-1)
    return correct, count, correct == count


def sigmoid_bce(logits, targets):
    """Binary cross-entropy with logits (F.binary_cross_entropy_with_logits): value and gradient.

    softplus, not max(x, 0) + log1p(exp(-|x|)): that form has gradient -t at x = 0, where every halt
    logit of a zero-initialised head starts, so the head never learned from wrong answers."""
    return jax.nn.softplus(logits) - logits * targets


def compute_loss(logits, halt_logits, labels, *, halt_loss_weight: float = 1.0, loss_type: str = "softmax"):
    """The reference loss, per sample: mean token CE + halt_loss_weight * BCE(halt, all tokens correct).

    Args:
        logits: Token logits [batch, seq_len, num_tokens].
        halt_logits: Halting logits [batch].
        labels: Target token ids [batch, seq_len]; positions holding `IGNORE_LABEL` are masked out of the
            loss and of exact-match.
        halt_loss_weight: Weight of the halting BCE.
        loss_type: "softmax" cross-entropy, or "stablemax" (the official recipe's).

    Returns:
        `(per_sample_loss, aux)`: the loss [batch], and a dict of per-sample `ce`, `halt_loss`, `exact`
        (all unmasked tokens correct), `token_correct` and `token_count`.
    """
    correct, count, exact = token_matches(jnp.argmax(logits, -1), labels)
    ce = token_cross_entropy(logits, labels, loss_type).sum(-1) / jnp.maximum(count, 1)
    halt_loss = sigmoid_bce(halt_logits.astype(jnp.float32), exact.astype(jnp.float32))
    total = ce + halt_loss_weight * halt_loss
    aux = dict(ce=ce, halt_loss=halt_loss, exact=exact, token_correct=correct, token_count=count)
    return total, aux


def model_loss(model, out, labels):
    """compute_loss of a StepOutput `out` with the model's own loss type and halt weight."""
    return compute_loss(out.logits, out.halt_logits, labels, halt_loss_weight=model.halt_loss_weight,
                        loss_type=model.loss)

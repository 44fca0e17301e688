"""Parity with the PyPI `tiny-recursive-model` (PyTorch): imported weights give the same numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
trm_pt = pytest.importorskip("tiny_recursive_model")

from trm_jax import MLPMixer1D, TinyRecursiveModel  # noqa: E402
from trm_jax.models import (  # noqa: E402
    config_from_torch_state_dict,
    from_torch_state_dict,
    initial_carry,
    make_model,
    predict,
    supervision_step,
)

DIM, DEPTH, SEQ, VOCAB, BATCH = 32, 2, 9, 11, 5


def build_torch(num_registers, seed=0):
    torch.manual_seed(seed)
    model = trm_pt.TinyRecursiveModel(
        dim=DIM, num_tokens=VOCAB,
        network=trm_pt.MLPMixer1D(dim=DIM, depth=DEPTH, seq_len=SEQ + num_registers),
        num_refinement_blocks=3, num_latent_refinements=2, num_register_tokens=num_registers)
    with torch.no_grad():  # the reference zero-inits the halt head; randomise it so halting varies
        model.to_halt_pred[1].weight.normal_(0, 2.0)
    return model.eval()


@pytest.mark.parametrize("num_registers", [0, 2])
def test_forward_and_predict_match_pytorch(num_registers):
    pt = build_torch(num_registers)
    cfg, seq_len = config_from_torch_state_dict(pt.state_dict(), num_refinement_blocks=3,
                                                 num_latent_refinements=2)
    assert seq_len == SEQ and cfg.num_register_tokens == num_registers and cfg.depth == DEPTH
    # the PyPI package's constructor, with trm_jax's classes: the same model as the config path builds
    model = TinyRecursiveModel(dim=DIM, num_tokens=VOCAB,
                               network=MLPMixer1D(dim=DIM, depth=DEPTH, seq_len=SEQ + num_registers),
                               num_refinement_blocks=3, num_latent_refinements=2, num_register_tokens=num_registers)
    assert model.token_len == seq_len
    assert jax.tree.structure(make_model(cfg, seq_len=seq_len).init_params(jax.random.key(0))) == \
        jax.tree.structure(model.init_params(jax.random.key(0)))
    params = from_torch_state_dict(pt.state_dict())
    ref_params = model.init_params(jax.random.key(0))
    assert jax.tree.structure(params) == jax.tree.structure(ref_params)
    jax.tree.map(lambda a, b: np.testing.assert_equal(a.shape, b.shape), params, ref_params)

    toks = np.random.RandomState(1).randint(0, VOCAB, (BATCH, SEQ))
    labels = np.random.RandomState(2).randint(0, VOCAB, (BATCH, SEQ))
    seq = torch.tensor(toks)
    y0, z0 = pt.get_initial()
    with torch.no_grad():
        total, (ce, halt_loss), y1, z1, pred, halt_prob = pt(seq, y0, z0, labels=torch.tensor(labels))
        # a second supervision step from the carried state
        _, _, y2, z2, pred2, halt_prob2 = pt(seq, y1, z1, labels=torch.tensor(labels))

    step = jax.jit(lambda p, t, c: supervision_step(model, p, t, c))
    out1 = step(params, jnp.asarray(toks), initial_carry(model, params, BATCH))
    out2 = step(params, jnp.asarray(toks), out1.carry)
    tol = dict(rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(out1.logits, pred.numpy(), **tol)
    np.testing.assert_allclose(jax.nn.sigmoid(out1.halt_logits), halt_prob.numpy(), **tol)
    np.testing.assert_allclose(out1.carry.z, z1.numpy(), **tol)
    np.testing.assert_allclose(out2.logits, pred2.numpy(), **tol)
    np.testing.assert_allclose(jax.nn.sigmoid(out2.halt_logits), halt_prob2.numpy(), **tol)

    from trm_jax.models import compute_loss
    ours, aux = compute_loss(out1.logits, out1.halt_logits, jnp.asarray(labels))
    np.testing.assert_allclose(aux["ce"], ce.numpy(), **tol)
    np.testing.assert_allclose(aux["halt_loss"], halt_loss.numpy(), **tol)
    np.testing.assert_allclose(ours.sum(), total.item(), rtol=2e-4)

    probs = np.sort(halt_prob.numpy())  # a threshold between two samples' probabilities, away from ties
    threshold = float(probs[BATCH // 2 - 1] + probs[BATCH // 2]) / 2
    with torch.no_grad():
        pt_preds, pt_steps = pt.predict(seq, halt_prob_thres=threshold, max_deep_refinement_steps=4)
    ours = predict(model, params, jnp.asarray(toks), halt_threshold=threshold, max_recursion_depth=4)
    seed_style = model.predict(params, jnp.asarray(toks), halt_prob_thres=threshold, max_deep_refinement_steps=4)
    np.testing.assert_array_equal(seed_style.tokens, ours.tokens)
    np.testing.assert_array_equal(np.asarray(ours.recursion_depth), pt_steps.numpy())
    np.testing.assert_array_equal(np.asarray(ours.tokens), pt_preds.numpy())


def test_import_rejects_non_mixer_state_dict():
    from trm_jax.errors import TRMError
    with pytest.raises(TRMError, match="MLPMixer1D"):
        from_torch_state_dict({"input_embed.weight": np.zeros((3, 4))})

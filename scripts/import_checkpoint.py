"""Import a PyTorch TRM checkpoint as a trm_jax run directory (for trm_jax.load, evaluate.py, infer.py) and/or
a pretrained directory (safetensors, config.json, model card: for sharing, e.g. hf upload).

    python scripts/import_checkpoint.py --official checkpoints/run/step_N [--arch all_config.yaml] --out RUN_DIR
    python scripts/import_checkpoint.py --torch trm.pt --n 6 --T 3 --out RUN_DIR
    python scripts/import_checkpoint.py --official checkpoints/run/step_N --to-pretrained DIR [--dtype bfloat16]

--official: a file written by the official TinyRecursiveModels pretrain.py (arch read from the
all_config.yaml beside it unless --arch is given). --torch: a `tiny-recursive-model` (PyPI)
TinyRecursiveModel(MLPMixer1D) state dict; n and T are not stored in it, so pass them.
The run directory holds config.yaml (model section + data section) and checkpoints/0 with the weights
(as both `params` and `ema_params`, so `load(..., use_ema=...)` reads either). The pretrained directory
is what trm_jax.save_pretrained writes (see docs/after-training.md, "Sharing weights").
"""

import argparse
import os
import sys

from trm_jax.errors import TRMError


def _data_section(dataset_dir, seq_len: int) -> dict:
    """The official builders' directory (train/, test/ with dataset.json) when it is on this machine."""
    if dataset_dir and os.path.isdir(dataset_dir):
        return {"task": "puzzle_dataset", "dataset_dir": os.path.abspath(dataset_dir), "seq_len": seq_len}
    if dataset_dir:
        print(f"warning: dataset directory {dataset_dir} not found; evaluate.py will need --data", file=sys.stderr)
    return {"seq_len": seq_len}


def imported_config(out: str, model, data: dict):
    """The TRMConfig of an imported model: its model section, `data`, run_dir `out`."""
    from trm_jax.config import TRMConfig
    from trm_jax.models import model_config

    cfg = model_config(model)
    if cfg is None:
        raise TRMError("the imported model has no ModelConfig (internal error: unknown network)")
    config = TRMConfig.from_dict({"run_dir": out, "data": data, "monitoring": {"enabled": False}})
    return config.replace(model=cfg)


def write_run_dir(out: str, model, params, data: dict) -> str:
    """config.yaml + an Orbax checkpoint (step 0) of `params` that trm_jax.load reads."""
    import jax
    import numpy as np

    from trm_jax.training.checkpoints import write_weights_checkpoint
    from trm_jax.training.run_dir import CHECKPOINT_DIR, RUN_CONFIG_FILE

    out = os.path.abspath(out)
    ckpt_dir = os.path.join(out, CHECKPOINT_DIR)
    if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise TRMError(f"{out} already holds checkpoints; pass a new --out directory")
    config = imported_config(out, model, data)
    os.makedirs(out, exist_ok=True)
    config.save(os.path.join(out, RUN_CONFIG_FILE))
    host = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    write_weights_checkpoint(ckpt_dir, 0, host, host, {"imported": True})
    return out


def write_pretrained(out: str, model, params, data: dict, dtype: str) -> str:
    """A pretrained directory (trm_jax.save_pretrained) of the imported weights, as step 0."""
    from trm_jax import TRMParams, save_pretrained

    config = imported_config(os.path.abspath(out), model, data)
    return save_pretrained(TRMParams(params, config, num_tokens=model.num_tokens, seq_len=model.token_len, step=0),
                           out, dtype=dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--official", help="official TinyRecursiveModels checkpoint (pretrain.py step_N file)")
    src.add_argument("--torch", help="tiny-recursive-model (PyPI) TinyRecursiveModel state dict")
    ap.add_argument("--arch", default=None, help="official all_config.yaml (default: the one beside the file)")
    ap.add_argument("--seq-len", type=int, default=None,
                    help="official: tokens per sample when neither the weights nor dataset.json give it (RoPE)")
    ap.add_argument("--data-dir", default=None,
                    help="official: dataset directory of the official builder (default: all_config data_paths[0])")
    ap.add_argument("--n", type=int, default=6, help="--torch: latent refinements per cycle it was trained with")
    ap.add_argument("--T", type=int, default=3, help="--torch: cycles per supervision step it was trained with")
    ap.add_argument("--out", default=None, help="run directory to write")
    ap.add_argument("--to-pretrained", default=None, metavar="DIR",
                    help="pretrained directory to write (model.safetensors, config.json, README.md)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="--to-pretrained: weight dtype of model.safetensors")
    args = ap.parse_args(argv)
    if not args.out and not args.to_pretrained:
        ap.error("pass --out RUN_DIR, --to-pretrained DIR or both")
    try:
        if args.official:
            from trm_jax.models.official_checkpoint import from_official_checkpoint, read_official_arch

            arch_path = args.arch or os.path.join(os.path.dirname(os.path.abspath(args.official)), "all_config.yaml")
            if not os.path.isfile(arch_path):
                raise TRMError(f"{args.official}: no all_config.yaml beside the checkpoint; pass --arch FILE")
            arch = read_official_arch(arch_path)
            if args.seq_len:
                arch["seq_len"] = args.seq_len
            model, params = from_official_checkpoint(args.official, arch)
            data_dir = args.data_dir or next(iter(arch.get("data_paths") or []), None)
            if data_dir and not os.path.isabs(data_dir) and not os.path.isdir(data_dir):
                data_dir = os.path.join(os.path.dirname(arch_path), data_dir)
            data = _data_section(data_dir, model.token_len)
        else:
            import jax
            import jax.numpy as jnp

            from trm_jax.models import config_from_torch_state_dict, from_torch_state_dict, make_model
            from trm_jax.models.official_checkpoint import load_torch_state_dict

            sd = load_torch_state_dict(args.torch)
            cfg, seq_len = config_from_torch_state_dict(sd, num_latent_refinements=args.n,
                                                        num_refinement_blocks=args.T)
            model = make_model(cfg, seq_len=seq_len)
            params = jax.tree.map(jnp.asarray, from_torch_state_dict(sd))
            data = {"seq_len": seq_len}
        written = []
        if args.out:
            out = write_run_dir(args.out, model, params, data)
            written.append(f"{out}: load it with trm_jax.load({out!r}) or python scripts/evaluate.py --run {out}")
        if args.to_pretrained:
            out = write_pretrained(args.to_pretrained, model, params, data, args.dtype)
            written.append(f"{out}: load it with trm_jax.load({out!r}), share it with hf upload "
                           f"USER/REPO {out}")
    except TRMError as e:
        sys.exit(f"error: {e}")
    print(f"imported seq_len {model.token_len}, vocab {model.num_tokens}, {model.variant} variant")
    for line in written:
        print(f"wrote {line}")


if __name__ == "__main__":
    from launcher import launch

    launch(main)

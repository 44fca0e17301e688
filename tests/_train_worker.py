"""Subprocess worker for the multi-device / multi-host training tests.

    python tests/_train_worker.py OUT_JSON RUN_DIR [key=value ...]

Trains the tiny synthetic task (tests/_train_helpers.py) with the given config overrides and writes
the per-step losses, final params and eval result to OUT_JSON (process 0 only). Device emulation
(XLA_FLAGS) and multi-host settings come from the environment / overrides.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    out_path, run_dir, *overrides = sys.argv[1:]
    from _train_helpers import tiny_config, tiny_trainer, train_losses

    from trm_jax.config import apply_overrides
    from trm_jax.errors import TRMError

    cfg = tiny_config(run_dir)
    cfg = type(cfg).from_dict(apply_overrides(cfg.to_dict(), overrides))
    try:
        trainer = tiny_trainer(cfg)
    except TRMError as e:
        json.dump({"error": str(e)}, open(out_path, "w"))
        return
    import jax
    import numpy as np
    result = trainer.train()
    if jax.process_index() == 0:
        json.dump({"losses": train_losses(run_dir), "eval": result.eval, "devices": jax.device_count(),
                   "processes": jax.process_count(),
                   "params": [np.asarray(x).ravel()[:64].tolist() for x in jax.tree.leaves(result.params)]},
                  open(out_path, "w"))


if __name__ == "__main__":
    main()

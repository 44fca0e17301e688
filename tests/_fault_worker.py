"""Subprocess worker for the training-fault tests (tests/test_reliability_training.py).

    python tests/_fault_worker.py RUN_DIR MODE [key=value ...]

Trains the tiny synthetic task (tests/_train_helpers.py) with async checkpoints, as scripts/train.py
does, and the given config overrides. MODE:
- `throttle`: prints `step N` after each logged step and sleeps 0.15 s, so the parent can SIGKILL it at
  a step of its choosing;
- `kill-in-save:K`: SIGKILLs itself right after the async write of checkpoint K was started (the write
  is still in flight: Orbax's `K.orbax-checkpoint-tmp*` directory is left behind).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    run_dir, mode, *overrides = sys.argv[1:]
    from _train_helpers import TinyTokenizer, reverse_task, tiny_config

    from trm_jax.config import apply_overrides
    from trm_jax.training import create_trainer
    from trm_jax.training.checkpoints import Checkpointer
    from trm_jax.training.trainer import Trainer

    if mode == "throttle":
        flush = Trainer._flush

        def slow_flush(self, window, step, *a):
            out = flush(self, window, step, *a)
            print(f"step {step}", flush=True)
            time.sleep(0.15)
            return out

        Trainer._flush = slow_flush
    elif mode.startswith("kill-in-save:"):
        at = int(mode.split(":")[1])
        save = Checkpointer.save

        def save_then_die(self, step, state, meta):
            out = save(self, step, state, meta)
            if step == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        Checkpointer.save = save_then_die
    else:
        raise SystemExit(f"unknown mode {mode}")

    cfg = tiny_config(run_dir)
    cfg = type(cfg).from_dict(apply_overrides(cfg.to_dict(), overrides))
    trainer = create_trainer(cfg, tokenizer=TinyTokenizer(), datasets_fn=reverse_task, async_checkpoints=True)
    trainer.train()
    print("finished", flush=True)


if __name__ == "__main__":
    main()

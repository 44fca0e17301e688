"""Benchmarks of trm_jax (not installed with the package; run from a checkout, at the repository root).

    python scripts/benchmark.py model [--quick | --suite]   # train step, predict, compile, memory vs PyTorch
    python scripts/benchmark.py rag                        # vector-store search vs faiss
    python scripts/benchmark.py time-to-accuracy [--quick] # held-out Sudoku accuracy vs training time, both Trainers
    python scripts/benchmark.py time-to-accuracy --recipe fast  # trm_jax's final-step recipe vs PyTorch's own
    python -m benchmarks.halting_check [--quick]            # time-to-accuracy's trm_jax arm: its weights by threshold
    python -m benchmarks.puzzle_embedding                   # train step with a large puzzle-embedding table
    python -m benchmarks.trackers [--wandb]                 # training-loop time with TensorBoard (W&B) on vs off
    python -m benchmarks.adaptation [--dim --batch --steps]  # ARC adaptation: steps/s, tasks/min/device, MFU
    python -m benchmarks.loop [--config config.yaml]        # training-loop time per step vs the bare compiled step
    python -m benchmarks.step_profile [--dim 64]            # where a train step's time goes, per op, both frameworks
    python -m benchmarks.gpu_suite [--quick]                # official recipes' shapes on a GPU, bounded: step, MFU, predict
    python -m benchmarks.sudoku_accuracy --run RUN          # a Sudoku run's exact accuracy by number of givens
    python -m benchmarks.test_time_compute --run RUN        # K noisy trajectories and deeper recursion on a Sudoku run
    python -m benchmarks.predict_compaction --run RUN       # predict with batch compaction vs one while_loop
    python -m benchmarks.settled_halting --run RUN          # full depth vs the halting head vs settled answers
    python -m benchmarks.test_time_depth --run RUN          # accuracy against test-time depth, 8 ... 1024 steps
    python -m benchmarks.recipe_cost [--configs A,B]        # whole recipes' training time, from each stage's step time

Modules, one job each:
    harness          BenchConfig (the benchmarked model, training and work), worker processes, timing,
                     a run config cut to one stage
    flops            analytic FLOPs of a network application, a train step, predict; devices' peaks
    jax_step         the trm_jax train step the model benchmark times
    torch_reference  the same model and step in PyTorch (PyPI tiny-recursive-model; our transformer network)
    kernels          XLA / PyTorch matmul peaks and the matmul-only floor
    model_workers    the model benchmark's worker entries (one per framework) and the driver timing them
    model            the `model` subcommand: arguments, runs, report
    rag              the `rag` subcommand
    time_to_accuracy the `time-to-accuracy` subcommand: both packages' Trainers on the same Sudoku data
    the others       one `python -m benchmarks.NAME` main each (above)

Mains start through scripts/launcher.py (`launch(main)`: malloc on huge pages, exit status).
"""

"""Benchmarks of trm_jax (not installed with the package; run from a checkout).

    python scripts/benchmark.py model [--quick | --suite]   # train step, predict, compile, memory vs PyTorch
    python scripts/benchmark.py rag                        # vector-store search vs faiss
    python scripts/benchmark.py time-to-accuracy [--quick] # held-out Sudoku accuracy vs training time, both Trainers
    python -m benchmarks.puzzle_embedding                   # train step with a large puzzle-embedding table
    python -m benchmarks.trackers [--wandb]                 # training-loop time with TensorBoard (W&B) on vs off
    python -m benchmarks.adaptation [--dim --batch --steps]  # ARC adaptation: steps/s, tasks/min/device, MFU
    python -m benchmarks.loop [--config config.yaml]        # training-loop time per step vs the bare compiled step
    python -m benchmarks.step_profile [--dim 64 --n 2 --T 2] # where a train step's time goes, per op, both frameworks
    python -m benchmarks.gpu_suite [--quick]                # official recipes' shapes on a GPU, bounded: step, MFU, predict

Modules, one job each:
    config           BenchConfig: the benchmarked architecture and work
    flops            analytic FLOPs of a network application, a train step, predict
    jax_step         the trm_jax train step the model benchmark times
    torch_reference  the same model and step in PyTorch (PyPI tiny-recursive-model; our transformer network)
    kernels          XLA / PyTorch matmul peaks and the matmul-only floor
    workers          generic worker processes: run a "module:function" entry once or as a server
    model_workers    the model benchmark's worker entries (one per framework) and the driver timing them
    model            the `model` subcommand: arguments, runs, report
    rag              the `rag` subcommand
    time_to_accuracy the `time-to-accuracy` subcommand: both packages' Trainers on the same Sudoku data
    trackers         the default run's loop time with the experiment trackers on vs off
    adaptation       test-time adaptation throughput at the official ARC config's shapes
    loop             the training loop's time per step against the bare compiled step
    step_profile     per-op time of the train step: XLA's profiler trace (trm_jax), torch.profiler (PyTorch)
    gpu_suite        the official recipes' train step and predict on an accelerator, within a time budget
"""

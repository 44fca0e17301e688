"""The ARC-AGI task: its adapter (config keys, build, infer, evaluate) and its evaluation (voting through
inverse augmentations, pass@K, Kaggle submission), and its test-time adaptation to tasks a run never saw.
Task loading, encoding and the cached build, which know nothing of configs, are trm_jax.tasks.arc."""

from trm_jax.tasks.arc.adapt import ADAPT_NUM_AUG, ArcAdaptation
from trm_jax.tasks.arc.evaluation import (ARC_PASS_KS, ARC_SUBMISSION_ATTEMPTS, ArcEvalResult, ArcVoter, evaluate_arc,
                                          evaluate_arc_build, infer_arc_task, make_submission, model_predict_fn,
                                          pass_at_k, score_arc_submission, write_submission)
from trm_jax.tasks.arc.task import ArcOptions, ArcTask, build_arc_for

__all__ = [
    "ADAPT_NUM_AUG", "ARC_PASS_KS", "ARC_SUBMISSION_ATTEMPTS", "ArcAdaptation", "ArcEvalResult", "ArcOptions", "ArcTask", "ArcVoter", "build_arc_for",
    "evaluate_arc", "evaluate_arc_build", "infer_arc_task", "make_submission", "model_predict_fn", "pass_at_k",
    "score_arc_submission", "write_submission",
]

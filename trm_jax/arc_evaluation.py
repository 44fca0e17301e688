"""ARC-AGI evaluation (voting, pass@K, Kaggle submission), where README shows it; it lives with the ARC
task in trm_jax.tasks.arc.evaluation."""

from trm_jax.tasks.arc.evaluation import (ARC_PASS_KS, ARC_SUBMISSION_ATTEMPTS, ArcEvalResult, ArcVoter, evaluate_arc,
                                          evaluate_arc_build, infer_arc_task, make_submission, model_predict_fn,
                                          pass_at_k, score_arc_submission, write_submission)

__all__ = [
    "ARC_PASS_KS", "ARC_SUBMISSION_ATTEMPTS", "ArcEvalResult", "ArcVoter", "evaluate_arc", "evaluate_arc_build",
    "infer_arc_task", "make_submission", "model_predict_fn", "pass_at_k", "score_arc_submission", "write_submission",
]
